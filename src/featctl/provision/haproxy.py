"""The HAProxy adapter: the application endpoint's edge (the one module that
runs ``haproxy`` or talks to its sockets).

* ``render`` is pure: haproxy.cfg from one template (tested table by table);
* ``check`` runs ``haproxy -c -f`` before any start or reload;
* ``start``/``reload``/``stop`` run HAProxy in master-worker mode (``-W``) with
  a master CLI socket (``-S master.sock,mode,600``); a reload asks the master
  (its CLI ``reload``, else SIGUSR2): the new worker takes over the listening
  sockets (``expose-fd listeners``) and the old one finishes its in-flight
  requests (at most ``hard-stop-after``);
* ``show_stat``/``add_map``/``del_map`` speak the runtime API on the worker's
  ``admin.sock`` (``level admin``, mode 600): server states and tokens
  without a reload.

Supervision: HAProxy runs on this machine under featctl's own supervisor
(``python -m featctl.agent.supervise``, stdlib only), HAProxy itself in the
foreground master-worker mode. That rather than ``-D -p``: HAProxy cannot log
to a file by itself (only to syslog, stdout or stderr), and the supervisor
catches its stderr in ``haproxy.log`` that featctl can show; it also starts a
master that crashed again without waiting for the next featctl command. A
machine reboot or a killed supervisor is caught by ``running()``: the next
command that needs the endpoint starts it again.

Files, all in the endpoint directory (0700; the caller owns it): haproxy.cfg,
edge.pem, ca.pem, tokens.map, master.sock, admin.sock, haproxy.pid,
supervise.pid, haproxy.log.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from featctl.provision.haproxy_cfg import Backend as Backend
from featctl.provision.haproxy_cfg import EndpointError, check_word
from featctl.provision.haproxy_cfg import Files as Files
from featctl.provision.haproxy_cfg import render as render
from featctl.provision.haproxy_cfg import render_front as render_front

#: haproxy.log beyond this size is moved to haproxy.log.1 when HAProxy starts.
LOG_KEEP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServerState:
    """A backend server as HAProxy's runtime API reports it."""

    name: str
    address: str
    status: str
    #: Seconds since the status last changed (None: HAProxy does not say).
    since_seconds: int | None

    @property
    def up(self) -> bool:
        return self.status.upper().startswith("UP")


# --- the binary -----------------------------------------------------------------------------------------------------
def binary() -> str:
    import shutil

    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise EndpointError("haproxy is not installed", hint="apt-get install haproxy (2.6 or later)")
    return found


def check(cfg_path: Path) -> None:
    """``haproxy -c -f``: refuse a configuration HAProxy would not load."""
    proc = subprocess.run([binary(), "-c", "-q", "-f", str(cfg_path)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ALERT" in ln] or proc.stderr.splitlines()
        raise EndpointError(f"haproxy refused {cfg_path}: {lines[0].strip() if lines else 'unknown error'}")


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _ask(sock: Path, command: str, timeout: float = 2.0) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)  # the master CLI keeps a connection open until the client is done
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError as exc:
        raise EndpointError(f"HAProxy does not answer on {sock}: {exc.strerror or exc}") from None
    finally:
        s.close()


def running(files: Files) -> bool:
    """HAProxy's worker answers on the runtime socket."""
    try:
        return "Pid:" in _ask(files.admin_sock, "show info", timeout=1.0)
    except EndpointError:
        return False


def log_tail(files: Files, lines: int = 5) -> list[str]:
    try:
        return files.log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def parse_proc(text: str) -> tuple[int, int, bool] | None:
    """(reloads, failed reloads, a worker of the last load runs) from the
    master CLI's ``show proc``."""
    import re

    master = re.search(r"^\d+\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?", text, re.M)
    if master is None:
        return None
    fresh = re.search(r"^\d+\s+worker\s+0\s", text, re.M) is not None
    return int(master.group(1)), int(master.group(2) or 0), fresh


def _master_state(files: Files) -> tuple[int, int, bool] | None:
    """``parse_proc`` of the master's answer; None when it does not answer (re-executing)."""
    try:
        return parse_proc(_ask(files.master_sock, "show proc", timeout=1.0))
    except EndpointError:
        return None


def _wait(files: Files, ready: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.05)
    tail = " | ".join(ln for ln in log_tail(files) if ln.strip())
    raise EndpointError(f"HAProxy did not {what} within {seconds:.0f} s" + (f": {tail[-300:]}" if tail else ""))


def start(files: Files, *, wait_seconds: float = 15.0) -> None:
    """Start HAProxy (master-worker) under featctl's supervisor, detached;
    return once its worker answers."""
    check(files.cfg)
    with contextlib.suppress(OSError):
        if files.log.stat().st_size > LOG_KEEP_BYTES:  # the log of the run before this one, once
            files.log.replace(files.log.with_name(files.log.name + ".1"))
    argv = [
        sys.executable,
        "-m",
        "featctl.agent.supervise",
        "--pidfile",
        str(files.supervise_pid),
        "--log",
        str(files.log),
        "--",
        binary(),
        "-W",
        "-f",
        str(files.cfg),
        "-S",
        f"{files.master_sock},mode,600",
        "-p",
        str(files.pid),
    ]
    # A small environment: HAProxy needs none, and the caller's may hold cloud credentials.
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        offset = files.log.stat().st_size
    except OSError:
        offset = 0
    old = os.umask(0o077)
    try:
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False, timeout=30)
    finally:
        os.umask(old)
    failed: list[str] = []

    def up() -> bool:
        if running(files):
            return True
        failed[:] = _alerts_since(files, offset)
        return bool(failed)

    try:
        _wait(files, up, wait_seconds, "start")
    except EndpointError:
        stop(files)
        raise
    if failed:  # HAProxy refused to start (an address in use): do not let the supervisor try again and again
        stop(files)
        raise EndpointError(f"HAProxy did not start: {failed[0]}")


def _alerts_since(files: Files, offset: int) -> list[str]:
    """HAProxy's ALERT lines written to its log after ``offset`` (bytes)."""
    try:
        with files.log.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return []
    return [ln.split(":", 1)[-1].strip() for ln in text.splitlines() if "[ALERT]" in ln]


def reload(files: Files, *, wait_seconds: float = 15.0, checked: bool = False) -> None:
    """Hitless reload: check the new configuration, ask the master to load it
    (new worker, old worker drains), return once the new worker answers. A
    load that fails (an address in use) leaves the old worker serving the old
    configuration and raises with HAProxy's reason."""
    if not checked:
        check(files.cfg)
    before = _master_state(files)
    try:
        offset = files.log.stat().st_size
    except OSError:
        offset = 0
    if before is None:
        pid = _pid(files.pid)
        if pid is None:
            raise EndpointError("HAProxy is not running; nothing to reload")
        os.kill(pid, signal.SIGUSR2)
        time.sleep(0.5)
        _wait(files, lambda: running(files), wait_seconds, "reload")
        return
    with contextlib.suppress(EndpointError):
        _ask(files.master_sock, "reload", timeout=2.0)
    after: list[tuple[int, int, bool]] = []

    def loaded() -> bool:
        state = _master_state(files)
        if state is None or state[0] <= before[0]:
            return False
        after[:] = [state]
        return state[1] > before[1] or (state[2] and running(files))

    _wait(files, loaded, wait_seconds, "reload")
    if after and after[0][1] > before[1]:
        alerts = _alerts_since(files, offset)
        raise EndpointError(
            "HAProxy could not load the new configuration and keeps serving the old one: "
            + (alerts[0] if alerts else f"see {files.log}")
        )


def stop(files: Files, timeout: float = 10.0) -> None:
    """Stop the supervisor and HAProxy with it (and whatever is left of either)."""
    for path in (files.supervise_pid, files.group_pid, files.pid):
        pid = _pid(path)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if path == files.group_pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid(path) == pid and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for path in (files.master_sock, files.admin_sock, files.pid, files.supervise_pid, files.group_pid):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


# --- runtime API ------------------------------------------------------------------------------------------------------
def parse_stat(text: str, backend: str = "reads") -> list[ServerState]:
    """The servers of ``backend`` in the runtime API's ``show stat`` CSV."""
    out = []
    for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        since = row.get("lastchg") or ""
        out.append(
            ServerState(
                name=row["svname"],
                address=row.get("addr") or "",
                status=row.get("status") or "",
                since_seconds=int(since) if since.isdigit() else None,
            )
        )
    return out


def show_stat(files: Files, backend: str = "reads") -> list[ServerState]:
    """Each server of ``backend``: its status and how long it has had it."""
    return parse_stat(_ask(files.admin_sock, "show stat"), backend)


def _map_command(files: Files, command: str) -> None:
    reply = _ask(files.admin_sock, command).strip()
    if reply and reply != "Done.":
        raise EndpointError(f"HAProxy's runtime API refused a map change: {reply.splitlines()[0]}")


def add_map(files: Files, map_path: Path, key: str, value: str) -> None:
    """Add (or replace) ``key`` in the running HAProxy's map, without a reload."""
    check_word("map key", key)
    check_word("map value", value)
    with contextlib.suppress(EndpointError):
        _map_command(files, f"del map {map_path} {key}")
    _map_command(files, f"add map {map_path} {key} {value}")


def old_workers(text: str) -> list[int]:
    """The pids under ``# old workers`` in the master CLI's ``show proc``."""
    pids, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            inside = line.strip() == "# old workers"
        elif inside and line.split() and line.split()[0].isdigit():
            pids.append(int(line.split()[0]))
    return pids


def del_map(files: Files, map_path: Path, key: str) -> None:
    """Remove ``key`` from the running HAProxy's map (gone for the next
    request), in old workers still draining after a reload too (their kept-alive
    connections would take one more request)."""
    check_word("map key", key)
    reply = _ask(files.admin_sock, f"del map {map_path} {key}").strip()
    if reply and reply != "Done." and "not found" not in reply.lower():
        raise EndpointError(f"HAProxy's runtime API refused a map change: {reply.splitlines()[0]}")
    try:
        draining = old_workers(_ask(files.master_sock, "show proc", timeout=1.0))
    except EndpointError:
        draining = []
    for pid in draining:
        with contextlib.suppress(EndpointError):
            _ask(files.master_sock, f"@!{pid} del map {map_path} {key}", timeout=1.0)
