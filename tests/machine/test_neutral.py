"""accel/machine never names or imports an accelerator (only its docs and help text do)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MACHINE = Path(__file__).resolve().parents[2] / "accel" / "machine"
NAMES = ("kvm", "tcg", "xen")


@pytest.mark.parametrize("path", sorted(MACHINE.glob("*.py")), ids=lambda p: p.name)
def test_no_accelerator_in_code(path: Path) -> None:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        words: list[str] = []
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            words.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            words.append(node.module or "")
            words.extend(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            words.extend(a.name for a in node.names)
        elif isinstance(node, ast.Compare):
            # "if accelerator.name == 'kvm'" is the pattern the design forbids
            for c in node.comparators:
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    words.append(c.value)
        found.extend(w for w in words if any(n in w.lower() for n in NAMES))
    assert not found, f"{path.name} names an accelerator: {found}"
