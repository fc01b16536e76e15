"""The VM-level sections: layout, vCPU registers and the VM clock.

Every accelerator's VM has these, so they are described here once:

=============  ========  ==============================================================
section        instance  contents
=============  ========  ==============================================================
``vm``         0         RAM regions (guest-physical address, size, read-only) and the
                         vCPU indices: the layout a restore recreates
``cpu-regs``   vCPU      general registers, RIP, RFLAGS
``cpu-sregs``  vCPU      segment, descriptor-table and control registers, EFER, APIC base
``clock``      0         the VM clock cached at pause (all of ``ClockData``) and the wall
                         time of the save; subsection ``clock/clock_is_reliable``
``ram``        region    guest RAM, in chunks (see :mod:`accel.snapshot.format`)
=============  ========  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..accelerator import ClockData, DescriptorTable, Registers, Segment, SpecialRegisters
from ..capabilities import ClockFlags
from ..errors import SnapshotFormatError
from .vmstate import (
    BOOL,
    U8,
    U16,
    U32,
    U64,
    Array,
    Field,
    Nested,
    Subsection,
    VMStateDescription,
)

__all__ = [
    "CLOCK",
    "CLOCK_RELIABLE",
    "CPU_REGS",
    "CPU_SREGS",
    "VM_LAYOUT",
    "ClockState",
    "RegionState",
    "VmLayout",
]


# --------------------------------------------------------------------------- layout


@dataclass
class RegionState:
    """One guest memory region of the VM layout."""

    guest_phys: int = 0
    size: int = 0
    readonly: bool = False


@dataclass
class VmLayout:
    """The ``vm`` section: memory regions and vCPU ids."""

    regions: list[RegionState] = field(default_factory=list)
    vcpus: list[int] = field(default_factory=list)


REGION: VMStateDescription[RegionState] = VMStateDescription(
    "region",
    version_id=1,
    minimum_version_id=1,
    factory=RegionState,
    fields=(Field("guest_phys", U64), Field("size", U64), Field("readonly", BOOL)),
)

VM_LAYOUT: VMStateDescription[VmLayout] = VMStateDescription(
    "vm",
    version_id=1,
    minimum_version_id=1,
    factory=VmLayout,
    fields=(
        Field("regions", Array(Nested(REGION), max_count=256)),
        Field("vcpus", Array(U32, max_count=1024)),
    ),
    doc="RAM regions and vCPU indices",
)


# --------------------------------------------------------------------------- vCPU

CPU_REGS: VMStateDescription[Registers] = VMStateDescription(
    "cpu-regs",
    version_id=1,
    minimum_version_id=1,
    factory=Registers,
    fields=tuple(Field(name, U64) for name in Registers.NAMES),
    doc="general registers, RIP and RFLAGS",
)

SEGMENT: VMStateDescription[Segment] = VMStateDescription(
    "segment",
    version_id=1,
    minimum_version_id=1,
    factory=Segment,
    fields=(
        Field("base", U64),
        Field("limit", U32),
        Field("selector", U16),
        *(Field(name, U8) for name in Segment.FIELDS[3:]),
    ),
)

DTABLE: VMStateDescription[DescriptorTable] = VMStateDescription(
    "dtable",
    version_id=1,
    minimum_version_id=1,
    factory=DescriptorTable,
    fields=(Field("base", U64), Field("limit", U32)),
)

CPU_SREGS: VMStateDescription[SpecialRegisters] = VMStateDescription(
    "cpu-sregs",
    version_id=1,
    minimum_version_id=1,
    factory=SpecialRegisters,
    fields=(
        *(Field(name, Nested(SEGMENT)) for name in SpecialRegisters.SEGMENTS),
        Field("gdt", Nested(DTABLE)),
        Field("idt", Nested(DTABLE)),
        *(Field(name, U64) for name in SpecialRegisters.CONTROL),
    ),
    doc="segment, descriptor-table and control registers",
)


# --------------------------------------------------------------------------- clock


@dataclass
class ClockState:
    """The VM clock as saved: :class:`~accel.ClockData`'s fields plus the save's wall time.

    ``reliable`` travels in the optional subsection ``clock/clock_is_reliable``, sent only
    when ``send_reliable`` (a machine type's compat property turns it off for old types);
    a stream without it loads as ``reliable = False``, as QEMU assumes.
    """

    clock: int = 0
    flags: int = 0
    realtime: int = 0
    host_tsc: int = 0
    saved_at: int = 0
    reliable: bool = False
    send_reliable: bool = True

    @classmethod
    def from_clock(cls, data: ClockData, saved_at: int, send_reliable: bool) -> ClockState:
        return cls(
            clock=data.clock,
            flags=int(data.flags),
            realtime=data.realtime,
            host_tsc=data.host_tsc,
            saved_at=saved_at,
            reliable=data.reliable,
            send_reliable=send_reliable,
        )

    @property
    def clock_flags(self) -> ClockFlags:
        return ClockFlags(self.flags) & (
            ClockFlags.TSC_STABLE | ClockFlags.REALTIME | ClockFlags.HOST_TSC
        )

    def to_clock_data(self) -> ClockData:
        return ClockData(self.clock, self.clock_flags, self.realtime, self.host_tsc)


CLOCK_RELIABLE: VMStateDescription[ClockState] = VMStateDescription(
    "clock/clock_is_reliable",
    version_id=1,
    minimum_version_id=1,
    factory=ClockState,
    fields=(Field("reliable", BOOL),),
)

#: Largest clock value a snapshot may carry (guest ns; 2**63 ns is 292 years of uptime).
MAX_CLOCK = (1 << 63) - 1


def _check_clock(state: ClockState, version_id: int) -> None:
    for name in ("clock", "realtime", "saved_at"):
        if getattr(state, name) > MAX_CLOCK:
            raise SnapshotFormatError(
                f"section 'clock': {name} {getattr(state, name)} is beyond 2**63-1",
                section="clock",
                found=getattr(state, name),
            )


CLOCK: VMStateDescription[ClockState] = VMStateDescription(
    "clock",
    version_id=2,
    minimum_version_id=1,
    factory=ClockState,
    fields=(
        Field("clock", U64, doc="guest nanoseconds, cached when the VM paused"),
        Field("flags", U32, doc="ClockFlags of the read"),
        Field("realtime", U64, doc="host wall time of the read (REALTIME flag)"),
        Field("host_tsc", U64, doc="host TSC of the read (HOST_TSC flag)"),
        Field("saved_at", U64, since=2, doc="host wall time when the snapshot was written"),
    ),
    subsections=(Subsection(CLOCK_RELIABLE, lambda s: s.send_reliable),),
    post_load=_check_clock,
    doc="the VM clock (version 1 lacked saved_at)",
)
