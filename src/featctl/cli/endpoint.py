"""endpoint, token, client-config: the application endpoint (HAProxy, TLS, bearer tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session, output_format
from featctl.session import Session

token_app = typer.Typer(
    help="Application tokens for the endpoint: create (shown once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

App = Annotated[str, typer.Argument(help="The application's name (letters, digits, '.', '_', '-').")]
Write = Annotated[bool, typer.Option("--write", help="Also allow /push and /write-to-online-store.")]
Expires = Annotated[
    str | None,
    typer.Option("--expires", help="Lifetime such as 90d, 12h, 30m, 2w, or never [default: never]", show_default=False),
]
Replace = Annotated[
    bool, typer.Option("--replace", help="APP has a token already: replace it (the old one stops working at once).")
]


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: featctl endpoint --output json")(endpoint)
    app.add_typer(token_app, name="token")
    app.command(
        "client-config", epilog="Example: featctl client-config scoring --out ./scoring-client && ./scoring-client/example.sh"
    )(client_config)


def endpoint(
    logs: Annotated[
        int | None,
        typer.Option("--logs", help="Print the last N lines of HAProxy's log instead (no Authorization header is ever logged).", min=1, show_default=False),
    ] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Show the endpoint applications use: its URL, the CA file, each backend as HAProxy sees it
    (up/down, since when) and how many tokens are live.

    Starts HAProxy again when it is not running (and says so).
    """
    from dataclasses import asdict

    from featctl.cli.render import dumps_json, render, render_mapping
    from featctl.lifecycle.endpoint import status
    from featctl.query.table import Table

    fmt = output_format(output)
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    if logs is not None:
        from featctl.lifecycle.endpoint import log_lines

        text = log_lines(session.settings, logs)
        ENV.stdout.write(text + ("\n" if text else ""))
        return
    try:
        st = status(session)
    finally:
        rep.close()
        session.close()
    rows = [asdict(b) for b in st.backends]
    if fmt == "json":
        doc = {"url": st.url, "ca_file": st.ca_file, "tokens_live": st.tokens_live, "backends": rows}
        ENV.stdout.write(dumps_json(doc) + "\n")
    elif fmt == "csv":
        render(Table.from_records(rows, title="backends"), fmt, ENV.stdout)
    else:
        info = {"url": st.url, "ca_file": st.ca_file, "tokens_live": st.tokens_live, "log": st.log_file}
        render_mapping(info, fmt, ENV.stdout, title="endpoint")
        render(Table.from_records(rows, title="backends"), fmt, ENV.stdout)


def _revive(session: Session) -> None:
    from featctl.lifecycle.endpoint import ensure_running

    ensure_running(session)


@token_app.command("create", epilog="Example: featctl token create scoring --expires 90d")
def token_create(
    app: App,
    write: Write = False,
    expires: Expires = None,
    replace: Replace = False,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Make a token for APP and print it once, as the last line of stdout: featctl keeps only its hash.

    Read tokens may POST /get-online-features; --write tokens also /push and /write-to-online-store.
    An APP that has a token is refused unless --replace (or `featctl token revoke APP` first).
    """
    from featctl.errors import UsageError
    from featctl.lifecycle import tokens
    from featctl.lifecycle.endpoint import token_edges

    tokens.check_app(app)
    seconds = tokens.parse_expires(expires)
    session, rep = make_session(workspace=workspace, config=config)
    try:
        if session.settings.endpoint is None:
            raise UsageError("the endpoint is not enabled", hint="add an [endpoint] table to featctl.toml and deploy")
        _revive(session)
        new = tokens.create(
            session.settings.workspace,
            app,
            write=write,
            expires_in=seconds,
            replace=replace,
            edges=token_edges(session),
        )
    finally:
        rep.close()
        session.close()
    until = new.record.expires or "never"
    rep.info(f"token for {app}: {new.record.scope}, expires {until}; shown once, featctl keeps only its hash")
    ENV.stdout.write(new.token + "\n")


@token_app.command("list", epilog="Example: featctl token list --output json")
def token_list(output: o.Output = None, workspace: o.Workspace = None, config: o.Config = None) -> None:
    """Show each application's token: name, scope, created, expires, status (live/expired); never a token."""
    from featctl.cli.render import render
    from featctl.lifecycle import tokens
    from featctl.query.table import Table

    fmt = output_format(output)
    session, _ = make_session(workspace=workspace, config=config)
    columns = ["name", "scope", "created", "expires", "status"]
    rows = tokens.listing(session.settings.workspace)
    render(Table(columns, [[r[c] for c in columns] for r in rows], title="tokens"), fmt, ENV.stdout)


@token_app.command("revoke", epilog="Example: featctl token revoke scoring")
def token_revoke(app: App, workspace: o.Workspace = None, config: o.Config = None) -> None:
    """Revoke APP's token: the running endpoint refuses it from the next request on (no reload)."""
    from featctl.lifecycle import tokens
    from featctl.lifecycle.endpoint import token_edges

    tokens.check_app(app)
    session, rep = make_session(workspace=workspace, config=config)
    try:
        _revive(session)
        tokens.revoke(session.settings.workspace, app, edges=token_edges(session))
    finally:
        rep.close()
        session.close()
    rep.info(f"revoked the token of {app}")


def client_config(
    app: App,
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) directory for the bundle.", show_default=False)],
    fmt: Annotated[
        str, typer.Option("--format", help="files (ca.pem, token, feature_store.yaml, examples) or k8s (Secret + ConfigMap)")
    ] = "files",
    write: Write = False,
    expires: Expires = None,
    replace: Replace = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Write what an application needs to read features through the endpoint: the CA, a NEW token
    for APP (featctl keeps only hashes, so it cannot hand out an existing one: an APP with a token is
    refused unless --replace rotates it), a feature_store.yaml for Feast's SDK
    (FeatureStore(repo_path=DIR)) with a registry snapshot, and example.sh / example.py.
    """
    from featctl.lifecycle import tokens
    from featctl.lifecycle.client_config import client_config as run

    tokens.check_app(app)
    seconds = tokens.parse_expires(expires)
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        done = run(session, app, out, fmt=fmt.lower(), write=write, expires_in=seconds, replace=replace)
    finally:
        rep.close()
        session.close()
    rep.info(f"wrote {', '.join(done.files)} to {done.out} ({done.scope} token, expires {done.expires or 'never'})")
    ENV.stdout.write(str(done.out) + "\n")
