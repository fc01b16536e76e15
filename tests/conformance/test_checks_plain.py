"""The checks as plain functions (trio.testing style), without the pytest plugin."""

from __future__ import annotations

import inspect
import time
from typing import cast

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


class _ScaledClock:
    """Just enough of a VM for check_clock_rate: a clock at ``rate`` times host time."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.origin = time.monotonic_ns()

    def get_clock(self) -> accel.ClockData:
        return accel.ClockData(int((time.monotonic_ns() - self.origin) * self.rate))


@pytest.mark.parametrize("rate", [0.001, 0.5, 2.0, 1000.0])
def test_clock_rate_fails_a_clock_off_the_host_rate(rate: float) -> None:
    vm = cast(accel.VM, _ScaledClock(rate))
    with pytest.raises(AssertionError, match="does not run at the host's rate"):
        checks.check_clock_rate(vm, interval=0.05, attempts=2)


def test_clock_rate_passes_the_host_clock_and_a_real_vm() -> None:
    assert checks.check_clock_rate(cast(accel.VM, _ScaledClock(1.0)), interval=0.05) >= 0.75
    with _tcg() as acc, acc.create_vm() as vm:
        assert checks.CLOCK_RATE_BOUNDS[0] <= checks.check_clock_rate(vm)
