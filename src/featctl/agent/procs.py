"""Which processes belong to the deployment, and who holds a server's Unix
socket (stdlib only, Linux /proc).

A process belongs to the deployment when its working directory is inside the
deployment directory or an argument of its command line names a path inside
it: every server featctl starts runs in its release directory, and every
supervisor and agent command names the base directory. The agent's own
process and its ancestors (the SSH session that runs it) are never counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import time
from typing import Any

from . import units
from .common import alive, pgid_alive
from .output import InputError


def _ancestors() -> set[int]:
    out = set()
    pid = os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base + "/")


def _info(pid: int) -> dict[str, Any] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = ""
    return {
        "pid": pid,
        "state": fields[0],
        "ppid": int(fields[1]),
        "pgid": int(fields[2]),
        "cwd": cwd,
        "argv": argv,
        "cmd": " ".join(argv)[:300],
    }


def deployment_processes(base: str) -> list[dict[str, Any]]:
    """Every live process of the deployment under ``base`` (not zombies, not us)."""
    base = os.path.realpath(base)
    skip = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        info = _info(int(entry))
        if info is None or info["state"] == "Z":
            continue
        if _inside(info["cwd"], base) or any(_inside(a, base) for a in info["argv"]):
            release = None
            rel = os.path.relpath(info["cwd"], base) if _inside(info["cwd"], base) else ""
            parts = rel.split("/")
            if len(parts) >= 2 and parts[0] == "releases":
                release = parts[1]
            found.append({"pid": info["pid"], "pgid": info["pgid"], "release": release, "cmd": info["cmd"]})
    return found


def _listening_unix_inodes(path: str) -> set[str]:
    """Inodes of the Unix sockets listening at ``path`` (/proc/net/unix: flag
    __SO_ACCEPTCON, 0x10000, marks a listener)."""
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/net/unix") as fh:
        next(fh, None)
        for line in fh:
            cols = line.split(None, 7)
            if len(cols) == 8 and cols[7].rstrip("\n") == path and int(cols[3], 16) & 0x10000:
                inodes.add(cols[6])
    return inodes


def socket_holders(path: str) -> tuple[bool, list[int]]:
    """(is a server listening at the Unix socket ``path``, pids holding it that we can see)."""
    inodes = _listening_unix_inodes(path)
    if not inodes:
        return False, []
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                        pids.append(int(entry))
                        break
    return True, sorted(pids)


def socket_dir(base: str) -> str:
    """``run/s`` under ``base``, 0700 and ours: every server's socket lives there."""
    path = os.path.join(base, "run", "s")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
        raise InputError(f"{path} is not a directory of this user; remove it and deploy again")
    os.chmod(path, 0o700)
    return path


#: sun_path holds 108 bytes with its terminating NUL.
SOCKET_PATH_MAX = 107


def kill_groups(pgids: set[int], timeout: float = 15.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(pgid_alive(g) for g in pgids):
            time.sleep(0.1)
        if not any(pgid_alive(g) for g in pgids):
            return


def cmd_procs(args: argparse.Namespace) -> dict[str, Any]:
    """List the deployment's processes; with --kill stop them all (by process group)."""
    if args.kill and units.installed(args.base):
        # systemd would start them again: their units go first.
        units.remove(units.installed(args.base))
    if args.kill:
        from . import keeper

        keeper.stop(args.base)  # it would start the supervisors again
    procs = deployment_processes(args.base)
    if not args.kill or not procs:
        return {"processes": procs}
    # Whole process groups only where the group's leader is the deployment's own
    # (a server, a supervisor): a stray process in somebody's shell job must not
    # take that shell with it.
    pids = {p["pid"] for p in procs}
    kill_groups({p["pgid"] for p in procs if p["pgid"] in pids and p["pgid"] > 1})
    for p in deployment_processes(args.base):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p["pid"], signal.SIGTERM)
    time.sleep(0.5)
    for p in deployment_processes(args.base):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p["pid"], signal.SIGKILL)
    time.sleep(0.2)
    return {"killed": len(procs), "processes": deployment_processes(args.base)}


def cmd_free_port(args: argparse.Namespace) -> dict[str, Any]:
    """Make server ``--port``'s Unix socket (``run/s/<port>``) free for a new
    server of this deployment.

    A server of this deployment holding it (an orphan of a killed supervisor, a
    release that was never stopped) is stopped; anything else is reported and
    left alone. A socket file nobody listens on is removed (a killed server
    leaves it, and a server cannot bind over it).
    """
    if not re.fullmatch(r"[0-9]{1,5}(-batch)?", str(args.port)):
        raise InputError(f"--port {args.port!r}: a port, or <port>-batch")
    path = os.path.join(socket_dir(args.base), str(args.port))
    if len(path.encode()) > SOCKET_PATH_MAX:
        raise InputError(
            f"the server socket path {path} is {len(path.encode())} bytes, longer than Unix sockets allow "
            f"({SOCKET_PATH_MAX}); use a shorter workspace or remote_base_dir"
        )
    busy, pids = socket_holders(path)
    if busy:
        ours = {p["pid"]: p for p in deployment_processes(args.base)}
        if not pids or any(pid not in ours for pid in pids):
            foreign = [pid for pid in pids if pid not in ours]
            return {"free": False, "owner": foreign[0] if foreign else None}
        releases = sorted({ours[pid]["release"] for pid in pids if ours[pid]["release"]})
        # Its supervisor (or systemd unit) first, if it still runs (it would start the server again).
        for rid in releases:
            units.stop_release(args.base, rid)
            meta = os.path.join(args.base, "releases", rid, ".featctl")
            if os.path.isdir(meta):
                from . import keeper

                with keeper.keep_lock(meta):
                    keeper.forget(meta)  # the keeper must not start them again
        for p in ours.values():
            if p["release"] in releases and "featctl_agent.supervise" in p["cmd"]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p["pid"], signal.SIGKILL)
        kill_groups({ours[pid]["pgid"] for pid in pids if ours[pid]["pgid"] in ours})
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while socket_holders(path)[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        if socket_holders(path)[0]:
            raise InputError(f"{path} is still held after stopping this deployment's old server")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if not busy:
        return {"free": True}
    return {"free": True, "stopped": {"pids": pids, "releases": releases}}


def group_alive(pid_text: str) -> bool:
    """Whether the process group led by the pid in ``pid_text`` has a live member."""
    return pid_text.isdigit() and (alive(pid_text) or pgid_alive(int(pid_text)))
