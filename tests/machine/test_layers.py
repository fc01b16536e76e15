"""The machine and snapshot layers import in one direction and have no cycles.

``accel.snapshot`` imports the machine layer; the machine layer never imports the
snapshot layer, neither when it is imported nor inside a function (a machine is saved
with ``accel.snapshot.save_machine`` and restored with ``restore_machine``).
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


def test_the_machine_layer_never_imports_the_snapshot_layer(graph: grimp.ImportGraph) -> None:
    for module in _modules(graph):
        if module.startswith("accel.machine"):
            for imported in graph.find_modules_directly_imported_by(module):
                assert not imported.startswith("accel.snapshot"), (module, imported)
    for path in sorted((ROOT / "machine").rglob("*.py")):  # type-only imports too
        module = ".".join(("accel", *path.relative_to(ROOT).with_suffix("").parts))
        if module in CLI:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                absolute = node.level == 0 and name.startswith("accel.snapshot")
                relative = node.level > 0 and name.startswith("snapshot")
                assert not absolute and not relative, (module, node.lineno, name)


def test_no_import_cycles_in_the_machine_and_snapshot_layers(graph: grimp.ImportGraph) -> None:
    cycles = [
        (a, b, graph.find_shortest_chain(a, b), graph.find_shortest_chain(b, a))
        for a, b in itertools.combinations(_modules(graph), 2)
        if graph.find_shortest_chain(a, b) and graph.find_shortest_chain(b, a)
    ]
    assert not cycles, "\n".join(f"{a} <-> {b}: {ab} / {ba}" for a, b, ab, ba in cycles)


def test_the_snapshot_layer_depends_on_the_machine_layer(graph: grimp.ImportGraph) -> None:
    assert graph.find_shortest_chain("accel.snapshot.machine", "accel.machine.machine")
    assert not graph.find_shortest_chain("accel.machine.types", "accel.snapshot.format")


def test_the_device_layers_are_stacked(graph: grimp.ImportGraph) -> None:
    """devices.base <- the built-in devices <- device <- machine; no device imports the
    machine."""
    g = graph
    order = [
        "accel.machine.runstate",
        "accel.machine.devices.base",
        "accel.machine.devices.rtc",
        "accel.machine.devices",
        "accel.machine.device",
        "accel.machine.machine",
    ]
    for lower, upper in itertools.combinations(order, 2):
        assert not g.find_shortest_chain(lower, upper), f"{lower} reaches {upper}"
    for lower in ("accel.machine.types", "accel.machine.cpu"):
        assert not g.find_shortest_chain(lower, "accel.machine.machine")
