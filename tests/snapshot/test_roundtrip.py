"""Save/restore through the accelerator-neutral core, on an in-memory VM."""

from __future__ import annotations

import io
import os
import time

import pytest

from accel import ClockData, ClockFlags, snapshot
from accel.errors import BackendCallError, SnapshotMismatchError
from accel.snapshot import RestoreMode, restored_clock
from accel.snapshot.format import RAM_CHUNK
from accel.snapshot.state import ClockState
from tests.fakes import FakeAccelerator, FakeVM, state_of

from .conftest import make_vm


class Pipe(io.RawIOBase):
    """A read-only, non-seekable stream (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        chunk = self._inner.read(min(len(b), 4093))  # odd sizes: short reads
        b[: len(chunk)] = chunk
        return len(chunk)


def test_round_trip_restores_ram_registers_and_clock(acc: FakeAccelerator, vm: FakeVM) -> None:
    vm.pause()
    before = state_of(vm)
    buf = io.BytesIO()
    result = snapshot.save(vm, buf, machine_type="test-1.0")
    assert result.bytes_written == len(buf.getvalue())
    buf.seek(0)
    vm2 = snapshot.restore(buf, acc)
    assert vm2 is not vm and vm2.paused
    assert state_of(vm2) == before
    vm2.resume()
    assert vm2.get_clock().clock >= before[3]  # type: ignore[operator]


def test_restore_from_a_pipe_spools(
    acc: FakeAccelerator, vm: FakeVM, snapshot_bytes: bytes
) -> None:
    before = state_of(vm)
    vm2 = snapshot.restore(io.BufferedReader(Pipe(snapshot_bytes)), acc)
    assert state_of(vm2) == before


def test_save_of_running_vm_pauses_and_resumes(vm: FakeVM) -> None:
    assert not vm.paused
    snapshot.save(vm, io.BytesIO())
    assert not vm.paused


def test_repeated_saves_of_paused_vm_carry_the_same_clock(vm: FakeVM) -> None:
    vm.pause()
    a, b = io.BytesIO(), io.BytesIO()
    ra = snapshot.save(vm, a)
    time.sleep(0.002)
    rb = snapshot.save(vm, b)
    assert ra.clock.clock == rb.clock.clock
    a.seek(0)
    b.seek(0)
    assert snapshot.read(a).clock.clock == snapshot.read(b).clock.clock == ra.clock.clock


def test_clock_read_failure_aborts_save_and_writes_nothing(vm: FakeVM) -> None:
    vm.fail_clock = True
    out = io.BytesIO()
    with pytest.raises(BackendCallError):
        snapshot.save(vm, out)
    assert out.getvalue() == b""


def test_zero_ram_is_not_stored(acc: FakeAccelerator) -> None:
    vm = acc.create_vm()
    vm.add_memory(0, 8 * RAM_CHUNK)
    vm.create_vcpu()
    out = io.BytesIO()
    snapshot.save(vm, out)
    assert len(out.getvalue()) < 4096
    vm.write_memory(3 * RAM_CHUNK + 7, b"x")
    out2 = io.BytesIO()
    snapshot.save(vm, out2)
    assert 4096 < len(out2.getvalue()) < 2 * 4096  # one page of the chunk is stored
    out2.seek(0)
    vm2 = snapshot.restore(out2, acc)
    assert vm2.read_memory(3 * RAM_CHUNK + 6, 3) == b"\0x\0"


def test_scattered_pages_round_trip_and_load_clears_the_rest(acc: FakeAccelerator) -> None:
    vm = acc.create_vm()
    vm.add_memory(0, 2 * RAM_CHUNK + 3 * 4096)
    vm.create_vcpu()
    size = 2 * RAM_CHUNK + 3 * 4096
    for page in range(0, size // 4096, 7):
        vm.write_memory(page * 4096 + 5, page.to_bytes(4, "little") * 3)
    vm.write_memory(size - 1, b"\xee")  # the last page of the last (partial) chunk
    out = io.BytesIO()
    snapshot.save(vm, out)
    assert len(out.getvalue()) < size // 5
    info = snapshot.inspect(io.BytesIO(out.getvalue()))
    assert info.ram[0].bytes == size and info.ram[0].stored_bytes < size // 5
    want = state_of(vm)
    out.seek(0)
    assert state_of(snapshot.restore(out, acc))[:2] == want[:2]
    dirty = acc.create_vm()
    dirty.add_memory(0, size)
    dirty.create_vcpu()
    dirty.memory_regions[0].view[:] = b"\xa5" * size
    out.seek(0)
    snapshot.load(out, dirty)
    assert state_of(dirty)[:2] == want[:2]


def test_load_into_existing_vm(acc: FakeAccelerator, vm: FakeVM, snapshot_bytes: bytes) -> None:
    want = state_of(vm)
    target = make_vm(acc, vcpus=2)
    target.write_memory(0x10, os.urandom(64))
    target.write_memory(0x100000, b"dirty")
    target.vcpus[1].set_regs(target.vcpus[1].get_regs().__class__(rax=99))
    snapshot.load(io.BytesIO(snapshot_bytes), target)
    assert target.paused
    assert state_of(target) == want


def test_load_refuses_other_layout_and_changes_nothing(
    acc: FakeAccelerator, snapshot_bytes: bytes
) -> None:
    target = make_vm(acc, ram=128 * 1024, vcpus=2)
    before = state_of(target)
    with pytest.raises(SnapshotMismatchError, match="memory layout"):
        snapshot.load(io.BytesIO(snapshot_bytes), target)
    assert state_of(target) == before
    target1 = make_vm(acc, vcpus=1)
    with pytest.raises(SnapshotMismatchError, match="vCPUs"):
        snapshot.load(io.BytesIO(snapshot_bytes), target1)


def test_machine_type_mismatch(snapshot_bytes: bytes) -> None:
    with pytest.raises(SnapshotMismatchError) as info:
        snapshot.read(io.BytesIO(snapshot_bytes), machine_type="other-2.0")
    assert info.value.expected == "other-2.0" and info.value.found == "test-1.0"


def test_snapshot_at_nonzero_stream_offset(acc: FakeAccelerator, vm: FakeVM) -> None:
    before = state_of(vm)
    buf = io.BytesIO()
    buf.write(b"prefix" * 7)
    snapshot.save(vm, buf)
    buf.seek(42)
    vm2 = snapshot.restore(buf, acc)
    assert state_of(vm2)[:2] == before[:2]


# --------------------------------------------------------------------------- clock modes


def _state(**kw: int) -> ClockState:
    return ClockState(**kw)  # type: ignore[arg-type]


def test_resume_mode_keeps_saved_value() -> None:
    st = ClockState(clock=5_000, flags=int(ClockFlags.REALTIME), realtime=1, reliable=True)
    assert restored_clock(st, RestoreMode.RESUME, target_flags=ClockFlags.REALTIME) == ClockData(
        5_000, ClockFlags.TSC_STABLE
    )


def test_catch_up_uses_realtime_flag_where_target_has_it() -> None:
    st = ClockState(clock=5_000, flags=int(ClockFlags.REALTIME), realtime=100, saved_at=200)
    got = restored_clock(st, RestoreMode.CATCH_UP, target_flags=ClockFlags.REALTIME)
    assert got == ClockData(5_000, ClockFlags.REALTIME, realtime=100)


def test_catch_up_computed_without_target_realtime() -> None:
    st = ClockState(clock=5_000, flags=0, realtime=0, saved_at=1_000)
    got = restored_clock(st, RestoreMode.CATCH_UP, now_ns=4_000)
    assert got == ClockData(8_000)


def test_catch_up_restores_wall_time_on_fake(acc: FakeAccelerator, vm: FakeVM) -> None:
    vm.pause()
    saved = vm.get_clock()
    buf = io.BytesIO()
    snapshot.save(vm, buf)
    time.sleep(0.05)
    buf.seek(0)
    vm2 = snapshot.restore(buf, acc, mode=RestoreMode.CATCH_UP)
    t0 = time.time_ns()
    vm2.resume()
    now = vm2.get_clock()
    assert abs((now.clock - saved.clock) - (t0 - saved.realtime)) < 5_000_000


def test_missing_reliable_subsection_loads_as_unreliable(vm: FakeVM) -> None:
    vm.pause()
    a, b = io.BytesIO(), io.BytesIO()
    snapshot.save(vm, a)
    snapshot.save(vm, b, send_clock_reliable=False)
    assert len(b.getvalue()) < len(a.getvalue())
    a.seek(0)
    b.seek(0)
    assert snapshot.read(a).clock.reliable is True
    assert snapshot.read(b).clock.reliable is False


def test_backend_refusing_registers_leaves_target_as_it_was(
    acc: FakeAccelerator, snapshot_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accel.errors import VcpuStateError

    target = make_vm(acc, vcpus=2)
    target.vcpus[0].set_regs(target.vcpus[0].get_regs().__class__(rax=0xAAAA))
    before = state_of(target)
    cpu1 = target.vcpus[1]

    def refuse(sregs: object) -> None:
        raise VcpuStateError("backend says no")

    monkeypatch.setattr(cpu1, "set_sregs", refuse)
    with pytest.raises(VcpuStateError):
        snapshot.load(io.BytesIO(snapshot_bytes), target)
    assert state_of(target) == before and not target.paused


def test_atomic_file(tmp_path: object, vm: FakeVM) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "vm.snap"
    with snapshot.atomic_file(path) as f:
        snapshot.save(vm, f)
    good = path.read_bytes()
    vm.fail_clock = True
    with pytest.raises(BackendCallError), snapshot.atomic_file(path) as f:
        snapshot.save(vm, f)
    assert path.read_bytes() == good
    assert [p.name for p in Path(str(tmp_path)).iterdir()] == ["vm.snap"]


def test_stream_with_read_only(acc: FakeAccelerator, vm: FakeVM, snapshot_bytes: bytes) -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._inner.read(min(n, 1000) if n >= 0 else n)

    before = state_of(vm)
    vm2 = snapshot.restore(ReadOnly(snapshot_bytes), acc)  # type: ignore[arg-type]
    assert state_of(vm2) == before


def test_write_failure_is_a_snapshot_error(vm: FakeVM) -> None:
    import errno

    from accel.errors import SnapshotError

    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            if self.tell() > 5000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)  # type: ignore[arg-type]

    with pytest.raises(SnapshotError, match="No space left") as info:
        snapshot.save(vm, Full())
    assert info.value.errno == errno.ENOSPC  # type: ignore[attr-defined]
    assert not vm.paused
