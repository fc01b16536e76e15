"""docs/hooks.md documents every hook of accel/hookspecs.py with its exact signature.

Each hook has a heading whose text is its signature in backticks, e.g.
``## `accel_clock_devices(accelerator, machine) -> Iterable[ClockDeviceChoice] | None` ``;
the argument names (in order) and, where given, the return annotation must match the
specification. A hook missing from the page, or documented but not specified, fails.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from accel import hookspecs

HOOKS_MD = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"
HEADING = re.compile(r"^#{2,4}\s+`(?P<name>accel_\w+)\((?P<args>[^)]*)\)(?:\s*->\s*(?P<ret>.+?))?`")


def specified() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(func)
        for name, func in vars(hookspecs).items()
        if name.startswith("accel_") and callable(func)
    }


def documented() -> dict[str, tuple[list[str], str | None]]:
    found: dict[str, tuple[list[str], str | None]] = {}
    for line in HOOKS_MD.read_text(encoding="utf-8").splitlines():
        m = HEADING.match(line)
        if m:
            args = [a.strip() for a in m["args"].split(",") if a.strip()]
            assert m["name"] not in found, f"{m['name']} is documented twice in docs/hooks.md"
            found[m["name"]] = (args, m["ret"])
    return found


def norm(annotation: str) -> str:
    return " ".join(annotation.replace(" ", "").replace("|", " | ").split())


def test_hooks_exist() -> None:
    assert set(specified()) == {"accel_accelerators", "accel_device_types", "accel_clock_devices"}


@pytest.mark.parametrize("name", sorted(specified()))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    docs = documented()
    assert name in docs, f"hook {name} is missing from docs/hooks.md"
    args, ret = docs[name]
    sig = specified()[name]
    assert args == list(sig.parameters), (
        f"docs/hooks.md documents {name}({', '.join(args)}) "
        f"but accel/hookspecs.py has {name}({', '.join(sig.parameters)})"
    )
    if ret is not None:
        assert norm(ret) == norm(str(sig.return_annotation)), (
            f"docs/hooks.md says {name} returns {ret}; the spec says {sig.return_annotation}"
        )


def test_no_documented_hook_is_unspecified() -> None:
    extra = set(documented()) - set(specified())
    assert not extra, f"docs/hooks.md documents hooks that do not exist: {sorted(extra)}"


def test_every_hookspec_has_an_example() -> None:
    for name, func in vars(hookspecs).items():
        if name.startswith("accel_") and callable(func):
            assert func.__doc__ and "Example::" in func.__doc__, f"{name} needs an Example"


def test_the_parser_sees_a_wrong_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "hooks.md"
    page.write_text(
        "## `accel_accelerators()`\n## `accel_device_types() -> Iterable[DeviceType]`\n"
        "## `accel_clock_devices(accelerator, vm) -> Iterable[ClockDeviceChoice] | None`\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "HOOKS_MD", page)
    with pytest.raises(AssertionError, match=r"accel_clock_devices\(accelerator, vm\)"):
        test_hook_is_documented_with_its_signature("accel_clock_devices")
    test_hook_is_documented_with_its_signature("accel_accelerators")
