"""KVM's machine pieces: the kvmclock and kvm-pit device types and QEMU 7.2's rules.

``accel_clock_devices(accelerator, machine)`` decides, after the vCPUs exist:

* **kvm-pit vs isa-pit** — the in-kernel i8254 replaces the userspace one when the
  machine's irqchip is wholly in the kernel (``kernel-irqchip=on``) and KVM reports
  KVM_CAP_IRQCHIP and KVM_CAP_PIT2. A split irqchip (``microvm``, ``pc-q35-4.0``) keeps
  ``isa-pit``, as QEMU's ``kvm_pit_in_kernel()``.
* **kvmclock** — only when KVM reports a paravirtual clocksource
  (``Capability.PV_CLOCKSOURCE``: KVM_FEATURE_CLOCKSOURCE/2 in the supported CPUID);
  then always on machine types that create it unconditionally (QEMU's
  ``kvmclock_create_always``: pc/q35 5.2 and later, microvm, isapc), and on older types
  only when the CPU model's ``kvmclock`` flag is on (the default under KVM for every
  model, ``host`` included; ``-kvmclock`` or ``-kvm`` turns it off).
* **mc146818rtc on microvm** — ``rtc=auto`` means no RTC under KVM (QEMU's microvm
  creates it only when ``!kvm_enabled()``).

For any other accelerator that does not report a paravirtual clocksource it answers
"kvmclock: absent — <name> does not report a paravirtual clocksource".
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.capabilities import Capability
from accel.machine.device import Device, PropValue
from accel.machine.machine import RunState
from accel.plugin import ClockDeviceChoice, DeviceType, MachineView, PropertySpec, hookimpl

__all__ = ["KvmClock", "KvmPit", "accel_clock_devices", "accel_device_types"]


class KvmClock(Device):
    """kvmclock: the kernel keeps the guest's pvclock page; this models its VM state.

    The guest enables it by writing MSR_KVM_SYSTEM_TIME_NEW; KVM then fills the
    ``pvclock_vcpu_time_info`` structure. On a pause the VM clock read when stopping is
    kept (``clock``, ``clock_valid``) for as long as the machine stays paused; on resume
    it is invalidated (the VM wrote it back with KVM_SET_CLOCK before any vCPU ran).
    """

    PROPERTIES = (
        PropertySpec(
            "x-mach-use-reliable-get-clock",
            bool,
            True,
            "send the 'clock read is reliable' state (off on machine types 2.8 and older)",
        ),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.clock = 0
        self.clock_valid = False
        self.runstate_paused = False
        self.clock_is_reliable = False

    def runstate_changed(self, old: RunState, new: RunState) -> None:
        if new is RunState.PAUSED:
            vm = self.machine.vm
            assert vm is not None
            if not self.clock_valid:
                data = vm.get_clock()  # the value cached by VM.pause(); errors propagate
                self.clock = data.clock
                self.clock_is_reliable = data.reliable
                self.clock_valid = True
            self.runstate_paused = True
        elif new is RunState.RUNNING:
            self.clock_valid = False
            self.runstate_paused = False

    def state(self) -> dict[str, object]:
        return {
            "clock": self.clock,
            "clock_valid": self.clock_valid,
            "runstate_paused": self.runstate_paused,
            "clock_is_reliable": self.clock_is_reliable,
            "x-mach-use-reliable-get-clock": self.props["x-mach-use-reliable-get-clock"],
        }


class KvmPit(Device):
    """The in-kernel i8254 (KVM_CREATE_PIT2): ports 0x40-0x43 never leave the kernel."""

    def state(self) -> dict[str, object]:
        return {"where": "kernel"}


@hookimpl
def accel_device_types() -> list[DeviceType]:
    return [
        DeviceType(
            "kvmclock",
            "KVM paravirtual clock (pvclock): state saved across pause and migration",
            KvmClock,
            KvmClock.PROPERTIES,
            user_creatable=False,
            not_creatable_reason="kvmclock is created by machine initialisation when KVM "
            "reports a paravirtual clocksource (QEMU does not let -device create it either)",
        ),
        DeviceType(
            "kvm-pit",
            "in-kernel i8254 PIT (KVM_CREATE_PIT2)",
            KvmPit,
            (),
            user_creatable=False,
            not_creatable_reason="the in-kernel PIT is created with the VM when the "
            "irqchip is in the kernel (use the machine's kernel-irqchip option)",
        ),
    ]


@hookimpl
def accel_clock_devices(
    accelerator: Accelerator, machine: MachineView
) -> list[ClockDeviceChoice] | None:
    caps = accelerator.capabilities()
    pv = caps.supports(Capability.PV_CLOCKSOURCE)
    if accelerator.name != "kvm":
        if pv:
            return None
        return [
            ClockDeviceChoice(
                "kvmclock",
                False,
                f"{accelerator.name} does not report a paravirtual clocksource",
            )
        ]
    out: list[ClockDeviceChoice] = []
    irqchip = machine.compat.get("machine.kernel-irqchip", "on")
    if irqchip != "on":
        out.append(
            ClockDeviceChoice(
                "kvm-pit",
                False,
                f"kernel-irqchip={irqchip}: the PIT is not in the kernel, isa-pit stays",
            )
        )
    elif not (caps.supports(Capability.IRQCHIP) and caps.supports(Capability.PIT)):
        out.append(
            ClockDeviceChoice(
                "kvm-pit", False, "KVM does not report KVM_CAP_IRQCHIP and KVM_CAP_PIT2"
            )
        )
    else:
        out.append(
            ClockDeviceChoice(
                "kvm-pit",
                True,
                "the irqchip is in the kernel (kernel-irqchip=on), so is the PIT",
                replaces="isa-pit",
            )
        )
    if machine.compat.get("machine.rtc") == "auto":
        out.append(
            ClockDeviceChoice(
                "mc146818rtc",
                False,
                f"{machine.machine_type} has rtc=auto: no RTC under kvm (as QEMU)",
            )
        )
    reliable = machine.compat.get("machine.pv-clock-reliable-get-clock", "on") != "off"
    props: tuple[tuple[str, object], ...] = (("x-mach-use-reliable-get-clock", reliable),)
    cpu_on = machine.cpu.flag("kvm", True) is not False and bool(machine.cpu.flag("kvmclock", True))
    if not pv:
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                False,
                "kvm does not report a paravirtual clocksource (KVM_FEATURE_CLOCKSOURCE)",
            )
        )
    elif machine.compat.get("machine.pv-clock-always") == "on":
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                True,
                f"kvm reports a paravirtual clocksource and {machine.machine_type} creates "
                "kvmclock whenever it does"
                + ("" if cpu_on else " (even with the CPU's kvmclock flag off)"),
                properties=props,
            )
        )
    elif cpu_on:
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                True,
                f"kvm reports a paravirtual clocksource and the CPU model {machine.cpu} "
                "has the kvmclock flag (on by default under kvm)",
                properties=props,
            )
        )
    else:
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                False,
                f"CPU model {machine.cpu} has kvmclock off and {machine.machine_type} "
                "(5.1 or older) creates kvmclock only when the CPU has it",
            )
        )
    return out
