"""What a release is made of: files as they are, Feast state and outside data
moved into the release's copy, and nothing from outside the repository."""

from __future__ import annotations

import hashlib
import os

import pytest
import yaml

from featctl.errors import UsageError
from featctl.repo import feature_store
from featctl.repo.bundle import build

FEATURES = '''from feast import FileSource
DATA = "{data}"
a = FileSource(name="a", path=DATA, timestamp_field="ts")
b = FileSource(name="b", path="{other}", timestamp_field="ts")
c = FileSource(name="c", path="data/inside.parquet", timestamp_field="ts")
d = FileSource(name="d", path="s3://bucket/x.parquet", timestamp_field="ts")
'''


def repo_with(tmp_path, yaml_text="project: p\n", features=None):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(yaml_text)
    (repo / "data" / "inside.parquet").write_bytes(b"inside")
    if features is not None:
        (repo / "features.py").write_text(features)
    return repo


def test_plain_repository_is_uploaded_as_it_is(tmp_path):
    repo = repo_with(tmp_path, features="x = 1\n")
    b = build(repo)
    assert b.contents == {} and b.notes == []
    assert sorted(b.manifest) == ["data/inside.parquet", "feature_store.yaml", "features.py"]
    assert b.manifest["features.py"] == hashlib.sha256(b"x = 1\n").hexdigest()


def test_symlink_out_of_the_repository_is_refused(tmp_path):
    secret = tmp_path / "workspace" / "keys" / "client_ed25519"
    secret.parent.mkdir(parents=True)
    secret.write_text("PRIVATE KEY")
    repo = repo_with(tmp_path)
    os.symlink(secret, repo / "data" / "key")
    with pytest.raises(UsageError, match=r"symbolic link .* outside the repository"):
        build(repo, workspace=tmp_path / "workspace")
    (repo / "data" / "key").unlink()
    os.symlink(tmp_path / "workspace", repo / "linked_dir")
    with pytest.raises(UsageError, match="symbolic link"):
        build(repo)


def test_symlink_inside_the_repository_is_fine(tmp_path):
    repo = repo_with(tmp_path)
    os.symlink(repo / "data" / "inside.parquet", repo / "alias.parquet")
    assert build(repo).manifest["alias.parquet"] == hashlib.sha256(b"inside").hexdigest()


@pytest.mark.parametrize(
    "registry",
    ["../../../../etc/registry.db", "/var/lib/feast/registry.db", {"path": "../shared/registry.db", "cache_ttl_seconds": 5}],
)
def test_registry_outside_moves_into_the_release(tmp_path, registry):
    cfg = {"project": "p", "registry": registry, "online_store": {"type": "sqlite", "path": "/tmp/online.db"}}
    repo = repo_with(tmp_path, yaml.safe_dump(cfg))
    b = build(repo)
    written = yaml.safe_load(b.contents["feature_store.yaml"])
    reg = written["registry"]
    assert (reg["path"] if isinstance(reg, dict) else reg) == "_featctl/registry.db"
    if isinstance(registry, dict):
        assert reg["cache_ttl_seconds"] == 5  # everything else stays
    assert written["online_store"] == {"type": "sqlite", "path": "_featctl/online_store.db"}
    assert any("registry" in n for n in b.notes)
    assert (repo / "feature_store.yaml").read_text() == yaml.safe_dump(cfg)  # the user's copy is untouched


def test_sql_registry_is_left_to_feast(tmp_path):
    cfg = {"project": "p", "registry": {"registry_type": "sql", "path": "postgresql://u:p@h/db"}}
    b = build(repo_with(tmp_path, yaml.safe_dump(cfg)))
    assert "feature_store.yaml" not in b.contents
    assert any("sql registry is left to Feast" in n for n in b.notes)
    assert feature_store.load(b.repo).extras == ["postgres"]


def test_data_outside_the_repository_is_uploaded_and_pointed_at(tmp_path):
    shared = tmp_path / "shared_data"
    shared.mkdir()
    (shared / "x.parquet").write_bytes(b"outside")
    (shared / "ds").mkdir()
    (shared / "ds" / "part-0.parquet").write_bytes(b"part")
    repo = repo_with(tmp_path, features=FEATURES.format(data="../shared_data/x.parquet", other=str(shared / "ds")))
    b = build(repo)
    text = b.contents["features.py"].decode()
    assert "../shared_data" not in text and str(shared) not in text
    assert 'path="data/inside.parquet"' in text and "s3://bucket/x.parquet" in text  # untouched
    moved = [r for r in b.manifest if r.startswith("_featctl/external/")]
    assert sorted(os.path.basename(r) for r in moved) == ["part-0.parquet", "x.parquet"]
    for rel in moved:
        assert repr(rel.rsplit("/part-0.parquet", 1)[0]) in text or repr(rel) in text
    # The module-level name is rewritten where it is defined.
    assert "DATA = '_featctl/external/" in text
    assert (repo / "features.py").read_text() == FEATURES.format(
        data="../shared_data/x.parquet", other=str(shared / "ds")
    )
    compile(text, "features.py", "exec")


def test_reserved_name_is_refused(tmp_path):
    repo = repo_with(tmp_path)
    (repo / "_featctl").mkdir()
    with pytest.raises(UsageError, match="_featctl"):
        build(repo)


def test_demo_marker_and_extras(tmp_path):
    repo = repo_with(tmp_path, "project: p\nfeatctl:\n  sample_data: drivers\nonline_store:\n  type: redis\n")
    cfg = feature_store.load(repo)
    assert cfg.is_demo and cfg.extras == ["redis"]
    assert not feature_store.load(repo_with(tmp_path / "other")).is_demo


def test_the_mcp_feature_server_needs_its_extra_and_unknown_types_are_refused(tmp_path):
    mcp = feature_store.load(repo_with(tmp_path / "m", "project: p\nfeature_server:\n  type: mcp\n  mcp_enabled: true\n"))
    assert mcp.extras == ["mcp"]
    assert feature_store.load(repo_with(tmp_path / "l", "project: p\nfeature_server:\n  type: local\n")).extras == []
    assert "mcp" in feature_store.installable_extras()
    with pytest.raises(UsageError, match=r"feature_server type 'lambda' is not one Feast 0\.67\.0 serves"):
        feature_store.load(repo_with(tmp_path / "x", "project: p\nfeature_server:\n  type: lambda\n"))


def test_bad_feature_store_yaml_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="not valid YAML"):
        build(repo_with(tmp_path, "project: [unclosed\n"))
    with pytest.raises(UsageError, match="names no project"):
        build(repo_with(tmp_path / "b", "registry: x\n"))
