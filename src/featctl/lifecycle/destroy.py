"""``featctl destroy``: stop every server, destroy the host, forget the secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

from featctl.config import LOOPBACK_TARGETS
from featctl.errors import FeatctlError, HostKeyMismatch, SSHError
from featctl.lifecycle import ownership
from featctl.lifecycle.hosts import remove_ca_aliases
from featctl.provision.machine import ensure_keys, port_open
from featctl.provision.targets import stack_variables
from featctl.provision.terraform import Stack
from featctl.remote import agent, host, releases, schedule, service
from featctl.remote.ssh import Connection, q
from featctl.session import Session
from featctl.workspace import Deployment


@dataclass
class DestroyResult:
    target: str
    destroyed: bool
    stopped_server: bool
    messages: list[str] = field(default_factory=list)


def destroy(session: Session, *, take_over: bool = False) -> DestroyResult:
    """Stop everything the deployment runs, destroy its host, forget its secrets.

    Nothing of the deployment may survive: every process of it on the host is
    stopped (by process group) and checked gone before Terraform runs, and on
    the local target its server ports must be free afterwards. Otherwise it
    fails loudly and keeps the record, so it can be run again.
    """
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
    from featctl.lifecycle.services import disconnect

    disconnect(session, stop_servers=False)
    from featctl.lifecycle.endpoint import teardown

    teardown(ws.root)  # HAProxy first: nothing answers applications while the hosts go
    with ws.lock():
        if record and record.host:
            # Followers first, host 0 (the owner record, the stores' teardown) last.
            for index in reversed(range(record.host_count)):
                view = record.for_host(index)
                conn = _connect(session, view, result, index)
                if conn is not None:
                    try:
                        _stop_everything(session, conn, view, result, take_over=take_over, first=index == 0)
                    finally:
                        session.close_host(index)
        if stack is not None and stack.has_state:
            session.reporter.step(f"terraform destroy ({target})")
            stack.prepare()
            stack.init()
            variables = dict(record.stack_vars) if record and record.stack_vars else None
            if variables is None:
                keys = ensure_keys(session)
                variables = stack_variables(
                    target,
                    name=s.name,
                    keys=keys,
                    workspace=ws,
                    target_vars=s.target_vars.get(target, {}),
                    stores=s.stores,
                )
            stack.destroy(variables)
            result.destroyed = True
        if target in LOOPBACK_TARGETS and record is not None:
            # This machine's loopback: the hosts' sshd, their servers, the stores.
            ports = [p for i in range(record.host_count) for p in record.for_host(i).server_ports]
            ports += [int(record.for_host(i).port) for i in range(record.host_count) if record.for_host(i).port]
            ports += [int(p) for p in record.services.values()]
            ports += [int(where["port"]) for where in record.stores.values()]
            busy = [p for p in ports if port_open("127.0.0.1", p)]
            if busy:
                raise FeatctlError(
                    f"destroy ran, but port(s) {', '.join(map(str, busy))} on this machine still accept connections; "
                    "the record is kept: find the process (ss -ltnp) and run `featctl destroy` again"
                )
        if target == "vm" and record is not None:
            from featctl.provision.vmnet import leftovers

            left = leftovers(record.outputs.get("network") or {})
            if left:
                raise FeatctlError(
                    f"destroy ran, but the guests' network is still here ({', '.join(left)}); "
                    "the record is kept: run `featctl destroy` again"
                )
        ws.forget(target)
        result.messages.append(
            "removed featctl's directory on the host and the pinned host key"
            if target == "ssh"
            else "removed the deployment's keys, pinned host key and Terraform state"
        )
    return result


def _connect(session: Session, record: Deployment, result: DestroyResult, index: int = 0) -> Connection | None:
    try:
        return session.connection_to(record, index)
    except HostKeyMismatch:
        raise
    except SSHError as exc:
        if record.target == "ssh":
            raise
        result.messages.append(f"could not stop the feature server over SSH ({exc}); Terraform removes the host")
        return None


def _stop_everything(
    session: Session,
    conn: Connection,
    record: Deployment,
    result: DestroyResult,
    *,
    take_over: bool,
    first: bool = True,
) -> None:
    layout = session.layout(record)
    if first:
        ownership.check(conn, layout, record, session.workspace, take_over=take_over)
    state = releases.state(conn, layout)
    cur = state.current_release
    if cur is not None and first:
        # Stores that outlive the host (Redis, PostgreSQL, a SQL registry) lose
        # this deployment's data; a host's own files go with the host.
        try:
            done = agent.run_agent(
                conn,
                layout.with_env(cur.env),
                "teardown",
                timeout=session.settings.command_timeout,
                repo=layout.current,
            )
            if "skipped" not in done:
                result.messages.append(f"removed project {done.get('project')}'s data from its stores")
        except FeatctlError as exc:
            result.messages.append(
                f"could not remove the deployment's data from its stores ({exc.message}); remove it by hand"
            )
    session.reporter.step("stopping the feature servers and the schedule")
    for r in state.releases:
        result.stopped_server = service.stop(conn, layout, r.id) or result.stopped_server
    schedule.disable(conn, layout)
    remove_ca_aliases(conn, record, layout)
    left = host.processes(conn, layout, kill=True)
    if left:
        shown = "; ".join(f"pid {p['pid']} ({p['cmd'][:80]})" for p in left[:3])
        raise FeatctlError(
            f"destroy stopped before Terraform: {len(left)} process(es) of the deployment survive SIGKILL on the "
            f"host: {shown}; nothing was destroyed"
        )
    if record.target == "ssh":
        # Not featctl's machine: leave it as it was before the first deploy.
        conn.run(f"rm -rf {q(layout.base)}", timeout=300)
        result.destroyed = True
