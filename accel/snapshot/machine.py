"""Machine snapshots: the VM sections plus the machine's configuration and device state.

:func:`save_machine` writes an initialised :class:`~accel.machine.Machine` (pausing a
running one for the duration): the VM sections of :mod:`accel.snapshot.core`, a
``machine`` section (machine type, options, CPU, RAM size, vCPU count, the device tree,
guest time) and one section per device that has state. :func:`restore_machine` checks
the whole stream first — including that the machine type is one this accel knows (a
*newer* version is refused naming both versions) and that the accelerator chosen would
build the very same device tree — and only then builds the machine, applies the state
and leaves it paused; ``machine.resume()`` writes the clock before any vCPU runs.

Device state comes from, in order:

1. the device object's own ``vmstate`` attribute (a :class:`VMStateDescription` whose
   state object is the device itself — for plugins' devices);
2. :data:`DEVICE_STATES`, descriptions of the core's built-in devices, with how to take
   the state from a device and put it back;
3. devices whose state lives elsewhere: the accelerator's paravirtual clock device takes
   the VM ``clock`` section (it re-reads the restored clock when the machine enters the
   paused state), and ``irqchip`` / an in-accelerator PIT keep their state inside the
   accelerator, which the VM interface does not expose yet (they restart in reset state).

The ``clock/clock_is_reliable`` subsection is sent only when the machine type's compat
property ``machine.pv-clock-reliable-get-clock`` is not ``off`` (QEMU's
``x-mach-use-reliable-get-clock``, off on 2.8 and older types).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from ..accelerator import Accelerator
from ..capabilities import Capability
from ..errors import (
    AccelError,
    ConfigError,
    SnapshotError,
    SnapshotFormatError,
    SnapshotMismatchError,
    SnapshotVersionError,
)
from ..irqstate import PicState
from ..machine.device import DeviceRegistry
from ..machine.devices import (
    HPET_PERIOD_FS,
    ApicDevice,
    DebugCon,
    Hpet,
    IoApicDevice,
    PicDevice,
    Pit,
    Rtc,
    SerialPort,
)
from ..machine.devices.fw_cfg import FwCfgDevice
from ..machine.interrupts import MpState
from ..machine.machine import Machine, MachinePlan, RunResult
from ..machine.runstate import RunState
from ..machine.serial import FIFO_SIZE, STATE_VERSION, Uart16550
from ..machine.types import MachineType, machine_types, resolve_machine_type
from ..registry import Registry
from .core import DeviceState, RestoreMode, SaveResult, read, restored_clock, save
from .format import RAM_CHUNK
from .vmstate import (
    BOOL,
    I64,
    U8,
    U16,
    U32,
    U64,
    Array,
    Bytes,
    Field,
    Nested,
    Str,
    Subsection,
    VarBytes,
    VMStateDescription,
)

__all__ = [
    "DEVICE_STATES",
    "MACHINE",
    "DeviceCodec",
    "MachineState",
    "restore_machine",
    "restore_mode",
    "save_machine",
]

_RELIABLE_COMPAT = "machine.pv-clock-reliable-get-clock"


# --------------------------------------------------------------------------- machine section


@dataclass
class MachineState:
    """The ``machine`` section: configuration, device tree, guest time, how it ended."""

    machine_type: str = ""
    options: list[str] = field(default_factory=list)  # "kernel-irqchip=off" ...
    cpu: str = ""
    ram_size: int = 0
    smp: int = 1
    devices: list[str] = field(default_factory=list)  # present device names, in order
    user_devices: list[str] = field(default_factory=list)  # device specs
    guest_ns: int = 0
    saved_at: int = 0
    # subsection machine/ended: how the guest ended its run, when it had (Machine.ended)
    end_kind: str = ""
    end_status: int = 0
    end_message: str = ""
    # subsection machine/kernel: a kernel boot's machine-added devices
    serial: str = ""  # COM1's -serial backend ("" for no machine-added COM1)
    boot_fw_cfg: bool = False  # fw-cfg added for the kernel boot


_END_MESSAGE_MAX = 512

#: Sent only when the guest had ended its run (exit device, halt, shutdown, internal
#: error) before the save; a restore sets :attr:`Machine.ended` from it. An older accel
#: refuses it as an unknown subsection rather than run a guest past its end.
MACHINE_ENDED: VMStateDescription[MachineState] = VMStateDescription(
    "machine/ended",
    version_id=1,
    minimum_version_id=1,
    factory=MachineState,
    fields=(
        Field("end_kind", Str(32)),
        Field("end_status", U64),
        Field("end_message", Str(_END_MESSAGE_MAX)),
    ),
    doc="how the guest had ended its run",
)

#: Sent for a kernel boot's machine (``accel run --kernel``): the devices the machine
#: added for it (COM1 on its ``-serial`` backend, fw-cfg), which a restore adds again.
#: An older accel refuses it as an unknown subsection rather than build a machine
#: without them.
MACHINE_KERNEL: VMStateDescription[MachineState] = VMStateDescription(
    "machine/kernel",
    version_id=1,
    minimum_version_id=1,
    factory=MachineState,
    fields=(Field("serial", Str(255)), Field("boot_fw_cfg", BOOL)),
    doc="the devices a kernel boot added (COM1's backend, fw-cfg)",
)

MACHINE: VMStateDescription[MachineState] = VMStateDescription(
    "machine",
    version_id=1,
    minimum_version_id=1,
    factory=MachineState,
    fields=(
        Field("machine_type", Str(128)),
        Field("options", Array(Str(128), 16)),
        Field("cpu", Str(255)),
        Field("ram_size", U64),
        Field("smp", U32),
        Field("devices", Array(Str(64), 256)),
        Field("user_devices", Array(Str(255), 64)),
        Field("guest_ns", U64),
        Field("saved_at", U64),
    ),
    subsections=(
        Subsection(MACHINE_ENDED, lambda s: s.end_kind != ""),
        Subsection(MACHINE_KERNEL, lambda s: s.serial != "" or s.boot_fw_cfg),
    ),
    doc="machine configuration and the device tree",
)


# --------------------------------------------------------------------------- built-in devices


@dataclass(frozen=True)
class DeviceCodec:
    """A device type's description and how to take its state and put it back.

    ``take(device)`` returns the state object (read by the machine at save time);
    ``put(device, state, context)`` applies a decoded state to a freshly realised device.
    """

    description: VMStateDescription[Any]
    take: Callable[[Any], Any]
    put: Callable[[Any, Any, RestoreContext], None]
    #: Sections of bulk data beside the device's own (``fw-cfg-data``): the descriptions
    #: a reader must know, and ``bulk(device, instance)`` -> ``[(instance, state)]``.
    bulk_description: VMStateDescription[Any] | None = None
    bulk: Callable[[Any, int], list[tuple[int, Any]]] | None = None


@dataclass(frozen=True)
class RestoreContext:
    """What a device's ``put`` may need: the machine, the mode, wall time elapsed, the
    device's instance and the snapshot's decoded device sections (its bulk sections)."""

    machine: Machine
    mode: RestoreMode
    elapsed_ns: int  # wall time since the save (0 in RESUME mode)
    instance: int = 0
    sections: Mapping[tuple[str, int], Any] = field(default_factory=dict)


@dataclass
class RtcState:
    """The ``mc146818rtc`` section."""

    index: int = 0
    cmos: bytes = bytes(128)
    time_ns: int = 0  # the RTC's time (ns since the epoch) at the save


@dataclass
class HpetState:
    """The ``hpet`` section."""

    config: int = 0
    isr: int = 0
    counter: int = 0
    timers: list[TimerReg] = field(default_factory=list)


@dataclass
class TimerReg:
    """One HPET comparator register: its offset and value."""

    offset: int = 0
    value: int = 0


@dataclass
class PitChannelState:
    """One PIT channel; ``elapsed_ns`` is guest time since its count started."""

    reload: int = 0x10000
    mode: int = 3
    access: int = 3
    elapsed_ns: int = 0
    latch: int = 0
    latched: int = 0
    read_hi: bool = False
    write_hi: bool = False


@dataclass
class PitState:
    """The ``isa-pit`` section."""

    channels: list[PitChannelState] = field(default_factory=list)


@dataclass
class DebugConState:
    """The ``isa-debugcon`` section: what the guest wrote so far."""

    output: bytes = b""


@dataclass
class NoState:
    """The section of a device without state (it records that the device exists)."""


def _rtc_take(dev: Rtc) -> RtcState:
    return RtcState(dev.index, bytes(dev.cmos), int(dev.now().timestamp() * 1e9))


def _rtc_put(dev: Rtc, st: RtcState, ctx: RestoreContext) -> None:
    dev.index = st.index
    dev.cmos[:] = st.cmos
    dev.set_time((st.time_ns + ctx.elapsed_ns) / 1e9)


def _hpet_take(dev: Hpet) -> HpetState:
    timers = [TimerReg(k, v) for k, v in sorted(dev.timer_regs.items())]
    return HpetState(dev.config, dev.isr, dev.counter(), timers)


def _hpet_put(dev: Hpet, st: HpetState, ctx: RestoreContext) -> None:
    dev.config = st.config
    dev.isr = st.isr
    ticks = ctx.elapsed_ns * 1_000_000 // HPET_PERIOD_FS if st.config & 1 else 0
    dev.set_counter(st.counter + ticks)
    dev.timer_regs = {t.offset: t.value for t in st.timers}


def _pit_take(dev: Pit) -> PitState:
    now = dev.machine.guest_ns()
    return PitState(
        [
            PitChannelState(
                ch.reload,
                ch.mode,
                ch.access,
                max(0, now - ch.start),
                ch.latch,
                ch.latched,
                ch.read_hi,
                ch.write_hi,
            )
            for ch in dev.channels
        ]
    )


def _pit_put(dev: Pit, st: PitState, ctx: RestoreContext) -> None:
    if len(st.channels) != len(dev.channels):
        raise SnapshotMismatchError(
            f"isa-pit has {len(dev.channels)} channels, the snapshot {len(st.channels)}",
            section="isa-pit",
        )
    now = ctx.machine.guest_ns()
    for ch, s in zip(dev.channels, st.channels, strict=True):
        ch.reload, ch.mode, ch.access = s.reload, s.mode, s.access
        ch.start = now - s.elapsed_ns - ctx.elapsed_ns
        ch.latch, ch.latched, ch.read_hi, ch.write_hi = s.latch, s.latched, s.read_hi, s.write_hi


# --------------------------------------------------------------------------- interrupt controllers
# The userspace PIC pair, IOAPIC and local APICs (accel.machine.interrupts): every
# register; the APIC timer as the guest ns since its count was loaded, as the PIT's.


@dataclass
class PicPairState:
    """The ``isa-i8259`` section: master, then slave, each as
    :class:`accel.irqstate.PicState` (the record of KVM's in-kernel PIC too)."""

    chips: list[PicState] = field(default_factory=list)


@dataclass
class IoApicState:
    """The ``ioapic`` section."""

    id: int = 0
    ioregsel: int = 0
    irr: int = 0
    levels: int = 0
    table: list[int] = field(default_factory=list)


@dataclass
class LapicModelState:
    apic_id: int = 0
    tpr: int = 0
    svr: int = 0xFF
    ldr: int = 0
    dfr: int = 0xFFFFFFFF
    esr: int = 0
    icr_lo: int = 0
    icr_hi: int = 0
    irr: bytes = bytes(32)
    isr: bytes = bytes(32)
    tmr: bytes = bytes(32)
    lvt: list[int] = field(default_factory=list)
    divide: int = 0
    initial_count: int = 0
    elapsed_ns: int = 0
    load_mode: int = 0
    wait_sipi: bool = False
    sipi_vector: int = 0x100  # 0x100: none received
    nmi_pending: bool = False
    extint_pending: bool = False


@dataclass
class ApicState:
    """The ``apic`` section: one entry per vCPU."""

    cpus: list[LapicModelState] = field(default_factory=list)


def _pic_put(dev: PicDevice, st: PicPairState, ctx: RestoreContext) -> None:
    if len(st.chips) != 2:
        raise SnapshotMismatchError(
            f"isa-i8259 has 2 chips, the snapshot {len(st.chips)}", section="isa-i8259"
        )
    for chip, s in zip(dev.model.chips, st.chips, strict=True):
        chip.load(s)


def _ioapic_put(dev: IoApicDevice, st: IoApicState, ctx: RestoreContext) -> None:
    m = dev.model
    if len(st.table) != len(m.table):
        raise SnapshotMismatchError(
            f"ioapic has {len(m.table)} pins, the snapshot {len(st.table)}", section="ioapic"
        )
    m.id, m.ioregsel, m.irr, m.levels = st.id, st.ioregsel, st.irr, st.levels
    m.table = list(st.table)


def _apic_take(dev: ApicDevice) -> ApicState:
    now = dev.machine.guest_ns()
    out = []
    for a in dev.lapics:
        out.append(LapicModelState(
            a.apic_id, a.tpr, a.svr, a.ldr, a.dfr, a.esr, a.icr_lo, a.icr_hi,
            a.irr.to_bytes(32, "little"), a.isr.to_bytes(32, "little"),
            a.tmr.to_bytes(32, "little"), list(a.lvt), a.divide, a.initial_count,
            max(0, now - a.load_ns), a._load_mode, a.mp_state is MpState.WAIT_SIPI,
            0x100 if a.sipi_vector is None else a.sipi_vector, a.nmi_pending,
            a.extint_pending,
        ))  # fmt: skip
    return ApicState(out)


def _apic_put(dev: ApicDevice, st: ApicState, ctx: RestoreContext) -> None:
    if len(st.cpus) != len(dev.lapics):
        raise SnapshotMismatchError(
            f"apic has {len(dev.lapics)} local APICs, the snapshot {len(st.cpus)}",
            section="apic",
        )
    now = ctx.machine.guest_ns()
    for a, s in zip(dev.lapics, st.cpus, strict=True):
        a.apic_id, a.tpr, a.svr, a.ldr, a.dfr, a.esr = s.apic_id, s.tpr, s.svr, s.ldr, s.dfr, s.esr
        a.icr_lo, a.icr_hi = s.icr_lo, s.icr_hi
        a.irr = int.from_bytes(s.irr, "little")
        a.isr = int.from_bytes(s.isr, "little")
        a.tmr = int.from_bytes(s.tmr, "little")
        a.lvt = list(s.lvt)
        a.divide, a.initial_count, a._load_mode = s.divide, s.initial_count, s.load_mode
        a.load_ns = now - s.elapsed_ns - ctx.elapsed_ns
        a.mp_state = MpState.WAIT_SIPI if s.wait_sipi else MpState.RUNNING
        a.sipi_vector = None if s.sipi_vector > 0xFF else s.sipi_vector
        a.nmi_pending, a.extint_pending = s.nmi_pending, s.extint_pending
        a.deadline = None
        a._arm(now)


_PIC_CHIP = VMStateDescription(
    "i8259-chip", 1, 1, PicState,
    fields=tuple(Field(n, U8) for n in (*PicState.FIELDS, "single_mode")),
)  # fmt: skip
_LAPIC = VMStateDescription(
    "lapic", 1, 1, LapicModelState,
    fields=(
        Field("apic_id", U32), Field("tpr", U8), Field("svr", U32), Field("ldr", U32),
        Field("dfr", U32), Field("esr", U32), Field("icr_lo", U32), Field("icr_hi", U32),
        Field("irr", Bytes(32)), Field("isr", Bytes(32)), Field("tmr", Bytes(32)),
        Field("lvt", Array(U32, 6)), Field("divide", U32), Field("initial_count", U32),
        Field("elapsed_ns", U64), Field("load_mode", U8), Field("wait_sipi", BOOL),
        Field("sipi_vector", U16), Field("nmi_pending", BOOL), Field("extint_pending", BOOL),
    ),
)  # fmt: skip


def _debugcon_put(dev: DebugCon, st: DebugConState, ctx: RestoreContext) -> None:
    dev.output[:] = st.output


@dataclass
class UartState:
    """The ``isa-serial`` section: the 16550A's registers and receive FIFO
    (:meth:`~accel.machine.serial.Uart16550.state`), and the byte counters."""

    divisor: int = 0x0C
    rbr: int = 0
    ier: int = 0
    lcr: int = 0
    mcr: int = 0x08
    lsr: int = 0x60
    msr: int = 0
    scr: int = 0
    fcr: int = 0
    thr_ipending: bool = False
    rx_idle: bool = True
    modem_inputs: int = 0
    rx_fifo: bytes = b""
    transmitted: int = 0
    received: int = 0

    def as_uart(self) -> dict[str, object]:
        """The dictionary :meth:`Uart16550.load_state` takes."""
        out: dict[str, object] = {"version": STATE_VERSION}
        for name in _UART_REGS:
            out[name] = int(getattr(self, name))
        out["rx_fifo"] = bytes(self.rx_fifo)
        return out


_UART_REGS = (
    "divisor", "rbr", "ier", "lcr", "mcr", "lsr", "msr", "scr", "fcr", "thr_ipending",
    "rx_idle", "modem_inputs",
)  # fmt: skip


def _serial_take(dev: SerialPort) -> UartState:
    regs = dev.uart.state()
    st = UartState(transmitted=dev.transmitted, received=dev.received)
    for name in _UART_REGS:
        value = regs[name]
        setattr(st, name, bool(value) if name in ("thr_ipending", "rx_idle") else value)
    st.rx_fifo = bytes(regs["rx_fifo"])
    return st


def _serial_check(st: UartState, version_id: int) -> None:
    """Every value as :meth:`Uart16550.load_state` takes it, checked on a scratch UART
    while the stream is read (so a bad value is refused before anything is applied)."""
    Uart16550(lambda data: None, lambda level: None).load_state(st.as_uart())


def _serial_put(dev: SerialPort, st: UartState, ctx: RestoreContext) -> None:
    dev.uart.load_state(st.as_uart())
    dev.transmitted, dev.received = st.transmitted, st.received


@dataclass
class FwCfgItemState:
    """One fw-cfg item: its key, whether the guest may write it (DMA), its length (its
    bytes follow the items' in key order, in the ``fw-cfg-data`` sections)."""

    key: int = 0
    writable: bool = False
    length: int = 0


@dataclass
class FwCfgState:
    """The ``fw-cfg`` section: every item (the kernel and boot information of a kernel
    boot, the file directory and files), the selected key, the offset in it and the DMA
    address register. The items' bytes, one after the other in key order, are carried
    by ``fw-cfg-data`` sections of :data:`FW_CFG_PIECE` bytes (those all zero are left
    out: the kernel's BSS), instance ``(device instance << 16) | piece``."""

    selected: int = 0xFFFF
    offset: int = 0
    dma_address: int = 0
    items: list[FwCfgItemState] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(item.length for item in self.items)


@dataclass
class FwCfgPiece:
    """One ``fw-cfg-data`` section: bytes of the items' data at ``offset``."""

    offset: int = 0
    data: bytes = b""


#: The size of one ``fw-cfg-data`` section's bytes.
FW_CFG_PIECE = 256 << 10
#: At most this many bytes of fw-cfg items (a kernel and its modules) in a snapshot.
FW_CFG_MAX = FW_CFG_PIECE << 16


def _fw_cfg_take(dev: FwCfgDevice) -> FwCfgState:
    model = dev.model
    if model is None:
        raise SnapshotError("fw-cfg is not realised", section="fw-cfg")
    items = [FwCfgItemState(k, w, len(d)) for k, (d, w) in sorted(model.contents().items())]
    state = FwCfgState(model.selected, model.offset, model.dma_address, items)
    if state.total > FW_CFG_MAX:
        raise SnapshotError(
            f"fw-cfg holds {state.total} bytes, more than a snapshot carries ({FW_CFG_MAX})",
            section="fw-cfg",
            hint="boot a smaller kernel and modules",
        )
    return state


def _fw_cfg_bulk(dev: FwCfgDevice, instance: int) -> list[tuple[int, FwCfgPiece]]:
    model = dev.model
    assert model is not None
    blob = b"".join(d for _k, (d, _w) in sorted(model.contents().items()))
    pieces: list[tuple[int, FwCfgPiece]] = []
    for n, at in enumerate(range(0, len(blob), FW_CFG_PIECE)):
        part = blob[at : at + FW_CFG_PIECE]
        if part.count(0) != len(part):
            pieces.append(((instance << 16) | n, FwCfgPiece(at, part)))
    return pieces


def _fw_cfg_check(st: FwCfgState, version_id: int) -> None:
    keys = [item.key for item in st.items]
    if len(set(keys)) != len(keys):
        raise SnapshotFormatError("section 'fw-cfg': an item key appears twice", section="fw-cfg")
    if st.total > FW_CFG_MAX:
        raise SnapshotFormatError(
            f"section 'fw-cfg': items of {st.total} bytes, over the bound {FW_CFG_MAX}",
            section="fw-cfg",
        )


def _fw_cfg_piece_check(st: FwCfgPiece, version_id: int) -> None:
    if st.offset % FW_CFG_PIECE:
        raise SnapshotFormatError(
            f"section 'fw-cfg-data': offset {st.offset:#x} is not a multiple of {FW_CFG_PIECE:#x}",
            section="fw-cfg-data",
        )


def check_fw_cfg_pieces(sections: Mapping[tuple[str, int], Any]) -> None:
    """Every ``fw-cfg-data`` section belongs to a ``fw-cfg`` section, at the offset its
    instance says and inside the items' bytes (checked before anything is applied)."""
    for (name, instance), piece in sections.items():
        if name != "fw-cfg-data":
            continue
        owner = sections.get(("fw-cfg", instance >> 16))
        if (
            owner is None
            or piece.offset != (instance & 0xFFFF) * FW_CFG_PIECE
            or piece.offset + len(piece.data) > owner.total
            or (len(piece.data) != FW_CFG_PIECE and piece.offset + len(piece.data) != owner.total)
        ):
            raise SnapshotFormatError(
                f"section 'fw-cfg-data' instance {instance:#x} does not fit a fw-cfg's items",
                section="fw-cfg-data",
                instance=instance,
            )


def _fw_cfg_put(dev: FwCfgDevice, st: FwCfgState, ctx: RestoreContext) -> None:
    model = dev.model
    assert model is not None
    blob = bytearray(st.total)
    for n in range((st.total + FW_CFG_PIECE - 1) // FW_CFG_PIECE):
        piece = ctx.sections.get(("fw-cfg-data", (ctx.instance << 16) | n))
        if piece is not None:
            blob[piece.offset : piece.offset + len(piece.data)] = piece.data
    contents: dict[int, tuple[bytes, bool]] = {}
    at = 0
    for item in st.items:
        contents[item.key] = (bytes(blob[at : at + item.length]), item.writable)
        at += item.length
    try:
        model.restore(contents, selected=st.selected, offset=st.offset, dma_address=st.dma_address)
    except ConfigError as exc:
        raise SnapshotMismatchError(f"section 'fw-cfg': {exc.message}", section="fw-cfg") from exc


_FW_CFG_ITEM = VMStateDescription(
    "fw-cfg-item",
    1,
    1,
    FwCfgItemState,
    fields=(Field("key", U16), Field("writable", BOOL), Field("length", U32)),
)
#: The ``fw-cfg-data`` description (bytes of fw-cfg items).
FW_CFG_DATA: VMStateDescription[FwCfgPiece] = VMStateDescription(
    "fw-cfg-data",
    1,
    1,
    FwCfgPiece,
    fields=(Field("offset", U64), Field("data", VarBytes(FW_CFG_PIECE))),
    post_load=_fw_cfg_piece_check,
    doc="bytes of the fw-cfg items",
)
_UART_TYPES = {"divisor": U16, "thr_ipending": BOOL, "rx_idle": BOOL}
#: The ``isa-serial`` description (a 16550A UART).
SERIAL_STATE: VMStateDescription[UartState] = VMStateDescription(
    "isa-serial",
    1,
    1,
    UartState,
    fields=(
        *(Field(name, _UART_TYPES.get(name, U8)) for name in _UART_REGS),
        Field("rx_fifo", VarBytes(FIFO_SIZE)),
        Field("transmitted", U64),
        Field("received", U64),
    ),
    post_load=_serial_check,
    doc="16550A UART registers, receive FIFO, byte counters",
)
#: The ``fw-cfg`` description.
FW_CFG_STATE: VMStateDescription[FwCfgState] = VMStateDescription(
    "fw-cfg",
    1,
    1,
    FwCfgState,
    fields=(
        Field("selected", U16),
        Field("offset", U32),
        Field("dma_address", U64),
        Field("items", Array(Nested(_FW_CFG_ITEM), 256)),
    ),
    post_load=_fw_cfg_check,
    doc="fw_cfg items, selected key, offset, DMA address",
)


_TIMER = VMStateDescription(
    "hpet-timer", 1, 1, TimerReg, fields=(Field("offset", U16), Field("value", U64))
)
_PIT_CHANNEL = VMStateDescription(
    "pit-channel",
    1,
    1,
    PitChannelState,
    fields=(
        Field("reload", U32),
        Field("mode", U8),
        Field("access", U8),
        Field("elapsed_ns", U64),
        Field("latch", U16),
        Field("latched", U8),
        Field("read_hi", BOOL),
        Field("write_hi", BOOL),
    ),
)
_DEBUGCON_MAX = 1 << 20


def _no_state(name: str) -> DeviceCodec:
    return DeviceCodec(
        VMStateDescription(name, 1, 1, NoState), lambda dev: NoState(), lambda d, s, c: None
    )


#: The core's built-in device types: description, take, put (by device type name).
DEVICE_STATES: Mapping[str, DeviceCodec] = {
    "mc146818rtc": DeviceCodec(
        VMStateDescription(
            "mc146818rtc",
            1,
            1,
            RtcState,
            fields=(Field("index", U8), Field("cmos", VarBytes(128)), Field("time_ns", I64)),
        ),
        _rtc_take,
        _rtc_put,
    ),
    "hpet": DeviceCodec(
        VMStateDescription(
            "hpet",
            1,
            1,
            HpetState,
            fields=(
                Field("config", U64),
                Field("isr", U64),
                Field("counter", U64),
                Field("timers", Array(Nested(_TIMER), 32 * 4)),
            ),
        ),
        _hpet_take,
        _hpet_put,
    ),
    "isa-pit": DeviceCodec(
        VMStateDescription(
            "isa-pit", 1, 1, PitState, fields=(Field("channels", Array(Nested(_PIT_CHANNEL), 3)),)
        ),
        _pit_take,
        _pit_put,
    ),
    "isa-debugcon": DeviceCodec(
        VMStateDescription(
            "isa-debugcon", 1, 1, DebugConState, fields=(Field("output", VarBytes(_DEBUGCON_MAX)),)
        ),
        lambda dev: DebugConState(bytes(dev.output[-_DEBUGCON_MAX:])),
        _debugcon_put,
    ),
    "isa-debug-exit": _no_state("isa-debug-exit"),
    "isa-serial": DeviceCodec(SERIAL_STATE, _serial_take, _serial_put),
    "fw-cfg": DeviceCodec(FW_CFG_STATE, _fw_cfg_take, _fw_cfg_put, FW_CFG_DATA, _fw_cfg_bulk),
    "isa-i8259": DeviceCodec(
        VMStateDescription(
            "isa-i8259", 1, 1, PicPairState, fields=(Field("chips", Array(Nested(_PIC_CHIP), 2)),)
        ),
        lambda dev: PicPairState([c.state() for c in dev.model.chips]),
        _pic_put,
    ),
    "ioapic": DeviceCodec(
        VMStateDescription(
            "ioapic",
            1,
            1,
            IoApicState,
            fields=(
                Field("id", U8),
                Field("ioregsel", U8),
                Field("irr", U32),
                Field("levels", U32),
                Field("table", Array(U64, 24)),
            ),
        ),
        lambda dev: IoApicState(
            dev.model.id, dev.model.ioregsel, dev.model.irr, dev.model.levels, list(dev.model.table)
        ),
        _ioapic_put,
    ),
    "apic": DeviceCodec(
        VMStateDescription(
            "apic", 1, 1, ApicState, fields=(Field("cpus", Array(Nested(_LAPIC), 1024)),)
        ),
        _apic_take,
        _apic_put,
    ),
}


def device_summary(obj: Any) -> str:
    """One line about a decoded device section of this module (``accel snapshot inspect``)."""
    if isinstance(obj, FwCfgState):
        return (
            f"{len(obj.items)} items, {obj.total} bytes, selected key {obj.selected:#x} at "
            f"offset {obj.offset}"
        )
    if isinstance(obj, FwCfgPiece):
        return f"{len(obj.data)} bytes of the items at {obj.offset:#x}"
    if isinstance(obj, UartState):
        return (
            f"LCR {obj.lcr:#x}, IER {obj.ier:#x}, {len(obj.rx_fifo)} bytes waiting in the "
            f"receive FIFO, {obj.transmitted} sent"
        )
    if isinstance(obj, MachineState):
        text = f"{obj.machine_type}, cpu {obj.cpu}, devices: {', '.join(obj.devices)}"
        if obj.serial or obj.boot_fw_cfg:
            text += f"; kernel boot (COM1 on {obj.serial or 'none'})"
        return text
    return ""


def _codec(dev: Any) -> DeviceCodec | None:
    own = getattr(dev, "vmstate", None)
    if isinstance(own, VMStateDescription):
        return DeviceCodec(own, lambda d: d, _put_attrs(own))
    return DEVICE_STATES.get(dev.type_name)


def _put_attrs(desc: VMStateDescription[Any]) -> Callable[[Any, Any, RestoreContext], None]:
    names = [f.name for f in desc.fields] + [
        f.name for sub in desc.subsections for f in sub.description.fields
    ]

    def put(dev: Any, st: Any, ctx: RestoreContext) -> None:
        for name in names:
            setattr(dev, name, getattr(st, name))

    return put


#: The userspace interrupt controllers: a machine moved from an accelerator that had none
#: (no interrupt injection) gets them in their reset state, as a guest that never had an
#: interrupt controller finds them at power-on.
_USER_INTC = frozenset({"isa-i8259", "ioapic", "apic"})


def _intc_unused(name: str, st: Any) -> bool:
    """A userspace interrupt controller's section in its power-on state (never
    programmed: PIC not initialised, every IOAPIC pin masked, no local APIC enabled or
    holding an interrupt): a machine may go on without it."""
    if isinstance(st, PicPairState):
        return all(
            (c.imr, c.isr, c.irq_base, c.init_state) == (0, 0, 0, 0)
            and not (c.read_reg_select or c.poll or c.special_mask or c.auto_eoi)
            and not (c.rotate_on_auto_eoi or c.special_fully_nested_mode or c.init4)
            and not c.single_mode
            for c in st.chips
        )
    if isinstance(st, IoApicState):
        return st.irr == 0 and all(e & (1 << 16) for e in st.table)
    if isinstance(st, ApicState):
        return all(
            not c.svr & 0x100
            and not any(c.irr + c.isr)
            and c.initial_count == 0
            and not (c.nmi_pending or c.extint_pending)
            for c in st.cpus
        )
    return False


def _accelerator_devices_moved(
    plan: MachinePlan,
    names: list[str],
    saved: list[str],
    sections: Mapping[tuple[str, int], Any],
) -> list[str] | None:
    """Whether the snapshot's device tree (``saved``) may become the target's (``names``)
    across accelerators: notes saying what differs, or None when it may not.

    They may differ only by devices that hold no state of their own in the snapshot:
    the target may add devices its accelerator's plugin adds with no section here
    (kvmclock, on a VM-clock section), and the snapshot may have such devices the
    target lacks. The state such a device stands for is checked at the VM level, which
    refuses naming it when the guest uses it (an armed kvmclock on an accelerator
    without a paravirtual clock, the PIC/IOAPIC or PIT held in the accelerator).
    """
    if names == saved:
        return []
    added = [n for n in names if n not in saved]
    dropped = [n for n in saved if n not in names]
    by_name = {d.name: d for d in plan.decisions if d.present}
    fresh = [n for n in added if n in _USER_INTC]
    added = [n for n in added if n not in _USER_INTC]
    for name in added:
        d = by_name.get(name)
        if d is None or d.origin != "accelerator" or name in DEVICE_STATES:
            return None
    for name in dropped:
        if name in _USER_INTC and _intc_unused(name, sections.get((name, 0))):
            continue
        if name in DEVICE_STATES or any(key[0] == name for key in sections):
            return None
    if [n for n in names if n not in added and n not in fresh] != [
        n for n in saved if n not in dropped
    ]:
        return None
    notes = []
    unused = [n for n in dropped if n in _USER_INTC]
    if unused:
        notes.append(
            f"the snapshot's {', '.join(unused)} were never programmed by the guest: "
            f"{plan.accelerator} goes on without them"
        )
        dropped = [n for n in dropped if n not in _USER_INTC]
    if fresh:
        notes.append(
            f"{plan.accelerator} models {', '.join(fresh)} in userspace, which the "
            "snapshot's machine had not: they start from their reset state"
        )
    if dropped:
        notes.append(
            f"the snapshot's {', '.join(dropped)} (no state of its own) is not on "
            f"{plan.accelerator}: the machine goes on without it"
        )
    if added:
        notes.append(
            f"{plan.accelerator} adds {', '.join(added)} (no state in the snapshot), which "
            "the guest had not"
        )
    return notes


# --------------------------------------------------------------------------- save


def _options(machine: Machine) -> list[str]:
    assert machine.plan is not None
    base = machine.plan.machine_type.compat
    out = []
    for key, value in sorted(machine.plan.compat.items()):
        if key.startswith("machine.") and base.get(key) != value:
            out.append(f"{key.removeprefix('machine.')}={value}")
    return out


def _user_specs(machine: Machine) -> list[str]:
    assert machine.plan is not None
    specs = []
    for d in machine.plan.decisions:
        if d.present and d.origin == "user":
            specs.append(",".join([d.name, *(f"{k}={v}" for k, v in d.properties)]))
    return specs


def save_machine(machine: Machine, stream: IO[bytes], *, chunk_size: int = RAM_CHUNK) -> SaveResult:
    """Write ``machine`` to ``stream``; a running machine is paused for it and resumed.

    Raises :class:`~accel.errors.SnapshotError` for a machine that was never initialised
    and lets a failing clock read through (nothing is written then).
    """
    if machine.vm is None or machine.plan is None:
        raise SnapshotError("the machine is not initialised: call init() or run() first")
    was_running = machine.state is RunState.RUNNING
    if was_running:
        machine.pause()
    try:
        plan = machine.plan
        devices: list[DeviceState] = []
        counts: dict[str, int] = {}
        for dev in machine.devices:
            codec = _codec(dev)
            if codec is None:
                continue
            instance = counts.get(dev.type_name, 0)
            counts[dev.type_name] = instance + 1
            devices.append(DeviceState(codec.description, instance, codec.take(dev)))
            if codec.bulk is not None and codec.bulk_description is not None:
                for bulk_instance, bulk in codec.bulk(dev, instance):
                    devices.append(DeviceState(codec.bulk_description, bulk_instance, bulk))
        state = MachineState(
            machine_type=plan.machine_type.name,
            options=_options(machine),
            cpu=str(plan.cpu),
            ram_size=machine.ram_size,
            smp=machine.smp,
            devices=[d.name for d in plan.decisions if d.present],
            user_devices=_user_specs(machine),
            guest_ns=machine.guest_ns(),
            saved_at=time.time_ns(),
        )
        for d in plan.decisions:  # the devices a kernel boot added (Machine(serial=, boot=))
            if d.present and d.origin == "machine" and d.name == "isa-serial":
                state.serial = str(dict(d.properties).get("chardev", "stdio"))
            if d.present and d.origin == "machine" and d.name == "fw-cfg":
                state.boot_fw_cfg = True
        ended = machine.ended
        if ended is not None:
            state.end_kind = ended.kind[:32]
            state.end_status = ended.status & (2**64 - 1)
            raw = ended.message.encode()[:_END_MESSAGE_MAX]
            state.end_message = raw.decode(errors="ignore")
        devices.insert(0, DeviceState(MACHINE, 0, state))
        return save(
            machine.vm,
            stream,
            machine_type=plan.machine_type.name,
            cpu_model=str(plan.cpu),
            devices=devices,
            send_clock_reliable=plan.compat.get(_RELIABLE_COMPAT, "on") != "off",
            chunk_size=chunk_size,
        )
    finally:
        if was_running:
            machine.resume()


# --------------------------------------------------------------------------- restore


def _check_machine_type(name: str) -> MachineType:
    """The MachineType ``name``; a newer version of a known family is refused naming both."""
    try:
        return resolve_machine_type(name)
    except AccelError:
        pass
    family, _, ver = name.rpartition("-")
    try:
        version = tuple(int(p) for p in ver.split("."))
    except ValueError:
        version = ()
    same = [
        (mt.version, mt)
        for mt in machine_types()
        if mt.version is not None and mt.name.rpartition("-")[0] == family
    ]
    newest_version, newest = max(same, key=lambda item: item[0], default=((), None))
    if newest is not None and version and version > newest_version:
        raise SnapshotVersionError(
            f"the snapshot's machine type {name} is newer than {newest.name}, the newest "
            "this accel knows",
            section="machine",
            expected=newest.name,
            found=name,
            hint="restore with the accel version that wrote the snapshot, or a newer one",
        )
    raise SnapshotMismatchError(
        f"the snapshot's machine type {name!r} is unknown here",
        section="machine",
        found=name,
        hint="see `accel machine list`",
    )


_MODES = {
    "same-host": RestoreMode.RESUME,
    "resume": RestoreMode.RESUME,
    "catch-up": RestoreMode.CATCH_UP,
}


def restore_mode(mode: RestoreMode | str | None) -> RestoreMode:
    """The :class:`RestoreMode` ``mode`` names (None: ``RESUME``)."""
    if mode is None:
        return RestoreMode.RESUME
    if isinstance(mode, RestoreMode):
        return mode
    chosen = _MODES.get(mode)
    if chosen is None:
        raise ConfigError(
            f"restore mode {mode!r} is not understood",
            hint="same-host or catch-up",
            argument="mode",
        )
    return chosen


def restore_machine(
    stream: IO[bytes],
    accel: Accelerator,
    *,
    mode: RestoreMode | str | None = None,
    registry: Registry | None = None,
    console: IO[bytes] | Callable[[bytes], Any] | None = None,
    warnings: list[str] | None = None,
) -> Machine:
    """(``warnings``, a list, receives the restore's notes: sections the snapshot lacks.)

    A new machine on ``accel`` holding the snapshot's state, *paused*: call
    ``machine.resume()``, then ``machine.run()``, to go on.

    ``mode``: :attr:`RestoreMode.RESUME` / ``"same-host"`` (the default: the guest clock
    continues from the saved value) or :attr:`RestoreMode.CATCH_UP` / ``"catch-up"`` (it
    advances by the wall time since the save); another string is a
    :class:`~accel.errors.ConfigError`.

    Checked before anything is built: the stream (structure, CRCs, versions), the machine
    type (known; not newer than this accel's newest of its family), and the device tree
    this accelerator would build for that type, CPU and options (it must be the
    snapshot's: a machine with a paravirtual clock cannot become one without it).
    """
    mode = restore_mode(mode)
    descs: dict[str, VMStateDescription[Any]] = {MACHINE.name: MACHINE}
    for name, codec in DEVICE_STATES.items():
        descs[name] = codec.description
        if codec.bulk_description is not None:
            descs[codec.bulk_description.name] = codec.bulk_description
    for name, dtype in DeviceRegistry(registry).types().items():
        own = getattr(dtype.factory, "vmstate", None)
        if isinstance(own, VMStateDescription) and name not in descs:
            descs[own.name] = own
    with read(stream, devices=descs, required=[(MACHINE.name, 0)]) as staged:
        ms: MachineState = staged.devices[MACHINE.name, 0]
        mtype = _check_machine_type(ms.machine_type)
        if staged.header.machine_type != ms.machine_type:
            raise SnapshotMismatchError(
                "header and machine section disagree on the machine type",
                section="machine",
                expected=staged.header.machine_type,
                found=ms.machine_type,
            )
        spec = ",".join([mtype.name, *ms.options])
        regions = [(r.guest_phys, r.size, r.readonly) for r in staged.layout.regions]
        vcpus = staged.layout.vcpus  # bounded (<= 1024); ms.smp is any u32: compare, never expand
        if (
            (0, ms.ram_size, False) not in regions
            or vcpus != list(range(len(vcpus)))
            or (len(vcpus) != ms.smp)
        ):
            raise SnapshotMismatchError(
                f"the machine section (RAM {ms.ram_size:#x}, {ms.smp} vCPUs) does not match "
                "the VM layout",
                section="machine",
            )
        try:
            plan = Machine.describe(accel, spec, ms.cpu, ms.user_devices, registry=registry)
        except AccelError as exc:
            raise SnapshotMismatchError(
                f"{accel.name} cannot build the snapshot's machine ({spec}, cpu {ms.cpu}): {exc}",
                section="machine",
            ) from exc
        kernel_added = {"fw-cfg": ms.boot_fw_cfg, "isa-serial": bool(ms.serial)}
        names = [
            d.name
            for d in plan.decisions
            if d.present or (d.origin == "machine" and kernel_added.get(d.name, False))
        ]
        moved_notes = _accelerator_devices_moved(plan, names, ms.devices, staged.devices)
        used = [
            n
            for n in ms.devices
            if n in _USER_INTC
            and n not in names
            and not _intc_unused(n, staged.devices.get((n, 0)))
        ]
        if moved_notes is None and used:
            raise SnapshotMismatchError(
                f"the guest programmed its {', '.join(used)} (modelled in userspace) and "
                f"{accel.name} has no interrupt controller to hold them",
                section=used[0],
                hint="restore on an accelerator that takes injected interrupts "
                "(interrupt-injection), or where the snapshot was taken",
            )
        if moved_notes is None:
            raise SnapshotMismatchError(
                f"on {accel.name} this machine would have devices {names}; the snapshot "
                f"has {ms.devices}",
                section="machine",
                expected=ms.devices,
                found=names,
                hint="restore on the accelerator the snapshot was taken on",
            )
        counts: dict[str, int] = {}
        for name in ms.devices:
            instance = counts.get(name, 0)
            counts[name] = instance + 1
            if name in DEVICE_STATES and (name, instance) not in staged.devices:
                raise SnapshotMismatchError(
                    f"device section {name!r} instance {instance} is missing",
                    section=name,
                    instance=instance,
                )
        check_fw_cfg_pieces(staged.devices)
        restored_clock(staged.clock, mode)  # catch-up needs a wall-time base: check now
        max_vcpus = accel.capabilities().value(Capability.MAX_VCPUS)
        if max_vcpus is not None and ms.smp > max_vcpus:
            raise SnapshotMismatchError(
                f"the snapshot has {ms.smp} vCPUs; {accel.name} allows {max_vcpus}",
                section="machine",
                expected=max_vcpus,
                found=ms.smp,
            )
        machine = Machine(
            accel,
            spec,
            ms.cpu,
            ms.user_devices,
            registry=registry,
            ram_size=ms.ram_size,
            smp=ms.smp,
            console=console,
            serial=ms.serial or None,
            fw_cfg=ms.boot_fw_cfg,
        )
        try:
            try:
                machine.init()
            except AccelError as exc:
                raise SnapshotMismatchError(
                    f"{accel.name} cannot build the snapshot's machine: {exc}", section="machine"
                ) from exc
            vm = machine.vm
            assert vm is not None
            have = {(r.guest_phys, r.size) for r in vm.memory_regions}
            try:
                for r in staged.layout.regions:  # firmware images mapped after init
                    if (r.guest_phys, r.size) not in have:
                        vm.add_memory(r.guest_phys, r.size, readonly=r.readonly)
            except AccelError as exc:
                raise SnapshotMismatchError(
                    f"cannot map the snapshot's RAM regions: {exc}", section="vm"
                ) from exc
            staged.apply(vm, mode, fresh=True)
            if warnings is not None:
                warnings.extend(moved_notes)
                warnings.extend(staged.warnings)
            machine.pause()  # created -> paused: devices re-read the restored clock
            elapsed = 0
            if mode is RestoreMode.CATCH_UP:
                elapsed = max(0, time.time_ns() - ms.saved_at)
            seen: dict[str, int] = {}
            for dev in machine.devices:
                dev_codec = _codec(dev)
                if dev_codec is None:
                    continue
                instance = seen.get(dev.type_name, 0)
                seen[dev.type_name] = instance + 1
                st = staged.devices.get((dev.type_name, instance))
                if st is not None:
                    ctx = RestoreContext(machine, mode, elapsed, instance, staged.devices)
                    dev_codec.put(dev, st, ctx)
            assert machine.state is RunState.PAUSED
            if ms.end_kind:
                machine.ended = RunResult(ms.end_status, ms.end_kind, ms.end_message)
        except BaseException:
            machine.close()
            raise
        return machine
