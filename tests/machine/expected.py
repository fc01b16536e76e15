"""QEMU 7.2's clock-device sets, written down from `info qtree` on this kind of host.

The rules (checked against QEMU itself by test_qemu_clock_devices.py):

* PIT: ``kvm-pit`` under KVM when the irqchip is wholly in the kernel, else ``isa-pit``
  (microvm and pc-q35-4.0 default to a split irqchip, so they keep ``isa-pit``).
* HPET: pc and q35 types only.
* RTC: every type, except microvm under KVM (``rtc=auto``).
* kvmclock: only under KVM with a paravirtual clocksource; pc/q35 >= 5.2, microvm and
  isapc create it always, older pc/q35 only when the CPU has the kvmclock flag.
"""

from __future__ import annotations

from accel.machine import machine_types

SET = ("kvm-pit", "isa-pit", "hpet", "mc146818rtc", "kvmclock")


def expected(machine: str, accel: str, kvmclock_flag: bool) -> set[str]:
    mt = next(m for m in machine_types() if machine in (m.name, *m.aliases))
    out: set[str] = set()
    kvm = accel == "kvm"
    split = mt.family == "microvm" or mt.name == "pc-q35-4.0"
    out.add("kvm-pit" if kvm and not split else "isa-pit")
    if mt.family in ("pc", "q35"):
        out.add("hpet")
    if not (mt.family == "microvm" and kvm):
        out.add("mc146818rtc")
    if kvm:
        always = mt.family in ("microvm", "isapc") or (mt.version or (0, 0)) >= (5, 2)
        if always or kvmclock_flag:
            out.add("kvmclock")
    return out


def all_machine_names() -> list[str]:
    names: list[str] = []
    for mt in machine_types():
        names.extend(mt.aliases)
        names.append(mt.name)
    return names
