"""KVM's paravirtual CPUID leaf (0x40000001 EAX) as QEMU 7.2 gives it per CPU model.

QEMU 7.2 (target/i386/kvm/kvm-cpu.c, ``kvm_default_props``) turns on kvmclock (bits 0
and 3), kvm-nopiodelay (1), kvm-asyncpf (4), kvm-steal-time (5), kvm-pv-eoi (6) and
kvmclock-stable-bit (24) for a named model, intersected with what the host supports;
``host`` and ``max`` get every supported flag QEMU names (all but bit 10; everything
with ``migratable=off``). ``-kvmclock`` clears bits 0 and 3 only. Measured with
qemu-system-x86_64 7.2 on this host (supported 0x01007efb): qemu64 0x0100007b,
qemu64,-kvmclock 0x01000072, host 0x01007afb.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from accel_kvm import KvmAccelerator, RecordingSys, bindings
from accel_kvm.vcpu import NAMED_MODEL_PV_DEFAULT, NAMED_PV_BITS, PV_FLAGS, pv_features

from accel import CpuSpec, PortIoExit

from .guests import boot, run_to_halt

pytestmark = pytest.mark.kvm

# QEMU's own values on a host whose KVM supports every bit of the default set.
QEMU64 = 0x0100007B
QEMU64_NO_KVMCLOCK = 0x01000072


def _set_cpuid2_leaves(model: str) -> list[dict[int, tuple[int, ...]]]:
    """The entries of every KVM_SET_CPUID2 argument passed for ``model``'s vCPU."""
    seen: list[bytes] = []

    def watch(name: str, fd: int, arg: Any) -> None:
        if name == "KVM_SET_CPUID2":
            seen.append(bytes(arg))

    acc = KvmAccelerator(sys=RecordingSys(on_ioctl=watch))
    try:
        with acc.create_vm() as vm:
            vm.create_vcpu(cpu=CpuSpec.parse(model))
    finally:
        acc.close()
    out = []
    for raw in seen:
        words = memoryview(raw).cast("I")
        n = words[0]
        leaves: dict[int, tuple[int, ...]] = {}
        for i in range(n):
            base = bindings.CPUID2_HEADER_WORDS + i * bindings.CPUID_ENTRY2_WORDS
            entry = tuple(words[base : base + bindings.CPUID_ENTRY2_WORDS])
            leaves.setdefault(entry[0], entry)
        out.append(leaves)
    return out


def _supported_eax() -> int:
    with KvmAccelerator() as acc:
        for entry in acc.supported_cpuid():
            if entry[0] == bindings.KVM_CPUID_FEATURES:
                return entry[3]
    pytest.skip("KVM reports no leaf 0x40000001")


def _needs_full_default(supported: int) -> None:
    if supported & NAMED_MODEL_PV_DEFAULT != NAMED_MODEL_PV_DEFAULT:
        pytest.skip(f"this host's KVM lacks part of QEMU's default set ({supported:#x})")


def test_named_model_default_mask_is_qemus() -> None:
    assert NAMED_MODEL_PV_DEFAULT == QEMU64
    assert PV_FLAGS["kvmclock"] == (0, 3)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("qemu64", QEMU64),
        ("qemu64,-kvmclock", QEMU64_NO_KVMCLOCK),
        ("Haswell", QEMU64),
        ("qemu64,-kvmclock-stable-bit", 0x0000007B),
        ("qemu64,-kvm-pv-eoi,-kvm-nopiodelay", 0x01000039),
    ],
)
def test_set_cpuid2_gives_qemus_leaf_for_a_named_model(model: str, expected: int) -> None:
    _needs_full_default(_supported_eax())
    calls = _set_cpuid2_leaves(model)
    assert len(calls) == 1
    assert f"{calls[0][bindings.KVM_CPUID_FEATURES][3]:#010x}" == f"{expected:#010x}"


def test_named_bits_are_qemu_72s() -> None:
    # Bits 0-7, 9, 11-15 and 24: QEMU 7.2 has no name for bit 10 (asyncpf-vmexit).
    assert NAMED_PV_BITS == 0x0100FAFF
    assert "kvm-asyncpf-vmexit" not in PV_FLAGS


@pytest.mark.parametrize("model", ["host", "max"])
def test_host_and_max_get_every_named_supported_flag(model: str) -> None:
    """QEMU 7.2 here: -cpu host gives 0x01007afb (supported 0x01007efb less bit 10),
    host,-kvmclock 0x01007af2, host,migratable=off 0x01007efb."""
    supported = _supported_eax()
    (leaves,) = _set_cpuid2_leaves(model)
    assert leaves[bindings.KVM_CPUID_FEATURES][3] == supported & NAMED_PV_BITS
    (off,) = _set_cpuid2_leaves(model + ",-kvmclock")
    assert off[bindings.KVM_CPUID_FEATURES][3] == supported & NAMED_PV_BITS & ~0b1001
    (every,) = _set_cpuid2_leaves(model + ",migratable=off")
    assert every[bindings.KVM_CPUID_FEATURES][3] == supported


def test_host_values_measured_against_qemu() -> None:
    cpu = CpuSpec.parse
    assert pv_features(0x01007EFB, cpu("host")) == 0x01007AFB
    assert pv_features(0x01007EFB, cpu("max")) == 0x01007AFB
    assert pv_features(0x01007EFB, cpu("host,-kvmclock")) == 0x01007AF2
    assert pv_features(0x01007EFB, cpu("host,migratable=off")) == 0x01007EFB
    assert pv_features(0x01007EFB, cpu("qemu64,+kvm-pv-unhalt")) == 0x010000FB
    assert pv_features(0x01007EFB, cpu("qemu64,-kvmclock-stable-bit")) == 0x0000007B


def test_plus_flag_adds_a_supported_flag_outside_the_default_set() -> None:
    supported = _supported_eax()
    unhalt = 1 << bindings.KVM_FEATURE_PV_UNHALT
    (leaves,) = _set_cpuid2_leaves("qemu64,+kvm-pv-unhalt")
    eax = leaves[bindings.KVM_CPUID_FEATURES][3]
    assert eax == (supported & NAMED_MODEL_PV_DEFAULT) | (supported & unhalt)


def test_plus_flag_the_host_lacks_stays_off() -> None:
    cpu = CpuSpec.parse("qemu64,+kvm-pv-unhalt,+kvm-mmu")
    assert pv_features(0x01000001, cpu) == 0x01000001
    assert pv_features(0x01000081, cpu) == 0x01000081


def test_minus_kvm_hides_the_leaf_range() -> None:
    (leaves,) = _set_cpuid2_leaves("qemu64,-kvm")
    assert not [f for f in leaves if 0x40000000 <= f <= 0x400000FF]


# mov eax, 0x40000001; xor ecx, ecx; cpuid; out 0x10, eax; hlt
CPUID_PV = bytes.fromhex("66 b8 01 00 00 40 66 31 c9 0f a2 66 e7 10 f4")


@pytest.mark.parametrize(
    ("model", "expected"),
    [("qemu64", QEMU64), ("qemu64,-kvmclock", QEMU64_NO_KVMCLOCK), ("host", None)],
)
def test_guest_sees_the_leaf(model: str, expected: int | None) -> None:
    """A real-mode guest executes CPUID 0x40000001 and OUTs EAX to port 0x10."""
    supported = _supported_eax()
    if expected is not None:
        _needs_full_default(supported)
    else:
        expected = supported & NAMED_PV_BITS
    got: list[int] = []

    def out(ex: object) -> None:
        assert isinstance(ex, PortIoExit) and ex.port == 0x10 and ex.size == 4
        got.append(int.from_bytes(ex.data, "little"))

    with KvmAccelerator() as acc:
        vm, vcpu = boot(acc, CPUID_PV, cpu=CpuSpec.parse(model))
        try:
            run_to_halt(vcpu, out)
        finally:
            vm.close()
    assert [f"{v:#010x}" for v in got] == [f"{expected:#010x}"]


# The same CPUID as a 64 KiB -bios image (code at 0xF0000, the reset vector jumps to it):
# the four bytes of EAX to debugcon (0xE9), then isa-debug-exit.
_BIOS_CODE = bytes.fromhex(
    "66 b8 01 00 00 40"  # mov eax, 0x40000001
    "66 31 c9"  # xor ecx, ecx
    "0f a2"  # cpuid
    + "e6 e9 66 c1 e8 08"
    * 3  # out 0xe9, al; shr eax, 8 (three times)
    + "e6 e9"  # out 0xe9, al
    "b0 00 e6 f4"  # mov al, 0; out 0xf4, al
    "f4"  # hlt
)


def _bios_image() -> bytes:
    img = bytearray(0x10000)
    img[: len(_BIOS_CODE)] = _BIOS_CODE
    img[0xFFF0:0xFFF5] = bytes.fromhex("ea 00 00 00 f0")  # jmp 0xf000:0
    return bytes(img)


@pytest.mark.qemu
@pytest.mark.parametrize(
    "cpu",
    ["qemu64", "qemu64,-kvmclock", "Haswell", "host", "max", "host,-kvmclock",
     "host,migratable=off", "qemu64,+kvm-pv-unhalt", "qemu64,-kvmclock-stable-bit"],
)  # fmt: skip
def test_guest_sees_what_qemu_gives(cpu: str, tmp_path: Path) -> None:
    """The leaf a guest reads under accel equals the one it reads under QEMU 7.2 -accel kvm."""
    import accel
    from accel.runner import RunOptions, run_image

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    image = tmp_path / "cpuid.bin"
    image.write_bytes(_bios_image())
    out = tmp_path / "debugcon.bin"
    # On nested hosts QEMU 7.2 aborts for host/max setting MSR 0x10a (ARCH_CAPABILITIES),
    # which KVM refuses there; without that flag (CPUID leaf 7, not the leaf read here)
    # QEMU runs and its leaf 0x40000001 is the reference.
    theirs_cpu = cpu + ",-arch-capabilities" if cpu.split(",")[0] in ("host", "max") else cpu
    subprocess.run(
        [qemu, "-accel", "kvm", "-M", "pc", "-display", "none", "-nodefaults",
         "-bios", str(image), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
         "-debugcon", f"file:{out}", "-cpu", theirs_cpu],
        capture_output=True, timeout=60,
    )  # fmt: skip
    theirs = out.read_bytes() if out.exists() else b""
    got: list[bytes] = []
    acc = accel.open("kvm")
    try:
        run_image(acc, image.read_bytes(), RunOptions(machine="pc", cpu=cpu, timeout=30),
                  console=got.append)  # fmt: skip
    finally:
        acc.close()
    ours = b"".join(got)
    assert len(theirs) == 4, f"QEMU wrote {theirs!r}"
    if cpu == "qemu64" and _supported_eax() & QEMU64 == QEMU64:
        assert int.from_bytes(theirs, "little") == QEMU64  # the oracle says what we claim
    assert f"{int.from_bytes(ours, 'little'):#010x}" == f"{int.from_bytes(theirs, 'little'):#010x}"


@pytest.mark.parametrize(
    ("model", "edx"),
    [
        ("qemu64", 0),
        ("host", 0),
        ("qemu64,+kvm-hint-dedicated", 1),
        ("host,+kvm-hint-dedicated", 1),
    ],
)
def test_hint_leaf_is_qemus(model: str, edx: int) -> None:
    """QEMU 7.2 here: EDX 0 for host and qemu64, 1 with +kvm-hint-dedicated."""
    (leaves,) = _set_cpuid2_leaves(model)
    assert leaves[bindings.KVM_CPUID_FEATURES][6] == edx
