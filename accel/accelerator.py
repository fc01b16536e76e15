"""The accelerator interface: Accelerator (host scope), VM (per VM), Vcpu (per vCPU).

Every accelerator plugin implements these three abstract classes; everything above them
(machines, snapshots, the conformance suite, the command line) is written against them
and never against a particular accelerator.

Rules every implementation follows (the conformance suite checks them):

* Handles are context managers; ``close()`` is idempotent; any other call after
  ``close()`` raises :class:`~accel.errors.HandleClosedError`. Closing an accelerator
  closes its VMs, closing a VM closes its vCPUs.
* No global state: many accelerators, VMs and vCPUs may exist in one process.
* Failures raise :mod:`accel.errors` types; a backend failure is a
  :class:`~accel.errors.BackendCallError` carrying the call's name and errno.
* A new vCPU is in the x86 architectural reset state (CS selector 0xF000 with base
  0xFFFF0000, RIP 0xFFF0, CR0 0x60000010, RFLAGS 0x2, RDX 0x600 or the CPU signature).
* :meth:`Vcpu.run` runs the guest until the next exit the caller must see and returns an
  :data:`Exit`. For an IN or an MMIO read, the caller writes the answer into
  ``exit.data`` (or calls ``exit.reply(value)``) before the next ``run()``; the
  accelerator completes the instruction with it. ``exit.data`` stays valid until then.

Example::

    with accel.open("kvm:tcg") as acc, acc.create_vm() as vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x1000, bytes.fromhex("b0 2a e6 10 f4"))  # mov al,42; out 0x10,al; hlt
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        while not isinstance(exit := cpu.run(), HaltExit):
            print(exit)
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Self

from . import errors as _errors
from .capabilities import Capability, CapabilityAnswer, CapabilitySet, ClockFlags
from .cpustate import CpuidEntry, DebugRegisters, FpuState, MpState, VcpuEvents
from .errors import InvalidArgumentError
from .irqstate import IrqchipState, LapicState, PitState

__all__ = [
    "Accelerator",
    "Availability",
    "ClockData",
    "CpuSpec",
    "DescriptorTable",
    "Exit",
    "HaltExit",
    "InternalErrorExit",
    "InterruptWindowExit",
    "InterruptedExit",
    "IoDirection",
    "MemoryRegion",
    "MmioExit",
    "PortIoExit",
    "Registers",
    "Segment",
    "ShutdownExit",
    "SpecialRegisters",
    "VM",
    "Vcpu",
    "VmOptions",
    "real_mode_sregs",
]

PAGE_SIZE = 4096

# --------------------------------------------------------------------------- registers


@dataclass(slots=True)
class Registers:
    """x86 general-purpose registers, RIP and RFLAGS (64-bit views)."""

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 0x2

    NAMES: ClassVar[tuple[str, ...]] = (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
    )  # fmt: skip

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.NAMES}


@dataclass(slots=True)
class Segment:
    """A segment register with its hidden part (the KVM ``kvm_segment`` shape)."""

    base: int = 0
    limit: int = 0xFFFF
    selector: int = 0
    type: int = 3
    present: int = 1
    dpl: int = 0
    db: int = 0
    s: int = 1
    l: int = 0  # noqa: E741 - the architectural name of the 64-bit code bit
    g: int = 0
    avl: int = 0
    unusable: int = 0

    FIELDS: ClassVar[tuple[str, ...]] = (
        "base", "limit", "selector", "type", "present", "dpl",
        "db", "s", "l", "g", "avl", "unusable",
    )  # fmt: skip

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(slots=True)
class DescriptorTable:
    """GDTR / IDTR."""

    base: int = 0
    limit: int = 0xFFFF

    def as_dict(self) -> dict[str, int]:
        return {"base": self.base, "limit": self.limit}


def _seg(selector: int = 0, base: int = 0, type_: int = 3) -> Segment:
    return Segment(base=base, limit=0xFFFF, selector=selector, type=type_)


@dataclass(slots=True)
class SpecialRegisters:
    """Segment, descriptor-table and control registers, EFER and the APIC base."""

    cs: Segment = field(default_factory=lambda: _seg(0xF000, 0xFFFF0000, 0xB))
    ds: Segment = field(default_factory=_seg)
    es: Segment = field(default_factory=_seg)
    fs: Segment = field(default_factory=_seg)
    gs: Segment = field(default_factory=_seg)
    ss: Segment = field(default_factory=_seg)
    tr: Segment = field(default_factory=lambda: Segment(type=0xB, s=0))
    ldt: Segment = field(default_factory=lambda: Segment(type=2, s=0))
    gdt: DescriptorTable = field(default_factory=DescriptorTable)
    idt: DescriptorTable = field(default_factory=DescriptorTable)
    cr0: int = 0x60000010
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    apic_base: int = 0xFEE00900

    SEGMENTS: ClassVar[tuple[str, ...]] = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")
    CONTROL: ClassVar[tuple[str, ...]] = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {s: getattr(self, s).as_dict() for s in self.SEGMENTS}
        out["gdt"] = self.gdt.as_dict()
        out["idt"] = self.idt.as_dict()
        for name in self.CONTROL:
            out[name] = getattr(self, name)
        return out


def real_mode_sregs(base: SpecialRegisters, *, cs: int = 0, ds: int = 0) -> SpecialRegisters:
    """``base`` changed to flat real mode with CS = ``cs`` and DS/ES/SS/FS/GS = ``ds``.

    Segment bases are ``selector << 4`` as the processor computes them in real mode.
    """
    base.cs = _seg(cs, cs << 4, 0xB)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(base, name, _seg(ds, ds << 4, 3))
    base.cr0 &= ~1
    return base


# --------------------------------------------------------------------------- clock


@dataclass(frozen=True, slots=True)
class ClockData:
    """The VM clock (kvmclock's ``kvm_clock_data`` shape): every field is kept.

    ``clock`` is guest nanoseconds; ``flags`` says which optional fields are valid:
    ``realtime`` (host wall time, ns since the epoch, at the read) with
    :attr:`ClockFlags.REALTIME`, ``host_tsc`` with :attr:`ClockFlags.HOST_TSC`.
    """

    clock: int
    flags: ClockFlags = ClockFlags.NONE
    realtime: int = 0
    host_tsc: int = 0

    @property
    def reliable(self) -> bool:
        """True when the read is stable across host CPUs (``TSC_STABLE``)."""
        return bool(self.flags & ClockFlags.TSC_STABLE)


# --------------------------------------------------------------------------- probe


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether an accelerator can be used here, and if not why and what to do.

    ``reason`` is one line for people (``"/dev/kvm: permission denied"``); ``hint`` says
    how to fix it (``"add your user to the kvm group"``); ``details`` holds structured
    facts for programs (``{"errno": 13, "path": "/dev/kvm"}``).

    ``creates_vms`` is False for an accelerator that is present and answers capabilities
    but cannot create VMs here (a stub on a host it recognises): it is listed and probed,
    but default selection and ``a:b`` fallback pass over it, giving ``reason``.

    ``applicable`` is False for an accelerator that is *absent* because this host is
    simply not the kind it needs (no Xen hypervisor under a bare-metal or KVM host),
    as opposed to present but broken (a device without permission, a missing module):
    :meth:`absent` makes one. It is always unavailable; ``accel check`` shows it as
    ``N/A`` (neither PASS nor FAIL, not counted in the exit status), as virt-host-validate
    does for checks that do not apply. Probes decide it from what they find, never the
    accelerator's name.
    """

    available: bool
    reason: str = ""
    hint: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)
    creates_vms: bool = True
    applicable: bool = True

    def __post_init__(self) -> None:
        if self.available and not self.applicable:
            raise InvalidArgumentError(
                "an Availability cannot be both available and not applicable",
                hint="use Availability.absent() for an accelerator this host cannot have",
                argument="applicable",
                value=self.applicable,
            )

    @classmethod
    def ok(cls, reason: str = "available", **details: object) -> Availability:
        return cls(True, reason, None, details)

    @classmethod
    def present(cls, reason: str, hint: str | None = None, **details: object) -> Availability:
        """Present and probed, but unable to create VMs (``creates_vms`` False)."""
        return cls(True, reason, hint, details, creates_vms=False)

    @classmethod
    def unavailable(cls, reason: str, hint: str | None = None, **details: object) -> Availability:
        return cls(False, reason, hint, details)

    @classmethod
    def absent(cls, reason: str, hint: str | None = None, **details: object) -> Availability:
        """Unavailable because this host is not the kind it needs (``applicable`` False).

        For "not running under Xen", not for a fixable fault such as a permission
        denied or a module not loaded (use :meth:`unavailable` for those).
        """
        return cls(False, reason, hint, details, applicable=False)

    def __bool__(self) -> bool:
        return self.available


# --------------------------------------------------------------------------- exits


class IoDirection(enum.Enum):
    IN = "in"
    OUT = "out"


class _Exit:
    """Base of the exit types (not public: match on the concrete classes)."""

    __slots__ = ()


class _DataExit(_Exit):
    __slots__ = ()
    data: memoryview | bytearray

    def value(self) -> int:
        """``data`` read as a little-endian unsigned integer."""
        return int.from_bytes(self.data, "little")

    def reply(self, value: int | bytes) -> None:
        """Answer an IN or an MMIO read: the guest sees ``value`` when it resumes."""
        n = len(self.data)
        if isinstance(value, int) and not 0 <= value < 1 << (8 * n):
            raise InvalidArgumentError(
                f"reply {value:#x} does not fit in {n} bytes",
                hint="pass a non-negative value of the access size",
                argument="value",
                value=value,
            )
        raw = value.to_bytes(n, "little") if isinstance(value, int) else value
        if len(raw) != n:
            raise InvalidArgumentError(
                f"reply must be {n} bytes, got {len(raw)}", argument="value", value=value
            )
        self.data[:] = raw


class PortIoExit(_DataExit):
    """The guest executed IN/OUT (or INS/OUTS): ``count`` accesses of ``size`` bytes.

    For OUT, ``data`` holds what the guest wrote; for IN, write the answer into it.
    """

    __slots__ = ("count", "data", "direction", "port", "size")

    def __init__(
        self,
        port: int,
        size: int,
        direction: IoDirection,
        data: memoryview | bytearray,
        count: int = 1,
    ) -> None:
        self.port = port
        self.size = size
        self.direction = direction
        self.data = data
        self.count = count

    @property
    def is_write(self) -> bool:
        return self.direction is IoDirection.OUT

    def __repr__(self) -> str:
        return (
            f"PortIoExit(port={self.port:#x}, size={self.size}, "
            f"direction={self.direction.value}, count={self.count}, data={bytes(self.data)!r})"
        )


class MmioExit(_DataExit):
    """The guest accessed guest-physical ``address`` that no RAM region backs."""

    __slots__ = ("address", "data", "is_write", "size")

    def __init__(
        self, address: int, size: int, is_write: bool, data: memoryview | bytearray
    ) -> None:
        self.address = address
        self.size = size
        self.is_write = is_write
        self.data = data

    def __repr__(self) -> str:
        return (
            f"MmioExit(address={self.address:#x}, size={self.size}, "
            f"is_write={self.is_write}, data={bytes(self.data)!r})"
        )


class HaltExit(_Exit):
    """The guest executed HLT (and no interrupt controller woke it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HaltExit()"


class ShutdownExit(_Exit):
    """The guest shut down: a triple fault, or a state the processor cannot continue."""

    __slots__ = ("reason",)

    def __init__(self, reason: str = "triple fault") -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"ShutdownExit(reason={self.reason!r})"


class InternalErrorExit(_Exit):
    """The accelerator could not run the guest: entry failure, emulation failure ...

    ``kind`` names the class of failure (``"fail-entry"``, ``"internal-error"``,
    ``"emulation"``), ``code`` the backend's code (hardware entry failure reason,
    suberror), ``detail`` the backend's words, ``data`` any extra words.
    """

    __slots__ = ("code", "data", "detail", "kind")

    def __init__(
        self, kind: str, code: int = 0, detail: str = "", data: tuple[int, ...] = ()
    ) -> None:
        self.kind = kind
        self.code = code
        self.detail = detail
        self.data = data

    def __repr__(self) -> str:
        return f"InternalErrorExit(kind={self.kind!r}, code={self.code:#x}, detail={self.detail!r})"


class InterruptedExit(_Exit):
    """The run was stopped from outside (:meth:`Vcpu.kick`) before the guest exited."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "InterruptedExit()"


class InterruptWindowExit(_Exit):
    """The guest can take an external interrupt now: the window asked for with
    :meth:`Vcpu.request_interrupt_window` is open (RFLAGS.IF set, no STI / MOV SS shadow;
    KVM's KVM_EXIT_IRQ_WINDOW_OPEN)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "InterruptWindowExit()"


Exit = (
    PortIoExit
    | MmioExit
    | HaltExit
    | ShutdownExit
    | InternalErrorExit
    | InterruptedExit
    | InterruptWindowExit
)
"""The closed set of things :meth:`Vcpu.run` returns."""


# --------------------------------------------------------------------------- cpu spec


@dataclass(frozen=True, slots=True)
class CpuSpec:
    """A CPU model name and flags switched on or off, as in ``-cpu host,-kvmclock``.

    ``flags`` maps a flag name to True (``+flag``) or False (``-flag``); flags not named
    take the model's default. Accelerators map the flags they know onto what the guest
    sees (CPUID) and ignore the rest; :meth:`parse` reads the ``-cpu`` syntax.
    """

    model: str = "host"
    flags: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise InvalidArgumentError(
                "CPU model must be a non-empty string", argument="model", value=self.model
            )
        seen: dict[str, bool] = {}
        for name, on in self.flags:
            seen[name] = bool(on)
        object.__setattr__(self, "flags", tuple(sorted(seen.items())))

    @classmethod
    def parse(cls, text: str) -> CpuSpec:
        """``"host,-kvmclock,+x2apic,pmu=off"`` -> ``CpuSpec("host", {...})``."""
        parts = [p.strip() for p in text.split(",")]
        if not parts or not parts[0] or "=" in parts[0] or parts[0][0] in "+-":
            raise InvalidArgumentError(
                f"CPU spec {text!r} must start with a model name",
                hint="for example 'host' or 'host,-kvmclock'",
                argument="cpu",
                value=text,
            )
        flags: list[tuple[str, bool]] = []
        for part in parts[1:]:
            if not part:
                continue
            if part[0] in "+-":
                flags.append((part[1:], part[0] == "+"))
            elif "=" in part:
                name, _, val = part.partition("=")
                if val.lower() in ("on", "true", "yes"):
                    flags.append((name, True))
                elif val.lower() in ("off", "false", "no"):
                    flags.append((name, False))
                else:
                    raise InvalidArgumentError(
                        f"CPU flag {name!r} takes on/off, not {val!r}",
                        argument="cpu",
                        value=text,
                    )
            else:
                flags.append((part, True))
        return cls(parts[0], tuple(flags))

    def flag(self, name: str, default: bool | None = None) -> bool | None:
        """The flag's explicit setting, or ``default`` when the spec does not name it."""
        for key, on in self.flags:
            if key == name:
                return on
        return default

    def with_flag(self, name: str, on: bool) -> CpuSpec:
        return CpuSpec(self.model, (*self.flags, (name, on)))

    def __str__(self) -> str:
        return ",".join([self.model, *(("+" if on else "-") + n for n, on in self.flags)])


# --------------------------------------------------------------------------- handles


class _Handle(abc.ABC):
    """Shared context-manager and closed-handle behaviour."""

    _closed: bool = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _describe(self) -> str:
        return type(self).__name__.lower()

    def _check_open(self) -> None:
        if self._closed:
            raise _errors.HandleClosedError(self._describe())

    def close(self) -> None:
        """Release every resource; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close()

    @abc.abstractmethod
    def _close(self) -> None:
        """Release resources; called once by :meth:`close`."""

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class VmOptions:
    """What :meth:`Accelerator.create_vm` sets up.

    ``irqchip``: an in-accelerator interrupt controller (needs :attr:`Capability.IRQCHIP`);
    ``pit``: an in-accelerator PIT (needs :attr:`Capability.PIT` and ``irqchip``);
    ``cpu_cores``: the cores of one socket, one thread each, that the vCPUs' CPUID
    topology describes (QEMU's ``-smp N`` gives N cores on 7.2's machine types, N
    sockets on those before 6.2: the machine decides); accelerators that do not model
    a topology ignore it.
    """

    irqchip: bool = False
    pit: bool = False
    cpu_cores: int = 1


class MemoryRegion:
    """A guest-physical RAM region backed by host memory.

    ``view`` is a writable memoryview of the whole region; reads and writes through
    :meth:`read`/:meth:`write` take guest-physical addresses and are bounds-checked.
    """

    __slots__ = ("guest_phys", "readonly", "size", "slot", "view")

    def __init__(
        self, guest_phys: int, size: int, view: memoryview, *, readonly: bool = False, slot: int = 0
    ) -> None:
        self.guest_phys = guest_phys
        self.size = size
        self.view = view
        self.readonly = readonly
        self.slot = slot

    @property
    def end(self) -> int:
        """One past the last guest-physical address."""
        return self.guest_phys + self.size

    def contains(self, address: int, size: int = 1) -> bool:
        return self.guest_phys <= address and address + size <= self.end

    def __repr__(self) -> str:
        return f"MemoryRegion({self.guest_phys:#x}..{self.end:#x}, slot={self.slot})"


class Accelerator(_Handle):
    """Host scope: probe, capabilities (read once, then answered from memory), VMs.

    Constructing an accelerator does no I/O; :meth:`probe` looks at the host and never
    raises; the other methods raise :class:`~accel.errors.AcceleratorUnavailableError`
    when the probe said no.
    """

    #: The accelerator's registered name (``"kvm"``); set by the implementation.
    name: str = ""

    def _describe(self) -> str:
        return f"accelerator {self.name!r}"

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Whether this accelerator works here; never raises for a host problem."""

    @abc.abstractmethod
    def capabilities(self) -> CapabilitySet:
        """Host-level answers for every :class:`Capability` (cached after the first call)."""

    def check(self, cap: Capability) -> CapabilityAnswer:
        """One host-level answer."""
        return self.capabilities()[cap]

    @abc.abstractmethod
    def create_vm(self, options: VmOptions | None = None) -> VM:
        """A new VM handle (closed when the accelerator is)."""


class VM(_Handle):
    """Per-VM scope: VM-level capabilities, guest memory, vCPUs, the VM clock."""

    accelerator: Accelerator

    def _describe(self) -> str:
        return f"{self.accelerator.name} VM"

    # -- capabilities
    @abc.abstractmethod
    def capabilities(self) -> CapabilitySet:
        """VM-level answers (may differ from the host's)."""

    def check(self, cap: Capability) -> CapabilityAnswer:
        return self.capabilities()[cap]

    # -- memory
    @abc.abstractmethod
    def add_memory(self, guest_phys: int, size: int, *, readonly: bool = False) -> MemoryRegion:
        """Map ``size`` bytes of zeroed RAM at ``guest_phys``.

        Both must be multiples of 4 KiB and the region may not overlap another RAM or
        MMIO region; otherwise :class:`~accel.errors.MemoryLayoutError` and nothing changes.
        """

    @abc.abstractmethod
    def add_mmio(self, guest_phys: int, size: int) -> None:
        """Declare ``[guest_phys, guest_phys+size)`` as MMIO: accesses become :class:`MmioExit`.

        Same alignment and overlap rules as :meth:`add_memory`. (Hardware accelerators
        also exit on accesses to undeclared, unbacked addresses; software ones need the
        declaration.)
        """

    @property
    @abc.abstractmethod
    def memory_regions(self) -> tuple[MemoryRegion, ...]:
        """The RAM regions, in guest-physical order."""

    @property
    @abc.abstractmethod
    def mmio_ranges(self) -> tuple[tuple[int, int], ...]:
        """The declared MMIO ranges as ``(guest_phys, size)``."""

    #: Guest-physical address width: regions must end at or below ``1 << _phys_bits``.
    #: 52 is the x86 architectural maximum; an accelerator with a smaller space lowers it.
    _phys_bits: ClassVar[int] = 52

    def _check_layout(self, guest_phys: int, size: int, *, what: str = "region") -> None:
        """Raise unless ``[guest_phys, guest_phys+size)`` may become a new RAM/MMIO region.

        The rule of :meth:`add_memory` and :meth:`add_mmio`: integers (not bools), a
        positive size, a non-negative 4 KiB-aligned address and size, inside the
        ``_phys_bits`` guest-physical space, no overlap with :attr:`memory_regions` or
        :attr:`mmio_ranges`. A wrong type is an :class:`~accel.errors.InvalidArgumentError`
        (fields ``argument``, ``value``); everything else a
        :class:`~accel.errors.MemoryLayoutError` with fields ``address`` and ``size``
        (and ``conflict``, ``conflict_kind`` on an overlap). ``what`` names the call in
        messages. Implementations call it before changing anything, so nothing changes.
        """
        for name, value in (("guest_phys", guest_phys), ("size", size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgumentError(
                    f"{what}: {name} must be an int, not {value!r}",
                    hint="pass integer byte addresses and sizes",
                    argument=name,
                    value=value,
                )
        if size <= 0:
            raise _errors.MemoryLayoutError(
                f"{what}: memory region at {guest_phys:#x} is empty (size {size:#x})",
                hint="give a positive size, a multiple of 4 KiB",
                address=guest_phys,
                size=size,
            )
        if guest_phys < 0 or guest_phys % PAGE_SIZE or size % PAGE_SIZE:
            raise _errors.MemoryLayoutError(
                f"{what}: memory region {guest_phys:#x}+{size:#x} is not 4 KiB aligned",
                hint=f"use non-negative multiples of {PAGE_SIZE} for both the address and the size",
                address=guest_phys,
                size=size,
            )
        end = guest_phys + size
        if end > 1 << self._phys_bits:
            raise _errors.MemoryLayoutError(
                f"{what}: memory region {guest_phys:#x}..{end:#x} is beyond the "
                f"{self._phys_bits}-bit guest-physical address space",
                hint=f"keep regions below {1 << self._phys_bits:#x}",
                address=guest_phys,
                size=size,
            )
        spans = [(r.guest_phys, r.size, "RAM") for r in self.memory_regions]
        spans += [(start, length, "MMIO") for start, length in self.mmio_ranges]
        for start, length, kind in spans:
            if guest_phys < start + length and start < end:
                raise _errors.MemoryLayoutError(
                    f"{what}: memory region {guest_phys:#x}..{end:#x} overlaps the {kind} "
                    f"region {start:#x}..{start + length:#x}",
                    hint="choose a free guest-physical range",
                    address=guest_phys,
                    size=size,
                    conflict=(start, length),
                    conflict_kind=kind,
                )

    def read_memory(self, address: int, size: int) -> bytes:
        """Guest RAM bytes; the whole range must lie inside one region."""
        region = self._region_for(address, size)
        off = address - region.guest_phys
        return bytes(region.view[off : off + size])

    def write_memory(self, address: int, data: bytes | bytearray | memoryview) -> None:
        """Write guest RAM; the whole range must lie inside one region."""
        region = self._region_for(address, len(data))
        off = address - region.guest_phys
        region.view[off : off + len(data)] = data

    def _region_for(self, address: int, size: int) -> MemoryRegion:
        self._check_open()
        if size < 0 or address < 0:
            raise _errors.GuestMemoryError(
                f"invalid guest memory access at {address:#x} size {size}",
                address=address,
                size=size,
            )
        for region in self.memory_regions:
            if region.contains(address, size):
                return region
        raise _errors.GuestMemoryError(
            f"guest range {address:#x}..{address + size:#x} is not inside one RAM region",
            hint="regions: "
            + (", ".join(f"{r.guest_phys:#x}..{r.end:#x}" for r in self.memory_regions) or "none"),
            address=address,
            size=size,
        )

    # -- interrupts
    def set_irq_line(self, irq: int, level: bool) -> None:
        """Drive input ``irq`` of the VM's in-accelerator interrupt controller to ``level``
        (an ISA line: the PIC pin and the IOAPIC pin of that number).

        Only a VM created with ``VmOptions(irqchip=True)`` on an accelerator that reports
        :attr:`Capability.IRQCHIP` has one; the default raises
        :class:`~accel.errors.UnsupportedError`.
        """
        raise _errors.UnsupportedError(
            f"{self.accelerator.name} VM has no in-accelerator interrupt controller to "
            f"raise IRQ {irq} on",
            hint="create the VM with VmOptions(irqchip=True) on an accelerator reporting "
            "the irqchip capability",
            accelerator=self.accelerator.name,
            feature="irq-line",
        )

    # -- interrupt controllers, PIT and TSC held inside the accelerator (accel.irqstate).
    #    The defaults raise UnsupportedError: the state is not held there (a snapshot
    #    then does not carry it from the accelerator).
    def _not_held(self, what: str, capability: str) -> _errors.UnsupportedError:
        name = self.accelerator.name
        return _errors.UnsupportedError(
            f"{name} VM holds no {what}",
            hint=f"check Capability.{capability.upper().replace('-', '_')} before calling",
            accelerator=name,
            feature=capability,
        )

    def get_irqchip_state(self) -> IrqchipState:
        """The in-accelerator PIC pair and IOAPIC."""
        raise self._not_held("in-accelerator PIC/IOAPIC", "irqchip")

    def set_irqchip_state(self, state: IrqchipState) -> None:
        raise self._not_held("in-accelerator PIC/IOAPIC", "irqchip")

    def get_pit_state(self) -> PitState:
        """The in-accelerator 8254 PIT."""
        raise self._not_held("in-accelerator PIT", "pit")

    def set_pit_state(self, state: PitState) -> None:
        raise self._not_held("in-accelerator PIT", "pit")

    def get_tsc_khz(self) -> int:
        """The guest TSC frequency in kHz."""
        raise self._not_held("guest TSC frequency", "tsc-khz")

    def set_tsc_khz(self, khz: int) -> None:
        """Scale the guest TSC to ``khz`` (Capability.TSC_CONTROL)."""
        raise self._not_held("TSC frequency control", "tsc-control")

    # -- vCPUs
    @abc.abstractmethod
    def create_vcpu(self, index: int | None = None, *, cpu: CpuSpec | None = None) -> Vcpu:
        """A new vCPU in the architectural reset state; ``cpu`` filters what it sees."""

    @property
    @abc.abstractmethod
    def vcpus(self) -> tuple[Vcpu, ...]:
        """Open vCPUs in creation order."""

    # -- clock
    @abc.abstractmethod
    def get_clock(self) -> ClockData:
        """The VM clock now (or the value cached at :meth:`pause` while paused).

        A failed read raises :class:`~accel.errors.BackendCallError`; never a zero clock.
        """

    @abc.abstractmethod
    def set_clock(self, data: ClockData) -> None:
        """Set the VM clock (while paused: replaces the cached value written on resume)."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Stop the guest clock: read and cache it; vCPUs may not run until :meth:`resume`."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Write the cached clock back, tell vCPUs they were paused, allow runs again."""

    @property
    @abc.abstractmethod
    def paused(self) -> bool: ...


class Vcpu(_Handle):
    """Per-vCPU scope: registers and the run loop."""

    index: int
    vm: VM

    def _describe(self) -> str:
        return f"vcpu {self.index}"

    @abc.abstractmethod
    def get_regs(self) -> Registers: ...

    @abc.abstractmethod
    def set_regs(self, regs: Registers) -> None: ...

    @abc.abstractmethod
    def get_sregs(self) -> SpecialRegisters: ...

    @abc.abstractmethod
    def set_sregs(self, sregs: SpecialRegisters) -> None: ...

    @abc.abstractmethod
    def run(self) -> Exit:
        """Run until the next exit. Raises :class:`~accel.errors.VcpuStateError` when paused."""

    @abc.abstractmethod
    def kick(self) -> None:
        """Make the current (or next) :meth:`run` return :class:`InterruptedExit` soon.

        Safe to call from another thread or a signal handler.
        """

    # -- interrupt injection (Capability.INTERRUPT_INJECTION): what an interrupt
    #    controller modelled outside the accelerator drives. Not thread-safe against a
    #    running run(): call them between runs, on the thread that runs the vCPU.
    def _unsupported(self, feature: str, what: str) -> _errors.UnsupportedError:
        name = self.vm.accelerator.name
        return _errors.UnsupportedError(
            f"{name} vCPU cannot {what}",
            hint=f"check Capability.{feature.upper().replace('-', '_')} before calling",
            accelerator=name,
            feature=feature,
        )

    def interrupt_ready(self) -> bool:
        """True when an external interrupt injected now is taken before the next guest
        instruction: RFLAGS.IF is set, there is no STI / MOV SS shadow and no injected
        interrupt is still waiting (KVM's ``ready_for_interrupt_injection`` and ``if_flag``)."""
        raise self._unsupported("interrupt-injection", "report whether it can take an interrupt")

    def inject_interrupt(self, vector: int) -> None:
        """Deliver external interrupt ``vector`` (32..255) before the next guest instruction,
        through the IDT as the CPU's mode says; a vCPU halted in HLT wakes to take it.

        Call only when :meth:`interrupt_ready` is true: otherwise
        :class:`~accel.errors.VcpuStateError` and nothing is queued. A vector outside
        0..255 is an :class:`~accel.errors.InvalidArgumentError`.
        """
        raise self._unsupported("interrupt-injection", "take an injected interrupt")

    def inject_nmi(self) -> None:
        """Raise an NMI (vector 2) on the vCPU; held while NMIs are blocked, as on hardware."""
        raise self._unsupported("interrupt-injection", "take an injected NMI")

    def request_interrupt_window(self, wanted: bool) -> None:
        """While ``wanted``, :meth:`run` returns :class:`InterruptWindowExit` as soon as the
        guest can take an external interrupt (at once when it already can). Where the
        hardware does not report the window itself (some hosts' KVM), the window may
        first be seen at the guest's next exit: the next :meth:`run` then returns it at
        once. It never opens inside an STI / MOV SS shadow."""
        raise self._unsupported("interrupt-injection", "report an interrupt window")

    # -- state beyond the registers (Capability.VCPU_STATE): see accel.cpustate.
    #    Each setter is all-or-nothing: on failure nothing was written.
    def msr_indices(self) -> tuple[int, ...]:
        """The MSRs this vCPU holds state in, sorted (what a snapshot saves)."""
        raise self._unsupported("vcpu-state", "list its MSRs")

    def get_msrs(self, indices: Iterator[int] | tuple[int, ...] | list[int]) -> dict[int, int]:
        """The values of the MSRs ``indices``; one the vCPU does not have is a
        :class:`~accel.errors.BackendCallError` naming it."""
        raise self._unsupported("vcpu-state", "read MSRs")

    def set_msrs(self, values: Mapping[int, int]) -> None:
        """Write MSRs; one the vCPU refuses is an error naming it, and none is written."""
        raise self._unsupported("vcpu-state", "write MSRs")

    def get_fpu(self) -> FpuState:
        raise self._unsupported("vcpu-state", "read its FPU state")

    def set_fpu(self, state: FpuState) -> None:
        raise self._unsupported("vcpu-state", "write its FPU state")

    def get_debug_registers(self) -> DebugRegisters:
        raise self._unsupported("vcpu-state", "read its debug registers")

    def set_debug_registers(self, state: DebugRegisters) -> None:
        raise self._unsupported("vcpu-state", "write its debug registers")

    def get_events(self) -> VcpuEvents:
        raise self._unsupported("vcpu-state", "read its pending events")

    def set_events(self, events: VcpuEvents) -> None:
        raise self._unsupported("vcpu-state", "write its pending events")

    def get_mp_state(self) -> MpState:
        raise self._unsupported("vcpu-state", "read its MP state")

    def set_mp_state(self, state: MpState) -> None:
        raise self._unsupported("vcpu-state", "write its MP state")

    def cpuid(self) -> tuple[CpuidEntry, ...]:
        """The CPUID table this vCPU was given (what the guest reads with CPUID)."""
        raise self._unsupported("vcpu-state", "report the CPUID it was given")

    # -- the local APIC when the accelerator holds it (an in-accelerator irqchip)
    def get_lapic(self) -> LapicState:
        """The vCPU's local APIC register page (see :mod:`accel.irqstate`)."""
        raise self._unsupported("irqchip", "read a local APIC held in the accelerator")

    def set_lapic(self, state: LapicState) -> None:
        raise self._unsupported("irqchip", "write a local APIC held in the accelerator")


def iter_exits(vcpu: Vcpu, limit: int | None = None) -> Iterator[Exit]:
    """Yield exits until HLT, shutdown, internal error or interruption (inclusive)."""
    n = 0
    while limit is None or n < limit:
        ex = vcpu.run()
        n += 1
        yield ex
        if not isinstance(ex, (PortIoExit, MmioExit)):
            return
