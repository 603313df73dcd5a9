"""A release's health means "queries give the right numbers": the server
answers /health, and a real online read of one entity of each materialized
view returns the values of the offline data's newest row for it (or newer
ones). A null where the data has a value is unhealthy: Feast's Redis store
answers PRESENT with nulls for a key it never got. The registry is checked by
the caller (the agent's describe)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
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
    #: How the check reached the server's workers (e.g. "read through 2 of 2 workers").
    detail: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _entity_text(entity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in entity.items())


def _when(text: Any) -> datetime | None:
    """An ISO time to whole seconds: Feast's online stores keep event times to
    the second (a source's 14:31:54.294 comes back as 14:31:54)."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).replace(microsecond=0)


def _same(online: Any, offline: Any) -> bool:
    if isinstance(offline, bool) or isinstance(online, bool):
        return online == offline
    if isinstance(offline, (int, float)):
        try:
            return math.isclose(float(online), float(offline), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return bool(online == offline)


def _compare(view: str, p: Mapping[str, Any], answer: Mapping[str, Mapping[str, list[Any]]]) -> str | None:
    """Why the online store does not hold the probe row's values (or newer ones), or None."""
    entity = _entity_text(p.get("entity") or {})
    expected_at = _when(p.get("event_ts"))
    wanted: dict[str, Any] = dict(p.get("values") or {})
    wanted.update((f, ...) for f in p.get("present") or [])
    for feature, value in wanted.items():
        got = answer.get(feature) or {}
        status = (got.get("statuses") or ["?"])[0]
        online = (got.get("values") or [None])[0]
        stamps = got.get("event_timestamps") or []
        online_at = _when(stamps[0]) if stamps and status != "NOT_FOUND" else None
        if online_at is not None and expected_at is not None and online_at > expected_at:
            continue  # a push or a later materialization wrote a newer value
        if status == "NOT_FOUND" or online is None:
            return (
                f"the online store has no {view}:{feature} value for {entity}, which was materialized "
                "(the online store lost or never got the data)"
            )
        if online_at is not None and expected_at is not None and online_at < expected_at:
            return (
                f"the online store holds {view}:{feature} of {online_at.isoformat()} for {entity}, older than the "
                f"offline data's {expected_at.isoformat()} that was materialized"
            )
        if value is not ... and not _same(online, value):
            return (
                f"the online store holds {view}:{feature} = {online!r} for {entity} where the offline data has "
                f"{value!r}"
            )
    return None


def check(server: FeatureServer, probe: Mapping[str, Any] | None, materialized: set[str] | None = None) -> Health:
    """Check one release's feature server against its probe (``agent probe``).

    For each view the probe's entity is read online; where the view was
    materialized (``materialized``; None: every view) the values must equal
    the offline data's newest row for that entity, or be newer (a push or a
    later materialization). A view outside ``materialized`` may legitimately
    have no value, so only its read is checked.
    """
    if not server.healthy():
        return Health(False, "its feature server does not answer /health")
    found = wrong_views(server, probe, materialized, first=True)
    return Health(False, next(iter(found.values()))) if found else Health(True)


def check_workers(
    connect: Callable[[], FeatureServer],
    workers: int,
    probe: Mapping[str, Any] | None,
    materialized: set[str] | None = None,
    *,
    attempts: int | None = None,
) -> Health:
    """``check`` through every worker of a server: each read on a fresh
    connection, which a worker of the kernel's choosing takes; the worker that
    answered says its pid (featctl's /info), so reads go on until each of
    ``workers`` has answered right or ``attempts`` connections were made. A
    store that only one process can hold (milvus-lite) fails in the others:
    one healthy worker must not make the server healthy."""
    seen: set[int] = set()
    tries = attempts if attempts is not None else 6 * workers
    for _ in range(max(1, tries)):
        server = connect()
        try:
            try:
                info = server.featctl_info() if workers > 1 else None
            except FeatctlError:
                info = None  # a server that does not answer: check() says so
            pid = info.get("pid") if info else None
            if isinstance(pid, int) and pid in seen:
                continue
            verdict = check(server, probe, materialized)
            if not verdict:
                where = f"worker {pid}" if isinstance(pid, int) else "a worker"
                return Health(False, f"{where} of {workers}: {verdict.reason}" if workers > 1 else verdict.reason)
            if not isinstance(pid, int):  # a release from before /info's pid: one read is all it can tell
                return Health(True)
            seen.add(pid)
        finally:
            server.close()
        if len(seen) >= workers:
            break
    return Health(True, detail=f"read through {len(seen)} of {workers} workers" if workers > 1 else None)


def wrong_views(
    server: FeatureServer, probe: Mapping[str, Any] | None, materialized: set[str] | None = None, *, first: bool = False
) -> dict[str, str]:
    """View -> why its online read is wrong (see ``check``); ``first``: stop at the first."""
    found: dict[str, str] = {}
    for view, p in sorted(((probe or {}).get("views") or {}).items()):
        entity = dict(p.get("entity") or {})
        feature = str(p.get("feature") or "")
        if not entity or not feature:
            continue
        expect = bool(p.get("expect_value")) and (materialized is None or view in materialized)
        features = [feature] + [f for f in [*(p.get("values") or {}), *(p.get("present") or [])] if f != feature]
        try:
            answer = server.online_read({k: [v] for k, v in entity.items()}, [f"{view}:{f}" for f in features])
        except FeatctlError as exc:
            found[view] = f"an online read of {view} failed: {exc.message}"
        else:
            why = _compare(view, p, answer) if expect else None
            if expect and not ("values" in p or "present" in p):  # a probe from before value checks
                status = ((answer.get(feature) or {}).get("statuses") or ["?"])[0]
                why = (
                    f"the online store has no {view} value for {_entity_text(entity)}, which was materialized "
                    "(the online store lost data)"
                    if status == "NOT_FOUND"
                    else None
                )
            if why:
                found[view] = why
        if found and first:
            break
    return found


def _compares_values(probe: Mapping[str, Any]) -> bool:
    """Whether ``probe`` (cached with its release) checks values: releases from
    before value checks cached one that only checks presence, which Feast's Redis
    store answers for keys it never got."""
    views = (probe.get("views") or {}).values()
    return all("values" in p or not p.get("expect_value") for p in views)


def materialized_views(registry: Mapping[str, Any]) -> set[str]:
    return {v["name"] for v in registry.get("feature_views", []) if v.get("last_materialized")}


def release_health(
    conn: Connection, layout: Layout, release: Release, port: int | None = None, *, patient: bool = False
) -> tuple[Health, dict[str, Any] | None]:
    """A release's health on its host, and its registry summary when readable.

    Checks that its server runs supervised, that its registry can be read, and
    the online reads of ``check``. The probe is computed when the release has
    none yet (releases from before health checks). ``patient``: a server that
    systemd is (re)starting gets the time a start takes first.
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
    if probe is None or not _compares_values(probe):
        try:
            probe = agent.run_agent(conn, layout, "probe", timeout=300, repo=repo)
        except FeatctlError as exc:
            return Health(False, f"its probe could not be computed: {exc.message}"), registry
    if port is None:
        return Health(False, "its port is unknown"), registry
    if patient and release.unit:
        server = FeatureServer(conn, port)
        try:
            _starting(server)
        finally:
            server.close()
    workers = int(release.workers or 1)
    return check_workers(lambda: FeatureServer(conn, port), workers, probe, materialized_views(registry)), registry


#: How long a server systemd is (re)starting gets to answer before it counts as down.
SYSTEMD_START_SECONDS = 60.0


def _starting(server: FeatureServer) -> None:
    """systemd starts a release's server again by itself (after the host
    rebooted, after a crash): one that is starting is given the time a start
    takes, so a deploy does not rebuild a release that is about to serve."""
    import time

    deadline = time.monotonic() + SYSTEMD_START_SECONDS
    while not server.healthy() and time.monotonic() < deadline:
        time.sleep(1.0)
