"""Settings from one place, with visible precedence.

A value comes from the command-line flag, else the ``FEATCTL_*`` environment
variable, else ``featctl.toml`` (in the current directory, or the file named by
``--config`` / ``FEATCTL_CONFIG``), else the default. ``Settings.sources``
records where each value came from, so ``featctl status`` can show it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featctl.errors import ConfigError

TARGETS = ("local", "yandex", "vm", "ssh")
#: Targets whose hosts share this machine's loopback (their servers take free
#: ports). The vm guests have a network of their own (terraform/vm/network.tf).
LOOPBACK_TARGETS = ("local",)
#: Targets whose hosts are processes on this machine that Terraform restarts
#: when they died (a reboot): the local sshd, the vm guests, the stores.
PROCESS_TARGETS = ("local", "vm")
STORES = ("redis", "postgres", "spark")
SPARK_STALL = 45.0  # [spark] stall_seconds' default (agent/watch.py's DEFAULT_STALL on the host)
DEFAULT_CONFIG_FILE = "featctl.toml"
#: [endpoint] keys (types are checked by _parse_endpoint).
ENDPOINT_KEYS = ("listen", "port", "allow", "max_body", "timeout", "names", "health_port")
#: Tables of featctl.toml besides the per-target ones: [score], [host], [materialize], [spark] and [endpoint].
TABLES: dict[str, dict[str, type]] = {
    "score": {"view": str},
    "host": {"requirements": list},
    "materialize": {"skip": list},
    "spark": {"driver_memory": str, "stall_seconds": object},
    "endpoint": {key: object for key in ENDPOINT_KEYS},
}

# name -> (default, parser). Every key here may be set in featctl.toml, as
# FEATCTL_<NAME> in the environment, or by the matching flag.
_DEFAULTS: dict[str, Any] = {
    "repo": "feature_repo",
    "workspace": ".featctl",
    "target": "local",
    "name": "featctl",
    "server_port": 6566,
    # Two gunicorn workers: measured 2.8 vs 3.5 ms p50 and 2x throughput on 2 cores (bench/RESULTS.md).
    "server_workers": 2,
    "ssh_wait_seconds": 120.0,
    "command_timeout": 1800.0,
    # Shared stores the deployment runs on (Terraform starts them): redis, postgres, spark.
    "stores": (),
    # Serving hosts (needs shared stores when more than one).
    "hosts": 1,
}

#: One line per setting for the configuration reference (scripts/gen-docs writes
#: docs/reference/config.md from this, _DEFAULTS and TABLES): the keys of
#: _DEFAULTS, "<table>.<key>" for TABLES, and the [ssh] table's keys.
DESCRIPTIONS: dict[str, str] = {
    "repo": "The Feast feature repository to deploy or query.",
    "workspace": "featctl's state for the deployment: record, keys, pinned host keys, Terraform state (0700).",
    "target": "Where the hosts come from: local (an sshd on loopback), yandex (Yandex Cloud VMs), "
    "vm (Debian guests with systemd and cloud-init on this machine) or ssh (an existing machine).",
    "name": "Deployment name, used to name cloud resources: a-z, 0-9 and '-', starting with a letter.",
    "server_port": "Feature server port on the host's loopback (the next release takes the other blue/green port).",
    "server_workers": "Feature server worker processes (gunicorn).",
    "ssh_wait_seconds": "How long deploy waits for SSH to answer.",
    "command_timeout": "Limit in seconds for one remote command (install, apply, retrieval).",
    "stores": "Shared stores Terraform runs next to the hosts: redis, postgres and/or spark "
    "(--stores redis,postgres). Empty: sqlite, a file registry and parquet files on the host's disk.",
    "hosts": "Serving hosts (1-9); more than one needs shared stores.",
    "score.view": "The on-demand view `featctl score` uses (else the one whose request fields are <feature>_coef).",
    "host.requirements": "Extra pip requirements for the host's Feast environment, "
    'e.g. ["scikit-learn==1.5.2"].',
    "materialize.skip": "Feature views deploy and `featctl materialize` leave out: views Feast cannot "
    'materialize (e.g. a stream view with a Spark transformation), e.g. ["driver_stream"].',
    "spark.driver_memory": "Spark's driver heap on the host (e.g. \"6g\", at least 512m); default: half the host's "
    "memory, at least 1g. A spark.driver.memory in the repository's own spark_conf wins.",
    "spark.stall_seconds": "A Spark job whose processes use almost no CPU this long is stopped (exit 10) with "
    "everything it started; default 45.",
    "endpoint.listen": "The address applications connect to (an IP of this machine on the local target; not 0.0.0.0).",
    "endpoint.port": "The endpoint's TCP port (HTTPS).",
    "endpoint.allow": "Networks (CIDRs) that may connect; default: the deployment's own network (local target: 127.0.0.0/8).",
    "endpoint.max_body": "Largest request body in bytes; larger ones get 413 before any body is read.",
    "endpoint.timeout": "Seconds a feature server may take per request (then 504); a hung server is out within 3 s.",
    "endpoint.names": "Extra subject alternative names (DNS names or IPs) of the endpoint's certificate.",
    "endpoint.health_port": "A plain-HTTP port answering GET /healthz (200 while a backend is up): a cloud load balancer's check.",
    "ssh.host": "ssh target: user@host[:port] of an existing machine (--host).",
    "ssh.identity": "ssh target: private key to log in with (--identity); default: ssh-agent, ~/.ssh.",
    "ssh.host_key_fingerprint": "ssh target: the host key's SHA256:... fingerprint, required on the first "
    "connection unless confirmed on a terminal (--host-key-fingerprint).",
    "ssh.remote_base_dir": "ssh target: the directory on the host that holds the deployment (default ~/featctl).",
}


def _parse_int(name: str, raw: Any) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    return value


def _parse_float(name: str, raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _parse_target(_name: str, raw: Any) -> str:
    value = str(raw).strip().lower()
    if value not in TARGETS:
        raise ConfigError(f"unknown target {raw!r}: choose one of {', '.join(TARGETS)}")
    return value


def _parse_stores(name: str, raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{name} must be a list such as [\"redis\", \"postgres\"], got {raw!r}")
    out: list[str] = []
    for item in items:
        value = str(item).strip().lower()
        if not value:
            continue
        if value not in STORES:
            raise ConfigError(f"unknown store {item!r} in {name}: choose from {', '.join(STORES)}")
        if value not in out:
            out.append(value)
    return tuple(out)


def _parse_hosts(name: str, raw: Any) -> int:
    value = _parse_int(name, raw)
    if not 1 <= value <= 9:
        raise ConfigError(f"{name} must be between 1 and 9, got {value}")
    return value


def _parse_name(_name: str, raw: Any) -> str:
    import re

    value = str(raw)
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", value):
        raise ConfigError(f"deployment name {raw!r} is invalid: use a-z, 0-9 and '-', starting with a letter")
    return value


_PARSERS = {
    "repo": lambda n, v: str(v),
    "workspace": lambda n, v: str(v),
    "target": _parse_target,
    "name": _parse_name,
    "server_port": lambda n, v: _check_port(n, _parse_int(n, v)),
    "server_workers": lambda n, v: max(1, _parse_int(n, v)),
    "ssh_wait_seconds": _parse_float,
    "command_timeout": _parse_float,
    "stores": _parse_stores,
    "hosts": _parse_hosts,
}


def _check_port(name: str, value: int) -> int:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    repo: Path
    workspace: Path
    target: str
    name: str
    server_port: int
    server_workers: int
    ssh_wait_seconds: float
    command_timeout: float
    stores: tuple[str, ...] = ()
    hosts: int = 1
    #: [score] view: the on-demand view `score` uses.
    score_view: str | None = None
    #: [host] requirements: extra pip requirements for the host's Feast environment.
    host_requirements: tuple[str, ...] = ()
    #: [materialize] skip: views deploy and materialize leave out.
    materialize_skip: tuple[str, ...] = ()
    #: [spark] as the release's _featctl/spark.json carries it: driver_memory (None: sized on the host), stall_seconds.
    spark: Mapping[str, Any] = field(default_factory=lambda: {"driver_memory": None, "stall_seconds": SPARK_STALL})
    #: Per-target tables of featctl.toml, e.g. ``[yandex]``: passed to the
    #: target's Terraform stack as variables.
    target_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    #: [endpoint]: the HAProxy edge applications connect to; None when the table is absent.
    endpoint: EndpointSettings | None = None


@dataclass(frozen=True)
class EndpointSettings:
    """featctl.toml's [endpoint] table, validated."""

    #: The address applications connect to (an IP of this machine on the local and vm targets).
    listen: str = "127.0.0.1"
    port: int = 8443
    #: Networks that may connect; empty: the target's default (the local target: 127.0.0.0/8).
    allow: tuple[str, ...] = ()
    #: Largest request body in bytes (413 above it).
    max_body: int = 1048576
    #: Seconds a backend may take per request.
    timeout: float = 5.0
    #: Extra subject alternative names of the endpoint's certificate (DNS names or IPs).
    names: tuple[str, ...] = ()
    #: A plain-HTTP monitor port answering GET /healthz (a cloud load balancer's health check).
    health_port: int | None = None


def _endpoint_int(path: Path, key: str, raw: Any, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(f"{path}: [endpoint] {key} must be an integer from {low} to {high}, got {raw!r}")
    return raw


def _parse_endpoint(path: Path, table: Mapping[str, Any]) -> EndpointSettings:
    """[endpoint]: listen is an IP address, ports 1-65535, allow CIDR networks."""
    import ipaddress

    def strings(key: str) -> list[str]:
        raw = table.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
            raise ConfigError(f"{path}: [endpoint] {key} must be a list of strings")
        return [x.strip() for x in raw]

    listen = table.get("listen", "127.0.0.1")
    try:
        address = ipaddress.ip_address(listen if isinstance(listen, str) else "")
    except ValueError:
        raise ConfigError(f"{path}: [endpoint] listen must be an IP address, got {table.get('listen')!r}") from None
    if address.is_unspecified:
        raise ConfigError(f"{path}: [endpoint] listen must be the address applications connect to, not {address}")
    listen = str(address)
    allow = []
    for item in strings("allow"):
        try:
            allow.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{path}: [endpoint] allow: {item!r} is not a network such as 10.0.0.0/24") from None
    names = strings("names")
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.:*-]{0,252})", name):
            raise ConfigError(f"{path}: [endpoint] names: {name!r} is not a DNS name or IP address")
    timeout = table.get("timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ConfigError(f"{path}: [endpoint] timeout must be a number of seconds (0-3600], got {timeout!r}")
    port = _endpoint_int(path, "port", table.get("port", 8443), 1, 65535)
    health = table.get("health_port")
    health_port = None if health is None else _endpoint_int(path, "health_port", health, 1, 65535)
    if health_port == port:
        raise ConfigError(f"{path}: [endpoint] health_port must differ from port ({port})")
    return EndpointSettings(
        listen=listen,
        port=port,
        allow=tuple(dict.fromkeys(allow)),
        max_body=_endpoint_int(path, "max_body", table.get("max_body", 1048576), 1, 16 * 1048576),
        timeout=float(timeout),
        names=tuple(dict.fromkeys(names)),
        health_port=health_port,
    )


def _check_tables(path: Path, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """[score], [host], [materialize] and [endpoint]: known keys with the right types."""
    out: dict[str, dict[str, Any]] = {}
    for name, keys in TABLES.items():
        table = data.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} in [{name}]; known: {', '.join(keys)}")
        for key, kind in keys.items():
            if kind is not object and key in table and not isinstance(table[key], kind):
                raise ConfigError(f"{path}: [{name}] {key} must be a {'string' if kind is str else 'list of strings'}")
        if name == "materialize" and not all(isinstance(v, str) and v.strip() for v in table.get("skip", [])):
            raise ConfigError(f"{path}: [materialize] skip must be a list of feature view names")
        if name == "spark":
            _check_spark(path, table)
        if name == "host":
            reqs = table.get("requirements", [])
            if not all(isinstance(r, str) and r.strip() and "\n" not in r for r in reqs):
                raise ConfigError(f"{path}: [host] requirements must be pip requirement strings, one per item")
        out[name] = dict(table)
    if "endpoint" in out:
        out["endpoint"] = {"settings": _parse_endpoint(path, out["endpoint"])}
    return out


_MEMORY = re.compile(r"(\d+)([kmgt])", re.IGNORECASE)  # a unit: Spark reads a bare number as MiB


def _check_spark(path: Path, table: Mapping[str, Any]) -> None:
    memory, stall = table.get("driver_memory"), table.get("stall_seconds", SPARK_STALL)
    found = _MEMORY.fullmatch(memory.strip()) if memory is not None else None
    if memory is not None and (found is None or int(found[1]) << (10 * " kmgt".index(found[2].lower())) < 512 << 20):
        raise ConfigError(f'{path}: [spark] driver_memory must be a size with a unit such as "6g" or "1536m", at least 512m')
    if isinstance(stall, bool) or not isinstance(stall, (int, float)) or not 10 <= stall <= 86400:
        raise ConfigError(f"{path}: [spark] stall_seconds must be a number of seconds from 10 to 86400")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings: flag > FEATCTL_* variable > featctl.toml > default."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()

    explicit = config_path or (Path(environ["FEATCTL_CONFIG"]) if environ.get("FEATCTL_CONFIG") else None)
    path = explicit or cwd / DEFAULT_CONFIG_FILE
    if explicit is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = read_config_file(path)
    table = data.get("featctl", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [featctl] must be a table")
    unknown = sorted(k for k, v in table.items() if k not in _DEFAULTS and not isinstance(v, dict))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_DEFAULTS)}")
    strange = sorted(k for k, v in table.items() if isinstance(v, dict) and k not in TARGETS and k not in TABLES)
    if strange:
        raise ConfigError(
            f"{path}: unknown table(s) [{'], ['.join(strange)}]; known: "
            + ", ".join(f"[{t}]" for t in (*TARGETS, *TABLES))
        )
    extra_tables = _check_tables(path, data)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, default in _DEFAULTS.items():
        env_key = f"FEATCTL_{key.upper()}"
        if key in flags:
            raw, source = flags[key], "flag"
        elif environ.get(env_key):
            raw, source = environ[env_key], env_key
        elif key in table:
            raw, source = table[key], str(path.name)
        else:
            raw, source = default, "default"
        values[key] = _PARSERS[key](key, raw)
        sources[key] = source

    target_vars = {t: dict(data[t]) for t in TARGETS if isinstance(data.get(t), dict)}
    return Settings(
        stores=values["stores"],
        hosts=values["hosts"],
        score_view=extra_tables.get("score", {}).get("view"),
        host_requirements=tuple(extra_tables.get("host", {}).get("requirements", ())),
        materialize_skip=tuple(dict.fromkeys(v.strip() for v in extra_tables.get("materialize", {}).get("skip", ()))),
        endpoint=extra_tables.get("endpoint", {}).get("settings"),
        spark={
            "driver_memory": (extra_tables.get("spark", {}).get("driver_memory") or "").strip().lower() or None,
            "stall_seconds": float(extra_tables.get("spark", {}).get("stall_seconds", SPARK_STALL)),
        },
        repo=(cwd / values["repo"]).resolve(),
        workspace=(cwd / values["workspace"]).resolve(),
        target=values["target"],
        name=values["name"],
        server_port=values["server_port"],
        server_workers=values["server_workers"],
        ssh_wait_seconds=values["ssh_wait_seconds"],
        command_timeout=values["command_timeout"],
        target_vars=target_vars,
        sources=sources,
        config_file=path if path.is_file() else None,
    )
