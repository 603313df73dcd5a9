"""Fixes for Feast 0.67 that featctl applies in every Feast process it starts
on the host (``feast apply``/``plan``/``serve`` through ``feast_cli``, and the
agent's own Feast commands). Each one names the defect it works around.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

_done = False


def _list_spelling(pa_type_as_str: str) -> str:
    """``list<element: string>`` -> ``list<item: string>``.

    pyarrow reads a list column of a parquet file written with compliant nested
    types (pyarrow's default since 13) as ``list<element: T>``; Feast 0.67's
    ``pa_to_feast_value_type`` knows the ``list<item: T>`` spelling and only a
    few ``element`` ones (``list<element: str>``, not ``string``), so an
    offline push to a FileSource with an Array(String) feature fails with
    ``KeyError: 'list<element: string>'``.
    """
    for prefix in ("list<element: ", "large_list<element: ", "large_list<item: "):
        if pa_type_as_str.startswith(prefix) and pa_type_as_str.endswith(">"):
            return "list<item: " + _list_spelling(pa_type_as_str[len(prefix) : -1]) + ">"
    return pa_type_as_str


def replace_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file in the
    same directory, every byte written (a short write is continued, a full disk
    raises ``OSError`` ENOSPC), fsynced, renamed over ``path``, the directory
    fsynced. ``path`` keeps its permissions (a new file gets the umask's); a
    symbolic link is followed, as Feast's own write did, and stays a link."""
    path = os.path.realpath(path)
    directory = os.path.dirname(path) or "."
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _atomic_file_registry() -> None:
    """Feast's file registry is written whole or not at all (``replace_file``).

    Feast 0.67's ``FileRegistryStore._write_registry`` opens registry.db with
    ``'wb'`` (truncating it) and makes one unbuffered ``write`` whose short
    count it never checks: on a full disk the registry was left truncated and
    the command (``materialize``, ``apply``) reported success; every later read
    failed with "Wire format was corrupt" and the feature server crash-looped.
    Now a failed write raises ``[Errno 28] No space left on device`` and the
    registry file is the one it was."""
    from feast.infra.registry import file as file_registry

    store = file_registry.FileRegistryStore
    if getattr(store._write_registry, "__featctl__", False):
        return

    def _write_registry(self: Any, registry_proto: Any) -> None:
        registry_proto.version_id = str(file_registry.uuid.uuid4())
        registry_proto.last_updated.FromDatetime(file_registry._utc_now())
        self._filepath.parent.mkdir(exist_ok=True)
        replace_file(str(self._filepath), registry_proto.SerializeToString())

    _write_registry.__featctl__ = True  # type: ignore[attr-defined]
    store._write_registry = _write_registry


def patch_feast() -> None:
    """Apply the fixes (idempotent); imports ``feast.type_map``, Feast's
    file registry store, its on-demand views (odfv_errors.py) and, where
    psycopg is installed, its PostgreSQL offline store (pg_retrieval.py)."""
    global _done
    if _done:
        return
    from feast import type_map

    original = type_map.pa_to_feast_value_type

    def pa_to_feast_value_type(pa_type_as_str: str) -> Any:
        return original(_list_spelling(pa_type_as_str))

    pa_to_feast_value_type.__doc__ = original.__doc__
    type_map.pa_to_feast_value_type = pa_to_feast_value_type
    _atomic_file_registry()
    from .odfv_errors import name_failures

    name_failures()
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:  # an environment with Feast's postgres extra
        from .pg_retrieval import json_columns_as_text

        json_columns_as_text()
    _done = True


def fork_safe_registry() -> None:
    """Each gunicorn worker of ``feast serve`` opens its own SQL registry connections.

    Feast 0.67's ``feast serve`` builds its FeatureStore (and a SQL registry's
    SQLAlchemy engines, with a pooled connection the registry read used) in
    gunicorn's master, then forks the workers: every worker inherits the same
    PostgreSQL connection. With two workers their startups race on it
    (``can't change 'autocommit' now: connection in transaction status
    INTRANS``, ``DuplicatePreparedStatement``), one worker fails to boot, and
    gunicorn stops the whole server: a deploy with ``stores = ["postgres"]``
    and the default two workers failed at random. Each worker now drops the
    inherited pool right after the fork (without closing the master's
    connection, as SQLAlchemy prescribes for forked processes).
    """
    from feast import feature_server

    app_class = getattr(feature_server, "FeastServeApplication", None)
    if app_class is None or getattr(app_class.load_config, "__featctl__", False):
        return
    original = app_class.load_config

    def load_config(self: Any) -> None:
        original(self)
        store = self._store

        def post_fork(server: Any, worker: Any) -> None:
            for name in ("write_engine", "read_engine"):
                engine = getattr(store.registry, name, None)
                if engine is not None and hasattr(engine, "dispose"):
                    engine.dispose(close=False)

        self.cfg.set("post_fork", post_fork)

    load_config.__featctl__ = True  # type: ignore[attr-defined]
    app_class.load_config = load_config
