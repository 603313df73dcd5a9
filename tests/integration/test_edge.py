"""The application endpoint with the real HAProxy, from featctl's library
(lifecycle/endpoint.py, lifecycle/tokens.py), in front of two boundary fakes of
Feast's feature server on Unix sockets (edge_backend.py).

The application side is a network namespace (a veth pair, 198.18.207.0/30):
this side is 198.18.207.1, where HAProxy listens, the namespace 198.18.207.2.
At first only 198.18.207.1/32 may connect (the test process itself: a local
connection's source is the address it connects to), so the namespace is a
source outside ``allow``; the reload test then allows the /30.

Needs root (ip netns) and haproxy on PATH. About a minute.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featctl.config import load_settings
from featctl.errors import UsageError
from featctl.lifecycle import endpoint, tokens
from featctl.provision import haproxy
from featctl.session import Session
from featctl.workspace import Deployment, Workspace

pytestmark = pytest.mark.integration

NS, VETH_HERE, VETH_NS = "fctl-edge", "fctle-h", "fctle-n"
HERE_IP, NS_IP = "198.18.207.1", "198.18.207.2"
TIMEOUT = 2.0  # [endpoint] timeout: seconds a backend may take per request
BACKEND = Path(__file__).with_name("edge_backend.py")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@contextlib.contextmanager
def namespace() -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the edge test needs root and iproute2 (ip netns)")
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "link", "del", VETH_HERE, check=False)
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", VETH_HERE, "type", "veth", "peer", "name", VETH_NS)
        sh("ip", "link", "set", VETH_NS, "netns", NS)
        sh("ip", "addr", "add", f"{HERE_IP}/30", "dev", VETH_HERE)
        sh("ip", "link", "set", VETH_HERE, "up")
        sh("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/30", "dev", VETH_NS)
        sh("ip", "netns", "exec", NS, "ip", "link", "set", VETH_NS, "up")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        for _ in range(50):  # the address leaves "tentative" at once for IPv4; wait for the link
            if "UP" in sh("ip", "-br", "link", "show", VETH_HERE).stdout:
                break
            time.sleep(0.1)
        yield
    finally:
        sh("ip", "netns", "del", NS, check=False)
        sh("ip", "link", "del", VETH_HERE, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HERE_IP, 0))
        return int(s.getsockname()[1])


class Backends:
    """The fake feature servers, one process each, at each host's socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def socket(self, name: str, port: int) -> str:
        return str(self.root / name / "run" / "s" / str(port))

    def start(self, name: str, port: int) -> None:
        path = self.socket(name, port)
        self.procs[name] = subprocess.Popen([sys.executable, str(BACKEND), path, name])
        for _ in range(100):
            if os.path.exists(path):
                return
            time.sleep(0.05)
        raise AssertionError(f"backend {name} did not start")

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def stop_all(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGCONT)
                p.kill()
            p.wait(timeout=5)


@dataclass
class Edge:
    root: Path
    port: int
    backends: Backends
    record: Deployment
    ca: Path

    @property
    def workspace(self) -> Path:
        return self.root / ".featctl"

    @property
    def files(self) -> haproxy.Files:
        return endpoint.files_of(self.workspace)

    def configure(self, allow: list[str], port: int | None = None) -> Session:
        (self.root / "featctl.toml").write_text(
            "[endpoint]\n"
            f'listen = "{HERE_IP}"\nport = {port or self.port}\nallow = {json.dumps(allow)}\n'
            f"timeout = {TIMEOUT}\nhealth_port = {self.port + 1}\nnames = [\"edge.test\"]\n"
        )
        return Session(load_settings({}, environ={}, cwd=self.root))

    def states(self) -> dict[str, str]:
        return {s.name: ("up" if s.up else "down") for s in haproxy.show_stat(self.files)}

    def wait_state(self, name: str, want: str, seconds: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if self.states().get(name) == want:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"{name} not {want} within {seconds} s: {self.states()}")


def _host(root: Path, name: str, port: int) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": 22, "host_public_key": "-", "remote_base_dir": str(root / name), "server_port": port}


def record_for(root: Path, hosts: list[tuple[str, int]]) -> Deployment:
    return Deployment(
        target="local",
        name="featctl",
        host="127.0.0.1",
        remote_base_dir=str(root / hosts[0][0]),
        server_port=hosts[0][1],
        hosts=[_host(root, n, p) for n, p in hosts] if len(hosts) > 1 else [],
        stage="deployed",
    )


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    if shutil.which("haproxy") is None:
        pytest.fail("the edge test needs haproxy on PATH (apt-get install haproxy)")
    root = Path(tempfile.mkdtemp(prefix="fe-", dir="/tmp"))  # short: Unix socket paths
    backends = Backends(root)
    with namespace():
        try:
            backends.start("h0", 6566)
            backends.start("h1", 6567)
            record = record_for(root, [("h0", 6566), ("h1", 6567)])
            Workspace(root / ".featctl").save(record)
            e = Edge(root, free_port(), backends, record, root / ".featctl" / "endpoint" / "ca.pem")
            t = time.monotonic()
            st = endpoint.sync(e.configure([f"{HERE_IP}/32"]), record)
            assert st is not None and st.url == f"https://{HERE_IP}:{e.port}"
            print(f"endpoint up in {time.monotonic() - t:.2f} s")
            e.wait_state("h0", "up", 5)
            e.wait_state("h1", "up", 5)
            yield e
        finally:
            endpoint.teardown(root / ".featctl")
            backends.stop_all()
            assert not (root / ".featctl" / "endpoint").exists()
            assert not (root / ".featctl" / "tokens.json").exists()
            shutil.rmtree(root, ignore_errors=True)


# --- the client ------------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    body: dict
    headers: dict[str, str]
    #: Seconds from sending the request to the whole answer (after the TLS handshake).
    waited: float


def call(
    edge: Edge,
    path: str = "/get-online-features",
    token: str | None = None,
    *,
    body: bytes = b'{"features": ["v:f"], "entities": {"driver_id": [1]}}',
    method: str = "POST",
    headers: dict[str, str] | None = None,
    ca: Path | None = None,
) -> Answer:
    ctx = ssl.create_default_context(cafile=str(ca or edge.ca))
    conn = http.client.HTTPSConnection(HERE_IP, edge.port, context=ctx, timeout=15)
    try:
        conn.connect()
        hdrs = {"content-type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        start = time.monotonic()
        conn.request(method, path, body=body if method == "POST" else None, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        waited = time.monotonic() - start
        return Answer(resp.status, json.loads(raw or b"{}"), {k.lower(): v for k, v in resp.getheaders()}, waited)
    finally:
        conn.close()


def under_load(fn: Callable[[], Answer], seconds: float, rate: float = 20.0, during: Callable[[], None] | None = None):
    """``fn`` ``rate`` times a second for ``seconds`` (each on its own connection);
    ``during`` runs meanwhile. Returns every outcome (an Answer or the exception)."""
    results: list[Answer | BaseException] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            out: Answer | BaseException = fn()
        except BaseException as exc:
            out = exc
        with lock:
            results.append(out)

    side = threading.Thread(target=during) if during else None
    with ThreadPoolExecutor(max_workers=40) as pool:
        start = time.monotonic()
        if side:
            side.start()
        n = 0
        while (due := start + n / rate) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(one)
            n += 1
    if side:
        side.join()
    return results


def failures(results: list) -> list:
    return [r for r in results if not isinstance(r, Answer) or r.status != 200]


# --- tokens, paths, bodies, TLS --------------------------------------------------------------------------------------
def test_tokens_scopes_and_paths(edge):
    ws = edge.workspace
    read = tokens.create(ws, "reader")
    write = tokens.create(ws, "writer", write=True)
    old = tokens.create(ws, "old", expires_in=3600, now=datetime.now(timezone.utc) - timedelta(hours=2))
    gone = tokens.create(ws, "gone")
    assert read.live_now and write.live_now

    ok = call(edge, token=read.token)
    assert ok.status == 200 and ok.body["path"] == "/get-online-features"
    assert ok.body["authorization"] is None, "the token must not reach the feature server"
    assert "server" not in ok.headers

    for token, status, error in [
        (None, 401, "missing or malformed bearer token"),
        ("", 401, "missing or malformed bearer token"),
        ("fct_" + "x" * 43, 401, "unknown token"),
        (old.token, 401, "token expired"),
    ]:
        a = call(edge, token=token)
        assert (a.status, a.body) == (status, {"error": error}), token
        assert a.headers["content-type"] == "application/json" and a.headers["www-authenticate"] == "Bearer"
    assert call(edge, token=gone.token).status == 200
    tokens.revoke(ws, "gone")
    assert call(edge, token=gone.token).body == {"error": "unknown token"}

    assert call(edge, "/push", read.token).status == 403
    assert call(edge, "/write-to-online-store", read.token).status == 403
    for path in ("/push", "/write-to-online-store", "/get-online-features"):
        a = call(edge, path, write.token)
        assert a.status == 200 and a.body["path"] == path
    for path in ("/materialize", "/materialize-incremental", "/health", "/featctl/v1/info", "/docs", "/openapi.json", "/"):
        for token in (read.token, write.token):
            a = call(edge, path, token)
            assert (a.status, a.body) == (404, {"error": "not found"}), path
    assert call(edge, "/get-online-features", read.token, method="GET").status == 404

    listed = {r["name"]: r for r in tokens.listing(ws)}
    assert listed["old"]["status"] == "expired" and listed["reader"]["status"] == "live"
    assert "gone" not in listed
    stored = (ws / "tokens.json").read_text() + edge.files.tokens_map.read_text()
    assert read.token not in stored and tokens.token_hash(read.token) in stored
    assert (ws / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert edge.files.tokens_map.stat().st_mode & 0o777 == 0o600
    assert read.token not in edge.files.log.read_text(), "a token reached HAProxy's log"
    assert edge.files.root.stat().st_mode & 0o777 == 0o700
    for p in edge.files.root.iterdir():  # files 0600, sockets 0600 (srw-------)
        assert p.stat().st_mode & 0o777 == 0o600, p


def raw_request(edge: Edge, head: bytes, body: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes over TLS; the first bytes of the answer."""
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    with socket.create_connection((HERE_IP, edge.port)) as raw, ctx.wrap_socket(raw, server_hostname=HERE_IP) as s:
        s.sendall(b"POST /get-online-features HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body)
        s.settimeout(5)
        return s.recv(300)


def test_body_limits(edge, tmp_path):
    t = tokens.create(edge.workspace, "bodies").token
    auth = b"Authorization: Bearer " + t.encode() + b"\r\n"
    # Refused on its headers, before any of the body is sent.
    start = time.monotonic()
    answer = raw_request(edge, auth + b"Content-Length: 2097152\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and answer.endswith(b'{"error":"request body too large"}')
    assert time.monotonic() - start < 1
    # A client that sends the 2 MiB anyway (curl, without waiting for 100-continue).
    big = tmp_path / "big.json"
    big.write_bytes(b"x" * (2 * 1048576))
    res = subprocess.run(
        ["curl", "-s", "--cacert", str(edge.ca), "--max-time", "10", "-H", f"Authorization: Bearer {t}", "-H", "Expect:",
         "--data-binary", f"@{big}", "-w", " %{http_code}", f"https://{HERE_IP}:{edge.port}/get-online-features"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # HAProxy answers 413 on the headers and closes; a client still sending its
    # body may read the 413 or see the connection closed (curl 55/56): refused either way.
    assert res.stdout == '{"error":"request body too large"} 413' or res.returncode in (55, 56), res
    assert call(edge, token=t, body=b"x" * 900_000).body["bytes"] == 900_000
    chunked = raw_request(edge, auth + b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411")
    # No token: refused before the body, whatever its size.
    assert raw_request(edge, b"Content-Length: 900000\r\n").startswith(b"HTTP/1.1 401")


def test_a_slow_body_never_reaches_a_backend(edge):
    """A client that sends its headers and part of its body, then stalls, holds
    HAProxy's buffer only: no backend has a session for it."""
    import csv
    import io

    t = tokens.create(edge.workspace, "slowpoke").token
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    with socket.create_connection((HERE_IP, edge.port)) as raw, ctx.wrap_socket(raw, server_hostname=HERE_IP) as s:
        s.sendall(
            b"POST /get-online-features HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + t.encode()
            + b"\r\nContent-Length: 1000\r\n\r\n" + b"{" * 100
        )  # fmt: skip
        time.sleep(1.0)
        stat = haproxy._ask(edge.files.admin_sock, "show stat")
        rows = list(csv.DictReader(io.StringIO(stat.lstrip("# "))))
        servers = {r["svname"]: int(r["scur"] or 0) for r in rows if r["pxname"] == "reads" and r["svname"].startswith("h")}
        edge_sessions = next(int(r["scur"]) for r in rows if r["pxname"] == "edge" and r["svname"] == "FRONTEND")
        assert edge_sessions >= 1 and servers and set(servers.values()) == {0}, (edge_sessions, servers)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_needs_the_ca_and_tls12(edge, tmp_path):
    t = tokens.create(edge.workspace, "tls").token
    other = tmp_path / "other"
    from featctl.provision.tls import ensure_endpoint_cert

    ensure_endpoint_cert(Workspace(tmp_path / "ws"), [HERE_IP], other)
    with pytest.raises(ssl.SSLCertVerificationError):
        call(edge, token=t, ca=other / "ca.pem")
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with pytest.raises((ssl.SSLError, ConnectionError)), socket.create_connection((HERE_IP, edge.port)) as raw:
        ctx.wrap_socket(raw, server_hostname=HERE_IP)


def ns_curl(edge: Edge, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", NS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
         "--cacert", str(edge.ca), "-H", f"Authorization: Bearer {token}", "-d", "{}",
         f"https://{HERE_IP}:{edge.port}/get-online-features"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip


def test_a_source_outside_allow_is_refused(edge):
    t = tokens.create(edge.workspace, "outside").token
    res = ns_curl(edge, t)
    assert res.returncode != 0 and res.stdout == "000", res  # refused before TLS
    assert call(edge, token=t).status == 200


# --- failures of the backends ----------------------------------------------------------------------------------------
def test_kill_one_backend_under_load(edge):
    t = tokens.create(edge.workspace, "killer").token

    def kill() -> None:
        time.sleep(3)
        edge.backends.signal("h1", signal.SIGKILL)

    results = under_load(lambda: call(edge, token=t), 10, during=kill)
    print(f"kill -9 h1 under load: {len(failures(results))} of {len(results)} reads failed")
    assert len(results) == 200
    assert len(failures(results)) <= 1, failures(results)[:3]
    assert edge.states()["h1"] == "down"
    edge.backends.start("h1", 6567)
    assert edge.wait_state("h1", "up", 3) < 3


def test_a_stopped_backend_is_bounded_and_marked_down(edge):
    t = tokens.create(edge.workspace, "stopper").token
    marks: dict[str, float] = {}

    def stop_and_resume() -> None:
        time.sleep(1)
        edge.backends.signal("h0", signal.SIGSTOP)
        marks["down"] = edge.wait_state("h0", "down", 3.5)
        time.sleep(TIMEOUT)  # stalled longer than the timeout: its first requests get 504
        edge.backends.signal("h0", signal.SIGCONT)
        marks["up"] = edge.wait_state("h0", "up", 3.5)

    try:
        results = under_load(lambda: call(edge, token=t), 8, during=stop_and_resume)
    finally:
        edge.backends.signal("h0", signal.SIGCONT)
    answers = [r for r in results if isinstance(r, Answer)]
    assert len(answers) == len(results), [r for r in results if not isinstance(r, Answer)][:3]
    slowest = max(a.waited for a in answers)
    late = sum(1 for a in answers if a.status == 504)
    print(f"SIGSTOP h0: slowest answer {slowest:.3f} s, {late} of {len(answers)} got 504, down after {marks.get('down', -1):.2f} s, up {marks.get('up', -1):.2f} s after SIGCONT")
    assert slowest <= TIMEOUT + 0.1, slowest
    assert {a.status for a in answers} == {200, 504}
    assert all(a.body == {"error": "gateway timeout"} for a in answers if a.status == 504)
    assert marks["down"] < 3 and marks["up"] < 3, marks


def test_both_backends_down_is_503_within_3s(edge):
    t = tokens.create(edge.workspace, "dark").token
    for name in ("h0", "h1"):
        edge.backends.signal(name, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        edge.wait_state("h0", "down", 3)
        edge.wait_state("h1", "down", 3)
        a = call(edge, token=t)
        assert (a.status, a.body) == (503, {"error": "service unavailable"})
        print(f"both stopped: 503 after {time.monotonic() - stopped:.2f} s")
        assert time.monotonic() - stopped < 3
        with urlopen_monitor(edge) as status:
            assert status == 503
    finally:
        for name in ("h0", "h1"):
            edge.backends.signal(name, signal.SIGCONT)
    edge.wait_state("h0", "up", 3)
    edge.wait_state("h1", "up", 3)
    with urlopen_monitor(edge) as status:
        assert status == 200


@contextlib.contextmanager
def urlopen_monitor(edge: Edge) -> Iterator[int]:
    conn = http.client.HTTPConnection(HERE_IP, edge.port + 1, timeout=5)
    try:
        conn.request("GET", "/healthz")
        yield conn.getresponse().status
    finally:
        conn.close()


# --- changes under load ----------------------------------------------------------------------------------------------
def test_revoke_under_load_drops_nothing(edge):
    t = tokens.create(edge.workspace, "steady").token
    victim = tokens.create(edge.workspace, "victim").token
    seen: dict[str, int] = {}

    def revoke() -> None:
        time.sleep(2)
        tokens.revoke(edge.workspace, "victim")
        seen["after"] = call(edge, token=victim).status
        tokens.create(edge.workspace, "newcomer")

    results = under_load(lambda: call(edge, token=t), 5, during=revoke)
    assert failures(results) == []
    assert seen["after"] == 401


def test_revoke_reaches_a_draining_worker(edge):
    """A reload's old worker keeps a kept-alive connection until its next answer:
    a token revoked meanwhile is refused there too."""
    doomed = tokens.create(edge.workspace, "doomed").token
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    conn = http.client.HTTPSConnection(HERE_IP, edge.port, context=ctx, timeout=10)
    headers = {"authorization": f"Bearer {doomed}", "content-type": "application/json"}
    try:
        conn.request("POST", "/get-online-features", body=b"{}", headers=headers)
        first = conn.getresponse()
        assert first.status == 200 and first.read()
        haproxy.reload(edge.files)  # the connection stays with the old worker
        assert haproxy.old_workers(haproxy._ask(edge.files.master_sock, "show proc"))
        tokens.revoke(edge.workspace, "doomed")
        conn.request("POST", "/get-online-features", body=b"{}", headers=headers)
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (401, {"error": "unknown token"})
    finally:
        conn.close()


def test_reload_under_load_drops_nothing(edge):
    t = tokens.create(edge.workspace, "reloads").token
    edge.backends.start("h2", 6568)
    bigger = record_for(edge.root, [("h0", 6566), ("h1", 6567), ("h2", 6568)])
    took: list[float] = []

    def change() -> None:
        time.sleep(1.5)
        start = time.monotonic()
        st = endpoint.sync(edge.configure([f"{HERE_IP}/32"]), bigger)  # a backend more
        took.append(time.monotonic() - start)
        assert st is not None and [b.name for b in st.backends] == ["h0", "h1", "h2"]
        time.sleep(1.5)
        assert endpoint.plan_rows(edge.configure([f"{HERE_IP}/30"]).settings, bigger)[0].fields == ("allow",)
        start = time.monotonic()
        endpoint.sync(edge.configure([f"{HERE_IP}/30"]), bigger)  # the namespace may connect now
        took.append(time.monotonic() - start)

    kept: list[Answer | BaseException] = []
    done = threading.Event()

    def keep_alive() -> None:
        """One client on one kept-alive connection, as Feast's SDK and requests' sessions do."""
        ctx = ssl.create_default_context(cafile=str(edge.ca))
        conn = http.client.HTTPSConnection(HERE_IP, edge.port, context=ctx, timeout=15)
        headers = {"authorization": f"Bearer {t}", "content-type": "application/json"}
        while not done.is_set():
            try:
                conn.request("POST", "/get-online-features", body=b"{}", headers=headers)
                resp = conn.getresponse()
                kept.append(Answer(resp.status, json.loads(resp.read()), {}, 0.0))
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
            except BaseException as exc:
                kept.append(exc)
                conn.close()
            time.sleep(0.05)
        conn.close()

    client = threading.Thread(target=keep_alive)
    client.start()
    try:
        results = under_load(lambda: call(edge, token=t), 6, during=change)
    finally:
        done.set()
        client.join()
    print(f"reloads took {', '.join(f'{s:.2f}' for s in took)} s; {len(results)} new-connection and {len(kept)} kept-alive reads")
    assert failures(results) == [], failures(results)[:3]
    assert failures(kept) == [] and len(kept) > 50, failures(kept)[:3]
    assert len(took) == 2
    assert ns_curl(edge, t).stdout == "200"
    edge.wait_state("h2", "up", 3)
    assert endpoint.plan_rows(edge.configure([f"{HERE_IP}/30"]).settings, bigger) == []
    # A new name in the certificate: only edge.pem changes, and HAProxy serves the new one.
    (edge.root / "featctl.toml").write_text((edge.root / "featctl.toml").read_text().replace('"edge.test"', '"edge2.test"'))
    endpoint.sync(Session(load_settings({}, environ={}, cwd=edge.root)), bigger)
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    with socket.create_connection((HERE_IP, edge.port)) as raw, ctx.wrap_socket(raw, server_hostname="edge2.test") as s:
        assert ("DNS", "edge2.test") in s.getpeercert()["subjectAltName"]


def test_a_reload_that_cannot_bind_keeps_the_old_endpoint(edge):
    t = tokens.create(edge.workspace, "binder").token
    before = edge.files.cfg.read_text()
    with socket.socket() as taken:
        taken.bind((HERE_IP, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(haproxy.EndpointError, match=r"keeps serving the old one: .*Address already in use"):
            endpoint.sync(edge.configure([f"{HERE_IP}/30"], port=busy), edge.record)
    assert edge.files.cfg.read_text() == before
    assert call(edge, token=t).status == 200
    assert endpoint.applied_state(edge.workspace)["port"] == edge.port  # what serves is what plan compares
    endpoint.sync(edge.configure([f"{HERE_IP}/30"]), edge.record)
    assert sorted(edge.states()) == ["h0", "h1"]


def test_a_dead_haproxy_is_started_again(edge):
    session = edge.configure([f"{HERE_IP}/30"])
    pid = int(edge.files.pid.read_text())
    os.kill(int(edge.files.supervise_pid.read_text()), signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    for _ in range(100):
        if not haproxy.running(edge.files):
            break
        time.sleep(0.05)
    assert endpoint.ensure_running(session) is True
    st = endpoint.status(session)
    assert st.tokens_live >= 1 and st.ca_file.endswith(".pem")
    t = tokens.create(edge.workspace, "revived").token
    edge.wait_state("h0", "up", 3)
    assert call(edge, token=t).status == 200


# --- what applications get -------------------------------------------------------------------------------------------
FEAST_PYTHON = Path(__file__).resolve().parents[2] / ".venv-feast" / "bin" / "python"
VIEW = {
    "name": "driver_hourly_stats",
    "features": [{"name": "conv_rate", "dtype": "Float32"}, {"name": "acc_rate", "dtype": "Float32"}],
    "join_keys": [{"name": "driver_id", "dtype": "Int64"}],
}


class LocalHost:
    """A boundary fake of featctl's SSH connection to a local-target host: its
    files are this machine's and its commands run in a shell here (what the
    local target's hosts are), without sshd."""

    class _Sftp:
        def open(self, path: str, mode: str = "r"):
            return open(path, mode)

    sftp = _Sftp()
    base = ""  # the host's directory: the session fills it in, as for an SSH connection

    def run(self, command: str, *, timeout: float = 600.0, check: bool = True, **_: object):
        from featctl.remote.ssh import Result

        proc = subprocess.run(["sh", "-c", command], capture_output=True, timeout=timeout)
        return Result(command, proc.returncode, proc.stdout, proc.stderr)

    def get_file(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def close(self) -> None:
        pass


def host_with_agent(base: Path) -> None:
    """What a deployed host has that client-config uses: featctl's agent and the Feast environment."""
    from featctl.remote.layout import DEFAULT_ENV

    shutil.rmtree(base / "agent", ignore_errors=True)
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "src" / "featctl" / "agent",
        base / "agent" / "featctl_agent",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (base / "envs").mkdir(exist_ok=True)
    env = base / "envs" / DEFAULT_ENV
    if not env.exists():
        env.symlink_to(FEAST_PYTHON.parents[1])


def registry_bytes(base: Path) -> bytes:
    """A real (small) Registry proto, made with Feast's generated classes."""
    code = (
        "import sys; from featctl_agent.registry import import_registry_pb2_fast\n"
        "r = import_registry_pb2_fast().Registry(); r.version_id = 'edge-test'\n"
        "sys.stdout.buffer.write(r.SerializeToString())\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(base / "agent")}
    return subprocess.run([str(FEAST_PYTHON), "-c", code], capture_output=True, check=True, env=env).stdout


def test_featctl_endpoint_shows_url_ca_backends_and_tokens(edge):
    from tests.conftest import featctl

    assert call(edge, token=tokens.create(edge.workspace, "shown").token).status == 200
    res = featctl("endpoint", "--output", "json", cwd=edge.root).ok()
    doc = json.loads(res.stdout)
    assert doc["url"] == f"https://{HERE_IP}:{edge.port}" and doc["ca_file"].endswith("ca.pem")
    assert {b["name"]: b["state"] for b in doc["backends"]}.keys() >= {"h0", "h1"}
    assert all(b["since"] for b in doc["backends"]) and doc["tokens_live"] >= 1
    assert "fct_" not in res.stdout + res.stderr
    logged = featctl("endpoint", "--logs", "50", cwd=edge.root).ok().stdout
    assert "/get-online-features" in logged and "fct_" not in logged and "Bearer" not in logged


def test_client_config_bundle_reads_through_the_endpoint(edge, tmp_path):
    from featctl.lifecycle.client_config import client_config

    current = edge.root / "h0" / "current"
    (current / "data").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parents[2] / "feature_repo" / "feature_store.yaml", current / "feature_store.yaml")
    host_with_agent(edge.root / "h0")
    snapshot = registry_bytes(edge.root / "h0")
    (current / "data" / "registry.db").write_bytes(snapshot)
    rec = Workspace(edge.workspace).require()
    rec.registry = {"feature_views": [VIEW], "entities": [{"name": "driver", "join_keys": ["driver_id"]}]}
    rec.probe = {"views": {"driver_hourly_stats": {"entity": {"driver_id": 1001}}}}
    Workspace(edge.workspace).save(rec)

    session = edge.configure([f"{HERE_IP}/30"])
    session.adopt(LocalHost())  # type: ignore[arg-type]
    out = tmp_path / "app"
    done = client_config(session, "bundle", out)
    assert done.files == ["ca.pem", "example.py", "example.sh", "feature_store.yaml", "registry.db", "token"]
    assert (out / ".gitignore").read_text().endswith("*\n")
    for name in ("token", "feature_store.yaml"):
        assert (out / name).stat().st_mode & 0o777 == 0o600
    token = (out / "token").read_text().strip()
    assert token.startswith("fct_") and (out / "registry.db").read_bytes() == snapshot
    assert not list((edge.root / "h0" / "tmp").iterdir()), "the host's copy of the snapshot is removed"

    sh_run = subprocess.run(["sh", str(out / "example.sh")], capture_output=True, text=True, timeout=30)
    assert sh_run.returncode == 0, sh_run.stderr
    assert json.loads(sh_run.stdout)["metadata"]["feature_names"] == ["driver_id", "conv_rate", "acc_rate"]
    py_run = subprocess.run([str(FEAST_PYTHON), str(out / "example.py")], capture_output=True, text=True, timeout=60)
    assert py_run.returncode == 0 and json.loads(py_run.stdout)["path"] == "/get-online-features", py_run.stderr

    sdk = (
        "from feast import FeatureStore\n"
        f"fs = FeatureStore(repo_path={str(out)!r})\n"
        "r = fs.get_online_features(features=['driver_hourly_stats:conv_rate'], entity_rows=[{'driver_id': 1001}])\n"
        "print(r.to_dict())\n"
    )
    feast_run = subprocess.run([str(FEAST_PYTHON), "-c", sdk], capture_output=True, text=True, timeout=120, cwd="/")
    assert feast_run.returncode == 0, feast_run.stderr[-2000:]
    assert "'conv_rate': [0.5]" in feast_run.stdout and "'driver_id': [1001]" in feast_run.stdout

    with pytest.raises(UsageError, match="has a token already"):
        client_config(session, "bundle", tmp_path / "again")
    assert not (tmp_path / "again").exists()
    k8s = client_config(session, "bundle", tmp_path / "k8s", fmt="k8s", replace=True)
    assert k8s.files == ["ca.pem", "featctl-bundle.yaml"]
    assert call(edge, token=token).body == {"error": "unknown token"}, "--replace rotates the old token out"
    import yaml

    secret, config = yaml.safe_load_all((tmp_path / "k8s" / "featctl-bundle.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["stringData"]["token"].startswith("fct_")
    assert call(edge, token=secret["stringData"]["token"]).status == 200
    store = yaml.safe_load(config["data"]["feature_store.yaml"])
    assert store["auth"] == {"type": "oidc", "token_env_var": "FEATCTL_TOKEN"}
    assert store["online_store"]["cert"] == "/etc/featctl/secret/ca.pem"
    assert "registry.db" in config["binaryData"]


def test_a_start_that_cannot_bind_says_why_and_leaves_nothing_running(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="fe-", dir="/tmp"))
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            (root / "featctl.toml").write_text(f"[endpoint]\nport = {taken.getsockname()[1]}\n")
            session = Session(load_settings({}, environ={}, cwd=root))
            start = time.monotonic()
            with pytest.raises(haproxy.EndpointError, match=r"did not start: .*Address already in use"):
                endpoint.sync(session, record_for(root, [("h0", 6566)]))
            assert time.monotonic() - start < 5
        files = endpoint.files_of(root / ".featctl")
        assert not haproxy.running(files) and not files.supervise_pid.exists()
        assert not any(str(files.cfg) in line for line in sh("ps", "-eww", "-o", "args").stdout.splitlines())
    finally:
        endpoint.teardown(root / ".featctl")
        shutil.rmtree(root, ignore_errors=True)
