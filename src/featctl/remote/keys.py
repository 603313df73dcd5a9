"""SSH key material: generation, fingerprints and known_hosts pins.

featctl generates both the client key it logs in with and the host's own key,
hands the host key to the Terraform stack, and pins its public half before the
first connection, so no unknown host key is ever trusted.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from featctl.errors import UsageError
from featctl.workspace import write_private


def generate_ed25519(private_path: Path, comment: str) -> str:
    """Create an Ed25519 key pair (private file 0600) unless one exists; return the public line."""
    pub_path = private_path.with_suffix(".pub")
    if private_path.exists() and pub_path.exists():
        return pub_path.read_text().strip()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    write_private(private_path, private)
    write_private(pub_path, line + "\n")
    return line


def parse_public_line(line: str) -> tuple[str, bytes]:
    """Split an OpenSSH public key line into (key type, blob)."""
    parts = line.split()
    if len(parts) < 2:
        raise UsageError(f"not an OpenSSH public key: {line[:40]!r}")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise UsageError(f"not an OpenSSH public key: {line[:40]!r}") from None
    return parts[0], blob


def fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line, e.g. ``SHA256:abc...``."""
    _, blob = parse_public_line(public_line)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def pinned_key(known_hosts: Path, host: str, port: int) -> str | None:
    """The pinned key for host:port as ``type base64``, or None."""
    name = known_hosts_name(host, port)
    try:
        for line in known_hosts.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == name:
                return f"{parts[1]} {parts[2]}"
    except OSError:
        return None
    return None


def pin_host_key(known_hosts: Path, host: str, port: int, public_line: str) -> None:
    """Make ``public_line`` the one trusted key for host:port (replacing older pins)."""
    name = known_hosts_name(host, port)
    keytype, blob = parse_public_line(public_line)
    kept = []
    if known_hosts.exists():
        kept = [line for line in known_hosts.read_text().splitlines() if line.strip() and line.split()[0] != name]
    kept.append(f"{name} {keytype} {base64.b64encode(blob).decode()}")
    write_private(known_hosts, "\n".join(kept) + "\n")
