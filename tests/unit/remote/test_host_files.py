"""Host-side pieces that need no host: the manifest, unit files, the server command, ports."""

import hashlib
from datetime import datetime, timezone

from featctl import FEAST_VERSION
from featctl.lifecycle.deploy import choose_server_ports
from featctl.remote.layout import Layout
from featctl.remote.releases import new_release_id
from featctl.remote.schedule import loop_argv
from featctl.remote.service import server_command
from featctl.repo.bundle import build


def local_manifest(repo):
    if not (repo / "feature_store.yaml").exists():
        (repo / "feature_store.yaml").write_text("project: p\n")
    manifest = build(repo).manifest
    manifest.pop("feature_store.yaml")
    return manifest


def test_manifest_skips_feast_state_and_caches(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / ".featctl").mkdir()
    (tmp_path / "features.py").write_text("x = 1\n")
    (tmp_path / "data" / "driver_stats.parquet").write_bytes(b"PAR1")
    (tmp_path / "data" / "registry.db").write_bytes(b"state")
    (tmp_path / "data" / "online_store.db").write_bytes(b"state")
    (tmp_path / "data" / "x.parquet.tmp").write_bytes(b"half")
    (tmp_path / "__pycache__" / "features.cpython-311.pyc").write_bytes(b"")
    (tmp_path / ".featctl" / "state").write_text("ready")
    manifest = local_manifest(tmp_path)
    assert sorted(manifest) == ["data/driver_stats.parquet", "features.py"]
    assert manifest["features.py"] == hashlib.sha256(b"x = 1\n").hexdigest()


def test_manifest_changes_with_content(tmp_path):
    (tmp_path / "a.py").write_text("1")
    first = local_manifest(tmp_path)
    (tmp_path / "a.py").write_text("2")
    assert local_manifest(tmp_path)["a.py"] != first["a.py"]


def test_release_ids_sort_in_time_order():
    a = new_release_id(datetime(2026, 11, 26, 5, 0, 0, 1000, tzinfo=timezone.utc))
    b = new_release_id(datetime(2026, 11, 26, 5, 0, 0, 2000, tzinfo=timezone.utc))
    c = new_release_id(datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert a == "20261126T050000001Z"
    assert sorted([c, b, a]) == [a, b, c]


def test_server_binds_its_unix_socket_and_never_recycles_workers():
    cmd = server_command(Layout("/opt/featctl"), "R1", 6566, 2)
    # On the Unix socket of slot 6566, never on TCP (agent/feast_cli.py binds it).
    # Feast's own CLI through featctl's wrapper (stores' variables, fixes for Feast).
    python = f"/opt/featctl/envs/feast-{FEAST_VERSION}/bin/python"
    assert cmd[: cmd.index("serve")] == [
        "/usr/bin/env",
        "PYTHONPATH=/opt/featctl/agent",
        "FEATCTL_ENV_FILE=/opt/featctl/run/stores.env",
        "FEATCTL_BIND=/opt/featctl/run/s/6566",
        python,
        "-m",
        "featctl_agent.feast_cli",
    ]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"  # ignored: FEATCTL_BIND replaces it
    assert cmd[cmd.index("--port") + 1] == "6566"
    assert cmd[cmd.index("--workers") + 1] == "2"
    assert cmd[cmd.index("--max-requests") + 1] == "0"


def test_schedule_runs_the_agent_with_the_hosts_python3():
    from featctl.remote.layout import DEFAULT_ENV

    argv = loop_argv(Layout("/opt/featctl"), 3600, "materialize-once", 500)
    assert argv == [
        "/usr/bin/env",
        "PYTHONPATH=/opt/featctl/agent",
        "FEATCTL_ENV_FILE=/opt/featctl/run/stores.env",
        "python3",
        "-m",
        "featctl_agent",
        "materialize-once",
        "--base",
        "/opt/featctl",
        "--every",
        "3600",
        # a release that names no Feast environment verifies in the default one
        "--default-env",
        DEFAULT_ENV,
        "--verify-sample",
        "500",
    ]


def test_server_port_choice():
    assert choose_server_ports("yandex", 6566, "default", None) == [6566, 6567]
    assert choose_server_ports("local", 7000, "featctl.toml", [6000, 6001]) == [7000, 7001]
    assert choose_server_ports("local", 6566, "default", [6001, 6002]) == [6001, 6002]
    fresh = choose_server_ports("local", 6566, "default", None)
    assert len(set(fresh)) == 2 and all(1024 <= p <= 65535 for p in fresh)
