"""The state every command gets: how to build settings, where output goes,
and the reporter that draws progress on stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from featctl.config import Settings, load_settings
from featctl.errors import UsageError
from featctl.session import Session


@dataclass
class Environment:
    """Standard streams, injected so tests can swap them (as httpie does)."""

    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)

    @property
    def stdout_isatty(self) -> bool:
        return bool(getattr(self.stdout, "isatty", lambda: False)())

    @property
    def stderr_isatty(self) -> bool:
        return bool(getattr(self.stderr, "isatty", lambda: False)())

    @property
    def stdin_isatty(self) -> bool:
        return bool(getattr(self.stdin, "isatty", lambda: False)())


ENV = Environment()
#: -q/--quiet (or FEATCTL_QUIET=1): only results, no progress or messages.
QUIET = {"on": False}


def quiet() -> bool:
    import os

    return QUIET["on"] or os.environ.get("FEATCTL_QUIET") == "1"


class _Bar:
    """A Rich progress bar for a byte or file count; the spinner waits meanwhile."""

    def __init__(self, reporter: ConsoleReporter, label: str, total: int, unit: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._reporter = reporter
        counts = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            *counts,
            TimeRemainingColumn(),
            console=reporter.console,
            transient=True,
        )
        reporter.pause()
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        self._progress.advance(self._task, amount)

    def close(self) -> None:
        self._progress.stop()
        self._reporter.resume()


class ConsoleReporter:
    """Progress on stderr: a live spinner and bars on a terminal (plain text when
    NO_COLOR is set), plain lines otherwise, nothing with -q."""

    def __init__(self, env: Environment, verbose: bool = False) -> None:
        from rich.console import Console

        self.console = Console(file=env.stderr, highlight=False, soft_wrap=True)
        self.verbose = verbose
        self.quiet = quiet()
        self._status: Any = None
        self._live = env.stderr_isatty and not self.quiet
        self._current = ""

    def pause(self) -> None:
        if self._status is not None:
            self._status.stop()

    def resume(self) -> None:
        if self._status is not None:
            self._status.start()

    def progress(self, label: str, total: int, unit: str = "bytes") -> Any:
        from featctl.session import NoProgress

        if not self._live or total <= 0:
            return NoProgress()
        return _Bar(self, label, total, unit)

    def step(self, message: str) -> None:
        from rich.markup import escape

        if self.quiet:
            return

        self._current = escape(message)
        if self._live:
            if self._status is None:
                self._status = self.console.status(message)
                self._status.start()
            else:
                self._status.update(message)
            self.console.print(f"[dim]•[/] {escape(message)}")
        else:
            self.console.print(f"• {message}", markup=False)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False)

    def warn(self, message: str) -> None:
        """Shown even with -q: something the user must know about the result."""
        self.console.print(message, markup=False)

    def detail(self, message: str) -> None:
        if self.quiet:
            return
        if self.verbose:
            self.console.print(f"  {message}", style="dim", markup=False)
        elif self._status is not None:
            from rich.markup import escape

            self._status.update(f"{self._current}  [dim]{escape(message[:70])}[/]")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def make_session(
    *,
    repo: Path | None = None,
    workspace: Path | None = None,
    config: Path | None = None,
    target: str | None = None,
    verbose: bool = False,
    env: Environment = ENV,
    **flags: Any,
) -> tuple[Session, ConsoleReporter]:
    settings: Settings = load_settings(
        {"repo": repo, "workspace": workspace, "target": target, **flags}, config_path=config
    )
    reporter = ConsoleReporter(env, verbose=verbose)
    return Session(settings, reporter), reporter


def output_format(choice: str | None, env: Environment = ENV) -> str:
    if choice is None:
        return "table" if env.stdout_isatty else "json"
    choice = choice.lower()
    if choice not in ("table", "json", "csv"):
        raise UsageError(f"--output {choice!r} is not one of table, json, csv")
    return choice
