"""Every conformance check can fail: run the suite on deliberately broken accelerators.

Each broken accelerator wraps the real TCG accelerator and breaks one thing
(:mod:`broken`); the check meant to catch it must fail on it, and every check of the
suite must catch at least one of them. The unbroken wrapper is the control: it passes.
"""

from __future__ import annotations

import pytest

import accel
from accel.testing.results import Status, SuiteResult
from accel.testing.runner import run_suite

from .broken import BREAKAGES, broken_info, broken_registry, plugin_of


def _base_or_skip() -> str:
    try:
        info = accel.default_registry().info("tcg")
    except accel.errors.UnknownAcceleratorError:
        pytest.skip("the tcg plugin is not registered")
    acc = info.factory()
    try:
        availability = acc.probe()
    finally:
        acc.close()
    if not availability.available:
        pytest.skip(f"tcg is unavailable: {availability.reason}")
    return "tcg"


#: breakage -> the check that must catch it
CAUGHT_BY: dict[str, str] = {
    "wrong-register-after-program": "test_program_arithmetic",
    "wrong-memory-after-program": "test_program_strings",
    "real-mode-after-program": "test_program_protected_mode",
    "halt-as-shutdown": "test_program_halt",
    "unbacked-fetch-halts": "test_unbacked_fetch",
    "unbacked-fetch-slow": "test_unbacked_fetch",
    "no-cs-limit": "test_code_segment_limit",
    "lost-out-data": "test_program_port_io",
    "lost-in-data": "test_program_port_io",
    "lost-mmio-write": "test_program_mmio",
    "lost-mmio-read": "test_program_mmio",
    "unknown-declaration": "test_declarations",
    "probe-raises": "test_availability",
    "unanswered-capability": "test_capabilities_answered",
    "undeclared-unknown": "test_unknown_only_where_declared",
    "vm-claims-more": "test_vm_capabilities",
    "not-reset": "test_vm_lifecycle",
    "usable-after-close": "test_closed_handles",
    "shared-memory": "test_multiple_vms",
    "unbounded-memory": "test_memory_bounds",
    "register-bit-flip": "test_register_roundtrip",
    "clock-backwards": "test_clock",
    "clock-microseconds": "test_clock_rate",
    "clock-half-speed": "test_clock_rate",
    "dropped-port-byte": "test_program_port_io_string",
    "dropped-port-access": "test_program_port_io_loop",
    "dropped-mmio-access": "test_program_mmio_burst",
    "clock-runs-paused": "test_pause",
    "paused-set-clock-ignored": "test_snapshot_roundtrip",
    "pv-clock-without-clocksource": "test_clock_devices",
    "clocksource-without-pv-clock": "test_clock_devices",
    "idt-not-loaded": "test_exception_delivery",
    "cr2-lost": "test_exception_delivery",
    "injected-interrupt-lost": "test_interrupt_injection",
    "window-in-sti-shadow": "test_interrupt_injection",
}


@pytest.fixture(scope="module")
def broken_run() -> SuiteResult:
    base = _base_or_skip()
    reg = broken_registry(base=base)
    return run_suite(registry=reg)


def test_control_passes_everything(broken_run: SuiteResult) -> None:
    control = [o for o in broken_run.outcomes if o.accelerator == "broken-none"]
    assert control, broken_run.output
    bad = [(o.check, o.status.value, o.detail) for o in control if o.status is Status.FAIL]
    assert not bad


@pytest.mark.parametrize("breakage", sorted(CAUGHT_BY))
def test_breakage_is_caught(broken_run: SuiteResult, breakage: str) -> None:
    outcome = broken_run.get(CAUGHT_BY[breakage], f"broken-{breakage}")
    assert outcome is not None, broken_run.output
    assert outcome.status is Status.FAIL, (outcome, BREAKAGES[breakage][0])
    assert outcome.detail


def test_every_breakage_is_caught_somewhere(broken_run: SuiteResult) -> None:
    for breakage in BREAKAGES:
        if breakage == "none":
            continue
        failed = [
            o.check
            for o in broken_run.outcomes
            if o.accelerator == f"broken-{breakage}" and o.status is Status.FAIL
        ]
        assert failed, f"no check caught {breakage}: {BREAKAGES[breakage][0]}"


def test_every_check_catches_a_breakage(broken_run: SuiteResult) -> None:
    caught = {o.check for o in broken_run.outcomes if o.status is Status.FAIL}
    missed = [c for c in broken_run.checks if c not in caught]
    assert not missed, f"checks that no broken accelerator makes fail: {missed}"


def test_exit_status_follows_failures(broken_run: SuiteResult) -> None:
    assert not broken_run.ok
    assert broken_run.failed


def _declared(breakage: str, declared: dict[str, str]) -> accel.Registry:
    base = _base_or_skip()
    info = broken_info(breakage, base)
    import dataclasses

    info = dataclasses.replace(
        info, unsupported={**info.unsupported_features, **declared}, name="declared"
    )
    reg = accel.Registry(entry_points=False)
    reg.register(plugin_of(info), name="declared")
    return reg


def test_declared_feature_that_fails_is_skipped_with_the_reason() -> None:
    reg = _declared("clock-backwards", {"clock": "my clock is odd"})
    result = run_suite(registry=reg, pytest_args=["-k", "test_clock"])
    outcome = result.get("test_clock", "declared")
    assert outcome is not None and outcome.status is Status.DECLARED
    assert "clock: my clock is odd" in outcome.detail
    assert result.ok


def test_declaration_not_needed_is_reported() -> None:
    reg = _declared("none", {"pause": "we thought pause was broken", "user-memory": "no"})
    result = run_suite(registry=reg, pytest_args=["-k", "pause or unknown_only"])
    pause = result.get("test_pause", "declared")
    assert pause is not None and pause.status is Status.DECLARED_PASSES
    assert pause.unneeded == ("pause",)
    caps = result.get("test_unknown_only_where_declared", "declared")
    assert caps is not None and caps.status is Status.DECLARED_PASSES
    assert caps.unneeded == ("user-memory",)
    assert result.ok
