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

Time for these devices is the machine's guest time (:meth:`MachineServices.guest_ns
<accel.machine.device.MachineServices.guest_ns>`), which stops while the machine is
paused. :func:`builtin_device_types` lists them as :class:`accel.DeviceType` values.
"""

from __future__ import annotations

import datetime
import time

from ..errors import ConfigError
from ..plugin import DeviceType, PropertySpec
from .device import Device, MachineServices, PropValue

__all__ = [
    "HPET_BASE",
    "HPET_PERIOD_FS",
    "HPET_SIZE",
    "PIT_HZ",
    "DebugCon",
    "DebugExit",
    "Hpet",
    "Irqchip",
    "Pit",
    "Rtc",
    "builtin_device_types",
]


HPET_BASE = 0xFED00000
HPET_SIZE = 0x1000
HPET_PERIOD_FS = 10_000_000  # 10 ns, as QEMU
PIT_HZ = 1_193_182


class DebugCon(Device):
    """``isa-debugcon``: a port whose bytes go to the machine's console."""

    PROPERTIES = (
        PropertySpec("iobase", int, 0xE9, "I/O port"),
        PropertySpec("readback", int, 0xE9, "value a read of the port returns"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.output = bytearray()

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        machine.register_pio(int(self.props["iobase"]), 1, self._read, self._write, self)

    def _read(self, port: int, size: int) -> int:
        return int(self.props["readback"])

    def _write(self, port: int, size: int, value: int) -> None:
        b = bytes((value & 0xFF,))
        self.output += b
        self.machine.console_write(b)

    def state(self) -> dict[str, object]:
        return {"iobase": self.props["iobase"], "bytes_written": len(self.output)}


class DebugExit(Device):
    """``isa-debug-exit``: a write of ``value`` ends the run with ``(value << 1) | 1``."""

    PROPERTIES = (
        PropertySpec("iobase", int, 0x501, "I/O port"),
        PropertySpec("iosize", int, 2, "width of the port range (1, 2 or 4)"),
    )

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        size = int(self.props["iosize"])
        if size not in (1, 2, 4):
            raise ConfigError(
                f"device 'isa-debug-exit' property 'iosize' must be 1, 2 or 4, not {size}",
                device="isa-debug-exit",
                property="iosize",
            )
        machine.register_pio(int(self.props["iobase"]), size, None, self._write, self)

    def _write(self, port: int, size: int, value: int) -> None:
        status = (value << 1) | 1
        self.machine.request_stop(
            status,
            f"guest wrote {value:#x} to isa-debug-exit: exit status (value << 1) | 1 = "
            f"{status & 0xFF}",
            kind="debug-exit",
        )

    def state(self) -> dict[str, object]:
        return {"iobase": self.props["iobase"], "iosize": self.props["iosize"]}


#: The CMOS registers that read the clock: seconds, minutes, hours, day of the week,
#: day of the month, month, year in the century, century.
_TIME_REGS = frozenset({0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32})


def _bcd(v: int) -> int:
    return ((v // 10) << 4) | (v % 10)


class Rtc(Device):
    """``mc146818rtc``: the CMOS real-time clock, advanced by guest time."""

    PROPERTIES = (
        PropertySpec("iobase", int, 0x70, "index port (data port is iobase+1)"),
        PropertySpec("base", str, "utc", "'utc' or a start time 'YYYY-MM-DDTHH:MM:SS'"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.index = 0
        self.cmos = bytearray(128)
        self._epoch = 0.0
        self._guest0 = 0

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        base = str(self.props["base"])
        if base == "utc":
            self._epoch = time.time()
        else:
            try:
                start = datetime.datetime.fromisoformat(base)
                self._epoch = start.replace(tzinfo=datetime.UTC).timestamp()
            except ValueError:
                raise ConfigError(
                    f"device 'mc146818rtc' property 'base' must be 'utc' or an ISO time, "
                    f"not {base!r}",
                    device="mc146818rtc",
                    property="base",
                ) from None
        self._guest0 = machine.guest_ns()
        self.cmos[0x0A] = 0x26  # divider 32.768 kHz, rate 1024 Hz; UIP clear
        self.cmos[0x0B] = 0x02  # 24-hour, BCD
        self.cmos[0x0D] = 0x80  # valid RAM and time
        base_port = int(self.props["iobase"])
        machine.register_pio(base_port, 2, self._read, self._write, self)

    def _seconds(self) -> float:
        """The clock's time: seconds since the Unix epoch (UTC)."""
        return self._epoch + (self.machine.guest_ns() - self._guest0) / 1e9

    def now(self) -> datetime.datetime:
        """The clock's time as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self._seconds(), datetime.UTC)

    def _time_reg(self, reg: int) -> int | None:
        if reg not in _TIME_REGS:
            return None
        # The whole second as datetime.fromtimestamp gives it (microseconds rounded
        # half to even first).
        secs = self._seconds()
        whole = int(secs)
        micro = round((secs - whole) * 1e6)
        if micro >= 1_000_000:
            whole += 1
        elif micro < 0:
            whole -= 1
        t = time.gmtime(whole)
        values = {
            0x00: t.tm_sec, 0x02: t.tm_min, 0x04: t.tm_hour, 0x06: (t.tm_wday + 1) % 7 + 1,
            0x07: t.tm_mday, 0x08: t.tm_mon, 0x09: t.tm_year % 100, 0x32: t.tm_year // 100,
        }  # fmt: skip
        v = values[reg]
        return v if self.cmos[0x0B] & 0x04 else _bcd(v)

    def _read(self, port: int, size: int) -> int:
        if port == int(self.props["iobase"]):
            return 0xFF
        reg = self.index
        v = self._time_reg(reg)
        if v is not None:
            return v
        if reg == 0x0C:
            val = self.cmos[0x0C]
            self.cmos[0x0C] = 0
            return val
        return self.cmos[reg]

    def _write(self, port: int, size: int, value: int) -> None:
        if port == int(self.props["iobase"]):
            self.index = value & 0x7F
        elif self.index not in (0x0C, 0x0D):
            self.cmos[self.index] = value & 0xFF

    def state(self) -> dict[str, object]:
        return {"iobase": self.props["iobase"], "time": self.now().isoformat()}


class Hpet(Device):
    """``hpet``: High Precision Event Timer registers and main counter."""

    PROPERTIES = (
        PropertySpec("base", int, HPET_BASE, "MMIO base address"),
        PropertySpec("timers", int, 3, "number of comparators (3..32)"),
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


class _PitChannel:
    """One PIT channel's registers."""

    __slots__ = ("access", "latch", "latched", "mode", "read_hi", "reload", "start", "write_hi")

    def __init__(self) -> None:
        self.reload = 0x10000
        self.mode = 3
        self.access = 3
        self.start = 0
        self.latch = 0
        self.latched = 0  # bytes of latch still to read (0, 1 or 2)
        self.read_hi = False
        self.write_hi = False


class Pit(Device):
    """``isa-pit``: the i8254 programmable interval timer's three channels."""

    PROPERTIES = (PropertySpec("iobase", int, 0x40, "first of the four ports"),)

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.channels = [_PitChannel() for _ in range(3)]

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        now = machine.guest_ns()
        for ch in self.channels:
            ch.start = now
        machine.register_pio(int(self.props["iobase"]), 4, self._read, self._write, self)

    def count(self, n: int) -> int:
        ch = self.channels[n]
        ticks = (self.machine.guest_ns() - ch.start) * PIT_HZ // 1_000_000_000
        if ch.mode == 2:
            return ch.reload - (ticks % ch.reload)
        if ch.mode == 3:  # square wave: the count drops by two per clock (as QEMU)
            return ch.reload - ((2 * ticks) % ch.reload)
        return (ch.reload - ticks) & 0xFFFF

    def _read(self, port: int, size: int) -> int:
        n = port - int(self.props["iobase"])
        if n == 3:
            return 0xFF
        ch = self.channels[n]
        if ch.latched:
            value = ch.latch
            if ch.access == 3 and ch.latched == 2:
                ch.latched = 1
                return value & 0xFF
            ch.latched = 0
            return (value >> 8) & 0xFF if ch.access in (2, 3) else value & 0xFF
        value = self.count(n) & 0xFFFF
        if ch.access == 1:
            return value & 0xFF
        if ch.access == 2:
            return value >> 8
        ch.read_hi = not ch.read_hi
        return (value >> 8) if not ch.read_hi else value & 0xFF

    def _latch(self, n: int) -> None:
        ch = self.channels[n]
        if not ch.latched:
            ch.latch = self.count(n) & 0xFFFF
            ch.latched = 2 if ch.access == 3 else 1

    def _write(self, port: int, size: int, value: int) -> None:
        n = port - int(self.props["iobase"])
        value &= 0xFF
        if n == 3:
            sel = value >> 6
            if sel == 3:  # read-back: bit 5 clear latches the counts of channels 1..3 bits
                if not value & 0x20:
                    for i in range(3):
                        if value & (2 << i):
                            self._latch(i)
                return
            access = (value >> 4) & 3
            if access == 0:
                self._latch(sel)
                return
            ch = self.channels[sel]
            ch.access = access
            ch.mode = (value >> 1) & 7
            if ch.mode > 5:
                ch.mode &= 3
            ch.read_hi = ch.write_hi = False
            return
        ch = self.channels[n]
        if ch.access == 1:
            reload = (ch.reload & 0xFF00) | value
        elif ch.access == 2:
            reload = (ch.reload & 0x00FF) | (value << 8)
        elif not ch.write_hi:
            ch.write_hi = True
            ch.reload = (ch.reload & 0xFF00) | value
            return
        else:
            ch.write_hi = False
            reload = (ch.reload & 0x00FF) | (value << 8)
        ch.reload = (reload & 0xFFFF) or 0x10000
        ch.start = self.machine.guest_ns()

    def state(self) -> dict[str, object]:
        return {"iobase": self.props["iobase"], "channel0_reload": self.channels[0].reload}


class Irqchip(Device):
    """The accelerator's in-kernel interrupt controller (PIC/IOAPIC/LAPIC)."""

    def state(self) -> dict[str, object]:
        return {"where": "accelerator"}


_NOT_USER = "created by the machine when the accelerator provides an in-kernel irqchip"


def builtin_device_types() -> list[DeviceType]:
    """The core's built-in device types (a new list each call)."""
    return [
        DeviceType("isa-debugcon", "debug console port: guest bytes to the console",
                   DebugCon, DebugCon.PROPERTIES),
        DeviceType("isa-debug-exit", "ends the run with status (value << 1) | 1",
                   DebugExit, DebugExit.PROPERTIES),
        DeviceType("mc146818rtc", "CMOS real-time clock on ports 0x70/0x71", Rtc,
                   Rtc.PROPERTIES),
        DeviceType("hpet", "High Precision Event Timer at 0xFED00000", Hpet, Hpet.PROPERTIES),
        DeviceType("isa-pit", "i8254 programmable interval timer on ports 0x40-0x43", Pit,
                   Pit.PROPERTIES),
        DeviceType("irqchip", "the accelerator's in-kernel interrupt controller", Irqchip,
                   (), user_creatable=False, not_creatable_reason=_NOT_USER),
    ]  # fmt: skip
