"""One error family for featctl, each kind with its own exit code.

The core raises these; only the CLI turns them into a line on stderr and an
exit status. Messages are one line, name what went wrong and, where there is
one, the way out. They never carry secrets.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """featctl's exit codes, one per kind of outcome.

    | code | name | meaning |
    | --- | --- | --- |
    | 0 | OK | done; for `status`: the deployment is healthy |
    | 1 | FAILURE | anything else that failed (e.g. destroy left a process running) |
    | 2 | USAGE | bad input (flags, files, featctl.toml) or a refusal; nothing was touched |
    | 3 | TERRAFORM | Terraform failed |
    | 4 | SSH | the host does not answer over SSH, a command on it failed, or its key changed |
    | 5 | FEAST | Feast refused or failed (apply, materialize, retrieval) |
    | 6 | NOT_DEPLOYED | the workspace has no deployment |
    | 7 | SERVER | the feature server did not answer, or answered with an error |
    | 8 | UNHEALTHY | `featctl status` printed its full report and the deployment is not healthy: no SSH, no release, a feature server that does not serve right, or a host that does not serve |
    | 9 | WRONG_VALUES | `featctl verify` found online values that differ from the offline data (also when `--repair` rewrote them) |
    | 10 | JOB_STOPPED | a job on the host (a query, materialization, verify, feast apply) ran out of memory, stopped making progress or ran past `command_timeout`: featctl stopped it and everything it started there |
    | 130 | INTERRUPTED | interrupted (Ctrl-C) |
    """

    OK = 0
    FAILURE = 1
    USAGE = 2
    TERRAFORM = 3
    SSH = 4
    FEAST = 5
    NOT_DEPLOYED = 6
    SERVER = 7
    UNHEALTHY = 8
    WRONG_VALUES = 9
    JOB_STOPPED = 10
    INTERRUPTED = 130


class FeatctlError(Exception):
    """Base of every error featctl reports to its user."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(FeatctlError):
    """Bad input on the command line or in an input file; nothing was touched."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """featctl.toml or a FEATCTL_* variable holds something invalid."""


class TerraformError(FeatctlError):
    exit_code = ExitCode.TERRAFORM


class SSHError(FeatctlError):
    exit_code = ExitCode.SSH


class HostKeyMismatch(SSHError):
    """The host presented a key other than the pinned one."""


class RemoteCommandError(SSHError):
    """A command on the host failed or timed out."""


class CommandTimedOut(RemoteCommandError):
    """A command on the host ran past its time limit; the client gave up on it."""


class JobStopped(FeatctlError):
    """A job on the host ran out of memory, stalled or ran past its limit, and
    featctl stopped it and what it started (Spark's JVM) on the host."""

    exit_code = ExitCode.JOB_STOPPED


class FeastError(FeatctlError):
    """Feast refused or failed (apply, materialize, retrieval)."""

    exit_code = ExitCode.FEAST


class NotDeployedError(FeatctlError):
    exit_code = ExitCode.NOT_DEPLOYED


class FeatureServerError(FeatctlError):
    """The feature server did not answer, or answered with an error."""

    exit_code = ExitCode.SERVER
    #: The request was sent and may have run: it must not be sent again (to this host or another).
    sent: bool = False


class Cancelled(FeatctlError):
    """The user answered no; nothing was changed."""


class Interrupted(FeatctlError):
    exit_code = ExitCode.INTERRUPTED
