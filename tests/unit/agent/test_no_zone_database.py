"""A host without the zone database (a minimal Debian image has no tzdata):
the PostgreSQL loader's CSV and the as-of join's times must not need it.
Found by the vm target: load-postgres failed there with Arrow's "Cannot locate
or parse timezone 'UTC'"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import pandas as pd, pyarrow as pa, pyarrow.csv as pacsv
from featctl.agent import asof, pg_join
times = pd.to_datetime(["2021-01-01 00:00:00.0000019", None, "1960-01-01 00:00:00.0000015"], utc=True)
batch = pa.RecordBatch.from_pandas(pd.DataFrame({"t": times, "n": times.tz_localize(None), "x": [1.5, 2.0, None]}),
                                   preserve_index=False)
try:
    pacsv.write_csv(pa.Table.from_batches([batch]), pa.BufferOutputStream())
    print("ZONES AVAILABLE")
except pa.ArrowInvalid:
    print("NO ZONES")
print(pg_join.pg_csv(batch.columns, batch.schema.names).decode())
print([int(v) for v in asof.ts_ns(batch.column(0))])
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_loader_csv_and_join_times_need_no_zone_database() -> None:
    hide = "mount -t tmpfs none /usr/share/zoneinfo && exec \"$0\" -c \"$1\""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", hide, sys.executable, SCRIPT], capture_output=True, text=True,
                          timeout=120)
    if "Operation not permitted" in proc.stderr:
        pytest.skip("no mount namespace here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "NO ZONES"  # the condition is real: Arrow's own writer fails here
    # UTC wall times without an offset, floored to microseconds; a null is an empty field
    assert lines[1:4] == [
        '"2021-01-01 00:00:00.000001000","2021-01-01 00:00:00.000001000","1.5"',
        ',,"2"',
        '"1960-01-01 00:00:00.000001000","1960-01-01 00:00:00.000001000",',
    ]
    assert lines[-1] == str([1609459200000001900, -(2**63), -315619199999998500])
