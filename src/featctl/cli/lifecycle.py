"""deploy, destroy, status, materialize."""

from __future__ import annotations

from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session, output_format


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: featctl deploy --target local")(deploy)
    app.command(epilog="Example: featctl destroy --yes")(destroy)
    app.command(epilog="Example: featctl status --output json")(status)
    app.command(epilog="Example: featctl materialize --start 2026-11-01T00:00:00Z --end 2026-11-02T00:00:00Z")(
        materialize
    )


def deploy(
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="local (an sshd on loopback) or yandex (Yandex Cloud VM) [default: local; env FEATCTL_TARGET]",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Deployment name used for cloud resources [default: featctl]", show_default=False),
    ] = None,
    server_port: Annotated[
        int | None,
        typer.Option(
            "--server-port", help="Feature server port on the host's loopback [default: 6566]", show_default=False
        ),
    ] = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
    verbose: o.Verbose = False,
) -> None:
    """Create the host with Terraform, upload the feature repo, install Feast, apply, materialize and serve.

    Running it again converges: only what changed is uploaded, applied or restarted.
    """
    from featctl.deploy import deploy as run

    session, rep = make_session(
        repo=repo,
        workspace=workspace,
        config=config,
        target=target,
        verbose=verbose,
        name=name,
        server_port=server_port,
    )
    try:
        result = run(session)
    finally:
        rep.close()
        session.close()
    for msg in result.data_messages:
        rep.info(msg)
    parts = []
    parts.append(f"uploaded {len(result.uploaded)} file(s)" if result.uploaded else "repository unchanged")
    if result.deleted:
        parts.append(f"removed {len(result.deleted)} file(s)")
    if result.installed_feast:
        parts.append("installed Feast")
    parts.append("applied" if result.applied else "nothing to apply")
    parts.append("restarted the feature server" if result.restarted_server else "feature server kept running")
    rep.info(
        f"deployed to {result.target} host {result.host}:{result.port} ({result.host_key_fingerprint}) in {result.seconds:.1f} s"
    )
    rep.info("; ".join(parts))
    for m in result.materialized:
        rep.info(f"materialized {m['view']} ({m['mode']}) up to {m['end']}")


def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
    verbose: o.Verbose = False,
) -> None:
    """Stop the feature server, destroy the host with Terraform and remove the deployment's keys and state."""
    from featctl.deploy import destroy as run
    from featctl.errors import UsageError

    session, rep = make_session(repo=repo, workspace=workspace, config=config, verbose=verbose)
    record = session.workspace.load()
    if not yes:
        if not ENV.stdin_isatty:
            raise UsageError("destroy needs confirmation: pass --yes when not on a terminal")
        where = (
            f"{record.target} host {record.host}:{record.port}"
            if record and record.host
            else str(session.workspace.root)
        )
        if not typer.confirm(
            f"Destroy the deployment on {where}? Its data on the host is lost", default=False, err=True
        ):
            from featctl.errors import Cancelled

            raise Cancelled("destroy cancelled; nothing was changed")
    try:
        result = run(session)
    finally:
        rep.close()
        session.close()
    for msg in result.messages:
        rep.info(msg)
    if result.destroyed:
        rep.info(f"destroyed the {result.target} deployment")


def status(
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Show the target, host, Terraform outputs, SSH and feature server health, and each view's last materialization."""
    from featctl.cli.render import dumps_json, render, render_mapping
    from featctl.deploy import status as run
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
        ENV.stdout.write(dumps_json({"deployment": st.info, "feature_views": st.views}) + "\n")
    elif fmt == "csv":
        render(views, fmt, ENV.stdout)
    else:
        render_mapping(st.info, fmt, ENV.stdout, title="deployment")
        if views.rows:
            render(views, fmt, ENV.stdout)


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
    from featctl.deploy import materialize as run
    from featctl.query.table import Table
    from featctl.query.weights import parse_timestamp

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
