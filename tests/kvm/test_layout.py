"""The in-tree plugins are the model a third-party author copies: they import only accel's
public API, and accel_kvm's modules form layers without cycles (import-linter in .ci/run
holds the same contracts for the whole tree)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

#: accel_kvm's layers, lowest first: a module imports only modules listed before it.
KVM_LAYERS = [
    "bindings",
    "ioctls",
    "testing",
    "capabilities",
    "state",
    "vcpu",
    "vm",
    "accelerator",
]


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import statement in ``path``."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module is None:
                out.extend((alias.name, node.level) for alias in node.names)
            else:
                out.append((node.module or "", node.level))
    return out


@pytest.mark.parametrize("path", sorted(PLUGINS.glob("accel_*/*.py")), ids=lambda p: p.name)
def test_plugins_import_no_private_accel_module(path: Path) -> None:
    for module, level in _imports(path):
        if level == 0 and module.split(".")[0] == "accel":
            private = [part for part in module.split(".") if part.startswith("_")]
            assert not private, f"{path.relative_to(PLUGINS)} imports {module}"


def test_kvm_modules_import_only_the_layers_below() -> None:
    for index, name in enumerate(KVM_LAYERS):
        below = set(KVM_LAYERS[:index])
        for module, level in _imports(PLUGINS / "accel_kvm" / f"{name}.py"):
            if level:
                target = module.split(".")[0]
                assert target in below, f"accel_kvm.{name} imports .{target}"


def test_kvm_devices_use_only_accel() -> None:
    """The machine devices see KVM only through accel's interfaces."""
    for module, level in _imports(PLUGINS / "accel_kvm" / "devices.py"):
        assert level == 0 and module.split(".")[0] in {"__future__", "accel"}, module
