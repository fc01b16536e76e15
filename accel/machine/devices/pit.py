"""``isa-pit``: the i8254 programmable interval timer on ports 0x40-0x43.

Three channels counting at 1.193182 MHz of guest time: mode/reload writes, the
counter-latch command and the read-back command, lo/hi byte access.

Channel 0 drives ISA IRQ 0 (:meth:`MachineServices.set_irq`): in modes 2 and 3 (rate
generator, square wave) a thread of this device pulses the line once per period of guest
time (missed periods coalesce into one pulse, as an edge-triggered line would). The
thread starts at the first programming of channel 0 and ends with the device; a machine
whose interrupt lines go nowhere (:meth:`Machine.irq_routed
<accel.machine.Machine.irq_routed>` false) starts none.
"""

from __future__ import annotations

import threading

from .base import Device, MachineServices, PropValue, port_property

__all__ = ["PIT_HZ", "Pit"]

PIT_HZ = 1_193_182


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

    PROPERTIES = (port_property("iobase", 0x40, "first of the four ports"),)

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.channels = [_PitChannel() for _ in range(3)]
        #: IRQ 0 pulses sent (for people and tests).
        self.irq0_pulses = 0
        self._ticker: threading.Thread | None = None
        self._changed = threading.Event()
        self._ending = threading.Event()

    def unrealize(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._ending.set()
            self._changed.set()
            ticker.join()
        super().unrealize()

    def _channel0_changed(self) -> None:
        machine = self._machine
        # no thread where the line goes nowhere (a machine without interrupt controller)
        routed = getattr(machine, "irq_routed", None)
        if routed is not None and not routed():
            return
        if self._ticker is None and machine is not None:
            self._ending.clear()
            self._ticker = threading.Thread(target=self._tick, name="isa-pit irq0", daemon=True)
            self._ticker.start()
        self._changed.set()

    def _tick(self) -> None:
        """Pulse IRQ 0 once per channel 0 period (modes 2 and 3) of guest time."""
        machine = self._machine
        if machine is None:
            return
        ch = self.channels[0]
        last = None  # the period index of the last pulse
        while not self._ending.is_set():
            self._changed.clear()
            start, reload, mode = ch.start, ch.reload, ch.mode
            if mode not in (2, 3):
                self._changed.wait()
                last = None
                continue
            period = reload * 1_000_000_000 / PIT_HZ
            now = machine.guest_ns()
            k = int((now - start) // period)
            if last is None or last > k:
                last = k
            if k > last:
                last = k
                self.irq0_pulses += 1
                machine.set_irq(0, True)
                machine.set_irq(0, False)
            wait = (start + (k + 1) * period - now) / 1e9
            self._changed.wait(max(wait, 0.0005))

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
        if n == 0:
            self._channel0_changed()

    def state(self) -> dict[str, object]:
        return {"iobase": self.props["iobase"], "channel0_reload": self.channels[0].reload}
