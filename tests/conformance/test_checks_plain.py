"""The checks as plain functions (trio.testing style), without the pytest plugin."""

from __future__ import annotations

import inspect

import pytest

import accel
import accel.testing
from accel.testing import checks

from .broken import broken_info


def _tcg() -> accel.Accelerator:
    try:
        return accel.open("tcg")
    except accel.AccelError as exc:
        pytest.skip(f"tcg is not usable: {exc}")


def test_every_check_is_exported_and_documents_assertion_error() -> None:
    names = [n for n in dir(checks) if n.startswith("check_")]
    assert names
    for name in names:
        func = getattr(checks, name)
        assert name in checks.__all__
        assert getattr(accel.testing, name) is func, f"{name} is not re-exported"
        doc = inspect.getdoc(func) or ""
        assert "Raises:" in doc and "AssertionError" in doc, name


def test_checks_pass_on_a_real_accelerator_without_pytest_machinery() -> None:
    with _tcg() as acc:
        checks.check_availability(acc)
        checks.check_capabilities_answered(acc)
        with acc.create_vm() as vm:
            checks.check_memory_bounds(vm)
        with acc.create_vm() as vm:
            checks.check_register_roundtrip(vm)
        with acc.create_vm() as vm:
            checks.check_clock(vm)
            checks.check_pause(vm)


def test_a_check_raises_assertion_error_on_a_broken_accelerator() -> None:
    _tcg().close()
    acc = broken_info("register-bit-flip").factory()
    try:
        with acc.create_vm() as vm, pytest.raises(AssertionError, match="rbx"):
            checks.check_register_roundtrip(vm)
    finally:
        acc.close()


def test_declarations_name_the_closest_feature() -> None:
    info = broken_info("unknown-declaration") if _has_tcg() else None
    if info is None:
        pytest.skip("tcg is not registered")
    with pytest.raises(AssertionError, match="did you mean 'mmio'"):
        checks.check_declarations(info)


def _has_tcg() -> bool:
    return "tcg" in accel.accelerators()
