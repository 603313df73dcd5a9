"""haproxy.cfg for the application endpoint, from one template (pure: no
process, no file; ``provision/haproxy.py`` runs HAProxy with it).

What the configuration does:

* TLS 1.2+ on ``listen:port`` (``edge.pem``), connections from outside
  ``allow`` refused before TLS (``tcp-request connection reject``);
* ``Authorization: Bearer <token>``: HAProxy hashes the token
  (``sha2(256),hex,lower``) and looks the hash up in ``tokens.map``
  (``<hash> <scope>:<expiry epoch, 0 = never>``): missing, unknown or
  expired -> 401, a read token on a write path -> 403; the header is not
  forwarded, and no header is ever logged;
* ``POST /get-online-features`` for every token, ``/push`` and
  ``/write-to-online-store`` for write tokens, anything else 404;
* bodies: a Content-Length over ``max_body`` -> 413; chunked bodies are refused
  with 411 (a body is buffered whole before a backend sees it, and HAProxy
  could count only what fits its buffer); the buffer holds ``max_body`` plus
  the headers, so slow clients never hold a backend worker (``wait-for-body``
  after the header checks: a refused request is answered before its body,
  ``timeout http-request`` for the headers);
* every error as JSON, no ``Server`` header, a backend's 500 body replaced;
* reads retried on another server when a connection fails or the answer is
  empty; writes retried only when they never reached a server;
* health checks (``GET /health``): a dead or hung server is out within 3 s
  and back when it answers;
* optionally ``GET /healthz`` on ``health_port``: 200 while a backend is up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from featctl.config import EndpointSettings
from featctl.errors import FeatctlError

#: A Unix socket's path must fit sockaddr_un (108 bytes with its NUL).
MAX_SOCKET_PATH = 107
#: Health checks: a dead or hung server is out within 3 s (worst case: a check
#: starts up to ``inter`` after the last good one, times out after ``timeout
#: check``, and ``fall`` - 1 more checks follow ``fastinter`` apart), and is
#: back after ``rise`` good checks (``downinter``, then ``fastinter``).
CHECK = "inter 1s fastinter 250ms downinter 1s fall 2 rise 2"
CHECK_TIMEOUT_MS = 600
#: Buffer beyond the largest body: the request line and headers (and HAProxy's maxrewrite).
HEADER_ROOM = 65536


class EndpointError(FeatctlError):
    """HAProxy refused its configuration, did not start, or does not answer."""


@dataclass(frozen=True)
class Backend:
    """One serving host's feature server as HAProxy reaches it."""

    name: str
    #: A Unix socket path (``/.../run/s/6566``) or ``host:port``.
    address: str


class Files:
    """The endpoint directory's files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cfg = root / "haproxy.cfg"
        self.edge_pem = root / "edge.pem"
        self.ca_pem = root / "ca.pem"
        self.tokens_map = root / "tokens.map"
        self.master_sock = root / "master.sock"
        self.admin_sock = root / "admin.sock"
        self.pid = root / "haproxy.pid"
        self.supervise_pid = root / "supervise.pid"
        self.group_pid = root / "supervise-group.pid"
        self.log = root / "haproxy.log"


# --- render ---------------------------------------------------------------------------------------------------------
def _json(message: str) -> str:
    return "'{\"error\":\"" + message + "\"}'"


def _return(status: int, message: str, condition: str) -> str:
    # RFC 6750: a 401 names the scheme it wants.
    challenge = " hdr www-authenticate Bearer" if status == 401 else ""
    return (
        f"    http-request return status {status} content-type application/json string {_json(message)}"
        f"{challenge} {condition}"
    )


_ERRORS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    408: "request timeout",
    413: "request body too large",
    429: "too many requests",
    500: "internal error",
    501: "not implemented",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def check_word(what: str, value: str) -> str:
    if not value or any(c.isspace() or c in "'\"#\\" for c in value):
        raise EndpointError(f"{what} {value!r} cannot go into haproxy.cfg (spaces, quotes, '#' or '\\')")
    return value


def _server_address(backend: Backend) -> str:
    address = check_word(f"backend {backend.name}'s address", backend.address)
    if address.startswith("/") and len(address.encode()) > MAX_SOCKET_PATH:
        raise EndpointError(
            f"backend {backend.name}'s socket path is {len(address.encode())} bytes, more than a Unix socket "
            f"takes ({MAX_SOCKET_PATH}): {address}",
            hint="use a shorter workspace or host directory",
        )
    return address


def _bind_address(listen: str, port: int) -> str:
    return f"[{listen}]:{port}" if ipaddress.ip_address(listen).version == 6 else f"{listen}:{port}"


def _global(files: Files, settings: EndpointSettings) -> list[str]:
    return [
        "global",
        "    log stderr format iso local0 info",
        f"    stats socket {files.admin_sock} mode 600 level admin expose-fd listeners",
        "    stats timeout 10s",
        # Old workers finish in-flight requests after a reload, then stop.
        f"    hard-stop-after {max(30, 3 * round(settings.timeout))}s",
        "    maxconn 4096",
    ]


def render(
    settings: EndpointSettings,
    *,
    allow: Sequence[str],
    backends: Sequence[Backend],
    state_dir: Path,
    peers: Sequence[Backend] = (),
    peer_port: int | None = None,
) -> str:
    """haproxy.cfg for the endpoint: TLS on ``listen:port`` for the ``allow``
    networks, bearer tokens checked against tokens.map, reads and writes to
    ``backends``.

    ``peers`` (a host's HAProxy on the vm and yandex targets, whose one backend
    is its own feature server): the other hosts' HAProxy at ``host:peer_port``,
    over TLS with the deployment's certificate on both sides. The own server
    takes every request while it is up (``balance first``); a request it
    refuses or drops, and every request once it is down, goes on to a peer, so
    a dead server loses no read although the load balancer in front (layer 4)
    cannot retry. This HAProxy's own ``peer`` listener on ``peer_port`` admits
    only a client with a certificate of the deployment's CA and passes the
    endpoint's paths to its own server (``local``), never on."""
    if not backends:
        raise EndpointError("the endpoint needs at least one backend")
    if not allow:
        raise EndpointError("the endpoint needs at least one allowed network")
    files = Files(state_dir)
    for path in (files.admin_sock, files.master_sock):
        check_word("the endpoint directory", str(path))
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise EndpointError(f"the endpoint directory's path is too long for a Unix socket: {path}")
    nets = " ".join(str(ipaddress.ip_network(n, strict=False)) for n in allow)
    timeout_ms = max(1, round(settings.timeout * 1000))
    # Buffers of 64 KiB: a request body that fits (every online read does) is
    # buffered whole before any backend sees it (wait-for-body), a larger one
    # (up to max_body, checked on Content-Length) follows as it arrives. Buffers
    # sized to max_body (1 MiB + headers) cost 1.3 ms per request with L7 retries
    # (p50 3.07 vs 1.79 ms through HAProxy, 1.18-1.35 ms direct: /tmp bench of #22).
    bufsize = HEADER_ROOM
    tokens = files.tokens_map
    out = [
        "# featctl's application endpoint. Written by featctl on every deploy; changes here are lost.",
        *_global(files, settings),
        # The whole body is buffered (wait-for-body): a slow client never holds a backend.
        f"    tune.bufsize {bufsize}",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        "    ssl-default-bind-ciphers ECDHE+AESGCM:ECDHE+CHACHA20",
        "",
        "defaults",
        "    mode http",
        "    log global",
        # No header is captured: the Authorization header never reaches the log.
        "    option httplog",
        "    option dontlognull",
        # A reload's old worker closes a kept-alive connection after its next answer, not while idle:
        # a client that reuses connections (Feast's SDK) never writes into a closed one.
        "    option idle-close-on-response",
        "    timeout connect 1s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout client 30s",
        f"    timeout server {timeout_ms}ms",
        "    timeout queue 2s",
        f"    timeout check {CHECK_TIMEOUT_MS}ms",
    ]
    out += [
        f"    http-error status {code} content-type application/json string {_json(msg)}"
        for code, msg in _ERRORS.items()
    ]
    out += [
        "",
        "frontend edge",
        f"    bind {_bind_address(settings.listen, settings.port)} ssl crt {files.edge_pem} alpn http/1.1",
        f"    acl allowed src {nets}",
        "    tcp-request connection reject unless allowed",
        "    acl bearer req.hdr(authorization) -m reg -i ^Bearer\\ +[A-Za-z0-9._~+/=-]{8,512}$",
        _return(401, "missing or malformed bearer token", "unless bearer"),
        "    http-request set-var(txn.now) date",
        f"    http-request set-var(txn.token) req.hdr(authorization),regsub(^[^\\ ]+\\ +,),sha2(256),hex,lower,map({tokens})",
        "    acl known var(txn.token) -m found",
        _return(401, "unknown token", "unless known"),
        "    http-request set-var(txn.scope) var(txn.token),field(1,:)",
        "    http-request set-var(txn.expires) var(txn.token),field(2,:)",
        "    http-request set-var(txn.left) var(txn.expires),sub(txn.now)",
        "    acl never var(txn.expires) -m int 0",
        "    acl expired var(txn.left) -m int le 0",
        _return(401, "token expired", "if !never expired"),
        "    acl post method POST",
        "    acl read_path path /get-online-features",
        "    acl write_path path /push /write-to-online-store",
        _return(404, "not found", "unless post read_path or post write_path"),
        "    acl can_write var(txn.scope) -m str write",
        _return(403, "this token may only read", "if write_path !can_write"),
        # Chunked bodies are refused: HAProxy could count only what fits its buffer.
        _return(411, "send a Content-Length (chunked bodies are not accepted)", "if { req.hdr(transfer-encoding) -m found }"),
        _return(413, "request body too large", f"if {{ req.hdr_val(content-length) gt {settings.max_body} }}"),
        # Only now, for an authorized request of an allowed size, wait for the whole body (it fits the
        # buffer): a backend sees complete requests only, and reads can be retried on another server.
        "    http-request wait-for-body time 10s",
        _return(413, "request body too large", f"if {{ req.body_size gt {settings.max_body} }}"),
        "    http-request del-header authorization",
        "    option forwardfor",
        "    http-response del-header server",
        "    http-response del-header x-powered-by",
        "    http-response return status 500 content-type application/json string "
        + _json("internal error")
        + " if { status 500 }",
        "    use_backend writes if write_path",
        "    default_backend reads",
    ]
    if settings.health_port is not None:
        out += [
            "",
            "frontend monitor",
            f"    bind {_bind_address(settings.listen, settings.health_port)}",
            "    monitor-uri /healthz",
            "    http-error status 200 content-type application/json string '{\"status\":\"ok\"}'",
            # A host's own feature server (with peers, a host whose server is down leaves the rotation).
            f"    acl dead nbsrv({'local' if peers else 'reads'}) lt 1",
            "    monitor fail if dead",
            _return(404, "not found", "unless { path /healthz }"),
        ]
    balance = "first" if peers else "roundrobin"
    mtls = f"ssl verify required ca-file {files.ca_pem} crt {files.edge_pem}"
    servers = [(b, "") for b in backends] + [(p, f" {mtls}") for p in peers]
    out += [
        "",
        "backend reads",
        f"    balance {balance}",
        "    option httpchk",
        "    http-check send meth GET uri /health",
        "    http-check expect status 200",
        # A read is safe to send again: on a refused connection or an empty answer, another server.
        "    retry-on conn-failure empty-response junk-response 503",
        "    retries 2",
        "    option redispatch 1",
        *(f"    server {b.name} {_server_address(b)}{tls} check {CHECK}" for b, tls in servers),
        "",
        "backend writes",
        f"    balance {balance}",
        # A write is retried only when it never reached a server.
        "    retry-on conn-failure",
        "    retries 2",
        "    option redispatch 1",
        *(f"    server {b.name} {_server_address(b)}{tls} track reads/{b.name}" for b, tls in servers),
        "",
    ]
    if peers:
        if peer_port is None:
            raise EndpointError("a host's endpoint with peers needs a peer port")
        out += _peer_listener(settings.listen, peer_port, files, [p.address.rsplit(":", 1)[0] for p in peers], backends)
    return "\n".join(out)


def _peer_listener(listen: str, port: int, files: Files, sources: Sequence[str], own: Sequence[Backend]) -> list[str]:
    """The listener other hosts' HAProxy pass a request on to (their own server failed it)."""
    return [
        "frontend peer",
        f"    bind {_bind_address(listen, port)} ssl crt {files.edge_pem} ca-file {files.ca_pem} verify required alpn http/1.1",
        f"    acl peers src {' '.join(check_word('a peer address', a) + '/32' for a in sources)}",
        "    tcp-request connection reject unless peers",
        "    acl get method GET",
        "    acl post method POST",
        "    acl health path /health",
        "    acl served path /get-online-features /push /write-to-online-store",
        _return(404, "not found", "unless get health or post served"),
        "    default_backend local",
        "",
        "backend local",
        *(f"    server {b.name} {_server_address(b)} track reads/{b.name}" for b in own),
        "",
    ]


def render_front(
    settings: EndpointSettings, *, allow: Sequence[str], hosts: Sequence[Backend], health_port: int, state_dir: Path
) -> str:
    """haproxy.cfg of the vm target's front on this machine, which plays the
    cloud's network load balancer: TCP on ``listen:port`` for the ``allow``
    networks, each connection passed whole to one host's HAProxy (which
    terminates TLS and checks the token), a host in rotation only while its
    ``GET /healthz`` on ``health_port`` answers 200 (its HAProxy has a live
    feature server). The backend is named ``reads``, as the hosts' are, so
    ``featctl endpoint`` reads its servers' states the same way."""
    if not hosts:
        raise EndpointError("the endpoint needs at least one host")
    if not allow:
        raise EndpointError("the endpoint needs at least one allowed network")
    files = Files(state_dir)
    check_word("the endpoint directory", str(files.admin_sock))
    if len(str(files.admin_sock).encode()) > MAX_SOCKET_PATH:
        raise EndpointError(f"the endpoint directory's path is too long for a Unix socket: {files.admin_sock}")
    nets = " ".join(str(ipaddress.ip_network(n, strict=False)) for n in allow)
    out = [
        "# featctl's application endpoint: the load balancer over the hosts' HAProxy. Written by featctl on every deploy.",
        *_global(files, settings),
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    option dontlognull",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        f"    timeout check {CHECK_TIMEOUT_MS}ms",
        "",
        "frontend edge",
        f"    bind {_bind_address(settings.listen, settings.port)}",
        f"    acl allowed src {nets}",
        "    tcp-request connection reject unless allowed",
        "    default_backend reads",
        "",
        "backend reads",
        "    balance roundrobin",
        # A connection that a host refuses goes to another one (nothing was sent yet).
        "    retries 2",
        "    option redispatch 1",
        "    option httpchk",
        "    http-check send meth GET uri /healthz",
        "    http-check expect status 200",
        *(
            f"    server {h.name} {check_word(f'host {h.name} address', h.address)} check port {health_port} {CHECK}"
            for h in hosts
        ),
        # With every host out, connections still reach a host's HAProxy, which answers
        # 503 with its JSON error instead of a closed connection.
        *(f"    server {h.name}-last {h.address} backup" for h in hosts),
        "",
    ]
    return "\n".join(out)
