"""featctl's own state for one deployment, kept in the workspace directory.

Layout (all secrets 0600, directories 0700)::

    .featctl/
      deployment.json        the deployment record (target, host, outputs, ...)
      known_hosts            the pinned host key
      keys/client_ed25519    key featctl logs in with (+ .pub)
      keys/host_ed25519      host key featctl generated for the host (+ .pub;
                             host_ed25519_<i> for host i of several)
      secrets/<store>.password  a shared store's generated password
      tls/                   the local stores' CA and server certificate (+ keys)
      terraform/<target>/    copy of the target's stack, with its state
      terraform/modules/     copy of the modules the stacks share
      local/                 the local target's sshd state and host root
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from featctl.errors import FeatctlError, NotDeployedError, UsageError

RECORD_VERSION = 1


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def secure_tree(root: Path) -> None:
    """Make every file under ``root`` 0600 and every directory 0700."""
    if not root.exists():
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o700)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o600 if not os.access(p, os.X_OK) else 0o700)


@dataclass
class Deployment:
    """What featctl knows about a deployment; saved as deployment.json."""

    target: str
    name: str
    host: str = ""
    port: int = 22
    user: str = ""
    remote_base_dir: str = ""
    host_public_key: str = ""
    server_port: int = 6566
    server_ports: list[int] = field(default_factory=list)
    release: str | None = None
    #: ssh target: the key the user logs in with (None: ssh-agent / ~/.ssh).
    identity: str | None = None
    feast_version: str = ""
    repo: str = ""
    deployed_at: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    registry: dict[str, Any] = field(default_factory=dict)
    stack_vars: dict[str, Any] = field(default_factory=dict)
    last_materialized: str | None = None
    #: Names this deployment on its host (run/owner.json there); a copied
    #: workspace carries the same id but is not the host's last writer.
    deployment_id: str = ""
    #: How many changes this workspace made; the host records the last one.
    generation: int = 0
    #: The serving release's Feast environment on the host (envs/<name>).
    env_name: str = ""
    #: Feast's other servers enabled for the deployment -> their host port
    #: ("ui", "registry", "offline"); every release switch starts them again.
    services: dict[str, int] = field(default_factory=dict)
    #: Every serving host, host 0 first (``hosts = N``): host, port,
    #: host_public_key, remote_base_dir and, for hosts after the first, their
    #: server_ports, server_port, release and env_name. Host 0's live in the
    #: fields above; an empty list means one host.
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: Shared stores -> where the hosts reach them (Terraform's ``stores``
    #: output: host, port, database, user; never a secret).
    stores: dict[str, Any] = field(default_factory=dict)
    #: What the serving release's health check reads (the agent's ``probe``):
    #: ``materialize`` checks the online values against it without SSH.
    probe: dict[str, Any] = field(default_factory=dict)
    stage: str = "new"
    version: int = RECORD_VERSION

    @property
    def ready(self) -> bool:
        return self.stage == "deployed"

    @property
    def host_count(self) -> int:
        return max(1, len(self.hosts))

    def for_host(self, index: int) -> Deployment:
        """The record as host ``index`` sees it: its address, key, directory,
        ports and release (host 0 is the record itself)."""
        if index == 0:
            return self
        h = self.hosts[index]
        return replace(
            self,
            host=str(h["host"]),
            port=int(h["port"]),
            host_public_key=str(h["host_public_key"]),
            remote_base_dir=str(h["remote_base_dir"]),
            server_ports=list(h.get("server_ports") or self.server_ports),
            server_port=int(h.get("server_port") or self.server_port),
            release=h.get("release"),
            env_name=str(h.get("env_name") or ""),
            services={},
        )

    def update_host(self, index: int, view: Deployment) -> None:
        """Keep what a host-``index`` view learnt (its release, port, env)."""
        if index == 0:
            return
        self.hosts[index].update(
            server_ports=list(view.server_ports),
            server_port=int(view.server_port),
            release=view.release,
            env_name=view.env_name,
        )


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root

    # paths -------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.root / "deployment.json"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def client_key(self) -> Path:
        return self.keys_dir / "client_ed25519"

    @property
    def host_key(self) -> Path:
        return self.keys_dir / "host_ed25519"

    def host_key_for(self, index: int) -> Path:
        """Host ``index``'s generated host key (host 0's keeps its first name)."""
        return self.host_key if index == 0 else self.keys_dir / f"host_ed25519_{index}"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def store_password_file(self, store: str) -> Path:
        """The generated password of a shared store (0600)."""
        return self.secrets_dir / f"{store}.password"

    @property
    def tls_dir(self) -> Path:
        """The local stores' CA and server certificate with their keys (0600)."""
        return self.root / "tls"

    def terraform_dir(self, target: str) -> Path:
        return self.root / "terraform" / target

    @property
    def local_dir(self) -> Path:
        return self.root / "local"

    # lifecycle ---------------------------------------------------------
    def ensure(self) -> None:
        """Create the workspace (0700) with a .gitignore that keeps it out of git."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# featctl state: keys and Terraform state. Never commit.\n*\n")

    def load(self) -> Deployment | None:
        try:
            raw = self.record_path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FeatctlError(f"cannot read {self.record_path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            known = {f for f in Deployment.__dataclass_fields__}
            return Deployment(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise FeatctlError(
                f"{self.record_path} is damaged ({exc}); move it away and run `featctl deploy` again"
            ) from None

    def save(self, deployment: Deployment) -> None:
        self.ensure()
        write_private(self.record_path, json.dumps(asdict(deployment), indent=2, sort_keys=True) + "\n")

    def require(self) -> Deployment:
        record = self.load()
        if record is None:
            raise NotDeployedError(
                f"no deployment in {self.root}", hint="run `featctl deploy` first, or pass --workspace"
            )
        return record

    def forget(self, target: str) -> None:
        """Remove the deployment's secrets, pins and record (after destroy; the
        caller stops the workspace's tunnel first)."""
        for p in (self.record_path, self.known_hosts):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        for d in (self.keys_dir, self.secrets_dir, self.tls_dir, self.local_dir, self.terraform_dir(target)):
            shutil.rmtree(d, ignore_errors=True)
        # The stacks' shared modules, copied beside the stack (see provision/terraform.py).
        shutil.rmtree(self.root / "terraform" / "modules", ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the workspace's exclusive lock, or refuse at once."""
        import fcntl

        self.ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"another featctl command is changing the deployment in {self.root}",
                    hint="wait for it to finish",
                ) from None
            yield
        finally:
            os.close(fd)
