"""The endpoint's certificate: signed by the deployment's CA, the right names, 0600."""

from __future__ import annotations

import ipaddress

from cryptography import x509

from featctl.provision import tls
from featctl.workspace import Workspace


def sans(path):
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v.value) for v in ext], cert


def test_names():
    assert tls.endpoint_names("127.0.0.1", ["edge.test"]) == ["127.0.0.1", "edge.test", "localhost"]
    assert tls.endpoint_names("198.18.7.1", ["edge.test", "198.18.7.1"]) == ["198.18.7.1", "edge.test"]


def test_signed_by_the_deployments_ca_and_kept(tmp_path):
    ws = Workspace(tmp_path / "ws")
    stores = tls.ensure_store_tls(ws, ["127.0.0.1"])
    dest = tmp_path / "endpoint"
    first = tls.ensure_endpoint_cert(ws, ["198.18.7.1", "edge.test"], dest)
    assert first["ca_pem"].endswith(".pem")
    assert (dest / "ca.pem").read_bytes() == (tmp_path / "ws" / "tls" / "ca.crt").read_bytes()
    names, cert = sans(dest / "edge.pem")
    assert names == [str(ipaddress.ip_address("198.18.7.1")), "edge.test"]
    ca = x509.load_pem_x509_certificate((dest / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" in (dest / "edge.pem").read_bytes()
    for name in ("edge.pem", "ca.pem"):
        assert (dest / name).stat().st_mode & 0o777 == 0o600
    assert tls.ensure_endpoint_cert(ws, ["198.18.7.1", "edge.test"], dest) == first
    assert tls.ensure_store_tls(ws, ["127.0.0.1"]) == stores  # the stores' certificate is untouched
    again = tls.ensure_endpoint_cert(ws, ["198.18.7.1"], dest)
    assert again["digest"] != first["digest"] and sans(dest / "edge.pem")[0] == ["198.18.7.1"]
