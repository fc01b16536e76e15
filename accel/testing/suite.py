"""The conformance suite: one body per check, run by pytest on every accelerator.

Run it with the accel pytest plugin::

    pytest --pyargs accel.testing.suite --accel kvm,tcg,xen
    accel conformance --accel kvm,tcg          # the same, printed as a matrix

or import its tests into a test module of your own (``from accel.testing.suite import
*``). Each test uses the plugin's fixtures, so it runs once per selected accelerator
(``test_memory_bounds[kvm]``); tests marked ``accel_feature`` skip with the declared
reason on accelerators that declare the feature unsupported.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accel.accelerator import VM, Accelerator
from accel.plugin import AcceleratorInfo
from accel.registry import Registry
from accel.testing import checks
from accel.testing.features import Feature
from accel.testing.programs import (
    ARITHMETIC,
    HALT,
    MMIO,
    PORT_IO,
    PROGRAMS,
    PROTECTED_MODE,
    STACK_AND_CALLS,
    STRINGS,
    Program,
)
from accel.testing.pytest_plugin import Declarations

__all__ = [
    "test_availability",
    "test_capabilities_answered",
    "test_clock",
    "test_clock_rate",
    "test_clock_devices",
    "test_closed_handles",
    "test_declarations",
    "test_exception_delivery",
    "test_interrupt_injection",
    "test_memory_bounds",
    "test_multiple_vms",
    "test_pause",
    "test_program_arithmetic",
    "test_program_halt",
    "test_program_mmio",
    "test_program_port_io",
    "test_program_protected_mode",
    "test_program_stack_and_calls",
    "test_program_strings",
    "test_register_roundtrip",
    "test_snapshot_roundtrip",
    "test_unknown_only_where_declared",
    "test_vm_capabilities",
    "test_vm_lifecycle",
]


def _feature(*features: Feature) -> pytest.MarkDecorator:
    return pytest.mark.accel_feature(*(f.value for f in features))


def test_declarations(accel_info: AcceleratorInfo) -> None:
    """Declared-unsupported features are known names with reasons."""
    checks.check_declarations(accel_info)


def test_availability(new_accelerator: Callable[[], Accelerator]) -> None:
    """probe() answers without raising; an unavailable accelerator refuses work."""
    acc = new_accelerator()
    availability = checks.check_availability(acc)
    if not availability.available:
        checks.check_unavailable_contract(acc)


def test_capabilities_answered(accelerator: Accelerator) -> None:
    """Every capability is answered, well formed and stable."""
    checks.check_capabilities_answered(accelerator)


def test_unknown_only_where_declared(
    accelerator: Accelerator, accel_declared: Declarations
) -> None:
    """Unknown answers only for capabilities declared unsupported; report unneeded ones."""
    caps = accelerator.capabilities()
    checks.check_unknown_only_where_declared(caps, accel_declared.reasons)
    for feature in checks.unneeded_capability_declarations(caps, accel_declared.reasons):
        accel_declared.not_needed(feature)


@_feature(Feature.VM)
def test_vm_capabilities(accelerator: Accelerator, vm: VM) -> None:
    """VM-level answers are complete and agree with the host's."""
    checks.check_vm_capabilities(accelerator, vm)


@_feature(Feature.VM)
def test_vm_lifecycle(accelerator: Accelerator) -> None:
    """VMs and vCPUs open, list and close; closing cascades."""
    checks.check_vm_lifecycle(accelerator)


@_feature(Feature.VM)
def test_closed_handles(accelerator: Accelerator) -> None:
    """Closed accelerators, VMs and vCPUs raise HandleClosedError."""
    checks.check_closed_handles(accelerator)


@_feature(Feature.MULTIPLE_VMS, Feature.VM)
def test_multiple_vms(accelerator: Accelerator) -> None:
    """Two VMs of one accelerator are independent."""
    checks.check_multiple_vms(accelerator)


@_feature(Feature.VM)
def test_memory_bounds(vm: VM) -> None:
    """Guest memory round-trips and refuses out-of-bounds accesses and bad layouts."""
    checks.check_memory_bounds(vm)


@_feature(Feature.REGISTERS)
def test_register_roundtrip(vm: VM) -> None:
    """Registers read back what was written."""
    checks.check_register_roundtrip(vm)


@_feature(Feature.GUEST_CODE)
def test_program_arithmetic(vm: VM) -> None:
    """16/32-bit arithmetic ends with the library's registers."""
    checks.check_guest_program(vm, ARITHMETIC)


@_feature(Feature.GUEST_CODE)
def test_program_strings(vm: VM) -> None:
    """String instructions (movs/stos/lods/cmps/scas, rep) leave the expected memory."""
    checks.check_guest_program(vm, STRINGS)


@_feature(Feature.GUEST_CODE)
def test_program_stack_and_calls(vm: VM) -> None:
    """Push/pop, call/ret and the stack contents match."""
    checks.check_guest_program(vm, STACK_AND_CALLS)


@_feature(Feature.PORT_IO)
def test_program_port_io(vm: VM) -> None:
    """Port I/O both ways: what the guest sent and what it received."""
    checks.check_guest_program(vm, PORT_IO)


@_feature(Feature.MMIO)
def test_program_mmio(vm: VM) -> None:
    """MMIO both ways: what the guest wrote and what it read."""
    checks.check_guest_program(vm, MMIO)


@_feature(Feature.GUEST_CODE)
def test_program_halt(vm: VM) -> None:
    """HLT is an exit of its own, at the right instruction."""
    checks.check_guest_program(vm, HALT)


@_feature(Feature.PROTECTED_MODE)
def test_program_protected_mode(vm: VM) -> None:
    """The guest loads a GDT, enters 32-bit protected mode and runs there."""
    checks.check_guest_program(vm, PROTECTED_MODE)


@_feature(Feature.GUEST_CODE)
def test_unbacked_fetch(vm: VM) -> None:
    """Execution that reaches memory with neither RAM nor MMIO ends the run within a
    second with an internal-error exit (one behaviour on every accelerator)."""
    checks.check_unbacked_fetch(vm)


@_feature(Feature.GUEST_CODE)
def test_code_segment_limit(vm: VM) -> None:
    """A real-mode IP running past 0xFFFF raises #GP through the IVT (so an all-zero
    image behaves the same on every accelerator)."""
    checks.check_code_segment_limit(vm)


@_feature(Feature.LONG_MODE)
def test_exception_delivery(vm: VM) -> None:
    """Long mode delivers #DE and #PF (error code, CR2) through a 64-bit IDT; IRETQ returns."""
    checks.check_exception_delivery(vm)


@_feature(Feature.LONG_MODE)
def test_interrupt_injection(vm: VM) -> None:
    """Injected interrupts: the window opens after STI and its shadow, HLT wakes to take one
    (where interrupt-injection is answered no, every injection call is refused)."""
    checks.check_interrupt_injection(vm)


#: Features of library programs that have no test written out above (by program name).
_PROGRAM_FEATURES = {
    "long-mode": Feature.LONG_MODE,
    "port-io-string": Feature.PORT_IO,
    "port-io-loop": Feature.PORT_IO,
    "mmio-burst": Feature.MMIO,
}


def _program_test(program: Program) -> Callable[[VM], None]:
    def test(vm: VM) -> None:
        checks.check_guest_program(vm, program)

    name = "test_program_" + program.name.replace("-", "_")
    test.__name__ = test.__qualname__ = name
    test.__doc__ = f"Guest program {program.name!r}: {program.description}."
    return _feature(_PROGRAM_FEATURES.get(program.name, Feature.GUEST_CODE))(test)


# Every program of the library is a check: those not written out above get a test here,
# so a program added to the library is run on every accelerator without editing this file.
for _program in PROGRAMS:
    _name = "test_program_" + _program.name.replace("-", "_")
    if _name not in globals():
        globals()[_name] = _program_test(_program)
        __all__.append(_name)


@_feature(Feature.CLOCK)
def test_clock(vm: VM) -> None:
    """The VM clock is monotonic, advances while running, and can be set."""
    checks.check_clock(vm)


@_feature(Feature.CLOCK)
def test_clock_rate(vm: VM) -> None:
    """The running VM clock counts nanoseconds at the host's rate (within 0.75..1.33)."""
    checks.check_clock_rate(vm)


@_feature(Feature.PAUSE)
def test_pause(vm: VM) -> None:
    """Pause freezes the clock and forbids runs; resume restarts both."""
    checks.check_pause(vm)


@_feature(Feature.CLOCK_DEVICES, Feature.VM)
def test_clock_devices(accelerator: Accelerator, accel_registry: Registry) -> None:
    """A paravirtual clock device exists iff the accelerator has a pv clocksource."""
    pytest.importorskip("accel.machine", reason="machines are not available")
    checks.check_clock_devices(accelerator, accel_registry)


@_feature(Feature.SNAPSHOT, Feature.VM)
def test_snapshot_roundtrip(accelerator: Accelerator) -> None:
    """A paused VM saves and restores into an equal VM that runs on correctly."""
    pytest.importorskip("accel.snapshot", reason="snapshots are not available")
    checks.check_snapshot_roundtrip(accelerator)
