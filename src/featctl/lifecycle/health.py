"""A release's health means "queries work": the server answers /health, and a
real online read of one entity of each materialized view succeeds (and finds
a value where the entity came from the view's data). The registry is checked
by the caller (the agent's describe)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from featctl.errors import FeatctlError
from featctl.query.server import FeatureServer
from featctl.remote.layout import Layout
from featctl.remote.releases import Release
from featctl.remote.ssh import Connection


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _entity_text(entity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in entity.items())


def check(server: FeatureServer, probe: Mapping[str, Any] | None, materialized: set[str] | None = None) -> Health:
    """Check one release's feature server against its probe (``agent probe``).

    ``materialized`` names the views that were materialized; a view outside it
    may legitimately have no value, so only its read is checked.
    """
    if not server.healthy():
        return Health(False, "its feature server does not answer /health")
    for view, p in sorted(((probe or {}).get("views") or {}).items()):
        entity = dict(p.get("entity") or {})
        feature = str(p.get("feature") or "")
        if not entity or not feature:
            continue
        try:
            statuses = server.online_statuses({k: [v] for k, v in entity.items()}, [f"{view}:{feature}"])
        except FeatctlError as exc:
            return Health(False, f"an online read of {view} failed: {exc.message}")
        status = (statuses.get(feature) or ["?"])[0]
        expect = bool(p.get("expect_value")) and (materialized is None or view in materialized)
        if expect and status == "NOT_FOUND":
            return Health(
                False,
                f"the online store has no {view} value for {_entity_text(entity)}, which was materialized "
                "(the online store lost data)",
            )
    return Health(True)


def materialized_views(registry: Mapping[str, Any]) -> set[str]:
    return {v["name"] for v in registry.get("feature_views", []) if v.get("last_materialized")}


def release_health(
    conn: Connection, layout: Layout, release: Release, port: int | None = None
) -> tuple[Health, dict[str, Any] | None]:
    """A release's health on its host, and its registry summary when readable.

    Checks that its server runs supervised, that its registry can be read, and
    the online reads of ``check``. The probe is computed when the release has
    none yet (releases from before health checks).
    """
    from featctl.remote import agent, service

    port = port or release.port
    if not release.running and service.running_pid(conn, layout, release.id) is None:
        return Health(False, "its feature server is not running"), None
    if release.unsupervised:
        return Health(False, f"its feature server (process group {release.server_group}) runs without its supervisor"), None
    repo = layout.release(release.id)
    try:
        registry = agent.run_agent(conn, layout, "describe", ["--check"], timeout=120, repo=repo)
    except FeatctlError as exc:
        return Health(False, f"its registry cannot be read: {exc.message}"), None
    problems = registry.pop("problems", [])
    if problems:
        return Health(False, problems[0]), registry
    probe = release.probe
    if probe is None:
        try:
            probe = agent.run_agent(conn, layout, "probe", timeout=300, repo=repo)
        except FeatctlError as exc:
            return Health(False, f"its probe could not be computed: {exc.message}"), registry
    if port is None:
        return Health(False, "its port is unknown"), registry
    server = FeatureServer(conn, port)
    try:
        return check(server, probe, materialized_views(registry)), registry
    finally:
        server.close()
