"""Booting Multiboot kernels: ``accel run --kernel`` on KVM and TCG.

Two sources of kernels:

* ``kernels/report.S`` (built into ``kernels/report.elf``, committed with its source): it
  prints, on COM1, the boot loader's magic, the command line, mem_upper, and what it
  reads of fw_cfg through the ports (signature, NB_CPUS, RAM_SIZE, etc/e820's size in
  FILE_DIR) and through DMA (RAM_SIZE), then exits through isa-debug-exit (status 33).
  It runs on every accelerator.
* kvm-unit-tests from ``/work/shared/kut`` (the oracle, with QEMU 7.2's results in
  ``results.tsv``): on KVM each must give QEMU's exit status and SUMMARY line. Skipped
  with the reason where the directory is missing.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import accel
from accel.accelerator import VmOptions
from accel.errors import ConfigError, UnsupportedError
from accel.machine import Machine, RunState
from accel.machine.devices import SerialPort
from accel.machine.multiboot import (
    e820_table,
    legacy_firmware,
    load_multiboot,
    parse_size,
    ram_split,
)
from accel.machine.serial import Ier, Reg
from accel.runner import KernelOptions, RunOptions, check_smp, run_kernel

ROOT = Path(__file__).resolve().parents[2]
KERNELS = Path(__file__).resolve().parent / "kernels"
REPORT = KERNELS / "report.elf"
KUT = Path(__file__).resolve().parents[3] / "shared" / "kut"  # ../shared beside the checkout
ACCELS = [pytest.param("kvm", marks=pytest.mark.kvm), "tcg"]
#: The kvm-unit-tests whose QEMU 7.2 result under KVM on this kind of host accel
#: reproduces: passes, a skip (tsc: 77) and two unhandled exceptions this host's KVM
#: causes (syscall, emulator: 127). Of the others, memory and xsave end in a KVM internal
#: error (125) where QEMU hangs on it (124), hypercall and apic time out as under QEMU.
#: msr counts QEMU's 1838 tests only with QEMU's qemu64 CPUID and its 10 machine-check
#: banks (KVM_X86_SETUP_MCE): the row checks the CPU model.
KUT_TESTS = [
    "dummy",
    "realmode",
    "setjmp",
    "hpet_read_test",
    "tsc",
    "smptest",
    "syscall",
    "emulator",
    "msr",
]


def boot(
    accel_name: str, kernel: str | Path, *, memory: str = "256", smp: int = 1, append: str = "",
    serial: str = "stdio", machine: str = "pc", timeout: float = 30,
) -> tuple[int, str, str]:  # fmt: skip
    """``accel run --accel NAME --kernel KERNEL -m MEMORY -smp SMP``: status, COM1, kind."""
    out = bytearray()
    acc = accel.open(accel_name)
    try:
        result = run_kernel(
            acc,
            KernelOptions(str(kernel), append=append, ram_size=parse_size(memory), smp=smp,
                          serial=serial),
            RunOptions(machine=machine, timeout=timeout),
            console=out.extend,
        )  # fmt: skip
    finally:
        acc.close()
    return result.status & 0xFF, out.decode("latin-1"), result.kind


def report_lines(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


# --------------------------------------------------------------------------- our kernel


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (with -m32) to rebuild")
@pytest.mark.parametrize("name", ["report", "echo", "smp", "irq"])
def test_kernels_build_from_their_sources(tmp_path: Path, name: str) -> None:
    """The committed NAME.elf is what NAME.S builds to (the build line in it)."""
    out = tmp_path / f"{name}.elf"
    cmd = ["gcc", "-m32", "-nostdlib", "-static", "-Wl,-n", "-Wl,-Ttext=0x100000",
           "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments", "-s", "-o", str(out),
           f"{name}.S"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=KERNELS)
    if done.returncode != 0:
        pytest.skip(f"gcc -m32 cannot build here: {done.stderr.strip()[:200]}")
    assert out.read_bytes() == (KERNELS / f"{name}.elf").read_bytes()


@pytest.mark.parametrize("accel_name", ACCELS)
@pytest.mark.parametrize(
    ("memory", "smp", "machine"),
    [("256", 1, "pc"), ("5G", 2, "pc"), ("3G", 1, "q35"), ("130M", 1, "q35")],
)
def test_report_kernel_sees_loader_serial_and_fw_cfg(
    accel_name: str, memory: str, smp: int, machine: str
) -> None:
    status, output, kind = boot(
        accel_name, REPORT, memory=memory, smp=smp, append="a b=c", machine=machine
    )
    assert (status, kind) == (33, "debug-exit"), output
    got = report_lines(output)
    size = parse_size(memory)
    below, _above = ram_split(machine, size)
    assert got["magic"] == "2badb002"
    assert got["cmdline"] == f"{REPORT} a b=c"
    assert int(got["upper"], 16) == (below - (1 << 20)) // 1024
    assert got["sig"] == "QEMU"
    assert int(got["cpus"], 16) == smp
    assert int(got["ram"], 16) == size
    assert int(got["dmaram"], 16) == size  # the same item through DMA
    assert int(got["e820"], 16) == 20 * len(e820_table(machine, size))


@pytest.mark.parametrize("accel_name", ACCELS)
def test_serial_backends(accel_name: str, tmp_path: Path) -> None:
    log = tmp_path / "com1.log"
    status, output, _ = boot(accel_name, REPORT, serial=f"file:{log}")
    assert status == 33 and output == ""
    assert report_lines(log.read_text())["sig"] == "QEMU"
    for quiet in ("null", "none"):  # no port at all: LSR reads 0xff, THRE is set
        status, output, _ = boot(accel_name, REPORT, serial=quiet)
        assert (status, output) == (33, "")


def test_bad_kernel_options_fail_before_anything_starts(tmp_path: Path) -> None:
    acc = accel.open("tcg")
    try:
        for smp in (0, 65):
            with pytest.raises(ConfigError, match="--smp"):
                check_smp(acc, smp)
        with pytest.raises(ConfigError, match="serial backend 'pty'"):
            run_kernel(acc, KernelOptions(str(REPORT), serial="pty"), RunOptions())
        with pytest.raises(ConfigError, match="does not fit in RAM"):
            run_kernel(acc, KernelOptions(str(REPORT), ram_size=1 << 20), RunOptions())
        flat = tmp_path / "flat.bin"
        flat.write_bytes(b"\xf4" * 64)
        with pytest.raises(ConfigError, match="Multiboot"):
            run_kernel(acc, KernelOptions(str(flat)), RunOptions())
        with pytest.raises(ConfigError, match="not a pc or q35"):
            run_kernel(acc, KernelOptions(str(REPORT)), RunOptions(machine="microvm"))
    finally:
        acc.close()


def test_cli_kernel_boot_and_usage_errors(tmp_path: Path) -> None:
    exe = accel_exe()
    done = subprocess.run(
        [*exe, "run", "--accel", "tcg", "-kernel", str(REPORT), "-append", "x", "-m", "64",
         "-smp", "2"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 33, done.stderr
    assert report_lines(done.stdout)["cpus"] == "00000002"
    assert "isa-debug-exit" in done.stderr
    done = subprocess.run([*exe, "run", "--accel", "tcg", "-kernel", str(REPORT), "-smp", "0"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "--smp 0" in done.stderr
    done = subprocess.run([*exe, "run", "-m", "64", "x.bin"], capture_output=True, text=True)
    assert done.returncode == 2 and "only with --kernel" in done.stderr
    done = subprocess.run([*exe, "run", "-kernel", str(REPORT), "x.bin"], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2 and "drop IMAGE" in done.stderr


def accel_exe() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "accel"
    return [str(exe)] if exe.exists() else ["accel"]


@pytest.mark.parametrize("accel_name", ACCELS)
def test_serial_input_from_a_pipe(accel_name: str) -> None:
    """-serial stdio reads standard input: echo.elf copies a line back (4 KiB of it:
    the reader never overruns the 16-byte FIFO)."""
    line = "hello, COM1 " + "x" * 4096 + "\n"
    done = subprocess.run(
        [*accel_exe(), "run", "--accel", accel_name, "-kernel", str(KERNELS / "echo.elf"),
         "--timeout", "60"], input=line, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 33, done.stderr
    assert done.stdout == "echo> " + line


def test_serial_reader_is_bounded_by_the_fifo() -> None:
    """Unread input stays in the pipe: the reader takes what the receiver has room for."""
    acc = accel.open("tcg")
    r, w = os.pipe()
    try:
        with Machine(acc, "pc", serial="null") as m:
            uart = m.device("isa-serial")
            assert isinstance(uart, SerialPort)
            uart.uart.write(Reg.FCR, 0x01)  # FIFO on: 16 bytes of room
            os.write(w, bytes(range(100)))
            uart.attach_input(r, poll=0.01)
            deadline = time.monotonic() + 5
            while uart.received < 16 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
            assert uart.received == 16
            assert uart.uart.read(Reg.RBR) == 0  # the first byte; room for one more
            while uart.received < 17 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert uart.received == 17 and uart.state()["bytes_received"] == 17
        assert uart._reader is None  # unrealised: the reader thread ended
    finally:
        os.close(r)
        os.close(w)
        acc.close()


def test_machine_show_lists_serial_and_fw_cfg() -> None:
    acc = accel.open("tcg")
    try:
        plan = Machine.describe(acc, "pc")
        by_name = {d.name: d for d in plan.decisions}
        assert not by_name["fw-cfg"].present and "--kernel" in by_name["fw-cfg"].reason
        assert not by_name["isa-serial"].present and "-serial" in by_name["isa-serial"].reason
        kernel = load_multiboot(REPORT, ram_size=64 << 20)
        with Machine(acc, "pc", ram_size=64 << 20, boot=kernel, serial="null") as m:
            names = {d.name: d for d in m.plan.decisions if d.present}  # type: ignore[union-attr]
            assert "fw-cfg" in names and "isa-serial" in names
            assert names["isa-serial"].reason == "COM1 for -serial null"
            assert m.device("fw-cfg").state()["files"] == ["etc/boot-fail-wait", "etc/e820"]
    finally:
        acc.close()


def test_user_serial_device_replaces_the_default(tmp_path: Path) -> None:
    log = tmp_path / "com.log"
    acc = accel.open("tcg")
    try:
        kernel = load_multiboot(REPORT, ram_size=64 << 20)
        with Machine(acc, "pc", devices=[f"isa-serial,chardev=file:{log}",
                                         "isa-debug-exit,iobase=0xf4,iosize=4"],
                     ram_size=64 << 20, boot=kernel, serial="stdio") as m:  # fmt: skip
            assert [d.type_name for d in m.devices].count("isa-serial") == 1
            assert m.run(timeout=30).status == 33
        assert report_lines(log.read_text())["sig"] == "QEMU"
    finally:
        acc.close()


def test_legacy_firmware_state() -> None:
    """The IVT and the stubs the firmware set-up leaves (realmode.flat's ``sti; hlt``
    wakes on the PIT's IRQ 0 through them)."""
    fw = legacy_firmware()
    mem = dict(fw.writes)
    ivt = mem[0]
    assert len(ivt) == 1024
    entry = {v: struct.unpack_from("<HH", ivt, 4 * v) for v in range(256)}
    assert {entry[v] for v in range(8, 16)} == {(0x200, 0xF000)}
    assert {entry[v] for v in range(0x70, 0x78)} == {(0x210, 0xF000)}
    assert entry[0x10] == entry[0] == (0x220, 0xF000)
    assert mem[0xF0220] == b"\xcf"  # iret
    assert (fw.cs, fw.ip, fw.done_port) == (0xF000, 0x100, 0x80)
    assert all(0xF0000 <= a < 0x100000 for a, _ in fw.writes[1:])  # reserved in the map


# --------------------------------------------------------------------------- IRQ line


@pytest.mark.kvm
def test_uart_interrupt_reaches_the_in_kernel_irqchip() -> None:
    """With the irqchip in KVM, the UART's line goes through KVM_IRQ_LINE (IRQ 4)."""
    acc = accel.open("kvm")
    try:
        with Machine(acc, "pc", serial="null") as m:
            vm = m.vm
            assert vm is not None
            seen: list[tuple[int, bool]] = []
            real = vm.set_irq_line

            def record(irq: int, level: bool) -> None:
                seen.append((irq, level))
                real(irq, level)

            vm.set_irq_line = record  # type: ignore[method-assign]
            uart = m.device("isa-serial")
            assert isinstance(uart, SerialPort)
            uart.uart.write(Reg.IER, Ier.ETBEI)  # THR empty: the line rises
            uart.uart.read(Reg.IIR)  # reading IIR clears a THRE interrupt
            assert seen == [(4, True), (4, False)]
        with acc.create_vm() as plain, pytest.raises(UnsupportedError, match="irqchip"):
            plain.set_irq_line(4, True)
        with acc.create_vm(VmOptions(irqchip=True)) as chip:
            chip.set_irq_line(4, True)
            chip.set_irq_line(4, False)
    finally:
        acc.close()


@pytest.mark.kvm
def test_interrupt_driven_transmit_and_receive() -> None:
    """irq.elf sends and receives only from its IRQ 4 handler: the UART's line goes
    through KVM_IRQ_LINE to the in-kernel PIC and back into the guest as vector 0x0c."""
    done = subprocess.run(
        [*accel_exe(), "run", "--accel", "kvm", "-kernel", str(KERNELS / "irq.elf"),
         "--timeout", "30"], input="typed by the test\n", capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 33, done.stderr
    assert done.stdout == "irq tx\ntyped by the test\n"


def test_without_an_irqchip_the_line_goes_nowhere() -> None:
    acc = accel.open("tcg")
    try:
        with Machine(acc, "pc", serial="null") as m:
            assert m.vm is not None
            with pytest.raises(UnsupportedError):
                m.vm.set_irq_line(4, True)
            m.set_irq(4, True)  # no irqchip in the accelerator: nothing to drive
    finally:
        acc.close()


# --------------------------------------------------------------------------- every vCPU


@pytest.mark.kvm
@pytest.mark.parametrize("smp", [1, 2, 4])
def test_every_vcpu_runs_and_reports_its_apic_id(smp: int) -> None:
    """smp.elf: the boot processor starts the others with INIT/SIPI through the in-kernel
    LAPIC; each reports its local APIC ID on COM1."""
    status, output, kind = boot("kvm", KERNELS / "smp.elf", memory="64", smp=smp)
    assert (status, kind) == (33, "debug-exit"), output
    lines = output.splitlines()
    assert lines[:2] == [f"cpus={smp}", "bsp=0"] and lines[-1] == "done"
    assert sorted(int(x.split("=")[1]) for x in lines if x.startswith("ap=")) == list(range(1, smp))


@pytest.mark.kvm
def test_pause_resume_and_stop_act_on_every_vcpu() -> None:
    """echo.elf waits for input on vCPU 0 while vCPUs 1-2 wait for SIPI in KVM: a pause
    holds all three, resume lets them go, stop ends every vCPU thread."""
    acc = accel.open("kvm")
    try:
        kernel = load_multiboot(KERNELS / "echo.elf", ram_size=64 << 20)
        with Machine(acc, "pc", ram_size=64 << 20, smp=3, boot=kernel, serial="null") as m:
            results: list[object] = []
            runner = threading.Thread(target=lambda: results.append(m.run(timeout=30)))
            runner.start()
            deadline = time.monotonic() + 5
            while len(m._ap_idents) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(m._ap_idents) == 2  # both application processors have threads
            m.pause()
            assert m.state is RunState.PAUSED and m._ap_parked == 2
            m.resume()
            assert m.state is RunState.RUNNING
            m.stop(0, "stopped by the test")
            runner.join(10)
            assert not runner.is_alive()
            assert [getattr(r, "kind", None) for r in results] == ["stopped"]
            assert m._ap_threads == []  # every vCPU thread ended with the run
    finally:
        acc.close()


# --------------------------------------------------------------------------- kvm-unit-tests


def qemu_results() -> dict[tuple[str, str, int], tuple[int, str]]:
    """results.tsv: (test, accel, smp) -> (status, SUMMARY line or '')."""
    out: dict[tuple[str, str, int], tuple[int, str]] = {}
    for line in (KUT / "results.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        test, accel_name, smp, _append, status, _wall, *summary = line.split("\t")
        out[(test, accel_name, int(smp))] = (int(status), summary[0] if summary else "")
    return out


def summary_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("SUMMARY:")]
    return lines[-1].strip() if lines else ""


@pytest.mark.kvm
@pytest.mark.skipif(not (KUT / "results.tsv").exists(), reason=f"no kvm-unit-tests in {KUT}")
@pytest.mark.parametrize(("test", "smp"), [*((t, 1) for t in KUT_TESTS), ("smptest", 2)])
def test_kvm_unit_tests_give_qemus_results(test: str, smp: int) -> None:
    expected = qemu_results()[(test, "kvm", smp)]
    # QEMU's own limit (results.tsv): msr alone takes 14-25 s here, more on a loaded host.
    status, output, _kind = boot("kvm", KUT / f"{test}.flat", memory="256", smp=smp, timeout=180)
    assert (status, summary_line(output)) == expected, output[-2000:]
