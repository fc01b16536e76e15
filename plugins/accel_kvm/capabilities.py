"""KVM's capability numbers mapped onto :class:`accel.Capability` (host and VM level).

:data:`KVM_CAPS` names the KVM_CAP each capability is read from; :func:`answers_from_raw`
turns raw KVM_CHECK_EXTENSION results into answers; :func:`pv_clock_answers` reads the
paravirtual clocksource from the supported CPUID. Used by the accelerator (host answers)
and the VM (answers of KVM_CHECK_EXTENSION on the VM fd).
"""

from __future__ import annotations

from typing import Final

from accel.capabilities import Capability, CapabilityAnswer

from . import bindings as b

__all__ = ["KVM_CAPS", "answers_from_raw", "plugin_answers", "pv_clock_answers"]

#: The capabilities answered straight from KVM_CHECK_EXTENSION, with their KVM_CAP names.
KVM_CAPS: Final[dict[Capability, tuple[str, int]]] = {
    Capability.USER_MEMORY: ("KVM_CAP_USER_MEMORY", b.KVM_CAP_USER_MEMORY),
    Capability.NR_VCPUS: ("KVM_CAP_NR_VCPUS", b.KVM_CAP_NR_VCPUS),
    Capability.MAX_VCPUS: ("KVM_CAP_MAX_VCPUS", b.KVM_CAP_MAX_VCPUS),
    Capability.IRQCHIP: ("KVM_CAP_IRQCHIP", b.KVM_CAP_IRQCHIP),
    Capability.PIT: ("KVM_CAP_PIT2", b.KVM_CAP_PIT2),
    Capability.ADJUST_CLOCK: ("KVM_CAP_ADJUST_CLOCK", b.KVM_CAP_ADJUST_CLOCK),
    Capability.CLOCK_CTRL: ("KVM_CAP_KVMCLOCK_CTRL", b.KVM_CAP_KVMCLOCK_CTRL),
    Capability.TSC_CONTROL: ("KVM_CAP_TSC_CONTROL", b.KVM_CAP_TSC_CONTROL),
    Capability.TSC_KHZ: ("KVM_CAP_GET_TSC_KHZ", b.KVM_CAP_GET_TSC_KHZ),
    Capability.IOEVENTFD: ("KVM_CAP_IOEVENTFD", b.KVM_CAP_IOEVENTFD),
    Capability.IRQFD: ("KVM_CAP_IRQFD", b.KVM_CAP_IRQFD),
    Capability.XSAVE: ("KVM_CAP_XSAVE", b.KVM_CAP_XSAVE),
    Capability.VM_CAPABILITY_QUERY: ("KVM_CAP_CHECK_EXTENSION_VM", b.KVM_CAP_CHECK_EXTENSION_VM),
}

_PV_CLOCK_BITS: Final = (1 << b.KVM_FEATURE_CLOCKSOURCE) | (1 << b.KVM_FEATURE_CLOCKSOURCE2)
_PV_STABLE_BIT: Final = 1 << b.KVM_FEATURE_CLOCKSOURCE_STABLE_BIT


def answers_from_raw(
    raw: dict[int, int], source_suffix: str = ""
) -> dict[Capability, CapabilityAnswer]:
    """Map raw KVM_CHECK_EXTENSION results onto the capability enum (with kvm's fallbacks).

    ``NR_VCPUS`` 0 means 4 and ``MAX_VCPUS`` 0 means ``NR_VCPUS``
    (Documentation/virt/kvm/api.rst, KVM_CREATE_VCPU).
    """
    out: dict[Capability, CapabilityAnswer] = {}
    for cap, (cap_name, number) in KVM_CAPS.items():
        value = raw[number]
        source = cap_name + source_suffix
        if cap is Capability.NR_VCPUS:
            out[cap] = CapabilityAnswer.yes(
                value or 4, source if value else source + " (default 4)"
            )
        elif cap is Capability.MAX_VCPUS:
            nr = raw[b.KVM_CAP_NR_VCPUS] or 4
            out[cap] = CapabilityAnswer.yes(
                value or nr, source if value else source + " (falls back to KVM_CAP_NR_VCPUS)"
            )
        elif cap.valued and cap is not Capability.TSC_KHZ:
            out[cap] = CapabilityAnswer.from_bool(value > 0, value, source)
        else:
            out[cap] = CapabilityAnswer.from_bool(value > 0, None, source)
    return out


def pv_clock_answers(
    cpuid: tuple[b.CpuidEntry, ...], adjust_clock: bool
) -> dict[Capability, CapabilityAnswer]:
    """PV_CLOCKSOURCE and PV_CLOCKSOURCE_STABLE from KVM_GET_SUPPORTED_CPUID's leaf
    0x40000001 EAX (a clocksource also needs KVM_CAP_ADJUST_CLOCK)."""
    pv_eax = 0
    for entry in cpuid:
        if entry[0] == b.KVM_CPUID_FEATURES and entry[1] == 0:
            pv_eax = entry[3]
    pv = bool(pv_eax & _PV_CLOCK_BITS) and adjust_clock
    src = "KVM_GET_SUPPORTED_CPUID 0x40000001 EAX"
    return {
        Capability.PV_CLOCKSOURCE: CapabilityAnswer.from_bool(
            pv, None, f"{src} bits 0/3 + KVM_CAP_ADJUST_CLOCK"
        ),
        Capability.PV_CLOCKSOURCE_STABLE: CapabilityAnswer.from_bool(
            pv and bool(pv_eax & _PV_STABLE_BIT), None, f"{src} bit 24"
        ),
    }


def plugin_answers() -> dict[Capability, CapabilityAnswer]:
    """The answers that depend on what this plugin drives, not on a KVM_CAP."""
    return {
        Capability.INTERRUPT_INJECTION: CapabilityAnswer.yes(
            source="KVM_INTERRUPT, KVM_NMI, kvm_run.request_interrupt_window (a VM "
            "without the in-kernel irqchip)"
        ),
        Capability.VCPU_STATE: CapabilityAnswer.yes(
            source="KVM_GET/SET_MSRS, XSAVE/XCRS, DEBUGREGS, VCPU_EVENTS, MP_STATE"
        ),
    }
