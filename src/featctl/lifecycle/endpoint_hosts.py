"""The application endpoint where the hosts are machines of their own (the vm
and yandex targets): an HAProxy on every host, in front of that host's feature
server, and a load balancer in front of the hosts.

* every host's HAProxy has the configuration of ``provision/haproxy_cfg.py``
  (TLS with the deployment's certificate, tokens, paths, body limits), bound
  on the host's own address; featctl renders it here and the host agent
  (``agent/edge.py``) writes, checks and runs it, as a systemd unit;
* in front: on yandex the internal network load balancer of
  terraform/yandex/endpoint.tf (the endpoint's address is its listener's); on
  vm featctl's TCP balancer on this machine plays it (``render_front``), on
  [endpoint] listen, with the same health check on every host's
  ``GET /healthz``. On vm the hosts' HAProxy admits only the balancer (the
  bridge's address), as a cloud load balancer's targets admit only it;
* tokens: ``HostEdge`` applies a token change to every host's running
  HAProxy (its tokens.map file and the runtime API), so a revoked token is
  refused everywhere at once.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from featctl.config import EndpointSettings, Settings
from featctl.errors import FeatctlError
from featctl.provision import haproxy
from featctl.provision.targets import host_health_port, host_peer_port
from featctl.remote.agent import hostops
from featctl.remote.layout import Layout
from featctl.remote.ssh import Connection
from featctl.session import Session
from featctl.workspace import Deployment

#: Targets whose hosts run the endpoint's HAProxy themselves.
HOST_TARGETS = ("vm", "yandex")
#: Where a host keeps its endpoint files (agent/edge.py's ``directory``).
HOST_DIR = ("run", "endpoint")


def on_hosts(settings: Settings) -> bool:
    return settings.target in HOST_TARGETS


def host_dir(record: Deployment, index: int) -> str:
    return str(Path(record.for_host(index).remote_base_dir, *HOST_DIR))


def balancer_source(record: Deployment) -> str:
    """The vm target's balancer reaches the guests from the bridge's address (.1)."""
    cidr = ((record.stack_vars or {}).get("network") or {}).get("cidr")
    if not cidr:
        raise FeatctlError(
            "the vm deployment's network is unknown (its record has no network)", hint="run `featctl deploy`"
        )
    return str(next(ipaddress.IPv4Network(cidr).hosts()))


def listen_address(settings: Settings, record: Deployment) -> str:
    """Where applications connect: the yandex load balancer's address, else [endpoint] listen."""
    ep = settings.endpoint
    assert ep is not None
    if settings.target == "yandex":
        out = (record.outputs or {}).get("endpoint") or {}
        if not out.get("address"):
            raise FeatctlError(
                "Terraform reported no endpoint address (output `endpoint`)",
                hint="run `featctl deploy` again: the stack makes the load balancer when [endpoint] is present",
            )
        return str(out["address"])
    return ep.listen


def host_config(settings: Settings, record: Deployment, index: int, allow: list[str]) -> str:
    """Host ``index``'s haproxy.cfg: its address, its own feature server."""
    ep = settings.endpoint
    assert ep is not None
    view = record.for_host(index)
    on_host = replace(ep, listen=view.host, health_port=host_health_port(ep))
    # On vm only the balancer connects (it passes connections on from this
    # machine's address); on yandex the load balancer keeps the client's.
    admitted = [f"{balancer_source(record)}/32"] if settings.target == "vm" else allow
    server = haproxy.Backend(f"h{index}", Layout(view.remote_base_dir).socket(int(view.server_port)))
    peer_port = host_peer_port(ep)
    peers = [
        haproxy.Backend(f"h{i}", f"{record.for_host(i).host}:{peer_port}")
        for i in range(record.host_count)
        if i != index
    ]
    return haproxy.render(
        on_host,
        allow=admitted,
        backends=[server],
        state_dir=Path(host_dir(record, index)),
        peers=peers,
        peer_port=peer_port,
    )


def front_config(settings: Settings, record: Deployment, allow: list[str], state_dir: Path) -> str:
    ep = settings.endpoint
    assert ep is not None
    hosts = [haproxy.Backend(f"h{i}", f"{record.for_host(i).host}:{ep.port}") for i in range(record.host_count)]
    return haproxy.render_front(ep, allow=allow, hosts=hosts, health_port=host_health_port(ep), state_dir=state_dir)


def push(session: Session, record: Deployment, allow: list[str], files: haproxy.Files) -> list[dict[str, Any]]:
    """Every host's HAProxy brought to its configuration, the certificate and
    tokens.map of ``files`` (started, or reloaded without dropping a request)."""
    answers = []
    for i in range(record.host_count):
        payload = {
            "haproxy.cfg": host_config(session.settings, record, i, allow),
            "edge.pem": files.edge_pem.read_text(),
            "ca.pem": files.ca_pem.read_text(),
            "tokens.map": files.tokens_map.read_text(),
        }
        conn = session.connection_to(record, i)
        try:
            answers.append(
                hostops(conn, _layout(record, i), "edge-apply", stdin=json.dumps(payload).encode(), timeout=120)
            )
        except FeatctlError as exc:
            raise haproxy.EndpointError(f"host {i}'s endpoint: {exc.message}") from None
    return answers


def stop(session: Session, record: Deployment) -> None:
    """Every host's endpoint HAProxy stopped and its files removed (tokens stay in the workspace)."""
    for i in range(record.host_count):
        try:
            hostops(session.connection_to(record, i), _layout(record, i), "edge-stop", timeout=60)
        except FeatctlError as exc:
            session.reporter.info(f"warning: host {i}'s endpoint was not stopped: {exc.message}")


def host_states(session: Session, record: Deployment) -> dict[str, haproxy.ServerState]:
    """Each host's feature server as its own HAProxy sees it (yandex: no balancer of featctl's to ask)."""
    out: dict[str, haproxy.ServerState] = {}
    for i in range(record.host_count):
        data = hostops(session.connection_to(record, i), _layout(record, i), "edge-stat", timeout=60)
        for s in haproxy.parse_stat(str(data.get("stat") or "")):
            if s.name == f"h{i}":  # its own server (the others are its peers, each host reports its own)
                out[s.name] = s
    return out


def _layout(record: Deployment, index: int) -> Layout:
    return Layout(record.for_host(index).remote_base_dir)


class HostEdge:
    """One host's HAProxy, for ``lifecycle/tokens.py``."""

    def __init__(self, conn: Connection, layout: Layout, index: int) -> None:
        self.conn, self.layout, self.index = conn, layout, index

    def live(self) -> bool:
        # A host whose HAProxy is down gets the file anyway: it reads it when it starts.
        return True

    def apply(self, map_text: str, *, add: tuple[str, str] | None = None, delete: str | None = None) -> None:
        args = [*(["--add", *add] if add else []), *(["--del", delete] if delete else [])]
        try:
            hostops(self.conn, self.layout, "edge-map", *args, stdin=map_text.encode(), timeout=60)
        except FeatctlError as exc:
            raise haproxy.EndpointError(
                f"host {self.index}'s endpoint did not take the token change: {exc.message}"
            ) from None


def edges(session: Session, record: Deployment) -> list[HostEdge]:
    return [HostEdge(session.connection_to(record, i), _layout(record, i), i) for i in range(record.host_count)]


def effective(settings: Settings, record: Deployment) -> EndpointSettings:
    """[endpoint] with the address applications connect to (yandex: the load balancer's)."""
    ep = settings.endpoint
    assert ep is not None
    return replace(ep, listen=listen_address(settings, record))
