"""``mc146818rtc``: the CMOS real-time clock on ports 0x70/0x71.

BCD, 24-hour time of the host (UTC) advanced by the machine's guest time; the other CMOS
bytes are plain storage.
"""

from __future__ import annotations

import datetime
import time

from ...errors import ConfigError
from ...plugin import PropertySpec
from .base import Device, MachineServices, PropValue, port_property

__all__ = ["Rtc"]


#: The CMOS registers that read the clock: seconds, minutes, hours, day of the week,
#: day of the month, month, year in the century, century.
_TIME_REGS = frozenset({0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32})


def _bcd(v: int) -> int:
    return ((v // 10) << 4) | (v % 10)


class Rtc(Device):
    """``mc146818rtc``: the CMOS real-time clock, advanced by guest time."""

    PROPERTIES = (
        port_property("iobase", 0x70, "index port (data port is iobase+1)"),
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

    def set_time(self, seconds: float) -> None:
        """Set the clock to ``seconds`` since the Unix epoch (UTC) as of the machine's
        current guest time; it advances with guest time from there (a restore uses it)."""
        self._epoch = seconds
        self._guest0 = self.machine.guest_ns()

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
