"""Exit mapping for exits a test guest cannot provoke reliably (entry failures, internal
errors, system events): a system-call layer fakes KVM_RUN by writing kvm_run itself."""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

import pytest
from accel_kvm import HostSys, KvmAccelerator, bindings, ioctls

from accel import InternalErrorExit, InterruptedExit, PortIoExit, ShutdownExit

pytestmark = pytest.mark.kvm


class FakeRun(HostSys):
    """Real KVM for everything but KVM_RUN, which fills kvm_run from ``script``."""

    def __init__(self) -> None:
        self.maps: dict[int, mmap.mmap] = {}
        self.script: list[dict[str, Any]] = []

    def mmap(self, fd: int, length: int) -> mmap.mmap:
        mm = super().mmap(fd, length)
        if fd != -1:
            self.maps[fd] = mm
        return mm

    def ioctl(self, fd: int, request: int, arg: Any = 0, /) -> Any:  # type: ignore[override]
        if request != ioctls.KVM_RUN:
            return super().ioctl(fd, request, arg)
        step = self.script.pop(0)
        if "errno" in step:
            raise OSError(step["errno"], "fake")
        run = bindings.kvm_run.from_buffer(self.maps[fd])
        try:
            run.exit_reason = step["reason"]
            for path, value in step.get("fields", {}).items():
                obj: Any = run.u
                *parents, last = path.split(".")
                for p in parents:
                    obj = getattr(obj, p)
                if isinstance(value, tuple):
                    arr = getattr(obj, last)
                    for i, v in enumerate(value):
                        arr[i] = v
                else:
                    setattr(obj, last, value)
        finally:
            del run
        return 0


@pytest.fixture
def fake() -> Any:
    sys = FakeRun()
    acc = KvmAccelerator(sys=sys)
    vm = acc.create_vm()
    cpu = vm.create_vcpu()
    yield sys, cpu
    acc.close()


def test_fail_entry(fake: Any) -> None:
    sys, cpu = fake
    sys.script = [
        {
            "reason": bindings.KVM_EXIT_FAIL_ENTRY,
            "fields": {
                "fail_entry.hardware_entry_failure_reason": 0x80000021,
                "fail_entry.cpu": 1,
            },
        }
    ]
    ex = cpu.run()
    assert isinstance(ex, InternalErrorExit)
    assert ex.kind == "fail-entry" and ex.code == 0x80000021 and ex.data == (1,)


def test_internal_error(fake: Any) -> None:
    sys, cpu = fake
    sys.script = [
        {
            "reason": bindings.KVM_EXIT_INTERNAL_ERROR,
            "fields": {"internal.suberror": 1, "internal.ndata": 2, "internal.data": (7, 9)},
        }
    ]
    ex = cpu.run()
    assert isinstance(ex, InternalErrorExit)
    assert ex.kind == "internal-error" and ex.code == 1 and ex.data == (7, 9)


def test_shutdown_and_system_events(fake: Any) -> None:
    sys, cpu = fake
    sys.script = [
        {"reason": bindings.KVM_EXIT_SHUTDOWN},
        {"reason": bindings.KVM_EXIT_SYSTEM_EVENT, "fields": {"system_event.type": 2}},
    ]
    assert isinstance(cpu.run(), ShutdownExit)
    ex = cpu.run()
    assert isinstance(ex, ShutdownExit) and "reset" in ex.reason


def test_unhandled_exit_is_an_internal_error_not_a_crash(fake: Any) -> None:
    sys, cpu = fake
    sys.script = [{"reason": bindings.KVM_EXIT_DEBUG}]
    ex = cpu.run()
    assert isinstance(ex, InternalErrorExit) and ex.code == bindings.KVM_EXIT_DEBUG


def test_eintr_and_irq_window_are_retried(fake: Any) -> None:
    import errno

    sys, cpu = fake
    sys.script = [
        {"errno": errno.EINTR},
        {"reason": bindings.KVM_EXIT_INTR},
        {"reason": bindings.KVM_EXIT_IRQ_WINDOW_OPEN},
        {
            "reason": bindings.KVM_EXIT_IO,
            "fields": {
                "io.direction": 1,
                "io.size": 1,
                "io.port": 0x99,
                "io.count": 1,
                "io.data_offset": 0x800,
            },
        },
    ]
    ex = cpu.run()
    assert isinstance(ex, PortIoExit) and ex.port == 0x99
    assert sys.script == []


def test_eintr_after_kick_is_interrupted(fake: Any) -> None:
    import errno

    sys, cpu = fake
    cpu.kick()
    assert sys.maps[cpu.fd][bindings.RUN_IMMEDIATE_EXIT] == 1
    sys.script = [{"errno": errno.EINTR}]
    assert isinstance(cpu.run(), InterruptedExit)
    assert sys.maps[cpu.fd][bindings.RUN_IMMEDIATE_EXIT] == 0  # cleared for the next run


def test_kvm_run_layout_matches_ctypes() -> None:
    assert bindings.RUN_EXIT_REASON == 8
    assert bindings.RUN_IO_DATA_OFFSET == 40
    assert bindings.RUN_MMIO_LEN == 48
    assert ctypes.sizeof(bindings.kvm_run_exit_union) == 256
