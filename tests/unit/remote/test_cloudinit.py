"""Waiting for cloud-init's final stage, against a fake connection that answers
as `cloud-init status --wait --long` would."""

import pytest

from featctl.errors import RemoteCommandError
from featctl.remote.cloudinit import wait_for_cloud_init
from featctl.remote.ssh import Result

ABSENT = b"featctl: no cloud-init\n"
DONE = (
    b"....\nstatus: done\nextended_status: done\nboot_status_code: enabled-by-generator\n"
    b"detail: DataSourceYandex\nerrors: []\nrecoverable_errors: {}\n"
)
DEGRADED = (
    b"..\nstatus: done\nextended_status: degraded done\nboot_status_code: enabled-by-generator\n"
    b"detail: DataSourceYandex\nerrors: []\nrecoverable_errors:\nWARNING:\n\t- Unknown key apt_reboot\n"
)
FAILED = (
    b"...\nstatus: error\nextended_status: error - done\nboot_status_code: enabled-by-generator\n"
    b"detail: DataSourceYandex\nerrors:\n\t- ('package_update_upgrade_install', RuntimeError('apt failed'))\n"
    b"\t- ('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))\n"
    b"recoverable_errors: {}\n"
)


class FakeConnection:
    """Records each command and answers with one canned result."""

    def __init__(self, exit_status=0, stdout=b"", stderr=b"", raises=None):
        self.answer = (exit_status, stdout, stderr)
        self.raises = raises
        self.calls = []

    def run(self, command, *, timeout=600.0, check=True, stdin=None, on_line=None):
        self.calls.append({"command": command, "timeout": timeout, "check": check})
        if self.raises is not None:
            raise self.raises
        return Result(command, *self.answer)


def test_no_cloud_init_means_nothing_to_wait_for():
    conn = FakeConnection(0, ABSENT)
    assert wait_for_cloud_init(conn) is None


def test_command_waits_bounded_on_both_sides_and_never_checks():
    conn = FakeConnection(0, DONE)
    wait_for_cloud_init(conn, timeout=300)
    [call] = conn.calls
    assert "cloud-init status --wait" in call["command"]
    assert "command -v cloud-init" in call["command"]
    assert "[ ! -d /run/cloud-init ]" in call["command"]  # installed but not run on this boot: skip
    assert "timeout 300 cloud-init status --wait" in call["command"]
    assert call["timeout"] > 300
    assert call["check"] is False


def test_done_returns_the_status():
    assert wait_for_cloud_init(FakeConnection(0, DONE)) == "done"


def test_old_cloud_init_without_extended_status():
    assert wait_for_cloud_init(FakeConnection(0, b"...\nstatus: done\ntime: Mon, 01 Jan\ndetail:\n")) == "done"


def test_degraded_is_accepted_and_says_so():
    assert wait_for_cloud_init(FakeConnection(2, DEGRADED)) == "degraded done"


def test_host_side_timeout():
    with pytest.raises(RemoteCommandError) as info:
        wait_for_cloud_init(FakeConnection(124, b"........"), timeout=90)
    assert str(info.value) == (
        "cloud-init on the host did not finish within 90 s (still running: packages or runcmd); "
        "see /var/log/cloud-init-output.log on the host"
    )


def test_ssh_side_timeout_reads_the_same():
    conn = FakeConnection(raises=RemoteCommandError("command timed out after 930 s on u@h:22: ..."))
    with pytest.raises(RemoteCommandError, match=r"^cloud-init on the host did not finish within 900 s "):
        wait_for_cloud_init(conn)


def test_failure_names_the_last_error():
    with pytest.raises(RemoteCommandError) as info:
        wait_for_cloud_init(FakeConnection(1, FAILED))
    assert str(info.value) == (
        "cloud-init on the host failed: ('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) "
        "in 1 attempted commands')); see /var/log/cloud-init-output.log"
    )
    assert "\n" not in str(info.value)


def test_failure_of_cloud_init_itself_names_its_stderr():
    conn = FakeConnection(1, b"", b"Traceback (most recent call last):\n  ...\nPermissionError: status.json\n")
    with pytest.raises(RemoteCommandError) as info:
        wait_for_cloud_init(conn)
    assert str(info.value) == (
        "cloud-init on the host failed: PermissionError: status.json; see /var/log/cloud-init-output.log"
    )


def test_other_exit_status_is_a_failure():
    with pytest.raises(RemoteCommandError, match=r"^cloud-init on the host failed: exit status 137; see "):
        wait_for_cloud_init(FakeConnection(137))
