"""Machine snapshots: devices, compat (clock_is_reliable), machine-type versions, and the
round trip of a guest on a real machine, on TCG and KVM."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

import accel
import accel.snapshot
from accel import Accelerator
from accel.errors import AccelError, ConfigError, SnapshotMismatchError, SnapshotVersionError
from accel.machine import Machine, RunState
from accel.runner import load_image
from accel.snapshot import RestoreMode, encode, read
from accel.snapshot.format import Header
from accel.snapshot.machine import MACHINE, restore_machine, restore_mode, save_machine

from .conftest import open_or_skip
from .streams import Record, join, split

LIMIT = 60


@pytest.fixture(params=[pytest.param("kvm", marks=pytest.mark.kvm), "tcg"])
def acc(request: pytest.FixtureRequest) -> Iterator[Accelerator]:
    yield from open_or_skip(request.param)


def program(limit: int = LIMIT) -> bytes:
    """At 0x1000: count in [0x2000], print 'a'+count%26 on the debug console (0xe9),
    halt after each step; at the end write 0x21 to isa-debug-exit (status 0x43)."""
    return (
        bytes.fromhex("a10020 40 a30020 b31a f6f3 88e0 0461 e6e9 a10020 f4 3d".replace(" ", ""))
        + struct.pack("<H", limit)
        + bytes.fromhex("75e6 b021 e6f4 f4")
    )


def new_machine(acc: Accelerator, mtype: str = "pc") -> Machine:
    # No in-kernel irqchip: a HLT with interrupts off then comes back to the run loop.
    m = Machine(
        acc,
        mtype + ",kernel-irqchip=off",
        devices=["isa-debugcon,iobase=0xe9", "isa-debug-exit,iobase=0xf4,iosize=4"],
        ram_size=1 << 20,
    ).init()
    load_image(m, program(), 0x1000, None)
    return m


def run_steps(m: Machine, n: int | None) -> str:
    """Run until ``n`` halts have passed (None: to the debug-exit); the console so far."""
    while n is None or n > 0:
        result = m.run(timeout=10)
        if result.kind != "halt":
            assert result.kind == "debug-exit", result
            break
        if n is not None:
            n -= 1
    return bytes(m.device("isa-debugcon").output).decode()  # type: ignore[attr-defined]


def test_program_runs_to_the_end(acc: Accelerator) -> None:
    with new_machine(acc) as m:
        out = run_steps(m, None)
    assert len(out) == LIMIT and out.startswith("bcd")


@pytest.mark.parametrize("mode", list(RestoreMode))
def test_machine_round_trip_equals_uninterrupted(acc: Accelerator, mode: RestoreMode) -> None:
    with new_machine(acc) as m:
        want = run_steps(m, None)
    m = new_machine(acc)
    run_steps(m, 25)
    m.pause()
    buf = io.BytesIO()
    save_machine(m, buf)
    m.close()
    buf.seek(0)
    m2 = restore_machine(buf, acc, mode=mode)
    try:
        assert m2.state is RunState.PAUSED
        assert bytes(m2.device("isa-debugcon").output).decode() == want[:25]  # type: ignore[attr-defined]
        m2.resume()
        assert run_steps(m2, None) == want
        assert m2.vm is not None and m2.vm.read_memory(0x2000, 2) == LIMIT.to_bytes(2, "little")
    finally:
        m2.close()


def test_device_state_survives(acc: Accelerator) -> None:
    m = new_machine(acc)
    rtc = m.device("mc146818rtc")
    rtc.cmos[0x20] = 0x5A  # type: ignore[attr-defined]
    rtc.index = 0x20  # type: ignore[attr-defined]
    m.run(timeout=10)  # one step
    m.pause()
    before_rtc = rtc.now()  # type: ignore[attr-defined]
    buf = io.BytesIO()
    save_machine(m, buf)
    m.close()
    buf.seek(0)
    with restore_machine(buf, acc) as m2:
        rtc2 = m2.device("mc146818rtc")
        assert rtc2.cmos[0x20] == 0x5A and rtc2.index == 0x20  # type: ignore[attr-defined]
        assert abs((rtc2.now() - before_rtc).total_seconds()) < 0.01  # type: ignore[attr-defined]


def test_reliable_subsection_follows_machine_type_compat(tcg: Accelerator) -> None:
    got = {}
    for mtype in ("pc-i440fx-2.8", "pc-i440fx-2.9", "pc-q35-7.2"):
        with new_machine(tcg, mtype) as m:
            m.run(timeout=10)
            buf = io.BytesIO()
            save_machine(m, buf)
        buf.seek(0)
        descs = {MACHINE.name: MACHINE}
        from accel.snapshot.machine import DEVICE_STATES

        descs.update({k: c.description for k, c in DEVICE_STATES.items()})
        with read(buf, devices=descs) as staged:
            got[mtype] = staged.clock.reliable
        # An old machine type's snapshot (no subsection) still restores.
        buf.seek(0)
        restore_machine(buf, tcg).close()
    # The TCG clock is reliable; only types 2.9 and newer say so.
    assert got == {"pc-i440fx-2.8": False, "pc-i440fx-2.9": True, "pc-q35-7.2": True}


def _renamed(data: bytes, new_type: str) -> bytes:
    _, recs = split(data)
    from accel.snapshot import decode

    out = []
    for r in recs:
        if r.name == "machine":
            st = decode(MACHINE, r.payload, r.version_id)
            st.machine_type = new_type
            r = Record(r.name, r.instance, r.version_id, encode(MACHINE, st))
        out.append(r)
    return join(out, header=Header(accelerator="tcg", machine_type=new_type, cpu_model="qemu64"))


def test_newer_machine_type_is_refused_naming_both(tcg: Accelerator) -> None:
    with new_machine(tcg, "pc-i440fx-7.2") as m:
        buf = io.BytesIO()
        save_machine(m, buf)
    data = buf.getvalue()
    restore_machine(io.BytesIO(_renamed(data, "pc-i440fx-2.8")), tcg).close()  # older: fine
    with pytest.raises(SnapshotVersionError) as info:
        restore_machine(io.BytesIO(_renamed(data, "pc-i440fx-9.1")), tcg)
    assert "pc-i440fx-9.1" in info.value.message and "pc-i440fx-7.2" in info.value.message
    with pytest.raises(SnapshotMismatchError, match="unknown"):
        restore_machine(io.BytesIO(_renamed(data, "sparc-1.0")), tcg)


@pytest.mark.kvm
def test_kvm_machine_keeps_its_paravirtual_clock(kvm: Accelerator, tcg: Accelerator) -> None:
    m = new_machine(kvm)
    run_steps(m, 3)
    m.pause()
    saved = m.vm.get_clock() if m.vm else None
    buf = io.BytesIO()
    save_machine(m, buf)
    m.close()
    assert saved is not None
    buf.seek(0)
    with restore_machine(buf, kvm) as m2:
        st = m2.device("kvmclock").state()
        assert st["clock"] == saved.clock and st["clock_valid"] and st["runstate_paused"]
        assert st["clock_is_reliable"] is saved.reliable
    buf.seek(0)
    notes: list[str] = []
    # TCG builds the machine without kvmclock; the guest never armed it, so it moves and
    # the restore says so (an armed one is refused: test_midrun_kernel.py)
    with restore_machine(buf, tcg, warnings=notes) as m3:
        assert "kvmclock" not in [d.type_name for d in m3.devices]
    assert any("kvmclock" in n and "not on tcg" in n for n in notes), notes


# --------------------------------------------------------------------------- malformed


def _machine_snapshot() -> bytes:
    acc = accel.open("tcg")
    with new_machine(acc) as m:
        m.run(timeout=10)
        buf = io.BytesIO()
        save_machine(m, buf, chunk_size=64 * 1024)
    return buf.getvalue()


@pytest.fixture(scope="module")
def machine_snapshot() -> bytes:
    try:
        return _machine_snapshot()
    except AccelError as exc:
        pytest.skip(f"tcg is not usable here: {exc}")


def test_malformed_machine_streams_raise_only_snapshot_errors(
    machine_snapshot: bytes, tcg: Accelerator
) -> None:
    """Well-framed streams (valid CRCs) whose machine section or device sections are wrong."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from accel.errors import SnapshotError

    _, recs = split(machine_snapshot)
    state_names = [i for i, r in enumerate(recs) if r.name != "ram"]

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        st.sampled_from(state_names),
        st.integers(0, 10_000),
        st.one_of(
            st.binary(min_size=1, max_size=4),
            st.sampled_from([b"\xff" * 4, b"\xff" * 8, b"\x00" * 4, b"\x35\x64\x5a\xf2"]),
        ),
        st.booleans(),
    )
    def check(index: int, pos: int, patch: bytes, cut: bool) -> None:
        out = list(recs)
        r = out[index]
        payload = r.payload
        pos %= max(1, len(payload))
        payload = payload[:pos] if cut else payload[:pos] + patch + payload[pos + len(patch) :]
        out[index] = Record(r.name, r.instance, r.version_id, payload)
        data = join(out, header=Header(accelerator="tcg", machine_type="pc-i440fx-7.2"))
        try:
            m = restore_machine(io.BytesIO(data), tcg)
        except SnapshotError:
            return
        m.close()  # some patches leave a valid snapshot (a register value changed)

    check()


def test_inspect_shows_machine_and_devices(machine_snapshot: bytes) -> None:
    from accel.snapshot import inspect

    info = inspect(io.BytesIO(machine_snapshot))
    by_name = {s.name: s for s in info.sections}
    assert by_name["machine"].fields is not None
    assert by_name["machine"].fields["machine_type"] == "pc-i440fx-7.2"
    assert "isa-debugcon" in by_name["machine"].fields["devices"]
    assert by_name["mc146818rtc"].fields is not None


def test_huge_vcpu_count_is_refused_cheaply(machine_snapshot: bytes, tcg: Accelerator) -> None:
    """Regression: a damaged ``smp`` of 4e9 once made the restore build a 4e9-element list."""
    from accel.snapshot import decode

    _, recs = split(machine_snapshot)
    out = []
    for r in recs:
        if r.name == "machine":
            st = decode(MACHINE, r.payload, r.version_id)
            st.smp = 0xF25A6435
            r = Record(r.name, r.instance, r.version_id, encode(MACHINE, st))
        out.append(r)
    data = join(out, header=Header(accelerator="tcg", machine_type="pc-i440fx-7.2"))
    with pytest.raises(SnapshotMismatchError, match="vCPUs"):
        restore_machine(io.BytesIO(data), tcg)


# --------------------------------------------------------------------------- pause mid-run


def loop_program(n: int) -> bytes:
    """Count EAX to ``n`` storing it at 0x2000 (no I/O, no HLT), then isa-debug-exit."""
    return (
        bytes.fromhex("6631c0 6640 66a30020 663d".replace(" ", ""))
        + struct.pack("<I", n)
        + bytes.fromhex("75f2 b021 e6f4 f4")
    )


#: Iterations: real mode runs in KVM's emulator under nested virtualization (slow).
LOOP_N = {"kvm": 200_000, "tcg": 8_000_000}


def _loop_machine(acc: Accelerator) -> Machine:
    m = Machine(
        acc,
        "pc,kernel-irqchip=off",
        devices=["isa-debug-exit,iobase=0xf4,iosize=4"],
        ram_size=1 << 20,
    ).init()
    load_image(m, loop_program(LOOP_N[acc.name]), 0x1000, None)
    return m


def _counter(m: Machine) -> int:
    assert m.vm is not None
    return int.from_bytes(m.vm.read_memory(0x2000, 4), "little")


def test_pause_from_another_thread_mid_run_and_restore(acc: Accelerator) -> None:
    """The ``accel run --save`` case: the run loop is busy in the guest when another
    thread pauses the machine and saves it; the restored machine finishes the count."""
    import threading
    import time

    n = LOOP_N[acc.name]
    with _loop_machine(acc) as m0:
        t0 = time.perf_counter()
        assert m0.run(timeout=60).status == 0x43
        took = time.perf_counter() - t0
        assert _counter(m0) == n

    m1 = _loop_machine(acc)
    results = []
    worker = threading.Thread(target=lambda: results.append(m1.run(timeout=60)))
    worker.start()
    time.sleep(took / 4)
    # Machine.pause kicks the vCPU out of the guest and waits until it stopped; bound
    # the wait so a run that ended first fails the test instead of hanging it.
    pauser = threading.Thread(target=m1.pause, daemon=True)
    pauser.start()
    pauser.join(30)
    assert not pauser.is_alive(), "Machine.pause did not return"
    saved_count = _counter(m1)
    buf = io.BytesIO()
    save_machine(m1, buf)
    m1.resume()  # the source goes on and finishes too
    worker.join(60)
    assert results and results[0].status == 0x43 and _counter(m1) == n
    m1.close()
    assert 0 < saved_count < n, "the pause did not land mid-run"

    buf.seek(0)
    with restore_machine(buf, acc) as m2:
        assert _counter(m2) == saved_count
        m2.resume()
        assert m2.run(timeout=60).status == 0x43
        assert _counter(m2) == n


GUESTS = Path(__file__).resolve().parents[2] / "examples" / "guests"


def test_save_machine_and_restore_machine_by_mode_name(acc: Accelerator) -> None:
    """A machine that ran to its end saves and restores under every mode name; the
    restored machine is paused, knows how the guest ended and keeps its devices' state."""
    console = io.BytesIO()
    image = (GUESTS / "compute.bin").read_bytes()
    devices = ["isa-debugcon,iobase=0xe9", "isa-debug-exit,iobase=0xf4,iosize=4"]
    with Machine(acc, "pc,kernel-irqchip=off", devices=devices, console=console) as m:
        load_image(m, image, None, None)
        result = m.run(timeout=60)
        assert result.status == 111 and m.ended == result
        buf = io.BytesIO()
        save_machine(m, buf)
        assert m.state is RunState.RUNNING  # a running machine is paused for it, then resumed
    assert console.getvalue() == b"fib(10) = 55\n"

    for mode in (None, "same-host", "catch-up", RestoreMode.CATCH_UP):
        buf.seek(0)
        m2 = restore_machine(buf, acc, mode=mode, console=io.BytesIO())
        try:
            assert m2.state is RunState.PAUSED and m2.ended == result
            assert m2.device("isa-debugcon").output == bytearray(b"fib(10) = 55\n")  # type: ignore[attr-defined]
        finally:
            m2.close()
    buf.seek(0)
    with pytest.raises(ConfigError, match="restore mode 'sideways'"):
        restore_machine(buf, acc, mode="sideways")


def test_restore_mode_names() -> None:
    assert restore_mode(None) is RestoreMode.RESUME
    assert restore_mode("same-host") is RestoreMode.RESUME
    assert restore_mode("catch-up") is RestoreMode.CATCH_UP
    assert accel.snapshot.save_machine is save_machine
    assert accel.snapshot.restore_machine is restore_machine
