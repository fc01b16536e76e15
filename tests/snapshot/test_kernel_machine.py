"""Kernel-boot machines (``accel run --kernel``) in snapshots: the ``machine/kernel``
subsection, ``isa-serial``, ``fw-cfg`` and its ``fw-cfg-data`` pieces, on TCG (fast,
any host), and malformed versions of those sections (only SnapshotError, checked before
the machine runs)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accel import Accelerator
from accel.errors import SnapshotError, SnapshotFormatError
from accel.machine.devices import SerialPort
from accel.machine.devices.fw_cfg import FwCfgDevice
from accel.machine.machine import Machine
from accel.machine.multiboot import load_multiboot
from accel.runner import KernelOptions, RunOptions, run_kernel
from accel.snapshot import inspect, restore_machine, save_machine

from .streams import Record, rebuild, split

KERNEL = Path(__file__).parent / "kernels" / "midrun.elf"
RAM = 16 << 20
EXIT_STATUS = 33


def kernel_machine(
    acc: Accelerator, serial: str = "stdio", console: bytearray | None = None
) -> Machine:
    plan = load_multiboot(str(KERNEL), ram_size=RAM, cmdline="x", initrd=None, machine="pc")
    return Machine(
        acc, "pc,kernel-irqchip=off", None, ["isa-debug-exit,iobase=0xf4,iosize=4"],
        ram_size=RAM, boot=plan, serial=serial,
        console=console.extend if console is not None else None,
    )  # fmt: skip


def test_a_kernel_machine_snapshot_rebuilds_com1_and_fw_cfg(tcg: Accelerator) -> None:
    with kernel_machine(tcg) as m:
        fw = next(d for d in m.devices if isinstance(d, FwCfgDevice))
        uart = next(d for d in m.devices if isinstance(d, SerialPort))
        assert fw.model is not None
        fw.model.select(0x11)  # KERNEL_DATA, part read
        for _ in range(5):
            fw.model.read_data()
        uart.uart.write(3, 0x83)  # LCR with DLAB
        uart.uart.write(0, 0x01)  # divisor low
        uart.uart.write(3, 0x03)
        uart.uart.write(7, 0x5A)  # scratch
        uart.receive(b"hi")
        want_items = fw.model.contents()
        want_uart = uart.uart.state()
        assert want_uart["rbr"] == ord("i")  # no FIFO: the last byte waits in RBR
        buf = io.BytesIO()
        save_machine(m, buf)
    info = inspect(io.BytesIO(buf.getvalue()))
    names = [s.name for s in info.sections]
    assert {"isa-serial", "fw-cfg", "fw-cfg-data"} <= set(names)
    buf.seek(0)
    restored = restore_machine(buf, tcg)
    with restored:
        names = [d.type_name for d in restored.devices]
        assert "fw-cfg" in names and "isa-serial" in names
        fw2 = next(d for d in restored.devices if isinstance(d, FwCfgDevice))
        uart2 = next(d for d in restored.devices if isinstance(d, SerialPort))
        assert fw2.model is not None
        assert fw2.model.contents() == want_items  # the kernel was not read again
        assert (fw2.model.selected, fw2.model.offset) == (0x11, 5)
        assert fw2.model.file("etc/e820") is not None  # the directory is back
        state = uart2.uart.state()
        assert state == want_uart
        assert (state["divisor"], state["scr"]) == (0x01, 0x5A)
        assert uart2.received == 2


def test_a_kernel_machine_saved_midrun_on_tcg_ends_as_uninterrupted(
    tcg: Accelerator, tmp_path: Path
) -> None:
    whole = bytearray()
    kernel = KernelOptions(str(KERNEL), ram_size=RAM)
    opts = RunOptions(machine="pc,kernel-irqchip=off")
    assert run_kernel(tcg, kernel, opts, console=whole.extend).status == EXIT_STATUS
    snap = tmp_path / "k.snap"
    first = bytearray()
    for stop in (0.002, 0.005, 0.01, 0.02):
        saved = dataclasses.replace(opts, stop_after=stop, save=str(snap))
        if run_kernel(tcg, kernel, saved, console=first.extend).kind == "stopped":
            break
        first.clear()
    else:
        pytest.fail("never caught mid-run")
    out = bytearray()
    with snap.open("rb") as f:
        machine = restore_machine(f, tcg, console=out.extend)
    with machine:
        machine.resume()
        assert machine.run(timeout=60).status == EXIT_STATUS
    assert bytes(first + out) == bytes(whole)


# --------------------------------------------------------------------------- malformed


@pytest.fixture(scope="module")
def valid_stream(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import accel

    acc = accel.open("tcg")
    with acc, kernel_machine(acc) as m:
        buf = io.BytesIO()
        save_machine(m, buf)
    return buf.getvalue()


NEW_SECTIONS = ("machine", "fw-cfg", "fw-cfg-data", "isa-serial")


@settings(
    max_examples=500, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(data=st.data())
def test_malformed_kernel_sections_raise_only_snapshot_errors(
    tcg: Accelerator, valid_stream: bytes, data: st.DataObject
) -> None:
    _header, records = split(valid_stream)
    targets = [i for i, r in enumerate(records) if r.name in NEW_SECTIONS]
    i = data.draw(st.sampled_from(targets))
    rec = records[i]
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "instance", "drop"]))
    payload = bytearray(rec.payload)
    if kind == "flip" and payload:
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] ^= data.draw(st.integers(1, 255))
        records[i] = dataclasses.replace(rec, payload=bytes(payload))
    elif kind == "truncate":
        cut = data.draw(st.integers(0, max(0, len(payload) - 1)))
        records[i] = dataclasses.replace(rec, payload=bytes(payload[:cut]))
    elif kind == "extend":
        records[i] = dataclasses.replace(rec, payload=bytes(payload) + b"\x00\x07")
    elif kind == "instance":
        records[i] = dataclasses.replace(rec, instance=data.draw(st.integers(1, 0x30000)))
    else:
        del records[i]
    stream = rebuild(valid_stream, records)
    try:
        machine = restore_machine(io.BytesIO(stream), tcg)
    except SnapshotError:
        return
    machine.close()  # a change that still decodes to a state the machine can take


def test_a_piece_outside_the_items_is_refused_before_anything_runs(
    tcg: Accelerator, valid_stream: bytes
) -> None:
    _header, records = split(valid_stream)
    piece = next(r for r in records if r.name == "fw-cfg-data")
    moved = Record(piece.name, piece.instance + 40, piece.version_id, piece.payload)
    stream = rebuild(valid_stream, [*records, moved])
    with pytest.raises(SnapshotFormatError, match="fw-cfg-data"):
        restore_machine(io.BytesIO(stream), tcg)
