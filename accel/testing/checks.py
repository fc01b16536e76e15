"""The conformance checks as plain functions, callable from any test runner.

Each ``check_*`` function exercises one part of the accelerator contract and raises
:class:`AssertionError` with a message naming what is wrong; it returns normally when
the accelerator conforms (trio.testing's shape). The pytest plugin
(:mod:`accel.testing.pytest_plugin`) runs each of them on every accelerator; a plugin's
own tests may call them directly::

    from accel.testing import checks

    def test_my_accelerator_memory():
        with MyAccelerator() as acc, acc.create_vm() as vm:
            checks.check_memory_bounds(vm)

Checks that need a VM take a fresh one and leave it open (the caller closes it); checks
that close handles (the lifecycle checks) take the accelerator and create what they
close. Nothing here names an accelerator.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..accelerator import (
    VM,
    Accelerator,
    Availability,
    ClockData,
    HaltExit,
    InternalErrorExit,
    InterruptWindowExit,
    MmioExit,
    PortIoExit,
    Registers,
    Segment,
    SpecialRegisters,
    Vcpu,
    real_mode_sregs,
)
from ..capabilities import Capability, CapabilityAnswer, CapabilitySet, Support
from ..errors import (
    AcceleratorUnavailableError,
    GuestMemoryError,
    HandleClosedError,
    MemoryLayoutError,
    UnsupportedError,
    VcpuStateError,
)
from ..plugin import AcceleratorInfo
from ..registry import Registry
from .features import FEATURES, Feature, declared_capabilities
from .programs import Program, ProgramResult, run_program

__all__ = [
    "check_code_segment_limit",
    "UNBACKED_FETCH_LIMIT",
    "check_unbacked_fetch",
    "CLOCK_RATE_BOUNDS",
    "check_availability",
    "check_capabilities_answered",
    "check_clock",
    "check_clock_rate",
    "check_clock_devices",
    "check_closed_handles",
    "check_declarations",
    "check_exception_delivery",
    "check_interrupt_injection",
    "check_guest_program",
    "check_memory_bounds",
    "check_multiple_vms",
    "check_pause",
    "check_register_roundtrip",
    "check_snapshot_roundtrip",
    "check_unavailable_contract",
    "check_unknown_only_where_declared",
    "check_vcpu_reset_state",
    "check_vm_capabilities",
    "check_vm_lifecycle",
    "paravirtual_clock_devices",
    "unneeded_capability_declarations",
]

PAGE = 0x1000


def _fail(message: str) -> AssertionError:
    return AssertionError(message)


# --------------------------------------------------------------------------- declarations


def check_declarations(info: AcceleratorInfo) -> None:
    """Every declared-unsupported feature is a known conformance feature with a reason.

    Raises:
        AssertionError: a declared name is not in :data:`accel.testing.features.FEATURES`
            (the message suggests the closest known name), or a reason is empty.
    """
    from ..errors import did_you_mean

    for name, reason in info.unsupported_features.items():
        if name not in FEATURES:
            guess = did_you_mean(name, FEATURES)
            raise _fail(
                f"{info.name}: declares unknown conformance feature {name!r} unsupported"
                + (f" (did you mean {guess!r}?)" if guess else "")
                + "; known: "
                + ", ".join(f.value for f in Feature)
                + ", or a capability name (see `accel info --json`)"
            )
        if not reason.strip():
            raise _fail(f"{info.name}: declares {name!r} unsupported without a reason")


# --------------------------------------------------------------------------- availability


def check_availability(accelerator: Accelerator) -> Availability:
    """``probe()`` never raises, returns an :class:`~accel.Availability`, and is stable.

    An unavailable accelerator must say why (a non-empty reason). Returns the answer.

    Raises:
        AssertionError: probe raised, returned something else, gave no reason when
            unavailable, or changed its answer between two calls.
    """
    try:
        first = accelerator.probe()
        second = accelerator.probe()
    except Exception as exc:
        raise _fail(
            f"probe() raised {type(exc).__name__}: {exc} (it must return a reason)"
        ) from exc
    if not isinstance(first, Availability):
        raise _fail(f"probe() returned {first!r}, not an Availability")
    if first.available != second.available:
        raise _fail(f"probe() answered {first.available} then {second.available}")
    if not first.available and not first.reason.strip():
        raise _fail("probe() says unavailable but gives no reason")
    return first


def check_unavailable_contract(accelerator: Accelerator) -> None:
    """An unavailable accelerator refuses work with :class:`AcceleratorUnavailableError`.

    Raises:
        AssertionError: ``capabilities()`` or ``create_vm()`` returned, or raised
            something other than ``AcceleratorUnavailableError``.
    """
    for call_name, call in (
        ("capabilities()", accelerator.capabilities),
        ("create_vm()", accelerator.create_vm),
    ):
        try:
            result = call()
        except AcceleratorUnavailableError:
            continue
        except Exception as exc:
            raise _fail(
                f"unavailable accelerator: {call_name} raised {type(exc).__name__}: {exc}, "
                "expected AcceleratorUnavailableError"
            ) from exc
        with contextlib.suppress(Exception):
            close = getattr(result, "close", None)
            if close is not None:
                close()
        raise _fail(f"unavailable accelerator: {call_name} returned {result!r}")


# --------------------------------------------------------------------------- capabilities


def _check_set(where: str, caps: object) -> CapabilitySet:
    if not isinstance(caps, CapabilitySet):
        missing = ""
        if isinstance(caps, Mapping):
            gone = [c.value for c in Capability if c not in caps]
            missing = f" (unanswered: {', '.join(gone)})" if gone else ""
        raise _fail(f"{where} returned {type(caps).__name__}, not a CapabilitySet{missing}")
    for cap in Capability:
        try:
            answer = caps[cap]
        except KeyError:
            raise _fail(f"{where}: capability {cap.value} is not answered") from None
        if not isinstance(answer, CapabilityAnswer) or not isinstance(answer.support, Support):
            raise _fail(f"{where}: answer for {cap.value} is {answer!r}")
        if answer.support is not Support.YES and answer.value not in (None, 0):
            raise _fail(
                f"{where}: {cap.value} is {answer.support.value} but carries value {answer.value}"
            )
        if answer.value is not None and answer.value < 0:
            raise _fail(f"{where}: {cap.value} has negative value {answer.value}")
    for cap in (Capability.MAX_VCPUS, Capability.NR_VCPUS):
        answer = caps[cap]
        if answer.support is Support.YES and (answer.value is None or answer.value < 1):
            raise _fail(f"{where}: {cap.value} is yes but its value is {answer.value!r}")
    mx, nr = caps[Capability.MAX_VCPUS], caps[Capability.NR_VCPUS]
    if mx.is_yes and nr.is_yes and (nr.value or 0) > (mx.value or 0):
        raise _fail(f"{where}: nr-vcpus {nr.value} exceeds max-vcpus {mx.value}")
    if caps[Capability.PV_CLOCKSOURCE_STABLE].is_yes and not caps[Capability.PV_CLOCKSOURCE].is_yes:
        raise _fail(f"{where}: pv-clocksource-stable is yes but pv-clocksource is not")
    return caps


def check_capabilities_answered(accelerator: Accelerator) -> CapabilitySet:
    """Every :class:`~accel.Capability` is answered, consistently, and stays the same.

    Returns the host-level set.

    Raises:
        AssertionError: ``capabilities()`` is not a full :class:`~accel.CapabilitySet`,
            an answer is malformed (a value on a no, a vCPU count below 1, nr-vcpus above
            max-vcpus, a stable pv clock without a pv clock), or a second call differs.
    """
    first = _check_set("capabilities()", accelerator.capabilities())
    second = _check_set("capabilities()", accelerator.capabilities())
    if first != second:
        changed = [c.value for c in Capability if first[c] != second[c]]
        raise _fail(f"capabilities() changed between two calls: {', '.join(changed)}")
    for cap in Capability:
        if accelerator.check(cap) != first[cap]:
            raise _fail(f"check({cap.value}) differs from capabilities()[{cap.value}]")
    return first


def unneeded_capability_declarations(caps: CapabilitySet, declared: Mapping[str, str]) -> list[str]:
    """Capabilities declared unsupported that are answered yes anyway."""
    return sorted(cap.value for cap in declared_capabilities(declared) if caps[cap].is_yes)


def check_unknown_only_where_declared(caps: CapabilitySet, declared: Mapping[str, str]) -> None:
    """A capability is answered unknown only when it is declared unsupported.

    Raises:
        AssertionError: naming every capability answered unknown without a declaration.
    """
    allowed = declared_capabilities(declared)
    bad = [c.value for c in Capability if caps[c].support is Support.UNKNOWN and c not in allowed]
    if bad:
        raise _fail(
            "capabilities answered unknown without a declaration: "
            + ", ".join(bad)
            + " (answer yes or no, or declare them unsupported with the reason)"
        )


def check_vm_capabilities(accelerator: Accelerator, vm: VM) -> None:
    """VM-level answers are complete and consistent with the host's.

    A VM never claims what its host denies; unless the accelerator answers
    ``vm-capability-query`` yes, a VM answers exactly as its host does.

    Raises:
        AssertionError: a VM-level answer is missing or malformed, says yes where the host
            says no, or differs from the host without per-VM queries.
    """
    host = accelerator.capabilities()
    vm_caps = _check_set("VM capabilities()", vm.capabilities())
    per_vm = host[Capability.VM_CAPABILITY_QUERY].is_yes
    for cap in Capability:
        h, v = host[cap], vm_caps[cap]
        if h.support is Support.NO and v.support is Support.YES:
            raise _fail(f"VM answers {cap.value} yes but its host answers no")
        if not per_vm and v.support is not h.support:
            raise _fail(
                f"VM answers {cap.value} {v.support.value}, host {h.support.value}, "
                "but vm-capability-query is not yes"
            )
        if vm.check(cap) != v:
            raise _fail(f"vm.check({cap.value}) differs from vm.capabilities()[{cap.value}]")


# --------------------------------------------------------------------------- lifecycle


def _expect_closed(what: str, calls: Iterable[tuple[str, Callable[[], Any]]]) -> None:
    for name, call in calls:
        try:
            call()
        except HandleClosedError:
            continue
        except Exception as exc:
            raise _fail(
                f"{what} is closed but {name} raised {type(exc).__name__}: {exc}, "
                "expected HandleClosedError"
            ) from exc
        raise _fail(f"{what} is closed but {name} still works (expected HandleClosedError)")


def check_vcpu_reset_state(vcpu: Vcpu) -> None:
    """A new vCPU is in the x86 architectural reset state.

    Raises:
        AssertionError: CS, RIP, RFLAGS or CR0 differ from the reset values.
    """
    regs, sregs = vcpu.get_regs(), vcpu.get_sregs()
    expected = {
        "cs.selector": (sregs.cs.selector, 0xF000),
        "cs.base": (sregs.cs.base, 0xFFFF0000),
        "rip": (regs.rip, 0xFFF0),
        "rflags": (regs.rflags, 0x2),
        "cr0": (sregs.cr0 & 0xFFFFFFFF, 0x60000010),
    }
    wrong = [
        f"{k}={got:#x} (expected {want:#x})" for k, (got, want) in expected.items() if got != want
    ]
    if wrong:
        raise _fail("new vCPU is not in the reset state: " + ", ".join(wrong))


def check_vm_lifecycle(accelerator: Accelerator) -> None:
    """VMs and vCPUs open, list, close idempotently, and closing cascades downwards.

    Raises:
        AssertionError: a handle is not listed, not closed by its parent's close, or
            a second ``close()`` raises.
    """
    with accelerator.create_vm() as vm:
        if vm.closed:
            raise _fail("a new VM reports closed")
        if vm.accelerator is not accelerator:
            raise _fail("vm.accelerator is not the accelerator that created it")
        cpu0 = vm.create_vcpu()
        cpu1 = vm.create_vcpu()
        if vm.vcpus != (cpu0, cpu1):
            raise _fail(f"vm.vcpus is {vm.vcpus!r}, expected the two vCPUs in creation order")
        if cpu0.index == cpu1.index:
            raise _fail(f"two vCPUs share index {cpu0.index}")
        if cpu0.vm is not vm:
            raise _fail("vcpu.vm is not the VM that created it")
        check_vcpu_reset_state(cpu0)
        cpu1.close()
        cpu1.close()
        if not cpu1.closed:
            raise _fail("vcpu.close() left it open")
        if cpu1 in vm.vcpus:
            raise _fail("a closed vCPU is still listed in vm.vcpus")
    if not vm.closed:
        raise _fail("leaving the VM's with-block did not close it")
    if not cpu0.closed:
        raise _fail("closing the VM did not close its vCPU")
    vm.close()  # idempotent
    vm2 = accelerator.create_vm()
    cpu = vm2.create_vcpu()
    accelerator.close()
    accelerator.close()
    if not (accelerator.closed and vm2.closed and cpu.closed):
        raise _fail(
            "closing the accelerator did not close everything: "
            f"accelerator={accelerator.closed}, vm={vm2.closed}, vcpu={cpu.closed}"
        )


def check_closed_handles(accelerator: Accelerator) -> None:
    """Every call on a closed accelerator, VM or vCPU raises ``HandleClosedError``.

    Raises:
        AssertionError: naming the handle and the call that still worked or raised
            something else.
    """
    vm = accelerator.create_vm()
    vm.add_memory(0, 0x10000)
    cpu = vm.create_vcpu()
    regs, sregs = cpu.get_regs(), cpu.get_sregs()
    cpu.close()
    _expect_closed(
        "vcpu",
        [
            ("get_regs()", cpu.get_regs),
            ("set_regs()", lambda: cpu.set_regs(regs)),
            ("get_sregs()", cpu.get_sregs),
            ("set_sregs()", lambda: cpu.set_sregs(sregs)),
            ("run()", cpu.run),
        ],
    )
    clock = vm.get_clock()
    vm.close()
    _expect_closed(
        "VM",
        [
            ("capabilities()", vm.capabilities),
            ("add_memory()", lambda: vm.add_memory(0x100000, 0x1000)),
            ("add_mmio()", lambda: vm.add_mmio(0x200000, 0x1000)),
            ("read_memory()", lambda: vm.read_memory(0, 4)),
            ("write_memory()", lambda: vm.write_memory(0, b"\0")),
            ("create_vcpu()", vm.create_vcpu),
            ("get_clock()", vm.get_clock),
            ("set_clock()", lambda: vm.set_clock(clock)),
            ("pause()", vm.pause),
        ],
    )
    accelerator.close()
    _expect_closed(
        "accelerator",
        [
            ("capabilities()", accelerator.capabilities),
            ("create_vm()", accelerator.create_vm),
        ],
    )


def check_multiple_vms(accelerator: Accelerator) -> None:
    """Two VMs of one accelerator coexist: separate memory, separate lifetimes.

    Raises:
        AssertionError: a write to one VM shows in the other, or closing one VM breaks
            the other.
    """
    with accelerator.create_vm() as a, accelerator.create_vm() as b:
        a.add_memory(0, 0x10000)
        b.add_memory(0, 0x10000)
        a.write_memory(0x100, b"vm-a")
        b.write_memory(0x100, b"vm-b")
        if a.read_memory(0x100, 4) != b"vm-a" or b.read_memory(0x100, 4) != b"vm-b":
            raise _fail("two VMs share guest memory")
        ca, cb = a.create_vcpu(), b.create_vcpu()
        a.close()
        if b.closed or cb.closed:
            raise _fail("closing one VM closed the other")
        if not ca.closed:
            raise _fail("closing a VM did not close its vCPU")
        if b.read_memory(0x100, 4) != b"vm-b":
            raise _fail("closing one VM changed the other's memory")
        cb.get_regs()


# --------------------------------------------------------------------------- memory


def _expect(exc_type: type[BaseException], what: str, call: Callable[[], object]) -> BaseException:
    try:
        call()
    except exc_type as exc:
        return exc
    except Exception as exc:
        raise _fail(
            f"{what} raised {type(exc).__name__}: {exc}, expected {exc_type.__name__}"
        ) from exc
    raise _fail(f"{what} did not raise {exc_type.__name__}")


def check_memory_bounds(vm: VM) -> None:
    """Guest memory is zeroed, round-trips, and refuses out-of-bounds and bad layouts.

    ``vm`` must have no memory yet.

    Raises:
        AssertionError: new RAM is not zero, a write does not read back, an access outside
            the regions or straddling two does not raise ``GuestMemoryError``, or a
            misaligned/overlapping region is accepted or changes the layout.
    """
    low = vm.add_memory(0, 0x10000)
    high = vm.add_memory(0x20000, 0x10000)
    if (low.guest_phys, low.size, high.guest_phys, high.size) != (0, 0x10000, 0x20000, 0x10000):
        raise _fail(f"add_memory returned {low!r} and {high!r}")
    regions = vm.memory_regions
    if [(r.guest_phys, r.size) for r in regions] != [(0, 0x10000), (0x20000, 0x10000)]:
        raise _fail(f"memory_regions is {regions!r}, expected the two regions in address order")
    if vm.read_memory(0, 0x10000) != bytes(0x10000):
        raise _fail("new guest RAM is not zeroed")
    pattern = bytes(range(256)) * 4
    for addr in (0, 0x8000 - 2, 0x10000 - len(pattern), 0x20000, 0x30000 - len(pattern)):
        vm.write_memory(addr, pattern)
        got = vm.read_memory(addr, len(pattern))
        if got != pattern:
            raise _fail(f"guest memory at {addr:#x} did not read back what was written")
    if bytes(low.view[0x8000 - 2 : 0x8000 - 2 + 4]) != pattern[:4]:
        raise _fail("MemoryRegion.view does not show what write_memory wrote")
    for addr, size, what in (
        (0x10000 - 2, 4, "a read across the end of a region"),
        (0x10000, 4, "a read of the gap between regions"),
        (0x30000, 1, "a read above the last region"),
        (0xFFFF, 0x10002, "a read straddling two regions"),
        (-1, 1, "a read at a negative address"),
    ):
        _expect(GuestMemoryError, what, functools.partial(vm.read_memory, addr, size))
    _expect(
        GuestMemoryError, "a write across a region's end", lambda: vm.write_memory(0xFFFE, b"abcd")
    )
    if vm.read_memory(0xFFFE, 2) != pattern[-2:]:
        raise _fail("a refused write across a region's end changed guest memory")
    before = vm.memory_regions
    for addr, size, what in (
        (0x40001, 0x1000, "a region at a misaligned address"),
        (0x40000, 0x800, "a region of misaligned size"),
        (0x40000, 0, "an empty region"),
        (0x8000, 0x10000, "a region overlapping RAM"),
        (0x2F000, 0x2000, "a region overlapping RAM's end"),
    ):
        _expect(
            MemoryLayoutError, f"add_memory: {what}", functools.partial(vm.add_memory, addr, size)
        )
    _expect(MemoryLayoutError, "add_mmio overlapping RAM", lambda: vm.add_mmio(0x1000, 0x1000))
    if [(r.guest_phys, r.size) for r in vm.memory_regions] != [
        (r.guest_phys, r.size) for r in before
    ]:
        raise _fail("a refused add_memory/add_mmio changed memory_regions")
    vm.add_mmio(0x40000, 0x1000)
    _expect(MemoryLayoutError, "add_memory over MMIO", lambda: vm.add_memory(0x40000, 0x1000))


# --------------------------------------------------------------------------- registers


def _distinct_regs() -> Registers:
    regs = Registers()
    for i, name in enumerate(Registers.NAMES):
        setattr(regs, name, 0x1111_0000 + 0x0101 * (i + 1))
    regs.rip = 0x1000
    regs.rflags = 0x2 | 0x1 | 0x4 | 0x80  # CF, PF, SF and the fixed bit
    return regs


def check_register_roundtrip(vm: VM) -> None:
    """General and special registers read back exactly what was set.

    Raises:
        AssertionError: naming each register that reads back differently.
    """
    cpu = vm.create_vcpu()
    want = _distinct_regs()
    cpu.set_regs(want)
    got = cpu.get_regs()
    diff = [
        f"{n}: wrote {want.as_dict()[n]:#x}, read {got.as_dict()[n]:#x}"
        for n in Registers.NAMES
        if got.as_dict()[n] != want.as_dict()[n]
    ]
    if diff:
        raise _fail("registers did not round-trip: " + "; ".join(diff))
    sregs = real_mode_sregs(cpu.get_sregs(), cs=0x100, ds=0x200)
    sregs.fs = Segment(base=0x3000, selector=0x300, limit=0xFFFF, type=3)
    sregs.gdt.base, sregs.gdt.limit = 0x5000, 0x27
    sregs.idt.base, sregs.idt.limit = 0x6000, 0x3FF
    sregs.cr3 = 0x7000
    cpu.set_sregs(sregs)
    back = cpu.get_sregs()
    sdiff = _sregs_diff(sregs, back)
    if sdiff:
        raise _fail("special registers did not round-trip: " + "; ".join(sdiff))
    again = cpu.get_regs()
    if again.as_dict() != want.as_dict():
        raise _fail("setting special registers changed the general registers")


def _sregs_diff(want: SpecialRegisters, got: SpecialRegisters) -> list[str]:
    out = []
    for seg in ("cs", "ds", "es", "fs", "gs", "ss"):
        w, g = getattr(want, seg), getattr(got, seg)
        for fld in ("selector", "base", "limit"):
            if getattr(w, fld) != getattr(g, fld):
                out.append(f"{seg}.{fld}: wrote {getattr(w, fld):#x}, read {getattr(g, fld):#x}")
    for table in ("gdt", "idt"):
        w, g = getattr(want, table), getattr(got, table)
        if (w.base, w.limit) != (g.base, g.limit):
            out.append(f"{table}: wrote {w.base:#x}/{w.limit:#x}, read {g.base:#x}/{g.limit:#x}")
    for name in ("cr0", "cr3"):
        if getattr(want, name) != getattr(got, name):
            out.append(f"{name}: wrote {getattr(want, name):#x}, read {getattr(got, name):#x}")
    return out


# --------------------------------------------------------------------------- guest programs


def check_guest_program(vm: VM, program: Program, *, timeout: float = 10.0) -> ProgramResult:
    """``program`` from the guest program library runs on ``vm`` exactly as expected.

    Final registers, memory and the whole port/MMIO trace must equal the program's
    expectations (so they are identical on every conforming accelerator). ``vm`` must be
    fresh; a vCPU that has not halted after ``timeout`` seconds is kicked. Returns the
    result.

    Raises:
        AssertionError: listing every register, memory range and I/O event that differs,
            or the exit the program ended with when it was not HLT.
    """
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(timeout):
            for cpu in vm.vcpus:
                with contextlib.suppress(Exception):
                    cpu.kick()

    guard = threading.Thread(target=watchdog, name=f"watchdog-{program.name}", daemon=True)
    guard.start()
    try:
        result = run_program(vm, program)
    finally:
        done.set()
        guard.join()
    wrong = result.mismatches(program)
    if wrong:
        raise _fail(
            f"guest program {program.name!r} ({program.description}) ended differently: "
            + "; ".join(wrong)
        )
    return result


#: Where :func:`check_unbacked_fetch` puts RAM, its program, and the address it jumps to.
_UNBACKED_RAM = 0x10000
_UNBACKED_CODE = 0x1000
_UNBACKED_TARGET = 0x20000
#: How long an accelerator may take to stop there (seconds).
UNBACKED_FETCH_LIMIT = 1.0


def check_unbacked_fetch(vm: VM, *, limit: float = UNBACKED_FETCH_LIMIT) -> InternalErrorExit:
    """Execution reaching memory that is neither RAM nor MMIO ends the run at once.

    The decided behaviour on every accelerator (docs/machines.md, "Guest execution that
    leaves memory"): an instruction fetch from a guest-physical address with no RAM and
    no declared MMIO range behind it makes ``run()`` return an
    :class:`~accel.InternalErrorExit` within ``limit`` seconds — not a HLT, a shutdown, a
    port/MMIO exit, or a run that spins until it is kicked. The guest here (real mode,
    64 KiB of RAM) far-jumps to ``0x2000:0000`` (0x20000, unbacked). ``vm`` must be fresh.

    Raises:
        AssertionError: naming the exit the accelerator gave instead, or the time it took.
    """
    vm.add_memory(0, _UNBACKED_RAM)
    vm.write_memory(_UNBACKED_CODE, bytes((0xEA, 0x00, 0x00, 0x00, _UNBACKED_TARGET >> 12)))
    cpu = vm.create_vcpu(0)
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs()))
    cpu.set_regs(Registers(rip=_UNBACKED_CODE, rflags=0x2))
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(limit * 5):
            with contextlib.suppress(Exception):
                cpu.kick()

    guard = threading.Thread(target=watchdog, name="watchdog-unbacked-fetch", daemon=True)
    start = time.monotonic()
    guard.start()
    try:
        ex = cpu.run()
    finally:
        done.set()
        guard.join()
    took = time.monotonic() - start
    if not isinstance(ex, InternalErrorExit):
        raise _fail(
            f"a jump to unbacked address {_UNBACKED_TARGET:#x} gave {ex!r} after {took:.2f} s, "
            "not an InternalErrorExit"
        )
    if took > limit:
        raise _fail(
            f"a jump to unbacked address {_UNBACKED_TARGET:#x} took {took:.2f} s to stop "
            f"(at most {limit:g} s)"
        )
    return ex


_LIMIT_CS = 0x100
_LIMIT_HANDLERS = 0x2000


def check_code_segment_limit(vm: VM) -> None:
    """A real-mode IP that runs past 0xFFFF raises #GP(0) through the IVT, as x86 does.

    Two fresh vCPUs of ``vm`` (1 MiB of RAM, every IVT vector ``v`` pointing at a HLT at
    ``0:0x2000+v``) run code that ends at ``0x100:0xFFFF``: four NOPs (the next
    instruction would start at IP 0x10000; the pushed IP is 0x0000), then three NOPs and
    a ``mov ax, imm16`` that straddles the limit (the pushed IP is 0xFFFF, the
    instruction's own). Each must halt in the #GP handler with FLAGS, CS 0x100 and that
    IP on the stack. This decides what an all-zero image does (it runs off its 64 KiB
    segment): the same on every accelerator, within a second, instead of running on.

    Raises:
        AssertionError: naming the exit, the handler reached and the frame found.
    """
    import struct

    vm.add_memory(0, 0x100000)
    ivt = b"".join(struct.pack("<HH", _LIMIT_HANDLERS + v, 0) for v in range(256))
    vm.write_memory(0, ivt)
    vm.write_memory(_LIMIT_HANDLERS, b"\xf4" * 256)
    for index, (code, pushed) in enumerate(((b"\x90" * 4, 0x0000), (b"\x90\x90\x90\xb8", 0xFFFF))):
        ip = 0x10000 - len(code)
        vm.write_memory((_LIMIT_CS << 4) + ip, code)
        cpu = vm.create_vcpu(index)
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=_LIMIT_CS))
        cpu.set_regs(Registers(rip=ip, rflags=0x2, rsp=0x8000))
        ex = _run_to_halt(vm, cpu, timeout=UNBACKED_FETCH_LIMIT * 5)
        regs = cpu.get_regs()
        where = f"code {code.hex()} at {_LIMIT_CS:#x}:{ip:#x}"
        if not isinstance(ex, HaltExit):
            raise _fail(f"{where}: ran past the 64 KiB segment limit and gave {ex!r}, not #GP")
        vector = regs.rip - 1 - _LIMIT_HANDLERS
        if not 0 <= vector < 256 or cpu.get_sregs().cs.selector != 0:
            raise _fail(f"{where}: halted at rip={regs.rip:#x}, not in an exception handler")
        frame = struct.unpack("<HHH", vm.read_memory(regs.rsp, 6))
        if vector != 13 or regs.rsp != 0x8000 - 6 or frame[:2] != (pushed, _LIMIT_CS):
            raise _fail(
                f"{where}: expected #GP (vector 13) with IP {pushed:#06x} CS {_LIMIT_CS:#x} "
                f"pushed at sp 0x7ffa; got vector {vector}, sp {regs.rsp:#x}, frame "
                f"IP {frame[0]:#06x} CS {frame[1]:#x}"
            )


# --------------------------------------------------------------------------- exceptions

#: Where the long-mode checks below put their tables: 4-level paging identity-mapping
#: the first 2 MiB (PML4 0x2000, PDPT 0x3000, PD 0x4000; nothing above), the IDT, the
#: GDT (null, 0x08 64-bit code, 0x10 data), the code and its handlers, the stack top.
_LM_PML4, _LM_IDT, _LM_GDT, _LM_CODE, _LM_STACK = 0x2000, 0x5000, 0x6000, 0x1000, 0x8000
_LM_PORT = 0x51

#: The exception check's guest (64-bit; listing from GNU as)::
#:
#:     1000: 31 c9                 xor ecx, ecx
#:     1002: b8 07 00 00 00        mov eax, 7
#:     1007: f7 f1                 div ecx              ; #DE -> 0x1100, skipped
#:     1009: b8 0d 60 00 00        mov eax, 0x600d
#:     100e: e7 51                 out 0x51, eax
#:     1010: 89 04 25 00 00 30 00  mov [0x300000], eax  ; #PF (not mapped) -> 0x1120
#:     1017: f4                    hlt
#:     1100: 48 8b 04 24           mov rax, [rsp]       ; #DE: the pushed RIP
#:     1104: e7 51                 out 0x51, eax
#:     1106: 48 83 04 24 02        add qword [rsp], 2
#:     110b: 48 cf                 iretq
#:     1120: 8b 04 24              mov eax, [rsp]       ; #PF: the error code,
#:     1123: e7 51                 out 0x51, eax
#:     1125: 0f 20 d0              mov rax, cr2         ; CR2,
#:     1128: e7 51                 out 0x51, eax
#:     112a: 48 8b 44 24 08        mov rax, [rsp + 8]   ; and the pushed RIP
#:     112f: e7 51                 out 0x51, eax
#:     1131: f4                    hlt
_EXC_CODE = {
    0x000: bytes.fromhex("31c9b807000000f7f1b80d600000e75189042500003000f4"),
    0x100: bytes.fromhex("488b0424e751488304240248cf"),
    0x120: bytes.fromhex("8b0424e7510f20d0e751488b442408e751f4"),
}
#: The injection check's guest (64-bit, entered with IF = 0)::
#:
#:     1000: b8 01 00 00 00        mov eax, 1
#:     1005: e7 51                 out 0x51, eax        ; IF = 0: a window is asked for
#:     1007: eb 00                 jmp 1009
#:     1009: fb                    sti
#:     100a: 90                    nop                  ; in the STI shadow
#:     100b: b8 02 00 00 00        mov eax, 2           ; the window opens here
#:     1010: e7 51                 out 0x51, eax
#:     1012: f4                    hlt                  ; woken by the second injection
#:     1013: b8 03 00 00 00        mov eax, 3
#:     1018: e7 51                 out 0x51, eax
#:     101a: f4                    hlt
#:     1100: 48 8b 04 24           mov rax, [rsp]       ; vector 0x30: the pushed RIP
#:     1104: e7 51                 out 0x51, eax
#:     1106: 48 cf                 iretq
_INJ_CODE = {
    0x000: bytes.fromhex("b801000000e751eb00fb90b802000000e751f4b803000000e751f4"),
    0x100: bytes.fromhex("488b0424e75148cf"),
}
_INJ_VECTOR = 0x30


def _long_mode_vcpu(vm: VM, code: Mapping[int, bytes], gates: Mapping[int, int]) -> Vcpu:
    """A vCPU of fresh ``vm`` in 64-bit mode at ``_LM_CODE`` with RFLAGS = 2, its IDT
    holding 64-bit interrupt gates ``vector -> handler offset`` (from ``_LM_CODE``)."""
    import struct

    vm.add_memory(0, 0x10000)
    vm.write_memory(_LM_PML4, struct.pack("<Q", 0x3003))
    vm.write_memory(0x3000, struct.pack("<Q", 0x4003))
    vm.write_memory(0x4000, struct.pack("<Q", 0x83))  # one 2 MiB page at 0
    vm.write_memory(_LM_GDT, struct.pack("<QQQ", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF))
    for vector, offset in gates.items():
        target = _LM_CODE + offset
        low = (target & 0xFFFF) | (0x08 << 16) | (0x8E00 << 32) | ((target >> 16) << 48)
        vm.write_memory(_LM_IDT + vector * 16, struct.pack("<QQ", low, target >> 32))
    for offset, blob in code.items():
        vm.write_memory(_LM_CODE + offset, blob)
    cpu = vm.create_vcpu(0)
    sregs = cpu.get_sregs()
    flat = {"base": 0, "limit": 0xFFFFFFFF, "present": 1, "s": 1, "g": 1, "dpl": 0}
    sregs.cs = Segment(selector=0x08, type=0xB, db=0, l=1, **flat)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, Segment(selector=0x10, type=0x3, db=1, l=0, **flat))
    sregs.gdt.base, sregs.gdt.limit = _LM_GDT, 23
    sregs.idt.base, sregs.idt.limit = _LM_IDT, 256 * 16 - 1
    sregs.cr3, sregs.cr4, sregs.efer, sregs.cr0 = _LM_PML4, 0x20, 0x500, 0x80000011
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=_LM_CODE, rflags=0x2, rsp=_LM_STACK))
    return cpu


def _reports(vm: VM, cpu: Vcpu, count: int, where: str) -> list[int]:
    """The next ``count`` exits, each an OUT to the report port: their values."""
    values: list[int] = []
    for _ in range(count):
        ex = cpu.run()
        if not isinstance(ex, PortIoExit) or ex.port != _LM_PORT or not ex.is_write:
            raise _fail(f"{where}: expected the guest's report #{len(values) + 1}, got {ex!r}")
        values.append(ex.value())
    return values


def check_exception_delivery(vm: VM) -> None:
    """Long mode delivers a fault through a 64-bit IDT and returns with IRETQ.

    A fresh ``vm`` (64 KiB of RAM, 4-level paging mapping the first 2 MiB) runs 64-bit
    code entered through ``set_sregs``: a DIV by zero (#DE, a fault: the pushed RIP is
    the DIV's, 0x1007; the handler skips it and returns), then a store to 0x300000, which
    no page maps (#PF: error code 2 = not present, write, supervisor; CR2 = 0x300000;
    the pushed RIP is the store's, 0x1010). The handlers report through OUT 0x51.

    Raises:
        AssertionError: naming the exit or the reported value that differs.
    """
    cpu = _long_mode_vcpu(vm, _EXC_CODE, {0: 0x100, 14: 0x120})
    where = "long-mode #DE and #PF"
    got = _reports(vm, cpu, 5, where)
    want = [0x1007, 0x600D, 0x2, 0x300000, 0x1010]
    names = ["#DE RIP", "after IRETQ", "#PF error code", "#PF CR2", "#PF RIP"]
    wrong = [
        f"{n} {g:#x} (want {w:#x})" for n, g, w in zip(names, got, want, strict=True) if g != w
    ]
    if wrong:
        raise _fail(f"{where}: the handlers saw " + ", ".join(wrong))
    ex = cpu.run()
    if not isinstance(ex, HaltExit):
        raise _fail(f"{where}: the #PF handler's HLT gave {ex!r}")
    cr2 = cpu.get_sregs().cr2
    if cr2 != 0x300000:
        raise _fail(f"{where}: get_sregs().cr2 is {cr2:#x} after the #PF, not 0x300000")


def check_interrupt_injection(vm: VM) -> None:
    """Injected interrupts and interrupt windows (Capability.INTERRUPT_INJECTION).

    A fresh ``vm`` runs 64-bit code entered with IF = 0. At its first report it cannot
    take an interrupt (``interrupt_ready()`` is false); a window is asked for and must
    open only after ``STI`` *and the instruction in its shadow* (``InterruptWindowExit``
    with RIP = 0x100b); vector 0x30 injected there is taken before that instruction (its
    handler reports the pushed RIP 0x100b). An accelerator may instead report the window
    at the guest's next exit (its second report; then the next ``run()`` must give the
    window at once, at RIP 0x1012, where the injected vector's handler reports 0x1012):
    some hosts' KVM never exits with KVM_EXIT_IRQ_WINDOW_OPEN. A window inside the
    shadow fails either way. Then the guest halts with IF = 1, and an
    interrupt injected at the HaltExit wakes it (the pushed RIP is after the HLT, 0x1013).

    An accelerator that answers ``interrupt-injection`` no must refuse every one of these
    calls with :class:`~accel.errors.UnsupportedError` instead (nothing else is checked).

    Raises:
        AssertionError: naming the call, the exit or the value that differs.
    """
    where = "interrupt injection"
    if not vm.capabilities().supports(Capability.INTERRUPT_INJECTION):
        cpu = vm.create_vcpu(0)
        calls: list[tuple[str, Callable[[], object]]] = [
            ("interrupt_ready()", cpu.interrupt_ready),
            ("inject_interrupt(0x30)", lambda: cpu.inject_interrupt(_INJ_VECTOR)),
            ("inject_nmi()", cpu.inject_nmi),
            ("request_interrupt_window(True)", lambda: cpu.request_interrupt_window(True)),
        ]
        for name, call in calls:
            _expect(UnsupportedError, f"{where} answered no: {name}", call)
        return
    cpu = _long_mode_vcpu(vm, _INJ_CODE, {_INJ_VECTOR: 0x100})
    if _reports(vm, cpu, 1, where) != [1]:
        raise _fail(f"{where}: the guest's first report is wrong")
    if cpu.interrupt_ready():
        raise _fail(f"{where}: interrupt_ready() is true with RFLAGS.IF = 0")
    cpu.request_interrupt_window(True)
    ex = cpu.run()
    late = isinstance(ex, PortIoExit) and ex.port == _LM_PORT and ex.is_write and ex.value() == 2
    if late:
        # The accelerator let the guest run on to its next exit (a host whose KVM never
        # exits with KVM_EXIT_IRQ_WINDOW_OPEN): allowed, if the next run() reports the
        # window at once, the guest being able to take an interrupt there.
        ex = cpu.run()
    if not isinstance(ex, InterruptWindowExit):
        raise _fail(f"{where}: with a window requested, IF = 0 then STI gave {ex!r}")
    rip = cpu.get_regs().rip
    want = 0x1012 if late else 0x100B
    if rip != want:
        raise _fail(
            f"{where}: the window opened at rip {rip:#x}, not {want:#x} (after STI and the "
            "instruction in its shadow" + (", at the guest's next exit)" if late else ")")
        )
    if not cpu.interrupt_ready():
        raise _fail(f"{where}: interrupt_ready() is false at an open window")
    cpu.request_interrupt_window(False)
    cpu.inject_interrupt(_INJ_VECTOR)
    expected = [0x1012] if late else [0x100B, 2]
    got = _reports(vm, cpu, len(expected), where)
    if got != expected:
        raise _fail(
            f"{where}: after injecting vector {_INJ_VECTOR:#x} at the window the guest "
            f"reported {[hex(v) for v in got]}, not {[hex(v) for v in expected]} (the "
            "handler's pushed RIP" + (")" if late else ", then 0x2)")
        )
    ex = cpu.run()
    if not isinstance(ex, HaltExit):
        raise _fail(f"{where}: the guest's HLT gave {ex!r}")
    if not cpu.interrupt_ready():
        raise _fail(f"{where}: interrupt_ready() is false in HLT with IF = 1")
    cpu.inject_interrupt(_INJ_VECTOR)
    got = _reports(vm, cpu, 2, where)
    if got != [0x1013, 3]:
        raise _fail(
            f"{where}: an interrupt injected at the HaltExit gave reports "
            f"{[hex(v) for v in got]}, not [0x1013 (the handler, after the HLT), 0x3]"
        )


# --------------------------------------------------------------------------- clock


def _clock(vm: VM) -> int:
    data = vm.get_clock()
    if not isinstance(data, ClockData):
        raise _fail(f"get_clock() returned {data!r}, not ClockData")
    return data.clock


def check_clock(vm: VM, *, interval: float = 0.02) -> None:
    """The VM clock is monotonic, advances while the VM runs, and can be set.

    Raises:
        AssertionError: the clock goes backwards, does not advance over ``interval``
            seconds of running, advances much faster than the host, or ``set_clock`` is
            not reflected in the next read.
    """
    readings = [_clock(vm) for _ in range(50)]
    for a, b in itertools.pairwise(readings):
        if b < a:
            raise _fail(f"VM clock went backwards: {a} then {b} ns")
    host0, c0 = time.monotonic_ns(), _clock(vm)
    time.sleep(interval)
    c1, host1 = _clock(vm), time.monotonic_ns()
    if c1 <= c0:
        raise _fail(
            f"VM clock did not advance in {interval * 1000:.0f} ms of running: {c0} -> {c1}"
        )
    if c1 - c0 > 10 * (host1 - host0) + 10_000_000:
        raise _fail(
            f"VM clock advanced {(c1 - c0) / 1e6:.1f} ms "
            f"in {(host1 - host0) / 1e6:.1f} ms of host time"
        )
    target = c1 + 3_600_000_000_000  # one hour ahead
    vm.set_clock(ClockData(target))
    c2 = _clock(vm)
    if not target <= c2 < target + 1_000_000_000:
        raise _fail(f"set_clock({target}) then get_clock() read {c2}")


#: The guest clock's rate against the host's monotonic clock must lie in this range.
CLOCK_RATE_BOUNDS = (0.75, 1.33)


def check_clock_rate(
    vm: VM,
    *,
    interval: float = 0.1,
    attempts: int = 3,
    bounds: tuple[float, float] = CLOCK_RATE_BOUNDS,
) -> float:
    """The running VM clock advances at the host's rate: nanoseconds, neither slow nor fast.

    Over ``interval`` seconds of host monotonic time the guest clock (``get_clock()``)
    must advance by between ``bounds[0]`` and ``bounds[1]`` times as much. Each guest
    read is bracketed by host reads, so a preempted check only widens the window in
    the check's favour: the low bound is taken against the shortest host interval the
    reads allow and the high bound against the longest. Up to ``attempts`` measurements
    are made and the first in range passes, so a loaded host cannot fail a conforming
    clock, while a clock that counts microseconds as nanoseconds (rate 0.001), runs at
    half speed (0.5) or double speed (2.0) fails every attempt. Returns the rate measured.

    Raises:
        AssertionError: every measurement was out of bounds (the message gives each).
    """
    low, high = bounds
    seen: list[str] = []
    for _ in range(attempts):
        h0a = time.monotonic_ns()
        c0 = _clock(vm)
        h0b = time.monotonic_ns()
        time.sleep(interval)
        h1a = time.monotonic_ns()
        c1 = _clock(vm)
        h1b = time.monotonic_ns()
        shortest, longest = max(1, h1a - h0b), max(1, h1b - h0a)
        guest = c1 - c0
        rate = guest / ((shortest + longest) / 2)
        if guest >= low * shortest and guest <= high * longest:
            return rate
        seen.append(
            f"{guest / 1e6:.3f} ms in {shortest / 1e6:.1f}..{longest / 1e6:.1f} ms "
            f"(rate {rate:.3g})"
        )
    raise _fail(
        f"the VM clock does not run at the host's rate (expected {low}..{high} guest "
        "nanoseconds per host nanosecond): " + "; ".join(seen)
    )


def check_pause(vm: VM, *, interval: float = 0.05) -> None:
    """Pausing stops the VM clock and forbids runs; resuming restarts both.

    ``vm`` should have a vCPU; one is created otherwise.

    Raises:
        AssertionError: the clock moves while paused, the paused time is counted after
            resume, ``run()`` works while paused (it must raise ``VcpuStateError``), or
            ``paused`` does not follow pause/resume.
    """
    if not vm.memory_regions:
        vm.add_memory(0, 0x10000)
    cpu = vm.vcpus[0] if vm.vcpus else vm.create_vcpu()
    vm.write_memory(0x1000, b"\xf4")  # hlt
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs()))
    cpu.set_regs(Registers(rip=0x1000))
    if vm.paused:
        raise _fail("a new VM reports paused")
    vm.pause()
    if not vm.paused:
        raise _fail("pause() did not set paused")
    p0 = _clock(vm)
    t0 = time.monotonic()
    time.sleep(interval)
    p1 = _clock(vm)
    if p1 != p0:
        raise _fail(f"VM clock moved while paused: {p0} -> {p1} ns")
    _expect(VcpuStateError, "run() while the VM is paused", cpu.run)
    paused_ns = int((time.monotonic() - t0) * 1e9)
    vm.resume()
    r0 = _clock(vm)
    if vm.paused:
        raise _fail("resume() did not clear paused")
    if r0 < p0:
        raise _fail(f"VM clock went backwards over pause/resume: {p0} -> {r0} ns")
    if r0 - p0 > paused_ns // 2:
        raise _fail(
            f"the {paused_ns / 1e6:.0f} ms spent paused was counted: the clock moved "
            f"{(r0 - p0) / 1e6:.1f} ms from pause to resume"
        )
    exit_ = cpu.run()
    if not isinstance(exit_, HaltExit):
        raise _fail(f"after resume() a HLT gave {exit_!r}, expected HaltExit")
    time.sleep(interval / 5)
    if _clock(vm) <= r0:
        raise _fail("VM clock did not advance after resume()")


# --------------------------------------------------------------------------- snapshots


def _run_to_halt(vm: VM, cpu: Vcpu, *, timeout: float = 10.0, limit: int = 1000) -> object:
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(timeout):
            with contextlib.suppress(Exception):
                cpu.kick()

    guard = threading.Thread(target=watchdog, name="watchdog-snapshot", daemon=True)
    guard.start()
    try:
        ex: object = None
        for _ in range(limit):
            ex = cpu.run()
            if isinstance(ex, HaltExit):
                break
            if not isinstance(ex, (PortIoExit, MmioExit)):
                break
        return ex
    finally:
        done.set()
        guard.join()


def check_snapshot_roundtrip(accelerator: Accelerator, program: Program | None = None) -> None:
    """A paused VM saved with :func:`accel.snapshot.save` restores into an equal VM.

    The VM is set up to run ``program`` (default: the library's arithmetic program) but
    not started; it is paused, saved twice, and restored onto the same accelerator. The
    restored VM must be paused with the saved clock, RAM and registers, and once resumed
    must run the program to the library's expected registers.

    Raises:
        AssertionError: two saves of a paused VM carry different clocks, the restored VM
            is not paused, or its clock, RAM or registers differ, or the program does not
            end as expected after resume.
    """
    from ..snapshot import restore, save
    from .programs import ARITHMETIC

    prog = program or ARITHMETIC
    with accelerator.create_vm() as vm:
        vm.add_memory(0, prog.ram_size)
        vm.write_memory(prog.load_address, prog.code)
        for address, blob in prog.data.items():
            vm.write_memory(address, blob)
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=prog.cs, ds=prog.ds))
        cpu.set_regs(Registers(rip=prog.entry_ip, rflags=0x2, **prog.initial_regs))
        vm.set_clock(ClockData(7_000_000_000))
        vm.pause()
        first, second = io.BytesIO(), io.BytesIO()
        saved = save(vm, first)
        again = save(vm, second)
        if saved.clock.clock != again.clock.clock:
            raise _fail(
                f"two saves of a paused VM carry different clocks: {saved.clock.clock} and "
                f"{again.clock.clock} ns"
            )
        regs, sregs = cpu.get_regs(), cpu.get_sregs()
        ram = vm.read_memory(0, prog.ram_size)
    first.seek(0)
    with restore(first, accelerator) as copy:
        if not copy.paused:
            raise _fail("a restored VM is not paused")
        clock = _clock(copy)
        if clock != saved.clock.clock:
            raise _fail(f"restored clock is {clock} ns, saved {saved.clock.clock} ns")
        if copy.read_memory(0, prog.ram_size) != ram:
            raise _fail("restored guest RAM differs from the saved RAM")
        if len(copy.vcpus) != 1:
            raise _fail(f"restored VM has {len(copy.vcpus)} vCPUs, saved 1")
        restored = copy.vcpus[0]
        got = restored.get_regs()
        diff = [n for n in Registers.NAMES if getattr(got, n) != getattr(regs, n)]
        if diff:
            raise _fail("restored registers differ: " + ", ".join(diff))
        sdiff = _sregs_diff(sregs, restored.get_sregs())
        if sdiff:
            raise _fail("restored special registers differ: " + "; ".join(sdiff))
        copy.resume()
        ex = _run_to_halt(copy, restored)
        if not isinstance(ex, HaltExit):
            raise _fail(f"the restored VM's program ended with {ex!r}, expected HaltExit()")
        final = restored.get_regs()
        wrong = [
            f"{n} = {getattr(final, n):#x}, expected {want:#x}"
            for n, want in prog.expected_regs.items()
            if getattr(final, n) != want
        ]
        if wrong:
            raise _fail(f"after restore, {prog.name!r} ended differently: " + "; ".join(wrong))


# --------------------------------------------------------------------------- machines


class _PlanView:
    """A :class:`~accel.MachineView` of a machine plan, for asking clock-device hooks."""

    def __init__(self, plan: Any, accelerator: Accelerator) -> None:
        self._plan = plan
        self._acc = accelerator

    @property
    def machine_type(self) -> str:
        return str(self._plan.machine_type.name)

    @property
    def family(self) -> str:
        return str(self._plan.machine_type.family)

    @property
    def version(self) -> tuple[int, int] | None:
        version = self._plan.machine_type.version
        return (int(version[0]), int(version[1])) if version else None

    @property
    def compat(self) -> Mapping[str, str]:
        return dict(self._plan.compat)

    @property
    def cpu(self) -> Any:
        return self._plan.cpu

    @property
    def vm(self) -> VM | None:
        return None

    @property
    def accelerator(self) -> Accelerator:
        return self._acc


def paravirtual_clock_devices(
    accelerator: Accelerator, registry: Registry, machine: str = "pc"
) -> list[str]:
    """The clock devices plugins *add* (not replacing a platform device) to ``machine``.

    These are the accelerator's paravirtual clocks (kvmclock under KVM): devices a
    machine gets only because the accelerator offers a paravirtual clocksource.
    """
    from ..machine import Machine

    plan = Machine.describe(accelerator, machine, registry=registry)
    choices = registry.clock_devices(accelerator, _PlanView(plan, accelerator))
    return sorted({c.device for c in choices if c.present and c.replaces is None})


def check_clock_devices(accelerator: Accelerator, registry: Registry, machine: str = "pc") -> None:
    """A machine's clock devices follow the accelerator's capabilities.

    A paravirtual clock device (one a plugin adds rather than substitutes for a platform
    device) is offered if and only if the accelerator answers ``pv-clocksource`` yes;
    :meth:`accel.machine.Machine.describe` and :meth:`~accel.machine.Machine.init`
    decide the same devices, and every device the plan lists is realised.

    Raises:
        AssertionError: a paravirtual clock without the clocksource (or the clocksource
            without a clock device on ``machine``), a plan that differs between
            describing and initialising, or a listed device that was not created.
    """
    from ..machine import Machine

    pv = accelerator.capabilities()[Capability.PV_CLOCKSOURCE].is_yes
    devices = paravirtual_clock_devices(accelerator, registry, machine)
    if devices and not pv:
        raise _fail(
            f"{machine} machine gets paravirtual clock device(s) {', '.join(devices)} but the "
            "accelerator does not answer pv-clocksource yes"
        )
    if pv and not devices:
        raise _fail(
            f"the accelerator answers pv-clocksource yes but no plugin adds a paravirtual "
            f"clock device to a {machine} machine"
        )
    described = Machine.describe(accelerator, machine, registry=registry).device_names()
    with Machine(accelerator, machine, registry=registry, ram_size=1 << 20) as m:
        if m.plan is None:
            raise _fail("Machine.init() left no plan")
        planned = m.plan.device_names()
        realised = {str(d.id) for d in m.devices}
    if planned != described:
        raise _fail(
            f"describe() and init() decide different devices: {sorted(described)} vs "
            f"{sorted(planned)}"
        )
    if not planned <= realised:
        raise _fail(f"devices listed but not created: {sorted(planned - realised)}")
