"""The core's built-in device types: debug ports and userspace clock/timer devices.

* ``isa-debugcon`` — bytes written to its port (0xE9) go to the machine's console
  (``accel run`` streams them to stdout) and are kept in :attr:`DebugCon.output`.
* ``isa-debug-exit`` — a write of ``value`` ends the run with status
  ``(value << 1) | 1`` (QEMU's convention; defaults ``iobase=0x501,iosize=2`` as QEMU).
* ``mc146818rtc`` — CMOS real-time clock on ports 0x70/0x71: BCD, 24-hour time of the
  host (UTC) advanced by guest time; the other CMOS bytes are plain storage.
* ``hpet`` — HPET at 0xFED00000: capabilities, configuration and a main counter that
  advances at 100 MHz (QEMU's 10 ns period) while enabled.
* ``isa-pit`` — i8254 PIT on ports 0x40-0x43 at 1.193182 MHz: mode/reload writes, the
  counter-latch command and the read-back command, lo/hi byte access.
* ``irqchip`` — marks the accelerator's in-kernel interrupt controller (created by the
  machine when the accelerator provides it; not user-creatable).

Time for these devices is the machine's guest time (:meth:`Machine.guest_ns`), which
stops while the machine is paused.

The classes are defined in :mod:`accel.machine.device` (a machine loads that module
anyway) and re-exported here.
"""

from __future__ import annotations

from .device import (
    HPET_BASE,
    DebugCon,
    DebugExit,
    Hpet,
    Irqchip,
    Pit,
    Rtc,
    builtin_device_types,
)
from .device import HPET_PERIOD_FS as HPET_PERIOD_FS
from .device import HPET_SIZE as HPET_SIZE
from .device import PIT_HZ as PIT_HZ

__all__ = [
    "HPET_BASE",
    "DebugCon",
    "DebugExit",
    "Hpet",
    "Irqchip",
    "Pit",
    "Rtc",
    "builtin_device_types",
]
