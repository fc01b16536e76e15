"""``isa-serial``: a 16550A UART (:class:`~accel.machine.serial.Uart16550`) on I/O ports.

The register model lives in :mod:`accel.machine.serial`; this device puts it on eight
ports from ``iobase`` (COM1: 0x3F8), drives ISA interrupt line ``irq`` (COM1: 4) through
:meth:`MachineServices.set_irq <accel.machine.devices.base.MachineServices.set_irq>` and
sends transmitted bytes to the backend its ``chardev`` property names, in QEMU's
``-serial`` spelling (:func:`~accel.machine.serial.parse_serial_backend`):

* ``stdio`` (the default) — the machine's console (``accel run`` streams it to stdout);
* ``file:PATH`` — appended to the file PATH (opened at realisation, closed at
  unrealisation);
* ``null`` — discarded.

Guest input is given with :meth:`SerialPort.receive` (bytes into the receive FIFO, as a
terminal's keystrokes would arrive), or read from a file descriptor by a reader thread
that :meth:`SerialPort.attach_input` starts (``accel run --kernel`` attaches standard
input for ``stdio`` when it is a terminal or a pipe). The reader is bounded as QEMU's
character-device flow control is: it reads only as many bytes as the receive FIFO has
room for and waits while it is full, so no input is lost and none piles up in memory.
Register accesses from the vCPU and the reader's bytes are serialised by a lock.
"""

from __future__ import annotations

import os
import select
import threading
from typing import BinaryIO

from ...errors import AccelError, ConfigError
from ...plugin import PropertySpec
from ..serial import COM1_IOBASE, COM1_IRQ, SerialBackendKind, Uart16550, parse_serial_backend
from .base import Device, MachineServices, PropValue, port_property

__all__ = ["SerialPort"]


class SerialPort(Device):
    """``isa-serial``: a 16550A UART on ports ``iobase..iobase+7`` and ISA IRQ ``irq``."""

    PROPERTIES = (
        port_property("iobase", COM1_IOBASE, "first of the eight I/O ports (COM1: 0x3f8)"),
        PropertySpec("irq", int, COM1_IRQ, "ISA interrupt line (COM1: 4)", min=0, max=15),
        PropertySpec("chardev", str, "stdio", "backend: stdio (the console), file:PATH or null"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        try:
            self.backend = parse_serial_backend(str(self.props.get("chardev", "stdio")))
        except AccelError as exc:
            raise ConfigError(
                f"device 'isa-serial' property 'chardev': {exc.message}",
                hint=exc.hint,
                device="isa-serial",
                property="chardev",
            ) from None
        if self.backend.kind is SerialBackendKind.NONE:
            raise ConfigError(
                "device 'isa-serial' property 'chardev' cannot be 'none'",
                hint="leave the device out for no serial port; chardev takes stdio, "
                "file:PATH or null",
                device="isa-serial",
                property="chardev",
            )
        irq = int(self.props.get("irq", COM1_IRQ))
        if not 0 <= irq <= 15:
            raise ConfigError(
                f"device 'isa-serial' property 'irq' must be an ISA line 0..15, not {irq}",
                device="isa-serial",
                property="irq",
            )
        self.transmitted = 0
        self.received = 0
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._stop_reading = threading.Event()
        self._rbr_read = threading.Event()  # the guest read RBR: there may be room again
        self.uart = Uart16550(self._output, self._set_irq)

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        if self.backend.kind is SerialBackendKind.FILE:
            assert self.backend.path is not None
            try:
                self._file = open(self.backend.path, "ab", buffering=0)  # noqa: SIM115
            except OSError as exc:
                raise ConfigError(
                    f"device 'isa-serial': cannot open {self.backend.path!r}: "
                    f"{exc.strerror or exc}",
                    hint="give a writable path to chardev=file:PATH (-serial file:PATH)",
                    device="isa-serial",
                    property="chardev",
                ) from None
        try:
            machine.register_pio(int(self.props["iobase"]), 8, self._read, self._write, self)
        except BaseException:
            self._close_file()
            raise

    def unrealize(self) -> None:
        self.detach_input()
        self._close_file()
        super().unrealize()

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the line (a terminal's input): into the receive FIFO (bytes
        that find it full are lost, LSR.OE; :meth:`attach_input` never overruns it)."""
        with self._lock:
            self.uart.receive(data)
            self.received += len(data)

    def attach_input(self, fd: int, *, poll: float = 0.05) -> None:
        """Read guest input from ``fd`` on a daemon thread until end of file or
        :meth:`detach_input` (called by unrealisation); ``fd`` stays open (the caller's)."""
        if self._reader is not None:
            raise ConfigError("isa-serial already has an input", device="isa-serial")
        self._stop_reading.clear()
        self._reader = threading.Thread(
            target=self._read_input, args=(fd, poll), name="isa-serial input", daemon=True
        )
        self._reader.start()

    def detach_input(self) -> None:
        """Stop the reader thread (within its poll interval) and wait for it."""
        reader, self._reader = self._reader, None
        if reader is not None:
            self._stop_reading.set()
            self._rbr_read.set()
            reader.join()

    def _read_input(self, fd: int, poll: float) -> None:
        stop = self._stop_reading
        while not stop.is_set():
            with self._lock:
                room = self.uart.can_receive()
            if room == 0:  # the guest has not read what came: wait, read nothing more
                self._rbr_read.wait(poll)
                self._rbr_read.clear()
                continue
            try:
                ready, _, _ = select.select([fd], [], [], poll)
                if not ready:
                    continue
                data = os.read(fd, room)
            except (OSError, ValueError):  # closed or unreadable: no more input
                return
            if not data:  # end of file
                return
            self.receive(data)

    def _read(self, port: int, size: int) -> int:
        offset = port - int(self.props["iobase"])
        with self._lock:
            value = self.uart.read(offset)
        if offset == 0:
            self._rbr_read.set()
        return value

    def _write(self, port: int, size: int, value: int) -> None:
        with self._lock:
            self.uart.write(port - int(self.props["iobase"]), value & 0xFF)

    def _output(self, data: bytes) -> None:
        self.transmitted += len(data)
        kind = self.backend.kind
        if kind is SerialBackendKind.STDIO:
            self.machine.console_write(data)
        elif self._file is not None:
            self._file.write(data)

    def _set_irq(self, level: bool) -> None:
        if self._machine is not None:
            self._machine.set_irq(int(self.props["irq"]), level)

    def state(self) -> dict[str, object]:
        return {
            "iobase": f"{int(self.props['iobase']):#x}",
            "irq": self.props["irq"],
            "chardev": self.backend.spec,
            "bytes_transmitted": self.transmitted,
            "bytes_received": self.received,
        }
