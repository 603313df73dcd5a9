"""One error family for featctl, each kind with its own exit code.

The core raises these; only the CLI turns them into a line on stderr and an
exit status. Messages are one line, name what went wrong and, where there is
one, the way out. They never carry secrets.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    TERRAFORM = 3
    SSH = 4
    FEAST = 5
    NOT_DEPLOYED = 6
    SERVER = 7
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
