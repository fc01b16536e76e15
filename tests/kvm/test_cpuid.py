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

import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from accel_kvm import KvmAccelerator, RecordingSys, bindings
from accel_kvm.vcpu import (
    NAMED_MODEL_PV_DEFAULT,
    NAMED_PV_BITS,
    PV_FLAGS,
    mce_cap,
    pv_features,
)

from accel import CpuSpec, PortIoExit, VmOptions
from accel.machine.cpu import CPU_DEFINITIONS, FEATURE_BITS, ModelCpuidHost, model_cpuid

from .guests import boot, run_to_halt

pytestmark = pytest.mark.kvm

# QEMU's own values on a host whose KVM supports every bit of the default set.
QEMU64 = 0x0100007B
QEMU64_NO_KVMCLOCK = 0x01000072


def _set_cpuid2_leaves(model: str) -> list[dict[int, tuple[int, ...]]]:
    """The entries of every KVM_SET_CPUID2 argument passed for ``model``'s vCPU, by leaf
    (the first entry of each leaf: index 0)."""
    out = []
    for entries in _set_cpuid2_entries(model):
        leaves: dict[int, tuple[int, ...]] = {}
        for entry in entries:
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


# --------------------------------------------------------------------------- named models
# QEMU 7.2 gives a named model (qemu64, kvm64, Haswell, ...) its own CPUID (vendor of the
# host under KVM, family/model/stepping, the model's feature words filtered by what KVM
# supports, its levels, model-id, caches), not the host's supported set. Two oracles:
# what a guest reads (tests/machine/kernels/cpuid.S dumps the leaves to debugcon under
# both), and the KVM_SET_CPUID2 argument itself (QEMU's, read with strace).

KERNELS = Path(__file__).resolve().parents[1] / "machine" / "kernels"
DUMP_SOURCE = KERNELS / "cpuid.S"
DUMP_IMAGE = KERNELS / "cpuid.bin"

MODELS = [
    "qemu64", "kvm64", "qemu32", "kvm32", "486", "pentium", "pentium2", "pentium3",
    "core2duo", "Nehalem", "SandyBridge", "Haswell", "Skylake-Client", "EPYC",
    "qemu64,-kvmclock,+avx,-x2apic", "Haswell,-rtm,+sse4a", "qemu32,+lm", "kvm64,+svm",
]  # fmt: skip


def _dump_leaves() -> list[tuple[int, int]]:
    """The (leaf, subleaf) pairs cpuid.S dumps, in order (its ``leaves`` table)."""
    text = DUMP_SOURCE.read_text()
    table = text[text.index("leaves:") :]
    pairs = [
        (int(a, 0), int(b, 0))
        for a, b in re.findall(r"\.long\s+(0x[0-9a-fA-F]+|\d+),\s*(0x[0-9a-fA-F]+|\d+)", table)
    ]
    return pairs[: pairs.index((0xFFFFFFFF, 0))]


def _decode(raw: bytes) -> dict[tuple[int, int], tuple[int, ...]]:
    leaves = _dump_leaves()
    assert len(raw) == 16 * len(leaves), f"{len(raw)} bytes for {len(leaves)} leaves"
    return {k: struct.unpack_from("<4I", raw, 16 * i) for i, k in enumerate(leaves)}


def _qemu() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    return qemu


def _qemu_cmd(qemu: str, cpu: str, debugcon: str) -> list[str]:
    return [qemu, "-accel", "kvm", "-M", "pc", "-display", "none", "-nodefaults",
            "-bios", str(DUMP_IMAGE), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-debugcon", debugcon, "-cpu", cpu]  # fmt: skip


#: A VM as QEMU 7.2's -accel kvm makes it: with the in-kernel irqchip.
QEMU_VM = VmOptions(irqchip=True)


def _ours(cpu: str) -> bytes:
    import accel
    from accel.runner import RunOptions, run_image

    got: list[bytes] = []
    acc = accel.open("kvm")
    try:
        # the in-kernel irqchip, as QEMU's -accel kvm (without it x2APIC and TSC-deadline
        # are hidden, as QEMU does with kernel-irqchip=off)
        run_image(acc, DUMP_IMAGE.read_bytes(),
                  RunOptions(machine="pc,kernel-irqchip=on", cpu=cpu, timeout=30),
                  console=got.append)  # fmt: skip
    finally:
        acc.close()
    return b"".join(got)


def _show(regs: tuple[int, ...] | None) -> str:
    return "missing" if regs is None else " ".join(f"{r:08x}" for r in regs)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc and ld to rebuild")
def test_cpuid_dump_builds_from_its_source(tmp_path: Path) -> None:
    """The committed cpuid.bin is what cpuid.S builds to (the build line in it)."""
    obj, out = tmp_path / "cpuid.o", tmp_path / "cpuid.bin"
    subprocess.run(["gcc", "-c", "-o", str(obj), str(DUMP_SOURCE)], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-Ttext=0", "--oformat", "binary", "-e",
                    "_start", "-o", str(out), str(obj)], check=True)  # fmt: skip
    assert out.read_bytes() == DUMP_IMAGE.read_bytes()
    assert len(_dump_leaves()) > 30


#: 486 has no local APIC: QEMU creates none (IA32_APIC_BASE 0), and KVM shows CPUID[1].EDX's
#: APIC bit only while the APIC is enabled; accel's machines always give vCPUs an enabled
#: local APIC, so the guest reads bit 9 set there (the KVM_SET_CPUID2 entries are equal).
GUEST_MODELS = [m for m in MODELS if m != "486"]


@pytest.mark.qemu
@pytest.mark.parametrize("cpu", GUEST_MODELS)
def test_guest_reads_qemus_cpuid_leaf_by_leaf(cpu: str, tmp_path: Path) -> None:
    """The dump a guest writes under accel equals the one it writes under QEMU 7.2 -accel
    kvm with the same -cpu, leaf by leaf (0, 1, 2, 4, 5, 6, 7, 0xA, 0xB, 0xD, the KVM
    leaves, 0x80000000-0x80000008, 0x8000000A, 0x8000001D/E)."""
    out = tmp_path / "debugcon.bin"
    done = subprocess.run(_qemu_cmd(_qemu(), cpu, f"file:{out}"), capture_output=True,
                          timeout=60)  # fmt: skip
    assert out.exists(), done.stderr.decode(errors="replace")
    theirs, ours = _decode(out.read_bytes()), _decode(_ours(cpu))
    wrong = [
        f"{leaf:#x}.{sub}: QEMU {_show(theirs[leaf, sub])} accel {_show(ours[leaf, sub])}"
        for leaf, sub in theirs
        if theirs[leaf, sub] != ours[leaf, sub]
    ]
    assert not wrong, "\n".join(wrong)
    if cpu == "qemu64":  # the oracle says what the model is: AMD family 15 model 107
        assert theirs[1, 0][0] == 0x60FB1 and theirs[0x80000000, 0][0] == 0x8000000A


_ENTRY = re.compile(
    r"\{function=(\w+), index=(\w+), flags=[^,]*, eax=(\w+), ebx=(\w+), ecx=(\w+), edx=(\w+)\}"
)


def _nonzero(entries: list[tuple[int, ...]]) -> dict[tuple[int, int], tuple[int, ...]]:
    return {(e[0], e[1]): tuple(e[-4:]) for e in entries if any(e[-4:])}


@pytest.mark.qemu
@pytest.mark.parametrize("cpu", MODELS)
def test_set_cpuid2_entries_are_qemus(cpu: str, tmp_path: Path) -> None:
    """The KVM_SET_CPUID2 argument accel passes equals QEMU 7.2's (read with strace) entry
    by entry; an all-zero entry equals a missing one (KVM reads a missing leaf as zeros),
    which is how QEMU leaves most of them out."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (it shows QEMU's KVM_SET_CPUID2 argument)")
    trace = tmp_path / "trace.txt"
    subprocess.run([strace, "-f", "-v", "-s", "100000", "-e", "trace=ioctl", "-o", str(trace),
                    *_qemu_cmd(_qemu(), cpu, "null")], capture_output=True, timeout=60)  # fmt: skip
    lines = [line for line in trace.read_text().splitlines() if "KVM_SET_CPUID2" in line]
    assert len(lines) == 1, "QEMU made one vCPU"
    theirs = _nonzero([tuple(int(v, 0) for v in m.groups()) for m in _ENTRY.finditer(lines[0])])
    (ours_leaves,) = _set_cpuid2_entries(cpu)
    ours = _nonzero(ours_leaves)
    wrong = [
        f"{k[0]:#x}.{k[1]}: QEMU {_show(theirs.get(k))} accel {_show(ours.get(k))}"
        for k in sorted({*theirs, *ours})
        if theirs.get(k) != ours.get(k)
    ]
    assert not wrong, "\n".join(wrong)
    assert (0, 0) in theirs and (1, 0) in theirs


def _set_cpuid2_entries(model: str) -> list[list[tuple[int, ...]]]:
    seen: list[bytes] = []

    def watch(name: str, fd: int, arg: Any) -> None:
        if name == "KVM_SET_CPUID2":
            seen.append(bytes(arg))

    acc = KvmAccelerator(sys=RecordingSys(on_ioctl=watch))
    try:
        with acc.create_vm(QEMU_VM) as vm:  # QEMU's: the in-kernel irqchip
            vm.create_vcpu(cpu=CpuSpec.parse(model))
    finally:
        acc.close()
    out = []
    for raw in seen:
        words = memoryview(raw).cast("I")
        step = bindings.CPUID_ENTRY2_WORDS
        out.append([
            tuple(words[bindings.CPUID2_HEADER_WORDS + i * step:][:7]) for i in range(words[0])
        ])  # fmt: skip
    return out


def _host(**kw: Any) -> ModelCpuidHost:
    """A host that supports every feature bit (so the model's own words show)."""
    words = {word for word, _bit in FEATURE_BITS.values()}
    return ModelCpuidHost({w: 0xFFFFFFFF for w in words}, **kw)


def _leaves(model: str, host: ModelCpuidHost, apic_id: int = 0) -> dict[tuple[int, int], Any]:
    cpu = CpuSpec.parse(model)
    entries = model_cpuid(CPU_DEFINITIONS[cpu.model], cpu, host, apic_id=apic_id)
    return {(e[0], e[1]): e[3:] for e in entries}


def test_model_words_are_the_definition_filtered_by_the_host() -> None:
    every = _leaves("qemu64", _host())
    # PPRO + mtrr mca pse36 clflush; pni cx16 hypervisor; AMD: the aliases + syscall nx lm
    assert every[1, 0][3] == 0x078BFBFD and every[1, 0][2] == 0x80002001
    assert every[0x80000001, 0][3] == 0x2193FBFD and every[0x80000001, 0][2] == 0x5
    assert every[0, 0] == (0xD, *struct.unpack("<3I", b"AuthenticAMD"[0:4] + b"cAMD" + b"enti"))
    assert every[0x8000000A, 0][3] == 0  # svm on, but the model names no SVM feature
    host = _host()
    lacking = ModelCpuidHost({**host.supported, (1, 0, "ecx"): 0x80000000})
    assert _leaves("qemu64", lacking)[1, 0][2] == 0x80000000  # pni, cx16 dropped


def test_accelerator_defaults_then_user_flags() -> None:
    host = _host(defaults={"x2apic": True, "svm": False})
    leaves = _leaves("qemu64", host)
    assert leaves[1, 0][2] & 1 << 21 and not leaves[0x80000001, 0][2] & 1 << 2
    assert (0x8000000A, 0) not in leaves
    assert not _leaves("qemu64,-x2apic", host)[1, 0][2] & 1 << 21
    assert _leaves("qemu64,+svm", host)[0x80000001, 0][2] & 1 << 2
    assert _leaves("qemu64,sse4_1=on", host)[1, 0][2] & 1 << 19  # canonical name


def test_levels_rise_to_cover_the_features_in_use() -> None:
    assert _leaves("qemu32", _host())[0, 0][0] == 4
    raised = _leaves("qemu32,+avx2", _host())
    assert raised[0, 0][0] == 7 and raised[7, 0][1] == 1 << 5
    assert _leaves("pentium,+lm", _host())[0x80000000, 0][0] == 0x80000001


def test_version_model_id_and_address_widths() -> None:
    assert CPU_DEFINITIONS["qemu64"].version == 0x60FB1
    assert CPU_DEFINITIONS["EPYC"].version == 0x800F12
    assert CPU_DEFINITIONS["Haswell"].version == 0x306C4
    hw = _leaves("Haswell", _host())
    text = b"".join(struct.pack("<4I", *hw[leaf, 0]) for leaf in (0x80000002, 0x80000003))
    assert text.rstrip(b"\0") == b"Intel Core Processor (Haswell)"
    assert _leaves("qemu64", _host())[0x80000008, 0][0] == 0x3028  # 40 physical, 48 virtual
    assert _leaves("qemu64,+la57", _host())[0x80000008, 0][0] == 0x3928
    assert _leaves("kvm32", _host())[0x80000008, 0][0] == 36  # 32-bit, PSE36
    assert _leaves("kvm32,-pse36", _host())[0x80000008, 0][0] == 32


def test_apic_id_and_topology_leaves() -> None:
    leaves = _leaves("qemu64", _host(), apic_id=3)
    assert leaves[1, 0][1] == 3 << 24 | 0x800
    assert leaves[0xB, 0] == (0, 1, 0x100, 3) and leaves[0xB, 1] == (0, 1, 0x201, 3)


def test_intel_vendor_gets_the_legacy_cache_leaves() -> None:
    """On an Intel host (vendor GenuineIntel) QEMU 7.2 describes its legacy caches in
    leaves 2 and 4 and leaves 0x80000005 empty."""
    leaves = _leaves("Haswell", _host(vendor="GenuineIntel"))
    assert leaves[2, 0] == (1, 0, 0x4D, 0x2C307D)
    assert leaves[4, 0] == (0x121, 0x01C0003F, 0x3F, 1)  # L1d 32 KiB 8-way
    assert leaves[4, 2] == (0x143, 0x03C0003F, 0xFFF, 1)  # L2 4 MiB 16-way
    assert leaves[4, 3] == (0x163, 0x03C0003F, 0x3FFF, 6)  # L3 16 MiB, inclusive
    assert leaves[4, 4] == (0, 0, 0, 0) and (0x80000005, 0) not in leaves
    amd = _leaves("Haswell", _host(vendor="AuthenticAMD"))
    assert amd[2, 0] == (0, 0, 0, 0) and amd[0x80000005, 0][2] == 0x40020140


def test_xsave_leaf_follows_the_enabled_components() -> None:
    host = _host(xsave={2: (0x100, 0x240), 5: (0x40, 0x340)}, xcr0=0xE7)
    leaves = _leaves("SandyBridge", host)
    assert leaves[0xD, 0] == (0x7, 0x340, 0x340, 0)  # x87, SSE, AVX
    assert leaves[0xD, 1][0] == 1 and leaves[0xD, 2][:2] == (0x100, 0x240)
    assert (0xD, 0) not in _leaves("SandyBridge,-xsave", host)


def test_mce_is_set_up_as_qemu_does() -> None:
    """QEMU 7.2 gives family >= 6 models with MCE and MCA 10 banks (MCG_CTL_P | MCG_SER_P
    where KVM has them): kvm-unit-tests' msr test counts the banks."""
    calls: list[tuple[str, bytes]] = []

    def watch(name: str, fd: int, arg: Any) -> None:
        if name == "KVM_X86_SETUP_MCE":
            calls.append((name, bytes(arg)))

    acc = KvmAccelerator(sys=RecordingSys(on_ioctl=watch))
    try:
        supported = acc.mce_cap_supported()
        if not supported:
            pytest.skip("this host's KVM has no KVM_CAP_MCE")
        with acc.create_vm(QEMU_VM) as vm:  # QEMU's: the in-kernel irqchip
            vm.create_vcpu(cpu=CpuSpec.parse("qemu64"))
            vm.create_vcpu(cpu=CpuSpec.parse("pentium3,-mca"))
    finally:
        acc.close()
    expected = ((1 << 8 | 1 << 24) & supported) | min(10, supported & 0xFF)
    assert [int.from_bytes(raw, "little") for _n, raw in calls] == [expected]
    assert mce_cap([(1, 0, 0, 0x600, 0, 0, 1 << 7 | 1 << 14)], 0x01000120) == 0x0100010A
    assert mce_cap([(1, 0, 0, 0x500, 0, 0, 1 << 7 | 1 << 14)], 0x01000120) == 0


# mov ecx, 0x179 (MCG_CAP); rdmsr; out 0x10, eax; hlt
RDMSR_MCG_CAP = bytes.fromhex("66 b9 79 01 00 00 0f 32 66 e7 10 f4")


def test_guest_reads_ten_machine_check_banks() -> None:
    got: list[int] = []

    def out(ex: object) -> None:
        assert isinstance(ex, PortIoExit) and ex.port == 0x10
        got.append(int.from_bytes(ex.data, "little"))

    with KvmAccelerator() as acc:
        if not acc.mce_cap_supported():
            pytest.skip("this host's KVM has no KVM_CAP_MCE")
        vm, vcpu = boot(acc, RDMSR_MCG_CAP, cpu=CpuSpec.parse("qemu64"))
        try:
            run_to_halt(vcpu, out)
        finally:
            vm.close()
    assert len(got) == 1 and got[0] & 0xFF == 10


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("machine", "smp", "cpu"),
    [("pc", 2, "qemu64"), ("pc", 3, "EPYC"), ("q35", 2, "Haswell"),
     ("pc-i440fx-6.1", 2, "EPYC")],
)  # fmt: skip
def test_smp_topology_is_qemus(machine: str, smp: int, cpu: str, tmp_path: Path) -> None:
    """With -smp N QEMU 7.2 describes N cores in one socket on its 7.2 machine types (N
    sockets before 6.2): leaves 1 (logical count, HT), 4, 0xB, 0x80000001 (CmpLegacy),
    0x80000008, 0x8000001D/E of every vCPU, compared entry by entry with the machine's."""
    from accel.machine import Machine

    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (it shows QEMU's KVM_SET_CPUID2 argument)")
    trace = tmp_path / "trace.txt"
    subprocess.run([strace, "-f", "-v", "-s", "100000", "-e", "trace=ioctl", "-o", str(trace),
                    *_qemu_cmd(_qemu(), cpu, "null"), "-M", machine, "-smp", str(smp)],
                   capture_output=True, timeout=60)  # fmt: skip
    lines = [line for line in trace.read_text().splitlines() if "KVM_SET_CPUID2" in line]
    theirs = [
        _nonzero([tuple(int(v, 0) for v in m.groups()) for m in _ENTRY.finditer(line)])
        for line in lines
    ]
    seen: list[bytes] = []

    def watch(name: str, fd: int, arg: Any) -> None:
        if name == "KVM_SET_CPUID2":
            seen.append(bytes(arg))

    acc = KvmAccelerator(sys=RecordingSys(on_ioctl=watch))
    try:
        with Machine(acc, machine, cpu, smp=smp):
            pass
    finally:
        acc.close()
    ours = []
    for raw in seen:
        words = memoryview(raw).cast("I")
        step = bindings.CPUID_ENTRY2_WORDS
        ours.append(_nonzero([
            tuple(words[bindings.CPUID2_HEADER_WORDS + i * step:][:7]) for i in range(words[0])
        ]))  # fmt: skip
    assert len(theirs) == len(ours) == smp
    for index, (q, a) in enumerate(zip(theirs, ours, strict=True)):
        wrong = [f"vCPU {index} {k[0]:#x}.{k[1]}: QEMU {_show(q.get(k))} accel {_show(a.get(k))}"
                 for k in sorted({*q, *a}) if q.get(k) != a.get(k)]  # fmt: skip
        assert not wrong, "\n".join(wrong)


def test_topology_fields_for_n_cores() -> None:
    two = _leaves("EPYC", _host(), apic_id=1)
    assert two[1, 0][1] == 1 << 24 | 0x800 and not two[1, 0][3] & 1 << 28  # one per socket
    cores = CpuSpec("EPYC")
    three = {
        (e[0], e[1]): e[3:]
        for e in model_cpuid(CPU_DEFINITIONS["EPYC"], cores, _host(), apic_id=2, cores=3)
    }
    assert three[1, 0][1] == 2 << 24 | 3 << 16 | 0x800 and three[1, 0][3] & 1 << 28
    assert three[0xB, 1] == (2, 3, 0x201, 2)  # two bits of core ID
    assert three[0x80000008, 0][2] == 2 | 2 << 12
    assert three[0x8000001D, 3][0] >> 14 & 0xFFF == 2 and three[0x8000001D, 0][0] >> 14 == 0
    assert three[0x8000001E, 0][:3] == (2, 2, 0)
