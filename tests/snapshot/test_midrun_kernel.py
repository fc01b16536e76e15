"""A Multiboot kernel of our own on every vCPU, saved mid-run and restored in a new
process, ends as an uninterrupted run does; and the same kind of machine snapshot moves
between KVM and TCG where the state can be carried, or is refused in one line naming
what cannot be.

``kernels/midrun.S`` (long mode on every vCPU) writes STAR, LSTAR, KERNEL_GS_BASE (and
TSC_AUX where the vCPU has RDTSCP) with values that differ per vCPU, arms kvmclock on
each vCPU, leaves its local APIC timer interrupt pending (IF = 0), reads its kvmclock for
400 ms of guest time, then checks each MSR, takes the interrupt and, on the boot
processor, reports every vCPU's result on COM1 (see the source's header). The run is
paused inside the clock loop (no report written yet), saved, and restored a second later
by ``python -m accel run --restore`` in a new process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accel import Accelerator, Capability
from accel.errors import SnapshotMismatchError
from accel.machine.machine import Machine
from accel.runner import KernelOptions, RunOptions, run_kernel
from accel.snapshot import inspect, restore_machine

ROOT = Path(__file__).resolve().parents[2]
KERNELS = Path(__file__).parent / "kernels"
KERNEL = KERNELS / "midrun.elf"
EXIT_STATUS = 33  # isa-debug-exit 0x10
RAM = 64 << 20
LSTAR = 0xC0000082
#: A machine both accelerators build alike: the interrupt controller outside the
#: accelerator (no in-kernel LAPIC, PIC, PIT on KVM: what TCG has).
PORTABLE = "pc,kernel-irqchip=off"


def accel_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accel", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def verdicts(stdout: str) -> list[str]:
    """The report without its STEP lines (the largest clock step differs run to run)."""
    return [line for line in stdout.splitlines() if line and " STEP " not in line]


def steps_ns(stdout: str) -> dict[int, int]:
    """Each vCPU's largest kvmclock step (ns, low 32 bits), from its STEP line."""
    out: dict[int, int] = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "CPU" and words[2] == "STEP":
            out[int(words[1])] = int(words[3], 16)
    return out


#: The pause between save and restore, and the largest clock step that still shows the
#: clock followed it: a clock that missed the pause steps by all of it. A step above the
#: guest's 200 ms "SLOW" bound but under this one is the host descheduling a vCPU thread
#: (4 busy vCPUs on 2 shared cores under a loaded test run), not a lost pause.
PAUSE_S = 2.0
FOLLOWED_NS = 1_000_000_000


def lines_per_cpu(stdout: str) -> dict[int, dict[str, str]]:
    """``CPU i MSRS OK TSCAUX NO CLOCK OK IRQ OK`` -> {i: {"MSRS": "OK", ...}}."""
    out: dict[int, dict[str, str]] = {}
    for line in verdicts(stdout):
        words = line.split()
        if words[0] == "CPU":
            out[int(words[1])] = dict(zip(words[2::2], words[3::2], strict=True))
    return out


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (32-bit multilib) to build")
def test_committed_kernel_is_what_the_source_builds_to(tmp_path: Path) -> None:
    out = tmp_path / "midrun.elf"
    subprocess.run(
        ["gcc", "-m32", "-nostdlib", "-static", "-Wl,-n", "-Wl,-Ttext=0x100000",
         "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments", "-s", "-o", str(out),
         str(KERNELS / "midrun.S")],
        check=True,
    )  # fmt: skip
    assert out.read_bytes() == KERNEL.read_bytes()


@pytest.mark.kvm
@pytest.mark.parametrize("smp", [2, 4])
def test_every_vcpu_survives_a_midrun_save_restored_in_a_new_process(
    kvm: Accelerator, smp: int, tmp_path: Path
) -> None:
    base = ("--accel", "kvm", "-kernel", str(KERNEL), "-smp", str(smp), "-m", "64")
    whole = accel_run(*base)
    assert whole.returncode == EXIT_STATUS, whole.stderr
    expected = lines_per_cpu(whole.stdout)
    assert verdicts(whole.stdout)[0] == f"CPUS {smp}/{smp}", whole.stdout
    assert sorted(expected) == list(range(smp))
    for i, cpu in expected.items():
        assert cpu["MSRS"] == "OK" and cpu["IRQ"] == "OK", whole.stdout
        step = steps_ns(whole.stdout).get(i)
        assert cpu["CLOCK"] in ("OK", "SLOW") or (
            cpu["CLOCK"] == "JUMP" and step is not None and step < FOLLOWED_NS
        ), whole.stdout

    snap = tmp_path / "midrun.snap"
    for stop in ("200ms", "120ms", "60ms"):
        first = accel_run(*base, "--stop-after", stop, "--save", str(snap))
        assert first.returncode in (0, EXIT_STATUS), first.stderr
        if first.returncode == 0:
            break  # stopped; a run that ended first is tried again, earlier
    assert first.returncode == 0 and first.stdout == "", first.stdout  # before any report
    with snap.open("rb") as f:
        info = inspect(f)
    by_name: dict[str, list[str]] = {}
    for sec in info.sections:
        by_name.setdefault(sec.name, []).append(sec.summary)
    # every vCPU has armed kvmclock on a page of its own, has its own LSTAR and a
    # pending timer interrupt; COM1 and fw-cfg are in the snapshot
    assert len(by_name["cpu-msrs"]) == smp
    assert all("kvmclock armed" in s for s in by_name["cpu-msrs"]), by_name["cpu-msrs"]
    assert len({s.split("LSTAR")[-1] for s in by_name["cpu-msrs"]}) == smp
    assert all("IRR ['0x40']" in s for s in by_name["cpu-lapic"]), by_name["cpu-lapic"]
    assert {"isa-serial", "fw-cfg", "fw-cfg-data", "irqchip", "pit"} <= set(by_name)

    time.sleep(PAUSE_S)  # a pause a dead clock would show as a 2 s jump
    second = accel_run("--restore", str(snap))
    assert second.returncode == EXIT_STATUS, second.stderr
    assert "section(s)" not in second.stderr  # nothing was missing
    got = lines_per_cpu(second.stdout)
    assert verdicts(second.stdout)[0] == f"CPUS {smp}/{smp}", second.stdout
    for i, cpu in got.items():
        assert cpu["MSRS"] == expected[i]["MSRS"] == "OK", second.stdout
        assert cpu["IRQ"] == expected[i]["IRQ"] == "OK", second.stdout
        assert cpu["TSCAUX"] == expected[i]["TSCAUX"], second.stdout
        # every step of every vCPU's clock, across the pause too, under 200 ms (or under
        # 1 s: see FOLLOWED_NS): a clock that missed the pause would jump by the 2 s slept
        # or stop
        step = steps_ns(second.stdout).get(i)
        assert cpu["CLOCK"] in ("OK", "SLOW") or (
            cpu["CLOCK"] == "JUMP" and step is not None and step < FOLLOWED_NS
        ), second.stdout


# --------------------------------------------------------------------------- across accelerators


def save_midrun(acc: Accelerator, path: Path, *, cpu: str | None = None, append: str = "") -> None:
    """Run the kernel on ``acc`` (one vCPU, :data:`PORTABLE`) and save it once it has
    written its MSRs and before it ended (stops drawn later until both hold)."""
    kernel = KernelOptions(str(KERNEL), append=append, ram_size=RAM, serial="stdio")
    for stop in (0.002, 0.005, 0.01, 0.03, 0.06, 0.1, 0.2):
        options = RunOptions(machine=PORTABLE, cpu=cpu, stop_after=stop, save=str(path))
        result = run_kernel(acc, kernel, options)
        if result.kind != "stopped":
            continue  # ended first: a stop this late never catches it
        with path.open("rb") as f:
            lstar = [s.summary for s in inspect(f).sections if s.name == "cpu-msrs"]
        if lstar and "LSTAR" in lstar[0]:
            return
    pytest.fail(f"the kernel on {acc.name} was never caught after its MSR writes")


def finish(machine: Machine) -> tuple[int, str]:
    """Run a restored machine on; its exit status and COM1 output."""
    with machine:
        machine.resume()
        result = machine.run(timeout=60)
    return result.status, result.message


def uninterrupted(acc: Accelerator, *, cpu: str | None = None, append: str = "") -> str:
    out = bytearray()
    kernel = KernelOptions(str(KERNEL), append=append, ram_size=RAM, serial="stdio")
    result = run_kernel(acc, kernel, RunOptions(machine=PORTABLE, cpu=cpu), console=out.extend)
    assert result.status == EXIT_STATUS, result.message
    return out.decode()


@pytest.mark.kvm
def test_kvm_snapshot_without_kvmclock_restores_on_tcg(
    kvm: Accelerator, tcg: Accelerator, tmp_path: Path
) -> None:
    cpu = "qemu64,-kvmclock"
    expected = uninterrupted(kvm, cpu=cpu)
    # kernel-irqchip=off on KVM: the machine's userspace local APIC serves the guest
    assert "MSRS OK TSCAUX NO CLOCK NONE IRQ OK" in expected
    snap = tmp_path / "kvm.snap"
    save_midrun(kvm, snap, cpu=cpu)
    out = bytearray()
    notes: list[str] = []
    if not tcg.capabilities().supports(Capability.INTERRUPT_INJECTION):
        # TCG cannot hold the userspace APIC the guest programmed: refused in one line
        with snap.open("rb") as f, pytest.raises(SnapshotMismatchError) as info:
            restore_machine(f, tcg)
        assert str(info.value).startswith("the guest programmed its isa-i8259, apic"), info.value
        return
    with snap.open("rb") as f:
        machine = restore_machine(f, tcg, console=out.extend, warnings=notes)
    assert machine.vcpus[0].get_msrs([LSTAR]) == {LSTAR: 0xFFFFFFFF81A00000}
    status, message = finish(machine)
    assert status == EXIT_STATUS, message
    assert verdicts(out.decode()) == verdicts(expected)
    assert any("kvmclock" in n and "not on tcg" in n for n in notes), notes


@pytest.mark.kvm
def test_tcg_snapshot_restores_on_kvm(kvm: Accelerator, tcg: Accelerator, tmp_path: Path) -> None:
    """``notscaux``: TCG's vCPU has RDTSCP and this KVM's qemu64 has not (the next test)."""
    expected = uninterrupted(tcg, append="notscaux")
    # TCG has no irqchip of its own: the machine's userspace local APIC serves the guest
    assert "MSRS OK TSCAUX NO CLOCK NONE IRQ OK" in expected
    snap = tmp_path / "tcg.snap"
    save_midrun(tcg, snap, append="notscaux")
    out = bytearray()
    notes: list[str] = []
    with snap.open("rb") as f:
        machine = restore_machine(f, kvm, console=out.extend, warnings=notes)
    assert machine.vcpus[0].get_msrs([LSTAR]) == {LSTAR: 0xFFFFFFFF81A00000}
    status, message = finish(machine)
    assert status == EXIT_STATUS, message
    assert verdicts(out.decode()) == verdicts(expected)
    assert any("kvm adds kvmclock" in n for n in notes), notes


@pytest.mark.kvm
def test_tcg_snapshot_with_tsc_aux_is_refused_on_kvm_naming_it(
    kvm: Accelerator, tcg: Accelerator, tmp_path: Path
) -> None:
    snap = tmp_path / "tcg.snap"
    save_midrun(tcg, snap)
    with snap.open("rb") as f, pytest.raises(SnapshotMismatchError) as info:
        restore_machine(f, kvm)
    message = str(info.value).split(" (hint")[0]
    assert message == "MSR 0xc0000103 (TSC_AUX) of vCPU 0 is 0x100 and kvm's vCPU does not have it"


@pytest.mark.kvm
def test_kvm_snapshot_with_kvmclock_armed_is_refused_on_tcg_in_one_line(
    kvm: Accelerator, tcg: Accelerator, tmp_path: Path
) -> None:
    snap = tmp_path / "kvm.snap"
    save_midrun(kvm, snap)  # the default CPU: kvmclock armed
    with snap.open("rb") as f, pytest.raises(SnapshotMismatchError) as info:
        restore_machine(f, tcg)
    message = str(info.value).split(" (hint")[0]
    if not tcg.capabilities().supports(Capability.INTERRUPT_INJECTION):
        # the device trees are compared first: the guest's userspace APIC is refused
        assert message.startswith("the guest programmed its isa-i8259, apic"), message
    else:
        assert message == "kvmclock is armed (MSR 0x4b564d01) and tcg has no paravirtual clock"
    assert "\n" not in str(info.value)
