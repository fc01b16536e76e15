"""Interrupt-controller and timer state held inside an accelerator, in neutral records.

An accelerator with an in-kernel irqchip (KVM's KVM_CREATE_IRQCHIP) keeps each vCPU's
local APIC, the two 8259 PICs and the IOAPIC, and (KVM_CREATE_PIT2) the 8254 PIT inside
the kernel; a snapshot must carry them. The records are architectural so a userspace
model of the same chip (machine layer) can save and load the same formats:

* :class:`LapicState` is the local APIC's 1 KiB register page as the xAPIC MMIO window
  lays it out (register at offset ``0x10 * n``, 32 bits each: ID at 0x20, TPR at 0x80,
  ISR at 0x100..0x170, TMR at 0x180.., IRR at 0x200..0x270, LVT timer at 0x320, initial
  count at 0x380, current count at 0x390, divide configuration at 0x3E0). KVM's
  ``kvm_lapic_state`` is exactly this page.
* :class:`PicState` is one 8259A (QEMU's ``PICCommonState`` names), :class:`IoapicState`
  the 82093AA (24 redirection entries, 64 bits each as the chip has them).
* :class:`PitState` is the 8254's three channels (QEMU's ``PITChannelState`` names);
  ``count_load_time`` is the host monotonic nanosecond at which the count was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InvalidArgumentError

__all__ = [
    "IOAPIC_PINS",
    "LAPIC_PAGE_SIZE",
    "IoapicState",
    "IrqchipState",
    "LapicState",
    "PicState",
    "PitChannelState",
    "PitState",
]

#: The local APIC register page a snapshot carries (KVM_APIC_REG_SIZE).
LAPIC_PAGE_SIZE = 0x400
#: Redirection-table entries of the IOAPIC.
IOAPIC_PINS = 24


@dataclass(frozen=True, slots=True)
class LapicState:
    """A local APIC's register page (1 KiB, xAPIC MMIO layout)."""

    regs: bytes

    def __post_init__(self) -> None:
        if len(self.regs) != LAPIC_PAGE_SIZE:
            raise InvalidArgumentError(
                f"a LAPIC register page is {LAPIC_PAGE_SIZE} bytes, got {len(self.regs)}",
                argument="regs",
                value=len(self.regs),
            )

    def register(self, offset: int) -> int:
        """The 32-bit register at ``offset`` (a multiple of 0x10 below 0x400)."""
        if offset % 0x10 or not 0 <= offset < LAPIC_PAGE_SIZE:
            raise InvalidArgumentError(
                f"LAPIC register offset {offset:#x} is not a multiple of 0x10 below 0x400",
                argument="offset",
                value=offset,
            )
        return int.from_bytes(self.regs[offset : offset + 4], "little")

    def _bit(self, base: int, vector: int) -> bool:
        return bool(self.register(base + 0x10 * (vector // 32)) >> (vector % 32) & 1)

    def irr(self, vector: int) -> bool:
        """Whether ``vector`` is requested (IRR bit): an interrupt still to be delivered."""
        return self._bit(0x200, vector)

    def isr(self, vector: int) -> bool:
        """Whether ``vector`` is in service (ISR bit)."""
        return self._bit(0x100, vector)


@dataclass(slots=True)
class PicState:
    """One 8259A programmable interrupt controller."""

    last_irr: int = 0
    irr: int = 0
    imr: int = 0
    isr: int = 0
    priority_add: int = 0
    irq_base: int = 0
    read_reg_select: int = 0
    poll: int = 0
    special_mask: int = 0
    init_state: int = 0
    auto_eoi: int = 0
    rotate_on_auto_eoi: int = 0
    special_fully_nested_mode: int = 0
    init4: int = 0
    elcr: int = 0
    elcr_mask: int = 0
    #: ICW1's SNGL bit: QEMU's i8259 saves it; KVM's ``kvm_pic_state`` has no such
    #: field (so it is not in :attr:`FIELDS`, which are KVM's, in its order).
    single_mode: int = 0

    FIELDS = (
        "last_irr",
        "irr",
        "imr",
        "isr",
        "priority_add",
        "irq_base",
        "read_reg_select",
        "poll",
        "special_mask",
        "init_state",
        "auto_eoi",
        "rotate_on_auto_eoi",
        "special_fully_nested_mode",
        "init4",
        "elcr",
        "elcr_mask",
    )


@dataclass(slots=True)
class IoapicState:
    """The IOAPIC: its id, register select, IRR and 24 redirection entries."""

    base_address: int = 0xFEC00000
    ioregsel: int = 0
    id: int = 0
    irr: int = 0
    redirection: list[int] = field(default_factory=lambda: [1 << 16] * IOAPIC_PINS)


@dataclass(slots=True)
class IrqchipState:
    """The VM's PIC pair and IOAPIC."""

    pic_master: PicState = field(default_factory=PicState)
    pic_slave: PicState = field(default_factory=PicState)
    ioapic: IoapicState = field(default_factory=IoapicState)


@dataclass(slots=True)
class PitChannelState:
    """One 8254 channel."""

    count: int = 0
    latched_count: int = 0
    count_latched: int = 0
    status_latched: int = 0
    status: int = 0
    read_state: int = 0
    write_state: int = 0
    write_latch: int = 0
    rw_mode: int = 0
    mode: int = 0
    bcd: int = 0
    gate: int = 0
    count_load_time: int = 0

    FIELDS = (
        "count",
        "latched_count",
        "count_latched",
        "status_latched",
        "status",
        "read_state",
        "write_state",
        "write_latch",
        "rw_mode",
        "mode",
        "bcd",
        "gate",
        "count_load_time",
    )


@dataclass(slots=True)
class PitState:
    """The 8254's three channels and the accelerator's PIT flags (KVM: speaker dummy)."""

    channels: list[PitChannelState] = field(
        default_factory=lambda: [PitChannelState() for _ in range(3)]
    )
    flags: int = 0
