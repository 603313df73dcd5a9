"""The registry diff ``feast plan`` computes, as rows: one per Feast object
that would change (kind, name, create/update/delete, the fields that differ).

Run in a scratch copy of the serving release, so every source path differs
from the serving registry's by the release directory alone; such a
difference, and Feast's bookkeeping (``meta``: created/updated times), is not
a change and is left out. Objects whose only differences were those are left
out too: plan lists what a deploy would really change.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .registry import import_feast

RELEASE = "<release>"
_CHANGES = {"CREATE": "create", "UPDATE": "update", "DELETE": "delete"}
#: Repeated fields whose items have names: the diff names the items that changed.
_NAMED_ITEMS = ("features", "entity_columns", "schema", "entities")


def cmd_registry_diff(args: argparse.Namespace) -> dict[str, Any]:
    import_feast()
    from pathlib import Path

    from feast import FeatureStore
    from feast.repo_config import load_repo_config
    from feast.repo_operations import _get_repo_contents, cli_check_repo

    repo = Path(args.repo)
    cli_check_repo(repo, repo / "feature_store.yaml")  # as `feast plan` does: the repository's modules import
    cfg = load_repo_config(repo, repo / "feature_store.yaml")
    contents = _get_repo_contents(repo, cfg.project, cfg)
    releases = [os.path.abspath(args.repo), os.path.abspath(args.from_repo)]
    rows: list[dict[str, Any]] = []
    for project in contents.projects or [None]:
        if project is not None:
            cfg.project = project.name
        diff, _, _ = FeatureStore(config=cfg).plan(contents)
        rows += diff_rows(diff, releases)
    return {"changes": rows}


def diff_rows(diff: Any, releases: list[str]) -> list[dict[str, Any]]:
    """Rows of a Feast ``RegistryDiff``: changed objects only, changed fields only."""
    from feast.feature_view import DUMMY_ENTITY_NAME

    rows = []
    for obj in diff.feast_object_diffs:
        change = _CHANGES.get(obj.transition_type.name)
        if change is None or obj.name == DUMMY_ENTITY_NAME:
            continue
        fields = []
        if change == "update":
            for prop in obj.feast_object_property_diffs:
                label = field_change(prop.property_name, prop.val_existing, prop.val_declared, releases)
                if label:
                    fields.append(label)
            if not fields:
                continue  # only the release directory or Feast's bookkeeping differed
        rows.append({"kind": obj.feast_object_type.value, "name": obj.name, "change": change, "fields": fields})
    return sorted(rows, key=lambda r: (r["kind"], r["name"]))


def field_change(name: str, old: Any, new: Any, releases: list[str]) -> str | None:
    """``name`` when the field really differs; for a list of named items, which
    items were added (+), removed (-) or changed (~); None when it does not."""
    if name == "meta":  # Feast's bookkeeping: created/updated times
        return None
    if name in _NAMED_ITEMS and _named(old) is not None and _named(new) is not None:
        before, after = _named(old) or {}, _named(new) or {}
        parts = [f"+{n}" for n in after if n not in before] + [f"-{n}" for n in before if n not in after]
        parts += [f"~{n}" for n in after if n in before and _text(after[n], releases) != _text(before[n], releases)]
        if not parts:
            return None if [*before] == [*after] else f"{name} (order)"
        return f"{name} ({', '.join(parts)})"
    return name if _text(old, releases) != _text(new, releases) else None


def _named(value: Any) -> dict[str, Any] | None:
    """Items by name (a feature service's items are view projections, named by their view)."""
    if isinstance(value, (str, bytes)) or not _is_sequence(value):
        return None
    out: dict[str, Any] = {}
    for item in value:
        name = (
            item if isinstance(item, str) else getattr(item, "name", None) or getattr(item, "feature_view_name", None)
        )
        if not isinstance(name, str) or not name:
            return None
        out[name] = item
    return out


def _text(value: Any, releases: list[str]) -> str:
    """A field's value as text without Feast's bookkeeping, release paths replaced."""
    from google.protobuf import text_format
    from google.protobuf.message import Message

    if isinstance(value, Message):
        value = _without_meta(value)
        text = text_format.MessageToString(value)
    elif not isinstance(value, (str, bytes)) and _is_sequence(value):
        text = "\n".join(_text(v, releases) for v in value)
    else:
        text = str(value)
    for path in releases:
        text = text.replace(path, RELEASE)
    return text


def _without_meta(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    _clear_meta(copy)
    return copy


def _clear_meta(message: Any) -> None:
    for field, value in message.ListFields():
        if field.name == "meta":
            message.ClearField("meta")
        elif field.message_type is not None:
            if _repeated(field):
                if not field.message_type.GetOptions().map_entry:
                    for item in value:
                        _clear_meta(item)
            else:
                _clear_meta(value)


def _repeated(field: Any) -> bool:
    """protobuf 7 dropped ``FieldDescriptor.label`` for ``is_repeated``."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def _is_sequence(value: Any) -> bool:
    """A list or a protobuf repeated field (upb's containers have no ``__iter__`` attribute)."""
    if isinstance(value, (list, tuple)):
        return True
    try:
        iter(value)
    except TypeError:
        return False
    return not hasattr(value, "ListFields")  # a message is not a list of its fields
