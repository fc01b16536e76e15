"""The Xen stub against fake host roots: no Xen, a domU, a dom0 (and broken dom0s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import accel_xen
import pytest
from accel_xen import XenAccelerator

import accel
from accel import Capability, Support
from accel.errors import AcceleratorUnavailableError, UnsupportedError


def fake_host(
    root: Path,
    *,
    hypervisor: str | None = None,
    capabilities: str | None = None,
    privcmd: bool = False,
) -> Path:
    if hypervisor is not None:
        (root / "sys/hypervisor").mkdir(parents=True)
        (root / "sys/hypervisor/type").write_text(hypervisor + "\n")
    if capabilities is not None:
        (root / "proc/xen").mkdir(parents=True)
        (root / "proc/xen/capabilities").write_text(capabilities)
    if privcmd:
        (root / "dev/xen").mkdir(parents=True)
        (root / "dev/xen/privcmd").write_text("")
    return root


def test_bare_metal_host_is_unavailable(tmp_path: Path) -> None:
    acc = XenAccelerator(root=fake_host(tmp_path))
    avail = acc.probe()
    assert not avail
    assert "not running under Xen" in avail.reason
    assert "/sys/hypervisor/type does not exist" in avail.reason
    assert avail.hint and "dom0" in avail.hint
    with pytest.raises(AcceleratorUnavailableError, match="not running under Xen"):
        acc.create_vm()
    with pytest.raises(AcceleratorUnavailableError):
        acc.capabilities()


def test_other_hypervisor_is_named(tmp_path: Path) -> None:
    avail = XenAccelerator(root=fake_host(tmp_path, hypervisor="kvm")).probe()
    assert not avail
    assert "'kvm'" in avail.reason
    assert avail.details["hypervisor"] == "kvm"


def test_domu_is_unavailable_with_that_reason(tmp_path: Path) -> None:
    root = fake_host(tmp_path, hypervisor="xen", capabilities="", privcmd=True)
    avail = XenAccelerator(root=root).probe()
    assert not avail
    assert "Xen guest (domU)" in avail.reason
    assert "dom0" in avail.reason


def test_xen_without_xenfs_cannot_tell(tmp_path: Path) -> None:
    avail = XenAccelerator(root=fake_host(tmp_path, hypervisor="xen")).probe()
    assert not avail
    assert "/proc/xen/capabilities is missing" in avail.reason
    assert avail.hint and "xenfs" in avail.hint


def test_dom0_without_privcmd(tmp_path: Path) -> None:
    root = fake_host(tmp_path, hypervisor="xen", capabilities="control_d\n")
    avail = XenAccelerator(root=root).probe()
    assert not avail
    assert "/dev/xen/privcmd is missing" in avail.reason


def test_dom0_is_present_but_creates_no_vm(tmp_path: Path) -> None:
    root = fake_host(tmp_path, hypervisor="xen", capabilities="control_d\n", privcmd=True)
    with XenAccelerator(root=root) as acc:
        avail = acc.probe()
        assert avail
        assert avail.details["dom0"] is True
        assert "libxenctrl" in avail.reason
        with pytest.raises(UnsupportedError, match="does not drive libxenctrl") as info:
            acc.create_vm()
        assert info.value.accelerator == "xen"
        assert info.value.feature == "create-vm"


def test_dom0_answers_every_capability_with_a_source(tmp_path: Path) -> None:
    root = fake_host(tmp_path, hypervisor="xen", capabilities="control_d\n", privcmd=True)
    caps = XenAccelerator(root=root).capabilities()
    assert len(caps) == len(Capability)
    for cap, answer in caps.items():
        assert answer.source, cap
        if answer.support is Support.UNKNOWN:
            assert "libxenctrl" in answer.source
    assert caps.support(Capability.PIT) is Support.YES  # emulated in the hypervisor
    assert caps.support(Capability.USER_MEMORY) is Support.NO
    assert caps.support(Capability.ADJUST_CLOCK) is Support.UNKNOWN
    # answers are cached: the same object every time
    acc = XenAccelerator(root=root)
    assert acc.capabilities() is acc.capabilities()


def test_closed_handle(tmp_path: Path) -> None:
    acc = XenAccelerator(root=tmp_path)
    acc.close()
    acc.close()
    with pytest.raises(accel.errors.HandleClosedError):
        acc.create_vm()


def test_registered_through_entry_point() -> None:
    reg = accel.Registry()
    info = reg.info("xen")
    assert info.priority == 90
    assert info.hardware is True
    assert "libxenctrl" in info.unsupported_features["vm"]
    assert isinstance(info.factory(), XenAccelerator)


def test_unsupported_names_every_capability_not_answered_yes() -> None:
    answers = accel_xen.xen_answers()
    for cap, answer in answers.items():
        if answer.support is Support.YES:
            assert cap.value not in accel_xen.UNSUPPORTED
        else:
            assert accel_xen.UNSUPPORTED[cap.value] == answer.source


def test_registration_does_not_import_the_accelerator_module() -> None:
    code = (
        "import sys, accel_xen\n"
        "accel_xen.accel_accelerators()\n"
        "lazy = ('accel_xen.accelerator', 'accel.accelerator', 'accel.capabilities')\n"
        "print([m for m in lazy if m in sys.modules])\n"
        "accel_xen.XenAccelerator\n"
        "print('accel_xen.accelerator' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "True"]


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


def test_clock_devices_follow_qemu_for_xen() -> None:
    choices = accel_xen.accel_clock_devices(_Named("xen"), None)  # type: ignore[arg-type]
    assert choices is not None
    by_name = {c.device: c for c in choices}
    assert by_name["isa-pit"].present is False
    assert by_name["isa-pit"].reason == "Xen emulates the PIT in the hypervisor"
    assert by_name["kvmclock"].present is False
    assert "Xen hypervisor" in by_name["kvmclock"].reason


@pytest.mark.parametrize("name", ["kvm", "tcg", "mine"])
def test_clock_devices_only_for_xen(name: str) -> None:
    assert accel_xen.accel_clock_devices(_Named(name), None) is None  # type: ignore[arg-type]


def test_this_host_probe_never_raises() -> None:
    avail = XenAccelerator().probe()
    assert isinstance(avail.reason, str) and avail.reason


def test_conformance_suite_on_a_fake_dom0(tmp_path: Path) -> None:
    """Every check passes or skips with a declared reason; nothing fails."""
    from accel.testing.runner import run_suite

    root = fake_host(tmp_path, hypervisor="xen", capabilities="control_d\n", privcmd=True)

    class FakeDom0:
        @accel.hookimpl
        def accel_accelerators(self) -> list[accel.AcceleratorInfo]:
            return [
                accel.AcceleratorInfo(
                    name="xen",
                    summary="xen stub on a fake dom0",
                    factory=lambda: XenAccelerator(root=root),
                    priority=90,
                    unsupported=accel_xen.UNSUPPORTED,
                    hardware=True,
                )
            ]

    reg = accel.Registry(entry_points=False)
    reg.register(FakeDom0(), "fake-dom0")
    result = run_suite(["xen"], registry=reg)
    assert result.ok, result.output
