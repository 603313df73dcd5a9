"""online, score, historical, push."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session, output_format
from featctl.query.table import Table


def register(app: typer.Typer) -> None:
    app.command(
        epilog="Examples: featctl online --driver 1001 --features driver_hourly_stats:conv_rate   |   "
        "featctl online --entity customer_id=C001 --feature-service svc --request val_to_add=1"
    )(online)
    app.command(
        epilog="Examples: featctl score --weights conv_rate=0.7,acc_rate=0.3 --driver 1001 --driver 1002   |   "
        "featctl score --view my_weighted_view --weights spend=1 --entity customer_id=C001"
    )(score)
    app.command(
        epilog="Example: featctl historical --entities entities.csv --feature-service driver_activity_rates_linear_combination --out result.parquet"
    )(historical)
    app.command(
        epilog="Examples: featctl push --view user_events_push --entities events.csv --to both   |   "
        'featctl push --view user_events_push --entity user_id=1 --set clicks=3 --set \'tags=["a","b"]\' ...'
    )(push)


def _show(table: Table, fmt: str) -> None:
    from featctl.cli.render import render

    for note in table.notes:
        ENV.stderr.write(f"featctl: {note}\n")
    render(table, fmt, ENV.stdout)


EntitiesFile = Annotated[
    Path | None,
    typer.Option(
        "--entities",
        help="CSV/Parquet with one entity row per line: join keys and request data columns.",
        show_default=False,
    ),
]


def online(
    entities: o.Entities = None,
    drivers: o.Drivers = None,
    entities_file: EntitiesFile = None,
    requests: o.Requests = None,
    features: o.Features = None,
    feature_service: o.FeatureService = None,
    full_feature_names: o.FullFeatureNames = False,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Read online features from the deployed feature server (HTTP through an SSH tunnel).

    Entity rows come from --entity/--driver or --entities FILE; request data for
    on-demand views from --request or the file's columns. Without --features or
    --feature-service every feature of every feature view is read.
    """
    from featctl.query.inputs import parse_drivers, parse_feature_refs
    from featctl.query.online import online as run

    fmt = output_format(output)
    ids = parse_drivers(drivers) if drivers else []
    refs = parse_feature_refs(features or [])
    session, _ = make_session(repo=repo, workspace=workspace, config=config)
    try:
        table = run(
            session,
            entity_specs=list(entities or []),
            driver_ids=ids,
            entities_file=entities_file,
            request_specs=list(requests or []),
            features=refs,
            feature_service=feature_service,
            full_feature_names=full_feature_names,
        )
    finally:
        session.close()
    _show(table, fmt)


def score(
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            "-w",
            help="Weights as NAME=NUMBER[,NAME=NUMBER...] without spaces; NUMBER is a plain decimal "
            "(0.7, -1, 2.5e-3). With a scoring view a feature not given weighs 0; without one NAME may be "
            "VIEW:FEATURE (a feature name that several views have).",
            show_default=False,
        ),
    ] = None,
    entities: o.Entities = None,
    drivers: o.Drivers = None,
    view: Annotated[
        str | None,
        typer.Option(
            "--view",
            help="The on-demand view that computes the score [default: featctl.toml [score] view, else the one "
            "view whose request fields are <feature>_coef weights]",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Score as of this time (ISO 8601, UTC when no zone) from the offline store.",
            show_default=False,
        ),
    ] = None,
    entities_file: Annotated[
        Path | None,
        typer.Option(
            "--entities",
            help="CSV/Parquet with the join keys, event_timestamp and per-row <feature>_coef weights (offline).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the rows to this .csv or .parquet file instead of printing them (--at/--entities).",
            show_default=False,
        ),
    ] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Weighted score: sum(weight * feature), computed by the on-demand view with the weights sent as request data.

    The view is --view, else featctl.toml [score] view, else the one on-demand view whose request fields are
    <feature>_coef weights. A repository with no such view gets featctl's own sum of the features --weights
    names (a numeric feature of one feature view each), with the same rule: null when a value is missing.

    Online from the feature server by default; point-in-time from the offline store with --at or --entities
    (as historical: inside the serving feature server, or a Feast process of its own with
    FEATCTL_HISTORICAL_VIA=process).
    """
    from featctl.errors import UsageError
    from featctl.query.inputs import check_out_path, parse_drivers, parse_timestamp, parse_weights

    fmt = output_format(output)
    specs = list(weights or [])
    if specs or entities_file is None:
        parse_weights(specs, None)  # syntax first: bad input never reaches the host
    when = parse_timestamp(at, option="--at") if at is not None else None
    ids = parse_drivers(drivers) if drivers else []
    if out is not None:
        if at is None and entities_file is None:
            raise UsageError("--out is for --at/--entities scores; use --output csv > FILE for online scores")
        check_out_path(out)
    session, _ = make_session(repo=repo, workspace=workspace, config=config)
    try:
        if at is not None or entities_file is not None:
            from featctl.query.historical import score_at

            table = score_at(
                session,
                entity_specs=list(entities or []),
                driver_ids=ids,
                weight_specs=specs,
                at=when,
                entities_file=entities_file,
                out=out,
                view=view,
            )
        else:
            from featctl.query.online import score as run

            table = run(session, specs, entity_specs=list(entities or []), driver_ids=ids, view=view)
    finally:
        session.close()
    if out is not None:  # the rows are in the file: only the notes (e.g. "wrote N rows")
        for note in table.notes:
            ENV.stderr.write(f"featctl: {note}\n")
    else:
        _show(table, fmt)


def historical(
    entities_file: Annotated[
        Path | None,
        typer.Option(
            "--entities",
            help="CSV or Parquet with the join keys, event_timestamp and any request data columns.",
            show_default=False,
        ),
    ] = None,
    entities: o.Entities = None,
    drivers: o.Drivers = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="With --entity/--driver: the time of every row (ISO 8601).", show_default=False),
    ] = None,
    requests: o.Requests = None,
    features: o.Features = None,
    feature_service: o.FeatureService = None,
    full_feature_names: o.FullFeatureNames = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the result to this .csv or .parquet file instead of printing it.", show_default=False
        ),
    ] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Point-in-time correct features from the offline store on the host: one row per entity row, in order.

    Computed inside the serving feature server when it runs this featctl's agent, else in a Feast process of
    its own on the host (FEATCTL_HISTORICAL_VIA=process always does that).
    """
    from featctl.query.historical import historical as run
    from featctl.query.inputs import check_out_path, parse_drivers, parse_feature_refs, parse_timestamp

    fmt = output_format(output)
    refs = parse_feature_refs(features or [])
    when = parse_timestamp(at, option="--at") if at is not None else None
    ids = parse_drivers(drivers) if drivers else []
    if out is not None:
        check_out_path(out)
    session, _ = make_session(repo=repo, workspace=workspace, config=config)
    try:
        table = run(
            session,
            entities_file,
            entity_specs=list(entities or []),
            driver_ids=ids,
            at=when,
            request_specs=list(requests or []),
            features=refs,
            feature_service=feature_service,
            out=out,
            full_feature_names=full_feature_names,
        )
    finally:
        session.close()
    if out is not None:
        for note in table.notes:
            ENV.stderr.write(f"featctl: {note}\n")
    else:
        _show(table, fmt)


def push(
    view: Annotated[
        str,
        typer.Option(
            "--view",
            "--push-source",
            help="The push source's name (a PushSource in the repository; `featctl status` lists them). "
            "Feast writes the rows to every feature view it feeds.",
            show_default=False,
        ),
    ],
    entities_file: Annotated[
        Path | None,
        typer.Option(
            "--entities",
            help="CSV/Parquet of rows: join keys, the event time column, every feature (lists as JSON arrays in "
            "CSV, e.g. [0.1,0.2]); an empty cell is null. Columns of the batch source that only other views read "
            "may be given (offline only); they are null when left out.",
            show_default=False,
        ),
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            "--entity",
            "-e",
            help="The key of one row to push, KEY=VALUE (a composite key as a=1,b=x).",
            show_default=False,
        ),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="With --entity: a feature value NAME=VALUE, one per feature (lists as JSON arrays, times ISO "
            "8601, NAME= for null); repeatable. Also a column of the batch source that only other views read "
            "(offline only; null unless given).",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="With --entity: the row's event time, ISO 8601 [default: now]", show_default=False),
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="online, offline (appended to the view's data on the host, read by historical; the file "
            "offline store only, refused on PostgreSQL) or both (offline first, then online)",
        ),
    ] = "online",
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Push rows into the feature views a push source feeds, through the feature server's /push (Feast's push).

    Every value is typed from the deployed registry and checked before anything is sent; a source's
    created-time column, when it has one, is filled with now unless given.
    """
    from featctl.query.inputs import parse_timestamp
    from featctl.query.push import push as run

    when = parse_timestamp(at, option="--at") if at is not None else None
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        result = run(
            session,
            view,
            entities_file=entities_file,
            entity_specs=list(entity or []),
            set_specs=list(sets or []),
            at=when,
            to=to,
        )
    finally:
        rep.close()
        session.close()
    where = {"online": "the online store", "offline": "the offline store", "both": "the offline and online stores"}
    rep.info(
        f"pushed {result.rows} row(s) through {result.push_source} into {', '.join(result.views)} ({where[result.to]})"
    )
