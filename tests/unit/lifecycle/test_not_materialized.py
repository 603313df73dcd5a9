"""Views deploy and ``materialize`` leave out (#24 item 4): online=False, an
empty source, ``[materialize] skip``; said in one line, shown by status, and
a view named that cannot be loaded is an error before anything runs."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from featctl.agent.sourcerows import source_rows as _source_rows
from featctl.config import load_settings
from featctl.errors import ConfigError, UsageError
from featctl.lifecycle.materialize import _views_to_load, not_materialized, skipped_note
from featctl.lifecycle.status import _views_from

DESC = {
    "feature_views": [
        {"name": "hourly", "online": True, "source_rows": 168},
        {"name": "offline_only", "online": False, "source_rows": 10},
        {"name": "memory", "online": True, "source_rows": 0},
        {"name": "stream", "online": True, "source_rows": None},
        {"name": "postgres_view", "online": True},
    ]
}


class Reporter:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def session(skip=()):
    return SimpleNamespace(settings=SimpleNamespace(materialize_skip=tuple(skip)), reporter=Reporter())


def test_each_reason_and_nothing_else():
    assert not_materialized(DESC, ["stream"]) == {
        "offline_only": "online=False",
        "memory": "empty source: 0 rows",
        "stream": "[materialize] skip in featctl.toml",
    }
    assert not_materialized(DESC) == {"offline_only": "online=False", "memory": "empty source: 0 rows"}


def test_all_views_load_what_can_be_loaded_and_say_the_rest_in_one_line():
    s = session(["stream", "gone"])
    assert [v["name"] for v in _views_to_load(s, DESC, None)] == ["hourly", "postgres_view"]
    assert s.reporter.lines == [
        "[materialize] skip names gone, which the repository does not define",
        "not materialized: memory (empty source: 0 rows), offline_only (online=False), stream "
        "([materialize] skip in featctl.toml)",
    ]


@pytest.mark.parametrize(
    ("views", "message"),
    [
        (["offline_only"], "offline_only: online=False"),
        (["stream"], "stream: left out by [materialize] skip in featctl.toml"),
        (["nope"], "unknown feature view(s) nope"),
    ],
)
def test_a_view_named_that_cannot_be_loaded_is_an_error(views, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _views_to_load(session(["stream"]), DESC, views)


def test_an_empty_source_named_is_left_out_not_an_error():
    s = session()
    assert _views_to_load(s, DESC, ["memory", "hourly"]) == [DESC["feature_views"][0]]
    assert s.reporter.lines == ["not materialized: memory (empty source: 0 rows)"]


def test_status_says_why_a_view_has_no_materialization():
    rows = {r["view"]: r["last_materialized"] for r in _views_from(DESC, skip=["stream"])}
    assert rows == {
        "hourly": "never",
        "offline_only": "not materialized: online=False",
        "memory": "not materialized: empty source: 0 rows",
        "stream": "not materialized: [materialize] skip in featctl.toml",
        "postgres_view": "never",
    }
    assert skipped_note({"a": "online=False"}) == "not materialized: a (online=False)"


def test_source_rows_from_parquet_footers(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3], "event_timestamp": pd.to_datetime(["2026-01-01"] * 3)})
    frame.to_parquet(tmp_path / "three.parquet")
    frame.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    (tmp_path / "dir").mkdir()
    frame.to_parquet(tmp_path / "dir" / "a.parquet")
    frame.iloc[:1].to_parquet(tmp_path / "dir" / "b.parquet")
    (tmp_path / "not.parquet").write_text("csv,really\n")
    assert _source_rows("three.parquet", str(tmp_path)) == 3
    assert _source_rows(str(tmp_path / "empty.parquet"), None) == 0
    assert _source_rows("dir", str(tmp_path)) == 4
    assert _source_rows("not.parquet", str(tmp_path)) is None
    assert _source_rows("missing.parquet", str(tmp_path)) is None
    assert _source_rows("postgres:featctl_x", str(tmp_path)) is None
    assert _source_rows(None, str(tmp_path)) is None


def test_materialize_skip_in_featctl_toml(tmp_path):
    (tmp_path / "featctl.toml").write_text('[materialize]\nskip = ["stream", "stream", "other"]\n')
    assert load_settings(environ={}, cwd=tmp_path).materialize_skip == ("stream", "other")
    (tmp_path / "featctl.toml").write_text('[materialize]\nskip = "stream"\n')
    with pytest.raises(ConfigError, match="skip must be a list"):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "featctl.toml").write_text("[materialize]\nskip = [1]\n")
    with pytest.raises(ConfigError, match="list of feature view names"):
        load_settings(environ={}, cwd=tmp_path)
    (tmp_path / "featctl.toml").write_text("[materialize]\nviews = []\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(environ={}, cwd=tmp_path)
