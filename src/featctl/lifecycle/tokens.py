"""Application tokens for the endpoint: ``featctl token create|list|revoke``.

A token is ``fct_`` + 32 random bytes (``secrets.token_urlsafe``), shown once
when it is made and never again: the workspace keeps only its SHA-256.

* ``<workspace>/tokens.json`` (0600): name, scope (read/write), created,
  expires and the hash of each token;
* ``<workspace>/endpoint/tokens.map`` (0600): what HAProxy looks tokens up in,
  ``<sha256 hex> <scope>:<expiry epoch, 0 = never>``.

A change goes to the file first and then to the running HAProxy through its
runtime API (``add map``/``del map``): instant, no reload, no request dropped;
a reload reads the file. Changes to tokens and reloads are serialized by
``endpoint.lock`` in the workspace (a blocking lock: a token can be made while
a deploy runs). Tokens never pass through Terraform.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from featctl.errors import FeatctlError, UsageError
from featctl.provision import haproxy
from featctl.workspace import write_private

TOKEN_PREFIX = "fct_"
SCOPES = ("read", "write")
_APP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_EXPIRES = re.compile(r"(\d{1,6})([mhdw])")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TokenRecord:
    """One application's token as the workspace keeps it: the hash, never the token."""

    name: str
    scope: str
    created: str
    #: ISO 8601 UTC, or None: never expires.
    expires: str | None
    sha256: str

    def expires_epoch(self) -> int:
        return 0 if self.expires is None else int(datetime.fromisoformat(self.expires).timestamp())

    def status(self, now: datetime) -> str:
        return "live" if self.expires is None or datetime.fromisoformat(self.expires) > now else "expired"

    def map_line(self) -> str:
        return f"{self.sha256} {self.scope}:{self.expires_epoch()}"


@dataclass(frozen=True)
class NewToken:
    record: TokenRecord
    #: The token itself: shown once, kept nowhere.
    token: str
    #: The running HAProxy took it at once (False: it takes it when it starts).
    live_now: bool
    #: The token it replaced (``replace``), for ``put_back``.
    replaced: TokenRecord | None = None


def records_path(root: Path) -> Path:
    return root / "tokens.json"


def endpoint_files(root: Path) -> haproxy.Files:
    return haproxy.Files(root / "endpoint")


def check_app(name: str) -> str:
    if not _APP.fullmatch(name):
        raise UsageError(f"application name {name!r} is invalid: use letters, digits, '.', '_' and '-' (at most 63)")
    return name


def parse_expires(text: str | None) -> int | None:
    """``90d``, ``12h``, ``30m``, ``2w`` -> seconds; ``never`` (or None) -> None."""
    if text is None or text.strip().lower() == "never":
        return None
    m = _EXPIRES.fullmatch(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--expires {text!r} is not a duration such as 90d, 12h, 30m, 2w or never")
    return int(m.group(1)) * _UNIT[m.group(2)]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextlib.contextmanager
def endpoint_lock(root: Path) -> Iterator[None]:
    """Serialize token changes and HAProxy reloads of one workspace (waits)."""
    import fcntl
    import os

    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(root / "endpoint.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load(root: Path) -> list[TokenRecord]:
    try:
        data = json.loads(records_path(root).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise FeatctlError(f"cannot read {records_path(root)}: {exc}") from None
    try:
        return [TokenRecord(**t) for t in data.get("tokens", [])]
    except TypeError as exc:
        raise FeatctlError(f"{records_path(root)} is damaged ({exc})") from None


def write_map(root: Path, records: list[TokenRecord]) -> Path:
    """tokens.map from the records (0600, in the 0700 endpoint directory)."""
    files = endpoint_files(root)
    files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.root.chmod(0o700)
    write_private(files.tokens_map, _map_text(records))
    return files.tokens_map


def _save(root: Path, records: list[TokenRecord]) -> None:
    write_private(records_path(root), json.dumps({"tokens": [asdict(r) for r in records]}, indent=2) + "\n")
    write_map(root, records)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


class Edge(Protocol):
    """A running HAProxy that checks tokens: this machine's (the local
    target) or a host's (vm, yandex: ``lifecycle/endpoint_hosts.py``)."""

    def live(self) -> bool: ...

    def apply(self, map_text: str, *, add: tuple[str, str] | None = None, delete: str | None = None) -> None:
        """``map_text`` is tokens.map as it is now; ``add`` (hash, value) and
        ``delete`` (hash) go to the running HAProxy without a reload."""


class LocalEdge:
    """This machine's HAProxy (the local target); tokens.map is the workspace's own."""

    def __init__(self, root: Path) -> None:
        self.files = endpoint_files(root)

    def live(self) -> bool:
        return haproxy.running(self.files)

    def apply(self, map_text: str, *, add: tuple[str, str] | None = None, delete: str | None = None) -> None:
        if add is not None:
            haproxy.add_map(self.files, self.files.tokens_map, *add)
        if delete is not None:
            haproxy.del_map(self.files, self.files.tokens_map, delete)


def _map_text(records: list[TokenRecord]) -> str:
    return "".join(r.map_line() + "\n" for r in records)


def _entry(record: TokenRecord) -> tuple[str, str]:
    return record.sha256, record.map_line().split(" ", 1)[1]


def _live(root: Path, edges: Sequence[Edge] | None) -> list[Edge]:
    return [e for e in (edges if edges is not None else [LocalEdge(root)]) if e.live()]


def create(
    root: Path,
    app: str,
    *,
    write: bool = False,
    expires_in: int | None = None,
    replace: bool = False,
    now: datetime | None = None,
    edges: Sequence[Edge] | None = None,
) -> NewToken:
    """A new token for ``app``; refuses an existing ``app`` unless ``replace``
    (the old token stops working at once). ``edges``: the running HAProxies
    that take it at once (default: this machine's)."""
    check_app(app)
    now = now or datetime.now(timezone.utc)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(
        name=app,
        scope="write" if write else "read",
        created=_iso(now),
        expires=None if expires_in is None else _iso(now + timedelta(seconds=expires_in)),
        sha256=token_hash(token),
    )
    with endpoint_lock(root):
        records = load(root)
        old = next((r for r in records if r.name == app), None)
        if old is not None and not replace:
            raise UsageError(
                f"application {app!r} has a token already",
                hint=f"`featctl token revoke {app}` first, or pass --replace to rotate it",
            )
        after = [r for r in records if r.name != app] + [record]
        live = _live(root, edges)
        _save(root, after)
        done: list[Edge] = []
        try:
            for edge in live:
                edge.apply(_map_text(after), add=_entry(record), delete=old.sha256 if old else None)
                done.append(edge)
        except FeatctlError:
            _save(root, records)  # nobody saw the token: keep no record of it
            for edge in done:
                with contextlib.suppress(FeatctlError):
                    edge.apply(_map_text(records), add=_entry(old) if old else None, delete=record.sha256)
            raise
    return NewToken(record, token, bool(live), old)


def put_back(root: Path, new: NewToken, edges: Sequence[Edge] | None = None) -> None:
    """Undo ``create``: the new token goes, the one it replaced (if any) works again."""
    with endpoint_lock(root):
        records = [r for r in load(root) if r.name != new.record.name]
        if new.replaced is not None:
            records.append(new.replaced)
        _save(root, records)
        for edge in _live(root, edges):
            edge.apply(
                _map_text(records), add=_entry(new.replaced) if new.replaced else None, delete=new.record.sha256
            )


def revoke(root: Path, app: str, edges: Sequence[Edge] | None = None) -> TokenRecord:
    """Remove ``app``'s token: from the running HAProxies first (the next
    request is refused), then from tokens.map and the records."""
    check_app(app)
    with endpoint_lock(root):
        records = load(root)
        old = next((r for r in records if r.name == app), None)
        if old is None:
            known = ", ".join(r.name for r in records) or "none"
            raise UsageError(f"no token for application {app!r}; tokens: {known}")
        after = [r for r in records if r.name != app]
        for edge in _live(root, edges):
            edge.apply(_map_text(after), delete=old.sha256)
        _save(root, after)
    return old


def listing(root: Path, now: datetime | None = None) -> list[dict[str, str | None]]:
    """name, scope, created, expires, status: never a token or a hash."""
    now = now or datetime.now(timezone.utc)
    return [
        {"name": r.name, "scope": r.scope, "created": r.created, "expires": r.expires or "never", "status": r.status(now)}
        for r in load(root)
    ]


def live_count(root: Path, now: datetime | None = None) -> int:
    now = now or datetime.now(timezone.utc)
    return sum(1 for r in load(root) if r.status(now) == "live")


def forget(root: Path) -> None:
    """Every token's record (destroy)."""
    with contextlib.suppress(FileNotFoundError):
        records_path(root).unlink()
