"""What a release holds, built from the user's repository without touching it.

Most files are uploaded as they are. Three things are rewritten, in the
release's copy only:

* a registry or sqlite online store whose path is absolute or outside the
  repository moves into the release (``_featctl/registry.db``,
  ``_featctl/online_store.db``), so each release has its own copy, ``plan``
  never touches what serves, and nothing is written outside the deployment;
* a data file that a source names outside the repository (``path=`` or
  ``file_url=`` in the definitions, or a module-level string such a keyword
  names) is uploaded under ``_featctl/external/`` and the string points there;
* nothing else: remote URIs (``s3://``, ``gs://``...) are left to Feast.

Files are never read through a symbolic link that leaves the repository, and
nothing is read from featctl's workspace.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.repo import feature_store as repository

RESERVED = "_featctl"
META = ".featctl"
# Never uploaded: state Feast writes on the host, caches, VCS data.
SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", META, ".pytest_cache", ".mypy_cache", RESERVED}
SKIP_SUFFIXES = (".pyc", ".db", ".db-journal", ".db-wal", ".db-shm", ".featctl-tmp", ".tmp")
_PATH_KEYWORDS = ("path", "file_url")


@dataclass
class Bundle:
    """The files of one release: release path -> where the bytes come from."""

    repo: Path
    #: path in the release -> local file to upload as it is
    files: dict[str, Path] = field(default_factory=dict)
    #: path in the release -> rewritten content
    contents: dict[str, bytes] = field(default_factory=dict)
    #: path in the release -> sha256 of what is uploaded
    manifest: dict[str, str] = field(default_factory=dict)
    #: what featctl changed in the release's copy, for the user
    notes: list[str] = field(default_factory=list)
    config: repository.RepoConfig | None = None

    def source(self, rel: str) -> Path | bytes:
        return self.contents[rel] if rel in self.contents else self.files[rel]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk(root: Path, repo: Path, workspace: Path | None) -> list[tuple[str, Path]]:
    """(path relative to ``root``, real file) for every file to upload under ``root``,
    refusing symlinks that leave the repository or reach into the workspace."""
    out = []
    real_repo = repo.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            p = here / d
            if d in SKIP_DIRS:
                continue
            if workspace is not None and p.resolve() == workspace:
                continue
            if p.is_symlink():
                target = p.resolve()
                if not repository.inside(target, real_repo):
                    raise UsageError(
                        f"{p} is a symbolic link to {target}, outside the repository; featctl uploads nothing "
                        "from outside it: copy what you need into the repository"
                    )
                continue  # inside: its files are uploaded from where they really are
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.endswith(SKIP_SUFFIXES):
                continue
            p = here / name
            real = p.resolve()
            if p.is_symlink():
                if not repository.inside(real, real_repo):
                    raise UsageError(
                        f"{p} is a symbolic link to {real}, outside the repository; featctl uploads nothing "
                        "from outside it: copy the file into the repository"
                    )
                if not real.is_file():
                    continue
            if workspace is not None and repository.inside(real, workspace):
                raise UsageError(f"{p} lies in featctl's workspace {workspace}; featctl never uploads it")
            out.append((p.relative_to(root).as_posix(), real))
    return out


#: The release's Spark settings for the host agent (agent/watch.py reads it).
SPARK_SETTINGS = f"{RESERVED}/spark.json"


def build(
    repo: Path, *, workspace: Path | None = None, stores: tuple[str, ...] = (), spark: dict[str, Any] | None = None
) -> Bundle:
    """The release's files for ``repo`` (see the module docstring); with shared
    ``stores``, pointed at them (repo/stores.py). A release that uses Spark gets
    ``spark`` (featctl.toml's [spark]: driver_memory, stall_seconds) as
    ``_featctl/spark.json``, so a changed setting is a change of the release."""
    repo = repo.resolve()
    ws = workspace.resolve() if workspace is not None else None
    if (repo / RESERVED).exists():
        raise UsageError(f"{repo / RESERVED} exists; featctl keeps its own files under that name in a release")
    bundle = Bundle(repo=repo)
    for rel, real in _walk(repo, repo, ws):
        bundle.files[rel] = real
    bundle.config = repository.load(repo)
    _relocate_state(bundle, stores)
    _external_sources(bundle, ws)
    if "spark" in stores:
        _other_sources(bundle, "spark")
    elif "postgres" in stores:
        _other_sources(bundle, "postgres")
    if "spark" in stores or "spark" in bundle.config.extras:
        bundle.contents[SPARK_SETTINGS] = (json.dumps(spark or {}, sort_keys=True) + "\n").encode()
    for rel, real in bundle.files.items():
        if rel not in bundle.contents:
            bundle.manifest[rel] = _sha256_file(real)
    for rel, data in bundle.contents.items():
        bundle.manifest[rel] = hashlib.sha256(data).hexdigest()
    return bundle


# --- Feast's state outside the repository ------------------------------------------


def _relocate_state(bundle: Bundle, stores: tuple[str, ...] = ()) -> None:
    import yaml

    from featctl.repo import stores as shared

    cfg = bundle.config
    assert cfg is not None
    data = dict(cfg.data)
    changed = shared.render(data, stores)
    if changed:
        # Feast's own view of the rendered file: its extras follow the stores.
        cfg = bundle.config = repository.RepoConfig(cfg.path, data)
        cfg.extras = repository.extras_for(cfg)
    reg = cfg.registry
    if cfg.registry_type == "file" and not reg.get("registry_store_type"):
        raw = str(reg.get("path") or "data/registry.db")
        where = repository.local_path(bundle.repo, raw)
        if where is not None and (Path(raw).is_absolute() or not repository.inside(where, bundle.repo)):
            reg["path"] = f"{RESERVED}/registry.db"
            data["registry"] = reg if isinstance(cfg.data.get("registry"), dict) else reg["path"]
            changed.append(f"registry {raw} -> {RESERVED}/registry.db")
    elif cfg.registry_type != "file" and "postgres" not in stores:
        bundle.notes.append(f"the {cfg.registry_type} registry is left to Feast (featctl keeps no copy per release)")
    online = cfg.online_store
    if str(online.get("type", "sqlite")) == "sqlite" and online.get("path"):
        raw = str(online["path"])
        where = repository.local_path(bundle.repo, raw)
        if where is not None and (Path(raw).is_absolute() or not repository.inside(where, bundle.repo)):
            online["path"] = f"{RESERVED}/online_store.db"
            data["online_store"] = online
            changed.append(f"online store {raw} -> {RESERVED}/online_store.db")
    if changed:
        header = (
            "# Written by featctl for this release only: "
            + "; ".join(changed)
            + " (store connections come from FEATCTL_* variables on the host).\n"
        )
        text = header + yaml.safe_dump(data, sort_keys=False)
        bundle.contents[repository.CONFIG] = text.encode()
        bundle.notes += [f"in the release's {repository.CONFIG}: {c}" for c in changed]


# --- data files outside the repository ----------------------------------------------


@dataclass
class _Literal:
    node: ast.Constant
    value: str


def _path_literals(tree: ast.Module) -> list[_Literal]:
    """String literals given as path=/file_url= (directly, or through a
    module-level NAME = "..." that such a keyword names)."""
    consts: dict[str, ast.Constant] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    consts[target.id] = stmt.value
    found: dict[int, _Literal] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg not in _PATH_KEYWORDS:
                continue
            value = kw.value
            if isinstance(value, ast.Name) and value.id in consts:
                value = consts[value.id]
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found[id(value)] = _Literal(value, value.value)
    return list(found.values())


def _replace(source: bytes, edits: list[tuple[ast.Constant, str]]) -> bytes:
    """Replace string-literal nodes in ``source`` (ast offsets are UTF-8 bytes)."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out = source
    spans = []
    for node, new in edits:
        assert node.end_lineno is not None and node.end_col_offset is not None
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        spans.append((begin, end, repr(new).encode()))
    for begin, end, text in sorted(spans, reverse=True):
        out = out[:begin] + text + out[end:]
    return out


def _external_sources(bundle: Bundle, workspace: Path | None) -> None:
    placed: dict[Path, str] = {}
    for rel in [r for r in bundle.files if r.endswith(".py")]:
        source = bundle.files[rel].read_bytes()
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue  # feast apply reports it
        edits: list[tuple[ast.Constant, str]] = []
        for lit in _path_literals(tree):
            where = repository.local_path(bundle.repo, lit.value)
            if where is None or repository.inside(where, bundle.repo):
                continue
            if not where.exists():
                bundle.notes.append(f"{rel} names {lit.value}, which does not exist here; Feast will report it")
                continue
            if workspace is not None and repository.inside(where.resolve(), workspace):
                raise UsageError(f"{rel} names {lit.value}, inside featctl's workspace; featctl never uploads it")
            if where not in placed:
                digest = hashlib.sha256(str(where).encode()).hexdigest()[:10]
                placed[where] = f"{RESERVED}/external/{digest}/{where.name}"
                base = placed[where]
                if where.is_dir():
                    for sub, real in _walk(where, where, workspace):
                        bundle.files[f"{base}/{sub}"] = real
                else:
                    bundle.files[base] = where.resolve()
                bundle.notes.append(f"{lit.value} (named in {rel}) is uploaded with the release as {base}")
            edits.append((lit.node, placed[where]))
        if edits:
            bundle.contents[rel] = _replace(source, edits)


# --- stores = postgres: sources read PostgreSQL tables -----------------------------------


def _other_sources(bundle: Bundle, store: str) -> None:
    """FileSources become sources of ``store``: PostgreSQL tables loaded from the
    parquet files, or Spark reading the same files."""
    import json

    from featctl.repo import stores as shared

    digests: dict[str, str] = {}

    def resolve(raw: str) -> str | None:
        where = repository.local_path(bundle.repo, raw)
        if where is None:
            return None
        # Outside the repository: uploaded under _featctl/external/ (see above).
        rel = where.relative_to(bundle.repo).as_posix() if repository.inside(where, bundle.repo) else raw
        return rel if rel in bundle.files else None

    def digest_of(rel: str) -> str:
        if rel not in digests:
            digests[rel] = _sha256_file(bundle.files[rel])
        return digests[rel]

    tables: dict[str, str] = {}
    moved = 0
    for rel in sorted(r for r in bundle.files if r.endswith(".py")):
        current = bundle.contents.get(rel) or bundle.files[rel].read_bytes()
        if store == "spark":
            new = shared.to_spark_sources(rel, current, resolve, digest_of, tables)
        else:
            new = shared.to_postgres_sources(rel, current, resolve, digest_of, tables)
        if new is not None:
            bundle.contents[rel] = new
            moved += 1
    if store == "spark" and moved:
        bundle.contents[shared.SPARK_FILES] = (json.dumps(tables, indent=2, sort_keys=True) + "\n").encode()
        bundle.notes.append("parquet sources are read by Spark in the release's definitions")
        return
    if tables:
        bundle.contents[shared.TABLES_FILE] = (json.dumps(tables, indent=2, sort_keys=True) + "\n").encode()
        bundle.notes.append(
            f"{len(tables)} parquet source(s) become PostgreSQL tables in the release's definitions "
            "(loaded on deploy when their content is new)"
        )
