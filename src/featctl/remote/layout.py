"""Where things live on the host (pure: paths and command prefixes only).

Layout under the remote base directory::

    releases/<id>/             one deployed feature repository each (see releases.py)
    current -> releases/<id>   the release that serves; switched atomically
    agent/featctl_agent/       featctl's host agent (the package featctl.agent)
    agent/requirements.txt     the pinned Feast environment's lock
    envs/feast-<version>[-<h>] the pinned Feast environments (built with uv); one per
                               set of extras and [host] requirements, side by side
    tools/                     uv itself, when the host has none
    run/                       the deploy lock, the materialization schedule,
                               stores.env (0600): the shared stores' connections
    run/s/<port>               every server's Unix socket (0700 directory): the
                               feature servers, UI, registry and offline servers
    tmp/                       entity files and results of historical queries
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

from featctl import FEAST_VERSION

#: The agent's package name on the host (it is ``featctl.agent`` here).
AGENT_PACKAGE = "featctl_agent"


DEFAULT_ENV = f"feast-{FEAST_VERSION}"


#: A release's batch server (historical, batch scoring) listens beside its
#: feature server on ``run/s/<port>-batch``.
BATCH_SUFFIX = "-batch"
SOCKET_NAME = re.compile(r"[0-9]{1,5}(-batch)?")


def socket_name(port: int | str, *, batch: bool = False) -> str:
    """The name of a server's socket under run/s: its port, ``-batch`` for the batch server."""
    return f"{port}{BATCH_SUFFIX}" if batch else str(port)


@dataclass(frozen=True)
class Layout:
    base: str
    #: The Feast environment (under envs/) this layout runs Feast with: the
    #: pinned Feast plus the extras and requirements a repository needs.
    env_name: str = DEFAULT_ENV

    @property
    def releases(self) -> str:
        return posixpath.join(self.base, "releases")

    def release(self, release_id: str) -> str:
        return posixpath.join(self.releases, release_id)

    @property
    def current(self) -> str:
        """The serving release, through the ``current`` link."""
        return posixpath.join(self.base, "current")

    @property
    def repo(self) -> str:
        """Where queries run Feast: the current release."""
        return self.current

    @property
    def agent_dir(self) -> str:
        return posixpath.join(self.base, "agent")

    @property
    def agent_package(self) -> str:
        return posixpath.join(self.agent_dir, AGENT_PACKAGE)

    @property
    def requirements(self) -> str:
        return posixpath.join(self.agent_dir, "requirements.txt")

    @property
    def envs(self) -> str:
        return posixpath.join(self.base, "envs")

    @property
    def env(self) -> str:
        return posixpath.join(self.envs, self.env_name)

    def with_env(self, env_name: str | None) -> Layout:
        return Layout(self.base, env_name or DEFAULT_ENV)

    @property
    def python(self) -> str:
        return posixpath.join(self.env, "bin", "python")

    @property
    def feast(self) -> str:
        return posixpath.join(self.env, "bin", "feast")

    @property
    def run_dir(self) -> str:
        return posixpath.join(self.base, "run")

    @property
    def sockets(self) -> str:
        """The servers' Unix sockets (0700): nothing of the deployment listens on TCP."""
        return posixpath.join(self.run_dir, "s")

    def socket(self, port: int | str) -> str:
        """The Unix socket of the deployment's server ``port`` (the port only names
        the blue/green slot or service; nothing listens on it), or of a
        ``socket_name`` such as ``6566-batch``."""
        return posixpath.join(self.base, "run", "s", str(port))

    @property
    def stores_env(self) -> str:
        """The shared stores' FEATCTL_* variables (0600), loaded by the agent."""
        return posixpath.join(self.run_dir, "stores.env")

    @property
    def tmp(self) -> str:
        return posixpath.join(self.base, "tmp")

    def agent_argv(self, python: str, module: str = AGENT_PACKAGE, *, bind: int | str | None = None) -> list[str]:
        """argv that runs the agent (or one of its modules) with ``python``:
        ``env`` sets PYTHONPATH, so it works in a shell and in a systemd unit alike.
        ``bind``: the server port whose Unix socket the server listens on."""
        return [
            "/usr/bin/env",
            f"PYTHONPATH={self.agent_dir}",
            f"FEATCTL_ENV_FILE={self.stores_env}",
            *([f"FEATCTL_BIND={self.socket(bind)}"] if bind is not None else []),
            python,
            "-m",
            module,
        ]

    def agent_shell(self, python_word: str | None = None, module: str = AGENT_PACKAGE, *, watch: bool = False) -> str:
        """The same as a shell command prefix. ``python_word`` is a shell word
        (default: the Feast environment's interpreter, quoted). ``watch``: the
        command ends itself and what it started when its client goes away
        (agent/watch.py; the client keeps its stdin open and silent)."""
        py = python_word or shlex.quote(self.python)
        flag = "FEATCTL_WATCH_CLIENT=1 " if watch else ""
        return (
            f"env {flag}PYTHONPATH={shlex.quote(self.agent_dir)} FEATCTL_ENV_FILE={shlex.quote(self.stores_env)} "
            f"{py} -m {module}"
        )

    def supervise_shell(self, pidfile: str, log: str, cwd: str | None = None) -> str:
        """The shell command prefix that runs a command (after it) under
        featctl's supervisor, detached, kept by the deployment's keeper
        (agent/keeper.py: a killed supervisor is started again)."""
        where = f" --cwd {shlex.quote(cwd)}" if cwd else ""
        return (
            f"{self.agent_shell(module=AGENT_PACKAGE + '.supervise')} --pidfile {shlex.quote(pidfile)} "
            f"--log {shlex.quote(log)}{where} --keep {shlex.quote(self.base)} --"
        )

    def host_python(self) -> str:
        """The Feast environment's interpreter once it exists (a plain binary: fast to
        start), else the host's python3 (which may be a slow shim, as pyenv's is).
        A shell expression: use it in commands run by a shell."""
        env = shlex.quote(self.python)
        return f'"$(test -x {env} && echo {env} || echo python3)"'
