"""The debug ports: ``isa-debugcon`` (bytes to the console) and ``isa-debug-exit``."""

from __future__ import annotations

from ...errors import ConfigError
from ...plugin import PropertySpec
from .base import Device, MachineServices, PropValue, port_property

__all__ = ["DebugCon", "DebugExit"]


class DebugCon(Device):
    """``isa-debugcon``: a port whose bytes go to the machine's console."""

    PROPERTIES = (
        port_property("iobase", 0xE9, "I/O port (0..0xffff)"),
        PropertySpec(
            "readback", int, 0xE9, "value a read of the port returns (0..0xff)", min=0, max=0xFF
        ),
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
        port_property("iobase", 0x501, "first I/O port (iobase + iosize - 1 <= 0xffff)"),
        PropertySpec("iosize", int, 2, "width of the port range (1, 2 or 4)", min=1, max=4),
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
