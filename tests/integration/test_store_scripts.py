"""The local PostgreSQL store's start script as root, against another local
user's links (issue #23: root wrote the database password through a link
planted at ``/var/tmp/featctl-postgres-<digest of the workspace path>.initdb-password``
and chowned its target to postgres; fs.protected_symlinks is 0 here).

A throwaway user plants links at every name the old scripts used and at the
new data directory's parent; the real start-postgres.sh runs as root with the
real PostgreSQL server binaries; the links' targets stay untouched and the
cluster still starts and serves TLS."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from featctl.provision.targets import free_loopback_port, store_password, store_server_variables
from featctl.workspace import Workspace
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SCRIPTS = ROOT / "terraform" / "modules" / "stores" / "scripts"
PG_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.skip("the links matter when featctl runs as root")
    name = f"fctl-{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)


def as_user(user: str, *argv: str) -> None:
    subprocess.run(["runuser", "-u", user, "--", *argv], check=True)


def victim(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)
    return path


def untouched(path: Path, text: str) -> bool:
    st = path.lstat()
    return path.read_text() == text and st.st_uid == 0 and st.st_gid == 0 and (st.st_mode & 0o777) == 0o644


def start_env(ws: Workspace, data_dir: str, port: int) -> dict[str, str]:
    tls = store_server_variables(ws, ["postgres"], {}, names=["127.0.0.1", "localhost"], label="t")["tls"]
    return {
        "PATH": os.environ["PATH"],
        "DATA_DIR": data_dir,
        "PORT": str(port),
        "PASSWORD_FILE": store_password(ws, "postgres"),
        "PG_BIN": PG_BIN,
        "DATABASE": "feast",
        "DB_USER": "feast",
        "TLS_CA": tls["ca_cert"],
        "TLS_CERT": tls["server_cert"],
        "TLS_KEY": tls["server_key"],
    }


def private_parent(data_dir: str) -> Path:
    """The data directory's own parent, never /var/tmp itself: the tests remove it."""
    parent = Path(data_dir).parent
    assert parent.name.startswith("featctl-postgres-") and parent.parent == Path("/var/tmp"), data_dir
    return parent


def run_script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=180)


def test_links_at_the_old_and_new_names_are_never_followed(other_user, tmp_path):
    if not Path(PG_BIN, "initdb").exists():
        pytest.fail(f"PostgreSQL's server binaries are missing at {PG_BIN} (scripts/bootstrap --dev installs them)")
    ws = Workspace(tmp_path / "ws")
    ws.local_dir.mkdir(parents=True, mode=0o700)
    # The old names: a digest of the workspace's path anyone can compute.
    old = "/var/tmp/featctl-postgres-" + hashlib.sha256(str(ws.root.resolve()).encode()).hexdigest()[:12]
    secret = victim(tmp_path / "root-owned", "root's file\n")
    log = victim(tmp_path / "root-owned-log", "root's log\n")
    victim_dir = tmp_path / "root-dir"
    victim_dir.mkdir(mode=0o755)
    planted = [Path(old + ".initdb-password"), Path(old + ".initdb.log"), Path(old)]
    for link, target in zip(planted, (secret, log, victim_dir)):
        as_user(other_user, "ln", "-s", str(target), str(link))
    env = {}
    try:
        # The new name is random: not the old one, and another on every new deployment.
        data_dir = store_server_variables(ws, ["postgres"], {}, names=["127.0.0.1"], label="t")["store_dirs"][
            "postgres"
        ]
        other = store_server_variables(ws, ["postgres"], {}, names=["127.0.0.1"], label="t")["store_dirs"]["postgres"]
        private_parent(data_dir)
        assert data_dir != other and not data_dir.startswith(old + "/") and data_dir.endswith("/data")
        kept = {"store_dirs": {"postgres": data_dir}}
        assert store_server_variables(ws, ["postgres"], kept, names=["127.0.0.1"], label="t")["store_dirs"] == {
            "postgres": data_dir
        }
        env = start_env(ws, data_dir, free_loopback_port())
        res = run_script("start-postgres.sh", env)
        assert res.returncode == 0, res.stderr
        assert untouched(secret, "root's file\n") and untouched(log, "root's log\n")
        assert sorted(os.listdir(victim_dir)) == [] and victim_dir.stat().st_uid == 0
        parent = private_parent(data_dir)
        st = parent.lstat()
        assert st.st_uid == 0 and (st.st_mode & 0o7777) == 0o711 and not parent.is_symlink()
        assert Path(data_dir).stat().st_uid == pwd.getpwnam("postgres").pw_uid
        assert sorted(os.listdir(parent)) == ["data"]  # no password or log left beside it
        # The cluster serves, over TLS checked against featctl's CA.
        password = Path(env["PASSWORD_FILE"]).read_text().strip()
        q = subprocess.run(
            [f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", env["PORT"], "-U", "feast", "-d", "feast", "-tAc", "SELECT 1"],
            env={**env, "PGPASSWORD": password, "PGSSLMODE": "verify-ca", "PGSSLROOTCERT": env["TLS_CA"]},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert q.stdout.strip() == "1", q.stderr
        # A second start (Terraform replaces the server resource) converges.
        assert run_script("start-postgres.sh", env).returncode == 0
    finally:
        if env:
            run_script("stop-postgres.sh", {"PATH": os.environ["PATH"], "DATA_DIR": env["DATA_DIR"], "PG_BIN": PG_BIN})
        for link in planted:
            link.unlink(missing_ok=True)
    assert not Path(env["DATA_DIR"]).parent.exists()  # destroy removes the private directory too
    assert untouched(secret, "root's file\n")


@pytest.mark.parametrize("planted", ["link", "directory"])
def test_a_parent_someone_else_made_is_refused(other_user, tmp_path, planted):
    # Should another user learn the name before the first start (it is random), what they put there is refused.
    ws = Workspace(tmp_path / "ws")
    ws.local_dir.mkdir(parents=True, mode=0o700)
    data_dir = store_server_variables(ws, ["postgres"], {}, names=["127.0.0.1"], label="t")["store_dirs"]["postgres"]
    parent = private_parent(data_dir)
    secret = victim(tmp_path / "root-owned", "root's file\n")
    target = tmp_path / "root-dir"
    target.mkdir(mode=0o755)
    victim(target / ".initdb-password", "root's file\n")
    if planted == "link":
        as_user(other_user, "ln", "-s", str(target), str(parent))
    else:
        as_user(other_user, "mkdir", "-m", "0777", str(parent))
        as_user(other_user, "ln", "-s", str(secret), str(parent / ".initdb-password"))
    try:
        res = run_script("start-postgres.sh", start_env(ws, data_dir, free_loopback_port()))
        assert res.returncode == 1
        assert res.stderr.strip().splitlines() == [
            f"featctl store server: {parent} is not a private directory of uid 0 (a link, another user's, "
            "or writable by others): refusing to use it"
        ]
        assert untouched(secret, "root's file\n") and untouched(target / ".initdb-password", "root's file\n")
        assert sorted(os.listdir(target)) == [".initdb-password"]
    finally:
        if parent.is_symlink():
            parent.unlink()
        else:
            shutil.rmtree(parent, ignore_errors=True)
