"""The userspace interrupt controllers on KVM with ``kernel-irqchip=off``: our own
Multiboot kernels (``kernels/irq.S``: COM1's IRQ 4 through the 8259; ``kernels/smp.S``:
INIT/SIPI through the local APIC's ICR; ``kernels/apic.S``: the APIC timer one-shot and
periodic, COM1 through IOAPIC pin 4, an IPI between two vCPUs), run with the PIC,
IOAPIC and local APICs of :mod:`accel.machine.interrupts` and KVM_INTERRUPT."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

import accel
from accel.machine import Machine, RunState
from accel.machine.interrupts import MpState
from accel.machine.multiboot import load_multiboot

from .test_kernel_boot import KERNELS, KUT, KUT_TESTS, accel_exe, boot, qemu_results, summary_line

pytestmark = pytest.mark.kvm

OFF = "pc,kernel-irqchip=off"
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=4"


def test_machine_show_lists_the_userspace_controllers() -> None:
    acc = accel.open("kvm")
    try:
        plan = Machine.describe(acc, OFF)
        names = {d.name: d for d in plan.decisions}
        for name in ("isa-i8259", "ioapic", "apic"):
            assert names[name].present, names[name]
            assert "userspace" in names[name].reason
            assert names[name].properties
        assert not names["irqchip"].present
        on = {d.name: d for d in Machine.describe(acc, "pc").decisions}
        assert "isa-i8259" not in on or not on["isa-i8259"].present
    finally:
        acc.close()


def test_pic_routed_uart_interrupt() -> None:
    """irq.elf: transmit and receive from its IRQ 4 handler, through the userspace 8259
    (its vector base 0x08 set by the firmware set-up) and the BSP's LINT0 as ExtINT."""
    done = subprocess.run(
        [*accel_exe(), "run", "--accel", "kvm", "-M", OFF, "-kernel",
         str(KERNELS / "irq.elf"), "--timeout", "30"], input="typed by the test\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 33, done.stderr
    assert done.stdout == "irq tx\ntyped by the test\n"


@pytest.mark.parametrize("smp", [2, 4])
def test_init_sipi_and_apic_ids(smp: int) -> None:
    """smp.elf: INIT/SIPI through the userspace local APIC's ICR; every application
    processor starts at the SIPI vector (0x08 -> 0x0800:0000) and reports its APIC ID."""
    status, output, kind = boot("kvm", KERNELS / "smp.elf", memory="64", smp=smp, machine=OFF)
    assert (status, kind) == (33, "debug-exit"), output
    lines = output.splitlines()
    assert lines[:2] == [f"cpus={smp}", "bsp=0"] and lines[-1] == "done"
    assert sorted(int(x.split("=")[1]) for x in lines if x.startswith("ap=")) == list(range(1, smp))


def _run_apic(smp: int, accelerator: str = "kvm") -> tuple[str, Machine]:
    acc = accel.open(accelerator)
    out = bytearray()
    kernel = load_multiboot(KERNELS / "apic.elf", ram_size=64 << 20)
    m = Machine(acc, OFF, ram_size=64 << 20, smp=smp, boot=kernel, serial="stdio",
                console=out.extend, devices=["isa-debug-exit,iobase=0xf4,iosize=4"])  # fmt: skip
    m.init()
    result = m.run(timeout=30)
    assert (result.status, result.kind) == (33, "debug-exit"), (result, out)
    return out.decode(), m


@pytest.mark.parametrize("smp", [1, 2])
def test_apic_timer_ioapic_and_ipi(smp: int) -> None:
    """apic.elf: the timer's one-shot and periodic interrupts, COM1 through IOAPIC pin
    4, and (2 vCPUs) a fixed IPI from the application processor to the boot processor.
    The timer's rate is checked against the guest clock: the expiries the model raised
    are no closer together than their period allows (with a tolerance for a late
    expiry), and the one-shot came no earlier than its count."""
    check_apic_kernel(*_run_apic(smp), smp)


def check_apic_kernel(output: str, m: Machine, smp: int) -> None:
    """What test_apic_timer_ioapic_and_ipi asserts of an apic.elf run (closes ``m``)."""
    try:
        lines = output.splitlines()
        assert lines[:4] == ["apic id=0", "oneshot=1 cur=0", "periodic=10", "ioapic"], output
        if smp > 1:
            assert lines[4:] == ["ap=1", "ipi=1"], output
        else:
            assert lines[4:] == [], output
        router = m.interrupts
        assert router is not None
        hist = router.lapics[0].timer_history
        oneshot, periodic = hist[0], hist[1]
        mode, period, load, fired, first, last = oneshot
        assert (mode, fired) == (0, 1)
        assert period == 1_000_001 and first is not None and first - load >= period
        mode, period, load, fired, first, last = periodic
        assert mode == 1 and period == 2_000_001 and fired >= 10
        assert first is not None and last is not None
        assert first - load >= period
        assert last - first >= (fired - 1) * period // 2  # guest clock, not wall time
        if smp > 1:
            assert router.lapics[1].mp_state is MpState.RUNNING
    finally:
        m.close()
        m.accelerator.close()


def test_pause_resume_and_stop_with_vcpus_waiting_in_hlt() -> None:
    """echo.elf waits in HLT for COM1 input in the userspace APIC on vCPU 0 while
    vCPUs 1-2 wait for SIPI: pause holds all three, resume lets them go, stop ends
    every vCPU thread."""
    acc = accel.open("kvm")
    try:
        kernel = load_multiboot(KERNELS / "echo.elf", ram_size=64 << 20)
        with Machine(acc, OFF, ram_size=64 << 20, smp=3, boot=kernel, serial="null") as m:
            results: list[object] = []
            runner = threading.Thread(target=lambda: results.append(m.run(timeout=30)))
            runner.start()
            deadline = time.monotonic() + 5
            while len(m._ap_idents) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(m._ap_idents) == 2
            time.sleep(0.2)
            m.pause()
            assert m.state is RunState.PAUSED and m._ap_parked == 2
            m.resume()
            assert m.state is RunState.RUNNING
            m.stop(0, "stopped by the test")
            runner.join(10)
            assert not runner.is_alive()
            assert [getattr(r, "kind", None) for r in results] == ["stopped"]
            assert m._ap_threads == []
    finally:
        acc.close()


def test_kernel_builds(tmp_path: Path) -> None:
    """apic.elf is what apic.S builds to."""
    from .test_kernel_boot import test_kernels_build_from_their_sources

    test_kernels_build_from_their_sources(tmp_path, "apic")


def test_snapshot_carries_the_userspace_controllers() -> None:
    """The isa-i8259, ioapic and apic sections: every register of the models comes back
    in the restored machine (the APIC timer still armed, at the same point of its count)."""
    import io

    from accel.machine.devices import ApicDevice, IoApicDevice, PicDevice
    from accel.snapshot import restore_machine, save_machine

    acc = accel.open("kvm")
    try:
        buf = io.BytesIO()
        with Machine(acc, OFF, smp=2) as m:
            m.pause()
            pic = m.device("isa-i8259")
            ioapic = m.device("ioapic")
            apic = m.device("apic")
            assert isinstance(pic, PicDevice) and isinstance(ioapic, IoApicDevice)
            assert isinstance(apic, ApicDevice)
            for port, value in ((0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x03),
                                (0x21, 0xEA), (0x4D0, 0x20)):  # fmt: skip
                pic.model.port_write(port, value)
            pic.model.set_irq(4, True)
            ioapic.model.mmio_write(0, 4, 0x18)
            ioapic.model.mmio_write(0x10, 4, 0x8031)
            ioapic.model.set_irq(4, True)
            bsp, ap = apic.lapics
            bsp.write(0xF0, 0x1FF)
            bsp.write(0x80, 0x20)
            bsp.write(0x320, 0x20030)
            bsp.write(0x380, 50_000_000)
            ap.deliver(6, 0x08, False)  # a SIPI received, not yet taken
            pic_before, io_before = vars(pic.model.master).copy(), list(ioapic.model.table)
            apic_before = [(a.irr, a.isr, a.tmr, a.tpr, a.svr, list(a.lvt), a.initial_count,
                            a.mp_state, a.sipi_vector) for a in apic.lapics]  # fmt: skip
            count = bsp.read(0x390)
            save_machine(m, buf)
        buf.seek(0)
        with restore_machine(buf, acc) as m2:
            pic2 = m2.device("isa-i8259")
            io2 = m2.device("ioapic")
            apic2 = m2.device("apic")
            assert isinstance(pic2, PicDevice) and isinstance(io2, IoApicDevice)
            assert isinstance(apic2, ApicDevice)
            assert vars(pic2.model.master) == pic_before
            assert io2.model.table == io_before and io2.model.table[4] & (1 << 14)
            after = [(a.irr, a.isr, a.tmr, a.tpr, a.svr, list(a.lvt), a.initial_count,
                      a.mp_state, a.sipi_vector) for a in apic2.lapics]  # fmt: skip
            assert after == apic_before
            assert apic2.lapics[0].deadline is not None
            assert 0 < apic2.lapics[0].read(0x390) <= count  # the paused clock: no jump
    finally:
        acc.close()


#: msr: QEMU's row is with x2APIC; without the in-kernel irqchip the guest has none (as
#: under QEMU's kernel-irqchip=off), so its x2APIC MSR tests are not run: another count.
USER_IRQCHIP_KUT = [t for t in KUT_TESTS if t != "msr"]


@pytest.mark.skipif(not (KUT / "results.tsv").exists(), reason=f"no kvm-unit-tests in {KUT}")
@pytest.mark.parametrize(("test", "smp"), [*((t, 1) for t in USER_IRQCHIP_KUT), ("smptest", 2)])
def test_kvm_unit_tests_pass_with_the_userspace_irqchip(test: str, smp: int) -> None:
    """The shared kvm-unit-tests that give QEMU 7.2's result with the in-kernel irqchip
    give it with kernel-irqchip=off too (the PIT's IRQ 0 through the userspace 8259
    wakes realmode's ``sti; hlt``; the others enable and use the userspace LAPIC)."""
    expected = qemu_results()[(test, "kvm", smp)]
    status, output, _kind = boot("kvm", KUT / f"{test}.flat", memory="256", smp=smp, machine=OFF)
    assert (status, summary_line(output)) == expected, output[-2000:]
