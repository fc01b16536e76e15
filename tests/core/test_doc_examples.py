"""The Python examples in docs/user-guide.md run as written.

They open a real accelerator through the default registry (``kvm:tcg``), so this skips
where none of those is usable (for example with ACCEL_PLUGINS limiting the plugins).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import accel

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)


def test_guest_code_example_runs() -> None:
    (example,) = [b for b in python_blocks() if "cpu.run()" in b]
    try:
        accel.open("kvm:tcg").close()
    except accel.AccelError as exc:
        pytest.skip(f"no accelerator for the example: {exc}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(GUIDE), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("using ")
    assert lines[1:] == ["guest wrote 42", "al = 7"]


def test_error_example_names_real_fields() -> None:
    (example,) = [b for b in python_blocks() if "NoAcceleratorError" in b]
    for field in re.findall(r"exc\.(\w+)", example):
        assert field in {"candidates", "accelerator", "suggestion"}, field
    assert hasattr(accel.errors.UnknownAcceleratorError, "suggestion")
