"""``hpet``: the High Precision Event Timer at 0xFED00000.

Capabilities, configuration and a main counter that advances at 100 MHz (QEMU's 10 ns
period) of guest time while enabled; the comparators' registers are storage.
"""

from __future__ import annotations

from ...plugin import PropertySpec
from .base import Device, MachineServices, PropValue

__all__ = [
    "HPET_BASE",
    "HPET_MAX_TIMERS",
    "HPET_MIN_TIMERS",
    "HPET_PERIOD_FS",
    "HPET_SIZE",
    "Hpet",
]

HPET_BASE = 0xFED00000
HPET_SIZE = 0x1000
HPET_PERIOD_FS = 10_000_000  # 10 ns, as QEMU
#: QEMU's hw/timer/hpet.c bounds of the ``timers`` property (it clamps into them).
HPET_MIN_TIMERS = 3
HPET_MAX_TIMERS = 32


class Hpet(Device):
    """``hpet``: High Precision Event Timer registers and main counter."""

    PROPERTIES = (
        PropertySpec(
            "base",
            int,
            HPET_BASE,
            "MMIO base address (below 4 GiB)",
            min=0,
            max=(1 << 32) - HPET_SIZE,
        ),
        PropertySpec(
            "timers",
            int,
            HPET_MIN_TIMERS,
            f"number of comparators: clamped to {HPET_MIN_TIMERS}..{HPET_MAX_TIMERS} as QEMU does",
            min=HPET_MIN_TIMERS,
            max=HPET_MAX_TIMERS,
            clamp=True,
        ),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.config = 0
        self.isr = 0
        self._counter_at_enable = 0
        self._enabled_at = 0
        self.timer_regs: dict[int, int] = {}

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        machine.register_mmio(int(self.props["base"]), HPET_SIZE, self._read, self._write, self)

    def counter(self) -> int:
        if not self.config & 1:
            return self._counter_at_enable
        elapsed = self.machine.guest_ns() - self._enabled_at
        return (self._counter_at_enable + elapsed * 1_000_000 // HPET_PERIOD_FS) & (2**64 - 1)

    def set_counter(self, value: int) -> None:
        """Set the main counter to ``value`` as of the machine's current guest time; it
        advances from there while enabled (a restore uses it)."""
        self._counter_at_enable = value & (2**64 - 1)
        self._enabled_at = self.machine.guest_ns()

    def _reg64(self, off: int) -> int:
        if off == 0x000:
            n = int(self.props["timers"]) - 1
            return (HPET_PERIOD_FS << 32) | 0x8086_0000 | 0x8000 | 0x2000 | (n << 8) | 0x01
        if off == 0x010:
            return self.config
        if off == 0x020:
            return self.isr
        if off == 0x0F0:
            return self.counter()
        if 0x100 <= off < 0x100 + 0x20 * int(self.props["timers"]):
            reg = (off - 0x100) % 0x20
            if reg == 0:  # Tn_CONF_CAP: 64-bit capable, periodic capable, routes
                return self.timer_regs.get(off, 0) | 0x30 | (0x00F0_0000 << 32)
            return self.timer_regs.get(off, 0)
        return 0

    def _read(self, offset: int, size: int) -> int:
        aligned = offset & ~7
        v = self._reg64(aligned) >> (8 * (offset - aligned))
        return v & ((1 << (8 * size)) - 1)

    def _write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~7
        shift = 8 * (offset - aligned)
        mask = ((1 << (8 * size)) - 1) << shift
        old = self._reg64(aligned)
        new = (old & ~mask) | ((value << shift) & mask)
        if aligned == 0x010:
            was = self.config & 1
            if was and not new & 1:
                self._counter_at_enable = self.counter()
            elif not was and new & 1:
                self._enabled_at = self.machine.guest_ns()
            self.config = new & 0x3
        elif aligned == 0x020:
            self.isr &= ~new
        elif aligned == 0x0F0:
            if not self.config & 1:
                self._counter_at_enable = new
        elif aligned >= 0x100:
            self.timer_regs[aligned] = new

    def state(self) -> dict[str, object]:
        return {
            "base": f"{int(self.props['base']):#x}",
            "enabled": bool(self.config & 1),
            "counter": self.counter() if self._machine else 0,
        }
