"""Building a release beside the serving one and switching to it when it is
healthy (blue/green); shared by deploy and rollback."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featctl.errors import FeastError, FeatctlError
from featctl.lifecycle import endpoint, health, services
from featctl.lifecycle.common import iso, server_workers, shielded, utcnow
from featctl.lifecycle.materialize import materialize_views
from featctl.query.server import FeatureServer
from featctl.remote import agent, releases, service
from featctl.remote.layout import Layout
from featctl.repo.bundle import Bundle
from featctl.repo.stores import SPARK_FILES
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.remote.ssh import Connection


HEALTH_WAIT_SECONDS = 120.0


@dataclass
class BuiltRelease:
    """A release that was built and now serves."""

    id: str
    previous: str | None
    uploaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    materialized: list[dict[str, Any]] = field(default_factory=list)
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    #: PostgreSQL tables loaded from the release's parquet files (stores = postgres).
    loaded: list[dict[str, Any]] = field(default_factory=list)
    #: What the health check read (``agent probe``): other hosts check the same.
    probe: dict[str, Any] | None = None


def build_release(
    session: Session,
    record: Deployment,
    host: releases.HostState,
    local: Bundle,
    layout: Layout,
    files: releases.FilePlan,
    *,
    fresh: bool = False,
    full: bool = False,
) -> BuiltRelease:
    """Build a new release beside the serving one and switch to it when it is healthy.

    ``fresh``: the serving release is unhealthy, so none of its Feast state
    (registry, online store) is copied; the new release applies and
    materializes everything from the offline data. Either way it switches only
    when its own health check passes. Any failure leaves the previous release
    serving and names the failed step.
    """
    s = session.settings
    rep = session.reporter
    conn = session.connection(record)
    cur = host.current_release
    new_id = releases.new_release_id()
    port = next(p for p in record.server_ports if cur is None or p != cur.port)
    built = BuiltRelease(id=new_id, previous=cur.id if cur else None)
    step = "preparing the release"
    try:
        rep.step(f"preparing release {new_id}" + (" from the uploaded files only" if fresh else ""))
        releases.prepare(conn, layout, new_id, fresh=fresh)
        step = "the upload"
        rep.step("uploading the feature repository")
        todo = files.upload
        bar = rep.progress(f"{len(todo)} file(s)", releases.upload_size(local, todo))
        try:
            up = releases.upload(
                conn,
                local,
                layout,
                new_id,
                files,
                on_file=lambda path, size: rep.detail(f"{path} ({size} bytes)"),
                on_bytes=bar.advance,
            )
        finally:
            bar.close()
        built.uploaded, built.removed = up.uploaded, up.removed
        if cur is not None and not fresh:
            agent.run_agent(
                conn, layout, "rebase", ["--from", layout.release(cur.id)], timeout=120, repo=layout.release(new_id)
            )
        changed = set(up.uploaded)
        tables = _postgres_tables(local)
        if tables:
            step = "loading the data into PostgreSQL"
            rep.step("loading new parquet sources into PostgreSQL")
            loads = agent.run_agent(
                conn, layout, "load-postgres", timeout=s.command_timeout, repo=layout.release(new_id)
            )
            built.loaded = list(loads.get("loaded", []))
            # A view reads a table per file content: a changed file is a new table.
            changed |= {f"postgres:{t}" for t, rel in tables.items() if rel in changed}
            changed |= {f"postgres:{d['table']}" for d in built.loaded}
        if SPARK_FILES in local.contents:
            step = "preparing the data for Spark"
            rep.step("writing Spark-readable copies of new parquet sources")
            agent.run_agent(conn, layout, "prepare-spark", timeout=s.command_timeout, repo=layout.release(new_id))
        step = "feast apply"
        rep.step("feast apply")
        agent.feast_apply(conn, layout, layout.release(new_id), timeout=s.command_timeout)
        step = "starting the feature server"
        rep.step(f"starting the feature server of release {new_id}")
        releases.set_meta(conn, layout, new_id, port=port, env=layout.env_name, workers=server_workers(s))
        service.start(conn, layout, new_id, port=port, workers=server_workers(s))
        server = FeatureServer(conn, port)
        wait_healthy(conn, layout, new_id, server)
        step = "materialization"
        described = agent.run_agent(conn, layout, "describe", timeout=120, repo=layout.release(new_id))
        store = described.get("online_store")
        # A new or other online store (sqlite -> Redis, another Redis db, a changed
        # section) holds none of what the registry records as materialized.
        other_store = cur is not None and cur.online_store != store
        if other_store and not fresh and cur is not None:
            rep.info(
                f"the online store differs from release {cur.id}'s"
                + ("" if cur.online_store else " (or was not recorded)")
                + ": materializing every view in full"
            )
        rep.step("materializing")
        built.materialized = materialize_views(
            session,
            record,
            repo=layout.release(new_id),
            server=server,
            layout=layout,
            changed_files=changed,
            full=full or fresh or other_store,
            described=described,
        )
        step = "the health check"
        rep.step(f"checking release {new_id} (an online read of each view)")
        registry = agent.run_agent(conn, layout, "describe", ["--check"], timeout=120, repo=layout.release(new_id))
        problems = registry.pop("problems", [])
        probe = built.probe = agent.run_agent(conn, layout, "probe", timeout=300, repo=layout.release(new_id))
        verdict = (
            health.Health(False, problems[0])
            if problems
            else health.check_workers(
                lambda: FeatureServer(conn, port), server_workers(s), probe, health.materialized_views(registry)
            )
        )
        server.close()
        if not verdict:
            raise FeastError(f"release {new_id} is unhealthy: {verdict.reason}")
        releases.set_meta(conn, layout, new_id, online_store=store)
    except BaseException as exc:
        _abandon(conn, layout, new_id)
        if isinstance(exc, FeatctlError):
            kept = (
                (f"release {cur.id} keeps serving" + (" (unhealthy)" if fresh else ""))
                if cur
                else "nothing was serving before"
            )
            exc.message = f"deploy failed at {step}; {kept}: {exc.message}"
        raise
    step = "the switch"
    with shielded():
        rep.step(f"switching to release {new_id}")
        releases.switch(conn, layout, new_id)
        record.release, record.server_port, record.registry, record.stage = new_id, port, registry, "deployed"
        record.env_name = layout.env_name
        record.last_materialized = max((m["end"] for m in built.materialized), default=record.last_materialized)
        record.deployed_at = iso(utcnow())
        session.workspace.save(record)
    session.close_server()
    endpoint.after_switch(session, record)
    if cur is not None:
        rep.step(f"stopping release {cur.id}")
        service.stop(conn, layout, cur.id)
    if record.services:
        rep.step(f"starting Feast's {', '.join(sorted(record.services))} server(s) of release {new_id}")
        for problem in services.restart_for(conn, layout, record, new_id):
            rep.info(f"warning: {problem}")
    built.cleaned = releases.cleanup(conn, layout, prune_envs=True)
    return built


def _postgres_tables(local: Bundle) -> dict[str, str]:
    """Table -> release file of the parquet sources moved to PostgreSQL."""
    import json

    from featctl.repo.stores import TABLES_FILE

    raw = local.contents.get(TABLES_FILE)
    return dict(json.loads(raw)) if raw else {}


def _abandon(conn: Connection, layout: Layout, release_id: str) -> None:
    """Stop and mark a release that did not make it (best effort: the next deploy cleans up)."""
    try:
        service.stop(conn, layout, release_id)
        releases.set_meta(conn, layout, release_id, state="failed")
    except Exception:  # a dead connection raises paramiko's own types; the cause is reported
        pass


def wait_healthy(conn: Connection, layout: Layout, release_id: str, server: FeatureServer) -> None:
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    while True:
        if server.healthy():
            return
        if service.running_pid(conn, layout, release_id) is None:
            raise FeastError(f"the feature server exited: {service.tail_log(conn, layout, release_id, 1) or 'no log'}")
        if time.monotonic() > deadline:
            raise FeastError(
                f"the feature server did not become healthy within {HEALTH_WAIT_SECONDS:.0f} s: "
                f"{service.tail_log(conn, layout, release_id, 1) or 'no log'}"
            )
        time.sleep(0.5)
