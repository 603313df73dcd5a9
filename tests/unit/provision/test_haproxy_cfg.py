"""haproxy.cfg from one template: each rule the endpoint depends on, table by table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from featctl.config import EndpointSettings
from featctl.provision.haproxy_cfg import Backend, EndpointError, render

STATE = Path("/run/fe/endpoint")
BACKENDS = [Backend("h0", "/srv/h0/run/s/6566"), Backend("h1", "/srv/h1/run/s/6567")]


def cfg(**kw) -> str:
    allow = kw.pop("allow", ["198.18.7.0/30"])
    backends = kw.pop("backends", BACKENDS)
    return render(EndpointSettings(**kw), allow=allow, backends=backends, state_dir=STATE)


def section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(name)
    out = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        out.append(line.strip())
    return out


@pytest.mark.parametrize(
    ("settings", "where", "line"),
    [
        # TLS on listen:port with the edge certificate, TLS 1.2 at least
        ({}, "frontend edge", "bind 127.0.0.1:8443 ssl crt /run/fe/endpoint/edge.pem alpn http/1.1"),
        ({"listen": "198.18.7.1", "port": 9443}, "frontend edge", "bind 198.18.7.1:9443 ssl crt /run/fe/endpoint/edge.pem alpn http/1.1"),
        ({"listen": "::1"}, "frontend edge", "bind [::1]:8443 ssl crt /run/fe/endpoint/edge.pem alpn http/1.1"),
        ({}, "global", "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets"),
        # who may connect
        ({}, "frontend edge", "acl allowed src 198.18.7.0/30"),
        ({}, "frontend edge", "tcp-request connection reject unless allowed"),
        # sockets: runtime API at admin level, 0600
        ({}, "global", "stats socket /run/fe/endpoint/admin.sock mode 600 level admin expose-fd listeners"),
        # the token: hashed, looked up in tokens.map, never forwarded
        ({}, "frontend edge", "http-request set-var(txn.token) req.hdr(authorization),regsub(^[^\\ ]+\\ +,),sha2(256),hex,lower,map(/run/fe/endpoint/tokens.map)"),
        ({}, "frontend edge", "acl expired var(txn.left) -m int le 0"),
        ({}, "frontend edge", "http-request del-header authorization"),
        # bodies
        ({}, "frontend edge", "http-request return status 413 content-type application/json string '{\"error\":\"request body too large\"}' if { req.hdr_val(content-length) gt 1048576 }"),
        ({"max_body": 4096}, "frontend edge", "http-request return status 413 content-type application/json string '{\"error\":\"request body too large\"}' if { req.hdr_val(content-length) gt 4096 }"),
        ({}, "global", "tune.bufsize 1114112"),
        ({"max_body": 100}, "global", "tune.bufsize 65636"),
        ({}, "frontend edge", "http-request wait-for-body time 10s"),
        ({}, "defaults", "option idle-close-on-response"),
        # slow clients and servers
        ({}, "defaults", "timeout http-request 10s"),
        ({}, "defaults", "timeout server 5000ms"),
        ({"timeout": 2.5}, "defaults", "timeout server 2500ms"),
        ({}, "defaults", "timeout connect 1s"),
        # JSON errors, no server details
        ({}, "defaults", "http-error status 503 content-type application/json string '{\"error\":\"service unavailable\"}'"),
        ({}, "defaults", "http-error status 504 content-type application/json string '{\"error\":\"gateway timeout\"}'"),
        ({}, "frontend edge", "http-response del-header server"),
        # routes
        ({}, "frontend edge", "use_backend writes if write_path"),
        ({}, "frontend edge", "default_backend reads"),
        # backends: health checks, reads retried, writes only before they are sent
        ({}, "backend reads", "server h0 /srv/h0/run/s/6566 check inter 1s fastinter 250ms downinter 1s fall 2 rise 2"),
        ({}, "backend reads", "http-check send meth GET uri /health"),
        ({}, "backend reads", "retry-on conn-failure empty-response junk-response 503"),
        ({}, "backend reads", "option redispatch 1"),
        ({}, "backend writes", "retry-on conn-failure"),
        ({}, "backend writes", "server h1 /srv/h1/run/s/6567 track reads/h1"),
        # the monitor
        ({"health_port": 8080}, "frontend monitor", "bind 127.0.0.1:8080"),
        ({"health_port": 8080}, "frontend monitor", "monitor fail if dead"),
    ],
)
def test_rule(settings, where, line):
    assert line in section(cfg(**settings), where)


@pytest.mark.parametrize(
    ("path", "status", "rule"),
    [
        ("paths", 404, "unless post read_path or post write_path"),
        ("scope", 403, "if write_path !can_write"),
        ("expired", 401, "if !never expired"),
        ("unknown", 401, "unless known"),
        ("missing", 401, "unless bearer"),
        ("chunked", 411, "if { req.hdr(transfer-encoding) -m found }"),
    ],
)
def test_refusals(path, status, rule):
    lines = [ln for ln in section(cfg(), "frontend edge") if ln.startswith(f"http-request return status {status} ")]
    assert any(ln.endswith(rule) for ln in lines), path


def test_paths_and_order():
    edge = section(cfg(), "frontend edge")
    assert "acl read_path path /get-online-features" in edge
    assert "acl write_path path /push /write-to-online-store" in edge
    order = [next(i for i, ln in enumerate(edge) if ln.endswith(end)) for end in ("unless bearer", "if !never expired", "unless post read_path or post write_path", "if write_path !can_write")]
    assert order == sorted(order), "401 before 404 before 403"


def test_no_monitor_without_health_port_and_no_header_logged():
    text = cfg()
    assert "frontend monitor" not in text
    assert "capture request header" not in text and "%[req.hdr" not in text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"backends": []}, "at least one backend"),
        ({"allow": []}, "at least one allowed network"),
        ({"backends": [Backend("h0", "/" + "x" * 120)]}, "more than a Unix socket takes"),
        ({"backends": [Backend("h0", "/a b/s")]}, "cannot go into haproxy.cfg"),
    ],
)
def test_refused_inputs(kw, message):
    with pytest.raises(EndpointError, match=message):
        cfg(**kw)


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_it(tmp_path):
    """The real binary checks the rendered file (with the files it names)."""
    from featctl.provision.tls import ensure_endpoint_cert
    from featctl.workspace import Workspace

    ensure_endpoint_cert(Workspace(tmp_path / "ws"), ["127.0.0.1"], tmp_path)
    (tmp_path / "tokens.map").write_text("")
    text = render(EndpointSettings(health_port=8080), allow=["127.0.0.0/8"], backends=BACKENDS, state_dir=tmp_path)
    (tmp_path / "haproxy.cfg").write_text(text)
    proc = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
