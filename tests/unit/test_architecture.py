"""The layout is the architecture: these checks keep it that way.

* no import circle among featctl's modules (imports inside functions and
  under TYPE_CHECKING count: a reader follows them all the same);
* the bottom layer (errors, config, workspace) imports nothing above it;
* the host agent imports nothing of featctl (it runs alone on the host) and
  only relatively within itself;
* no module over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "featctl"
BOTTOM = {"featctl.errors", "featctl.config", "featctl.workspace"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """featctl modules that ``name`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_resolves_relative_and_from_imports():
    g = graph()
    assert "featctl.agent.output" in g["featctl.agent.cli"]
    assert "featctl.remote.agent" in g["featctl.lifecycle.deploy"]  # from featctl.remote import agent


def test_no_import_circle():
    assert cycles(graph()) == []


@pytest.mark.parametrize("bottom", sorted(BOTTOM))
def test_bottom_layer_imports_nothing_above_it(bottom):
    g = graph()
    above = sorted(m for m in g[bottom] if m not in BOTTOM | {"featctl"})
    assert above == [], f"{bottom} imports {above}"


def test_host_agent_imports_nothing_of_featctl():
    for name, path in modules().items():
        if not name.startswith("featctl.agent"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("featctl"), f"{name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("featctl") for a in node.names), f"{name}: {ast.dump(node)}"


def test_client_never_imports_the_agent_as_code():
    """The client ships the agent as files; importing it would blur the two sides."""
    g = graph()
    users = sorted(
        m
        for m, deps in g.items()
        if not m.startswith("featctl.agent") and any(d.startswith("featctl.agent") for d in deps)
    )
    assert users == []


def test_no_module_over_400_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
