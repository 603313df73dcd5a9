"""Local TCP ports forwarded to the host's loopback through SSH.

``serve`` listens on 127.0.0.1 ports of this machine and carries each
connection over a direct-tcpip channel to a port on the host, found anew for
every connection (a release switch moves the feature server to the other
port). ``featctl ui`` runs it in the foreground; ``featctl connect`` runs it as
a background process (``python -m featctl.remote.forward WORKSPACE``) that
reads ``connect.json`` in the workspace, reconnects when SSH drops and exits on
SIGTERM or when ``connect --stop`` removes its record. Nothing listens beyond
this machine's loopback, and a connection from another account of this
machine is closed before anything is forwarded (``peer_uid``): the forwards
reach the deployment's registry, offline and feature servers, which take
writes without a credential of their own.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from featctl.errors import UsageError

RECORD = "connect.json"


def pipe(client: socket.socket, chan: Any) -> None:
    """Copy bytes both ways until either side closes."""
    try:
        while True:
            readable, _, _ = select.select([client, chan], [], [], 60)
            if not readable:
                continue
            if client in readable:
                data = client.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in readable:
                data = chan.recv(65536)
                if not data:
                    break
                client.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            chan.close()
        with contextlib.suppress(OSError):
            client.close()


def _tcp_hex(addr: tuple[str, int]) -> str:
    """An IPv4 address as /proc/net/tcp writes it (little-endian hex:port)."""
    packed = socket.inet_aton(addr[0])
    return f"{int.from_bytes(packed, 'little'):08X}:{addr[1]:04X}"


def _tcp6_hex(addr: tuple[str, int]) -> str:
    """The same IPv4 address as /proc/net/tcp6 writes it for a dual-stack socket
    (``::ffff:a.b.c.d``, four little-endian words): how gRPC's clients connect."""
    packed = b"\0" * 10 + b"\xff\xff" + socket.inet_aton(addr[0])
    words = "".join(f"{int.from_bytes(packed[i:i + 4], 'little'):08X}" for i in range(0, 16, 4))
    return f"{words}:{addr[1]:04X}"


TABLES = (("/proc/net/tcp", _tcp_hex), ("/proc/net/tcp6", _tcp6_hex))


def peer_uid(client: socket.socket, tables: tuple[tuple[str, Callable[[tuple[str, int]], str]], ...] = TABLES) -> int | None:
    """The uid of the process that opened the loopback TCP connection ``client``
    (accepted here): its end of the connection is the row of /proc/net/tcp (or of
    /proc/net/tcp6, where the peer's socket is dual-stack, as gRPC's are) whose
    local address is our peer and whose remote address is us. None when it cannot
    be told (not Linux, a row gone because the peer closed)."""
    try:
        peer, me = client.getpeername(), client.getsockname()
    except OSError:
        return None
    for table, fmt in tables:
        want_local, want_remote = fmt(peer), fmt(me)
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    cols = line.split()
                    if len(cols) > 7 and cols[1] == want_local and cols[2] == want_remote:
                        return int(cols[7])
        except (OSError, ValueError):
            continue
    return None


def same_user(client: socket.socket) -> bool:
    """Whether the connection comes from this account (fails closed on Linux;
    elsewhere, where /proc/net/tcp does not exist, the loopback bind is all)."""
    if not os.path.exists("/proc/net/tcp"):
        return True
    return peer_uid(client) == os.geteuid()


def listen(port: int) -> socket.socket:
    """A listening socket on this machine's 127.0.0.1 (port 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"local port {port} is not free ({exc.strerror}); choose another with --port") from None
    sock.listen(64)
    return sock


def serve(
    open_channel: Callable[[int], Any],
    listeners: Mapping[socket.socket, Callable[[], int]],
    stop: threading.Event,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Accept on every listener until ``stop`` is set or ``alive()`` turns false;
    each connection goes to ``open_channel(remote_port())``."""
    socks = list(listeners)
    while not stop.is_set() and alive():
        readable, _, _ = select.select(socks, [], [], 0.5)
        for sock in readable:
            try:
                client, _ = sock.accept()
            except OSError:
                continue
            if not same_user(client):
                client.close()  # another local account: nothing is forwarded
                continue
            try:
                chan = open_channel(listeners[sock]())
            except Exception:
                client.close()
                continue
            threading.Thread(target=pipe, args=(client, chan), daemon=True).start()


# --- the background process of `featctl connect` -------------------------------------------


def _still_up(conn: Any, mine: Callable[[], bool]) -> bool:
    try:
        return bool(conn.transport.is_active()) and mine()
    except Exception:
        return False


def _remote_port(workspace: Path, name: str) -> int:
    """The host port of ``name`` now: the serving release's feature server, or a
    service's fixed port (read from the record for every connection)."""
    record = json.loads((workspace / "deployment.json").read_text())
    if name == "online":
        return int(record["server_port"])
    return int(record["services"][name])


def _run(workspace: Path) -> int:
    from featctl.remote.ssh import connect, endpoint_for
    from featctl.workspace import Workspace

    ws = Workspace(workspace)
    info = json.loads((workspace / RECORD).read_text())
    listeners: dict[socket.socket, Callable[[], int]] = {}
    for name, port in info["forwards"].items():
        listeners[listen(int(port))] = functools.partial(_remote_port, workspace, name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def mine() -> bool:
        try:
            return int(json.loads((workspace / RECORD).read_text()).get("pid", 0)) == os.getpid()
        except (OSError, ValueError):
            return False

    backoff = 1.0
    while not stop.is_set() and mine():
        record = ws.load()
        if record is None or not record.host:
            return 1
        try:
            conn = connect(endpoint_for(ws, record))
        except Exception:
            time.sleep(backoff)
            backoff = min(30.0, backoff * 2)
            continue
        backoff = 1.0
        try:
            serve(
                conn.open_server,
                listeners,
                stop,
                alive=functools.partial(_still_up, conn, mine),
            )
        except Exception:
            pass
        finally:
            conn.close()
    for sock in listeners:
        sock.close()
    return 0


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m featctl.remote.forward WORKSPACE\n")
        sys.exit(2)
    try:
        sys.exit(_run(Path(sys.argv[1])))
    except Exception:
        sys.exit(1)


if __name__ == "__main__":
    main()
