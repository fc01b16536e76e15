"""vCPU register records and the VM clock record of :mod:`accel.accelerator`.

:mod:`accel.accelerator` re-exports every name here on first use (a guest that starts
from the reset state never reads or writes registers), so they are imported from there
(``from accel.accelerator import Registers``); their ``__module__`` says so too.
"""

from __future__ import annotations

from ._records import field, record
from .capabilities import ClockFlags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = [
    "ClockData",
    "DescriptorTable",
    "Registers",
    "Segment",
    "SpecialRegisters",
    "real_mode_sregs",
]


# --------------------------------------------------------------------------- registers


@record(slots=True)
class Registers:
    """x86 general-purpose registers, RIP and RFLAGS (64-bit views)."""

    __module__ = "accel.accelerator"

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


@record(slots=True)
class Segment:
    """A segment register with its hidden part (the KVM ``kvm_segment`` shape)."""

    __module__ = "accel.accelerator"

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


@record(slots=True)
class DescriptorTable:
    """GDTR / IDTR."""

    __module__ = "accel.accelerator"

    base: int = 0
    limit: int = 0xFFFF

    def as_dict(self) -> dict[str, int]:
        return {"base": self.base, "limit": self.limit}


def _seg(selector: int = 0, base: int = 0, type_: int = 3) -> Segment:
    return Segment(base=base, limit=0xFFFF, selector=selector, type=type_)


@record(slots=True)
class SpecialRegisters:
    """Segment, descriptor-table and control registers, EFER and the APIC base."""

    __module__ = "accel.accelerator"

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


real_mode_sregs.__module__ = "accel.accelerator"


# --------------------------------------------------------------------------- clock


@record(frozen=True, slots=True)
class ClockData:
    """The VM clock (kvmclock's ``kvm_clock_data`` shape): every field is kept.

    ``clock`` is guest nanoseconds; ``flags`` says which optional fields are valid:
    ``realtime`` (host wall time, ns since the epoch, at the read) with
    :attr:`ClockFlags.REALTIME`, ``host_tsc`` with :attr:`ClockFlags.HOST_TSC`.
    """

    __module__ = "accel.accelerator"

    clock: int
    flags: ClockFlags = ClockFlags.NONE
    realtime: int = 0
    host_tsc: int = 0

    @property
    def reliable(self) -> bool:
        """True when the read is stable across host CPUs (``TSC_STABLE``)."""
        return bool(self.flags & ClockFlags.TSC_STABLE)
