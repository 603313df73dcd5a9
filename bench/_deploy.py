"""featctl deployments and repository copies for the benchmarks (standard library only).

``deployment(workdir)`` runs `featctl deploy` on a fresh copy of feature_repo and
always `featctl destroy --yes` after; processes still running from the workspace
afterwards are stopped and recorded in ``LEAKS`` (scripts copy it into their notes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import FEAST_PY, FEATCTL, REPO_SRC, log, run

# --------------------------------------------------------------------------- repos and deployments


def copy_repo(dest: Path, src: Path = REPO_SRC) -> Path:
    """A clean copy of a feature repository: no registry or online store files.

    Never copy an applied registry.db: Feast records the online store's absolute
    sqlite path in the registry, and `feast apply` in the copy then drops the
    tables of the ORIGINAL online store (seen with Feast 0.67).
    """
    if dest.exists():
        shutil.rmtree(dest)
    skip = shutil.ignore_patterns("*.db", "*.db-journal", "__pycache__", "*.tmp", ".featctl")
    shutil.copytree(src, dest, ignore=skip)
    return dest


def feast_apply(repo: Path, *, python: Path = FEAST_PY, timeout: float = 300) -> float:
    t0 = time.perf_counter()
    run([python, "-m", "feast.cli.cli", "--chdir", str(repo), "apply"], timeout=timeout)
    return time.perf_counter() - t0


class Deployment:
    """A featctl deployment of a repository copy into its own workspace directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.record: dict[str, Any] = {}

    @property
    def port(self) -> int:
        return int(self.record["server_port"])

    @property
    def base(self) -> Path:
        return Path(self.record["remote_base_dir"])

    @property
    def repo(self) -> Path:
        """The deployed (applied) repository on the host: <base>/repo, or the current release's."""
        for cand in ("repo", "current", "current/repo"):
            if (self.base / cand / "feature_store.yaml").exists():
                return (self.base / cand).resolve()
        found = sorted(self.base.glob("**/feature_store.yaml"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise RuntimeError(f"no deployed feature_store.yaml under {self.base}")
        return found[-1].parent

    @property
    def feast_bin(self) -> Path:
        return self.base / "envs" / "feast-0.67.0" / "bin" / "feast"


@contextlib.contextmanager
def deployment(workdir: Path, edit_repo: Any = None, timeout: float = 600) -> Iterator[Deployment]:
    """`featctl deploy` a fresh copy of feature_repo in WORKDIR; always `featctl destroy --yes` after."""
    if workdir.exists():
        with contextlib.suppress(Exception):
            if (workdir / ".featctl" / "deployment.json").exists():
                run([FEATCTL, "destroy", "--yes"], cwd=workdir, timeout=300, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    repo = copy_repo(workdir / "feature_repo")
    if edit_repo:
        edit_repo(repo)
    dep = Deployment(workdir)
    try:
        t0 = time.perf_counter()
        run([FEATCTL, "deploy"], cwd=workdir, timeout=timeout)
        dep.record = json.loads((workdir / ".featctl" / "deployment.json").read_text())
        log(f"deployed {workdir} in {time.perf_counter() - t0:.1f} s: server 127.0.0.1:{dep.port}, host dir {dep.base}")
        yield dep
    finally:
        proc = run([FEATCTL, "destroy", "--yes"], cwd=workdir, timeout=300, check=False)
        if proc.returncode != 0:
            log(f"WARNING: featctl destroy failed in {workdir}: {proc.stderr[-1000:]}")
            LEAKS.append(f"`featctl destroy --yes` failed in {workdir} (exit {proc.returncode}): "
                         f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
        else:
            log(f"destroyed {workdir}")
        reap_leftovers(workdir)


#: Problems seen while cleaning up deployments (scripts copy them into their notes).
LEAKS: list[str] = []


def processes_under(path: Path) -> list[tuple[int, str]]:
    """(pid, cmdline) of every process whose command line mentions PATH."""
    found = []
    needle = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if needle in cmd:
            found.append((int(entry.name), cmd))
    return found


def reap_leftovers(workdir: Path) -> None:
    """After destroy: stop (by pid) any process still running from this bench's own workspace."""
    left = processes_under(workdir)
    if not left:
        return
    LEAKS.append(f"after `featctl destroy --yes` in {workdir}, {len(left)} process(es) from that workspace were "
                 "still running (the benchmark stopped them): " + "; ".join(c[:160] for _, c in left))
    log("WARNING: " + LEAKS[-1])
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    time.sleep(1.0)
    for pid, _ in processes_under(workdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
