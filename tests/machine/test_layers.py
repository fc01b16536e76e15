"""The machine and snapshot layers import in one direction and have no cycles.

``accel.snapshot`` imports the machine layer; the machine layer never imports the
snapshot layer at import time. Its only references to it are the imports inside
:meth:`Machine.save` and :meth:`Machine.restore` (conveniences over
``accel.snapshot.machine``), made when those are called.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2] / "accel"

#: The modules of these layers (the command-line modules in accel/machine are the CLI's,
#: and checked with it).
LAYERS = ("accel.machine", "accel.snapshot")
CLI = frozenset(
    {
        "accel.machine.cli",
        "accel.machine._climachine",
        "accel.machine._snapshots",
        "accel.machine.runner",
        "accel.snapshot.cli",
    }
)


@pytest.fixture
def graph() -> grimp.ImportGraph:
    g = grimp.build_graph("accel", exclude_type_checking_imports=True)
    for name in CLI & g.modules:
        g.remove_module(name)
    return g


def _modules(g: grimp.ImportGraph) -> list[str]:
    return sorted(m for m in g.modules if m.startswith(LAYERS))


def _function_level_snapshot_imports() -> set[tuple[str, str]]:
    """(machine module, snapshot module) for every import of the snapshot layer made
    inside a function of the machine layer."""
    out = set()
    for path in (ROOT / "machine").glob("*.py"):
        module = f"accel.machine.{path.stem}" if path.stem != "__init__" else "accel.machine"
        if module in CLI:
            continue
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 2
                    and (node.module or "").startswith("snapshot")
                ):
                    out.add((module, f"accel.{node.module}"))
    return out


def test_the_machine_layer_imports_the_snapshot_layer_only_inside_functions() -> None:
    for path in sorted((ROOT / "machine").glob("*.py")):
        if f"accel.machine.{path.stem}" in CLI:
            continue
        for stmt in ast.parse(path.read_text()).body:  # module-level statements
            if isinstance(stmt, ast.ImportFrom):
                names = [("." * stmt.level) + (stmt.module or "")]
            elif isinstance(stmt, ast.Import):
                names = [alias.name for alias in stmt.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("..snapshot", "accel.snapshot")), (
                    f"{path.name}:{stmt.lineno} imports {name} when it is imported"
                )
    assert _function_level_snapshot_imports() == {
        ("accel.machine.machine", "accel.snapshot.machine"),
        ("accel.machine.machine", "accel.snapshot.core"),
    }


def test_no_import_cycles_in_the_machine_and_snapshot_layers(graph: grimp.ImportGraph) -> None:
    """No cycles once the two call-time imports of Machine.save/restore are set aside."""
    g = graph
    for importer, imported in _function_level_snapshot_imports():
        g.remove_import(importer=importer, imported=imported)
    cycles = [
        (a, b, g.find_shortest_chain(a, b), g.find_shortest_chain(b, a))
        for a, b in itertools.combinations(_modules(g), 2)
        if g.find_shortest_chain(a, b) and g.find_shortest_chain(b, a)
    ]
    assert not cycles, "\n".join(f"{a} <-> {b}: {ab} / {ba}" for a, b, ab, ba in cycles)


def test_the_snapshot_layer_depends_on_the_machine_layer(graph: grimp.ImportGraph) -> None:
    assert graph.find_shortest_chain("accel.snapshot.machine", "accel.machine.machine")
    assert not graph.find_shortest_chain("accel.machine.types", "accel.snapshot.format")


def test_the_device_layers_are_stacked(graph: grimp.ImportGraph) -> None:
    """device <- devices <- device_registry <- machine; a device never imports the machine."""
    g = graph
    order = [
        "accel.machine.runstate",
        "accel.machine.device",
        "accel.machine.devices",
        "accel.machine.device_registry",
        "accel.machine.machine",
    ]
    for lower, upper in itertools.combinations(order, 2):
        assert not g.find_shortest_chain(lower, upper), f"{lower} reaches {upper}"
    for lower in ("accel.machine.types", "accel.machine.cpu"):
        assert not g.find_shortest_chain(lower, "accel.machine.machine")
