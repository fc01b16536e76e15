"""Every failure of a public TCG call is an AccelError (issue #15): the host refusing
guest RAM, unicorn failing to make an engine."""

from __future__ import annotations

import errno
import mmap as mmap_module

import accel_tcg.accelerator as tcg_mod
import pytest
from accel_tcg.accelerator import TcgAccelerator

from accel.errors import AccelError, BackendCallError


def test_huge_add_memory_is_a_backend_call_error() -> None:
    with TcgAccelerator() as acc, acc.create_vm() as vm:
        with pytest.raises(BackendCallError) as info:
            vm.add_memory(0, 1 << 40)
        assert isinstance(info.value, AccelError)
        assert info.value.call == "mmap" and info.value.errno == errno.ENOMEM
        assert vm.memory_regions == ()  # nothing half-applied
        vm.add_memory(0, 0x1000)  # and the VM still works


def test_mmap_failure_keeps_its_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> mmap_module.mmap:
        raise OSError(errno.EPERM, "no")

    with TcgAccelerator() as acc, acc.create_vm() as vm:
        monkeypatch.setattr(tcg_mod.mmap, "mmap", refuse)
        with pytest.raises(BackendCallError) as info:
            vm.add_memory(0, 0x1000)
        assert info.value.errno == errno.EPERM and "0x1000 bytes" in str(info.value)


def test_engine_failure_is_a_backend_call_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from accel_tcg import _state

    def broken(tb_size_mib: int | None = None) -> object:
        raise _state.U.UcError(_state.U.UC_ERR_NOMEM)

    with TcgAccelerator() as acc, acc.create_vm() as vm:
        monkeypatch.setattr(_state, "new_engine", broken)
        with pytest.raises(BackendCallError) as info:
            vm.create_vcpu(0)
        assert info.value.call == "uc_open" and "vcpu 0" in str(info.value)
        assert vm.vcpus == ()


@pytest.mark.kvm
def test_kvm_huge_add_memory_is_a_backend_call_error() -> None:
    from accel_kvm import KvmAccelerator

    with KvmAccelerator() as acc, acc.create_vm() as vm, pytest.raises(BackendCallError):
        vm.add_memory(0, 1 << 40)
