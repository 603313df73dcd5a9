"""What a new release takes from this machine and what it keeps of the host's:
a data file Feast changed on the host (offline pushes) is never overwritten
silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from featctl.remote.releases import HostState, conflict_message, file_plan
from featctl.repo.bundle import Bundle


def bundle(**files: str) -> Bundle:
    return Bundle(repo=Path("."), manifest=dict(files))


def host(now: dict[str, str], uploaded: dict[str, str] | None = None) -> HostState:
    return HostState(current="r1", releases=[], manifest=now, lock=None, uploaded=uploaded or dict(now))


def test_unchanged_files_upload_nothing_and_changed_ones_upload():
    plan = file_plan(bundle(a="1", b="2", c="3"), host({"a": "1", "b": "0", "old": "9"}))
    assert plan.upload == ["b", "c"] and plan.remove == ["old"] and not plan.kept
    assert plan.manifest == {"a": "1", "b": "2", "c": "3"}


def test_a_file_the_host_changed_is_kept_when_unchanged_here():
    plan = file_plan(bundle(data="L"), host({"data": "pushed"}, {"data": "L"}))
    assert plan.upload == [] and plan.kept == ["data"] and plan.conflicts == []
    assert not plan.changes
    # the new release goes on recording what featctl uploaded, and the host's digest
    assert plan.manifest == {"data": "L"} and plan.kept_digests == {"data": "pushed"}


@pytest.mark.parametrize("policy", ["ask", "keep"])
def test_changed_on_both_sides_is_a_conflict_unless_overwritten(policy):
    plan = file_plan(bundle(data="L2"), host({"data": "pushed"}, {"data": "L1"}), policy)
    assert plan.kept == ["data"] and plan.conflicts == ["data"] and plan.upload == []
    assert plan.manifest == {"data": "L1"}
    assert "--keep-host-data" in conflict_message(plan) and "data changed on the host" in conflict_message(plan)


def test_overwrite_takes_this_machines_copy():
    for here in ("L1", "L2"):
        plan = file_plan(bundle(data=here), host({"data": "pushed"}, {"data": "L1"}), "overwrite")
        assert plan.upload == ["data"] and plan.kept == [] and plan.manifest == {"data": here}


def test_a_vanished_file_is_uploaded_again():
    assert file_plan(bundle(a="1"), host({}, {"a": "1"})).upload == ["a"]
