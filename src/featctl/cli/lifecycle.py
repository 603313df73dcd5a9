"""deploy, plan, rollback, destroy: the commands that change a deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session, output_format
from featctl.session import Session


def register(app: typer.Typer) -> None:
    app.command(epilog="Examples: featctl deploy --target local; featctl deploy --target vm (as root)")(deploy)
    app.command(epilog="Example: featctl plan --output json")(plan)
    app.command(epilog="Example: featctl rollback")(rollback)
    app.command(epilog="Example: featctl destroy --yes")(destroy)


def with_ssh_options(session: Session, flags: dict[str, str | None]) -> None:
    """Fold --host/--identity/--host-key-fingerprint over featctl.toml's [ssh] table,
    and let the core ask on a terminal."""
    import dataclasses

    given = {k: v for k, v in flags.items() if v}
    if given:
        tables = dict(session.settings.target_vars)
        tables["ssh"] = {**tables.get("ssh", {}), **given}
        session.settings = dataclasses.replace(session.settings, target_vars=tables)
    if ENV.stdin_isatty and ENV.stderr_isatty:
        session.confirm = lambda question: typer.confirm(question, default=False, err=True)


def deploy(
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            help="local (an sshd on loopback), yandex (Yandex Cloud VM), vm (a Debian guest with systemd and "
            "cloud-init on this machine: featctl deploy --target vm) or ssh (an existing machine) "
            "[default: local; env FEATCTL_TARGET]",
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
    check: Annotated[
        bool, typer.Option("--plan", help="Only show what would change (same as `featctl plan`); change nothing.")
    ] = False,
    host: Annotated[
        str | None,
        typer.Option("--host", help="ssh target: user@host[:port] of an existing machine.", show_default=False),
    ] = None,
    host_key_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--host-key-fingerprint",
            help="ssh target: the host key's SHA256:... fingerprint, required on the first connection "
            "unless you confirm it on a terminal.",
            show_default=False,
        ),
    ] = None,
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            "-i",
            help="ssh target: private key to log in with [default: ssh-agent, ~/.ssh]",
            show_default=False,
        ),
    ] = None,
    stores: o.Stores = None,
    hosts: o.Hosts = None,
    take_over: o.TakeOver = False,
    keep_host_data: o.KeepHostData = False,
    overwrite_data: o.OverwriteData = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
    verbose: o.Verbose = False,
) -> None:
    """Create the host with Terraform, upload the feature repo, install Feast, apply, materialize and serve.

    Running it again converges: only what changed is uploaded, applied or restarted. A data file that
    Feast changed on the host (offline pushes) is never overwritten silently: see --keep-host-data and
    --overwrite-data.

    Example: featctl deploy --stores redis
    """
    data = o.data_policy(keep_host_data, overwrite_data)
    if check:
        plan(
            keep_host_data=keep_host_data,
            overwrite_data=overwrite_data,
            target=target,
            name=name,
            server_port=server_port,
            stores=stores,
            hosts=hosts,
            output=None,
            repo=repo,
            workspace=workspace,
            config=config,
        )
        return
    from featctl.lifecycle.deploy import deploy as run

    ssh_flags = {
        "host": host,
        "host_key_fingerprint": host_key_fingerprint,
        "identity": str(identity) if identity else None,
    }
    session, rep = make_session(
        repo=repo,
        workspace=workspace,
        config=config,
        target=target,
        verbose=verbose,
        name=name,
        server_port=server_port,
        stores=stores,
        hosts=hosts,
    )
    with_ssh_options(session, ssh_flags)
    try:
        result = run(session, take_over=take_over, data=data)
    finally:
        rep.close()
        session.close()
    for msg in result.data_messages:
        rep.info(msg)
    for rel in result.kept:
        rep.info(
            f"{rel} changed on the host since featctl uploaded it (offline pushes): kept the host's copy "
            "(--overwrite-data replaces it with this machine's)"
        )
    for r in result.cleaned:
        rep.info(f"removed {r['state']} release {r['id']}")
    where = f"{result.target} host {result.host}:{result.port} ({result.host_key_fingerprint})"
    if result.endpoint is not None:
        ep = result.endpoint
        rep.info(f"endpoint {ep.url} serves applications (CA {ep.ca_file}; `featctl token create APP` gives one a token)")
    if not result.changed:
        rep.info(
            f"nothing changed on {where}: nothing uploaded, applied or restarted; release {result.release} serves ({result.seconds:.1f} s)"
        )
        return
    parts = [f"uploaded {len(result.uploaded)} file(s)" if result.uploaded else "no files uploaded"]
    if result.deleted:
        parts.append(f"removed {len(result.deleted)} file(s)")
    if result.installed_feast:
        parts.append("installed Feast")
    if result.applied:
        parts.append("applied")
    rep.info(f"deployed release {result.release} to {where} in {result.seconds:.1f} s")
    rep.info("; ".join(parts))
    for t in result.loaded:
        rep.info(f"loaded {t['rows']} row(s) of {t['source']} into PostgreSQL table {t['table']}")
    for m in result.materialized:
        rep.info(f"materialized {m['view']} ({m['mode']}) up to {m['end']}")
    for h in result.hosts:
        rep.info(f"host {h['host']}: release {h['release']} serves" + ("" if h["changed"] else " (unchanged)"))
    if result.previous_release:
        rep.info(f"release {result.previous_release} stopped; `featctl rollback` returns to it")


def plan(
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="local, yandex, vm or ssh", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Deployment name", show_default=False)] = None,
    server_port: Annotated[
        int | None, typer.Option("--server-port", help="Feature server port", show_default=False)
    ] = None,
    stores: o.Stores = None,
    hosts: o.Hosts = None,
    keep_host_data: o.KeepHostData = False,
    overwrite_data: o.OverwriteData = False,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Show what `featctl deploy` would change; change nothing.

    One row per change: Terraform resources, files to upload or remove, files the host changed since
    featctl uploaded them (offline pushes: kept, or a conflict when they changed here too), the Feast
    environment, and the Feast objects (feature views, entities, sources, services) a deploy would
    create, update or delete, with the fields that differ (feast plan's diff, without what only the
    release directory changes).
    """
    from featctl.cli.render import dumps_json, render
    from featctl.lifecycle.plan import plan as run
    from featctl.query.table import Table

    fmt = output_format(output)
    session, rep = make_session(
        repo=repo,
        workspace=workspace,
        config=config,
        target=target,
        name=name,
        server_port=server_port,
        stores=stores,
        hosts=hosts,
    )
    try:
        result = run(session, data=o.data_policy(keep_host_data, overwrite_data))
    finally:
        rep.close()
        session.close()
    for note in result.notes:
        rep.info(note)
    if fmt == "json":
        registry = None
        if result.registry is not None:
            registry = [
                {"kind": r.kind, "name": r.name, "change": r.change, "fields": list(r.fields)} for r in result.registry
            ]
        doc = {
            "target": result.target,
            "changes": result.changes,
            "terraform": result.terraform,
            "upload": result.upload,
            "remove": result.remove,
            "kept_host_data": result.kept,
            "conflicts": result.conflicts,
            "install_feast": result.install_feast,
            "server": result.server,
            "endpoint": [
                {"kind": r.kind, "name": r.name, "change": r.change, "fields": list(r.fields)} for r in result.endpoint
            ],
            "registry": registry,
        }
        ENV.stdout.write(dumps_json(doc) + "\n")
        return
    rows = [[r.kind, r.name, r.change, ", ".join(r.fields)] for r in result.rows()]
    render(Table(["kind", "name", "change", "fields"], rows, title="planned changes"), fmt, ENV.stdout)
    if not result.changes:
        rep.info("no changes: deploy would upload, apply and restart nothing")


def rollback(
    take_over: o.TakeOver = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
    verbose: o.Verbose = False,
) -> None:
    """Serve the previous release again (featctl keeps the last 5).

    The previous release's server starts and must pass the health check (an
    online read of each view) before the switch; if it fails, the current
    release keeps serving.
    """
    from featctl.lifecycle.rollback import rollback as run

    session, rep = make_session(repo=repo, workspace=workspace, config=config, verbose=verbose)
    try:
        result = run(session, take_over=take_over)
    finally:
        rep.close()
        session.close()
    rep.info(f"rolled back from release {result.previous_release} to {result.release}")


def destroy(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    take_over: o.TakeOver = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
    verbose: o.Verbose = False,
) -> None:
    """Stop every process of the deployment, destroy the host with Terraform and remove its keys and state.

    Fails loudly (and keeps the record, so it can run again) when a process of
    the deployment survives or, on the local target, a server port stays in use.
    """
    from featctl.errors import UsageError
    from featctl.lifecycle.destroy import destroy as run

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
        result = run(session, take_over=take_over)
    finally:
        rep.close()
        session.close()
    for msg in result.messages:
        rep.info(msg)
    if result.destroyed:
        rep.info(f"destroyed the {result.target} deployment")
