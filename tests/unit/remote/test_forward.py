"""Who is on the other end of a forward's loopback connection (peer_uid)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from featctl.remote import forward

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp6"), reason="needs Linux's /proc/net/tcp6")


def _accepted(family: int, address: str) -> tuple[socket.socket, socket.socket, socket.socket]:
    server = forward.listen(0)
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect((address, server.getsockname()[1]))
    accepted, _ = server.accept()
    return server, client, accepted


@pytest.mark.parametrize(
    ("family", "address"),
    [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::ffff:127.0.0.1")],
    ids=["ipv4", "dual-stack (gRPC's clients)"],
)
def test_the_peer_of_a_loopback_connection_is_this_account(family, address):
    socks = _accepted(family, address)
    try:
        assert forward.peer_uid(socks[2]) == os.geteuid()
        assert forward.same_user(socks[2])
    finally:
        for s in socks:
            s.close()


def test_the_peer_row_decides_not_ours(tmp_path: Path):
    """The row of the peer's socket (local = peer, remote = us) gives the uid; the
    accepted socket's own row (ours) must not be taken for it."""
    server, client, accepted = _accepted(socket.AF_INET, "127.0.0.1")
    try:
        peer, me = forward._tcp_hex(accepted.getpeername()), forward._tcp_hex(accepted.getsockname())
        table = tmp_path / "tcp"
        header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        ours = f"   0: {me} {peer} 01 00000000:00000000 00:00000000 00000000     0        0 1\n"
        theirs = f"   1: {peer} {me} 01 00000000:00000000 00:00000000 00000000  1234        0 2\n"
        table.write_text(header + ours + theirs)
        assert forward.peer_uid(accepted, ((str(table), forward._tcp_hex),)) == 1234
        table.write_text(header + ours)  # the peer's row is gone: unknown, never ours
        assert forward.peer_uid(accepted, ((str(table), forward._tcp_hex),)) is None
    finally:
        for s in (server, client, accepted):
            s.close()


def test_tcp6_form_of_an_ipv4_address():
    assert forward._tcp6_hex(("127.0.0.1", 0x1F90)) == "0000000000000000FFFF00000100007F:1F90"
