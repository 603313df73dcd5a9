"""The adapter for the Feast feature server's HTTP API.

Requests travel inside the SSH connection (a direct-tcpip channel per HTTP
connection), so the server stays bound to 127.0.0.1 on the host and its port
is never opened to the network. Only stdlib ``http.client`` and ``json``:
this path must never import Feast.
"""

from __future__ import annotations

import http.client
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from featctl.errors import FeastError, FeatureServerError, UsageError

if TYPE_CHECKING:
    from featctl.remote.ssh import Connection

#: featctl's own endpoints in the feature server (agent/endpoints.py).
FEATCTL_API = "/featctl/v1"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


#: Errors that say a store or service was not reached: not a view Feast cannot materialize.
_UNREACHABLE = re.compile(
    r"Connection ?(refused|reset|Error)|OperationalError|could not connect|timed? ?out|No route to host|"
    r"Name or service not known|getaddrinfo|unreachable",
    re.IGNORECASE,
)


class _ChannelHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose socket is an SSH channel to the server."""

    def __init__(self, conn: Connection, name: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._ssh = conn
        self._name = name

    def connect(self) -> None:
        chan = self._ssh.open_server(self._name)
        chan.settimeout(self.timeout)
        self.sock = chan


class _TunnelHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection through featctl's tunnel process (a Unix socket in the workspace)."""

    def __init__(self, socket_path: str, name: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path
        self._name = name

    def connect(self) -> None:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
            sock.sendall(f"{self._name}\n".encode())
        except OSError:
            sock.close()
            raise
        self.sock = sock


class FeatureServer:
    """A keep-alive HTTP client for one feature server on the host, reached through
    an SSH channel or through featctl's tunnel process (no SSH handshake).
    ``batch``: the release's batch server (historical and batch scoring, in a
    process of its own so they never hold the serving workers)."""

    def __init__(
        self,
        conn: Connection | None,
        port: int,
        *,
        timeout: float = 60.0,
        tunnel: str | None = None,
        batch: bool = False,
    ) -> None:
        from featctl.remote.layout import socket_name

        self._http: http.client.HTTPConnection
        name = socket_name(port, batch=batch)
        if tunnel is not None:
            self._http = _TunnelHTTPConnection(tunnel, name, timeout)
        else:
            assert conn is not None
            self._http = _ChannelHTTPConnection(conn, name, timeout)
        self.port = port
        self.batch = batch
        self.tunnelled = tunnel is not None

    def close(self) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None, repeatable: bool = True
    ) -> tuple[int, bytes]:
        """One HTTP exchange, tried twice on a dropped keep-alive connection.

        A request that must not run twice (``repeatable=False``: an offline
        push appends rows) is sent once; if it fails after it was sent, the
        error says so and carries ``sent`` (no host fails over either).
        """
        payload = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        status, _, raw = self.exchange(method, path, payload, headers, timeout=timeout, repeatable=repeatable)
        return status, raw

    def exchange(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        headers: Mapping[str, str],
        *,
        timeout: float | None = None,
        repeatable: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """``request`` with a body of any type: (status, headers with lower-case
        names, body)."""
        if timeout is not None:
            self._http.timeout = timeout
            if self._http.sock is not None:
                self._http.sock.settimeout(timeout)
        for attempt in (1, 2):
            sending = False
            try:
                if not repeatable:
                    self._http.close()  # a fresh connection: a stale keep-alive one is no reason to resend
                    self._http.connect()
                    sending = True
                self._http.request(method, path, body=payload, headers=dict(headers))
                resp = self._http.getresponse()
                raw = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
            except (http.client.HTTPException, OSError, EOFError) as exc:
                self._http.close()
                if sending:
                    raise _unknown_outcome(self.port, path, exc) from None
                if attempt == 2:
                    raise FeatureServerError(
                        f"the feature server on the host (port {self.port}) did not answer: {exc or type(exc).__name__}"
                    ) from None
            except Exception as exc:  # paramiko's channel errors
                self._http.close()
                if sending:
                    raise _unknown_outcome(self.port, path, exc) from None
                if attempt == 2 or "ChannelException" not in type(exc).__name__:
                    raise FeatureServerError(
                        f"the feature server on the host (port {self.port}) is not reachable: {exc}"
                    ) from None
        raise AssertionError("unreachable")

    def healthy(self) -> bool:
        try:
            status, _ = self.request("GET", "/health", timeout=10)
        except FeatureServerError:
            return False
        except Exception:
            return False
        return status == 200

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        status, raw = self.request("POST", path, body, timeout=timeout)
        if status != 200:
            raise _server_error(path, status, raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise FeatureServerError(f"the feature server sent invalid JSON for {path}") from None

    # Feast endpoints ----------------------------------------------------
    def online_features(
        self,
        entities: Mapping[str, Sequence[Any]],
        *,
        features: Sequence[str] = (),
        feature_service: str | None = None,
        full_feature_names: bool = False,
    ) -> dict[str, list[Any]]:
        body: dict[str, Any] = {
            "entities": {k: list(v) for k, v in entities.items()},
            "full_feature_names": full_feature_names,
        }
        if feature_service:
            body["feature_service"] = feature_service
        else:
            body["features"] = list(features)
        return parse_online_response(self.post_json("/get-online-features", body))

    def search(self, body: Mapping[str, Any]) -> dict[str, list[Any]]:
        """Feast's ``/search`` (``retrieve_online_documents_v2`` with ``api_version`` 2):
        the nearest rows as columns, as ``/get-online-features`` answers them."""
        return parse_online_response(self.post_json("/search", dict(body)))

    def online_read(
        self, entities: Mapping[str, Sequence[Any]], features: Sequence[str], *, timeout: float | None = 10.0
    ) -> dict[str, dict[str, list[Any]]]:
        """Feast's raw answer per feature: ``values``, ``statuses`` (PRESENT,
        NOT_FOUND, ...) and ``event_timestamps``: what a health check needs to
        tell "no value" from "a null value" and an old value from a newer one."""
        body = {"entities": {k: list(v) for k, v in entities.items()}, "features": list(features)}
        data = self.post_json("/get-online-features", body, timeout=timeout)
        try:
            names = list(data["metadata"]["feature_names"])
            return {
                n: {
                    "values": list(r.get("values", [])),
                    "statuses": list(r.get("statuses", [])),
                    "event_timestamps": list(r.get("event_timestamps", [])),
                }
                for n, r in zip(names, data["results"])
            }
        except (KeyError, TypeError, AttributeError):
            raise FeatureServerError("unexpected answer from the feature server (no metadata/results)") from None

    def materialize(self, start: str, end: str, views: Sequence[str] | None, *, timeout: float) -> None:
        body: dict[str, Any] = {"start_ts": start, "end_ts": end}
        if views:
            body["feature_views"] = list(views)
        self._materialize("/materialize", body, timeout)

    def materialize_incremental(self, end: str, views: Sequence[str] | None, *, timeout: float) -> None:
        body: dict[str, Any] = {"end_ts": end}
        if views:
            body["feature_views"] = list(views)
        self._materialize("/materialize-incremental", body, timeout)

    def _materialize(self, path: str, body: dict[str, Any], timeout: float) -> None:
        """An error the server answers with is Feast's materialization failing
        (an unreachable store, a source it cannot read): a Feast error (exit 5),
        as from `feast materialize`; no answer stays the server's (exit 7)."""
        status, raw = self.request("POST", path, body, timeout=timeout)
        if status == 200:
            return
        err = _server_error(path, status, raw)
        if status >= 500 and isinstance(err, FeatureServerError):
            detail = err.message.partition("): ")[2] or f"HTTP {status}"
            view = None if _UNREACHABLE.search(detail) else re.match(r"feature view (\S+): ", detail)
            hint = (
                f"if Feast cannot materialize {view[1]} (a stream view with a Spark transformation, say), leave it out: "
                f'[materialize] skip = ["{view[1]}"] in featctl.toml'
                if view
                else None
            )
            raise FeastError(f"Feast failed to materialize (HTTP {status} on {path}): {detail}", hint=hint)
        raise err

    def push(self, source: str, columns: Mapping[str, Sequence[Any]], to: str, *, timeout: float) -> None:
        """Feast's ``/push``: rows into the views fed by push source ``source``,
        ``to`` "online", "offline" or "online_and_offline". An offline push is
        sent once (it appends rows)."""
        body = {"push_source_name": source, "df": {k: list(v) for k, v in columns.items()}, "to": to}
        status, raw = self.request("POST", "/push", body, timeout=timeout, repeatable=to == "online")
        if status not in (200, 202):  # 202: Feast's offline write batcher took the rows
            raise _server_error("/push", status, raw)

    # featctl's endpoints (agent/endpoints.py) ---------------------------
    def featctl_info(self) -> dict[str, Any] | None:
        """What featctl's endpoints in this server offer, or None when it has
        none (a release started before them: Feast answers 404)."""
        status, raw = self.request("GET", f"{FEATCTL_API}/info", timeout=10)
        if status != 200:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def featctl_historical(self, payload: bytes, *, timeout: float) -> tuple[int, dict[str, str], bytes]:
        """POST the entity rows (an Arrow IPC stream), on a fresh connection and
        once: a request that timed out is not run a second time."""
        headers = {"Content-Type": ARROW_STREAM, "Accept": ARROW_STREAM}
        return self.exchange("POST", f"{FEATCTL_API}/historical", payload, headers, timeout=timeout, repeatable=False)


def _unknown_outcome(port: int, path: str, exc: BaseException) -> FeatureServerError:
    err = FeatureServerError(
        f"the feature server on the host (port {port}) did not answer {path} after it was sent "
        f"({exc or type(exc).__name__}): it may or may not have been carried out; check before sending it again"
    )
    err.sent = True
    return err


def _server_error(path: str, status: int, raw: bytes) -> Exception:
    detail = raw.decode(errors="replace").strip()
    data: Any = raw
    # Feast nests its error as JSON text inside FastAPI's {"detail": ...}.
    for _ in range(3):
        try:
            data = json.loads(data)
        except (ValueError, TypeError):
            break
        if isinstance(data, str):  # a JSON string inside: its text, without the quotes
            detail = data
            break
        if not isinstance(data, dict):
            break
        data = data.get("detail") or data.get("message") or data.get("error") or detail
        detail = str(data)
    detail = " ".join(detail.split())[:300] or f"HTTP {status}"
    if status in (400, 404, 422):
        return UsageError(f"the feature server rejected the request: {detail}")
    return FeatureServerError(f"the feature server failed on {path} (HTTP {status}): {detail}")


def parse_online_response(data: Any) -> dict[str, list[Any]]:
    """Columns from Feast's ``/get-online-features`` JSON.

    Feast answers ``{"metadata": {"feature_names": [...]}, "results": [{"values":
    [...], "statuses": [...]}, ...]}``. A value whose status is not PRESENT
    becomes None, and so does a NaN, so the result is always strict JSON.
    """
    try:
        names = list(data["metadata"]["feature_names"])
        results = list(data["results"])
    except (KeyError, TypeError):
        raise FeatureServerError("unexpected answer from the feature server (no metadata/results)") from None
    if len(names) != len(results):
        raise FeatureServerError("unexpected answer from the feature server (names and results differ)")
    columns: dict[str, list[Any]] = {}
    for name, result in zip(names, results):
        values = list(result.get("values", []))
        statuses = list(result.get("statuses", []))
        clean = []
        for i, value in enumerate(values):
            status = statuses[i] if i < len(statuses) else "PRESENT"
            if status not in ("PRESENT", None) or (isinstance(value, float) and not math.isfinite(value)):
                value = None
            clean.append(value)
        columns[name] = clean
    return columns
