"""An application's reads, as a model service would send them: HTTPS with the
deployment's CA and a bearer token, keep-alive connections, open-loop at a
fixed rate (each request starts at its scheduled time whether or not earlier
ones have finished), bounded in count and time.

Run inside the application's network namespace (stdlib only, so any Python
there will do)::

    python appload.py URL CA TOKEN BODY_JSON --rate 20 --seconds 10 [--path /get-online-features]

Prints one JSON document: per request its scheduled offset, latency (s),
status (0 when no answer came) and, for failures, the first bytes of the
answer or the error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("ca")
    ap.add_argument("token")
    ap.add_argument("body")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--path", default="/get-online-features")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=0, help="requests sent first and not reported")
    ap.add_argument("--unix", default=None, help="plain HTTP over this Unix socket instead of URL (a feature server's own socket)")
    args = ap.parse_args()
    url = urllib.parse.urlsplit(args.url)
    ctx = ssl.create_default_context(cafile=args.ca) if not args.unix else None
    body = args.body.encode()
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    local = threading.local()

    class UnixHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            import socket

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(args.timeout)
            sock.connect(args.unix)
            self.sock = sock

    def conn() -> http.client.HTTPConnection:
        c = getattr(local, "conn", None)
        if c is None:
            if args.unix:
                c = local.conn = UnixHTTP("localhost", timeout=args.timeout)
            else:
                c = local.conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=args.timeout)
        return c

    def one(offset: float, due: float | None = None) -> dict:
        # Latency from the scheduled start (open loop: a slow answer delays no later request).
        started = time.monotonic() if due is None else due
        for attempt in (1, 2):
            try:
                c = conn()
                c.request("POST", args.path, body=body, headers=headers)
                resp = c.getresponse()
                raw = resp.read()
                out = {"at": offset, "latency": time.monotonic() - started, "status": resp.status}
                if resp.status != 200:
                    out["answer"] = raw[:200].decode(errors="replace")
                return out
            except (OSError, http.client.HTTPException) as exc:
                local.conn = None
                # A kept-alive connection the server closed between requests is
                # retried once on a new one, as HTTP clients do (nothing was read).
                if attempt == 2 or not isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    return {"at": offset, "latency": time.monotonic() - started, "status": 0, "error": repr(exc)[:200]}
        raise AssertionError("unreachable")

    for _ in range(args.warmup):
        one(0.0)
    n = int(args.rate * args.seconds)
    t0 = time.monotonic() + 0.05
    with ThreadPoolExecutor(max(8, int(args.rate))) as pool:
        futures = []
        for i in range(n):
            due = t0 + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, due - t0, due))
        results = [f.result() for f in futures]
    print(json.dumps({"rate": args.rate, "results": results}))


if __name__ == "__main__":
    main()
