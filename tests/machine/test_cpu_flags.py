"""``--cpu`` flags: QEMU's generic x86 names, plugin-declared flags, and refusals."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import accel
from accel import CpuSpec, Registry
from accel.errors import ConfigError, InvalidArgumentError
from accel.machine import Machine
from accel.machine.cpu import CPU_FLAG_ALIASES, X86_FEATURES, canonical_flag, resolve_cpu
from tests.fakes import FakeAccelerator, registry_with

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "guests" / "hello.bin"


def _info(name: str = "mine", flags: tuple[str, ...] = ()) -> accel.AcceleratorInfo:
    return accel.AcceleratorInfo(name, "fake", lambda: FakeAccelerator(name), cpu_flags=flags)


@pytest.mark.parametrize(
    "spec",
    [
        "qemu64,+x2apic",
        "qemu64,-sse4.2,+sse4.1",
        "Haswell,-hle,-rtm,+avx2,+pdpe1gb",
        "EPYC,+svm,+npt,-xsaves",
        "max,+la57,+pku,-avx512f",
        "qemu64,pmu=off,enforce",
        "qemu64,-arch-capabilities,+tsc-deadline,+invtsc",
    ],
)
def test_generic_flags_are_accepted_with_no_plugin(spec: str) -> None:
    cpu = resolve_cpu(spec, "qemu64")
    assert cpu == CpuSpec.parse(spec)


def test_migratable_is_a_host_and_max_property() -> None:
    assert resolve_cpu("host,migratable=off", "qemu64").flag("migratable") is False
    assert resolve_cpu("max,host-cache-info=on", "qemu64").flag("host-cache-info") is True
    with pytest.raises(ConfigError, match="'qemu64' has no flag 'migratable'"):
        resolve_cpu("qemu64,migratable=off", "qemu64")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("sse4_1", "sse4.1"),
        ("sse4-1", "sse4.1"),
        ("sse4_2", "sse4.2"),
        ("sse3", "pni"),
        ("pclmuldq", "pclmulqdq"),
        ("xd", "nx"),
        ("i64", "lm"),
        ("ffxsr", "fxsr-opt"),
        ("lahf_lm", "lahf-lm"),
        ("tsc_deadline", "tsc-deadline"),
    ],
)
def test_aliases_become_qemus_feature_names(given: str, canonical: str) -> None:
    assert canonical_flag(given) == canonical
    cpu = resolve_cpu(f"qemu64,-{given}", "qemu64")
    assert cpu.flags == ((canonical, False),)


def test_the_table_is_qemus_names() -> None:
    for name in ("fpu", "pbe", "hypervisor", "3dnow", "lahf-lm", "avx512vl", "sse4a", "lm"):
        assert name in X86_FEATURES
    assert set(CPU_FLAG_ALIASES.values()) <= X86_FEATURES
    # The core never names an accelerator's flag.
    assert not [n for n in X86_FEATURES if n.startswith("kvm")]


@pytest.mark.parametrize(
    ("spec", "flag", "guess"),
    [
        ("qemu64,+nosuchflag", "nosuchflag", None),
        ("qemu64,-sse4.3", "sse4.3", "sse4.2"),
        ("Haswell,+avx3", "avx3", "avx"),
        ("qemu64,x2apci=on", "x2apci", "x2apic"),
    ],
)
def test_unknown_flag_is_refused_naming_it_and_the_model(
    spec: str, flag: str, guess: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_cpu(spec, "qemu64")
    exc = info.value
    model = spec.partition(",")[0]
    assert exc.message == (
        f"CPU model {model!r} has no flag {flag!r} "
        f"(QEMU: Property '{model}-x86_64-cpu.{flag}' not found)"
    )
    assert exc.fields()["flag"] == flag and exc.fields()["cpu"] == str(CpuSpec.parse(spec))
    assert exc.hint is not None
    if guess is not None:
        assert exc.hint.startswith(f"did you mean {guess!r}?")


def test_plugin_flag_is_accepted_only_when_declared() -> None:
    with pytest.raises(ConfigError, match="has no flag 'mine-pv'"):
        resolve_cpu("qemu64,-mine-pv", "qemu64")
    with pytest.raises(ConfigError, match="has no flag 'mine-pv'"):
        resolve_cpu("qemu64,-mine-pv", "qemu64", _info("other", ("other-pv",)))
    declared = _info("mine", ("mine-pv", "mineclock"))
    assert resolve_cpu("qemu64,-mine-pv", "qemu64", declared).flags == (("mine-pv", False),)
    # Declared by any registered accelerator, not only the one in use.
    cpu = resolve_cpu("qemu64,-mine-pv", "qemu64", _info("other"), accelerators=[declared])
    assert cpu.flags == (("mine-pv", False),)


def test_did_you_mean_covers_plugin_flags() -> None:
    declared = _info("mine", ("mineclock",))
    with pytest.raises(ConfigError) as info:
        resolve_cpu("host,-minecock", "qemu64", accelerators=[declared])
    assert info.value.hint is not None
    assert info.value.hint.startswith("did you mean 'mineclock'?")
    assert "mineclock" in info.value.hint


def test_machine_refuses_a_flag_no_registered_plugin_declares() -> None:
    acc = FakeAccelerator("mine")
    with pytest.raises(ConfigError, match="has no flag 'mine-pv'"):
        Machine.describe(acc, "pc", "qemu64,-mine-pv", registry=Registry(entry_points=False))
    reg = registry_with(_info("mine", ("mine-pv",)))
    plan = Machine.describe(acc, "pc", "qemu64,-mine-pv", registry=reg)
    assert plan.cpu.flag("mine-pv") is False
    reg.unregister("fakes")
    with pytest.raises(ConfigError, match="has no flag 'mine-pv'"):
        Machine.describe(acc, "pc", "qemu64,-mine-pv", registry=reg)


def test_installed_kvm_plugin_declares_its_flags() -> None:
    reg = Registry()
    flags = {f for info in reg.accelerators().values() for f in info.cpu_flags}
    assert {"kvm", "kvmclock", "kvmclock-stable-bit", "kvm-pv-eoi", "kvm-pv-unhalt"} <= flags
    cpu = resolve_cpu(
        "host,-kvmclock,-kvm_pv_eoi", "qemu64", accelerators=reg.accelerators().values()
    )
    assert cpu.flags == (("kvm-pv-eoi", False), ("kvmclock", False))
    with pytest.raises(ConfigError) as info:
        resolve_cpu("host,-kvmcock", "qemu64", accelerators=reg.accelerators().values())
    assert info.value.hint is not None and info.value.hint.startswith("did you mean 'kvmclock'?")


@pytest.mark.parametrize("bad", ["Bad", "1x", "", "a,b", "x=1"])
def test_declared_flags_must_be_names(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="CPU flag"):
        _info("mine", (bad,))


def test_declared_flags_are_a_tuple_without_repeats() -> None:
    info = accel.AcceleratorInfo(
        "mine",
        "fake",
        lambda: FakeAccelerator("mine"),
        cpu_flags=["b", "a", "b", "x.1"],  # type: ignore[arg-type]
    )
    assert info.cpu_flags == ("b", "a", "x.1")
    with pytest.raises(InvalidArgumentError, match="not the string"):
        accel.AcceleratorInfo("mine", "fake", lambda: FakeAccelerator("mine"), cpu_flags="ab")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("acc", "cpu", "flag", "guess"),
    [
        ("tcg", "qemu64,+nosuchflag", "nosuchflag", None),
        ("tcg", "max,-kvmcock", "kvmcock", "kvmclock"),
        pytest.param("kvm", "host,-kvmcock", "kvmcock", "kvmclock", marks=pytest.mark.kvm),
        pytest.param("kvm", "qemu64,+nosuchflag", "nosuchflag", None, marks=pytest.mark.kvm),
    ],
)
def test_accel_run_refuses_in_one_line(acc: str, cpu: str, flag: str, guess: str | None) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "accel", "run", "--accel", acc, "--cpu", cpu, str(HELLO)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 1
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert f"has no flag {flag!r}" in lines[0]
    if guess is not None:
        assert f"did you mean {guess!r}?" in lines[0]


@pytest.mark.qemu
def test_generic_and_declared_flags_are_qemus_cpu_help_list() -> None:
    """``qemu-system-x86_64 -cpu help``'s "Recognized CPUID flags" are exactly the core's
    generic names plus the installed plugins' declared ones (less ``kvm``, a property and
    not a CPUID flag)."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    text = subprocess.run(
        [qemu, "-cpu", "help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    theirs = set(text.partition("Recognized CPUID flags:")[2].split())
    declared = {f for info in Registry().accelerators().values() for f in info.cpu_flags}
    assert len(theirs) > 300
    assert theirs == (X86_FEATURES | declared) - {"kvm"}
