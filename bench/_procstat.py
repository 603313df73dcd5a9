"""Process accounting from /proc for the benchmarks (standard library only): CPU seconds of
process trees, who listens on a port, and the peak memory of a process tree over time
(``RssSampler``: the sum of the tree's RSS sampled every few tenths of a second, with a
cap that stops the tree when it would crowd other work off a shared machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def starttime(pid: int) -> int | None:
    """Start time (clock ticks after boot) of a live process: with the pid, its identity (pids are reused)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[19])


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def listening_pids(port: int) -> set[int]:
    """Processes holding a LISTEN socket on 127.0.0.1:PORT (from /proc/net/tcp and their fds)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f[9])
    found = set()
    if not inodes:
        return found
    for pid in all_pids():
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        found.add(pid)
                        break
        except OSError:
            continue
    return found


def with_descendants(roots: set[int]) -> set[int]:
    parent = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            parent[pid] = st[0]
    out = set(r for r in roots if r in parent)
    grew = True
    while grew:
        grew = False
        for pid, pp in parent.items():
            if pp in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def server_pids(base: str, port: int) -> set[int]:
    """A host's feature server process tree: processes under its remote_base_dir serving PORT, and children."""
    needle_dir, needle_port = base.rstrip("/") + "/", f"--port {port}"
    roots = {pid for pid in all_pids() if needle_dir in (c := cmdline(pid)) and needle_port in c}
    if not roots:  # fall back to whoever listens on the port
        roots = listening_pids(port)
    return with_descendants(roots)


def cpu_of(pids: set[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        st = proc_stat(pid)
        if st:
            out[pid] = st[1]
    return out


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    total = sum(f[:8])
    return total - idle, total


def ancestors() -> set[int]:
    """This process and its parents (a wrapper shell may name the work directory in its command line)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        st = proc_stat(pid)
        if not st:
            break
        pid = st[0]
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree: the root's own and its reaped children's, plus its live descendants'
    (a PostgreSQL backend that exits during the measurement still counts, through the postmaster)."""
    try:
        f = Path(f"/proc/{root}/stat").read_text()
    except OSError:
        return 0.0
    f = f[f.rindex(")") + 2:].split()
    total = (int(f[13]) + int(f[14])) / CLK_TCK  # cutime + cstime
    return total + sum(cpu_of(with_descendants({root})).values())


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def rss_mib(pids: set[int]) -> float:
    """Resident memory of these processes now (MiB), from /proc/<pid>/status VmRSS."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total / 1024.0


class RssSampler(threading.Thread):
    """Peak of the summed RSS of ``root``'s process tree (plus ``extra()`` pids, e.g. a PostgreSQL
    server's backends), sampled every ``every`` seconds. Over ``cap_mib`` it stops the tree
    (SIGKILL to every process of it) and records that in ``capped``.

    /usr/bin/time reports the largest single process only; a Spark JVM under the agent, or a
    PostgreSQL backend, is a process of its own, so the tree is summed here."""

    def __init__(self, root: int, *, cap_mib: float | None = None, every: float = 0.25,
                 extra: object = None) -> None:
        super().__init__(daemon=True)
        self.root, self.cap_mib, self.every, self.extra = root, cap_mib, every, extra
        self.peak_mib = 0.0
        self.peak_extra_mib = 0.0
        self.capped: str | None = None
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            tree = with_descendants({self.root})
            if not tree:
                break
            mine = rss_mib(tree)
            more = rss_mib(set(self.extra())) if callable(self.extra) else 0.0
            self.peak_mib = max(self.peak_mib, mine + more)
            self.peak_extra_mib = max(self.peak_extra_mib, more)
            if self.cap_mib and mine + more > self.cap_mib and not self.capped:
                self.capped = f"stopped at {mine + more:,.0f} MiB (cap {self.cap_mib:,.0f} MiB)"
                for pid in tree:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self._stop_evt.wait(self.every)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=10)


def run_sampled(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                timeout: float = 3600, cap_mib: float | None = None, extra: object = None) -> dict[str, object]:
    """Run ``cmd`` in its own process group with an RssSampler on its tree: wall seconds, exit code,
    output, peak tree RSS (MiB, plus ``extra()`` pids'), and whether the cap or the timeout stopped it."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    sampler = RssSampler(proc.pid, cap_mib=cap_mib, every=0.5, extra=extra)
    sampler.start()
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    with contextlib.suppress(ProcessLookupError):  # nothing of it may outlive the run (Spark's JVM)
        os.killpg(proc.pid, signal.SIGKILL)
    return {"wall_s": wall, "rc": proc.returncode, "stdout": out, "stderr": err, "peak_mib": sampler.peak_mib,
            "peak_extra_mib": sampler.peak_extra_mib, "capped": sampler.capped,
            "timed_out": f"stopped after {timeout:.0f} s" if timed_out else None}
