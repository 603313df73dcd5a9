"""Wait for cloud-init on a fresh host: SSH answers before its final stage
(packages, runcmd) is over. Nothing to wait for without cloud-init, nor where it
is installed but not part of this boot (no /run/cloud-init, made by its systemd
generator or first stage before sshd is up): `status --wait` would wait for a
"not run" cloud-init forever (the local target in a container with the package).
"""

from __future__ import annotations

import math
from itertools import takewhile
from typing import TYPE_CHECKING

from featctl.errors import RemoteCommandError

if TYPE_CHECKING:
    from featctl.remote.ssh import Connection, Result

LOG = "/var/log/cloud-init-output.log"
_ABSENT = "featctl: no cloud-init"
# `cloud-init status` exits 0 when done, 2 when done with recoverable errors
# ("degraded"), 1 on a critical error; coreutils `timeout` exits 124.
_ACCEPTED = (0, 2)
_TIMED_OUT = 124


def wait_for_cloud_init(conn: Connection, *, timeout: float = 900.0) -> str | None:
    """Block until cloud-init on the host has finished; its (extended) status,
    e.g. "done" or "degraded done" (worth a warning), or None without cloud-init."""
    seconds = max(1, math.ceil(timeout))
    wait = "cloud-init status --wait --long"
    script = (
        f"if ! command -v cloud-init >/dev/null 2>&1 || [ ! -d /run/cloud-init ]; then echo '{_ABSENT}'; exit 0; fi\n"
        f"if command -v timeout >/dev/null 2>&1; then exec timeout {seconds} {wait}; fi\n"
        f"exec {wait}\n"
    )
    timed_out = RemoteCommandError(
        f"cloud-init on the host did not finish within {seconds} s (still running: packages or runcmd); "
        f"see {LOG} on the host"
    )
    try:
        result = conn.run(script, timeout=seconds + 30, check=False)
    except RemoteCommandError:  # no coreutils timeout on the host: the SSH side gave up
        raise timed_out from None
    if result.exit_status == 0 and result.text.strip() == _ABSENT:
        return None
    if result.exit_status in _ACCEPTED:
        return _field(result.text, "extended_status") or _field(result.text, "status") or "done"
    if result.exit_status == _TIMED_OUT:
        raise timed_out
    raise RemoteCommandError(f"cloud-init on the host failed: {_failure(result)}; see {LOG}")


def _lines(text: str) -> list[str]:
    """Output lines without blanks and the dots `--wait` prints while it waits."""
    return [s for ln in text.splitlines() if (s := ln.strip().lstrip(".").strip())]


def _field(text: str, key: str) -> str | None:
    for line in _lines(text):
        name, sep, value = line.partition(":")
        if sep and name == key and value.strip():
            return value.strip()
    return None


def _failure(result: Result) -> str:
    """The last entry under `errors:` of the long status, else the last line of its
    output (stderr's when cloud-init reported no status at all)."""
    lines = _lines(result.text)
    if "errors:" in lines:  # each error is listed below it as "- ..."
        entries = list(takewhile(lambda ln: ln.startswith("-"), lines[lines.index("errors:") + 1 :]))
        if entries:
            return entries[-1][1:].strip()
    if lines and (_field(result.text, "status") or not result.stderr.strip()):
        return lines[-1].removeprefix("-").strip()
    return result.last_error_line()
