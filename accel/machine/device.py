"""The device model: typed properties, one registry, one creation path.

Device types come from two places: the core's built-in types (the debug ports and the
userspace clock and timer devices, below; :mod:`accel.machine.devices` re-exports them)
and the types plugins contribute through the ``accel_device_types`` hook (an
accelerator's paravirtual clock). Both are :class:`accel.DeviceType` values in one
:class:`DeviceRegistry`.

Machine initialisation and a user's device spec (``"isa-debug-exit,iobase=0xf4,iosize=4"``)
create devices through the same function, :meth:`DeviceRegistry.create`, which checks
every property against its :class:`accel.PropertySpec` (unknown name, wrong type,
missing required value: :class:`~accel.errors.ConfigError` naming the device and the
property). A device type with ``user_creatable=False`` refuses a user's spec with its
reason.

A :class:`Device` reaches its VM only through the machine it is realised in:
:meth:`Device.realize` receives the machine, and the device registers its port and MMIO
handlers there; it never holds an accelerator of its own.

The built-in devices:

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
"""

from __future__ import annotations

import time

from ..errors import ConfigError, did_you_mean
from ..plugin import DeviceType, PropertySpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from ..registry import Registry
    from .machine import Machine, RunState

__all__ = ["Device", "DeviceRegistry", "parse_device_spec"]

PropValue = int | bool | str


class Device:
    """Base of every device. Subclasses declare ``PROPERTIES`` and override hooks.

    The factory of a :class:`accel.DeviceType` is called with the validated properties
    as keyword arguments; :attr:`props` keeps them. ``realize(machine)`` wires the device
    into the machine; ``state()`` returns what ``accel machine show`` prints.
    """

    PROPERTIES: tuple[PropertySpec, ...] = ()

    def __init__(self, **props: PropValue) -> None:
        self.props: dict[str, PropValue] = dict(props)
        self.type_name = ""
        self.id = ""
        self._machine: Machine | None = None

    @property
    def machine(self) -> Machine:
        if self._machine is None:
            raise ConfigError(
                f"device {self.type_name or type(self).__name__!r} is not realised in a machine",
                device=self.type_name,
            )
        return self._machine

    def realize(self, machine: Machine) -> None:
        """Attach to ``machine``: register I/O handlers, set up state."""
        self._machine = machine

    def unrealize(self) -> None:
        self._machine = None

    def runstate_changed(self, old: RunState, new: RunState) -> None:
        """Called on every run-state change of the machine (after the VM changed)."""

    def state(self) -> dict[str, object]:
        """Device state for people and JSON output."""
        return {}


def _coerce(dtype: DeviceType, spec: PropertySpec, value: object, origin: str) -> PropValue:
    kind = spec.type
    if kind is int:
        if type(value) is int:
            return value
        if isinstance(value, str):
            try:
                return int(value, 0)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, bool):
            raise _bad(dtype, spec, "takes an integer", value)
        raise _bad(dtype, spec, "takes an integer (decimal or 0x hex)", value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise _bad(dtype, spec, "takes on/off", value)
    if isinstance(value, str):
        return value
    raise _bad(dtype, spec, "takes a string", value)


_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})


def _bad(dtype: DeviceType, spec: PropertySpec, what: str, value: object) -> ConfigError:
    return ConfigError(
        f"device {dtype.name!r} property {spec.name!r} {what}, not {value!r}",
        device=dtype.name,
        property=spec.name,
    )


def parse_device_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"isa-debug-exit,iobase=0xf4,iosize=4"`` -> ``("isa-debug-exit", {...})``."""
    parts = [p.strip() for p in text.split(",")]
    name = parts[0]
    if not name or "=" in name:
        raise ConfigError(
            f"device spec {text!r} must start with a device type",
            hint="for example 'isa-debug-exit,iobase=0xf4,iosize=4'",
            device=text,
        )
    props: dict[str, str] = {}
    for part in parts[1:]:
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(
                f"device {name!r}: {part!r} is not property=value",
                device=name,
                property=part,
            )
        props[key.strip()] = value.strip()
    return name, props


class DeviceRegistry:
    """Built-in device types plus the ones plugins contribute."""

    def __init__(self, registry: Registry | None = None, *, extra: Iterable[DeviceType] = ()):
        types: dict[str, DeviceType] = {t.name: t for t in builtin_device_types()}
        if registry is not None:
            for name, dtype in registry.device_types().items():
                if name in types:
                    raise ConfigError(
                        f"device type {name!r} from plugin {dtype.plugin!r} clashes with a "
                        "built-in device type",
                        device=name,
                    )
                types[name] = dtype
        for dtype in extra:
            types[dtype.name] = dtype
        self._types = types

    def types(self) -> Mapping[str, DeviceType]:
        return dict(self._types)

    def get(self, name: str) -> DeviceType:
        try:
            return self._types[name]
        except KeyError:
            guess = did_you_mean(name, list(self._types))
            raise ConfigError(
                f"unknown device type {name!r}",
                hint=(f"did you mean {guess!r}? " if guess else "")
                + "types: "
                + ", ".join(sorted(self._types)),
                device=name,
            ) from None

    def validate(
        self, name: str, props: Mapping[str, object], *, user: bool
    ) -> tuple[DeviceType, dict[str, PropValue]]:
        """Check a device request; returns the type and the complete, typed properties."""
        dtype = self.get(name)
        origin = "user" if user else "machine"
        if user and not dtype.user_creatable:
            raise ConfigError(
                f"device type {name!r} cannot be created by a device spec: "
                f"{dtype.not_creatable_reason}",
                hint="the machine creates it when it applies",
                device=name,
            )
        specs = {p.name: p for p in dtype.properties}
        out: dict[str, PropValue] = {}
        for key, value in props.items():
            spec = specs.get(key)
            if spec is None:
                guess = did_you_mean(key, list(specs))
                raise ConfigError(
                    f"device {name!r} has no property {key!r}",
                    hint=(f"did you mean {guess!r}? " if guess else "")
                    + ("properties: " + ", ".join(specs) if specs else "it takes no properties"),
                    device=name,
                    property=key,
                )
            out[key] = _coerce(dtype, spec, value, origin)
        for spec in dtype.properties:
            if spec.name not in out:
                if spec.default is None:
                    raise ConfigError(
                        f"device {name!r} needs property {spec.name!r}",
                        hint=spec.doc or None,
                        device=name,
                        property=spec.name,
                    )
                out[spec.name] = spec.default
        return dtype, out

    def create(self, name: str, props: Mapping[str, object], *, user: bool) -> Device:
        """Validate and make a device (machine init and user specs both come here)."""
        dtype, values = self.validate(name, props, user=user)
        device = dtype.factory(**values)
        if not isinstance(device, Device):
            raise ConfigError(
                f"device type {name!r} (plugin {dtype.plugin!r}) made a "
                f"{type(device).__name__}, not an accel.machine.Device",
                device=name,
            )
        device.type_name = name
        return device

    def create_from_spec(self, text: str) -> Device:
        name, props = parse_device_spec(text)
        return self.create(name, props, user=True)


def device_type(
    name: str,
    summary: str,
    factory: Callable[..., Any],
    properties: Iterable[PropertySpec] = (),
    **kw: Any,
) -> DeviceType:
    """Shorthand for a :class:`DeviceType` of the core."""
    return DeviceType(name, summary, factory, tuple(properties), **kw)


# --------------------------------------------------------------------------- built-in devices

HPET_BASE = 0xFED00000
HPET_SIZE = 0x1000
HPET_PERIOD_FS = 10_000_000  # 10 ns, as QEMU
PIT_HZ = 1_193_182


class DebugCon(Device):
    PROPERTIES = (
        PropertySpec("iobase", int, 0xE9, "I/O port"),
        PropertySpec("readback", int, 0xE9, "value a read of the port returns"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.output = bytearray()

    def realize(self, machine: Machine) -> None:
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
    PROPERTIES = (
        PropertySpec("iobase", int, 0x501, "I/O port"),
        PropertySpec("iosize", int, 2, "width of the port range (1, 2 or 4)"),
    )

    def realize(self, machine: Machine) -> None:
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

    def realize(self, machine: Machine) -> None:
        super().realize(machine)
        base = str(self.props["base"])
        if base == "utc":
            self._epoch = time.time()
        else:
            import datetime

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
        import datetime

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

    def realize(self, machine: Machine) -> None:
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
    PROPERTIES = (PropertySpec("iobase", int, 0x40, "first of the four ports"),)

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.channels = [_PitChannel() for _ in range(3)]

    def realize(self, machine: Machine) -> None:
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
