"""Keys, host-key pins and the workspace's secrets."""

import os
import stat

import pytest

from featctl.errors import UsageError
from featctl.remote.keys import fingerprint, generate_ed25519, known_hosts_name, pin_host_key
from featctl.workspace import Deployment, Workspace, write_private


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generated_keys_are_private_and_stable(tmp_path):
    key = tmp_path / "keys" / "client_ed25519"
    line = generate_ed25519(key, "c@x")
    assert line.startswith("ssh-ed25519 ") and line.endswith(" c@x")
    assert mode(key) == 0o600 and mode(key.with_suffix(".pub")) == 0o600
    assert mode(key.parent) == 0o700
    assert b"PRIVATE KEY" in key.read_bytes()
    # A second call keeps the key (a redeploy must not change identities).
    assert generate_ed25519(key, "c@x") == line


def test_fingerprint_matches_openssh(tmp_path):
    import subprocess

    key = tmp_path / "k"
    line = generate_ed25519(key, "c")
    got = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))], capture_output=True, text=True)
    if got.returncode != 0:
        pytest.skip("ssh-keygen not available")
    assert got.stdout.split()[1] == fingerprint(line)


def test_pin_replaces_old_pin_for_same_host(tmp_path):
    kh = tmp_path / "known_hosts"
    a = generate_ed25519(tmp_path / "a", "a")
    b = generate_ed25519(tmp_path / "b", "b")
    pin_host_key(kh, "127.0.0.1", 2222, a)
    pin_host_key(kh, "10.0.0.1", 22, a)
    pin_host_key(kh, "127.0.0.1", 2222, b)
    lines = kh.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("10.0.0.1 ssh-ed25519 ")
    assert lines[1] == f"[127.0.0.1]:2222 {' '.join(b.split()[:2])}"
    assert mode(kh) == 0o600
    assert known_hosts_name("h", 22) == "h"


def test_bad_public_line():
    with pytest.raises(UsageError):
        fingerprint("ssh-ed25519 !!!notbase64")


def test_write_private_is_atomic_and_0600(tmp_path):
    p = tmp_path / "secret"
    write_private(p, "x")
    write_private(p, "y")
    assert p.read_text() == "y" and mode(p) == 0o600
    assert [f.name for f in tmp_path.iterdir()] == ["secret"]


def test_workspace_record_roundtrip_and_gitignore(tmp_path):
    ws = Workspace(tmp_path / ".featctl")
    assert ws.load() is None
    ws.save(Deployment(target="local", name="n", host="127.0.0.1", port=2222))
    assert ws.load().port == 2222
    assert mode(ws.record_path) == 0o600
    assert (ws.root / ".gitignore").read_text().strip().endswith("*")


def test_damaged_record_is_reported(tmp_path):
    from featctl.errors import FeatctlError

    ws = Workspace(tmp_path)
    ws.record_path.write_text("{not json")
    with pytest.raises(FeatctlError, match="damaged"):
        ws.load()


def test_lock_refuses_a_second_holder(tmp_path):
    ws = Workspace(tmp_path / "w")
    with ws.lock(), pytest.raises(UsageError, match="another featctl command"), ws.lock():
        pass
