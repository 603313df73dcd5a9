"""Host-side pieces that need no host: the manifest, the unit file, the server command."""

import hashlib

from featctl import FEAST_VERSION
from featctl.remote.host import Layout, local_manifest, server_command, systemd_unit


def test_manifest_skips_feast_state_and_caches(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "features.py").write_text("x = 1\n")
    (tmp_path / "data" / "driver_stats.parquet").write_bytes(b"PAR1")
    (tmp_path / "data" / "registry.db").write_bytes(b"state")
    (tmp_path / "data" / "online_store.db").write_bytes(b"state")
    (tmp_path / "__pycache__" / "features.cpython-311.pyc").write_bytes(b"")
    manifest = local_manifest(tmp_path)
    assert sorted(manifest) == ["data/driver_stats.parquet", "features.py"]
    assert manifest["features.py"] == hashlib.sha256(b"x = 1\n").hexdigest()


def test_manifest_changes_with_content(tmp_path):
    (tmp_path / "a.py").write_text("1")
    first = local_manifest(tmp_path)
    (tmp_path / "a.py").write_text("2")
    assert local_manifest(tmp_path)["a.py"] != first["a.py"]


def test_server_binds_loopback_only_and_never_recycles_workers():
    cmd = server_command(Layout("/opt/featctl"), 6566, 2)
    assert cmd[0] == f"/opt/featctl/envs/feast-{FEAST_VERSION}/bin/feast"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--workers") + 1] == "2"
    assert cmd[cmd.index("--max-requests") + 1] == "0"


def test_systemd_unit():
    layout = Layout("/opt/featctl")
    unit = systemd_unit(layout, "featctl", server_command(layout, 6566, 1))
    assert "User=featctl" in unit
    assert "WorkingDirectory=/opt/featctl/repo" in unit
    assert "Restart=always" in unit
    assert "ExecStart=/opt/featctl/envs/feast-" in unit and "--host 127.0.0.1" in unit
    assert "StandardOutput=append:/opt/featctl/run/server.log" in unit


def test_server_port_choice():
    from featctl.deploy import choose_server_port

    assert choose_server_port("yandex", 6566, "default", None) == 6566
    assert choose_server_port("local", 7000, "featctl.toml", 6000) == 7000
    assert choose_server_port("local", 6566, "default", 6001) == 6001
    fresh = choose_server_port("local", 6566, "default", None)
    assert 1024 <= fresh <= 65535
