"""featctl's host-side release and lock bookkeeping, run on a local directory."""

import json
import os
import sqlite3
import subprocess
import time

import pytest

from tests.conftest import agent_command

AGENT, AGENT_ENV = agent_command()


def ops(base, *args, stdin=None, check=True):
    proc = subprocess.run(
        [*AGENT, args[0], "--base", str(base), *args[1:]],
        env=AGENT_ENV,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.returncode


def make_release(base, rid, files, state="ready"):
    ops(base, "prepare", "--id", rid)
    root = base / "releases" / rid
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    ops(base, "finish-upload", "--id", rid, stdin=json.dumps({k: "h" + v for k, v in files.items()}))
    if state == "ready":
        ops(base, "switch", "--id", rid)
    else:
        ops(base, "set", "--id", rid, "--state", state)
    return root


def test_first_release_and_switch(tmp_path):
    st, _ = ops(tmp_path, "state")
    assert st["current"] is None and st["releases"] == []
    make_release(tmp_path, "R1", {"features.py": "a"})
    st, _ = ops(tmp_path, "state")
    assert st["current"] == "R1" and st["manifest"] == {"features.py": "ha"}
    assert os.readlink(tmp_path / "current") == "releases/R1"
    assert st["releases"][0]["state"] == "ready"


def test_prepare_copies_current_without_metadata_and_snapshots_sqlite(tmp_path):
    r1 = make_release(tmp_path, "R1", {"features.py": "a", "data/x.parquet": "p"})
    db = r1 / "data" / "online_store.db"
    with sqlite3.connect(db) as c:
        c.execute("create table t (v)")
        c.execute("insert into t values (42)")
    (r1 / ".featctl" / "server.pid").write_text("1")
    ops(tmp_path, "prepare", "--id", "R2")
    r2 = tmp_path / "releases" / "R2"
    assert (r2 / "features.py").read_text() == "a"
    assert (r2 / "data" / "x.parquet").read_text() == "p"
    with sqlite3.connect(r2 / "data" / "online_store.db") as c:
        assert c.execute("select v from t").fetchall() == [(42,)]
    assert sorted(p.name for p in (r2 / ".featctl").iterdir()) == ["created", "state"]
    assert (r2 / ".featctl" / "state").read_text() == "preparing"
    # The copy is independent of the serving release.
    (r2 / "features.py").write_text("b")
    assert (r1 / "features.py").read_text() == "a"


def test_finish_upload_removes_only_files_featctl_uploaded(tmp_path):
    make_release(tmp_path, "R1", {"a.py": "1", "b.py": "2"})
    r1 = tmp_path / "releases" / "R1"
    (r1 / "data").mkdir()
    (r1 / "data" / "registry.db").write_text("feast state")
    ops(tmp_path, "prepare", "--id", "R2")
    done, _ = ops(tmp_path, "finish-upload", "--id", "R2", stdin=json.dumps({"a.py": "h1"}))
    r2 = tmp_path / "releases" / "R2"
    assert done["removed"] == ["b.py"]
    assert not (r2 / "b.py").exists() and (r2 / "data" / "registry.db").exists()


def test_a_file_written_on_the_host_shows_against_what_was_uploaded(tmp_path):
    """Feast appends offline pushes to a FileSource's file: state reports the
    file's digest as it is now and, apart, what featctl uploaded; a release that
    keeps the host's copy goes on recording the upload."""
    import hashlib

    r1 = make_release(tmp_path, "R1", {"features.py": "a", "data/x.parquet": "p"})
    st, _ = ops(tmp_path, "state")
    assert st["manifest"]["data/x.parquet"] == st["uploaded"]["data/x.parquet"] == "hp"
    time.sleep(0.01)
    (r1 / "data" / "x.parquet").write_text("p + pushed rows")
    pushed = hashlib.sha256(b"p + pushed rows").hexdigest()
    st, _ = ops(tmp_path, "state")
    assert st["manifest"]["data/x.parquet"] == pushed and st["uploaded"]["data/x.parquet"] == "hp"
    ops(tmp_path, "prepare", "--id", "R2")
    doc = {"manifest": {"features.py": "ha", "data/x.parquet": "hp"}, "kept": {"data/x.parquet": pushed}}
    ops(tmp_path, "finish-upload", "--id", "R2", stdin=json.dumps(doc))
    ops(tmp_path, "switch", "--id", "R2")
    st, _ = ops(tmp_path, "state")
    assert (tmp_path / "releases" / "R2" / "data" / "x.parquet").read_text() == "p + pushed rows"
    assert st["manifest"]["data/x.parquet"] == pushed and st["uploaded"]["data/x.parquet"] == "hp"


def test_cleanup_keeps_five_ready_and_current_and_drops_unfinished(tmp_path):
    for i in range(7):
        make_release(tmp_path, f"R{i}", {"f.py": str(i)})
    make_release(tmp_path, "R7", {"f.py": "7"}, state="preparing")
    make_release(tmp_path, "R8", {"f.py": "8"}, state="failed")
    done, _ = ops(tmp_path, "cleanup", "--keep", "5")
    assert sorted(r["id"] for r in done["removed"]) == ["R0", "R1", "R7", "R8"]
    st, _ = ops(tmp_path, "state")
    assert [r["id"] for r in st["releases"]] == ["R2", "R3", "R4", "R5", "R6"]
    assert st["current"] == "R6"


def test_cleanup_stops_the_server_of_an_unfinished_release(tmp_path):
    make_release(tmp_path, "R1", {"f.py": "1"})
    make_release(tmp_path, "R2", {"f.py": "2"}, state="preparing")
    # A detached process (reparented away from us), like a supervised server.
    pid = int(
        subprocess.run(
            ["setsid", "sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True
        ).stdout
    )
    (tmp_path / "releases" / "R2" / ".featctl" / "server.pid").write_text(str(pid))
    ops(tmp_path, "cleanup")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "releases" / "R2").exists()


def test_lock_is_exclusive_and_released_when_the_holder_goes(tmp_path):
    holder = subprocess.Popen(
        [
            *AGENT,
            "lock",
            "--base",
            str(tmp_path),
            "--holder",
            json.dumps({"user": "ann", "pid": 7}),
        ],
        stdin=subprocess.PIPE,
        env=AGENT_ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert "locked" in json.loads(holder.stdout.readline())
    busy, code = ops(tmp_path, "lock", "--holder", "{}", check=False)
    assert code == 3 and busy["busy"]["user"] == "ann"
    st, _ = ops(tmp_path, "state")
    assert st["lock"]["user"] == "ann"
    holder.stdin.close()  # the SSH channel ends
    holder.wait(timeout=10)
    st, _ = ops(tmp_path, "state")
    assert st["lock"] is None


def test_unlock_breaks_a_hung_holder(tmp_path):
    holder = subprocess.Popen(
        [*AGENT, "lock", "--base", str(tmp_path), "--holder", json.dumps({"user": "bob"})],
        stdin=subprocess.PIPE,
        env=AGENT_ENV,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    holder.stdout.readline()
    import threading

    threading.Thread(target=holder.wait, daemon=True).start()  # reap it, as init would
    done, _ = ops(tmp_path, "unlock")
    assert done["unlocked"] and done["holder"]["user"] == "bob"
    assert holder.wait(timeout=10) is not None
    again, _ = ops(tmp_path, "unlock")
    assert again["unlocked"] is False


@pytest.mark.parametrize("cmd", ["switch", "set"])
def test_unknown_release_is_an_error(tmp_path, cmd):
    args = ["--id", "nope"] + (["--state", "failed"] if cmd == "set" else [])
    out, code = ops(tmp_path, cmd, *args, check=False)
    assert code == 1 and "nope" in out["error"]


def test_materialize_once_records_an_error_without_a_release(tmp_path):
    out, _ = ops(tmp_path, "materialize-once", "--every", "60")
    assert out["last_status"] == "error" and "no serving release" in out["last_error"]
    saved = json.loads((tmp_path / "run" / "schedule.json").read_text())
    assert saved["every_seconds"] == 60 and time.strptime(saved["last_run"], "%Y-%m-%dT%H:%M:%SZ")


def test_prepare_copies_a_wal_mode_database_consistently(tmp_path):
    r1 = make_release(tmp_path, "R1", {"f.py": "1"})
    db = r1 / "online.db"
    writer = sqlite3.connect(db)
    writer.execute("pragma journal_mode=wal")
    writer.execute("create table t (v)")
    writer.executemany("insert into t values (?)", [(i,) for i in range(1000)])
    writer.commit()  # rows live in online.db-wal until a checkpoint
    assert (r1 / "online.db-wal").exists()
    ops(tmp_path, "prepare", "--id", "R2")
    r2 = tmp_path / "releases" / "R2"
    assert not (r2 / "online.db-wal").exists()
    with sqlite3.connect(r2 / "online.db") as c:
        assert c.execute("select count(*) from t").fetchone() == (1000,)
    writer.close()
