"""Our clock-device set against QEMU 7.2's, for every machine type x {kvm, tcg} x CPU.

Differences written down (not hidden):

* tcg + ``host,-kvmclock``: QEMU refuses ("CPU model 'host' requires KVM or HVF") and so
  do we; the tcg column compares ``qemu64,-kvmclock`` instead.
* kvm + ``host,...`` on nested hosts: QEMU 7.2 aborts setting MSR 0x10a
  (IA32_ARCH_CAPABILITIES) for the ``host`` model; the test then asks QEMU for
  ``host,-kvmclock,-arch-capabilities`` (the flag does not change the clock devices).
"""

from __future__ import annotations

import pytest

import accel
from accel.errors import ConfigError
from accel.machine import Machine

from .expected import SET, all_machine_names
from .qemu import qemu_devices, qemu_path

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(qemu_path() is None, reason="qemu-system-x86_64 is not installed"),
]


def ours(acc: accel.Accelerator, machine: str, cpu: str | None) -> set[str]:
    return Machine.describe(acc, machine, cpu).device_names() & set(SET)


@pytest.fixture(scope="module")
def kvm() -> accel.Accelerator:
    return accel.open("kvm")


@pytest.fixture(scope="module")
def tcg() -> accel.Accelerator:
    return accel.open("tcg")


@pytest.mark.kvm
@pytest.mark.parametrize("machine", all_machine_names())
@pytest.mark.parametrize("cpu", [None, "host,-kvmclock"])
def test_kvm_matches_qemu(kvm: accel.Accelerator, machine: str, cpu: str | None) -> None:
    theirs, err = qemu_devices("kvm", machine, cpu)
    if theirs is None and cpu and "MSR 0x10a" in err:
        theirs, err = qemu_devices("kvm", machine, cpu + ",-arch-capabilities")
    assert theirs is not None, err
    assert ours(kvm, machine, cpu) == theirs & set(SET)


@pytest.mark.parametrize("machine", all_machine_names())
@pytest.mark.parametrize("cpu", [None, "qemu64,-kvmclock"])
def test_tcg_matches_qemu(tcg: accel.Accelerator, machine: str, cpu: str | None) -> None:
    theirs, err = qemu_devices("tcg", machine, cpu)
    assert theirs is not None, err
    assert ours(tcg, machine, cpu) == theirs & set(SET)


def test_tcg_host_refused_by_both(tcg: accel.Accelerator) -> None:
    theirs, err = qemu_devices("tcg", "pc", "host,-kvmclock")
    assert theirs is None and "requires KVM" in err
    with pytest.raises(ConfigError):
        Machine.describe(tcg, "pc", "host,-kvmclock")
