"""Shared helpers for featctl's benchmarks (standard library only).

Every benchmark script writes ``bench/results/<name>.json``::

    {"name": ..., "title": ..., "order": int, "date": ISO, "machine": {...},
     "rows": [{"metric", "value", "unit", "baseline", "ratio", "target", "met"}],
     "notes": ["...", ...], "limits": ["what limits it: ...", ...], "extra": {...}}

``bench/assemble.py`` turns every such file into RESULTS.md, so a new item only
needs a script that writes this shape (use :func:`write_result`).

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
FEATCTL = ROOT / ".venv" / "bin" / "featctl"
HARNESS_PY = ROOT / ".venv" / "bin" / "python"
FEAST_PY = ROOT / ".venv-feast" / "bin" / "python"
FEAST_BIN = ROOT / ".venv-feast" / "bin" / "feast"
AGENT_SRC = ROOT / "src" / "featctl" / "agent"
REPO_SRC = ROOT / "feature_repo"
TMP = Path(os.environ.get("FEATCTL_BENCH_TMP", "/tmp/featctl-bench"))
LOOPBACK = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    info["harness_python"] = platform.python_version()
    try:
        out = subprocess.run(
            [str(FEAST_PY), "-c", "import sys,importlib.metadata as m;"
             "print(sys.version.split()[0], *(m.version(p) for p in ('feast','pandas','pyarrow')))"],
            capture_output=True, text=True, timeout=60,
        ).stdout.split()
        info.update(feast_python=out[0], feast=out[1], pandas=out[2], pyarrow=out[3])
    except Exception as exc:
        info["feast"] = f"unknown ({exc})"
    with contextlib.suppress(Exception):
        info["duckdb"] = subprocess.run(
            [str(FEAST_PY), "-c", "import importlib.metadata as m; print(m.version('duckdb'))"],
            capture_output=True, text=True, timeout=60,
        ).stdout.strip() or "not installed"
    return info


# --------------------------------------------------------------------------- results


def row(
    metric: str,
    value: float | int | str | None,
    unit: str = "",
    *,
    baseline: float | int | str | None = None,
    ratio: float | None = None,
    target: str | None = None,
    met: bool | None = None,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def git_commit() -> str | None:
    """The checkout's commit (and whether files differ from it): which code a result measured."""
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
        return head + (" + uncommitted changes in src/" if dirty else "") if head else None
    return None


def write_result(
    name: str,
    title: str,
    rows: list[dict[str, Any]],
    notes: list[str],
    *,
    order: int = 50,
    limits: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    quick: bool = False,
    started: float | None = None,
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "title": title + (" (--quick smoke size)" if quick else ""),
        "order": order,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "seconds": round(time.monotonic() - started, 1) if started else None,
        "quick": quick,
        "machine": machine_info(),
        "commit": git_commit(),
        "rows": rows,
        "notes": notes,
        "limits": limits or [],
        "extra": extra or {},
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(json.dumps({"name": name, "rows": rows}, indent=1, default=str))
    log(f"wrote {path}")
    return path


def value_rows(cmp: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """Rows from a ``_data.compare`` report: rows out = entity rows per output, and the cells that
    differ from the pandas reference and between outputs (row by row, in input order)."""
    out = []
    n = cmp.get("entity_rows")
    for key, d in cmp.items():
        if not isinstance(d, dict) or " vs " not in key:
            continue
        name, other = key.split(" vs ", 1)
        if other == "reference":
            got = d["rows"][0]
            out.append(row(f"{what} rows out, {name}", got, "rows", baseline=f"{n:,} entity rows",
                           target="= entity rows", met=got == n))
        worst = [c["max_abs_diff"] for c in (d.get("columns") or {}).values() if isinstance(c, dict)]
        out.append(row(f"{what} values, {key}: mismatched cells", d["mismatched_cells"], "cells",
                       baseline=f"max abs difference {max(worst):.3g}" if worst else None,
                       target="0 (1e-6 relative; null = null; input order)", met=bool(d.get("equal"))))
    return out


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def run(cmd: Sequence[str], *, cwd: str | Path | None = None, timeout: float = 600, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    log("$ " + " ".join(str(c) for c in cmd) + (f"   (cwd {cwd})" if cwd else ""))
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
        )
    return proc


def timed_run(cmd: Sequence[str], *, cwd: str | Path | None = None, timeout: float = 900,
              env: dict[str, str] | None = None, check: bool = False, rss: bool = True) -> dict[str, Any]:
    """The one timing helper: run a command, return its wall seconds, exit code and output.

    With ``rss`` it runs under /usr/bin/time -v and also reports the maximum RSS
    (MiB); leave it off for sub-second commands, where the extra exec shows.
    With ``check`` a non-zero exit raises RuntimeError with the command's stderr.
    """
    fmt_file = TMP / f"time.{os.getpid()}.txt"
    TMP.mkdir(parents=True, exist_ok=True)
    use_time = rss and Path("/usr/bin/time").exists()
    full = (["/usr/bin/time", "-v", "-o", str(fmt_file)] if use_time else []) + [str(c) for c in cmd]
    log("$ " + " ".join(str(c) for c in cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    max_rss = None
    if use_time and fmt_file.exists():
        for line in fmt_file.read_text().splitlines():
            if "Maximum resident set size" in line:
                max_rss = int(line.split(":")[1]) / 1024.0
        fmt_file.unlink()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return {"wall_s": wall, "max_rss_mib": max_rss, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def worker(script: str | Path, argv: Sequence[str], *, timeout: float = 1200, rss: bool = True,
           python: str | Path = FEAST_PY, cwd: str | Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``PYTHON SCRIPT --worker ARGV...`` (the Feast env's python by default) and return the JSON of
    its last ``RESULT {...}`` line and its timing (timed_run's dict); a failure raises RuntimeError."""
    t = timed_run([python, script, "--worker", *map(str, argv)], timeout=timeout, rss=rss, cwd=cwd)
    if t["rc"] != 0:
        raise RuntimeError(f"worker {argv[0]} failed ({t['rc']}): {t['stderr'][-3000:]}")
    line = [ln for ln in t["stdout"].splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), t


def data_worker(argv: Sequence[str], **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """bench/_data.py as a worker: the shared generator, references and comparisons."""
    return worker(BENCH / "_data.py", argv, **kw)


def agent_command(python: str | Path = FEAST_PY) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment that run featctl's host agent as a host does."""
    copy = TMP / "agent"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(AGENT_SRC, copy / "featctl_agent", ignore=shutil.ignore_patterns("__pycache__"))
    return [str(python), "-m", "featctl_agent"], {**os.environ, "PYTHONPATH": str(copy)}


@contextlib.contextmanager
def feast_server(repo: str | Path, port: int, args: Sequence[str] = (), *, feast_bin: str | Path = FEAST_BIN,
                 log_path: Path | None = None, wait: float = 120.0,
                 env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``feast serve -h 127.0.0.1 -p PORT ARGS`` in REPO, in its own process group; stop it after."""
    log_path = log_path or TMP / f"serve-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(feast_bin), "serve", "-h", LOOPBACK, "-p", str(port), *args]
    log("starting " + (" ".join(f"{k}={v}" for k, v in (env or {}).items()) + " ") + " ".join(cmd)
        + f"   (cwd {repo})")
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=str(repo), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"feast serve exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
            if http_get_ok(port, "/health"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"feast serve not healthy after {wait} s: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # gunicorn workers are in the same group; make sure none outlives the master
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def http_get_ok(port: int, path: str) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def http_post_json(port: int, path: str, body: Any, timeout: float = 600) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()
