"""``featctl rollback``: serve the previous release again, blue/green like a deploy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featctl.errors import FeastError, FeatctlError, UsageError
from featctl.lifecycle import endpoint, health, ownership, services
from featctl.lifecycle.common import holder, iso, server_workers, shielded, utcnow
from featctl.lifecycle.materialize import materialize_views
from featctl.lifecycle.release import wait_healthy
from featctl.query.server import FeatureServer
from featctl.remote import agent, releases, service
from featctl.session import Session


@dataclass
class RollbackResult:
    release: str
    previous_release: str
    materialized: list[dict[str, Any]] = field(default_factory=list)


def rollback(session: Session, *, take_over: bool = False) -> RollbackResult:
    """Serve the release before the current one again (blue/green, like a deploy),
    once its server passes the same health check a new release must pass."""
    record = session.deployment()
    ws = session.workspace
    rep = session.reporter
    with ws.lock():
        conn = session.connection(record)
        layout = session.layout(record)
        ownership.check(conn, layout, record, ws, take_over=take_over)
        with releases.deploy_lock(conn, layout, holder("rollback")):
            releases.cleanup(conn, layout, stop_idle=True)
            host = releases.state(conn, layout)
            cur = host.current_release
            if cur is None:
                raise UsageError("nothing is serving on the host; run `featctl deploy`")
            earlier = [r for r in host.releases if r.state == "ready" and r.id < cur.id]
            if not earlier:
                raise UsageError(f"release {cur.id} is the oldest one kept; there is nothing to roll back to")
            target = earlier[-1]
            layout = layout.with_env(target.env)  # the target runs with the environment it was built with
            ports = record.server_ports or [record.server_port]
            port = next((p for p in ports if p != cur.port), ports[0])
            try:
                rep.step(f"starting the feature server of release {target.id}")
                releases.set_meta(conn, layout, target.id, port=port, workers=server_workers(session.settings))
                service.start(conn, layout, target.id, port=port, workers=server_workers(session.settings))
                server = FeatureServer(conn, port)
                wait_healthy(conn, layout, target.id, server)
                if "postgres" in record.stores:
                    # The SQL registry is shared by every release: put the
                    # target's definitions back into it.
                    rep.step(f"feast apply (release {target.id}'s definitions into the shared registry)")
                    agent.feast_apply(
                        conn, layout, layout.release(target.id), timeout=session.settings.command_timeout
                    )
                # Its store must answer before anything is written to it or it serves.
                rep.step(f"checking release {target.id} (an online read of each view)")
                registry = agent.run_agent(
                    conn, layout, "describe", ["--check"], timeout=120, repo=layout.release(target.id)
                )
                problems = registry.pop("problems", [])
                probe = target.probe or agent.run_agent(
                    conn, layout, "probe", timeout=300, repo=layout.release(target.id)
                )
                verdict = (
                    health.Health(False, problems[0])
                    if problems
                    else health.check_workers(
                        lambda: FeatureServer(conn, port),
                        server_workers(session.settings),
                        probe,
                        health.materialized_views(registry),
                    )
                )
                if not verdict:
                    raise FeastError(f"release {target.id} is unhealthy: {verdict.reason}")
                rep.step("materializing (catching up)")
                done = materialize_views(session, record, repo=layout.release(target.id), server=server, layout=layout)
                registry = agent.run_agent(conn, layout, "describe", timeout=120, repo=layout.release(target.id))
                server.close()
            except BaseException as exc:
                service.stop(conn, layout, target.id)
                if isinstance(exc, FeatctlError):
                    exc.message = f"rollback failed; release {cur.id} keeps serving: {exc.message}"
                raise
            with shielded():
                rep.step(f"switching to release {target.id}")
                releases.switch(conn, layout, target.id)
                record.release, record.server_port, record.registry = target.id, port, registry
                record.env_name = layout.env_name
                record.probe = probe or {}
                record.deployed_at = iso(utcnow())
                ws.save(record)
            ownership.claim(conn, layout, record, ws)
            ws.save(record)
            session.close_server()
            endpoint.after_switch(session, record)
            rep.step(f"stopping release {cur.id}")
            service.stop(conn, layout, cur.id)
            for problem in services.restart_for(conn, layout, record, target.id):
                rep.info(f"warning: {problem}")
            # The other hosts follow, one at a time (host 0 already serves the target).
            from featctl.lifecycle.hosts import roll_back_follower

            for index in range(1, record.host_count):
                for message in roll_back_follower(session, record, index).messages:
                    rep.info(message)
                ws.save(record)
    return RollbackResult(release=target.id, previous_release=cur.id, materialized=done)
