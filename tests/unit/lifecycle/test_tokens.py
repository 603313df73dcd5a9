"""Application tokens: hashes only, 0600 files, create/list/revoke, expiry (no HAProxy running)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from featctl.errors import UsageError
from featctl.lifecycle import tokens


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("2w", 14 * 86400), ("never", None), (None, None), (" 1D ", 86400)],
)
def test_parse_expires(text, seconds):
    assert tokens.parse_expires(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "d", "0d", "1y", "-1d", "1.5h", "90 d"])
def test_bad_expires(text):
    with pytest.raises(UsageError, match="--expires"):
        tokens.parse_expires(text)


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 64, "ä", "a\nb"])
def test_bad_app_names(name, tmp_path):
    with pytest.raises(UsageError, match="application name"):
        tokens.create(tmp_path, name)
    assert not (tmp_path / "tokens.json").exists()


def test_create_keeps_only_the_hash(tmp_path):
    new = tokens.create(tmp_path, "scoring", write=True, expires_in=3600)
    assert new.token.startswith("fct_") and len(new.token) >= 40 and not new.live_now
    records = (tmp_path / "tokens.json").read_text()
    tmap = (tmp_path / "endpoint" / "tokens.map").read_text()
    assert new.token not in records and new.token not in tmap
    digest = tokens.token_hash(new.token)
    assert tmap == f"{digest} write:{new.record.expires_epoch()}\n"
    assert json.loads(records)["tokens"][0]["sha256"] == digest
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "endpoint" / "tokens.map").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "endpoint").stat().st_mode & 0o777 == 0o700


def test_existing_app_is_refused_unless_replace(tmp_path):
    first = tokens.create(tmp_path, "app")
    with pytest.raises(UsageError, match="has a token already") as exc:
        tokens.create(tmp_path, "app")
    assert "--replace" in str(exc.value)
    second = tokens.create(tmp_path, "app", replace=True)
    tmap = (tmp_path / "endpoint" / "tokens.map").read_text()
    assert tokens.token_hash(first.token) not in tmap and tokens.token_hash(second.token) in tmap
    assert [r["name"] for r in tokens.listing(tmp_path)] == ["app"]


def test_list_and_revoke(tmp_path):
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    tokens.create(tmp_path, "reader", now=now)
    tokens.create(tmp_path, "short", expires_in=3600, now=now - timedelta(hours=2))
    keep = tokens.create(tmp_path, "writer", write=True, expires_in=90 * 86400, now=now)
    rows = tokens.listing(tmp_path, now=now)
    assert rows == [
        {"name": "reader", "scope": "read", "created": "2026-12-01T00:00:00+00:00", "expires": "never", "status": "live"},
        {"name": "short", "scope": "read", "created": "2026-11-30T22:00:00+00:00", "expires": "2026-11-30T23:00:00+00:00", "status": "expired"},
        {"name": "writer", "scope": "write", "created": "2026-12-01T00:00:00+00:00", "expires": "2027-03-01T00:00:00+00:00", "status": "live"},
    ]
    assert tokens.live_count(tmp_path, now=now) == 2
    assert "short" in (tmp_path / "tokens.json").read_text()
    tokens.revoke(tmp_path, "reader")
    assert [r["name"] for r in tokens.listing(tmp_path)] == ["short", "writer"]
    tmap = (tmp_path / "endpoint" / "tokens.map").read_text()
    assert tmap.count("\n") == 2 and tokens.token_hash(keep.token) in tmap
    with pytest.raises(UsageError, match="no token for application 'reader'"):
        tokens.revoke(tmp_path, "reader")


def test_the_map_line_says_never_with_0():
    rec = tokens.TokenRecord("a", "read", "2026-12-01T00:00:00+00:00", None, "ab" * 32)
    assert rec.map_line() == f"{'ab' * 32} read:0"


def test_put_back_undoes_a_create(tmp_path):
    first = tokens.create(tmp_path, "app")
    second = tokens.create(tmp_path, "app", replace=True)
    assert second.replaced == first.record
    tokens.put_back(tmp_path, second)
    assert tokens.load(tmp_path) == [first.record]
    assert (tmp_path / "endpoint" / "tokens.map").read_text() == first.record.map_line() + "\n"
    tokens.put_back(tmp_path, tokens.create(tmp_path, "other"))
    assert [r.name for r in tokens.load(tmp_path)] == ["app"]
