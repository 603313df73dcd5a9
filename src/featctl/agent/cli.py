"""The agent's command line: one argparse parser for every command, lazy
imports per command (bookkeeping never imports pandas or Feast), and the
protocol of ``__init__``: one JSON document on stdout, exit 0 or 1."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from . import watch
from .output import AgentError, InputError, emit, one_line, protect_stdout

# Feast exceptions that mean "the request is wrong" rather than "Feast broke".
_INPUT_EXCEPTIONS = {
    "FeatureViewNotFoundException",
    "FeatureServiceNotFoundException",
    "OnDemandFeatureViewNotFoundException",
    "EntityNotFoundException",
    "RequestDataNotFoundInEntityDfException",
    "FeatureNameCollisionError",
    "FeastEntityDFMissingColumnsError",
    "EntityDFNotDateTime",
    "EntityTimestampInferenceException",
    "ProjectNotFoundException",
    "SpecifiedFeaturesNotPresentError",
}

#: command -> (module, function). Commands on a feature repository take
#: --repo; bookkeeping commands take --base (the deployment directory).
REPO_COMMANDS = {
    "describe": ("registry", "cmd_describe"),
    "historical": ("historical", "cmd_historical"),
    "materialize": ("materialize", "cmd_materialize"),
    "rebase": ("rebase", "cmd_rebase"),
    "probe": ("probe", "cmd_probe"),
    "verify": ("verify", "cmd_verify"),
    "teardown": ("teardown", "cmd_teardown"),
    "load-postgres": ("stores", "cmd_load_postgres"),
    "check-stores": ("stores", "cmd_check_stores"),
    "prepare-spark": ("stores", "cmd_prepare_spark"),
    "registry-diff": ("plandiff", "cmd_registry_diff"),
}
BASE_COMMANDS = {
    "state": ("releases", "cmd_state"),
    "prepare": ("releases", "cmd_prepare"),
    "finish-upload": ("releases", "cmd_finish_upload"),
    "set": ("releases", "cmd_set"),
    "switch": ("releases", "cmd_switch"),
    "stop": ("releases", "cmd_stop"),
    "cleanup": ("releases", "cmd_cleanup"),
    "lock": ("lock", "cmd_lock"),
    "unlock": ("lock", "cmd_unlock"),
    "owner": ("owner", "cmd_owner"),
    "procs": ("procs", "cmd_procs"),
    "free-port": ("procs", "cmd_free_port"),
    "materialize-loop": ("schedule", "cmd_materialize_loop"),
    "materialize-once": ("schedule", "cmd_materialize_once"),
    "manager": ("units", "cmd_manager"),
    "unit-start": ("units", "cmd_unit_start"),
    "timer-start": ("units", "cmd_timer_start"),
    "timer-stop": ("units", "cmd_timer_stop"),
    "edge-apply": ("edge", "cmd_edge_apply"),
    "edge-map": ("edge", "cmd_edge_map"),
    "edge-stat": ("edge", "cmd_edge_stat"),
    "edge-stop": ("edge", "cmd_edge_stop"),
}
#: Commands that own their exit status and output (they do not return a document).
STREAMING = {"lock", "materialize-loop"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InputError(f"usage: {message}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="featctl_agent", description="featctl host agent (JSON on stdout)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("describe", help="describe the applied registry")
    d.add_argument("--full", action="store_true", help="skip the fast protobuf path (import feast)")
    d.add_argument("--check", action="store_true", help="also check the sqlite online store's file and tables")

    h = sub.add_parser("historical", help="point-in-time correct training data to parquet")
    h.add_argument("--entities", required=True)
    h.add_argument("--features", action="append", help="view:feature[,view:feature...]")
    h.add_argument("--feature-service")
    h.add_argument("--out", required=True)
    h.add_argument("--full-feature-names", action="store_true")
    h.add_argument("--engine", choices=("feast",), help="feast: Feast's own retrieval per view (for comparisons)")

    m = sub.add_parser("materialize", help="materialize into the online store")
    m.add_argument("--start")
    m.add_argument("--end")
    m.add_argument("--views", action="append")

    v = sub.add_parser("verify", help="compare online values with the offline data's newest rows")
    v.add_argument("--views", action="append")
    v.add_argument("--sample", type=int, help="a random sample of N entities per view (default: every entity)")
    v.add_argument("--repair", action="store_true", help="rewrite the wrong rows from the offline data")
    v.add_argument(
        "--include-newer", action="store_true", help="also compare rows written after the last materialization"
    )
    v.add_argument("--seed", type=int, help="the sample's random seed")
    v.add_argument("--record", help="also write the summary to this file (run/verify.json)")

    r = sub.add_parser("rebase", help="point the registry's infra paths at this repo")
    r.add_argument("--from", dest="from_repo", required=True)

    rd = sub.add_parser("registry-diff", help="feast plan's registry diff as rows (kind, name, change, fields)")
    rd.add_argument("--from", dest="from_repo", required=True, help="the serving release this copy was made from")

    sub.add_parser("probe", help="the entities a health check reads, written to .featctl/probe.json")
    sub.add_parser("teardown", help="remove this project's data from external stores and a SQL registry")
    sub.add_parser("load-postgres", help="load the release's parquet sources into their PostgreSQL tables")
    sub.add_parser("prepare-spark", help="Spark-readable copies of the release's parquet sources")
    cs = sub.add_parser("check-stores", help="check that the shared stores answer from this host")
    cs.add_argument("--stores", default="redis,postgres", help="comma-separated stores to check")

    for name in REPO_COMMANDS:
        sub.choices[name].add_argument("--repo", required=True)

    for name in BASE_COMMANDS:
        sp = sub.add_parser(name)
        sp.add_argument("--base", required=True)
        if name in ("prepare", "finish-upload", "set", "switch", "stop", "unit-start"):
            sp.add_argument("--id", required=True)
        if name == "prepare":
            sp.add_argument("--fresh", action="store_true")
        if name == "stop":
            sp.add_argument("--service", choices=("ui", "registry", "offline"))
        if name == "set":
            sp.add_argument("--state", choices=("preparing", "ready", "failed"))
            sp.add_argument("--port", type=int)
            sp.add_argument("--env")
            sp.add_argument("--online-store", help="the online store's identity its materialization filled")
            sp.add_argument("--workers", type=int, help="the feature server's worker processes")
        if name == "cleanup":
            sp.add_argument("--keep", type=int, default=5)
            sp.add_argument("--spare", default="")
            sp.add_argument("--stop-idle", action="store_true")
            sp.add_argument("--prune-envs", action="store_true")
            sp.add_argument("--default-env", default="")
        if name == "owner":
            sp.add_argument("--claim")
        if name == "procs":
            sp.add_argument("--kill", action="store_true")
        if name == "free-port":
            sp.add_argument("--port", required=True, help="a server's socket name under run/s: its port, or <port>-batch")
        if name == "lock":
            sp.add_argument("--holder", default="{}")
        if name.startswith("materialize-") or name == "timer-start":
            sp.add_argument("--every", type=int, default=3600)
            sp.add_argument("--default-env", default="", help="the Feast environment of a release that names none")
            sp.add_argument("--verify-sample", type=int, default=1000, help="entities per view to verify (0: none)")
        if name == "unit-start":
            sp.add_argument("--service", choices=("server", "batch", "ui", "registry", "offline"), required=True)
            sp.add_argument("--log", required=True)
        if name == "edge-map":
            sp.add_argument("--add", nargs=2, metavar=("KEY", "VALUE"))
            sp.add_argument("--del", dest="delete", metavar="KEY")
        if name in ("unit-start", "timer-start"):
            sp.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command the unit runs")
    return p


def _handler(command: str) -> Callable[[argparse.Namespace], Any]:
    module, func = {**REPO_COMMANDS, **BASE_COMMANDS}[command]
    mod = importlib.import_module(f"{__package__}.{module}")
    handler: Callable[[argparse.Namespace], Any] = getattr(mod, func)
    return handler


def main(argv: list[str] | None = None) -> int:
    protect_stdout()
    watch.watch_client()
    try:
        return _finish(_run(argv))
    except BaseException as exc:  # the answer, unless Spark's watch knows why the job ended
        return _finish(_failure(exc))


def _finish(answer: tuple[dict[str, Any] | None, int]) -> int:
    doc, code = answer
    watch.done()
    return code if doc is None else emit(doc, code)


def _failure(exc: BaseException) -> tuple[dict[str, Any], int]:
    if (why := watch.verdict()) is not None:
        return {"error": why, "kind": "job"}, 1
    if isinstance(exc, InputError):
        return {"error": one_line(exc), "kind": "input"}, 1
    if isinstance(exc, AgentError):
        return {"error": one_line(exc), "kind": "feast"}, 1
    if isinstance(exc, KeyboardInterrupt):
        return {"error": "interrupted", "kind": "feast"}, 1
    if isinstance(exc, SystemExit):  # e.g. --help
        if exc.code in (0, None):
            return {"error": "help requested", "kind": "input"}, 1
        return {"error": one_line(f"exit {exc.code}"), "kind": "feast"}, 1
    if isinstance(exc, OSError):
        return {"error": one_line(f"{type(exc).__name__}: {exc}"), "kind": "feast"}, 1
    traceback.print_exc(file=sys.stderr)
    kind = "input" if type(exc).__name__ in _INPUT_EXCEPTIONS else "feast"
    msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"error": one_line(msg), "kind": kind}, 1


def _run(argv: list[str] | None) -> tuple[dict[str, Any] | None, int]:
    """The command's document and exit status (None: a streaming command wrote its own)."""
    args = parser().parse_args(argv)
    if args.command in REPO_COMMANDS:
        repo = os.path.abspath(args.repo)
        if not os.path.isdir(repo):
            raise InputError(f"repo directory {repo} not found")
        args.repo = repo
        for attr in ("entities", "out"):
            if getattr(args, attr, None):
                setattr(args, attr, os.path.abspath(getattr(args, attr)))
        os.chdir(repo)  # like the feast CLI: relative paths in the repo resolve from here
        watch.install(json_errors=True)
    else:
        os.umask(0o022)
    handler = _handler(args.command)
    if args.command in STREAMING:
        return None, int(handler(args))
    return handler(args), 0
