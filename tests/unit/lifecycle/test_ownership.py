"""A copied workspace is refused; the workspace that last deployed is not."""

from __future__ import annotations

import os

from featctl.lifecycle.housekeeping import holder_alive
from featctl.lifecycle.ownership import conflict
from featctl.workspace import Deployment


def record(gen: int, dep_id: str = "abc") -> Deployment:
    return Deployment(target="local", name="n", deployment_id=dep_id, generation=gen)


def test_no_owner_yet_is_fine():
    assert conflict(None, record(0), "m:/a") is None
    assert conflict({}, record(0), "m:/a") is None


def test_the_last_writer_may_go_on():
    owner = {"deployment_id": "abc", "workspace": "m:/a", "generation": 3}
    assert conflict(owner, record(3), "m:/a") is None
    assert conflict(owner, record(2), "m:/a") is None  # its own record restored from a backup


def test_a_copy_is_refused_whichever_deployed_last():
    owner = {"deployment_id": "abc", "workspace": "m:/a", "generation": 3}
    why = conflict(owner, record(3), "m:/copy")
    assert why and "is a copy" in why and "m:/a" in why
    # The copy cannot win later either: the host moved on past what it knows.
    assert conflict({**owner, "generation": 4}, record(3), "m:/copy")


def test_another_deployment_on_the_same_host():
    why = conflict({"deployment_id": "zzz", "workspace": "m:/b", "generation": 1}, record(5), "m:/a")
    assert why and "another deployment" in why


def test_lock_holder_liveness():
    import socket

    me = {"client": socket.gethostname(), "pid": os.getpid(), "command": "deploy"}
    assert "still running" in (holder_alive(me) or "")
    gone = {"client": socket.gethostname(), "pid": 2**22 + 12345, "command": "deploy"}
    assert holder_alive(gone) is None
    assert "cannot check" in (holder_alive({"client": "elsewhere", "pid": 1}) or "")
    assert "unknown" in (holder_alive({"holder": "unknown"}) or "")
