"""``featctl materialize``: through the running feature server (no Feast
start-up cost), as one HTTP request through the tunnel when only incremental
work is left."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from featctl.errors import FeatctlError, UsageError
from featctl.lifecycle.common import EPOCH, holder, iso, refuse_unknown_views, utcnow
from featctl.query.server import FeatureServer
from featctl.remote import agent, releases
from featctl.remote.layout import Layout
from featctl.session import Session
from featctl.workspace import Deployment


def check_range(start: datetime | None, end: datetime | None, now: datetime | None = None) -> None:
    """A range is both bounds or neither, starts before it ends, and lies in
    the past: Feast records a range's end as the view's last materialization,
    and the next incremental run starts there, so a range ending tomorrow would
    leave every row that arrives until then out of the online store for good."""
    if (start is None) != (end is None):
        raise UsageError("--start and --end go together: give both for a range, or neither for incremental")
    if start is None or end is None:
        return
    if start >= end:
        raise UsageError("--start must be before --end")
    now = now or datetime.now(timezone.utc)
    for option, value in (("--start", start), ("--end", end)):
        if value > now:
            raise UsageError(
                f"{option} {iso(value)} is in the future (now {iso(now.replace(microsecond=0))}): a range must end "
                "by now, or the rows that arrive until then are never loaded; `featctl materialize` without "
                "--start/--end loads up to now"
            )


#: not_materialized's reason for a source of 0 rows.
EMPTY = "empty source: 0 rows"


def not_materialized(desc: dict[str, Any], skip: Sequence[str] = ()) -> dict[str, str]:
    """View -> why deploy and ``materialize`` leave it out: ``online=False``
    (Feast serves it offline only), ``[materialize] skip`` in featctl.toml (a
    view Feast cannot materialize), or an empty source (0 rows: nothing to load;
    Feast's file store fails on one instead of loading nothing)."""
    why: dict[str, str] = {}
    for v in desc.get("feature_views", []):
        if not v.get("online", True):
            why[v["name"]] = "online=False"
        elif v["name"] in skip:
            why[v["name"]] = "[materialize] skip in featctl.toml"
        elif v.get("source_rows") == 0:
            why[v["name"]] = EMPTY
    return why


def unknown_skips(desc: dict[str, Any], skip: Sequence[str]) -> list[str]:
    """Names in ``[materialize] skip`` that no feature view of ``desc`` has."""
    named = {v["name"] for v in desc.get("feature_views", [])}
    return [v for v in skip if v not in named]


def skipped_note(why: dict[str, str]) -> str:
    return "not materialized: " + ", ".join(f"{name} ({reason})" for name, reason in sorted(why.items()))


def materialize_views(
    session: Session,
    record: Deployment,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    views: list[str] | None = None,
    repo: str | None = None,
    server: FeatureServer | None = None,
    layout: Layout | None = None,
    changed_files: set[str] | None = None,
    full: bool | set[str] = False,
    described: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Materialize through the running feature server (no Feast start-up cost).

    With ``start`` and ``end`` the range is materialized. Otherwise views that
    were never materialized get all their data (from the epoch: Feast's
    incremental mode would start at now minus the TTL and leave older rows
    out), and the others are materialized incrementally up to now. A view
    whose source file is among ``changed_files`` (release paths, as the
    registry's sources read them after ``feast apply``) is loaded in full again:
    its rows may have changed behind the last materialization. ``full`` (True,
    or a set of view names) loads those views in full whatever the registry
    says: an online store that is new or another one than the serving
    release's holds nothing of what the registry records as materialized.
    ``described`` is the agent's ``describe`` of ``repo`` when the caller has it.
    """
    check_range(start, end)
    conn = session.connection(record)
    layout = layout or session.layout(record)
    desc = described if described is not None else agent.run_agent(conn, layout, "describe", timeout=120, repo=repo)
    online = _views_to_load(session, desc, views)
    if not online:
        return []
    server = server or session.server(record)
    timeout = session.settings.command_timeout
    end_ts = end or utcnow()
    done: list[dict[str, Any]] = []
    if start is not None:
        if start >= end_ts:
            raise UsageError("--start must be before --end")
        names = [v["name"] for v in online]
        server.materialize(iso(start), iso(end_ts), names, timeout=timeout)
        done = [{"view": n, "mode": "range", "start": iso(start), "end": iso(end_ts)} for n in names]
    else:
        changed = changed_files or set()
        first = [
            v["name"]
            for v in online
            if not v.get("last_materialized")
            or v.get("source") in changed
            or full is True
            or (isinstance(full, set) and v["name"] in full)
        ]
        rest = [v for v in online if v["name"] not in first]
        if first:
            server.materialize(EPOCH, iso(end_ts), first, timeout=timeout)
            done += [{"view": n, "mode": "all data", "start": EPOCH, "end": iso(end_ts)} for n in first]
        if rest:
            server.materialize_incremental(iso(end_ts), [v["name"] for v in rest], timeout=timeout)
            done += [
                {"view": v["name"], "mode": "incremental", "start": v["last_materialized"], "end": iso(end_ts)}
                for v in rest
            ]
    return done


def _views_to_load(session: Session, desc: dict[str, Any], views: list[str] | None) -> list[dict[str, Any]]:
    """The online views to materialize (all, or those named), each left out
    said in one line; a view named that cannot be loaded is an error."""
    skip = session.settings.materialize_skip
    left_out = not_materialized(desc, skip)
    all_views = desc.get("feature_views", [])
    online = [v for v in all_views if v.get("online", True)]
    if views:
        known = {v["name"] for v in online}
        offline = [v["name"] for v in all_views if v["name"] in views and not v.get("online", True)]
        if offline:
            raise UsageError(f"{', '.join(offline)}: online=False, nothing to materialize (historical reads it)")
        unknown = [v for v in views if v not in known]
        if unknown:
            raise UsageError(f"unknown feature view(s) {', '.join(unknown)}; deployed: {', '.join(sorted(known))}")
        named = [v for v in views if v in skip]
        if named:
            raise UsageError(
                f"{', '.join(named)}: left out by [materialize] skip in featctl.toml; remove it there to materialize it"
            )
        left_out = {n: r for n, r in left_out.items() if n in views}
        online = [v for v in online if v["name"] in views]
    missing = unknown_skips(desc, skip)
    if missing and not views:
        session.reporter.info(f"[materialize] skip names {', '.join(missing)}, which the repository does not define")
    if left_out:
        session.reporter.info(skipped_note(left_out))
    return [v for v in online if v["name"] not in left_out]


def materialize(
    session: Session, *, start: datetime | None = None, end: datetime | None = None, views: list[str] | None = None
) -> list[dict[str, Any]]:
    check_range(start, end)  # before any connection
    record = session.deployment()
    known = {v["name"] for v in (record.registry or {}).get("feature_views", [])}
    refuse_unknown_views(views, known, "unknown feature view(s)", "deployed")
    ws = session.workspace
    with ws.lock():
        done = _materialize_fast(session, record, views) if start is None else None
        if done is None:
            conn = session.connection(record)
            layout = session.layout(record)
            with releases.deploy_lock(conn, layout, holder("materialize")):
                done = materialize_views(session, record, start=start, end=end, views=views)
        done += _repair(session, record, views)
        if done:
            record.last_materialized = max(d["end"] for d in done)
            ws.save(record)
    return done


def _repair(session: Session, record: Deployment, views: list[str] | None) -> list[dict[str, Any]]:
    """Check the online values against the serving release's probe and load a
    view that is wrong (an online store that lost or never got its data: a
    flushed Redis, a store moved to without a full load) in full again.

    A view still wrong after that is an error: never a silent wrong number."""
    from featctl.errors import FeastError
    from featctl.lifecycle import health

    probe = record.probe
    if not probe:
        cur = releases.state(session.connection(record), session.layout(record)).current_release
        probe = (cur.probe if cur else None) or {}
    if views:
        probe = {**probe, "views": {v: p for v, p in (probe.get("views") or {}).items() if v in views}}
    materialized = health.materialized_views(record.registry or {}) or None
    server = session.query_server(record)
    wrong = health.wrong_views(server, probe, materialized)
    if not wrong:
        return []
    end_ts = iso(utcnow())
    session.reporter.info(
        "the online store is missing data ("
        + "; ".join(wrong.values())
        + "): loading "
        + ", ".join(sorted(wrong))
        + " in full"
    )
    server.materialize(EPOCH, end_ts, sorted(wrong), timeout=session.settings.command_timeout)
    still = health.wrong_views(server, probe, materialized)
    if still:
        raise FeastError(
            f"{', '.join(sorted(still))} still wrong after a full materialization: {next(iter(still.values()))}"
        )
    return [{"view": v, "mode": "repaired (all data)", "start": EPOCH, "end": end_ts} for v in sorted(wrong)]


def _materialize_fast(session: Session, record: Deployment, views: list[str] | None) -> list[dict[str, Any]] | None:
    """Incremental materialization as one HTTP request through the workspace's
    tunnel process: no SSH handshake and no paramiko import.

    Only when every view was materialized before (a deploy materializes each
    new view in full before it serves), so "incremental" is all there is to
    do. Returns None when the full path (SSH, host lock, registry read) is needed.
    """
    import os

    from featctl.query import tunnel

    if os.environ.get("FEATCTL_NO_TUNNEL") == "1" or tunnel.available(session.workspace.root) is None:
        tunnel.start_background(session.workspace.root)
        return None
    left_out = not_materialized(record.registry or {}, session.settings.materialize_skip)
    if EMPTY in left_out.values():
        return None  # an empty source may have rows now: the full path reads the registry anew
    online = [v for v in (record.registry or {}).get("feature_views", []) if v["name"] not in left_out]
    if not online or any(not v.get("last_materialized") for v in online):
        return None
    known = {v["name"] for v in online}
    if views and any(v not in known for v in views):
        return None  # the full path names the unknown views
    names = list(views) if views else sorted(known)
    end_ts = iso(utcnow())
    server = session.query_server(record)
    try:
        server.materialize_incremental(end_ts, names, timeout=session.settings.command_timeout)
    except FeatctlError:
        session.close_server()
        return None  # e.g. a stale port after a deploy from elsewhere: the full path finds the right server
    return [{"view": n, "mode": "incremental", "start": None, "end": end_ts} for n in names]
