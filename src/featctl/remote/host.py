"""What featctl does on the host: its directory layout, the pinned Feast
environment, the feature repository upload, and the feature server service.

Layout under the remote base directory::

    releases/<id>/             one deployed feature repository each (see releases.py)
    current -> releases/<id>   the release that serves; switched atomically
    agent/                     hostagent.py, supervise.py, requirements.txt
    envs/feast-<version>/      the pinned Feast environment (built with uv)
    tools/                     uv itself, when the host has none
    run/                       the deploy lock, the materialization schedule
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import FeastError, RemoteCommandError, UsageError
from featctl.remote.ssh import Connection, q

UV_VERSION = "0.13.9"


@dataclass(frozen=True)
class Layout:
    base: str

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
    def agent(self) -> str:
        return posixpath.join(self.agent_dir, "hostagent.py")

    @property
    def supervisor(self) -> str:
        return posixpath.join(self.agent_dir, "supervise.py")

    @property
    def requirements(self) -> str:
        return posixpath.join(self.agent_dir, "requirements.txt")

    @property
    def env(self) -> str:
        return posixpath.join(self.base, "envs", f"feast-{FEAST_VERSION}")

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
    def tmp(self) -> str:
        return posixpath.join(self.base, "tmp")


# --- files featctl ships to the host ------------------------------------------


def _packaged(name: str) -> str:
    return (resources.files("featctl.remote") / name).read_text()


def agent_files() -> dict[str, str]:
    return {
        "hostagent.py": _packaged("hostagent.py"),
        "hostops.py": _packaged("hostops.py"),
        "serve.py": _packaged("serve.py"),
        "supervise.py": _packaged("supervise.py"),
        "requirements.txt": _packaged("host-requirements.txt"),
    }


def install_agent(conn: Connection, layout: Layout) -> None:
    """Upload featctl's host-side scripts when they differ from what is there."""
    files = agent_files()
    digest = hashlib.sha256("".join(files[k] for k in sorted(files)).encode()).hexdigest()
    stamp = posixpath.join(layout.agent_dir, ".digest")
    have = conn.run(f"cat {q(stamp)} 2>/dev/null || true", timeout=30).text.strip()
    if have == digest:
        return
    for name, text in files.items():
        conn.put_text(posixpath.join(layout.agent_dir, name), text, 0o644)
    conn.put_text(stamp, digest)


# --- the Feast environment ----------------------------------------------------


def ensure_feast_env(
    conn: Connection, layout: Layout, *, on_line: Callable[[str], None] | None = None, timeout: float = 1800.0
) -> bool:
    """Create the pinned Feast environment with uv unless it is already there.

    Returns True when something was installed. The environment is marked
    ready only after a complete install, so an interrupted one is redone.
    """
    req_digest = hashlib.sha256(_packaged("host-requirements.txt").encode()).hexdigest()
    ready = posixpath.join(layout.env, ".featctl-ready")
    have = conn.run(f"cat {q(ready)} 2>/dev/null || true", timeout=30).text.strip()
    if have == req_digest:
        return False
    tools = posixpath.join(layout.base, "tools")
    script = f"""
set -eu
# Trust the host's own certificate store (corporate proxies add their CA there).
export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1
UV=$(command -v uv || true)
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
echo "creating the Feast {FEAST_VERSION} environment"
"$UV" venv --quiet --clear --python python3 {q(layout.env)}
VIRTUAL_ENV={q(layout.env)} "$UV" pip install --quiet -r {q(layout.requirements)}
{q(layout.python)} -c "import importlib.metadata as m; v = m.version('feast'); assert v == '{FEAST_VERSION}', v"
echo {q(req_digest)} > {q(ready)}
echo "Feast {FEAST_VERSION} installed"
"""
    try:
        conn.run(script, timeout=timeout, on_line=on_line)
    except RemoteCommandError as exc:
        raise FeastError(f"installing Feast {FEAST_VERSION} on the host failed: {exc.message}") from None
    return True


# --- Feast on the host ----------------------------------------------------------


def feast_apply(conn: Connection, layout: Layout, repo: str, *, timeout: float) -> str:
    """``feast apply`` in ``repo`` on the host; Feast's own message on failure."""
    result = conn.run(f"cd {q(repo)} && {q(layout.feast)} apply", timeout=timeout, check=False)
    if result.exit_status != 0:
        raise FeastError(f"feast apply failed on the host: {feast_message(result.stderr or result.stdout)}")
    return result.text


def feast_plan(conn: Connection, layout: Layout, repo: str, *, timeout: float) -> str:
    """``feast plan`` in ``repo``: the registry diff, changing nothing."""
    result = conn.run(f"cd {q(repo)} && {q(layout.feast)} plan", timeout=timeout, check=False)
    if result.exit_status != 0:
        raise FeastError(f"feast plan failed on the host: {feast_message(result.stderr or result.stdout)}")
    return result.text


def feast_message(raw: bytes) -> str:
    """The line of Feast's output that says what went wrong (not a traceback frame)."""
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "~", "Traceback", "│", "During handling", "The above exception")):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


def run_agent(
    conn: Connection,
    layout: Layout,
    command: str,
    args: Iterable[str] = (),
    *,
    timeout: float,
    repo: str | None = None,
) -> dict[str, Any]:
    """Run hostagent.py with the Feast environment on ``repo`` (default: current); return its JSON."""
    argv = " ".join(q(a) for a in args)
    result = conn.run(
        f"{q(layout.python)} {q(layout.agent)} {command} --repo {q(repo or layout.repo)} {argv}",
        timeout=timeout,
        check=False,
    )
    try:
        data = json.loads(result.stdout.decode().strip().splitlines()[-1]) if result.stdout.strip() else None
    except (ValueError, IndexError):
        data = None
    if not isinstance(data, dict):
        raise FeastError(f"featctl's host agent failed ({command}): {result.last_error_line()}")
    if result.exit_status != 0 or "error" in data:
        message = str(data.get("error") or result.last_error_line())
        if data.get("kind") == "input":
            raise UsageError(message)
        raise FeastError(f"{command} failed on the host: {message}")
    return data
