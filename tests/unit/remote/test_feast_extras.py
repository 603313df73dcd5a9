"""Every Feast extra featctl installs resolves with the pinned lock: the host
installs ``-r requirements.txt`` plus ``feast[<extras>]`` (remote/agent.py),
so a lock pin an extra excludes makes that deploy fail (python-dateutil 4.0.0
against botocore's <3 broke every repository needing ``feast[aws]``).

Offline: scripts/check-feast-extras resolved the union of the extras with uv
against the lock and wrote tests/unit/remote/data/feast_extras.json; a lock
changed without running it again fails here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from featctl import FEAST_VERSION
from featctl.repo.feature_store import installable_extras

ROOT = Path(__file__).resolve().parents[3]
LOCK = ROOT / "src" / "featctl" / "agent" / "requirements.txt"
DATA = json.loads((Path(__file__).parent / "data" / "feast_extras.json").read_text())


def lock_pins() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")) and "==" in line:
            name, rest = line.split("==", 1)
            out.setdefault(name.strip().lower(), set()).add(rest.split(";")[0].strip())
    return out


def test_the_record_is_of_this_lock_and_every_extra_featctl_installs():
    assert DATA["lock_sha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest(), (
        "the lock changed since the extras were checked: run scripts/check-feast-extras"
    )
    assert DATA["feast"] == FEAST_VERSION
    assert installable_extras() <= set(DATA["extras"])
    assert {"aws", "gcp", "snowflake", "spark", "postgres", "redis"} <= set(DATA["extras"])


def test_the_extras_resolution_keeps_every_lock_pin():
    pins = lock_pins()
    resolved = {n: {line.split(";")[0].strip() for line in lines} for n, lines in DATA["resolved"].items()}
    assert "boto3" in resolved and "feast" in resolved
    moved = {n: (sorted(pins[n]), sorted(v)) for n, v in resolved.items() if n in pins and not v <= pins[n]}
    assert moved == {}, f"the extras need other versions than the lock pins (lock, extras): {moved}"


def test_python_dateutil_is_one_botocore_accepts():
    # botocore (feast[aws]): python-dateutil>=2.1,<3.0.0.
    assert all(int(v.split(".")[0]) < 3 for v in lock_pins()["python-dateutil"])
