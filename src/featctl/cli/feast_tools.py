"""ui, connect: Feast's own web UI and SDK against the deployment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import ENV, make_session


def register(app: typer.Typer) -> None:
    app.command(epilog="Example: featctl ui --port 8888 --no-browser")(ui)
    app.command(epilog="Example: featctl connect --out client/ && python my_workflow.py   |   featctl connect --stop")(
        connect
    )


def _has_display() -> bool:
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ui(
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", help="Local port to serve the UI on [default: a free one]", show_default=False),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Feast's web UI of the deployment, on this machine's 127.0.0.1, until Ctrl-C.

    The UI runs on the host's loopback (supervised, restarted with every
    release) and is forwarded through SSH: it is never reachable from the
    network. The URL is the first line on stdout.
    """
    import threading
    import webbrowser

    from featctl.lifecycle.services import ui as run

    if port is not None and not 1 <= port <= 65535:
        from featctl.errors import UsageError

        raise UsageError(f"--port {port} is not a TCP port")
    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    stop = threading.Event()

    def on_url(url: str) -> None:
        rep.close()
        ENV.stdout.write(url + "\n")
        ENV.stdout.flush()
        rep.info("Feast's UI of the deployment; Ctrl-C closes the forward")
        if not no_browser and _has_display():
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    import signal

    # Ctrl-C (and SIGTERM) end the forward, even where the shell started this
    # process with SIGINT ignored (a background job).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run(session, port=port, on_url=on_url, stop=stop)
    finally:
        rep.close()
        session.close()
    rep.info("closed the forward")


def connect(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Directory for the client feature_store.yaml [default: .featctl/client]", show_default=False
        ),
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Close the forward and stop the host's extra servers.")] = False,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Feast's SDK against the deployment: registry and offline servers on the
    host, a local forward to them and the feature server, and a client
    feature_store.yaml (FeatureStore(repo_path=DIR)) that uses them.

    The forward runs in the background until `featctl connect --stop`.
    """
    from featctl.lifecycle import services

    session, rep = make_session(repo=repo, workspace=workspace, config=config)
    try:
        if stop:
            was = services.disconnect(session)
            rep.info("closed the forward and stopped the registry and offline servers" if was else "nothing was connected")
            return
        done = services.connect(session, out)
    finally:
        rep.close()
        session.close()
    ENV.stdout.write(f"{done.out}\n")
    f = done.forwards
    rep.info(
        f"connected: FeatureStore(repo_path={str(done.out)!r}) reaches the feature server (127.0.0.1:{f['online']}), "
        f"the registry (:{f['registry']}) and the offline server (:{f['offline']}); `featctl connect --stop` ends it"
    )
