"""The 8259A programmable interrupt controller pair of a PC (master at 0x20/0x21, slave
at 0xa0/0xa1 cascaded on the master's IRQ 2, ELCR at 0x4d0/0x4d1).

Written from Intel's 8259A data sheet and the PIIX/ICH edge/level control registers,
checked against the behaviour of QEMU's hw/intc/i8259.c: ICW1-ICW4 initialisation,
OCW1 (the mask), OCW2 (non-specific, specific and rotating EOI, set priority), OCW3
(IRR/ISR read select, poll, special mask), auto-EOI, special fully nested mode, edge and
level triggering per line (ELCR). :meth:`PicPair.output` is the master's INT line (a PC
wires it to the boot processor's LINT0, delivered as ExtINT) and :meth:`PicPair.acknowledge`
is the INTA cycle that gives the vector. Pure state: no locking (the machine's device lock
serialises it), no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...irqstate import PicState

__all__ = ["ELCR_MASKS", "Pic", "PicPair"]

#: Bits of ELCR1/ELCR2 a PIIX lets software set (IRQ 0, 1, 2, 8 and 13 are always edge).
ELCR_MASKS = (0xF8, 0xDE)


@dataclasses.dataclass
class Pic:
    """One 8259A's registers."""

    irr: int = 0
    imr: int = 0
    isr: int = 0
    last_irr: int = 0  # line levels seen (edge detection)
    priority_add: int = 0  # the lowest-priority line + 1 (rotation)
    irq_base: int = 0
    read_reg_select: bool = False  # OCW3 RR/RIS: read ISR instead of IRR
    poll: bool = False
    special_mask: bool = False
    init_state: int = 0  # 0 ready, 1..3 expecting ICW2..ICW4
    auto_eoi: bool = False
    rotate_on_auto_eoi: bool = False
    special_fully_nested: bool = False
    init4: bool = False
    single_mode: bool = False
    elcr: int = 0
    elcr_mask: int = 0xFF
    master: bool = True

    def state(self) -> PicState:
        """This chip as :class:`accel.irqstate.PicState` (the record KVM's in-kernel PIC
        is read into too)."""
        return PicState(
            self.last_irr, self.irr, self.imr, self.isr, self.priority_add, self.irq_base,
            int(self.read_reg_select), int(self.poll), int(self.special_mask),
            self.init_state, int(self.auto_eoi), int(self.rotate_on_auto_eoi),
            int(self.special_fully_nested), int(self.init4), self.elcr, self.elcr_mask,
            int(self.single_mode),
        )  # fmt: skip

    def load(self, st: PicState) -> None:
        """Take ``st`` (:meth:`state`'s record); the ELCR keeps this chip's mask."""
        self.last_irr, self.irr, self.imr, self.isr = st.last_irr, st.irr, st.imr, st.isr
        self.priority_add, self.irq_base, self.init_state = (
            st.priority_add, st.irq_base, st.init_state,
        )  # fmt: skip
        self.read_reg_select, self.poll = bool(st.read_reg_select), bool(st.poll)
        self.special_mask, self.auto_eoi = bool(st.special_mask), bool(st.auto_eoi)
        self.rotate_on_auto_eoi = bool(st.rotate_on_auto_eoi)
        self.special_fully_nested = bool(st.special_fully_nested_mode)
        self.init4, self.single_mode = bool(st.init4), bool(st.single_mode)
        self.elcr = st.elcr & self.elcr_mask

    def reset(self) -> None:
        """ICW1 (and power-on): everything but the ELCR; a level line stays requested."""
        elcr = self.elcr
        for f in dataclasses.fields(self):
            if f.name not in ("elcr", "elcr_mask", "master", "irr"):
                setattr(self, f.name, f.default)
        self.irr &= elcr

    def set_line(self, irq: int, level: bool) -> None:
        mask = 1 << irq
        if self.elcr & mask:  # level triggered
            if level:
                self.irr |= mask
                self.last_irr |= mask
            else:
                self.irr &= ~mask
                self.last_irr &= ~mask
        elif level:  # edge: a rising edge requests
            if not self.last_irr & mask:
                self.irr |= mask
            self.last_irr |= mask
        else:
            self.last_irr &= ~mask

    def _priority(self, mask: int) -> int:
        """Priority (0 highest .. 7) of the best line in ``mask``; 8 when empty."""
        if not mask & 0xFF:
            return 8
        p = 0
        while not mask & (1 << ((p + self.priority_add) & 7)):
            p += 1
        return p

    def pending(self) -> int:
        """The line this chip would raise INT for (-1 for none): the best unmasked request
        of a higher priority than every line in service (ISR; with special mask, the
        masked lines in service do not count; in special fully nested mode a master's
        cascade line in service does not block the slave's)."""
        p = self._priority(self.irr & ~self.imr)
        if p == 8:
            return -1
        mask = self.isr
        if self.special_mask:
            mask &= ~self.imr
        if self.special_fully_nested and self.master:
            mask &= ~(1 << 2)
        if p < self._priority(mask):
            return (p + self.priority_add) & 7
        return -1

    def intack(self, irq: int) -> None:
        if self.auto_eoi:
            if self.rotate_on_auto_eoi:
                self.priority_add = (irq + 1) & 7
        else:
            self.isr |= 1 << irq
        if not self.elcr & (1 << irq):
            self.irr &= ~(1 << irq)

    def write(self, addr: int, value: int) -> None:
        """A byte to the command (``addr`` 0) or data (1) port."""
        value &= 0xFF
        if addr == 0:
            if value & 0x10:  # ICW1
                self.reset()
                self.init_state = 1
                self.init4 = bool(value & 1)
                self.single_mode = bool(value & 2)
            elif value & 0x08:  # OCW3
                if value & 0x04:
                    self.poll = True
                if value & 0x02:
                    self.read_reg_select = bool(value & 1)
                if value & 0x40:
                    self.special_mask = bool(value & 0x20)
            else:  # OCW2
                cmd = value >> 5
                if cmd in (0, 4):
                    self.rotate_on_auto_eoi = bool(cmd >> 2)
                elif cmd in (1, 5):  # non-specific EOI (and rotate)
                    p = self._priority(self.isr)
                    if p != 8:
                        irq = (p + self.priority_add) & 7
                        self.isr &= ~(1 << irq)
                        if cmd == 5:
                            self.priority_add = (irq + 1) & 7
                elif cmd == 3:  # specific EOI
                    self.isr &= ~(1 << (value & 7))
                elif cmd == 6:  # set priority
                    self.priority_add = (value + 1) & 7
                elif cmd == 7:  # rotate on specific EOI
                    irq = value & 7
                    self.isr &= ~(1 << irq)
                    self.priority_add = (irq + 1) & 7
            return
        if self.init_state == 0:  # OCW1
            self.imr = value
        elif self.init_state == 1:  # ICW2
            self.irq_base = value & 0xF8
            if self.single_mode:
                self.init_state = 3 if self.init4 else 0
            else:
                self.init_state = 2
        elif self.init_state == 2:  # ICW3 (cascade wiring: fixed on a PC)
            self.init_state = 3 if self.init4 else 0
        else:  # ICW4
            self.special_fully_nested = bool((value >> 4) & 1)
            self.auto_eoi = bool((value >> 1) & 1)
            self.init_state = 0

    def read(self, addr: int) -> int:
        if self.poll:
            self.poll = False
            irq = self.pending()
            if irq >= 0:
                self.intack(irq)
                return irq | 0x80
            return 0
        if addr == 0:
            return self.isr if self.read_reg_select else self.irr
        return self.imr


class PicPair:
    """Master and slave 8259A, cascaded on the master's IRQ 2.

    ``on_output(level)`` is called whenever the master's INT output may have changed.
    """

    def __init__(self, on_output: Callable[[bool], None] | None = None) -> None:
        self.master = Pic(master=True, elcr_mask=ELCR_MASKS[0])
        self.slave = Pic(master=False, elcr_mask=ELCR_MASKS[1])
        self.on_output = on_output
        self._level = False

    @property
    def chips(self) -> tuple[Pic, Pic]:
        return self.master, self.slave

    def _update(self) -> None:
        self.master.set_line(2, self.slave.pending() >= 0)
        level = self.master.pending() >= 0
        self._level = level
        if self.on_output is not None:
            self.on_output(level)

    def output(self) -> bool:
        """The master's INT line."""
        return self.master.pending() >= 0

    def set_irq(self, irq: int, level: bool) -> None:
        """ISA line ``irq`` (0..15) to ``level``."""
        if irq >= 8:
            self.slave.set_line(irq - 8, level)
        else:
            self.master.set_line(irq, level)
        self._update()

    def acknowledge(self) -> int:
        """The INTA cycle: the vector of the best pending line (the spurious IRQ 7 / 15
        vector when the request went away)."""
        m = self.master
        irq = m.pending()
        if irq >= 0:
            m.intack(irq)
            if irq == 2:
                irq2 = self.slave.pending()
                if irq2 >= 0:
                    self.slave.intack(irq2)
                else:
                    irq2 = 7
                vector = self.slave.irq_base + irq2
            else:
                vector = m.irq_base + irq
        else:
            vector = m.irq_base + 7
        self._update()
        return vector

    def port_write(self, port: int, value: int) -> None:
        """A byte to 0x20/0x21, 0xa0/0xa1 or the ELCR at 0x4d0/0x4d1."""
        if port in (0x4D0, 0x4D1):
            chip = self.chips[port - 0x4D0]
            chip.elcr = value & chip.elcr_mask
        else:
            chip = self.slave if port & 0x80 else self.master
            chip.write(port & 1, value)
        self._update()

    def port_read(self, port: int) -> int:
        if port in (0x4D0, 0x4D1):
            return self.chips[port - 0x4D0].elcr
        chip = self.slave if port & 0x80 else self.master
        polled = chip.poll
        value = chip.read(port & 1)
        if polled:
            self._update()
        return value

    def state(self) -> dict[str, object]:
        return {
            name: {"irr": c.irr, "imr": c.imr, "isr": c.isr, "base": c.irq_base, "elcr": c.elcr}
            for name, c in (("master", self.master), ("slave", self.slave))
        }
