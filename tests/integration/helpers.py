"""Helpers the integration tests share: drive a deployment and look at its host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import agent_command
from tests.integration.conftest import Deployed

AGENT, AGENT_ENV = agent_command()


def touch(d: Deployed, tag: str) -> None:
    """Change the repository so that the next deploy builds a release."""
    with (d.repo / "features.py").open("a") as fh:
        fh.write(f"\n# {tag} {time.time()}\n")


def score(d: Deployed, driver: int = 1001) -> float:
    rows = d.json("score", "-w", "conv_rate=0.5,acc_rate=0.5", "-d", str(driver))
    assert rows[0]["linear_combination"] is not None
    return rows[0]["linear_combination"]


def host_state(d: Deployed) -> dict:
    base = d.record()["remote_base_dir"]
    out = subprocess.run([*AGENT, "state", "--base", base], capture_output=True, text=True, env=AGENT_ENV)
    return json.loads(out.stdout)


def running_servers(d: Deployed) -> list[str]:
    return [r["id"] for r in host_state(d)["releases"] if r["server_pid"]]


def last_line(res) -> str:
    return res.stderr.strip().splitlines()[-1]


def start_deploy(d: Deployed) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "featctl", "deploy", "-v"],
        cwd=d.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(proc: subprocess.Popen, marker: str, seen: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return
        assert time.monotonic() < deadline, f"no {marker!r} in {''.join(seen)}"
    raise AssertionError(f"deploy ended before {marker!r}: {''.join(seen)}")


def server_socket(d: Deployed, index: int = 0) -> str:
    """The serving feature server's Unix socket on host ``index`` (the local
    target's host is this machine): servers listen on nothing else."""
    rec = d.record()
    view = rec if index == 0 else {**rec, **rec["hosts"][index]}
    return str(Path(view["remote_base_dir"]) / "run" / "s" / str(view["server_port"]))


def server_post(d: Deployed, path: str, body: object, *, timeout: float = 60, index: int = 0) -> tuple[int, bytes]:
    """POST JSON straight to the serving feature server over its Unix socket."""
    import http.client
    import json as _json
    import socket as _socket

    sock_path = server_socket(d, index)

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(sock_path)
            self.sock = s

    conn = _Conn("localhost", timeout=timeout)
    try:
        conn.request("POST", path, body=_json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def hold_server_socket(d: Deployed, port: int, index: int = 0):
    """A foreign program (this test process) listening on server slot ``port``'s
    Unix socket of host ``index``, as another program holding a server's port."""
    import socket as _socket

    rec = d.record()
    base = Path((rec if index == 0 else rec["hosts"][index])["remote_base_dir"])
    (base / "run" / "s").mkdir(parents=True, exist_ok=True, mode=0o700)
    path = base / "run" / "s" / str(port)
    path.unlink(missing_ok=True)
    holder = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    holder.bind(str(path))
    holder.listen()
    return holder
