"""What a host command leaves running, watched: featctl's client and Spark's JVM.

* **The client.** featctl runs its agent commands with ``FEATCTL_WATCH_CLIENT=1``
  and an open, silent stdin. sshd closes that pipe when the channel or the
  connection ends (the client timed out, was interrupted or died), so end of
  file on stdin means nobody waits for the answer: the command kills what it
  started (Spark's JVM and its Python workers) and itself. Before this a
  timed-out ``historical`` left its Python process and a 1.4 GB JVM running
  under PID 1, another pair per retry.
* **Spark's JVM** (pyspark's gateway process, launched through ``install``'s
  wrapper). It gets a driver heap sized from the host (``[spark]
  driver_memory`` in featctl.toml, else half the host's memory, at least
  1 GiB) unless the repository's ``spark_conf`` sets one, and
  ``-XX:+ExitOnOutOfMemoryError``, so an out-of-memory JVM exits (code 3)
  instead of limping on. A thread then watches it: a JVM that died, or a
  command whose processes used almost no CPU for ``stall_seconds`` (a
  deadlock, e.g. parked in ``SocketAuthServer.getResult`` with no task
  running; a stopped process) ends the command with one line that says what
  happened and ``kind: "job"`` (featctl's exit code 10), its processes killed.

The watch never calls into the JVM (a stuck JVM would hang the watcher too):
it reads /proc only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: The release's Spark settings (featctl.toml's [spark], written by the client's bundle).
SETTINGS = os.path.join("_featctl", "spark.json")
CLIENT_ENV = "FEATCTL_WATCH_CLIENT"
DEFAULT_STALL = 45.0
POLL = 2.0
#: A command "makes progress" while its processes use at least this share of
#: one core over the stall window. An idle local Spark JVM uses 0.5-0.7 %
#: (heartbeats); any running task uses far more than 3 %.
BUSY_SHARE = 0.03
#: JVM exit statuses that mean out of memory: -XX:+ExitOnOutOfMemoryError, Spark's SparkExitCode.OOM.
OOM_EXITS = {3, 52}
MIB = 1024 * 1024

_lock = threading.Lock()
_verdict: str | None = None
_spark: dict[str, Any] = {}


# --- pure parts (unit-tested) ------------------------------------------------


def default_driver_memory(meminfo: str) -> str:
    """Half the host's memory (MemTotal of /proc/meminfo), at least 1 GiB, in MiB."""
    total_kib = 0
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            total_kib = int(line.split()[1])
    return f"{max(1024, total_kib // 2048)}m"


def death_message(status: int, memory: str) -> str:
    """One line for a JVM that exited with ``status`` (Popen's returncode) mid-command."""
    if status in OOM_EXITS:
        return (
            f"Spark ran out of memory (driver memory {memory}); featctl stopped the command: "
            "raise [spark] driver_memory in featctl.toml and deploy, or ask for fewer rows"
        )
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        extra = " (the kernel's out-of-memory killer sends this when the host runs out)" if -status == 9 else ""
        return f"Spark's JVM was killed by {name}{extra}; featctl stopped the command"
    return f"Spark's JVM exited with status {status} in the middle of the command; featctl stopped it"


def stalled(samples: list[tuple[float, float]], window: float) -> bool:
    """True when the (time, CPU seconds) samples span ``window`` and the CPU used
    over the last ``window`` seconds is below BUSY_SHARE of one core."""
    if not samples or samples[-1][0] - samples[0][0] < window:
        return False
    now, cpu_now = samples[-1]
    then = next((cpu for t, cpu in reversed(samples) if now - t >= window), samples[0][1])
    return cpu_now - then < BUSY_SHARE * window


def read_settings(path: str = SETTINGS) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- /proc ---------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> dict[int, float]:
    """pid -> CPU seconds of every live process below ``root``."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None:
            children.setdefault(st[0], []).append(int(name))
            cpu[int(name)] = st[1]
    out: dict[int, float] = {}
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in out:
                out[child] = cpu[child]
                frontier.append(child)
    return out


def kill_descendants() -> None:
    """SIGKILL every process this one started (children first found, then any new ones)."""
    for _ in range(3):
        found = descendants(os.getpid())
        if not found:
            return
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


# --- the watch -----------------------------------------------------------------


def verdict() -> str | None:
    """Why the command's Spark job ended, when the watch knows (the main thread's
    own error, e.g. py4j's "Answer from Java side is empty", hides it)."""
    _check_jvm()
    return _verdict


def _check_jvm() -> None:
    global _verdict
    proc = _spark.get("proc")
    if proc is not None and _verdict is None and not _spark.get("done") and (status := proc.poll()) not in (None, 0):
        _verdict = death_message(status, _spark.get("memory", "?"))


def done() -> None:
    """The main thread has its answer: the watch stands down for good (pyspark
    stops the JVM at exit, which is no death). Waits while the watch is ending
    the command (it exits the process)."""
    if _lock.acquire(timeout=10):
        _spark["done"] = True


def _end(message: str, report: Callable[[str], None]) -> None:
    """Report ``message`` once, kill everything the command started, exit."""
    global _verdict
    if not _lock.acquire(timeout=5) or _spark.get("done"):
        return
    _verdict = _verdict or message
    try:
        report(_verdict)
    finally:
        kill_descendants()
        os._exit(1)


def _json_report(message: str) -> None:
    from .output import write_line

    write_line({"error": message, "kind": "job"})


def _stderr_report(message: str) -> None:
    sys.stderr.write(f"featctl: {message}\n")
    sys.stderr.flush()


def watch_client() -> None:
    """With FEATCTL_WATCH_CLIENT=1: end of file on stdin (the client gave up) kills
    this command and everything it started."""
    if os.environ.pop(CLIENT_ENV, "") != "1":
        return

    def wait() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        kill_descendants()
        os._exit(1)

    threading.Thread(target=wait, name="featctl-client-watch", daemon=True).start()


def _watch_jvm(stall: float, report: Callable[[str], None]) -> None:
    samples: list[tuple[float, float]] = []
    me = os.getpid()
    while True:
        time.sleep(POLL)
        _check_jvm()
        if _verdict is not None:
            _end(_verdict, report)
            return
        own = _stat(me)
        cpu = sum(descendants(me).values()) + (own[1] if own else 0.0)
        samples = [s for s in samples if s[0] > time.monotonic() - 2 * stall] + [(time.monotonic(), cpu)]
        if stalled(samples, stall):
            _end(
                f"Spark made no progress for {stall:.0f} s (its processes used almost no CPU); featctl stopped it "
                "and everything it started (a job that only waits: raise [spark] stall_seconds in featctl.toml)",
                report,
            )
            return


def _forget_when_dead(proc: Any) -> None:
    """In the feature server (which materializes): a JVM that died (out of
    memory, killed) is forgotten, so the next materialization starts a new one;
    pyspark would keep the dead gateway and fail every later call with
    "Connection refused" until the next deploy."""
    while proc.poll() is None:
        time.sleep(POLL)
    from pyspark.core.context import SparkContext
    from pyspark.sql import SparkSession

    with SparkContext._lock:
        SparkContext._active_spark_context = None
        SparkContext._gateway = None
        SparkContext._jvm = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    sys.stderr.write(f"featctl: Spark's JVM exited with status {proc.returncode}; the next job starts a new one\n")


def install(*, json_errors: bool, stall_watch: bool = True) -> None:
    """In a release that uses Spark (its ``_featctl/spark.json`` exists, the
    working directory is the release): size and watch the JVM pyspark launches."""
    if not os.path.exists(SETTINGS) or _spark.get("installed"):
        return
    settings = read_settings()
    try:
        from pyspark.core import context
    except ImportError:
        return
    original = context.launch_gateway
    report = _json_report if json_errors else _stderr_report
    stall = float(settings.get("stall_seconds") or DEFAULT_STALL)

    def launch_gateway(conf: Any = None, popen_kwargs: Any = None) -> Any:
        if conf is None:
            from pyspark.conf import SparkConf

            conf = SparkConf()
        if not conf.contains("spark.driver.memory"):
            try:
                with open("/proc/meminfo", encoding="ascii") as fh:
                    default = default_driver_memory(fh.read())
            except OSError:
                default = "1024m"
            conf.set("spark.driver.memory", str(settings.get("driver_memory") or default))
        opts = conf.get("spark.driver.extraJavaOptions", "") or ""
        if "OutOfMemoryError" not in opts:
            conf.set("spark.driver.extraJavaOptions", f"{opts} -XX:+ExitOnOutOfMemoryError".strip())
        _spark["memory"] = conf.get("spark.driver.memory")
        if stall_watch and "watching" not in _spark:  # from the launch: a JVM can hang before it answers
            _spark["watching"] = True
            threading.Thread(target=_watch_jvm, args=(stall, report), name="featctl-spark-watch", daemon=True).start()
        gateway = original(conf, popen_kwargs)
        _spark["proc"] = getattr(gateway, "proc", None) or _spark.get("proc")
        if not stall_watch and _spark["proc"] is not None:
            threading.Thread(target=_forget_when_dead, args=(_spark["proc"],), daemon=True).start()
        return gateway

    context.launch_gateway = launch_gateway
    from pyspark import java_gateway

    real_popen = java_gateway.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        """pyspark's Popen of the JVM, kept from the start: a JVM that dies before
        it sends its port (killed, out of memory at start) is a death too."""
        proc = real_popen(*args, **kwargs)
        _spark.setdefault("proc", proc)
        return proc

    java_gateway.Popen = popen
    _spark["installed"] = True
