"""The core's built-in device types, one module each.

* ``isa-debugcon`` (:mod:`.debug`) — bytes written to its port (0xE9) go to the
  machine's console (``accel run`` streams them to stdout) and are kept in
  :attr:`DebugCon.output`.
* ``isa-debug-exit`` (:mod:`.debug`) — a write of ``value`` ends the run with status
  ``(value << 1) | 1`` (QEMU's convention; defaults ``iobase=0x501,iosize=2`` as QEMU).
* ``mc146818rtc`` (:mod:`.rtc`) — CMOS real-time clock on ports 0x70/0x71.
* ``hpet`` (:mod:`.hpet`) — HPET at 0xFED00000, main counter at 100 MHz; ``timers`` is
  clamped to 3..32 as QEMU does (the capability register's NUM_TIM_CAP shows the result).

Port properties are 0..0xFFFF and a device's whole port range must fit in the 64 KiB
port space (:func:`~accel.machine.devices.base.port_span_check`).
* ``isa-pit`` (:mod:`.pit`) — i8254 PIT on ports 0x40-0x43 at 1.193182 MHz.
* ``isa-serial`` (:mod:`.serial`) — a 16550A UART (COM1: ports 0x3F8-0x3FF, IRQ 4);
  transmitted bytes go to the console, a file or nowhere (``chardev``).
* ``fw-cfg`` (:mod:`.fw_cfg`) — QEMU's firmware configuration device on ports
  0x510/0x511, DMA at 0x514.
* ``isa-i8259``, ``ioapic``, ``apic`` (:mod:`.intc`) — the userspace interrupt
  controllers (8259 PIC pair, I/O APIC, the vCPUs' local APICs), created by the machine
  when the accelerator has no in-kernel irqchip but takes injected interrupts.
* ``irqchip`` (:mod:`.irqchip`) — marks the accelerator's in-kernel interrupt controller
  (created by the machine when the accelerator provides it; not user-creatable).

They subclass :class:`~accel.machine.devices.base.Device`. Time for these devices is the
machine's guest time (:meth:`MachineServices.guest_ns
<accel.machine.devices.base.MachineServices.guest_ns>`), which stops while the machine
is paused. :func:`builtin_device_types` lists them as :class:`accel.DeviceType` values.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...plugin import DeviceType
from .base import PropValue, port_span_check
from .debug import DebugCon, DebugExit
from .fw_cfg import FwCfgDevice
from .hpet import HPET_BASE, HPET_MAX_TIMERS, HPET_MIN_TIMERS, HPET_PERIOD_FS, HPET_SIZE, Hpet
from .intc import ApicDevice, IoApicDevice, PicDevice
from .irqchip import Irqchip
from .pit import PIT_HZ, Pit
from .rtc import Rtc
from .serial import SerialPort

__all__ = [
    "ApicDevice",
    "IoApicDevice",
    "PicDevice",
    "HPET_BASE",
    "HPET_MAX_TIMERS",
    "HPET_MIN_TIMERS",
    "HPET_PERIOD_FS",
    "HPET_SIZE",
    "PIT_HZ",
    "DebugCon",
    "DebugExit",
    "FwCfgDevice",
    "Hpet",
    "Irqchip",
    "Pit",
    "Rtc",
    "SerialPort",
    "builtin_device_types",
]

_debug_exit_span = port_span_check("iosize")


def _debug_exit_check(props: Mapping[str, PropValue]) -> str | None:
    if props["iosize"] not in (1, 2, 4):
        return f"iosize is {props['iosize']}, not 1, 2 or 4"
    return _debug_exit_span(props)


_NOT_USER = "created by the machine when the accelerator provides an in-kernel irqchip"
_NOT_USER_INTC = (
    "created by the machine when the interrupt controller is not in the accelerator "
    "(kernel-irqchip=off, or no irqchip capability) and it takes injected interrupts"
)


def builtin_device_types() -> list[DeviceType]:
    """The core's built-in device types (a new list each call)."""
    return [
        DeviceType("isa-debugcon", "debug console port: guest bytes to the console",
                   DebugCon, DebugCon.PROPERTIES),
        DeviceType("isa-debug-exit", "ends the run with status (value << 1) | 1",
                   DebugExit, DebugExit.PROPERTIES, check=_debug_exit_check),
        DeviceType("mc146818rtc", "CMOS real-time clock on ports 0x70/0x71", Rtc,
                   Rtc.PROPERTIES, check=port_span_check(2)),
        DeviceType("hpet", "High Precision Event Timer at 0xFED00000", Hpet, Hpet.PROPERTIES),
        DeviceType("isa-pit", "i8254 programmable interval timer on ports 0x40-0x43", Pit,
                   Pit.PROPERTIES, check=port_span_check(4)),
        DeviceType("isa-serial", "16550A UART (COM1: 0x3f8, IRQ 4): guest bytes to the "
                   "console, a file or nowhere", SerialPort, SerialPort.PROPERTIES,
                   check=port_span_check(8)),
        DeviceType("fw-cfg", "QEMU firmware configuration on ports 0x510/0x511, DMA 0x514",
                   FwCfgDevice, FwCfgDevice.PROPERTIES, check=port_span_check(12)),
        DeviceType("isa-i8259", "8259 PIC pair (0x20/0x21, 0xa0/0xa1, ELCR 0x4d0/0x4d1) "
                   "modelled in userspace", PicDevice, PicDevice.PROPERTIES,
                   user_creatable=False, not_creatable_reason=_NOT_USER_INTC),
        DeviceType("ioapic", "24-pin I/O APIC at 0xfec00000 modelled in userspace",
                   IoApicDevice, IoApicDevice.PROPERTIES, user_creatable=False,
                   not_creatable_reason=_NOT_USER_INTC),
        DeviceType("apic", "the vCPUs' local APICs (xAPIC page at 0xfee00000) modelled "
                   "in userspace", ApicDevice, ApicDevice.PROPERTIES, user_creatable=False,
                   not_creatable_reason=_NOT_USER_INTC),
        DeviceType("irqchip", "the accelerator's in-kernel interrupt controller", Irqchip,
                   (), user_creatable=False, not_creatable_reason=_NOT_USER),
    ]  # fmt: skip
