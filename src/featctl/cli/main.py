"""featctl's command line: a thin Typer layer over the core.

Each command parses its options, calls the core, and renders the result.
``main()`` is the one place that turns errors into exit codes: a
``FeatctlError`` becomes one line on stderr; a bug gets a traceback.
"""

from __future__ import annotations

import sys

import typer

from featctl import __version__
from featctl.cli import endpoint, feast_tools, lifecycle, operate, queries, search

app = typer.Typer(
    name="featctl",
    help=(
        "Deploy a Feast feature repository to a host made by Terraform and query it.\n\n"
        "Example: featctl deploy && featctl score --weights conv_rate=0.7,acc_rate=0.3 --driver 1001"
    ),
    no_args_is_help=True,
    # --install-completion / --show-completion; --features and --feature-service
    # complete from the workspace's cached registry summary (cli/complete.py).
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _terraform_version() -> str:
    import json
    import shutil
    import subprocess

    binary = shutil.which("terraform")
    if binary is None:
        return "not found on PATH"
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=20).stdout
        return str(json.loads(out)["terraform_version"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return "unknown"


def _version(value: bool) -> None:
    if value:
        from featctl import FEAST_VERSION

        typer.echo(f"featctl {__version__}")
        typer.echo(f"feast {FEAST_VERSION} (pinned, installed on the host)")
        typer.echo(f"terraform {_terraform_version()}")
        raise typer.Exit()


def _quiet(value: bool) -> None:
    from featctl.cli.app import QUIET

    QUIET["on"] = value


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print featctl's version, the pinned Feast version and Terraform's, and exit.",
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        callback=_quiet,
        is_eager=True,
        help="Print only results: no progress and no messages (errors still go to stderr). Env FEATCTL_QUIET=1.",
    ),
) -> None:
    """Deploy a Feast feature store with Terraform and SSH, then query it."""


lifecycle.register(app)
operate.register(app)
queries.register(app)
search.register(app)
feast_tools.register(app)
endpoint.register(app)


def main(argv: list[str] | None = None) -> None:
    from typer.exceptions import Abort, TyperException

    from featctl.errors import ExitCode, FeatctlError

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="featctl", standalone_mode=False)
    except FeatctlError as exc:
        sys.stderr.write(f"featctl: error: {exc}\n")
        sys.exit(int(exc.exit_code))
    except (Abort, KeyboardInterrupt) as exc:
        # Click turns an EOFError into Abort: off a terminal no prompt reads
        # stdin, so it is a connection (paramiko) that closed, not the user.
        if isinstance(exc.__cause__, EOFError) and not sys.stdin.isatty():
            sys.stderr.write("featctl: error: the connection to the host closed before it answered (EOFError)\n")
            sys.exit(int(ExitCode.SSH))
        code = int(ExitCode.INTERRUPTED)
    except TyperException as exc:  # usage errors found while parsing the command line
        sys.stderr.write(f"featctl: error: {exc.format_message()}\n")
        sys.exit(int(ExitCode.USAGE) if exc.exit_code == 2 else exc.exit_code)
    except BrokenPipeError:
        sys.exit(int(ExitCode.FAILURE))
    if code == ExitCode.INTERRUPTED:
        sys.stderr.write("featctl: interrupted\n")
    sys.exit(code if isinstance(code, int) else 0)
