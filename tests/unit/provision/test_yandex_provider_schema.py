"""Every argument the Yandex stack writes exists in the provider's schema.

The provider cannot be installed here, so ``terraform validate`` cannot run.
PROVIDER_SCHEMA below lists the settable arguments of each resource the stack
uses, taken from yandex-cloud/terraform-provider-yandex v0.222.0
(docs/resources/*.md, and for yandex_mdb_redis_cluster_v2 the framework schema
in yandex-framework/services/mdb_redis_cluster_v2/resource.go, whose nested
objects are attributes, written `config = {...}`, not blocks;
yandex_lb_network_load_balancer from yandex/resource_yandex_lb_network_load_balancer.go
and yandex_lb_target_group from the generated framework schema in
yandex-framework/gen/yandex/yandex_lb_target_group/resource_schema.go, both
the same in v0.180.0). Each argument
the stack uses was also checked to exist in v0.180.0, the lowest version
versions.tf allows. Nested blocks the stack does not use are listed with None.

The test walks the parsed stack and fails on an unknown argument, on a block
written as an attribute or the other way round, and on a missing required one.
A `dynamic "x"` block is checked as the block x, through its content.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import pytest

from tests.unit.provision.hclstack import BLOCK, load_dir
from tests.unit.provision.tfeval import YANDEX_DIR

# kind: "block" (nested block, `x { }`), "object" (single nested attribute,
# `x = { }`), "map" (map nested attribute, `x = { key = { } }`).
Schema = dict[str, Any]


def _node(args: set[str], required: Set[str] = frozenset(), **nested: Any) -> Schema:
    return {"args": args, "required": required, "nested": nested}


def _block(args: set[str], required: Set[str] = frozenset(), **nested: Any) -> Schema:
    return {"kind": "block", **_node(args, required, **nested)}


def _object(args: set[str], required: Set[str] = frozenset(), kind: str = "object") -> Schema:
    return {"kind": kind, **_node(args, required)}


UNUSED = None

PROVIDER_SCHEMA: dict[str, Schema] = {
    "yandex_compute_instance": _node(
        {
            "allow_recreate", "allow_stopping_for_update", "description", "folder_id", "gpu_cluster_id",
            "hostname", "labels", "maintenance_grace_period", "maintenance_policy", "metadata", "name",
            "network_acceleration_type", "platform_id", "reserved_instance_pool_id", "service_account_id", "zone",
        },
        boot_disk=_block(
            {"auto_delete", "device_name", "disk_id", "mode"},
            initialize_params=_block(
                {"block_size", "description", "image_id", "kms_key_id", "name", "size", "snapshot_id", "type"}
            ),
        ),
        network_interface=_block(
            {"index", "ip_address", "ipv4", "ipv6", "ipv6_address", "nat", "nat_ip_address", "security_group_ids", "subnet_id"},
            {"subnet_id"},
            dns_record=UNUSED, ipv6_dns_record=UNUSED, nat_dns_record=UNUSED,
        ),
        resources=_block({"core_fraction", "cores", "gpus", "memory"}, {"cores", "memory"}),
        scheduling_policy=_block({"preemptible"}),
        filesystem=UNUSED, local_disk=UNUSED, metadata_options=UNUSED, placement_policy=UNUSED,
        secondary_disk=UNUSED, timeouts=UNUSED,
    ),
    "data.yandex_compute_image": _node(
        {"description", "family", "folder_id", "image_id", "labels", "min_disk_size", "name", "os_type", "pooled", "product_ids"},
        hardware_generation=UNUSED,
    ),
    "yandex_vpc_network": _node({"description", "folder_id", "labels", "name"}, timeouts=UNUSED),
    "yandex_vpc_subnet": _node(
        {"description", "folder_id", "labels", "name", "network_id", "route_table_id", "v4_cidr_blocks", "zone"},
        {"network_id", "v4_cidr_blocks"},
        dhcp_options=UNUSED, timeouts=UNUSED,
    ),
    "yandex_vpc_address": _node(
        {"deletion_protection", "description", "folder_id", "labels", "name"},
        external_ipv4_address=_block({"ddos_protection_provider", "outgoing_smtp_capability", "zone_id"}),
        dns_record=UNUSED, internal_ipv4_address=UNUSED, timeouts=UNUSED,
    ),
    "yandex_vpc_security_group": _node(
        {"description", "folder_id", "labels", "name", "network_id"},
        {"network_id"},
        ingress=_block(
            {"description", "from_port", "labels", "port", "predefined_target", "protocol", "security_group_id", "to_port", "v4_cidr_blocks", "v6_cidr_blocks"},
            {"protocol"},
        ),
        egress=_block(
            {"description", "from_port", "labels", "port", "predefined_target", "protocol", "security_group_id", "to_port", "v4_cidr_blocks", "v6_cidr_blocks"},
            {"protocol"},
        ),
        timeouts=UNUSED,
    ),
    "yandex_mdb_redis_cluster_v2": _node(
        {
            "announce_hostnames", "auth_sentinel", "deletion_protection", "description", "disk_encryption_key_id",
            "environment", "folder_id", "labels", "name", "network_id", "persistence_mode", "security_group_ids",
            "sharded", "tls_enabled",
        },
        {"name", "environment", "network_id", "config", "resources", "hosts"},
        config=_object(
            {
                "allow_data_loss", "backup_retain_period_days", "backup_window_start", "client_output_buffer_limit_normal",
                "client_output_buffer_limit_pubsub", "cluster_allow_pubsubshard_when_down", "cluster_allow_reads_when_down",
                "cluster_require_full_coverage", "databases", "io_threads_allowed", "lfu_decay_time", "lfu_log_factor",
                "lua_time_limit", "maxmemory_percent", "maxmemory_policy", "notify_keyspace_events", "password",
                "password_wo", "password_wo_version", "repl_backlog_size_percent", "slowlog_log_slower_than",
                "slowlog_max_len", "timeout", "turn_before_switchover", "use_luajit", "version", "zset_max_listpack_entries",
            },
            {"version"},
        ),
        resources=_object({"disk_size", "disk_type_id", "resource_preset_id"}, {"disk_size", "resource_preset_id"}),
        hosts=_object({"assign_public_ip", "replica_priority", "shard_name", "subnet_id", "zone"}, {"zone"}, kind="map"),
        maintenance_window=_object({"day", "hour", "type"}, {"type"}),
        access=UNUSED, disk_size_autoscaling=UNUSED, modules=UNUSED, timeouts=UNUSED,
    ),
    "yandex_mdb_postgresql_cluster": _node(
        {
            "deletion_protection", "description", "disk_encryption_key_id", "environment", "folder_id",
            "host_group_ids", "host_master_name", "labels", "name", "network_id", "security_group_ids",
        },
        {"name", "environment", "network_id", "config"},
        config=_block(
            {"backup_retain_period_days", "postgresql_config", "version"},
            {"version", "resources"},
            resources=_block({"disk_size", "disk_type_id", "resource_preset_id"}, {"disk_size", "resource_preset_id"}),
            access=UNUSED, backup_window_start=UNUSED, connection_manager=UNUSED, disk_size_autoscaling=UNUSED,
            managed_repack=UNUSED, performance_diagnostics=UNUSED, pooler_config=UNUSED,
        ),
        host=_block({"assign_public_ip", "name", "priority", "replication_source_name", "subnet_id", "zone"}, {"zone"}),
        maintenance_window=_block({"day", "hour", "type"}, {"type"}),
        database=UNUSED, restore=UNUSED, timeouts=UNUSED, user=UNUSED,
    ),
    "yandex_mdb_postgresql_user": _node(
        {
            "auth_method", "cluster_id", "conn_limit", "deletion_protection", "generate_password", "grants", "login",
            "name", "password", "password_wo", "password_wo_version", "settings", "user_password_encryption",
        },
        {"cluster_id", "name"},
        permission=UNUSED, timeouts=UNUSED, user_connection_manager=UNUSED,
    ),
    "yandex_mdb_postgresql_database": _node(
        {"cluster_id", "deletion_protection", "lc_collate", "lc_type", "name", "owner", "template_db"},
        {"cluster_id", "name", "owner"},
        extension=UNUSED, timeouts=UNUSED,
    ),
    "yandex_lb_network_load_balancer": _node(
        {"allow_zonal_shift", "deletion_protection", "description", "folder_id", "labels", "name", "region_id", "type"},
        listener=_block(
            {"name", "port", "protocol", "target_port"},
            {"name", "port"},
            internal_address_spec=_block({"address", "ip_version", "subnet_id"}, {"subnet_id"}),
            external_address_spec=UNUSED,
        ),
        attached_target_group=_block(
            {"target_group_id"},
            {"target_group_id", "healthcheck"},
            healthcheck=_block(
                {"healthy_threshold", "interval", "name", "timeout", "unhealthy_threshold"},
                {"name"},
                http_options=_block({"path", "port"}, {"port"}),
                tcp_options=UNUSED,
            ),
        ),
        timeouts=UNUSED,
    ),
    "yandex_lb_target_group": _node(
        {"description", "folder_id", "labels", "name", "region_id", "target_group_id"},
        target=_block({"address", "subnet_id"}),
        timeouts=UNUSED,
    ),
}  # fmt: skip

# Terraform's own arguments, valid in every resource.
META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get(BLOCK) for v in value)


# Arguments of a `dynamic "x" { }` block besides its content.
DYNAMIC_ARGS = {"for_each", "iterator", "labels"}


def _dynamic_blocks(body: dict[str, Any], where: str, problems: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The blocks that `dynamic "x" { content { } }` generates, as if written `x { }`: x -> contents."""
    generated: dict[str, list[dict[str, Any]]] = {}
    for item in body.get("dynamic", []):
        for label, dyn in item.items():
            if label == BLOCK:
                continue
            here = f"{where}.dynamic[{label!r}]"
            unknown = set(dyn) - DYNAMIC_ARGS - {"content", BLOCK}
            if unknown:
                problems.append(f"{here}: not arguments of a dynamic block: {sorted(unknown)}")
            if "for_each" not in dyn or not _is_block(dyn.get("content")) or len(dyn["content"]) != 1:
                problems.append(f"{here}: a dynamic block needs for_each and one content block")
                continue
            generated.setdefault(label, []).extend(dyn["content"])
    return generated


def _check(body: dict[str, Any], schema: Schema, where: str, problems: list[str], *, top: bool = False) -> None:
    fields = {k: v for k, v in body.items() if k not in (BLOCK, "dynamic") and not (top and k in META)}
    for name, contents in _dynamic_blocks(body, where, problems).items():
        written = fields.get(name, [])
        if written and not _is_block(written):
            problems.append(f"{where}.{name}: both an attribute and a dynamic block")
            continue
        fields[name] = [*written, *contents]  # checked like blocks written out
    for name, value in fields.items():
        here = f"{where}.{name}"
        if name in schema["args"]:
            if _is_block(value):
                problems.append(f"{here}: an attribute written as a block")
            continue
        if name not in schema["nested"]:
            problems.append(f"{here}: not an argument of the provider's schema")
            continue
        nested = schema["nested"][name]
        if nested is None:
            problems.append(f"{here}: exists, but the test's schema lists no arguments for it yet")
            continue
        if nested["kind"] == "block":
            if not _is_block(value):
                problems.append(f"{here}: a nested block written as an attribute (use `{name} {{ }}`)")
                continue
            for i, item in enumerate(value):
                _check(item, nested, f"{here}[{i}]", problems)
        else:
            if not isinstance(value, dict) or value.get(BLOCK):
                problems.append(f"{here}: a nested attribute written as a block (use `{name} = {{ }}`)")
                continue
            items = value.items() if nested["kind"] == "map" else [("", value)]
            for key, item in items:
                if not isinstance(item, dict):
                    problems.append(f"{here}[{key}]: expected an object")
                    continue
                _check(item, nested, f"{here}[{key!r}]" if key else here, problems)
    missing = {r for r in schema["required"] if r not in fields}
    if missing:
        problems.append(f"{where}: missing required {sorted(missing)}")


def _instances(doc: dict) -> list[tuple[str, str, dict]]:
    found = []
    for kind, prefix in (("resource", ""), ("data", "data.")):
        for block in doc.get(kind, []):
            for rtype, by_name in block.items():
                if rtype == BLOCK:
                    continue
                for name, body in by_name.items():
                    if name != BLOCK:
                        found.append((prefix + rtype, name, body))
    return found


@pytest.fixture(scope="module")
def stack() -> dict:
    return load_dir(YANDEX_DIR, keep_block_marker=True)


def test_every_resource_type_is_known(stack: dict) -> None:
    types = {rtype for rtype, _, _ in _instances(stack) if rtype != "terraform_data"}
    assert types <= set(PROVIDER_SCHEMA), sorted(types - set(PROVIDER_SCHEMA))


@pytest.mark.parametrize("rtype", sorted(PROVIDER_SCHEMA))
def test_arguments_exist_in_provider_schema(rtype: str, stack: dict) -> None:
    problems: list[str] = []
    bodies = [(name, body) for t, name, body in _instances(stack) if t == rtype]
    assert bodies, f"the stack has no {rtype}; drop it from PROVIDER_SCHEMA"
    for name, body in bodies:
        _check(body, PROVIDER_SCHEMA[rtype], f"{rtype}.{name}", problems, top=True)
    assert not problems, "\n".join(problems)


def test_checker_catches_mistakes() -> None:
    """The walk above can fail: a typo, a v1-style block for a v2 attribute, a missing argument."""
    schema = PROVIDER_SCHEMA["yandex_mdb_redis_cluster_v2"]
    problems: list[str] = []
    body = {
        "name": "x",
        "environment": "PRODUCTION",
        "network_id": "n",
        "tls_enable": True,  # typo
        "config": [{"version": "8.1-valkey", BLOCK: True}],  # block, not attribute
        "hosts": {"a": {"subnet": "s"}},  # unknown nested argument, missing zone
    }
    _check(body, schema, "r", problems, top=True)
    text = "\n".join(problems)
    assert "r.tls_enable: not an argument" in text
    assert "r.config: a nested attribute written as a block" in text
    assert "r.hosts['a'].subnet: not an argument" in text
    assert "r.hosts['a']: missing required ['zone']" in text
    assert "missing required ['resources']" in text


def test_checker_reads_dynamic_blocks() -> None:
    """A dynamic block is checked as the block it generates: its content's arguments count."""
    schema = PROVIDER_SCHEMA["yandex_vpc_security_group"]
    content = {"protocol": "TCP", "port": "ingress.value.port", "predefined_targets": "x", BLOCK: True}
    body = {
        "network_id": "n",
        "dynamic": [
            {"ingress": {"for_each": "local.rules", "content": [content], BLOCK: True}},
            {"egress": {"for_each": "local.rules", "content": [{"port": 1, BLOCK: True}], BLOCK: True}},
            {"ingres": {"for_each": "local.rules", "content": [{"protocol": "TCP", BLOCK: True}], BLOCK: True}},
            {"ingress": {"for_each": "local.rules", BLOCK: True}},
        ],
    }
    problems: list[str] = []
    _check(body, schema, "sg", problems, top=True)
    text = "\n".join(problems)
    assert "sg.ingress[0].predefined_targets: not an argument" in text
    assert "sg.egress[0]: missing required ['protocol']" in text
    assert "sg.ingres: not an argument" in text
    assert "sg.dynamic['ingress']: a dynamic block needs for_each and one content block" in text
    assert len(problems) == 4, problems
