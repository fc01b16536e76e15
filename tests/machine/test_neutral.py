"""The machine, snapshot and testing layers never name or import an accelerator in code
(only their docs, comments and help text do): they decide by capability."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ACCEL = Path(__file__).resolve().parents[2] / "accel"
NAMES = ("kvm", "tcg", "xen", "unicorn")
PATHS = sorted(
    p for layer in ("machine", "snapshot", "testing") for p in (ACCEL / layer).rglob("*.py")
)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: str(p.relative_to(ACCEL)))
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
            for c in [node.left, *node.comparators]:
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    words.append(c.value)
        found.extend(w for w in words if any(n in w.lower() for n in NAMES))
    assert not found, f"{path.name} names an accelerator: {found}"
