"""featctl's command line: a thin Typer layer over the core.

Each command parses its options, calls the core, and renders the result.
``main()`` is the one place that turns errors into exit codes: a
``FeatctlError`` becomes one line on stderr; a bug gets a traceback.
"""

from __future__ import annotations

import sys

import typer

from featctl import __version__
from featctl.cli import feast_tools, lifecycle, operate, queries

app = typer.Typer(
    name="featctl",
    help=(
        "Deploy a Feast feature repository to a host made by Terraform and query it.\n\n"
        "Example: featctl deploy && featctl score --weights conv_rate=0.7,acc_rate=0.3 --driver 1001"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"featctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Deploy a Feast feature store with Terraform and SSH, then query it."""


lifecycle.register(app)
operate.register(app)
queries.register(app)
feast_tools.register(app)


def main(argv: list[str] | None = None) -> None:
    from typer.exceptions import Abort, TyperException

    from featctl.errors import ExitCode, FeatctlError

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="featctl", standalone_mode=False)
    except FeatctlError as exc:
        sys.stderr.write(f"featctl: error: {exc}\n")
        sys.exit(int(exc.exit_code))
    except (Abort, KeyboardInterrupt):
        code = int(ExitCode.INTERRUPTED)
    except TyperException as exc:  # usage errors found while parsing the command line
        sys.stderr.write(f"featctl: error: {exc.format_message()}\n")
        sys.exit(int(ExitCode.USAGE) if exc.exit_code == 2 else exc.exit_code)
    except BrokenPipeError:
        sys.exit(int(ExitCode.FAILURE))
    if code == ExitCode.INTERRUPTED:
        sys.stderr.write("featctl: interrupted\n")
    sys.exit(code if isinstance(code, int) else 0)
