"""``featctl plan``: what deploy would change, changing nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featctl.errors import HostKeyMismatch, SSHError, UsageError
from featctl.lifecycle import endpoint
from featctl.lifecycle.common import check_repo, holder, server_differs
from featctl.lifecycle.materialize import not_materialized, skipped_note, unknown_skips
from featctl.provision.machine import prepared_stack
from featctl.provision.targets import HostKeys
from featctl.remote import agent, releases
from featctl.remote.keys import generate_ed25519
from featctl.remote.ssh import q
from featctl.repo.bundle import build as build_bundle
from featctl.session import Session


@dataclass(frozen=True)
class PlanRow:
    """One planned change: what kind of thing, which one, what happens to it,
    and (registry objects) the fields that differ."""

    kind: str
    name: str
    change: str
    fields: tuple[str, ...] = ()


@dataclass
class PlanResult:
    target: str
    terraform: list[dict[str, Any]] = field(default_factory=list)
    upload: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    install_feast: bool = False
    #: Feast objects a deploy would create, update or delete (only those that
    #: really change); None when unknown (nothing deployed, the host silent).
    registry: list[PlanRow] | None = None
    notes: list[str] = field(default_factory=list)
    #: Files the host changed since featctl uploaded them (offline pushes): deploy keeps the host's copy.
    kept: list[str] = field(default_factory=list)
    #: Of those, files changed here too: deploy stops on them without --keep-host-data/--overwrite-data.
    conflicts: list[str] = field(default_factory=list)
    #: The application endpoint: added, removed or changed ([endpoint] in featctl.toml).
    endpoint: list[PlanRow] = field(default_factory=list)
    #: How the serving feature server runs otherwise than featctl.toml says (a new release starts it so).
    server: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(
            self.terraform or self.upload or self.remove or self.install_feast or self.endpoint or self.server
        )

    def rows(self) -> list[PlanRow]:
        """Every planned change, Terraform first, then files (host-written ones kept), the host, the registry."""
        rows = [PlanRow("terraform", c["address"], "/".join(c["actions"])) for c in self.terraform]
        rows += [PlanRow("file", p, "upload") for p in self.upload] + [
            PlanRow("file", p, "remove") for p in self.remove
        ]
        rows += [
            PlanRow(
                "file", p, "conflict: changed on the host and here" if p in self.conflicts else "keep the host's copy"
            )
            for p in self.kept
        ]
        if self.install_feast:
            rows.append(PlanRow("host", "Feast environment", "install"))
        rows += [PlanRow("host", "feature server", f"new release ({why})") for why in self.server]
        return rows + list(self.endpoint) + list(self.registry or [])


def plan(session: Session, *, data: str = "ask") -> PlanResult:
    """What ``deploy`` would change: the Terraform plan, the files, the Feast registry diff.

    Changes nothing: the registry diff comes from ``feast plan`` run in a
    scratch copy of the serving release, removed afterwards.
    """
    import tempfile

    s = session.settings
    ws = session.workspace
    check_repo(s.repo)
    record = ws.load()
    if record and record.target != s.target:
        raise UsageError(f"{ws.root} holds a {record.target} deployment; destroy it first or use another --workspace")
    result = PlanResult(target=s.target)
    if s.endpoint is not None and s.target not in ("local", "vm", "yandex"):
        raise UsageError(f"[endpoint] runs on the local, vm and yandex targets (this deployment's target: {s.target})")
    if record is not None and record.host:
        result.endpoint = [PlanRow(c.kind, c.name, c.change, tuple(c.fields)) for c in endpoint.plan_rows(s, record)]
    elif s.endpoint is not None:
        where = f"load balancer :{s.endpoint.port}" if s.target == "yandex" else endpoint.url(s.endpoint)
        result.endpoint = [PlanRow("endpoint", where, "add")]
    if record is not None and record.registry:
        left_out = not_materialized(record.registry, s.materialize_skip)
        if left_out:
            result.notes.append(skipped_note(left_out))
        if missing := unknown_skips(record.registry, s.materialize_skip):
            result.notes.append(f"[materialize] skip names {', '.join(missing)}, which the deployed registry lacks")
    with ws.lock(), tempfile.TemporaryDirectory(prefix="featctl-plan-") as tmp:
        # Existing keys are read, missing ones are throwaway: plan keeps nothing.
        client = (
            ws.client_key.with_suffix(".pub").read_text().strip()
            if ws.client_key.exists()
            else generate_ed25519(Path(tmp) / "client", "plan")
        )
        hosts = []
        for i in range(s.hosts):
            key_path = ws.host_key_for(i)
            if key_path.exists():
                hosts.append((str(key_path), key_path.with_suffix(".pub").read_text().strip()))
            else:
                throwaway = Path(tmp) / f"host{i}"
                hosts.append((str(throwaway), generate_ed25519(throwaway, "plan")))
        keys = HostKeys(client_public=client, hosts=tuple(hosts))
        stack, variables = prepared_stack(session, record, keys)
        result.terraform = stack.plan(variables)
        local = build_bundle(s.repo, workspace=ws.root, stores=s.stores, spark=dict(s.spark))
        result.notes += local.notes
        if not (record and record.host and record.stage == "deployed"):
            result.upload = sorted(local.manifest)
            result.notes.append(
                "nothing is deployed from this workspace yet: deploy applies everything in the repository"
            )
            return result
        try:
            conn = session.connection(record)
        except HostKeyMismatch:
            raise
        except SSHError as exc:
            result.notes.append(f"the host did not answer ({exc}); file and registry changes unknown")
            return result
        layout = session.layout(record)
        host = releases.state(conn, layout)
        files = releases.file_plan(local, host, data)
        result.upload, result.remove = sorted(files.upload), files.remove
        result.kept, result.conflicts = files.kept, files.conflicts if data == "ask" else []
        for rel in files.kept:
            if rel in result.conflicts:
                result.notes.append(
                    f"{rel} changed on the host since featctl uploaded it and here too: deploy stops unless given "
                    "--keep-host-data or --overwrite-data"
                )
            else:
                result.notes.append(
                    f"{rel} changed on the host since featctl uploaded it (offline pushes): deploy keeps the "
                    "host's copy (--overwrite-data replaces it)"
                )
        cfg = local.config
        spec = agent.EnvSpec(tuple(cfg.extras) if cfg else (), tuple(s.host_requirements))
        wanted = layout.with_env(spec.name)
        ready = conn.run(f"cat {q(wanted.env + '/.featctl-ready')} 2>/dev/null || true", timeout=30).text.strip()
        result.install_feast = not ready
        cur = host.current_release
        differs = server_differs(cur, s) if cur is not None else None
        result.server = [differs] if differs else []
        if result.install_feast:
            result.notes.append(f"deploy would install {spec.describe()} (envs/{spec.name}) beside the serving one")
        # The registry diff runs with the environment deploy would use, when it exists.
        layout = wanted if ready else layout.with_env(cur.env if cur else None)
        if not (result.upload or result.remove or result.install_feast) or host.current is None:
            result.registry = [] if host.current else None
            return result
        scratch = f"plan-{releases.new_release_id()}"
        with releases.deploy_lock(conn, layout, holder("plan")):
            try:
                releases.prepare(conn, layout, scratch)
                releases.upload(conn, local, layout, scratch, files)
                agent.run_agent(
                    conn,
                    layout,
                    "rebase",
                    ["--from", layout.release(host.current)],
                    timeout=120,
                    repo=layout.release(scratch),
                )
                diff = agent.run_agent(
                    conn,
                    layout,
                    "registry-diff",
                    ["--from", layout.release(host.current)],
                    timeout=s.command_timeout,
                    repo=layout.release(scratch),
                )
                result.registry = [
                    PlanRow(c["kind"], c["name"], c["change"], tuple(c.get("fields", []))) for c in diff["changes"]
                ]
            finally:
                conn.run(f"rm -rf {q(layout.release(scratch))}", timeout=120, check=False)
    return result
