"""``featctl status``: what is deployed and whether it answers. Never imports Feast locally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from featctl.errors import FeatctlError, HostKeyMismatch, SSHError
from featctl.lifecycle.health import release_health
from featctl.lifecycle.services import connection_info
from featctl.remote import agent, releases
from featctl.remote.keys import fingerprint
from featctl.session import Session


@dataclass
class Status:
    info: dict[str, Any]
    views: list[dict[str, Any]]
    #: One row per feature service (its features) and per push source (the views it feeds).
    services: list[dict[str, Any]] = field(default_factory=list)
    push_sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """SSH answers and every host's feature server serves healthy
        (``featctl status`` exits ExitCode.UNHEALTHY otherwise)."""
        return (
            self.info.get("ssh") == "answers"
            and str(self.info.get("feature_server", "")).startswith("healthy")
            and "repair" not in self.info
        )


def status(session: Session) -> Status:
    """What is deployed and whether it answers. Never imports Feast locally."""
    record = session.workspace.require()
    info: dict[str, Any] = {
        "target": record.target,
        "name": record.name,
        "stage": record.stage,
        "host": f"{record.user}@{record.host}:{record.port}" if record.host else None,
        "remote_base_dir": record.remote_base_dir or None,
        "host_key": fingerprint(record.host_public_key) if record.host_public_key else None,
        "feast_version": record.feast_version or None,
        "deployed_at": record.deployed_at,
        "repo": record.repo,
        "terraform_outputs": {k: v for k, v in record.outputs.items() if k != "host_public_key"},
    }
    if record.stores:
        # Where they are and what they are; never a password.
        info["stores"] = {
            store: f"{where['host']}:{where['port']}"
            + (" (TLS)" if where.get("tls") or where.get("sslmode") in ("require", "verify-ca", "verify-full") else "")
            for store, where in sorted(record.stores.items())
        }
        from featctl.provision.machine import store_servers

        if servers := store_servers(record):
            info["store_servers"] = servers
    try:
        conn = session.connection(record)
        info["ssh"] = "answers"
    except HostKeyMismatch:
        raise  # a security problem, not a status line
    except SSHError as exc:
        info["ssh"] = f"no answer: {exc}"
        info["feature_server"] = "unknown (no SSH)"
        return _status(info, record.registry, stale=True, skip=session.settings.materialize_skip)
    layout = session.layout(record)
    host = releases.state(conn, layout)
    cur = host.current_release
    info["release"] = cur.id if cur else None
    info["releases_kept"] = [r.id for r in host.releases if r.state == "ready"]
    desc: dict[str, Any] | None = None
    if cur is None:
        info["feature_server"] = "not running (nothing deployed)"
    else:
        if cur.port and cur.port != record.server_port:
            record.server_port = cur.port  # the host is the source of truth
        layout = layout.with_env(cur.env)
        verdict, desc = release_health(conn, layout, cur)
        where = f"{layout.socket(int(cur.port))} (host side)" if cur.port else "no port (host side)"
        info["feature_server"] = (
            f"healthy on {where}" + (f" ({verdict.detail})" if verdict.detail else "")
            if verdict
            else f"unhealthy on {where}: {verdict.reason}"
        )
        info["supervised_by"] = _supervisor(cur, host.keeper)
        if cur.restarted and not cur.unit:
            info["restarted"] = f"the feature server was restarted at {cur.restarted}"
        if not verdict:
            info["repair"] = "`featctl deploy` builds a new release from the offline data"
    stray = [r.id for r in host.releases if r.id != host.current and r.running]
    if stray:
        info["stray_servers"] = f"release(s) {', '.join(stray)} still run a server; the next deploy stops them"
    if host.lock:
        h = host.lock
        info["deploy_lock"] = (
            f"held by {h.get('user', '?')}@{h.get('client', '?')} ({h.get('command', '?')}) since {h.get('since', '?')}"
        )
    if host.schedule:
        info["schedule"] = host.schedule
    if host.verify:
        v = host.verify
        info["last_verify"] = v
        left = int(v.get("wrong") or 0) - int(v.get("repaired") or 0)
        if cur is not None and v.get("release") == cur.id and left > 0 and "repair" not in info:
            # Wrong values the serving release still serves: not healthy.
            info["repair"] = (
                f"the last verify ({v.get('when')}) found {left} wrong online value(s) it did not repair: "
                "`featctl verify --repair`"
            )
    if record.services:
        running = (cur.services if cur else {}) or {}
        info["feast_servers"] = {
            name: f"{'running' if name in running else 'not running'} on the host's 127.0.0.1:{port}"
            for name, port in sorted(record.services.items())
        }
    connected = connection_info(session.workspace.root)
    if connected:
        f = connected["forwards"]
        info["connect"] = (
            f"forwarding 127.0.0.1:{f['online']} (online), :{f['registry']} (registry), :{f['offline']} (offline); "
            f"client config {connected['out']}/feature_store.yaml"
        )
    stale = False
    try:
        desc = desc or agent.run_agent(conn, layout, "describe", timeout=120)
        info["project"] = desc.get("project")
    except FeatctlError as exc:
        info["registry"] = f"unavailable: {exc}"
        desc, stale = record.registry, True
    if record.host_count > 1:
        from featctl.lifecycle.hosts import host_status

        probe = cur.probe if cur is not None else None
        info["hosts"] = [
            {
                "host": 0,
                "address": f"{record.host}:{record.port}",
                "release": info.get("release"),
                "feature_server": info.get("feature_server"),
            },
            *(host_status(session, record, i, probe) for i in range(1, record.host_count)),
        ]
        down = [h["host"] for h in info["hosts"] if not str(h.get("feature_server", "")).startswith("healthy")]
        if down:
            info["repair"] = f"host(s) {', '.join(map(str, down))} not serving; `featctl deploy` heals them"
    return _status(info, desc, stale=stale, skip=session.settings.materialize_skip)


def _status(info: dict[str, Any], desc: dict[str, Any], *, stale: bool, skip: Sequence[str] = ()) -> Status:
    services = [
        {"feature_service": s["name"], "features": ", ".join(s.get("features", []))}
        for s in desc.get("feature_services", [])
    ]
    pushes = [
        {
            "push_source": p["name"],
            "views": ", ".join(p.get("views", [])) or "none (a push would fail)",
            "timestamp_field": p.get("timestamp_field"),
            "batch_source": p.get("batch_source"),
        }
        for p in desc.get("push_sources", [])
    ]
    return Status(info, _views_from(desc, stale=stale, skip=skip), services, pushes)


def _supervisor(release: releases.Release, keeper: int | None = None) -> str:
    """Who keeps the serving release's feature server running."""
    if release.unit:
        pid = f", main pid {release.server_pid}" if release.server_pid else ", not running"
        return f"systemd (unit {release.unit}.service{pid})"
    if release.server_pid:
        kept = f", kept by the deployment's keeper (pid {keeper})" if keeper else ""
        return f"featctl's supervisor (pid {release.server_pid}){kept}"
    if release.server_group:
        return f"nobody: its supervisor is gone (process group {release.server_group} runs on)"
    return "nobody (not running)"


def _views_from(desc: dict[str, Any], *, stale: bool = False, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per view of every kind the registry holds; a view deploy leaves
    unmaterialized says why in its last_materialized."""
    from featctl.lifecycle.materialize import not_materialized

    rows = []
    left_out = not_materialized(desc, skip)
    for v in desc.get("feature_views", []):
        rows.append(
            {
                "view": v["name"],
                "kind": v.get("kind", "feature view"),
                "features": ", ".join(f["name"] for f in v.get("features", [])),
                "ttl_seconds": v.get("ttl_seconds"),
                "last_materialized": (f"not materialized: {left_out[v['name']]}" if v["name"] in left_out else None)
                or v.get("last_materialized")
                or ("never" if not stale else None),
            }
        )
    for v in desc.get("on_demand_feature_views", []):
        rows.append(
            {
                "view": v["name"],
                "kind": "on-demand view",
                "features": ", ".join(f["name"] for f in v.get("features", [])),
                "ttl_seconds": None,
                "last_materialized": None,
            }
        )
    for v in desc.get("label_views", []):
        rows.append(
            {
                "view": v["name"],
                "kind": "label view",
                "features": ", ".join(f["name"] for f in v.get("features", [])),
                "ttl_seconds": None,
                "last_materialized": "pushed only",
            }
        )
    return rows
