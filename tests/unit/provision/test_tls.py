"""The local stores' CA and server certificate: made once, 0600, valid for the
names the hosts use, checked by the same TLS stack Python's clients use."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from featctl.provision.tls import ensure_store_tls
from featctl.workspace import Workspace


def test_files_are_private_and_kept(tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = ensure_store_tls(ws, ["127.0.0.1", "localhost"])
    for key in ("ca_cert", "server_cert", "server_key"):
        path = Path(first[key])
        assert path.parent == ws.tls_dir and path.stat().st_mode & 0o777 == 0o600
    assert (ws.tls_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    before = {p.name: p.read_bytes() for p in ws.tls_dir.iterdir()}
    assert ensure_store_tls(ws, ["127.0.0.1", "localhost"]) == first
    assert {p.name: p.read_bytes() for p in ws.tls_dir.iterdir()} == before


def test_new_names_make_a_new_server_certificate_under_the_same_ca(tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = ensure_store_tls(ws, ["127.0.0.1", "localhost"])
    ca = Path(first["ca_cert"]).read_bytes()
    second = ensure_store_tls(ws, ["127.0.0.2", "localhost"])
    assert Path(second["ca_cert"]).read_bytes() == ca
    assert second["digest"] != first["digest"]
    # A damaged key is replaced rather than trusted.
    Path(second["server_key"]).write_text("garbage")
    third = ensure_store_tls(ws, ["127.0.0.2", "localhost"])
    assert third["digest"] != second["digest"]


def _handshake(tls: dict[str, str], server_name: str, cafile: str | None) -> None:
    """A TLS server with the generated certificate; a client that verifies it
    the way redis-py does (CERT_REQUIRED, check_hostname)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tls["server_cert"], tls["server_key"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client_ctx = ssl.create_default_context(cafile=cafile)
    # Python 3.13's default; OpenSSL then insists on well-formed extensions.
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_name) as s,
        ):
            s.sendall(b"x")
    finally:
        listener.close()
        t.join(timeout=5)


def test_clients_verify_the_server_by_address_and_name_with_the_ca_only(tmp_path):
    tls = ensure_store_tls(Workspace(tmp_path / "ws"), ["127.0.0.1", "localhost"])
    _handshake(tls, "127.0.0.1", tls["ca_cert"])
    _handshake(tls, "localhost", tls["ca_cert"])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|match"):
        _handshake(tls, "127.0.0.2", tls["ca_cert"])
    # The system's store does not hold featctl's CA: a client must be given it.
    with pytest.raises(ssl.SSLCertVerificationError, match=r"unable to get local issuer|self.signed"):
        _handshake(tls, "127.0.0.1", None)
