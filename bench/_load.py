"""A small HTTP/1.1 load generator for loopback benchmarks (standard library only).

Raw sockets, one pre-built request, responses framed by Content-Length (the Feast
feature server always sends it). Every loop is bounded in count and in time, and
only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from _common import LOOPBACK


def build_request(port: int, path: str, body: Any, *, keep_alive: bool = True) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n" + ("" if keep_alive else "Connection: close\r\n") + "\r\n"
    )
    return head.encode() + payload


class _Parser:
    """Incremental response framing: feed bytes, get (status, body) when complete."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> tuple[int, bytes] | None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        total = end + 4 + length
        if len(self.buf) < total:
            return None
        status = int(head.split(b" ", 2)[1])
        body = self.buf[end + 4 : total]
        self.buf = self.buf[total:]
        return status, body


def _connect(port: int) -> socket.socket:
    s = socket.create_connection((LOOPBACK, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_once(port: int, req: bytes) -> tuple[int, bytes]:
    with _connect(port) as s:
        s.sendall(req)
        p = _Parser()
        while True:
            data = s.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the response was complete")
            got = p.feed(data)
            if got:
                return got


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def sequential(port: int, req: bytes, n: int, *, warmup: int = 200, keep_alive: bool = True,
               max_seconds: float = 120.0) -> Result:
    """n requests one after another; keep-alive on one connection, or a new connection each."""
    res = Result()
    sock: socket.socket | None = None
    parser = _Parser()
    deadline = time.monotonic() + max_seconds
    t_start = time.perf_counter()
    for i in range(warmup + n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        try:
            if sock is None:
                sock = _connect(port)
                parser = _Parser()
            sock.sendall(req)
            got = None
            while got is None:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                got = parser.feed(data)
            status, body = got
            if not keep_alive:
                sock.close()
                sock = None
            dt = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            if i == warmup:
                t_start = time.perf_counter() - dt
            if i >= warmup:
                res.latencies.append(dt)
        except Exception as exc:
            if sock is not None:
                sock.close()
                sock = None
                res.reconnects += 1
            if i >= warmup:
                res.errors += 1
            res.first_error = res.first_error or f"{type(exc).__name__}: {exc}"
    res.seconds = time.perf_counter() - t_start
    if sock is not None:
        sock.close()
    return res


def concurrent(port: int, req: bytes, *, clients: int = 8, seconds: float = 10.0, warmup_seconds: float = 1.0,
               max_requests: int = 2_000_000) -> Result:
    """`clients` keep-alive connections, each with one request in flight, for a fixed duration.

    One selector loop drives all connections (closed loop: a client sends its next
    request as soon as it has the previous response). Requests completing during
    the first `warmup_seconds` are not counted.
    """
    sel = selectors.DefaultSelector()
    res = Result()
    state: dict[socket.socket, list[Any]] = {}

    def open_one() -> None:
        s = _connect(port)
        s.setblocking(False)
        state[s] = [_Parser(), time.perf_counter()]
        s.send(req)  # tiny request: fits the socket buffer
        sel.register(s, selectors.EVENT_READ)

    for _ in range(clients):
        open_one()
    t0 = time.perf_counter()
    count_from = t0 + warmup_seconds
    end = count_from + seconds
    done = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= end or done >= max_requests:
                break
            for key, _ in sel.select(timeout=min(1.0, end - now)):
                s = key.fileobj
                st = state[s]
                try:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionError("server closed the connection")
                    got = st[0].feed(data)
                    if got is None:
                        continue
                    t = time.perf_counter()
                    status, body = got
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
                    if st[1] >= count_from and t <= end:
                        res.latencies.append(t - st[1])
                        done += 1
                    st[1] = time.perf_counter()
                    s.send(req)
                except Exception as exc:
                    res.errors += 1
                    res.first_error = res.first_error or f"{type(exc).__name__}: {exc}"
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    res.reconnects += 1
                    if time.perf_counter() < end:
                        open_one()
        res.seconds = min(time.perf_counter(), end) - count_from
    finally:
        for s in list(state):
            sel.unregister(s)
            s.close()
        sel.close()
    return res


class LatencyProbe(threading.Thread):
    """Sequential /get-online-features requests (one connection) while something else runs."""

    def __init__(self, port: int, view: str = "driver_hourly_stats") -> None:
        super().__init__(daemon=True)
        self.port = port
        self.req = build_request(port, "/get-online-features", {
            "features": [f"{view}:conv_rate", f"{view}:acc_rate"], "entities": {"driver_id": [1, 2]}})
        self.lat: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.stop_evt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop_evt.is_set() and time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                status, body = request_once(self.port, self.req)
                if status == 200:
                    self.lat.append(time.perf_counter() - t)
                else:
                    self.errors += 1
                    key = f"HTTP {status}: {body[:160].decode(errors='replace')}"
                    self.error_kinds[key] = self.error_kinds.get(key, 0) + 1
            except Exception as exc:  # noqa: BLE001
                self.errors += 1
                key = f"{type(exc).__name__}: {str(exc)[:120]}"
                self.error_kinds[key] = self.error_kinds.get(key, 0) + 1
            self.stop_evt.wait(0.05)
