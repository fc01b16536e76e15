"""The I/O APIC (82093AA as a PC chipset has it): 24 pins, the redirection table behind
IOREGSEL (offset 0x00) / IOWIN (0x10), and the EOI register (0x40, version 0x20).

Written from the 82093AA data sheet, checked against QEMU's hw/intc/ioapic.c: ID,
version (0x00170020: 24 entries, version 0x20) and arbitration registers; each entry's
vector, delivery mode, destination mode, delivery status, polarity, remote IRR, trigger
mode, mask and destination. An edge-triggered pin delivers on a rising edge; a
level-triggered one delivers while its line is high and sets remote IRR, which the
local APIC's EOI broadcast (:meth:`IoApic.eoi`) or the EOI register clears, delivering
again if the line is still high. Deliveries go to ``deliver(dest, dest_logical, mode,
vector, level_triggered)`` (the machine's APIC bus). No locking, no clock.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["IOAPIC_BASE", "IOAPIC_PINS", "IOAPIC_VERSION", "IoApic"]

IOAPIC_BASE = 0xFEC00000
IOAPIC_PINS = 24
IOAPIC_VERSION = 0x20

_MASKED = 1 << 16
_REMOTE_IRR = 1 << 14
_LEVEL = 1 << 15
_DELIVERY_STATUS = 1 << 12
_RO_BITS = _REMOTE_IRR | _DELIVERY_STATUS

#: deliver(dest, dest_logical, delivery_mode, vector, level_triggered)
Deliver = Callable[[int, bool, int, int, bool], None]


class IoApic:
    """The redirection table and pin levels."""

    def __init__(self, deliver: Deliver | None = None) -> None:
        self.deliver = deliver
        self.id = 0
        self.ioregsel = 0
        self.irr = 0  # pins with a pending request
        self.levels = 0  # line levels seen (edge detection)
        self.table = [_MASKED] * IOAPIC_PINS

    def reset(self) -> None:
        self.id = self.ioregsel = self.irr = self.levels = 0
        self.table = [_MASKED] * IOAPIC_PINS

    # ------------------------------------------------------------------ lines
    def set_irq(self, pin: int, level: bool) -> None:
        if not 0 <= pin < IOAPIC_PINS:
            return
        mask = 1 << pin
        entry = self.table[pin]
        if entry & _LEVEL:
            if level:
                self.irr |= mask
                self.levels |= mask
            else:
                self.irr &= ~mask
                self.levels &= ~mask
        elif level:
            if not self.levels & mask:
                self.irr |= mask
            self.levels |= mask
        else:
            self.levels &= ~mask
        self._service()

    def _service(self) -> None:
        for pin in range(IOAPIC_PINS):
            mask = 1 << pin
            if not self.irr & mask:
                continue
            entry = self.table[pin]
            if entry & _MASKED:
                continue
            level = bool(entry & _LEVEL)
            if level:
                if entry & _REMOTE_IRR:
                    continue
                self.table[pin] = entry | _REMOTE_IRR
            else:
                self.irr &= ~mask
            if self.deliver is not None:
                mode = (entry >> 8) & 7
                self.deliver(entry >> 56, bool(entry & (1 << 11)), mode, entry & 0xFF, level)

    def eoi(self, vector: int) -> None:
        """A local APIC's EOI broadcast of level-triggered ``vector`` (or the EOI register):
        the pins with that vector leave remote IRR; a line still high delivers again."""
        for pin in range(IOAPIC_PINS):
            entry = self.table[pin]
            if entry & _LEVEL and entry & _REMOTE_IRR and entry & 0xFF == vector:
                self.table[pin] = entry & ~_REMOTE_IRR
                if self.levels & (1 << pin):
                    self.irr |= 1 << pin
        self._service()

    # ------------------------------------------------------------------ registers
    def _read_reg(self) -> int:
        sel = self.ioregsel
        if sel == 0:
            return (self.id & 0xF) << 24
        if sel == 1:
            return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION
        if sel == 2:
            return (self.id & 0xF) << 24
        index = (sel - 0x10) >> 1
        if 0 <= index < IOAPIC_PINS:
            entry = self.table[index]
            return (entry >> 32) & 0xFFFFFFFF if sel & 1 else entry & 0xFFFFFFFF
        return 0xFFFFFFFF

    def _write_reg(self, value: int) -> None:
        sel = self.ioregsel
        value &= 0xFFFFFFFF
        if sel == 0:
            self.id = (value >> 24) & 0xF
            return
        index = (sel - 0x10) >> 1
        if not 0 <= index < IOAPIC_PINS:
            return
        entry = self.table[index]
        if sel & 1:
            entry = (entry & 0xFFFFFFFF) | (value << 32)
        else:
            high = entry & (0xFFFFFFFF << 32)
            entry = high | (entry & _RO_BITS) | (value & ~_RO_BITS)
        if not entry & _LEVEL:
            entry &= ~_REMOTE_IRR
        self.table[index] = entry
        if entry & _LEVEL and self.levels & (1 << index):
            self.irr |= 1 << index
        self._service()

    def mmio_read(self, offset: int, size: int) -> int:
        if offset == 0x00:
            return self.ioregsel
        if 0x10 <= offset < 0x14:
            value = self._read_reg()
            return value >> (8 * (offset - 0x10))
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x00:
            self.ioregsel = value & 0xFF
        elif offset == 0x10:
            self._write_reg(value)
        elif offset == 0x40:
            self.eoi(value & 0xFF)

    def state(self) -> dict[str, object]:
        return {
            "id": self.id,
            "irr": self.irr,
            "unmasked": [p for p, e in enumerate(self.table) if not e & _MASKED],
        }
