"""The client side of featctl's host agent: shipping it, building the pinned
Feast environment it runs in, and calling it over SSH.

The agent itself (``featctl.agent``) runs on the host; here only its files are
read (as package data) and its JSON answers parsed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import CommandTimedOut, FeastError, JobStopped, RemoteCommandError, UsageError
from featctl.remote.layout import DEFAULT_ENV, Layout
from featctl.remote.ssh import Connection, Result, q

UV_VERSION = "0.13.9"


@dataclass(frozen=True)
class EnvSpec:
    """What the host's Feast environment holds: the pinned lock, Feast's extras
    for the repository's stores, and ``[host] requirements``. Each spec gets an
    environment of its own (by content hash), built beside the serving one."""

    extras: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """envs/<name>: by content, so a new lock, extra or requirement gets a new
        environment beside the serving one (releases from before this record
        none and use ``DEFAULT_ENV``)."""
        content = json.dumps([_packaged("requirements.txt"), self.extras, self.requirements])
        return f"{DEFAULT_ENV}-{hashlib.sha256(content.encode()).hexdigest()[:10]}"

    def requirements_text(self, layout: Layout) -> str:
        lines = [f"-r {layout.requirements}"]
        if self.extras:
            lines.append(f"feast[{','.join(self.extras)}]=={FEAST_VERSION}")
        lines += list(self.requirements)
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        parts = [f"Feast {FEAST_VERSION}"]
        if self.extras:
            parts.append(f"extras {','.join(self.extras)}")
        if self.requirements:
            parts.append(f"requirements {', '.join(self.requirements)}")
        return " + ".join(parts)


# --- files featctl ships to the host ------------------------------------------


def _packaged(name: str) -> str:
    return (resources.files("featctl.agent") / name).read_text()


def agent_files() -> dict[str, str]:
    """Relative path under the host's agent/ directory -> text: the agent package
    and the Feast environment's lock."""
    package = resources.files("featctl.agent")
    files = {
        f"featctl_agent/{entry.name}": entry.read_text()
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".py")
    }
    files["requirements.txt"] = _packaged("requirements.txt")
    return files


def agent_digest(files: dict[str, str] | None = None) -> str:
    """The digest of this client's agent files, as the host records it beside
    them (``agent/.digest``) and its feature server reports it."""
    files = agent_files() if files is None else files
    return hashlib.sha256("".join(k + files[k] for k in sorted(files)).encode()).hexdigest()


def install_agent(conn: Connection, layout: Layout) -> None:
    """Upload featctl's host agent when it differs from what is there."""
    files = agent_files()
    digest = agent_digest(files)
    stamp = posixpath.join(layout.agent_dir, ".digest")
    have = conn.run(f"cat {q(stamp)} 2>/dev/null || true", timeout=30).text.strip()
    if have == digest:
        return
    for name, text in files.items():
        conn.put_text(posixpath.join(layout.agent_dir, name), text, 0o644)
    conn.put_text(stamp, digest)


# --- the Feast environment ----------------------------------------------------


def ensure_feast_env(
    conn: Connection,
    layout: Layout,
    spec: EnvSpec | None = None,
    *,
    on_line: Callable[[str], None] | None = None,
    on_install: Callable[[str], None] | None = None,
    timeout: float = 1800.0,
) -> bool:
    """Create the Feast environment ``layout.env`` for ``spec`` with uv unless it
    is already there.

    Returns True when something was installed (``on_install`` hears about it
    first). The environment is marked ready only after a complete install, so
    an interrupted one is redone; other environments are not touched.
    """
    spec = spec or EnvSpec()
    reqs_text = spec.requirements_text(layout)
    req_digest = hashlib.sha256((_packaged("requirements.txt") + reqs_text).encode()).hexdigest()
    ready = posixpath.join(layout.env, ".featctl-ready")
    have = conn.run(f"cat {q(ready)} 2>/dev/null || true", timeout=30).text.strip()
    if have == req_digest:
        return False
    if on_install is not None:
        on_install(f"installing {spec.describe()} with uv")
    reqs_file = f"{layout.env}.requirements.txt"
    conn.put_text(reqs_file, reqs_text)
    tools = posixpath.join(layout.base, "tools")
    script = f"""
set -eu
# Trust the host's own certificate store (corporate proxies add their CA there).
export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1
UV=$(command -v uv || true)
if [ -z "$UV" ] && [ -n "${{FEATCTL_HOST_UV:-}}" ] && [ -x "${{FEATCTL_HOST_UV:-}}" ]; then
  UV=$FEATCTL_HOST_UV  # the local target's host is this machine: featctl's own uv
fi
if [ -z "$UV" ]; then
  if [ ! -x {q(tools)}/bin/uv ]; then
    echo "bootstrapping uv {UV_VERSION}"
    rm -rf {q(tools)}
    python3 -m venv {q(tools)}
    {q(tools)}/bin/python -m pip install --quiet --disable-pip-version-check uv=={UV_VERSION}
  fi
  UV={q(tools)}/bin/uv
fi
rm -f {q(ready)}
echo "creating the environment {q(layout.env_name)}"
"$UV" venv --quiet --clear --python python3 {q(layout.env)}
VIRTUAL_ENV={q(layout.env)} "$UV" pip install --quiet -r {q(reqs_file)}
{q(layout.python)} -c "import importlib.metadata as m; v = m.version('feast'); assert v == '{FEAST_VERSION}', v"
echo {q(req_digest)} > {q(ready)}
echo "{spec.describe()} installed"
"""
    try:
        conn.run(script, timeout=timeout, on_line=on_line)
    except RemoteCommandError as exc:
        raise FeastError(f"installing {spec.describe()} on the host failed: {exc.message}") from None
    return True


# --- Feast's CLI on the host ------------------------------------------------------


def feast_apply(conn: Connection, layout: Layout, repo: str, *, timeout: float) -> str:
    """``feast apply`` in ``repo`` on the host; Feast's own message on failure."""
    result = watched(
        conn,
        f"cd {q(repo)} && {layout.agent_shell(module='featctl_agent.feast_cli', watch=True)} apply",
        "feast apply",
        timeout=timeout,
    )
    if result.exit_status != 0:
        message = feast_message(result.stderr or result.stdout)
        if message.startswith("featctl: "):  # Spark's watch ended it (agent/watch.py)
            raise JobStopped(f"feast apply on the host: {message.removeprefix('featctl: ')}")
        raise FeastError(f"feast apply failed on the host: {message}", hint=module_hint(message))
    return result.text


#: Lines of a traceback that never say what went wrong: its frames, markers and
#: PostgreSQL's context after the message (``LINE 1: SELECT ...`` and its caret).
_NOT_THE_CAUSE = re.compile(r"(File |\^|~|Traceback|│|During handling|The above exception|LINE \d+: )")


def feast_message(raw: bytes) -> str:
    """The line of Feast's output that says what went wrong (not a traceback frame)."""
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if not _NOT_THE_CAUSE.match(line):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


def module_hint(message: str) -> str | None:
    """What to do about a module the repository imports and the host lacks."""
    found = re.search(r"No module named '([^'.]+)", message)
    if found is None:
        return None
    return (
        f"the repository imports {found.group(1)}, which the host's Feast environment lacks: add its package to "
        "[host] requirements in featctl.toml"
    )


# --- calling the agent ----------------------------------------------------------------


def _answer(stdout: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(stdout.decode().strip().splitlines()[-1]) if stdout.strip() else None
    except (ValueError, IndexError):
        return None
    return data if isinstance(data, dict) else None


def run_agent(
    conn: Connection,
    layout: Layout,
    command: str,
    args: Iterable[str] = (),
    *,
    timeout: float,
    repo: str | None = None,
) -> dict[str, Any]:
    """Run an agent command on a feature repository (default: the current release)
    with the Feast environment; return its JSON. Request errors are UsageErrors."""
    argv = " ".join(q(a) for a in args)
    result = watched(
        conn,
        f"{layout.agent_shell(watch=True)} {command} --repo {q(repo or layout.repo)} {argv}",
        command,
        timeout=timeout,
    )
    data = _answer(result.stdout)
    if data is None:
        raise FeastError(f"featctl's host agent failed ({command}): {result.last_error_line()}")
    if result.exit_status != 0 or "error" in data:
        message = str(data.get("error") or result.last_error_line())
        if data.get("kind") == "input":
            raise UsageError(message, hint=module_hint(message))
        if data.get("kind") == "job":
            raise JobStopped(f"{command} on the host: {message}")
        raise FeastError(f"{command} failed on the host: {_cause(message)}", hint=module_hint(message))
    return data


def watched(conn: Connection, command: str, what: str, *, timeout: float) -> Result:
    """Run an agent ``command`` (``agent_shell(watch=True)``) that kills itself and
    what it started (Spark's JVM) when this client stops waiting (agent/watch.py):
    past ``timeout`` the channel closes, the host side ends, and the error says
    so (exit 10)."""
    try:
        return conn.run(command, timeout=timeout, check=False)
    except CommandTimedOut:
        raise JobStopped(
            f"{what} did not finish within {timeout:.0f} s; featctl stopped it and everything it started on the host",
            hint="raise command_timeout in featctl.toml or FEATCTL_COMMAND_TIMEOUT",
        ) from None


def _cause(message: str) -> str:
    """An agent's one-line error without PostgreSQL's context after the message
    (``... does not exist LINE 1: SELECT * FROM ...``: the SQL is not the cause)."""
    return re.split(r"\s+LINE \d+: ", message, maxsplit=1)[0]


def hostops(
    conn: Connection, layout: Layout, command: str, *args: str, stdin: bytes | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run an agent bookkeeping command on the deployment directory (stdlib only on
    the host: it works before the Feast environment exists)."""
    argv = " ".join(q(a) for a in args)
    res = conn.run(
        f"{layout.agent_shell(layout.host_python())} {command} --base {q(layout.base)} {argv}",
        timeout=timeout,
        check=False,
        stdin=stdin,
    )
    data = _answer(res.stdout)
    if data is None:
        raise RemoteCommandError(f"featctl's host bookkeeping failed ({command}): {res.last_error_line()}")
    if res.exit_status != 0 and "error" in data:
        raise RemoteCommandError(f"featctl's host bookkeeping failed ({command}): {data['error']}")
    return data
