"""Another account on this machine, as a test plays it: a throwaway user that
tries every listener of a deployment (TCP ports of its processes and stores,
the Unix sockets of its servers and of featctl's tunnel) with a read and a
write, and reports what answered.

The probes run in a separate ``python3`` process under the other user's uid
and gid (``runuser`` would need a shell and PAM); they send one HTTP read
(``GET /health``, ``POST /get-online-features``), one write (``POST /push``
with a value no test expects) and, for TLS listeners, the same inside TLS
without a credential. A listener passes when nothing it sends back is an HTTP
2xx answer and no Redis or PostgreSQL command runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PUSH = json.dumps(
    {
        "push_source_name": "driver_stats_push_source",
        "df": {"driver_id": [1005], "event_timestamp": ["2026-12-07T00:00:00"], "conv_rate": [42.0], "acc_rate": [42.0]},
        "to": "online",
    }
)

_PROBE = r"""
import json, socket, ssl, sys

PUSH = sys.argv[2]

def http(method, path, body=""):
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()

def exchange(make, payload):
    try:
        sock = make()
    except OSError as exc:
        return {"connected": False, "error": type(exc).__name__}
    try:
        sock.settimeout(3)
        sock.sendall(payload)
        data = b""
        while len(data) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return {"connected": True, "answer": data[:300].decode(errors="replace")}
    except (OSError, ssl.SSLError) as exc:
        return {"connected": True, "error": type(exc).__name__}
    finally:
        sock.close()

def tcp(host, port):
    return lambda: socket.create_connection((host, port), timeout=3)

def tls(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return lambda: ctx.wrap_socket(socket.create_connection((host, port), timeout=3))

def unix(path):
    def make():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(path)
        return s
    return make

from concurrent.futures import ThreadPoolExecutor

jobs = []
for kind, where in json.loads(sys.argv[1]):
    makers = [tcp(*where), tls(*where)] if kind == "tcp" else [unix(where)]
    for make in makers:
        for payload in (http("GET", "/health"), http("POST", "/get-online-features", "{}"),
                        http("POST", "/push", PUSH), b"PING\r\n", b"*1\r\n$8\r\nFLUSHALL\r\n"):
            jobs.append((kind, where, make, payload))
with ThreadPoolExecutor(16) as pool:
    out = list(pool.map(lambda j: {"kind": j[0], "where": j[1], "sent": j[3][:30].decode(errors="replace"),
                                   **exchange(j[2], j[3])}, jobs))
print(json.dumps(out))
"""


@contextlib.contextmanager
def local_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway system account (no home, no shell), removed afterwards."""
    name = "fctl-" + secrets.token_hex(3)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def probe_as(user: pwd.struct_passwd, targets: list[tuple[str, object]]) -> list[dict]:
    """Run the probes as ``user``; one result per (listener, wrapping, payload)."""

    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    res = subprocess.run(
        ["/usr/bin/python3", "-c", _PROBE, json.dumps(targets), PUSH],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=drop,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def answered(result: dict) -> bool:
    """Whether a probe got through: an HTTP 2xx, a Redis reply, a PostgreSQL
    query result (a listener that only asks for a credential does not count)."""
    answer = result.get("answer", "")
    first = answer.splitlines()[0] if answer else ""
    return (
        first.startswith(("HTTP/1.1 2", "HTTP/1.0 2"))
        or first.startswith(("+PONG", "+OK"))
        or (first.startswith("$") and "PING" not in result["sent"])
    )


def _inodes_of(pids: set[int]) -> set[str]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        found.add(link[8:-1])
    return found


def processes_of(paths: list[Path]) -> set[int]:
    """Pids whose command line or working directory names one of ``paths``."""
    wanted = [str(p) for p in paths]
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if any(w in argv or cwd.startswith(w) for w in wanted):
            pids.add(int(entry))
    return pids


def tcp_listeners(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the processes hold."""
    import ipaddress

    inodes = _inodes_of(pids)
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh, None)
            for line in fh:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:
                    continue
                hexaddr, hexport = cols[1].split(":")
                raw = bytes.fromhex(hexaddr)
                if v6:
                    addr = str(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))
                    addr = "::1" if addr == "::1" else addr.removeprefix("::ffff:")
                else:
                    addr = str(ipaddress.IPv4Address(raw[::-1]))
                out.append((addr if addr not in ("0.0.0.0", "::") else "127.0.0.1", int(hexport, 16)))
    return sorted(set(out))


def unix_sockets(roots: list[Path]) -> list[str]:
    """Every Unix socket file under ``roots``."""
    import stat

    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
    return sorted(found)


if __name__ == "__main__":  # by hand: python -m tests.integration.intruder WORKSPACE...
    roots = [Path(p).resolve() for p in sys.argv[1:]]
    pids = processes_of(roots)
    targets: list[tuple[str, object]] = [("tcp", list(t)) for t in tcp_listeners(pids)]
    targets += [("unix", s) for s in unix_sockets(roots)]
    with local_user() as user:
        for r in probe_as(user, targets):
            print(("ANSWERED " if answered(r) else "refused  ") + json.dumps(r)[:220])
