"""featctl's servers and schedule as systemd units, on a host whose PID 1 is
systemd and where featctl may manage units (it logs in as root, or has
passwordless sudo, as the yandex and vm targets' user-data grants). The one
adapter to ``systemctl`` (stdlib only).

Units are named after the deployment directory, so two deployments on one
host never share one: ``featctl-<h>-server-<release>``, ``-ui-``,
``-registry-``, ``-offline-`` and ``featctl-<h>-materialize`` (a timer), where
``<h>`` is a digest of the base directory. A release's metadata directory
records the unit of each of its services in ``<service>.unit`` (as
``<service>.pid`` records a supervisor), so bookkeeping finds them without
asking systemd for a list.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time

from .common import write
from .output import AgentError, InputError

UNIT_DIR = "/etc/systemd/system"
SERVICES = ("server", "batch", "ui", "registry", "offline")


def available() -> bool:
    """systemd runs this host and featctl may manage its units."""
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemctl") is None:
        return False
    if os.geteuid() == 0:
        return True
    if shutil.which("sudo") is None:
        return False
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def prefix(base: str) -> str:
    return f"featctl-{hashlib.sha256(base.encode()).hexdigest()[:8]}"


def name(base: str, service: str, release_id: str | None = None) -> str:
    """A unit's name without its suffix."""
    return f"{prefix(base)}-{service}" + (f"-{release_id.lower()}" if release_id else "")


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def _systemctl(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [*_sudo(), "systemctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and res.returncode != 0:
        detail = (res.stderr or res.stdout).strip().splitlines()
        raise AgentError(f"systemctl {' '.join(args)} failed: {detail[-1] if detail else f'exit {res.returncode}'}")
    return res


def show(units: list[str], *props: str) -> dict[str, dict[str, str]]:
    """``systemctl show`` of several units at once: unit -> property -> value."""
    if not units:
        return {}
    res = subprocess.run(
        ["systemctl", "show", "--timestamp=utc", *[f"--property={p}" for p in ("Id", *props)], *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out: dict[str, dict[str, str]] = {}
    for block in res.stdout.split("\n\n"):
        values = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if values.get("Id"):
            out[values["Id"]] = values
    return out


def main_pids(units: list[str]) -> dict[str, int]:
    """unit -> its live main process, for the units that run one."""
    found = show([u if "." in u else f"{u}.service" for u in units], "MainPID")
    pids = {}
    for unit in units:
        pid = found.get(unit if "." in unit else f"{unit}.service", {}).get("MainPID", "0")
        if pid.isdigit() and int(pid) > 0:
            pids[unit] = int(pid)
    return pids


def installed(base: str) -> list[str]:
    """Every unit file of this deployment (``name.service``, ``name.timer``)."""
    mine = prefix(base) + "-"
    try:
        return sorted(f for f in os.listdir(UNIT_DIR) if f.startswith(mine))
    except OSError:
        return []


def service_text(description: str, cwd: str, argv: list[str], *, log: str, env_file: str, oneshot: bool = False) -> str:
    """A unit running ``argv`` as the agent's own user (pure; unit-tested)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    kind = (
        "Type=oneshot\n"
        if oneshot
        else "Type=simple\nRestart=always\nRestartSec=2\nKillMode=control-group\nTimeoutStopSec=30\n"
    )
    install = "" if oneshot else "\n[Install]\nWantedBy=multi-user.target\n"
    return (
        f"[Unit]\nDescription={description}\nAfter=network-online.target\nWants=network-online.target\n\n"
        f"[Service]\n{kind}User={user}\nWorkingDirectory={cwd}\nEnvironmentFile=-{env_file}\n"
        f"ExecStart={' '.join(shlex.quote(a) for a in argv)}\n"
        f"StandardOutput=append:{log}\nStandardError=append:{log}\n{install}"
    )


def timer_text(description: str, every: int) -> str:
    return (
        f"[Unit]\nDescription={description}\n\n"
        f"[Timer]\nOnActiveSec={every}s\nOnUnitActiveSec={every}s\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )


def install(files: dict[str, str]) -> None:
    """Write unit files (name with suffix -> text) into /etc/systemd/system and reload."""
    with tempfile.TemporaryDirectory(prefix="featctl-units-") as tmp:
        for unit, text in files.items():
            staged = os.path.join(tmp, unit)
            with open(staged, "w") as fh:
                fh.write(text)
            res = subprocess.run(
                [*_sudo(), "install", "-m", "0644", staged, os.path.join(UNIT_DIR, unit)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if res.returncode != 0:
                raise AgentError(f"cannot install the systemd unit {unit}: {res.stderr.strip()[-200:]}")
    _systemctl("daemon-reload")


def start(unit: str, *, restart: bool = True) -> None:
    _systemctl("enable", unit)
    _systemctl("restart" if restart else "start", unit)


def remove(units: list[str]) -> bool:
    """Stop, disable and delete units (with or without their suffix); True if one existed."""
    files = [u if "." in u else f"{u}.service" for u in units]
    present = [f for f in files if os.path.exists(os.path.join(UNIT_DIR, f))]
    if not present:
        return False
    _systemctl("disable", "--now", *present, check=False)
    subprocess.run([*_sudo(), "rm", "-f", *[os.path.join(UNIT_DIR, f) for f in present]], timeout=60, check=False)
    _systemctl("daemon-reload", check=False)
    _systemctl("reset-failed", *present, check=False)
    return True


def wait_active(unit: str, log: str, seconds: float = 15.0) -> int:
    """The unit's main pid once it runs; the log's last line when it does not."""
    deadline = time.monotonic() + seconds
    while True:
        pid = main_pids([unit]).get(unit)
        if pid:
            return pid
        if time.monotonic() > deadline:
            last = ""
            with contextlib.suppress(OSError), open(log, errors="replace") as fh:
                lines = [ln.strip() for ln in fh.read().splitlines()[-20:] if ln.strip()]
                last = lines[-1] if lines else ""
            state = show([f"{unit}.service"], "ActiveState", "SubState").get(f"{unit}.service", {})
            raise AgentError(
                f"systemd unit {unit} is {state.get('ActiveState', '?')}/{state.get('SubState', '?')}: "
                f"{last or 'no log'}"
            )
        time.sleep(0.2)


# --- what a release's metadata records ----------------------------------------------


def release_units(base: str, release_id: str) -> dict[str, str]:
    """service -> unit, for the services of a release that systemd runs."""
    meta = os.path.join(base, "releases", release_id, ".featctl")
    out = {}
    for service in SERVICES:
        with contextlib.suppress(OSError), open(os.path.join(meta, f"{service}.unit")) as fh:
            unit = fh.read().strip()
            if unit:
                out[service] = unit
    return out


def stop_release(base: str, release_id: str, services: tuple[str, ...] = SERVICES) -> bool:
    """Remove the units of a release's ``services``; True if one existed."""
    meta = os.path.join(base, "releases", release_id, ".featctl")
    found = {s: u for s, u in release_units(base, release_id).items() if s in services}
    was = remove(list(found.values())) if found else False
    for service in found:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(meta, f"{service}.unit"))
    return was


def timer_state(base: str) -> dict[str, object] | None:
    """The schedule's timer, when systemd runs it: its unit and next run (UTC)."""
    timer = f"{name(base, 'materialize')}.timer"
    if not os.path.exists(os.path.join(UNIT_DIR, timer)):
        return None
    state: dict[str, object] = {"manager": "systemd timer", "unit": timer, "next_run": None}
    # list-timers gives the next run as wall-clock time even for monotonic
    # triggers (show's NextElapseUSecRealtime is empty for those).
    res = subprocess.run(
        ["systemctl", "list-timers", "--all", "--output=json", timer],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    with contextlib.suppress(ValueError, TypeError):
        for row in json.loads(res.stdout or "[]"):
            if row.get("unit") == timer and row.get("next"):
                when = time.gmtime(int(row["next"]) / 1e6)
                state["next_run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", when)
    state["active"] = show([timer], "ActiveState").get(timer, {}).get("ActiveState")
    return state


# --- agent commands -------------------------------------------------------------------


def cmd_manager(_args: argparse.Namespace) -> dict[str, object]:
    return {"manager": "systemd" if available() else "supervise"}


def cmd_unit_start(args: argparse.Namespace) -> dict[str, object]:
    """Run one service of a release as a systemd unit (replacing an earlier one)."""
    rdir = os.path.join(args.base, "releases", args.id)
    meta = os.path.join(rdir, ".featctl")
    if not os.path.isdir(meta):
        raise InputError(f"no release {args.id}")
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise InputError("unit-start needs a command after --")
    unit = name(args.base, args.service, args.id)
    # The log stays the agent user's file (systemd would create it as root).
    with open(args.log, "a"):
        pass
    text = service_text(
        f"featctl {args.service} of release {args.id} ({args.base})",
        rdir,
        argv,
        log=args.log,
        env_file=os.path.join(args.base, "run", "stores.env"),
    )
    install({f"{unit}.service": text})
    write(os.path.join(meta, f"{args.service}.unit"), unit)
    start(unit)
    return {"unit": unit, "pid": wait_active(unit, args.log)}


def cmd_timer_start(args: argparse.Namespace) -> dict[str, object]:
    """The schedule as a timer: a oneshot service every ``--every`` seconds."""
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise InputError("timer-start needs a command after --")
    unit = name(args.base, "materialize")
    run = os.path.join(args.base, "run")
    os.makedirs(run, exist_ok=True)
    log = os.path.join(run, "schedule.log")
    with open(log, "a"):
        pass
    service = service_text(
        f"featctl incremental materialization ({args.base})",
        args.base,
        argv,
        log=log,
        env_file=os.path.join(run, "stores.env"),
        oneshot=True,
    )
    timer = timer_text(f"featctl incremental materialization every {args.every} s ({args.base})", args.every)
    install({f"{unit}.service": service, f"{unit}.timer": timer})
    _systemctl("enable", "--now", f"{unit}.timer")
    return {"unit": f"{unit}.timer"}


def cmd_timer_stop(args: argparse.Namespace) -> dict[str, object]:
    unit = name(args.base, "materialize")
    return {"removed": remove([f"{unit}.timer", f"{unit}.service"])}
