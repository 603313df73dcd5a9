"""Parse a Terraform stack with python-hcl2, for static checks of its contract.

python-hcl2 8.x keeps HCL syntax in the values it returns: block labels and
string literals keep their quotes ('"name"', '"TCP"'), expressions are wrapped
in '${...}', blocks carry '__is_block__' and comments '__comments__'. ``norm``
strips all of that (optionally keeping '__is_block__', which tells a nested
block from an attribute) so the assertions do not depend on it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import hcl2

BLOCK = "__is_block__"


def norm(value: Any, *, keep_block_marker: bool = False) -> Any:
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("${") and s.endswith("}"):
            s = s[2:-1].strip()
        elif len(s) >= 2 and s[0] == s[-1] == '"':
            s = s[1:-1]
        return s
    if isinstance(value, list):
        return [norm(v, keep_block_marker=keep_block_marker) for v in value]
    if isinstance(value, dict):
        drop = {"__comments__"} if keep_block_marker else {"__comments__", BLOCK}
        return {
            norm(k, keep_block_marker=keep_block_marker): norm(v, keep_block_marker=keep_block_marker)
            for k, v in value.items()
            if k not in drop
        }
    return value


@functools.cache
def parse_file(path: Path) -> dict[str, Any]:
    """python-hcl2's raw result for one file (parsed once per test run)."""
    with path.open(encoding="utf-8") as fp:
        return hcl2.load(fp)


def load_dir(directory: Path, *, keep_block_marker: bool = False) -> dict[str, list[dict]]:
    """Parse every .tf file of a directory; merge the top-level block lists."""
    merged: dict[str, list[dict]] = {}
    files = sorted(directory.glob("*.tf"))
    assert files, f"no .tf files in {directory}"
    for tf in files:
        doc = norm(copy.deepcopy(parse_file(tf)), keep_block_marker=keep_block_marker)
        for kind, blocks in doc.items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def named(doc: dict, kind: str) -> dict[str, dict]:
    """{label: body} for single-label blocks (variable, output)."""
    out: dict[str, dict] = {}
    for block in doc.get(kind, []):
        for label, body in block.items():
            if label == BLOCK:
                continue
            assert label not in out, f"duplicate {kind} {label!r}"
            out[label] = body
    return out


def resources(doc: dict, rtype: str, kind: str = "resource") -> dict[str, dict]:
    """{name: body} of all resources (or data sources) of one type."""
    out: dict[str, dict] = {}
    for block in doc.get(kind, []):
        for typ, by_name in block.items():
            if typ == rtype:
                out.update({k: v for k, v in by_name.items() if k != BLOCK})
    return out


def resource_types(doc: dict, kind: str = "resource") -> set[str]:
    return {typ for block in doc.get(kind, []) for typ in block if typ != BLOCK}


def one(doc: dict, rtype: str) -> dict:
    found = resources(doc, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, got {sorted(found)}"
    return next(iter(found.values()))


def blocks(body: dict, key: str) -> list[dict]:
    value = body.get(key, [])
    return value if isinstance(value, list) else [value]


def locals_of(doc: dict) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in doc.get("locals", []):
        for name, value in block.items():
            if name == BLOCK:
                continue
            assert name not in merged, f"duplicate local {name}"
            merged[name] = value
    return merged
