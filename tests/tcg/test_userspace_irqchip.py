"""The machine's userspace interrupt controllers on TCG (no irqchip of its own, interrupt
injection yes): the same test kernels and assertions as on KVM with kernel-irqchip=off
(tests/machine/test_user_irqchip.py), so two accelerators hold the models to one
behaviour: the APIC timer's one-shot and periodic modes against the guest clock, COM1
through IOAPIC pin 4, a fixed IPI, and INIT/SIPI with every vCPU reporting its APIC ID."""

from __future__ import annotations

import pytest

from tests.machine.test_kernel_boot import KERNELS, boot
from tests.machine.test_user_irqchip import OFF, _run_apic, check_apic_kernel


@pytest.mark.parametrize("smp", [1, 2])
def test_apic_timer_ioapic_and_ipi_on_tcg(smp: int) -> None:
    check_apic_kernel(*_run_apic(smp, "tcg"), smp)


@pytest.mark.parametrize("smp", [2, 4])
def test_init_sipi_and_apic_ids_on_tcg(smp: int) -> None:
    status, output, kind = boot("tcg", KERNELS / "smp.elf", memory="64", smp=smp, machine=OFF)
    assert (status, kind) == (33, "debug-exit"), output
    lines = output.splitlines()
    assert lines[:2] == [f"cpus={smp}", "bsp=0"] and lines[-1] == "done"
    assert sorted(int(x.split("=")[1]) for x in lines if x.startswith("ap=")) == list(range(1, smp))
