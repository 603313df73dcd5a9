"""Historical retrieval inside the serving release's feature server.

The server (``feast serve`` through featctl's wrapper) carries featctl's own
endpoint (agent/endpoints.py) that runs the agent's historical retrieval with
the server's FeatureStore, where Feast is imported and the registry loaded
already. The entity rows go there as an Arrow IPC stream and the result comes
back as one, through the same tunnel process or SSH channel as online queries.

The server is used when it offers the endpoint and runs the same agent code as
this client (the digests agree), so both paths compute with the same code;
otherwise, and for requests that need Feast's own retrieval (Spark), the
agent's ``historical`` command runs in a process of its own (query/historical.py).
``FEATCTL_HISTORICAL_VIA=process`` always takes that path, ``server`` requires
the server (an error when it cannot), ``auto`` (the default) prefers the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from featctl.errors import FeastError, FeatureServerError, UsageError
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer

REQUEST_KEY = b"featctl.request"
VIA = ("auto", "server", "process")


def via() -> str:
    """``FEATCTL_HISTORICAL_VIA``: auto (default), server or process."""
    value = (os.environ.get("FEATCTL_HISTORICAL_VIA") or "auto").strip().lower()
    if value not in VIA:
        raise UsageError(f"FEATCTL_HISTORICAL_VIA={value!r}: use one of {', '.join(VIA)}")
    return value


class NotOffered(Exception):
    """The server cannot take this request; the message says why."""


def encode(frame: Any, refs: Sequence[str], service: str | None, full_feature_names: bool = False) -> bytes:
    """The entity rows and the request as one Arrow IPC stream."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    request: dict[str, Any] = {"feature_service": service} if service else {"features": list(refs)}
    if full_feature_names:
        request["full_feature_names"] = True
    meta = dict(table.schema.metadata or {})
    meta[REQUEST_KEY] = json.dumps(request).encode()
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def decode(raw: bytes) -> Any:
    """The result frame from the server's Arrow IPC stream (its pandas metadata
    gives the same dtypes as the agent's parquet file: nullable Int64 included)."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(raw).read_all().to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise FeatureServerError(f"the feature server sent an unreadable historical result: {exc}") from None


def _ask(server: FeatureServer, payload: bytes, digest: str, timeout: float) -> tuple[Any, str]:
    """(result frame, how the host computed it)."""
    info = server.featctl_info()
    if info is None or not info.get("historical"):
        raise NotOffered("the serving release's feature server has no featctl endpoint (started by an older featctl)")
    if info.get("agent") != digest:
        raise NotOffered("the serving release's feature server runs another version of featctl's agent")
    try:
        status, headers, raw = server.featctl_historical(payload, timeout=timeout)
    except FeatureServerError as exc:
        if getattr(exc, "sent", False):  # it took the rows: no second server (a read: no harm done either)
            raise NotOffered(f"the feature server on the host (port {server.port}) did not finish the request") from None
        raise
    if status == 200:
        where = "the release's batch server" if server.batch else "the feature server"
        return decode(raw), f"{headers.get('x-featctl-engine', '?')} in {where} {headers.get('x-featctl-timings', '')}"
    try:
        detail = json.loads(raw)
        message, kind = str(detail["error"]), str(detail.get("kind"))
    except (ValueError, KeyError, TypeError):
        message, kind = " ".join(raw.decode(errors="replace").split())[:300] or f"HTTP {status}", ""
    if status == 409 or kind == "process":
        raise NotOffered(message)
    if status == 400 or kind == "input":
        raise UsageError(message)
    raise FeastError(f"historical failed on the host: {message}")


def _ask_batch_first(session: Session, record: Deployment, payload: bytes, digest: str, timeout: float) -> tuple[Any, str]:
    """The release's batch server, so batch work never holds the serving
    workers; the feature server itself when the release has no batch server
    (started by an older featctl, or it failed to start). A tunnel that fails
    is retried once over a direct SSH connection."""
    for server_of in (
        lambda direct: session.batch_server(record, direct=direct),
        lambda direct: session.direct_server(record, 0) if direct else session.query_server(record, 0),
    ):
        server = server_of(False)
        try:
            try:
                return _ask(server, payload, digest, timeout)
            except FeatureServerError:
                if not server.tunnelled:
                    raise
                return _ask(server_of(True), payload, digest, timeout)
        except FeatureServerError as exc:
            if getattr(exc, "sent", False) or not server.batch:
                raise
            # No batch server answers: the feature server takes the request.
    raise AssertionError("unreachable")


def served_frame(
    session: Session,
    record: Deployment,
    frame: Any,
    refs: Sequence[str],
    service: str | None,
    *,
    required: bool,
    full_feature_names: bool = False,
) -> Any | None:
    """The result from the serving feature server of host 0 (where the agent's
    command would run too), or None when it cannot answer (the caller then runs
    the agent's command); with ``required`` that is an error instead."""
    from featctl.remote.agent import agent_digest

    payload = encode(frame, refs, service, full_feature_names)
    digest = agent_digest()
    timeout = float(session.settings.command_timeout)
    try:
        result, how = _ask_batch_first(session, record, payload, digest, timeout)
        session.reporter.detail(f"historical: {len(result)} rows, {how}")
        return result
    except (NotOffered, FeatureServerError) as exc:
        if required:
            raise FeatureServerError(f"FEATCTL_HISTORICAL_VIA=server, but the feature server cannot answer: {exc}") from None
        session.reporter.info(f"{exc}; retrieving in a separate Feast process on the host (slower)")
        return None
