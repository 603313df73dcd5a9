"""The endpoint where every host runs its own HAProxy (vm, yandex): each
host's configuration, the vm balancer's, the stack variables, the agent's
commands and token changes handed to every host (no SSH, no HAProxy running)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from featctl.agent.cli import parser
from featctl.config import EndpointSettings, load_settings
from featctl.errors import FeatctlError
from featctl.lifecycle import endpoint, endpoint_hosts, tokens
from featctl.provision import haproxy_cfg
from featctl.provision.targets import host_health_port, host_peer_port
from featctl.workspace import Deployment

GUESTS = ["198.19.0.2", "198.19.0.3"]


def record(target: str = "vm", **extra) -> Deployment:
    rows = [
        {"host": h, "port": 22, "host_public_key": "k", "remote_base_dir": "/opt/featctl", "server_port": 6567}
        for h in GUESTS
    ]
    return Deployment(
        target=target,
        name="x",
        host=GUESTS[0],
        remote_base_dir="/opt/featctl",
        server_port=6567,
        hosts=rows,
        stack_vars={"network": {"bridge": "fct0", "cidr": "198.19.0.0/28"}},
        **extra,
    )


def settings(tmp_path, target: str = "vm", table: str = '[endpoint]\nlisten = "198.18.9.1"\n'):
    (tmp_path / "featctl.toml").write_text(f'target = "{target}"\n' + table)
    return load_settings({}, environ={}, cwd=tmp_path)


def section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    out = []
    for line in lines[lines.index(name) + 1 :]:
        if line and not line.startswith(" "):
            break
        out.append(line.strip())
    return out


def test_ports_of_a_host():
    assert (host_health_port(EndpointSettings()), host_peer_port(EndpointSettings())) == (8442, 8444)
    ep = EndpointSettings(port=9000, health_port=9001)
    assert (host_health_port(ep), host_peer_port(ep)) == (9001, 9002)


def test_a_guest_admits_only_the_bridge_and_passes_failed_reads_to_its_peer(tmp_path):
    cfg = endpoint_hosts.host_config(settings(tmp_path), record(), 1, ["198.18.9.0/30"])
    edge = section(cfg, "frontend edge")
    assert "bind 198.19.0.3:8443 ssl crt /opt/featctl/run/endpoint/edge.pem alpn http/1.1" in edge
    assert "acl allowed src 198.19.0.1/32" in edge  # the vm balancer's address on the bridge, nobody else
    assert "bind 198.19.0.3:8442" in section(cfg, "frontend monitor")
    assert "acl dead nbsrv(local) lt 1" in section(cfg, "frontend monitor")
    reads = section(cfg, "backend reads")
    assert "balance first" in reads
    assert reads.index("server h1 /opt/featctl/run/s/6567 check " + haproxy_cfg.CHECK) < len(reads)
    mtls = "ssl verify required ca-file /opt/featctl/run/endpoint/ca.pem crt /opt/featctl/run/endpoint/edge.pem"
    assert f"server h0 198.19.0.2:8444 {mtls} check {haproxy_cfg.CHECK}" in reads
    # own server first: `balance first` gives it every request while it is up
    assert [x.split()[1] for x in reads if x.startswith("server ")] == ["h1", "h0"]
    peer = section(cfg, "frontend peer")
    assert (
        "bind 198.19.0.3:8444 ssl crt /opt/featctl/run/endpoint/edge.pem ca-file /opt/featctl/run/endpoint/ca.pem "
        "verify required alpn http/1.1" in peer
    )
    assert "acl peers src 198.19.0.2/32" in peer and "default_backend local" in peer
    assert section(cfg, "backend local") == ["server h1 /opt/featctl/run/s/6567 track reads/h1"]


def test_on_yandex_the_clients_address_reaches_the_host(tmp_path):
    s = settings(tmp_path, "yandex", '[endpoint]\nallow = ["10.20.0.0/16"]\n')
    cfg = endpoint_hosts.host_config(s, record("yandex"), 0, ["10.20.0.0/16"])
    assert "acl allowed src 10.20.0.0/16" in section(cfg, "frontend edge")


def test_the_vm_balancer_passes_tcp_to_live_guests_and_the_last_ones_answer_503(tmp_path):
    s = settings(tmp_path)
    cfg = endpoint_hosts.front_config(s, record(), ["198.18.9.0/30"], tmp_path)
    assert "mode tcp" in section(cfg, "defaults")
    front = section(cfg, "frontend edge")
    assert "bind 198.18.9.1:8443" in front and "acl allowed src 198.18.9.0/30" in front
    reads = section(cfg, "backend reads")
    assert "http-check send meth GET uri /healthz" in reads
    assert f"server h0 198.19.0.2:8443 check port 8442 {haproxy_cfg.CHECK}" in reads
    assert "server h1-last 198.19.0.3:8443 backup" in reads
    assert [b.address for b in endpoint.backends(record(), s)] == ["198.19.0.2:8443", "198.19.0.3:8443"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_guest_and_balancer_configurations(tmp_path):
    from featctl.provision.tls import ensure_endpoint_cert
    from featctl.workspace import Workspace

    s = settings(tmp_path, table='[endpoint]\nlisten = "127.0.0.1"\n')
    ensure_endpoint_cert(Workspace(tmp_path / "ws"), ["127.0.0.1"], tmp_path, client=True)
    (tmp_path / "tokens.map").write_text("")
    guest = endpoint_hosts.host_config(s, record(), 0, ["127.0.0.0/8"])
    guest = guest.replace("/opt/featctl/run/endpoint", str(tmp_path))
    for name, text in (
        ("guest.cfg", guest),
        ("front.cfg", endpoint_hosts.front_config(s, record(), ["127.0.0.0/8"], tmp_path)),
    ):
        (tmp_path / name).write_text(text)
        proc = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)


def test_the_certificate_of_hosts_with_peers_is_a_client_one_too(tmp_path):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from featctl.provision.tls import ensure_endpoint_cert
    from featctl.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ensure_endpoint_cert(ws, ["198.18.9.1"], tmp_path)
    first = (tmp_path / "edge.pem").read_bytes()
    ensure_endpoint_cert(ws, ["198.18.9.1"], tmp_path, client=True)  # made again: the old one is a server's only
    cert = x509.load_pem_x509_certificate((tmp_path / "edge.pem").read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage and ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert (tmp_path / "edge.pem").read_bytes() != first
    again = (tmp_path / "edge.pem").read_bytes()
    ensure_endpoint_cert(ws, ["198.18.9.1"], tmp_path, client=True)
    assert (tmp_path / "edge.pem").read_bytes() == again


def test_yandex_listens_where_terraform_put_its_load_balancer(tmp_path):
    s = settings(tmp_path, "yandex", "[endpoint]\n")
    with pytest.raises(FeatctlError, match="output `endpoint`"):
        endpoint.effective(s, record("yandex"))
    rec = record("yandex", outputs={"endpoint": {"address": "10.10.0.30"}})
    assert endpoint.url(endpoint.effective(s, rec)) == "https://10.10.0.30:8443"
    # before the load balancer exists, plan still says what comes
    [row] = endpoint.plan_rows(s, record("yandex"))
    assert row.change == "add"


def test_the_agent_parses_the_edge_commands():
    p = parser()
    args = p.parse_args(["edge-map", "--base", "/opt/featctl", "--add", "abc", "read:0", "--del", "def"])
    assert (args.add, args.delete) == (["abc", "read:0"], "def")
    for name in ("edge-apply", "edge-stat", "edge-stop"):
        assert p.parse_args([name, "--base", "/b"]).base == "/b"


class FakeEdge:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, object, object]] = []
        self.fail = fail

    def live(self) -> bool:
        return True

    def apply(self, map_text, *, add=None, delete=None):
        if self.fail:
            raise FeatctlError("host 1 is down")
        self.calls.append((map_text, add, delete))


def test_a_token_change_goes_to_every_host_and_a_failure_undoes_it(tmp_path):
    a, b = FakeEdge(), FakeEdge()
    new = tokens.create(tmp_path, "app", edges=[a, b])
    line = new.record.map_line()
    assert a.calls == b.calls == [(line + "\n", (new.record.sha256, line.split(" ", 1)[1]), None)]
    tokens.revoke(tmp_path, "app", edges=[a, b])
    assert a.calls[-1] == ("", None, new.record.sha256) and b.calls[-1] == a.calls[-1]
    ok, down = FakeEdge(), FakeEdge(fail=True)
    with pytest.raises(FeatctlError):
        tokens.create(tmp_path, "other", edges=[ok, down])
    assert tokens.load(tmp_path) == []  # nobody may use a token one host never got
    assert ok.calls[-1][0] == "" and ok.calls[-1][2] is not None  # the host that took it dropped it again
