"""What a device is: the :class:`Device` base and the :class:`MachineServices` it sees.

A :class:`Device` reaches its VM only through the machine it is realised in, and sees
that machine only as :class:`MachineServices` (a small protocol :class:`Machine
<accel.machine.Machine>` satisfies): :meth:`Device.realize` receives it, and the device
registers its port and MMIO handlers there, writes to the console, asks the run to stop,
reads guest time and drives interrupt lines; it never holds an accelerator of its own.
Plugins' devices subclass :class:`Device` too (import it as ``accel.machine.Device`` or from
:mod:`accel.machine.device`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ...errors import ConfigError
from ...plugin import PropertySpec
from ..runstate import RunState

if TYPE_CHECKING:
    from ...accelerator import VM

__all__ = [
    "PORT_MAX",
    "Device",
    "MachineServices",
    "PioRead",
    "PioWrite",
    "PropValue",
    "port_property",
    "port_span_check",
]

#: A property's value once checked.
PropValue = int | bool | str
#: A read handler: ``(port or offset, size) -> value``.
PioRead = Callable[[int, int], int]
#: A write handler: ``(port or offset, size, value)``.
PioWrite = Callable[[int, int, int], None]

#: The last x86 I/O port (the port space is 64 KiB).
PORT_MAX = 0xFFFF


def port_property(name: str, default: int, doc: str) -> PropertySpec:
    """An I/O port property: an int in 0..0xFFFF."""
    return PropertySpec(name, int, default, doc, min=0, max=PORT_MAX)


def port_span_check(
    count: int | str, base: str = "iobase"
) -> Callable[[Mapping[str, PropValue]], str | None]:
    """A :attr:`accel.DeviceType.check` refusing a port range that ends beyond 0xFFFF.

    ``count`` is the number of ports, or the name of the property that holds it.
    """

    def check(props: Mapping[str, PropValue]) -> str | None:
        start = int(props[base])
        n = int(props[count]) if isinstance(count, str) else count
        if start + n - 1 > PORT_MAX:
            what = f" + {count} {n}" if isinstance(count, str) else f" with {n} ports"
            return (
                f"{base} {start:#x}{what} ends at port {start + n - 1:#x}, beyond the "
                f"64 KiB port space (the last port is {PORT_MAX:#x}); valid {base}: "
                f"0..{PORT_MAX + 1 - n:#x}"
            )
        return None

    return check


class MachineServices(Protocol):
    """What a device may use of the machine it is realised in."""

    @property
    def vm(self) -> VM | None:
        """The machine's VM (None before initialisation)."""
        ...

    def register_pio(
        self, base: int, count: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        """Route ports ``base .. base+count-1`` to ``device``'s handlers."""
        ...

    def register_mmio(
        self, base: int, size: int, read: PioRead | None, write: PioWrite | None, device: Device
    ) -> None:
        """Route guest-physical ``base .. base+size-1`` to ``device`` (offsets, sizes)."""
        ...

    def console_write(self, data: bytes) -> None:
        """Send guest output to the machine's console."""
        ...

    def request_stop(self, status: int, message: str, *, kind: str) -> None:
        """End the current run after this exit with ``status``."""
        ...

    def guest_ns(self) -> int:
        """Guest time in ns; stands still while the machine is paused."""
        ...

    def set_irq(self, irq: int, level: bool) -> None:
        """Drive ISA interrupt line ``irq`` to ``level`` (the machine's interrupt
        controller; without one the level goes nowhere)."""
        ...


class Device:
    """Base of every device. Subclasses declare ``PROPERTIES`` and override hooks.

    The factory of a :class:`accel.DeviceType` is called with the checked properties
    as keyword arguments; :attr:`props` keeps them. ``realize(machine)`` wires the device
    into the machine; ``state()`` returns what ``accel machine show`` prints.
    """

    PROPERTIES: tuple[PropertySpec, ...] = ()

    def __init__(self, **props: PropValue) -> None:
        self.props: dict[str, PropValue] = dict(props)
        self.type_name = ""
        self.id = ""
        self._machine: MachineServices | None = None

    @property
    def machine(self) -> MachineServices:
        """The machine this device is realised in (:class:`ConfigError` if none)."""
        if self._machine is None:
            raise ConfigError(
                f"device {self.type_name or type(self).__name__!r} is not realised in a machine",
                device=self.type_name,
            )
        return self._machine

    def realize(self, machine: MachineServices) -> None:
        """Attach to ``machine``: register I/O handlers, set up state."""
        self._machine = machine

    def unrealize(self) -> None:
        self._machine = None

    def runstate_changed(self, old: RunState, new: RunState) -> None:
        """Called on every run-state change of the machine (after the VM changed)."""

    def state(self) -> dict[str, object]:
        """Device state for people and JSON output."""
        return {}
