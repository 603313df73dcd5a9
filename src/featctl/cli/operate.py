"""status, materialize, schedule, logs, unlock: operating a deployment."""

from __future__ import annotations

from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session, output_format


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: featctl status --output json")(status)
    app.command(epilog="Example: featctl materialize --start 2026-11-01T00:00:00Z --end 2026-11-02T00:00:00Z")(
        materialize
    )
    app.command(epilog="Examples: featctl verify   |   featctl verify --sample 1000 --repair")(verify)
    app.command(epilog="Example: featctl schedule --every 1h   |   featctl schedule --off")(schedule)
    app.command(epilog="Example: featctl logs --lines 100")(logs)
    app.command(epilog="Example: featctl unlock")(unlock)


def status(
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Show the target, host, Terraform outputs, SSH and feature server health, each view's last
    materialization, the feature services and the push sources (`featctl push --view NAME`).

    CSV holds the views only; JSON and the table hold everything. Exits 8 (unhealthy) after the
    report when SSH, the feature server or a host does not serve.
    """
    from featctl.cli.render import dumps_json, render, render_mapping
    from featctl.lifecycle.status import status as run
    from featctl.query.table import Table

    fmt = output_format(output)
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        st = run(session)
    finally:
        rep.close()
        session.close()
    views = Table.from_records(st.views, title="feature views")
    if fmt == "json":
        doc = {
            "deployment": st.info,
            "feature_views": st.views,
            "feature_services": st.services,
            "push_sources": st.push_sources,
        }
        ENV.stdout.write(dumps_json(doc) + "\n")
    elif fmt == "csv":
        render(views, fmt, ENV.stdout)
    else:
        render_mapping(st.info, fmt, ENV.stdout, title="deployment")
        for rows, title in (
            (st.views, "feature views"),
            (st.services, "feature services"),
            (st.push_sources, "push sources"),
        ):
            if rows:
                render(Table.from_records(rows, title=title), fmt, ENV.stdout)
    if not st.healthy:
        from featctl.errors import ExitCode

        raise typer.Exit(int(ExitCode.UNHEALTHY))  # after the full report: scripts can tell from the code


def materialize(
    start: Annotated[
        str | None,
        typer.Option("--start", help="Range start, ISO 8601 (UTC when no zone). Needs --end.", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Range end, ISO 8601 (UTC when no zone). Needs --start.", show_default=False),
    ] = None,
    views: Annotated[
        list[str] | None, typer.Option("--view", help="Only this feature view; repeatable.", show_default=False)
    ] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Load feature values into the online store: incremental up to now by default, or the range --start..--end."""
    from featctl.cli.render import render
    from featctl.lifecycle.materialize import materialize as run
    from featctl.query.inputs import parse_timestamp
    from featctl.query.table import Table

    fmt = output_format(output)
    s = parse_timestamp(start, option="--start") if start is not None else None
    e = parse_timestamp(end, option="--end") if end is not None else None
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        done = run(session, start=s, end=e, views=list(views or []) or None)
    finally:
        rep.close()
        session.close()
    render(Table.from_records(done, title="materialized"), fmt, ENV.stdout)


VERIFY_COLUMNS = ["view", "entity", "feature", "online", "offline", "online_ts", "offline_ts", "problem", "repaired"]


def verify(
    views: Annotated[
        list[str] | None, typer.Option("--view", help="Only this feature view; repeatable.", show_default=False)
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", help="Compare a random sample of N entities per view.", min=1, show_default=False),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Compare every entity (the default).")] = False,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Write the wrong rows again from the offline data, then read them back."),
    ] = False,
    include_newer: Annotated[
        bool,
        typer.Option(
            "--include-newer",
            help="Also compare online rows newer than the view's last materialization (pushes): with --repair "
            "they are overwritten with the offline data.",
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="The sample's random seed.", show_default=False)] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Compare the online store's values with the offline data's newest rows, entity by entity.

    The reference is what a materialization of each view's whole recorded range would write
    (Feast's own as-of rules: newest event time, then created time, then row order). Each wrong
    value is a row: view, entity, feature, online, offline and their event times. A row written
    after the last materialization (a push) is counted as newer and not compared unless
    --include-newer. Exits 9 when any value is wrong, also after --repair rewrote it.
    """
    from featctl.cli.render import render
    from featctl.errors import ExitCode, UsageError
    from featctl.lifecycle.verify import verify as run
    from featctl.query.table import Table

    if all_ and sample is not None:
        raise UsageError("give either --sample N or --all, not both")
    fmt = output_format(output)
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        doc = run(
            session,
            views=list(views or []) or None,
            sample=sample,
            repair=repair,
            include_newer=include_newer,
            seed=seed,
        )
    finally:
        rep.close()
        session.close()
    rows = doc.get("rows") or []
    render(Table(VERIFY_COLUMNS, [[r.get(c) for c in VERIFY_COLUMNS] for r in rows], "wrong values"), fmt, ENV.stdout)
    for v in doc.get("views") or []:
        if v.get("skipped"):
            rep.info(f"{v['view']}: not checked ({v['skipped']})")
    listed = f" ({len(rows)} listed)" if len(rows) < doc.get("wrong", 0) else ""
    newer = f", {doc['newer']} newer than the last materialization (not compared)" if doc.get("newer") else ""
    repaired = f", {doc['repaired']} repaired" if doc.get("repair") else ""
    rep.warn(
        f"checked {doc.get('checked', 0)} entities ({doc.get('mode')}): {doc.get('wrong', 0)} wrong{listed}"
        f"{repaired}{newer}"
    )
    if doc.get("wrong"):
        raise typer.Exit(int(ExitCode.WRONG_VALUES))


def schedule(
    every: Annotated[
        str | None, typer.Option("--every", help="Interval such as 30m, 1h, 1d (at least 1m).", show_default=False)
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the schedule.")] = False,
    verify_sample: Annotated[
        int,
        typer.Option(
            "--verify-sample",
            help="After each run, verify this many entities per view and repair what is wrong "
            "(`featctl verify --sample N --repair`); 0 for no verify.",
            min=0,
        ),
    ] = 1000,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Materialize incrementally on the host on a schedule (a systemd timer, or a supervised loop).

    Serving goes on while it runs; after each run a sampled verify repairs online values that differ
    from the offline data. `featctl status` shows the last and next run, the last verify and the last error.
    """
    from featctl.errors import UsageError
    from featctl.lifecycle.housekeeping import set_schedule
    from featctl.query.inputs import parse_interval

    if off == (every is not None):
        raise UsageError("give either --every INTERVAL or --off")
    seconds = parse_interval(every) if every is not None else None
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        message = set_schedule(session, seconds, verify_sample)
    finally:
        rep.close()
        session.close()
    rep.info(message)


def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end.", min=1)] = 50,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Show the end of the serving feature server's log from the host."""
    from featctl.lifecycle.housekeeping import logs as run

    session, _ = make_session(repo=repo, workspace=workspace, config=config)
    try:
        text = run(session, lines)
    finally:
        session.close()
    ENV.stdout.write(text + ("\n" if text else ""))


def unlock(
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Clear the lock even though its holder still lives (stopped, hung, or on a machine "
            "featctl cannot see from here).",
        ),
    ] = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Clear a stale deploy lock on the host (left by a deploy whose client died).

    A holder that still lives (a stopped process counts) is refused unless --force.
    """
    from featctl.lifecycle.housekeeping import unlock as run

    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        result = run(session, force=force)
    finally:
        session.close()
    if result.get("unlocked"):
        h = result.get("holder") or {}
        rep.info(
            f"cleared the deploy lock held by {h.get('user', '?')}@{h.get('client', '?')} since {h.get('since', '?')}"
        )
    else:
        rep.info("the deploy lock was not held; nothing to clear")
