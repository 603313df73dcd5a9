"""``featctl destroy``: stop every server, destroy the host, forget the secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

from featctl.errors import FeatctlError
from featctl.provision.machine import ensure_keys
from featctl.provision.targets import stack_variables
from featctl.provision.terraform import Stack
from featctl.remote import releases, schedule, service
from featctl.remote.ssh import q
from featctl.session import Session


@dataclass
class DestroyResult:
    target: str
    destroyed: bool
    stopped_server: bool
    messages: list[str] = field(default_factory=list)


def destroy(session: Session) -> DestroyResult:
    s = session.settings
    ws = session.workspace
    record = ws.load()
    target = record.target if record else s.target
    stack = Stack(target, ws.terraform_dir(target)) if target != "ssh" else None
    if record is None and not (stack and stack.has_state):
        return DestroyResult(
            target, destroyed=False, stopped_server=False, messages=[f"nothing is deployed from {ws.root}"]
        )
    result = DestroyResult(target, destroyed=False, stopped_server=False)
    from featctl.query import tunnel

    tunnel.stop(ws.root)
    with ws.lock():
        if record and record.host:
            session.reporter.step("stopping the feature server")
            try:
                conn = session.connection(record)
                layout = session.layout(record)
                for r in releases.state(conn, layout).releases:
                    result.stopped_server = service.stop(conn, layout, r.id) or result.stopped_server
                schedule.disable(conn, layout)
                if target == "ssh":
                    # Not featctl's machine: leave it as it was before the first deploy.
                    conn.run(f"rm -rf {q(layout.base)}", timeout=300)
                    result.destroyed = True
            except FeatctlError as exc:
                if target == "ssh":
                    raise
                result.messages.append(
                    f"could not stop the feature server over SSH ({exc}); Terraform removes the host"
                )
            finally:
                session.close()
        if stack is not None and stack.has_state:
            session.reporter.step(f"terraform destroy ({target})")
            stack.prepare()
            stack.init()
            variables = dict(record.stack_vars) if record and record.stack_vars else None
            if variables is None:
                keys = ensure_keys(session)
                variables = stack_variables(
                    target, name=s.name, keys=keys, workspace=ws, target_vars=s.target_vars.get(target, {})
                )
            stack.destroy(variables)
            result.destroyed = True
        ws.forget(target)
        result.messages.append(
            "removed featctl's directory on the host and the pinned host key"
            if target == "ssh"
            else "removed the deployment's keys, pinned host key and Terraform state"
        )
    return result

