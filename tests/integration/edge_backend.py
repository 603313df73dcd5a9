"""A boundary fake of Feast's feature server on a Unix socket, for the edge's
integration test: answers ``GET /health`` and echoes ``POST
/get-online-features``, ``/push`` and ``/write-to-online-store`` (with the
server's name and the headers it got, so the test sees what HAProxy forwards).

Run as ``python edge_backend.py SOCKET NAME``; its own process, so the test can
kill or stop it.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"ok": True})
        else:
            self._send(200, {"server": NAME, "path": self.path, "leak": "internal"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        doc = {
            "server": NAME,
            "path": self.path,
            "bytes": len(body),
            "authorization": self.headers.get("authorization"),
        }
        if self.path == "/get-online-features":
            doc.update(_features(body))
        self._send(200, doc)


def _features(body: bytes) -> dict:
    """An answer in Feast's shape: each entity key back, then 0.5 for every feature."""
    try:
        req = json.loads(body)
        entities = dict(req["entities"])
        names = [ref.split(":")[-1] for ref in req["features"]]
    except (ValueError, KeyError, TypeError):
        return {}
    rows = len(next(iter(entities.values()), []))
    columns = [*entities.values(), *([0.5] * rows for _ in names)]
    return {
        "metadata": {"feature_names": [*entities, *names]},
        "results": [
            {"values": list(col), "statuses": ["PRESENT"] * rows, "event_timestamps": ["2026-12-01T00:00:00Z"] * rows}
            for col in columns
        ],
    }


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy gave up on a stopped server's answer: nothing to report


NAME = ""

if __name__ == "__main__":
    path, NAME = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    with Server(path, Handler) as server:
        server.serve_forever()
