"""accel/ never names an accelerator in code: no imports, identifiers or name checks.

Docstrings and comments may name accelerators (docs and examples do); code may not:

* an identifier fails when one of its ``_``-separated words is an accelerator name
  (``import accel_kvm``, ``kvm_enabled()``, ``use_tcg``);
* a string literal fails when it *is* an accelerator name, a plugin module path or a
  list of names (``"kvm"``, ``"accel_tcg.vcpu"``, ``"kvm:tcg"``), since that is how code
  branches on, imports or selects one.

Device type names that merely start with an accelerator's name (QEMU's ``kvmclock``,
``kvm-pit``) are names of devices, not of accelerators, and prose that mentions one as an
example (``"e.g. 'kvm:tcg'"``) is allowed.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ACCEL = Path(__file__).resolve().parents[2] / "accel"
ACCELERATORS = frozenset({"kvm", "tcg", "xen"})
_ONE = r"(accel_)?(kvm|tcg|xen)(\.[\w.]+)?"
NAME_LIST = re.compile(rf"^\s*{_ONE}(\s*[:,]\s*{_ONE})*\s*$", re.IGNORECASE)


def docstring_lines(tree: ast.Module) -> set[int]:
    """Line numbers of every module, class and function docstring and bare string."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            end = node.end_lineno or node.lineno
            lines.update(range(node.lineno, end + 1))
    return lines


def offences(source: str) -> list[str]:
    """``line: token`` for each accelerator name in code (not in docs or comments)."""
    docs = docstring_lines(ast.parse(source))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        words = {w.lower() for w in tok.string.split("_")}
        if tok.type == tokenize.NAME and words & ACCELERATORS:
            found.append(f"{tok.start[0]}: identifier {tok.string}")
        elif tok.type == tokenize.STRING and tok.start[0] not in docs:
            body = (
                ast.literal_eval(tok.string)
                if not tok.string.lower().startswith(("f", "rf", "fr", "b", "rb", "br"))
                else tok.string
            )
            if isinstance(body, str) and NAME_LIST.match(body):
                found.append(f"{tok.start[0]}: string {tok.string}")
    return found


def test_the_checker_catches_what_it_should() -> None:
    bad = (
        'import accel_kvm\nif name == "kvm":\n    pass\nspec = "kvm:tcg"\n'
        'mod = "accel_xen.plugin"\nuse_tcg = True\nif XEN_HVM: pass\n'
    )
    assert [o.split(": ", 1)[1] for o in offences(bad)] == [
        "identifier accel_kvm",
        'string "kvm"',
        'string "kvm:tcg"',
        'string "accel_xen.plugin"',
        "identifier use_tcg",
        "identifier XEN_HVM",
    ]
    good = (
        '"""Docs may say kvm."""\n# so may comments: tcg\n'
        'def f():\n    """Example: accel.open("kvm:tcg")."""\n'
        "    return \"name accelerators, e.g. 'kvm:tcg'\"\n"
        'CLOCKS = ("kvmclock", "kvm-pit", "isa-pit")\nkvmclock_enabled = True\n'
    )
    assert offences(good) == []


@pytest.mark.parametrize(
    "path", sorted(ACCEL.rglob("*.py")), ids=lambda p: str(p.relative_to(ACCEL))
)
def test_accel_package_names_no_accelerator(path: Path) -> None:
    found = offences(path.read_text(encoding="utf-8"))
    assert not found, (
        f"{path.relative_to(ACCEL.parent)} names an accelerator in code: {found}; the core "
        "must ask accelerators through the interfaces instead (docs/architecture.md)"
    )
