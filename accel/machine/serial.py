"""A 16550A UART (the PC's COM ports) as a pure model, and the ``-serial`` backend parser.

This module holds:

* :class:`Uart16550` — the eight byte-wide registers of a 16550A at offsets 0-7 from its
  I/O base (COM1: :data:`COM1_IOBASE` 0x3F8, ISA IRQ :data:`COM1_IRQ` 4), modelled on
  QEMU 7.2's ``hw/char/serial.c``. It knows nothing of machines or accelerators: it is
  built with a callable that takes transmitted bytes and a callable that drives its
  (level) interrupt line, and fed with :meth:`Uart16550.receive`. The integrator maps the
  line to the accelerator's interrupt controller and the register offsets to ports.
* The register offsets and bits (:class:`Reg`, :class:`Ier`, :class:`IirId`, :class:`Fcr`,
  :class:`Lcr`, :class:`Mcr`, :class:`Lsr`, :class:`Msr`).
* :func:`parse_serial_backend` — QEMU's ``-serial`` forms ``stdio``, ``file:PATH``,
  ``null`` and ``none`` to a :class:`SerialBackend` record naming the backend (the
  integrator opens it).

Behaviour follows ``hw/char/serial.c`` (``serial_ioport_read``/``_write``,
``serial_update_irq``, ``serial_xmit``, ``serial_receive1``, ``serial_reset``): the
interrupt priority (line status > character timeout > received data > THR empty > modem
status), IIR bits 7:6 = 11 with FIFOs enabled, IIR reads clearing a pending THRE
interrupt, IER.ETBEI re-sampling LSR.THRE when it changes, FCR flushing both FIFOs when
the enable bit changes, RX overruns keeping the FIFO's contents (non-FIFO: the new byte
replaces the old), reset values (divisor 12 = 9600 baud, MCR.OUT2 set, MSR with
CTS/DSR/DCD asserted as QEMU reports for a character device without modem lines).

Deliberate differences from QEMU, all because this model has no clock:

* Transmission is instantaneous: a THR write hands the byte to ``output`` at once, so
  LSR.THRE and LSR.TEMT are set again before the write returns (the line drops and rises
  again, as in QEMU, when a THRE interrupt is enabled: an edge-triggered PIC sees one edge
  per byte). There is no transmit FIFO to fill and no retry on a busy backend.
* The character timeout (QEMU: a timer of four character times after the last received
  byte or RBR read) is modelled with zero length: once the receive line is idle — at the
  end of every :meth:`~Uart16550.receive` call unless it says ``idle=False`` — data below
  the FIFO trigger level is a pending timeout interrupt (IIR id 0xC). Reading RBR clears
  the timeout and, if data below the trigger level remains, it is at once pending again
  (the line drops and rises, as QEMU's timer would make it later). At or above the
  trigger level the interrupt is "received data available" (id 0x4).
* Loopback (MCR bit 4) works as the 16550A datasheet says: the MSR inputs follow
  DTR/RTS/OUT1/OUT2 *with* delta bits and modem-status interrupts (QEMU computes the MSR
  from MCR without deltas), and the external input is disconnected: :meth:`receive`
  drops data and :meth:`can_receive` answers 0 (QEMU still accepts the backend's input).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import (
    ConfigError,
    InvalidArgumentError,
    SnapshotFormatError,
    SnapshotVersionError,
    did_you_mean,
)

__all__ = [
    "BAUDBASE",
    "COM1_IOBASE",
    "COM1_IRQ",
    "FIFO_SIZE",
    "IIR_FIFO_ENABLED",
    "SERIAL_BACKEND_FORMS",
    "STATE_VERSION",
    "Fcr",
    "Ier",
    "IirId",
    "Lcr",
    "Lsr",
    "Mcr",
    "Msr",
    "Reg",
    "SerialBackend",
    "SerialBackendKind",
    "Uart16550",
    "parse_serial_backend",
]

#: COM1's I/O base and ISA interrupt line on a PC.
COM1_IOBASE = 0x3F8
COM1_IRQ = 4
#: Depth of the receive FIFO of a 16550A.
FIFO_SIZE = 16
#: The UART's input clock divided by 16: baud rate = BAUDBASE / divisor (1.8432 MHz part).
BAUDBASE = 115200
#: Version of the :meth:`Uart16550.state` dictionary.
STATE_VERSION = 1


class Reg(enum.IntEnum):
    """Register offsets from the I/O base. Aliases name the other register of a pair."""

    RBR = 0  # read, DLAB=0
    THR = 0  # write, DLAB=0
    DLL = 0  # DLAB=1
    IER = 1  # DLAB=0
    DLM = 1  # DLAB=1
    IIR = 2  # read
    FCR = 2  # write
    LCR = 3
    MCR = 4
    LSR = 5
    MSR = 6
    SCR = 7


class Ier(enum.IntFlag):
    """Interrupt enable register."""

    ERBFI = 0x01  # received data available (and character timeout)
    ETBEI = 0x02  # transmitter holding register empty
    ELSI = 0x04  # receiver line status
    EDSSI = 0x08  # modem status


class IirId(enum.IntEnum):
    """Interrupt identification (IIR bits 3:0), highest priority first."""

    LINE_STATUS = 0x06
    CHAR_TIMEOUT = 0x0C
    RX_DATA = 0x04
    THR_EMPTY = 0x02
    MODEM_STATUS = 0x00
    NONE = 0x01


#: IIR bits 7:6 when the FIFOs are enabled.
IIR_FIFO_ENABLED = 0xC0


class Fcr(enum.IntFlag):
    """FIFO control register (write-only, at the IIR's offset)."""

    ENABLE = 0x01
    CLEAR_RX = 0x02
    CLEAR_TX = 0x04
    DMA_MODE = 0x08
    TRIGGER_LO = 0x40
    TRIGGER_HI = 0x80


#: The FCR bits that are kept (QEMU: ``val & 0xC9``); the clear bits act and are gone.
_FCR_STICKY = (Fcr.ENABLE | Fcr.DMA_MODE | Fcr.TRIGGER_LO | Fcr.TRIGGER_HI).value
#: Receive trigger level by FCR bits 7:6.
_TRIGGER_LEVELS = (1, 4, 8, 14)


class Lcr(enum.IntFlag):
    """Line control register: word length (bits 1:0 + 5), stop bits, parity, break, DLAB."""

    WLS0 = 0x01
    WLS1 = 0x02
    STB = 0x04
    PEN = 0x08
    EPS = 0x10
    STICK = 0x20
    BREAK = 0x40
    DLAB = 0x80


class Mcr(enum.IntFlag):
    """Modem control register."""

    DTR = 0x01
    RTS = 0x02
    OUT1 = 0x04
    OUT2 = 0x08
    LOOP = 0x10


class Lsr(enum.IntFlag):
    """Line status register."""

    DR = 0x01
    OE = 0x02
    PE = 0x04
    FE = 0x08
    BI = 0x10
    THRE = 0x20
    TEMT = 0x40
    RX_FIFO_ERROR = 0x80


#: The LSR bits that raise a line-status interrupt (QEMU's ``UART_LSR_INT_ANY``).
_LSR_INT_ANY = (Lsr.OE | Lsr.PE | Lsr.FE | Lsr.BI).value


class Msr(enum.IntFlag):
    """Modem status register: delta bits 3:0, line states 7:4."""

    DCTS = 0x01
    DDSR = 0x02
    TERI = 0x04
    DDCD = 0x08
    CTS = 0x10
    DSR = 0x20
    RI = 0x40
    DCD = 0x80


_MSR_DELTAS = 0x0F
_MSR_LINES = 0xF0
#: What a character device without modem lines reports (QEMU's reset value).
_DEFAULT_MODEM_INPUTS = (Msr.CTS | Msr.DSR | Msr.DCD).value

_STATE_KEYS = (
    "version",
    "divisor",
    "rbr",
    "ier",
    "lcr",
    "mcr",
    "lsr",
    "msr",
    "scr",
    "fcr",
    "thr_ipending",
    "rx_idle",
    "modem_inputs",
    "rx_fifo",
)
_STATE_LIMITS = {"divisor": 0xFFFF, "thr_ipending": 1, "rx_idle": 1, "modem_inputs": 0xF0}


# Plain-int forms of the bits the model tests on every access: operators on IntFlag
# members build new members, several times slower than on ints.
_FCR_CLEAR_RX = Fcr.CLEAR_RX.value
_FCR_CLEAR_TX = Fcr.CLEAR_TX.value
_FCR_ENABLE = Fcr.ENABLE.value
_IER_EDSSI = Ier.EDSSI.value
_IER_ELSI = Ier.ELSI.value
_IER_ERBFI = Ier.ERBFI.value
_IER_ETBEI = Ier.ETBEI.value
_LCR_DLAB = Lcr.DLAB.value
_LSR_BI = Lsr.BI.value
_LSR_DR = Lsr.DR.value
_LSR_OE = Lsr.OE.value
_LSR_TEMT = Lsr.TEMT.value
_LSR_THRE = Lsr.THRE.value
_MCR_DTR = Mcr.DTR.value
_MCR_LOOP = Mcr.LOOP.value
_MCR_OUT1 = Mcr.OUT1.value
_MCR_OUT2 = Mcr.OUT2.value
_MCR_RTS = Mcr.RTS.value
_MSR_CTS = Msr.CTS.value
_MSR_DCD = Msr.DCD.value
_MSR_DCTS = Msr.DCTS.value
_MSR_DDCD = Msr.DDCD.value
_MSR_DDSR = Msr.DDSR.value
_MSR_DSR = Msr.DSR.value
_MSR_RI = Msr.RI.value
_MSR_TERI = Msr.TERI.value


class Uart16550:
    """A 16550A UART: byte registers at offsets 0-7, a 16-byte RX FIFO, one IRQ line.

    ``output`` receives each transmitted byte (as a one-byte ``bytes``) the moment the
    guest writes THR — outside loopback. ``set_irq`` is called with the new level of the
    interrupt line whenever it changes (level-triggered, as an ISA IRQ input: ``True``
    while an enabled interrupt is pending). The line starts low.

    Example, a guest's polled transmit::

        out = bytearray()
        uart = Uart16550(out.extend, lambda level: None)
        uart.write(Reg.LCR, Lcr.DLAB)
        uart.write(Reg.DLL, 1)  # 115200 baud
        uart.write(Reg.DLM, 0)
        uart.write(Reg.LCR, Lcr.WLS0 | Lcr.WLS1)  # 8N1
        while not uart.read(Reg.LSR) & Lsr.THRE:
            pass
        uart.write(Reg.THR, ord("A"))
        assert out == b"A"
    """

    def __init__(
        self, output: Callable[[bytes], object], set_irq: Callable[[bool], object]
    ) -> None:
        self._output = output
        self._set_irq = set_irq
        self._irq = False
        self._rx_fifo = bytearray()
        self._modem_inputs = _DEFAULT_MODEM_INPUTS
        self._reset_registers()

    # ------------------------------------------------------------------ inspection

    @property
    def irq_level(self) -> bool:
        """The level the interrupt line was last driven to."""
        return self._irq

    @property
    def divisor(self) -> int:
        """The 16-bit divisor latch (DLM:DLL)."""
        return self._divisor

    @property
    def baud_rate(self) -> int | None:
        """``BAUDBASE // divisor``, or None while the divisor is 0 (no clock)."""
        return BAUDBASE // self._divisor if self._divisor else None

    @property
    def fifo_enabled(self) -> bool:
        """Whether FCR bit 0 is set (16-byte FIFO mode)."""
        return bool(self._fcr & _FCR_ENABLE)

    @property
    def trigger_level(self) -> int:
        """Receive FIFO trigger level (1, 4, 8 or 14 bytes) chosen by FCR bits 7:6."""
        return _TRIGGER_LEVELS[self._fcr >> 6]

    # ------------------------------------------------------------------ control

    def reset(self) -> None:
        """Master reset: registers to their power-on values, FIFOs empty, line low."""
        self._reset_registers()
        self._drive(False)

    def _reset_registers(self) -> None:
        self._divisor = 0x0C
        self._rbr = 0
        self._ier = 0
        self._lcr = 0
        self._mcr = _MCR_OUT2
        self._lsr = _LSR_TEMT | _LSR_THRE
        self._msr = self._modem_inputs  # no deltas after reset (QEMU clears them)
        self._scr = 0
        self._fcr = 0
        self._thr_ipending = False
        self._rx_idle = True
        self._rx_fifo.clear()

    # ------------------------------------------------------------------ guest access

    def read(self, offset: int) -> int:
        """The guest reads the byte register at ``offset`` (0-7); side effects included."""
        if not 0 <= offset <= 7:
            raise _bad_offset(offset)
        return int(self._read(offset))

    def _read(self, offset: int) -> int:
        if offset == Reg.RBR:
            if self._lcr & _LCR_DLAB:
                return self._divisor & 0xFF
            return self._read_rbr()
        if offset == Reg.IER:
            if self._lcr & _LCR_DLAB:
                return self._divisor >> 8
            return self._ier
        if offset == Reg.IIR:
            iir = self._iir()
            if iir & 0x0F == IirId.THR_EMPTY:
                self._thr_ipending = False
                self._update_irq()
            return iir
        if offset == Reg.LCR:
            return self._lcr
        if offset == Reg.MCR:
            return self._mcr
        if offset == Reg.LSR:
            lsr = self._lsr
            if lsr & (_LSR_BI | _LSR_OE):
                self._lsr &= ~(_LSR_BI | _LSR_OE)
                self._update_irq()
            return lsr
        if offset == Reg.MSR:
            msr = self._msr
            if msr & _MSR_DELTAS:
                self._msr &= _MSR_LINES
                self._update_irq()
            return msr
        return self._scr

    def write(self, offset: int, value: int) -> None:
        """The guest writes ``value`` (0-0xFF) to the byte register at ``offset`` (0-7)."""
        if not 0 <= offset <= 7:
            raise _bad_offset(offset)
        if not 0 <= value <= 0xFF:
            raise InvalidArgumentError(
                f"a UART register takes one byte, not {value!r}",
                hint="write 0..0xFF; the registers are 8 bits wide",
                argument="value",
                value=value,
            )
        value = int(value)
        if offset == Reg.THR:
            if self._lcr & _LCR_DLAB:
                self._divisor = (self._divisor & 0xFF00) | value
            else:
                self._transmit(value)
        elif offset == Reg.IER:
            if self._lcr & _LCR_DLAB:
                self._divisor = (self._divisor & 0x00FF) | (value << 8)
            else:
                self._write_ier(value & 0x0F)
        elif offset == Reg.FCR:
            self._write_fcr(value)
        elif offset == Reg.LCR:
            self._lcr = value
        elif offset == Reg.MCR:
            self._mcr = value & 0x1F
            self._set_modem_lines(self._effective_modem_lines())
        elif offset == Reg.SCR:
            self._scr = value
        # LSR and MSR are read-only: writes are ignored, as QEMU does.

    # ------------------------------------------------------------------ host side

    def receive(self, data: bytes, *, idle: bool = True) -> None:
        """Bytes arrive on the serial input (the backend's input for the guest).

        In FIFO mode they go into the 16-byte RX FIFO; bytes that find it full are lost
        and set LSR.OE. In non-FIFO mode each byte replaces RBR, setting LSR.OE if the
        previous one was not read. ``idle=False`` says more input follows at once, so the
        character timeout does not start (see the module's notes); ``receive(b"")`` then
        marks the line idle. Ignored in loopback, where the input is disconnected.
        """
        if self._mcr & _MCR_LOOP:
            return
        for byte in data:
            self._put_rx(byte)
        self._rx_idle = idle
        self._update_irq()

    def receive_break(self) -> None:
        """A break condition arrives: a 0 byte with LSR.BI (QEMU's ``CHR_EVENT_BREAK``)."""
        if self._mcr & _MCR_LOOP:
            return
        self._put_rx(0)
        self._lsr |= _LSR_BI
        self._rx_idle = True
        self._update_irq()

    def can_receive(self) -> int:
        """How many bytes :meth:`receive` takes now without an overrun (0 in loopback).

        An integrator that holds input back until this is non-zero never loses any, as
        QEMU's character-device flow control does.
        """
        if self._mcr & _MCR_LOOP:
            return 0
        if self._fcr & _FCR_ENABLE:
            return FIFO_SIZE - len(self._rx_fifo)
        return 0 if self._lsr & _LSR_DR else 1

    def set_modem_inputs(self, *, cts: bool, dsr: bool, dcd: bool, ri: bool) -> None:
        """Set the modem status inputs (a host serial port's lines); sets MSR deltas.

        Until this is called they are CTS, DSR and DCD asserted, RI not. In loopback the
        MSR shows the MCR outputs instead; the inputs take effect when loopback ends.
        """
        lines = (
            (_MSR_CTS if cts else 0)
            | (_MSR_DSR if dsr else 0)
            | (_MSR_DCD if dcd else 0)
            | (_MSR_RI if ri else 0)
        )
        self._modem_inputs = int(lines)
        self._set_modem_lines(self._effective_modem_lines())

    # ------------------------------------------------------------------ snapshots

    def state(self) -> dict[str, int | bytes]:
        """The complete device state as plain ints and bytes, with a ``version`` key."""
        return {
            "version": STATE_VERSION,
            "divisor": int(self._divisor),
            "rbr": int(self._rbr),
            "ier": int(self._ier),
            "lcr": int(self._lcr),
            "mcr": int(self._mcr),
            "lsr": int(self._lsr),
            "msr": int(self._msr),
            "scr": int(self._scr),
            "fcr": int(self._fcr),
            "thr_ipending": int(self._thr_ipending),
            "rx_idle": int(self._rx_idle),
            "modem_inputs": int(self._modem_inputs),
            "rx_fifo": bytes(self._rx_fifo),
        }

    def load_state(self, state: Mapping[str, object]) -> None:
        """Restore a :meth:`state` dictionary, then drive the line to its level once.

        Raises :class:`~accel.errors.SnapshotVersionError` for another version and
        :class:`~accel.errors.SnapshotFormatError` for a missing, unknown or out-of-range
        entry; the device is unchanged when either is raised.
        """
        version = state.get("version")
        if version != STATE_VERSION:
            raise SnapshotVersionError(
                f"UART state version {version!r} is not understood here",
                section="serial",
                expected=f"{STATE_VERSION}..{STATE_VERSION}",
                found=version,
            )
        missing = [k for k in _STATE_KEYS if k not in state]
        unknown = sorted(set(state) - set(_STATE_KEYS))
        if missing or unknown:
            raise SnapshotFormatError(
                f"UART state has missing keys {missing} or unknown keys {unknown}",
                section="serial",
                expected=list(_STATE_KEYS),
                found=sorted(state),
                hint="pass a dictionary returned by Uart16550.state()",
            )
        values: dict[str, int] = {}
        for key in _STATE_KEYS[1:-1]:
            value = state[key]
            limit = _STATE_LIMITS.get(key, 0xFF)
            if type(value) is not int or not 0 <= value <= limit:
                raise SnapshotFormatError(
                    f"UART state {key!r} must be an int 0..{limit:#x}, not {value!r}",
                    section="serial",
                    expected=f"0..{limit:#x}",
                    found=value,
                )
            values[key] = value
        fifo = state["rx_fifo"]
        if not isinstance(fifo, bytes | bytearray) or len(fifo) > FIFO_SIZE:
            raise SnapshotFormatError(
                f"UART state 'rx_fifo' must be at most {FIFO_SIZE} bytes, not {fifo!r}",
                section="serial",
                expected=f"bytes of length 0..{FIFO_SIZE}",
                found=fifo,
            )
        self._divisor = values["divisor"]
        self._rbr = values["rbr"]
        self._ier = values["ier"] & 0x0F
        self._lcr = values["lcr"]
        self._mcr = values["mcr"] & 0x1F
        self._lsr = values["lsr"]
        self._msr = values["msr"]
        self._scr = values["scr"]
        self._fcr = values["fcr"] & _FCR_STICKY
        self._thr_ipending = bool(values["thr_ipending"])
        self._rx_idle = bool(values["rx_idle"])
        self._modem_inputs = values["modem_inputs"] & _MSR_LINES
        self._rx_fifo[:] = fifo
        self._drive(self._pending() != IirId.NONE, force=True)

    # ------------------------------------------------------------------ internals

    def _pending(self, timeout: bool = True) -> IirId:
        """The highest-priority enabled pending interrupt (QEMU's serial_update_irq)."""
        ier = self._ier
        lsr = self._lsr
        if ier & _IER_ELSI and lsr & _LSR_INT_ANY:
            return IirId.LINE_STATUS
        if ier & _IER_ERBFI and lsr & _LSR_DR:
            if not self._fcr & _FCR_ENABLE:
                return IirId.RX_DATA
            count = len(self._rx_fifo)
            level = _TRIGGER_LEVELS[self._fcr >> 6]
            if count >= level:
                return IirId.RX_DATA
            if timeout and self._rx_idle and count:
                return IirId.CHAR_TIMEOUT
        if ier & _IER_ETBEI and self._thr_ipending:
            return IirId.THR_EMPTY
        if ier & _IER_EDSSI and self._msr & _MSR_DELTAS:
            return IirId.MODEM_STATUS
        return IirId.NONE

    def _iir(self) -> int:
        fifo_bits = IIR_FIFO_ENABLED if self._fcr & _FCR_ENABLE else 0
        return int(self._pending()) | fifo_bits

    def _update_irq(self, timeout: bool = True) -> None:
        self._drive(self._pending(timeout) != IirId.NONE)

    def _drive(self, level: bool, *, force: bool = False) -> None:
        if level != self._irq or force:
            self._irq = level
            self._set_irq(level)

    def _transmit(self, value: int) -> None:
        # QEMU: THR write clears THRE/TEMT and thr_ipending, updates the line, then
        # serial_xmit sets THRE, thr_ipending and updates the line before sending.
        self._thr_ipending = False
        self._lsr &= ~(_LSR_THRE | _LSR_TEMT)
        self._update_irq()
        self._lsr |= _LSR_THRE
        self._thr_ipending = True
        self._update_irq()
        if self._mcr & _MCR_LOOP:
            self._put_rx(value)
            self._rx_idle = True
            self._update_irq()
        else:
            self._output(bytes((value,)))
        self._lsr |= _LSR_TEMT

    def _write_ier(self, value: int) -> None:
        changed = self._ier ^ value
        self._ier = value
        if changed & _IER_ETBEI:
            # Enabling ETBEI re-samples LSR.THRE even after an IIR read masked it
            # (QEMU's comment: Windows relies on it).
            self._thr_ipending = bool(value & _IER_ETBEI and self._lsr & _LSR_THRE)
        if changed:
            self._update_irq()

    def _write_fcr(self, value: int) -> None:
        if (value ^ self._fcr) & _FCR_ENABLE:
            value |= _FCR_CLEAR_RX | _FCR_CLEAR_TX
        if value & _FCR_CLEAR_RX:
            self._lsr &= ~(_LSR_DR | _LSR_BI)
            self._rx_fifo.clear()
        if value & _FCR_CLEAR_TX:
            self._lsr |= _LSR_THRE
            self._thr_ipending = True
        self._fcr = value & _FCR_STICKY
        self._update_irq()

    def _read_rbr(self) -> int:
        if not self._fcr & _FCR_ENABLE:
            self._lsr &= ~(_LSR_DR | _LSR_BI)
            self._update_irq()
            return self._rbr
        value = self._rx_fifo.pop(0) if self._rx_fifo else 0
        if not self._rx_fifo:
            self._lsr &= ~(_LSR_DR | _LSR_BI)
        # Reading clears the character timeout; with data left below the trigger level
        # it expires again at once (zero-length timeout), so the line drops and rises.
        self._update_irq(timeout=False)
        self._update_irq()
        return value

    def _put_rx(self, byte: int) -> None:
        if self._fcr & _FCR_ENABLE:
            if len(self._rx_fifo) < FIFO_SIZE:
                self._rx_fifo.append(byte)
            else:
                self._lsr |= _LSR_OE  # the FIFO keeps its contents
        else:
            if self._lsr & _LSR_DR:
                self._lsr |= _LSR_OE  # the new byte replaces the unread one
            self._rbr = byte
        self._lsr |= _LSR_DR

    def _effective_modem_lines(self) -> int:
        mcr = self._mcr
        if not mcr & _MCR_LOOP:
            return self._modem_inputs
        # Loopback: DTR -> DSR, RTS -> CTS, OUT1 -> RI, OUT2 -> DCD.
        return (
            (_MSR_DSR if mcr & _MCR_DTR else 0)
            | (_MSR_CTS if mcr & _MCR_RTS else 0)
            | (_MSR_RI if mcr & _MCR_OUT1 else 0)
            | (_MSR_DCD if mcr & _MCR_OUT2 else 0)
        )

    def _set_modem_lines(self, lines: int) -> None:
        old = self._msr & _MSR_LINES
        if lines == old:
            return
        deltas = ((old ^ lines) >> 4) & (_MSR_DCTS | _MSR_DDSR | _MSR_DDCD)
        if old & _MSR_RI and not lines & _MSR_RI:
            deltas |= _MSR_TERI  # trailing edge of RI only
        self._msr = lines | (self._msr & _MSR_DELTAS) | deltas
        self._update_irq()


def _bad_offset(offset: int) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"UART register offset {offset!r} is outside 0..7",
        hint="pass the port minus the UART's I/O base (COM1: 0x3f8..0x3ff)",
        argument="offset",
        value=offset,
    )


# ---------------------------------------------------------------------- -serial backends


class SerialBackendKind(enum.StrEnum):
    """Where a serial port's bytes go (QEMU ``-serial`` backends accel knows)."""

    STDIO = "stdio"  # the terminal: output to stdout, input from stdin
    FILE = "file"  # output appended to a file, no input
    NULL = "null"  # the port exists, output is discarded, no input
    NONE = "none"  # no port at all


#: The ``-serial`` forms :func:`parse_serial_backend` accepts.
SERIAL_BACKEND_FORMS = ("stdio", "file:PATH", "null", "none")


@dataclass(frozen=True, slots=True)
class SerialBackend:
    """A parsed ``-serial`` value: the backend's kind and, for ``file``, its path."""

    kind: SerialBackendKind
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is SerialBackendKind.FILE) != bool(self.path):
            raise InvalidArgumentError(
                f"a {self.kind.value!r} serial backend "
                + ("needs a path" if self.kind is SerialBackendKind.FILE else "takes no path"),
                hint="give a path for 'file' only",
                argument="path",
                value=self.path,
            )

    @property
    def has_port(self) -> bool:
        """False for ``none``: the machine gets no UART on this port."""
        return self.kind is not SerialBackendKind.NONE

    @property
    def spec(self) -> str:
        """The ``-serial`` text for this backend (parses back to an equal record)."""
        if self.kind is SerialBackendKind.FILE:
            return f"file:{self.path}"
        return self.kind.value


def parse_serial_backend(spec: str) -> SerialBackend:
    """Parse a QEMU ``-serial`` value: ``stdio``, ``file:PATH``, ``null`` or ``none``.

    Anything else (QEMU's ``pty``, ``tcp:``, ``mon:`` ..., a misspelling) raises
    :class:`~accel.errors.ConfigError` naming the value, with the accepted forms as hint.
    """
    forms = ", ".join(SERIAL_BACKEND_FORMS)
    if spec.startswith("file:"):
        path = spec[len("file:") :]
        if not path:
            raise ConfigError(
                "serial backend 'file:' needs a path",
                hint=f"write file:PATH, e.g. file:serial.log; accepted forms: {forms}",
                argument="serial",
                value=spec,
            )
        return SerialBackend(SerialBackendKind.FILE, path)
    for kind in SerialBackendKind:
        if kind is not SerialBackendKind.FILE and spec == kind.value:
            return SerialBackend(kind)
    guess = did_you_mean(spec.split(":", 1)[0], [k.value for k in SerialBackendKind])
    suggestion = f"did you mean {guess!r}? " if guess else ""
    raise ConfigError(
        f"serial backend {spec!r} is not supported",
        hint=f"{suggestion}accepted forms: {forms}",
        argument="serial",
        value=spec,
    )
