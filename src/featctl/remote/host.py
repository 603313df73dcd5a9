"""What featctl does on the host: its directory layout, the pinned Feast
environment, the feature repository upload, and the feature server service.

Layout under the remote base directory::

    repo/                      the uploaded feature repository (Feast runs here)
    repo/.featctl-manifest.json  what featctl uploaded (path -> sha256)
    agent/                     hostagent.py, supervise.py, requirements.txt
    envs/feast-<version>/      the pinned Feast environment (built with uv)
    tools/                     uv itself, when the host has none
    run/server.pid, server.log the supervised feature server
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import FeastError, RemoteCommandError, UsageError
from featctl.remote.ssh import Connection, q

UV_VERSION = "0.13.9"
MANIFEST = ".featctl-manifest.json"
SERVICE = "featctl-feature-server"

# Never uploaded: state Feast writes on the host, caches, VCS data.
_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", ".featctl", ".pytest_cache", ".mypy_cache"}
_SKIP_SUFFIXES = (".pyc", ".db", ".db-journal", ".db-wal", ".db-shm", ".featctl-tmp")


@dataclass(frozen=True)
class Layout:
    base: str

    @property
    def repo(self) -> str:
        return posixpath.join(self.base, "repo")

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
    def pidfile(self) -> str:
        return posixpath.join(self.run_dir, "server.pid")

    @property
    def server_log(self) -> str:
        return posixpath.join(self.run_dir, "server.log")


# --- files featctl ships to the host ------------------------------------------


def _packaged(name: str) -> str:
    return (resources.files("featctl.remote") / name).read_text()


def agent_files() -> dict[str, str]:
    return {
        "hostagent.py": _packaged("hostagent.py"),
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


# --- the feature repository ---------------------------------------------------


def local_manifest(repo: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file featctl uploads from ``repo``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES) or name == MANIFEST:
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(repo).as_posix()
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[rel] = h.hexdigest()
    return out


@dataclass
class SyncResult:
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted)


def read_remote_manifest(conn: Connection, layout: Layout) -> dict[str, str]:
    raw = conn.run(f"cat {q(posixpath.join(layout.repo, MANIFEST))} 2>/dev/null || true", timeout=30).text
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def sync_repo(
    conn: Connection, repo: Path, layout: Layout, *, on_file: Callable[[str, int], None] | None = None
) -> SyncResult:
    """Make the host's repo/ match ``repo``: upload what changed, remove what is gone.

    The manifest is written last, so an interrupted upload is redone on the
    next run; files Feast created on the host (registry, online store) are
    never in the manifest and never removed.
    """
    local = local_manifest(repo)
    remote = read_remote_manifest(conn, layout)
    result = SyncResult()
    todo = [rel for rel, digest in local.items() if remote.get(rel) != digest]
    result.unchanged = len(local) - len(todo)
    gone = sorted(set(remote) - set(local))
    if not todo and not gone:
        return result
    manifest_path = posixpath.join(layout.repo, MANIFEST)
    # Invalidate first: a crash mid-upload must not look like a finished one.
    conn.run(f"mkdir -p {q(layout.repo)} && rm -f {q(manifest_path)}", timeout=30)
    result.bytes = conn.put_files(((repo / rel, posixpath.join(layout.repo, rel)) for rel in todo), on_file=on_file)
    result.uploaded = todo
    if gone:
        paths = " ".join(q(posixpath.join(layout.repo, rel)) for rel in gone)
        conn.run(f"rm -f {paths}", timeout=60)
        result.deleted = gone
    conn.put_text(manifest_path, json.dumps(local, indent=1, sort_keys=True))
    return result


# --- Feast on the host ----------------------------------------------------------


def feast_apply(conn: Connection, layout: Layout, *, timeout: float) -> str:
    """``feast apply`` in the uploaded repo; Feast's own message on failure."""
    result = conn.run(f"cd {q(layout.repo)} && {q(layout.feast)} apply", timeout=timeout, check=False)
    if result.exit_status != 0:
        raise FeastError(f"feast apply failed on the host: {_feast_message(result.stderr or result.stdout)}")
    return result.text


def _feast_message(raw: bytes) -> str:
    lines = [ln.strip() for ln in raw.decode(errors="replace").splitlines() if ln.strip()]
    # Feast's CLI ends with the exception line; skip traceback frames.
    for line in reversed(lines):
        if not line.startswith(("File ", "^", "~", "Traceback")) and not line.startswith("│"):
            return line[:400]
    return lines[-1][:400] if lines else "no output"


def run_agent(
    conn: Connection, layout: Layout, command: str, args: Iterable[str] = (), *, timeout: float
) -> dict[str, Any]:
    """Run hostagent.py with the Feast environment; return its JSON answer."""
    argv = " ".join(q(a) for a in args)
    result = conn.run(
        f"{q(layout.python)} {q(layout.agent)} {command} --repo {q(layout.repo)} {argv}",
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


# --- the feature server service ---------------------------------------------------


def server_command(layout: Layout, port: int, workers: int) -> list[str]:
    return [
        layout.feast,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--max-requests",
        "0",
        "--max-requests-jitter",
        "0",
        "--registry_ttl_sec",
        "5",
    ]


SYSTEMD_UNIT = f"/etc/systemd/system/{SERVICE}.service"


def service_manager(conn: Connection) -> str:
    """``systemd`` where the host runs it and featctl may manage units, else ``supervise``."""
    out = conn.run(
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && "
        '{ [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then echo systemd; else echo supervise; fi',
        timeout=30,
    ).text.strip()
    return "systemd" if out == "systemd" else "supervise"


def systemd_unit(layout: Layout, user: str, command: list[str]) -> str:
    """The unit file for the feature server (pure; unit-tested)."""
    exec_start = " ".join(q(a) for a in command)
    return f"""[Unit]
Description=Feast feature server deployed by featctl ({layout.base})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={layout.repo}
ExecStart={exec_start}
Restart=always
RestartSec=2
StandardOutput=append:{layout.server_log}
StandardError=append:{layout.server_log}
KillMode=control-group
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def _sudo(conn: Connection) -> str:
    return "" if conn.run("id -u", timeout=30).text.strip() == "0" else "sudo -n "


def server_pid(conn: Connection, layout: Layout) -> int | None:
    """The pid of the running service (the systemd main pid or featctl's supervisor), else None."""
    out = conn.run(
        f'p=$(cat {q(layout.pidfile)} 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p" && exit 0; '
        f"if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then "
        f'p=$(systemctl show -p MainPID --value {SERVICE} 2>/dev/null); [ "$p" != 0 ] && echo "$p"; fi; true',
        timeout=30,
    ).text.strip()
    return int(out) if out.isdigit() else None


def stop_server(conn: Connection, layout: Layout, *, timeout: float = 30.0) -> bool:
    """Stop the service and everything it started; True when something was running."""
    if conn.run(f"test -f {SYSTEMD_UNIT}", timeout=30, check=False).exit_status == 0:
        was = server_pid(conn, layout) is not None
        conn.run(f"{_sudo(conn)}systemctl stop {SERVICE}", timeout=timeout + 15)
        return was
    pid = server_pid(conn, layout)
    if pid is None:
        return False
    conn.run(
        f"""
kill -TERM -- -{pid} 2>/dev/null || kill -TERM {pid} 2>/dev/null || true
i=0
while kill -0 {pid} 2>/dev/null && [ $i -lt {int(timeout * 10)} ]; do i=$((i+1)); sleep 0.1; done
kill -KILL -- -{pid} 2>/dev/null || true
rm -f {q(layout.pidfile)}
""",
        timeout=timeout + 15,
    )
    return True


def remove_service(conn: Connection) -> None:
    """Remove the systemd unit, if featctl installed one (destroy)."""
    if conn.run(f"test -f {SYSTEMD_UNIT}", timeout=30, check=False).exit_status == 0:
        sudo = _sudo(conn)
        conn.run(
            f"{sudo}systemctl disable --now {SERVICE} >/dev/null 2>&1 || true; {sudo}rm -f {SYSTEMD_UNIT}; "
            f"{sudo}systemctl daemon-reload",
            timeout=60,
        )


def start_server(conn: Connection, layout: Layout, *, port: int, workers: int, user: str = "") -> None:
    """Start the feature server as a supervised service (replacing a running one)."""
    stop_server(conn, layout)
    busy = conn.run(
        f'{q(layout.python)} -c "import socket,sys; s=socket.socket(); '
        f"sys.exit(s.connect_ex(('127.0.0.1', {port})) == 0)\"",
        timeout=30,
        check=False,
    )
    if busy.exit_status == 1:
        raise FeastError(
            f"port {port} on the host is already in use by another program",
            hint="set server_port in featctl.toml or FEATCTL_SERVER_PORT",
        )
    command = server_command(layout, port, workers)
    conn.run(f"mkdir -p {q(layout.run_dir)}", timeout=30)
    if service_manager(conn) == "systemd":
        unit_user = user or conn.run("id -un", timeout=30).text.strip()
        staged = posixpath.join(layout.run_dir, f"{SERVICE}.service")
        conn.put_text(staged, systemd_unit(layout, unit_user, command))
        sudo = _sudo(conn)
        conn.run(
            f"{sudo}install -m 0644 {q(staged)} {SYSTEMD_UNIT} && {sudo}systemctl daemon-reload && "
            f"{sudo}systemctl enable {SERVICE} >/dev/null 2>&1 && {sudo}systemctl restart {SERVICE}",
            timeout=60,
        )
    else:
        cmd = " ".join(q(a) for a in command)
        conn.run(
            f"cd {q(layout.repo)} && "
            f"{q(layout.python)} {q(layout.supervisor)} --pidfile {q(layout.pidfile)} --log {q(layout.server_log)} "
            f"--cwd {q(layout.repo)} -- {cmd} </dev/null >/dev/null 2>&1",
            timeout=60,
        )
    deadline = time.monotonic() + 10
    while server_pid(conn, layout) is None:
        if time.monotonic() > deadline:
            raise FeastError(f"the feature server did not start: {tail_log(conn, layout, 1)}")
        time.sleep(0.2)


def tail_log(conn: Connection, layout: Layout, lines: int = 50) -> str:
    return conn.run(f"tail -n {int(lines)} {q(layout.server_log)} 2>/dev/null || true", timeout=30).text.strip()
