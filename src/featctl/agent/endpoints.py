"""featctl's own endpoints in the release's feature server: historical
retrieval (and with it the point-in-time ``score``) inside the running server,
whose FeatureStore has Feast imported and the registry loaded already, instead
of a new agent process that pays Python's and Feast's start (~8-10 s).

``feast serve`` runs through featctl's wrapper (feast_cli.py), which wraps
Feast's ``feature_server.get_app``: gunicorn's master builds the app once and
forks its workers from it, so every worker has these routes. They bind nothing
new: they answer on the server's own Unix socket (``run/s/<port>``); the
application endpoint (HAProxy) never forwards ``/featctl/*``.

``GET  /featctl/v1/info``: ``{"api": 1, "agent": <digest of the agent files
this server loaded>}``; the client uses the server only when the digest is its
own (the same join code on both paths); an older server answers 404.

``POST /featctl/v1/historical``: the entity rows as an Arrow IPC stream whose
schema metadata ``featctl.request`` holds ``{"features": [...],
"feature_service": ..., "full_feature_names": ...}``; the answer is the result
as an Arrow IPC stream (one row per entity row, in order: historical.retrieve,
the same code as the agent's ``historical`` command), or JSON
``{"error": "<one line>", "kind": "input"|"feast"}`` with 400/500, or 409 when
the request needs Feast's own per-view retrieval (Spark, other sources,
``FEATCTL_HISTORICAL_ENGINE=feast``), which the client then runs in a process
of its own. The work runs in Starlette's thread pool, so the server's event
loop (online queries, gunicorn's heartbeat) keeps running meanwhile.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes'
# annotations (``request: Request``) as objects.
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

# Imported now, with the digest read below: the code a request runs is the code
# the digest names, even if a newer agent is uploaded while the server runs.
from . import asof, catalog, historical, offline, ondemand, pg_join  # noqa: F401
from .catalog import Catalog, split_refs
from .cli import _INPUT_EXCEPTIONS
from .materialize import guard_store
from .output import AgentError, InputError, one_line

API = "/featctl/v1"
API_VERSION = 1
ARROW_STREAM = "application/vnd.apache.arrow.stream"
REQUEST_KEY = b"featctl.request"


def agent_digest() -> str:
    """The digest featctl's client wrote beside the agent files it uploaded
    (remote/agent.py:install_agent); empty where there is none."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".digest")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


DIGEST = agent_digest()


def decode_request(body: bytes) -> tuple[Any, dict[str, Any]]:
    """(entity frame, request options) from an Arrow IPC stream."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(body).read_all()
        request = json.loads((table.schema.metadata or {}).get(REQUEST_KEY, b"{}"))
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(f"the request is not featctl's Arrow stream: {one_line(exc, 200)}") from None
    if not isinstance(request, dict):
        raise InputError("the request's options are not a JSON object")
    return historical.check_entities(table.to_pandas()), request


def ipc_chunks(table: Any, rows: int = 65536) -> Iterator[bytes]:
    """``table`` as an Arrow IPC stream, a batch of ``rows`` at a time."""
    import pyarrow as pa

    class Sink:
        closed = False

        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, data: Any) -> int:
            self.parts.append(bytes(data))
            return len(data)

        def flush(self) -> None:
            pass

        def take(self) -> bytes:
            out = b"".join(self.parts)
            self.parts.clear()
            return out

    sink = Sink()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        yield sink.take()
        for batch in table.to_batches(max_chunksize=rows):
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()


def registry_proto(store: Any) -> Any:
    """The registry the server answers from (refreshed every registry_ttl_sec)."""
    reg = store.registry
    cached = getattr(reg, "cached_registry_proto", None)
    if cached is None or not cached.ByteSize():
        cached = reg.proto()
    return cached


def authorize(views: list[Any]) -> None:
    """Feast's permission check for offline reads (a no-op without auth)."""
    from feast.permissions.action import AuthzedAction
    from feast.permissions.security_manager import assert_permissions

    for view in views:
        assert_permissions(resource=view, actions=[AuthzedAction.READ_OFFLINE])


#: Offline stores whose retrieval featctl's join does (historical.retrieve); for
#: any other (Spark: Feast would start a JVM inside the server) the client runs
#: the agent's command in a process of its own.
SERVED_STORES = ("DaskOfflineStoreConfig", "PostgreSQLOfflineStoreConfig")


def run_historical(store: Any, body: bytes) -> tuple[Any, str, dict[str, float]]:
    if type(store.config.offline_store).__name__ not in SERVED_STORES:
        raise historical.NotServed(f"the {store.config.offline_store.type} offline store needs Feast's own retrieval")
    started = time.monotonic()
    entity_df, request = decode_request(body)
    refs = split_refs(request.get("features"))
    service = request.get("feature_service") or None
    cat = Catalog(registry_proto(store), store.project)
    historical.check_request(cat, entity_df, refs, service)
    engine = "feast" if os.environ.get("FEATCTL_HISTORICAL_ENGINE") == "feast" else None
    decoded = time.monotonic() - started
    table, engine, timings = historical.retrieve(
        store,
        cat,
        entity_df,
        refs,
        service,
        bool(request.get("full_feature_names")),
        engine=engine,
        served=True,
        authorize=authorize,
    )
    return historical.pandas_metadata(table), engine, {"request": decoded, **timings}


def _error(exc: BaseException) -> tuple[int, dict[str, str]]:
    if isinstance(exc, InputError):
        return 400, {"error": one_line(exc), "kind": "input"}
    if isinstance(exc, historical.NotServed):
        return 409, {"error": one_line(exc), "kind": "process"}
    if isinstance(exc, AgentError):
        return 500, {"error": one_line(exc), "kind": "feast"}
    name = type(exc).__name__
    message = one_line(f"{name}: {exc}" if str(exc) else name)
    if name in _INPUT_EXCEPTIONS:
        return 400, {"error": message, "kind": "input"}
    traceback.print_exception(exc, file=sys.stderr)
    return 500, {"error": message, "kind": "feast"}


def add_endpoints(app: Any, store: Any) -> None:
    """featctl's routes on Feast's FastAPI ``app`` serving ``store``, and
    Feast's own /materialize routes kept from recording a time past the host's
    clock (materialize.guard_store)."""
    from fastapi import Depends, Request
    from feast.permissions.server.rest import inject_user_details
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response, StreamingResponse

    guard_store(store)

    @app.get(f"{API}/info")
    async def featctl_info() -> Any:
        # pid: which worker answered (the health check reads through every one).
        return {"api": API_VERSION, "agent": DIGEST, "historical": True, "pid": os.getpid()}

    @app.post(f"{API}/historical", dependencies=[Depends(inject_user_details)])
    async def featctl_historical(request: Request) -> Response:
        body = await request.body()
        started = time.monotonic()
        try:
            table, engine, timings = await run_in_threadpool(run_historical, store, body)
        except Exception as exc:
            status, detail = _error(exc)
            return JSONResponse(detail, status_code=status)
        timings["total"] = time.monotonic() - started
        print(
            f"featctl: historical {table.num_rows} rows in worker {os.getpid()}, {engine}, "
            + ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()),
            file=sys.stderr,
            flush=True,
        )
        headers = {"X-Featctl-Engine": engine, "X-Featctl-Timings": json.dumps(timings)}
        return StreamingResponse(ipc_chunks(table), media_type=ARROW_STREAM, headers=headers)


def extend_feature_server() -> None:
    """Make Feast's ``get_app`` (what ``feast serve`` builds its app with) add
    featctl's routes."""
    from feast import feature_server

    original = feature_server.get_app
    if getattr(original, "__featctl__", False):
        return

    def get_app(store: Any, *args: Any, **kwargs: Any) -> Any:
        app = original(store, *args, **kwargs)
        add_endpoints(app, store)
        return app

    get_app.__doc__ = original.__doc__
    get_app.__featctl__ = True  # type: ignore[attr-defined]
    feature_server.get_app = get_app
