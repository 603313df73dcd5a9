"""The application endpoint's HAProxy on a host (the vm and yandex targets;
stdlib only).

On those targets every host runs its own HAProxy in front of its own feature
server: TLS with the deployment's certificate, bearer tokens, the paths and
body limits of ``provision/haproxy_cfg.py``. featctl renders its haproxy.cfg
on the operator's machine and hands the files over on stdin; this module only
writes them, checks them with ``haproxy -c`` and runs HAProxy. In front of the
hosts is the cloud's network load balancer (yandex) or, on the vm target,
featctl's TCP balancer on the operator's machine, which plays it.

Files, in ``<base>/run/endpoint/`` (0700, each file 0600): haproxy.cfg,
edge.pem (certificate and key), ca.pem (the deployment's CA, which the
hosts' HAProxy check each other's certificates with), tokens.map, master.sock, admin.sock,
haproxy.pid, haproxy.log. HAProxy runs as the agent's own user, in
master-worker mode, as the systemd unit ``featctl-<h>-endpoint`` where
systemd runs the host (Debian's own haproxy.service stays disabled, as the
user-data leaves it), else under featctl's supervisor. A reload is the master
CLI's ``reload``: the new worker takes over the listening sockets and the old
one finishes its requests.

Commands: ``edge-apply`` (files on stdin as JSON, start or hitless reload),
``edge-map`` (add or delete one token hash in the running worker and, for a
delete, in old workers still draining), ``edge-stat`` (the runtime API's
``show stat`` of the ``reads`` backend), ``edge-stop`` (stop it, remove the
directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

from . import units
from .common import write
from .output import AgentError, InputError

FILES = ("haproxy.cfg", "edge.pem", "ca.pem", "tokens.map")


def directory(base: str) -> str:
    return os.path.join(base, "run", "endpoint")


def _path(base: str, name: str) -> str:
    return os.path.join(directory(base), name)


def _binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise AgentError("haproxy is not installed on this host (the user-data installs it: apt-get install haproxy)")
    return found


def ask(sock: str, command: str, timeout: float = 2.0) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    finally:
        s.close()


def running(base: str) -> bool:
    try:
        return "Pid:" in ask(_path(base, "admin.sock"), "show info", timeout=1.0)
    except OSError:
        return False


def _reloads(base: str) -> tuple[int, int] | None:
    """(reloads, failed reloads) from the master CLI's ``show proc``."""
    try:
        text = ask(_path(base, "master.sock"), "show proc", timeout=1.0)
    except OSError:
        return None
    master = re.search(r"^\d+\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?", text, re.M)
    return None if master is None else (int(master.group(1)), int(master.group(2) or 0))


def _wait(ready: object, seconds: float, what: str, log: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        time.sleep(0.05)
    tail = ""
    with contextlib.suppress(OSError), open(log, errors="replace") as fh:
        tail = " | ".join(ln.strip() for ln in fh.read().splitlines()[-3:] if ln.strip())
    raise AgentError(f"HAProxy did not {what} within {seconds:.0f} s" + (f": {tail[-300:]}" if tail else ""))


def _argv(base: str) -> list[str]:
    return [
        _binary(),
        "-W",
        "-f",
        _path(base, "haproxy.cfg"),
        "-S",
        f"{_path(base, 'master.sock')},mode,600",
        "-p",
        _path(base, "haproxy.pid"),
    ]


def _start(base: str) -> str:
    log = _path(base, "haproxy.log")
    with open(log, "a"):
        pass
    os.chmod(log, 0o600)
    if units.available():
        unit = units.name(base, "endpoint")
        text = units.service_text(
            f"featctl application endpoint (HAProxy, {base})",
            directory(base),
            _argv(base),
            log=log,
            env_file="/dev/null",
        )
        units.install({f"{unit}.service": text})
        units.start(unit)
        manager = "systemd"
    else:
        pidfile = _path(base, "supervise.pid")
        argv = [sys.executable, "-m", f"{__package__}.supervise", "--pidfile", pidfile, "--log", log]
        argv += ["--cwd", directory(base), "--keep", base, "--", *_argv(base)]
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        manager = "supervise"
    _wait(lambda: running(base), 15.0, "start", log)
    return manager


def stop(base: str) -> bool:
    """Stop this host's endpoint HAProxy (unit or supervisor); True if one ran."""
    was = units.available() and units.remove([units.name(base, "endpoint")])
    for name in ("supervise.pid", "haproxy.pid"):
        with contextlib.suppress(OSError, ValueError):
            with open(_path(base, name)) as fh:
                pid = int(fh.read().strip())
            os.kill(pid, 15)
            was = True
    deadline = time.monotonic() + 10
    while running(base) and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(was)


def cmd_edge_apply(args: argparse.Namespace) -> dict[str, object]:
    """Write the files read from stdin (``{"haproxy.cfg": ..., "edge.pem": ..., "tokens.map": ...}``),
    check the configuration, then start HAProxy or reload it when something changed."""
    try:
        files = json.load(sys.stdin)
    except ValueError as exc:
        raise InputError(f"edge-apply: stdin is not JSON ({exc})") from None
    if (
        not isinstance(files, dict)
        or sorted(files) != sorted(FILES)
        or not all(isinstance(v, str) for v in files.values())
    ):
        raise InputError(f"edge-apply: stdin must hold exactly {', '.join(FILES)}")
    root = directory(args.base)
    os.makedirs(root, mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    old_umask = os.umask(0o077)
    try:
        before = {}
        for name in FILES:
            with contextlib.suppress(OSError), open(_path(args.base, name)) as fh:
                before[name] = fh.read()
        staged = _path(args.base, ".haproxy.cfg.new")
        write(staged, files["haproxy.cfg"])
        for name in ("edge.pem", "ca.pem", "tokens.map"):
            write(_path(args.base, name), files[name])
        check = subprocess.run(
            [_binary(), "-c", "-q", "-f", staged], capture_output=True, text=True, timeout=60, check=False
        )
        if check.returncode != 0:
            os.unlink(staged)
            lines = [ln for ln in (check.stderr or check.stdout).splitlines() if "ALERT" in ln] or [
                check.stderr.strip()
            ]
            raise AgentError(f"HAProxy refused the endpoint's configuration: {lines[0][-300:]}")
        os.replace(staged, _path(args.base, "haproxy.cfg"))
    finally:
        os.umask(old_umask)
    if not running(args.base):
        stop(args.base)  # whatever is left of an earlier run
        return {"started": True, "manager": _start(args.base)}
    if before == files:
        return {"started": False, "reloaded": False}
    prior = _reloads(args.base)
    with contextlib.suppress(OSError):
        ask(_path(args.base, "master.sock"), "reload", timeout=2.0)
    log = _path(args.base, "haproxy.log")

    def loaded() -> bool:
        now = _reloads(args.base)
        return prior is None or (now is not None and now[0] > prior[0] and running(args.base))

    _wait(loaded, 15.0, "reload", log)
    now = _reloads(args.base)
    if prior is not None and now is not None and now[1] > prior[1]:
        raise AgentError("HAProxy could not load the new configuration and keeps serving the old one")
    return {"started": False, "reloaded": True}


def _old_workers(base: str) -> list[int]:
    try:
        text = ask(_path(base, "master.sock"), "show proc", timeout=1.0)
    except OSError:
        return []
    pids, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            inside = line.strip() == "# old workers"
        elif inside and line.split() and line.split()[0].isdigit():
            pids.append(int(line.split()[0]))
    return pids


def cmd_edge_map(args: argparse.Namespace) -> dict[str, object]:
    """tokens.map as read from stdin (what a restart loads), then ``--add KEY
    VALUE`` and ``--del KEY`` in the running HAProxy (no reload)."""
    for word in [*(args.add or []), *([args.delete] if args.delete else [])]:
        if not word or any(c.isspace() for c in word):
            raise InputError(f"edge-map: {word!r} is not one word")
    text = sys.stdin.read()
    if any(len(line.split()) != 2 for line in text.splitlines()):
        raise InputError("edge-map: stdin must be tokens.map (one 'hash value' per line)")
    admin, mapfile = _path(args.base, "admin.sock"), _path(args.base, "tokens.map")
    if os.path.isdir(directory(args.base)):
        old_umask = os.umask(0o077)
        try:
            write(mapfile, text)
        finally:
            os.umask(old_umask)
    if not running(args.base):
        return {"running": False}
    if args.add:
        key, value = args.add
        ask(admin, f"del map {mapfile} {key}")
        reply = ask(admin, f"add map {mapfile} {key} {value}").strip()
        if reply and reply != "Done.":
            raise AgentError(f"HAProxy's runtime API refused a map change: {reply.splitlines()[0]}")
    if args.delete:
        reply = ask(admin, f"del map {mapfile} {args.delete}").strip()
        if reply and reply != "Done." and "not found" not in reply.lower():
            raise AgentError(f"HAProxy's runtime API refused a map change: {reply.splitlines()[0]}")
        for pid in _old_workers(args.base):
            with contextlib.suppress(OSError):
                ask(_path(args.base, "master.sock"), f"@!{pid} del map {mapfile} {args.delete}", timeout=1.0)
    return {"running": True}


def cmd_edge_stat(args: argparse.Namespace) -> dict[str, object]:
    if not running(args.base):
        return {"running": False, "stat": ""}
    return {"running": True, "stat": ask(_path(args.base, "admin.sock"), "show stat")}


def cmd_edge_stop(args: argparse.Namespace) -> dict[str, object]:
    was = stop(args.base)
    shutil.rmtree(directory(args.base), ignore_errors=True)
    return {"stopped": was}
