"""Errors from the host say their cause in one line (#24 item 8): PostgreSQL's
message rather than the SQL it quotes, and what to do about a module the
repository imports and the host lacks."""

from __future__ import annotations

from featctl.remote.agent import _cause, feast_message, module_hint

PG_TRACEBACK = b"""Traceback (most recent call last):
  File "/h/envs/feast/lib/python3.11/site-packages/psycopg/cursor.py", line 97, in execute
    raise ex.with_traceback(None)
psycopg.errors.UndefinedTable: relation "driver_stats" does not exist
LINE 1: SELECT * FROM driver_stats LIMIT 0
                      ^
"""


def test_the_postgres_message_not_the_sql():
    assert feast_message(PG_TRACEBACK) == 'psycopg.errors.UndefinedTable: relation "driver_stats" does not exist'
    one_line = 'UndefinedTable: relation "driver_stats" does not exist LINE 1: SELECT * FROM driver_stats ^'
    assert _cause(one_line) == 'UndefinedTable: relation "driver_stats" does not exist'
    assert _cause("no SQL here: LINE is a word") == "no SQL here: LINE is a word"


def test_a_missing_module_names_the_setting_that_installs_it():
    hint = module_hint("ModuleNotFoundError: No module named 'sentence_transformers'")
    assert hint is not None and "sentence_transformers" in hint and "[host] requirements" in hint
    assert module_hint("ModuleNotFoundError: No module named 'pkg.sub'") is not None
    assert module_hint("KeyError: 'x'") is None
