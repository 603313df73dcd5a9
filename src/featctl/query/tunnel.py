"""featctl's tunnel process: one SSH connection kept open per workspace, so a
query needs neither paramiko's import nor an SSH handshake.

The process listens on ``<workspace>/tunnel.sock`` (a Unix socket, 0600, in the
0700 workspace: only the user who holds the keys can use it). A client sends
the server's socket name (its port, or ``<port>-batch``) on one line, then
speaks HTTP; the process carries the bytes over a streamlocal channel to that
server's Unix socket on the host (``run/s/<name>``), exactly as a direct query
would. Nothing listens on the network. It exits after
``IDLE_SECONDS`` without connections, when the SSH connection drops, on
SIGTERM, and when the deployment is destroyed.

Run as ``python -m featctl.query.tunnel WORKSPACE``; started in the background
by the first query that finds none running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

IDLE_SECONDS = 900.0
SOCKET = "tunnel.sock"
PIDFILE = "tunnel.pid"


INFO = "tunnel.json"


def _names(index: int) -> tuple[str, str, str]:
    """(socket, pid file, info file) of the tunnel to host ``index`` (host 0's
    keep the names of a one-host deployment)."""
    if index == 0:
        return SOCKET, PIDFILE, INFO
    return f"tunnel-{index}.sock", f"tunnel-{index}.pid", f"tunnel-{index}.json"


def socket_path(workspace: Path, index: int = 0) -> Path:
    return workspace / _names(index)[0]


def available(workspace: Path, index: int = 0) -> str | None:
    """The socket path when a tunnel process to host ``index`` answers there, else None.

    A tunnel whose SSH connection was verified against a host key that is no
    longer the pinned one is stopped, so the next connection meets the pin.
    """
    path = socket_path(workspace, index)
    if not path.exists():
        return None
    import json

    try:
        info = json.loads((workspace / _names(index)[2]).read_text())
        from featctl.remote.keys import pinned_key

        pinned = pinned_key(workspace / "known_hosts", str(info["host"]), int(info["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        pinned, info = None, {}
    if pinned is None or pinned != info.get("host_key"):
        stop(workspace, index)
        return None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return None
    finally:
        probe.close()
    return str(path)


def start_background(workspace: Path, index: int = 0) -> None:
    """Start a tunnel process to host ``index`` unless one runs (never waits for it)."""
    if available(workspace, index) is not None:
        return
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "featctl.query.tunnel", str(workspace), str(index)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )


def stop(workspace: Path, index: int | None = None) -> None:
    """Stop the tunnel to host ``index`` (None: to every host)."""
    if index is None:
        indexes = {0} | {
            int(p.stem.split("-")[1]) for p in workspace.glob("tunnel-*.pid") if p.stem.split("-")[1].isdigit()
        }
        for i in sorted(indexes):
            stop(workspace, i)
        return
    sock, pidname, info = _names(index)
    pidfile = workspace / pidname
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
    for name in (pidname, sock, info):
        with contextlib.suppress(FileNotFoundError):
            (workspace / name).unlink()


def _stop_strays(workspace: Path) -> None:
    """Tunnel processes of ``workspace`` that lost a start race (their socket was
    replaced): found by command line, so none outlives the deployment."""
    me = str(os.getpid())
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name != me and b"featctl.query.tunnel" in argv and str(workspace).encode() in argv:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(proc.name), signal.SIGTERM)


def _serve(workspace: Path, index: int = 0) -> int:
    from featctl.remote.forward import pipe
    from featctl.remote.layout import SOCKET_NAME
    from featctl.remote.ssh import connect, endpoint_for
    from featctl.workspace import Workspace

    ws = Workspace(workspace)
    record = ws.load()
    if record is None or not record.host or index >= record.host_count:
        return 1
    record = record.for_host(index)
    sock_name, pid_name, info_name = _names(index)
    conn = connect(endpoint_for(ws, record))
    path = socket_path(workspace, index)
    tmp = workspace / f".{sock_name}.{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(tmp))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    import json

    from featctl.workspace import write_private

    server_key = conn.transport.get_remote_server_key()
    write_private(
        workspace / info_name,
        json.dumps(
            {
                "host": record.host,
                "port": int(record.port),
                "host_key": f"{server_key.get_name()} {server_key.get_base64()}",
            }
        ),
    )
    write_private(workspace / pid_name, f"{os.getpid()}\n")
    # Published last, so a client never sees the socket without its host key record.
    os.replace(tmp, path)  # a competing tunnel's socket is replaced atomically
    mine = os.stat(path).st_ino
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    last = time.monotonic()
    listener.settimeout(1.0)
    try:
        while not stopping.is_set():
            if time.monotonic() - last > IDLE_SECONDS or not conn.transport.is_active():
                break
            try:
                if os.stat(path).st_ino != mine:
                    break  # another tunnel took over the socket: this one is no longer reachable
            except FileNotFoundError:
                break
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            last = time.monotonic()
            client.settimeout(10)
            try:
                line = b""
                while not line.endswith(b"\n") and len(line) < 24:
                    chunk = client.recv(1)
                    if not chunk:
                        break
                    line += chunk
                name = line.strip().decode()
                if not SOCKET_NAME.fullmatch(name):
                    raise ValueError(name)
                chan = conn.open_server(name)
            except Exception:
                client.close()
                continue
            client.settimeout(None)
            threading.Thread(target=pipe, args=(client, chan), daemon=True).start()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            if path.exists() and (workspace / pid_name).read_text().strip() == str(os.getpid()):
                for name in (sock_name, pid_name, info_name):
                    with contextlib.suppress(FileNotFoundError):
                        (workspace / name).unlink()
        conn.close()
    return 0


def main() -> None:
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and not sys.argv[2].isdigit()):
        sys.stderr.write("usage: python -m featctl.query.tunnel WORKSPACE [HOST_INDEX]\n")
        sys.exit(2)
    try:
        sys.exit(_serve(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 0))
    except Exception:
        sys.exit(1)


if __name__ == "__main__":
    main()
