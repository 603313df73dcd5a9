"""``featctl client-config APP --out DIR``: what an application needs to read
features through the endpoint, as one bundle.

featctl keeps only token hashes, so it cannot hand out an existing token: the
bundle carries a new token for APP (read-only unless ``write``), and an APP
that has one already is refused unless ``replace`` rotates it (the old token
stops working at once).

``files`` (the default)::

    DIR/ca.pem              the deployment's CA (verifies the endpoint)
    DIR/token               the token (0600)
    DIR/registry.db         a read-only snapshot of the serving registry (host 0;
                            a SQL registry too, as a file registry)
    DIR/feature_store.yaml  Feast's remote online store through the endpoint,
                            the token as ``auth: {type: oidc, token: ...}``
                            (0600); ``FeatureStore(repo_path=DIR)`` works as is
    DIR/example.sh          curl, DIR/example.py: requests (the first view)

Feast resolves the registry's path against the repo path but hands
``online_store.cert`` to requests as it is, so the yaml names ca.pem by its
absolute path: a moved DIR needs that line changed (or a new bundle).

``k8s``: ``DIR/ca.pem`` and ``DIR/featctl-<APP>.yaml`` (0600): a Secret with
the token and the CA, a ConfigMap with feature_store.yaml (``token_env_var:
FEATCTL_TOKEN``, the CA at ``/etc/featctl/secret/ca.pem``) and registry.db; mount
the ConfigMap at ``/etc/featctl/repo`` and the Secret at
``/etc/featctl/secret``, set FEATCTL_TOKEN from the Secret's ``token``.

Nothing is half-written: the bundle is built beside DIR and renamed into
place; DIR must not exist or be empty. DIR gets a ``.gitignore`` of ``*``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.lifecycle import endpoint, tokens
from featctl.query.catalog import catalog
from featctl.remote.layout import Layout
from featctl.session import Session
from featctl.workspace import Deployment, write_private

FORMATS = ("files", "k8s")
K8S_REPO = "/etc/featctl/repo"
K8S_SECRET = "/etc/featctl/secret"


@dataclass(frozen=True)
class ClientConfig:
    app: str
    out: Path
    files: list[str]
    scope: str
    expires: str | None
    url: str


def _release_yaml(session: Session, record: Deployment) -> dict[str, Any]:
    import yaml

    conn = session.connection(record)
    remote = posixpath.join(Layout(record.remote_base_dir).current, "feature_store.yaml")
    with conn.sftp.open(remote, "r") as fh:
        data = yaml.safe_load(fh.read())
    if not isinstance(data, dict):
        raise UsageError(f"the serving release's feature_store.yaml on the host is not a mapping: {remote}")
    return data


def _fetch_registry(session: Session, record: Deployment, local: Path) -> None:
    """The serving release's registry as a file registry (``agent/snapshot.py``
    on host 0: a file or a SQL registry alike), copied here over SFTP."""
    import secrets

    from featctl.errors import RemoteCommandError
    from featctl.remote.layout import AGENT_PACKAGE
    from featctl.remote.ssh import q

    conn = session.connection(record)
    layout = session.layout(record)
    remote = posixpath.join(layout.tmp, f"registry-{secrets.token_hex(8)}.db")
    command = (
        f"mkdir -p {q(layout.tmp)} && "
        f"{layout.agent_shell(module=f'{AGENT_PACKAGE}.snapshot')} {q(layout.current)} {q(remote)}"
    )
    try:
        result = conn.run(command, timeout=300, check=False)
        if result.exit_status != 0:
            try:
                why = json.loads(result.text.strip().splitlines()[-1])["error"]
            except (ValueError, KeyError, IndexError, TypeError):
                why = result.last_error_line()
            raise RemoteCommandError(f"cannot read the serving registry on the host: {why}")
        conn.get_file(remote, local)
    finally:
        conn.run(f"rm -f {q(remote)} {q(remote + '.tmp')}", timeout=60, check=False)


def _example_request(record: Deployment) -> tuple[list[str], dict[str, list[Any]]]:
    """The deployment's first view: its features and one entity (the health probe's when known)."""
    cat = catalog(record)
    views = cat.desc.get("feature_views", [])
    if not views:
        return [], {cat.join_key(): [1001]}
    first = views[0]
    refs = [f"{first['name']}:{f['name']}" for f in first.get("features", [])]
    probe = ((record.probe or {}).get("views") or {}).get(first["name"]) or {}
    entity = probe.get("entity")
    if not entity:
        keys = [k["name"] for k in first.get("join_keys", [])] or [cat.join_key()]
        types = cat.join_key_types()
        entity = {k: (1001 if types.get(k, "Int64").startswith("Int") else "1001") for k in keys}
    return refs, {k: [v] for k, v in entity.items()}


def _store_yaml(data: dict[str, Any], url: str, cert: str, auth: dict[str, str], registry: str) -> str:
    import yaml

    doc = {
        "project": data.get("project"),
        "provider": "local",
        "registry": {"path": registry, "cache_ttl_seconds": 0},
        "online_store": {"type": "remote", "path": url, "cert": cert},
        "auth": {"type": "oidc", **auth},
        "entity_key_serialization_version": data.get("entity_key_serialization_version", 3),
    }
    head = "# Written by `featctl client-config`: reads features through featctl's endpoint.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def _example_sh(url: str, body: str) -> str:
    return f"""#!/bin/sh
# Reads the deployment's first view through the endpoint (written by featctl client-config).
set -eu
cd "$(dirname "$0")"
curl --fail --silent --show-error --max-time 10 --cacert ca.pem \\
  -H "Authorization: Bearer $(cat token)" -H 'Content-Type: application/json' \\
  --data '{body}' \\
  {url}/get-online-features
echo
"""


def _example_py(url: str, body: str) -> str:
    return f'''"""Reads the deployment's first view through the endpoint (written by featctl client-config)."""

import json
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
TOKEN = (HERE / "token").read_text().strip()

response = requests.post(
    "{url}/get-online-features",
    json={body},
    headers={{"Authorization": f"Bearer {{TOKEN}}"}},
    verify=str(HERE / "ca.pem"),
    timeout=10,
)
response.raise_for_status()
print(json.dumps(response.json(), indent=2))
'''


def _k8s(app: str, token: str, ca: str, store_yaml: str, registry: bytes) -> str:
    import yaml

    name = f"featctl-{app.lower().replace('_', '-').replace('.', '-')}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {"token": token, "ca.pem": ca},
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"feature_store.yaml": store_yaml},
        "binaryData": {"registry.db": base64.b64encode(registry).decode()},
    }
    head = (
        f"# Mount the ConfigMap at {K8S_REPO} and the Secret at {K8S_SECRET}; set FEATCTL_TOKEN from the\n"
        f"# Secret's token; then FeatureStore(repo_path='{K8S_REPO}'). Holds a token: keep it out of git.\n"
    )
    return head + yaml.safe_dump_all([secret, config], sort_keys=False)


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty directory", hint="choose a new directory")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: its parent directory does not exist")


def client_config(
    session: Session,
    app: str,
    out: Path,
    *,
    fmt: str = "files",
    write: bool = False,
    expires_in: int | None = None,
    replace: bool = False,
) -> ClientConfig:
    tokens.check_app(app)
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = out.expanduser().absolute()
    _prepare_out(out)
    ep = endpoint.status(session)  # refuses when the endpoint is off; starts a dead HAProxy
    record = session.deployment()
    root = session.settings.workspace
    if not replace and any(r.name == app for r in tokens.load(root)):
        raise UsageError(
            f"application {app!r} has a token already and featctl keeps only its hash",
            hint="pass --replace to rotate it into this bundle, or `featctl token revoke` it",
        )
    release = _release_yaml(session, record)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        os.chmod(tmp, 0o700)
        _fetch_registry(session, record, tmp / "registry.db")
        os.chmod(tmp / "registry.db", 0o644)
        ca = Path(ep.ca_file).read_text()
        (tmp / "ca.pem").write_text(ca)
        refs, entities = _example_request(record)
        body = json.dumps({"features": refs, "entities": entities})
        edges = endpoint.token_edges(session)
        new = tokens.create(root, app, write=write, expires_in=expires_in, replace=replace, edges=edges)
        try:
            if fmt == "files":
                auth = {"token": new.token}
                write_private(tmp / "token", new.token + "\n")
                write_private(tmp / "feature_store.yaml", _store_yaml(release, ep.url, str(out / "ca.pem"), auth, "registry.db"))
                (tmp / "example.sh").write_text(_example_sh(ep.url, body))
                os.chmod(tmp / "example.sh", 0o755)
                (tmp / "example.py").write_text(_example_py(ep.url, body))
            else:
                store = _store_yaml(
                    release, ep.url, f"{K8S_SECRET}/ca.pem", {"token_env_var": "FEATCTL_TOKEN"}, "registry.db"
                )
                registry = (tmp / "registry.db").read_bytes()
                (tmp / "registry.db").unlink()
                write_private(tmp / f"featctl-{app}.yaml", _k8s(app, new.token, ca, store, registry))
            (tmp / ".gitignore").write_text("# featctl client-config: holds a token. Never commit.\n*\n")
            if out.exists():
                out.rmdir()
            tmp.replace(out)
        except BaseException:
            with contextlib.suppress(Exception):
                tokens.put_back(root, new, edges)  # nothing half-done: a replaced token works again
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ClientConfig(
        app=app,
        out=out,
        files=sorted(p.name for p in out.iterdir() if p.name != ".gitignore"),
        scope=new.record.scope,
        expires=new.record.expires,
        url=ep.url,
    )
