"""KVM's machine devices: the kvmclock and kvm-pit device types, and when a machine gets them.

:func:`clock_devices` (the plugin's ``accel_clock_devices`` hook) decides after the vCPUs
exist, from the accelerator's **capabilities**, never its name, so an accelerator that
wraps KVM (a tracing or fault-injecting wrapper with another name) gets the same devices.
The plugin answers for accelerators that report KVM's paravirtual clocksource
(``Capability.PV_CLOCKSOURCE`` yes: QEMU's ``kvm_has_clocksource()``, KVM_FEATURE_CLOCKSOURCE
in the supported CPUID); for them it decides:

* **kvmclock** — always on machine types that create it unconditionally (QEMU's
  ``kvmclock_create_always``: pc/q35 5.2 and later, microvm, isapc), and on older types
  only when the CPU model's ``kvmclock`` flag is on (the default for every model;
  ``-kvmclock`` or ``-kvm`` turns it off).
* **kvm-pit vs isa-pit** — with an in-kernel irqchip and PIT (``IRQCHIP`` and ``PIT``
  yes) the in-kernel i8254 replaces the userspace one when the irqchip is wholly in the
  kernel (``kernel-irqchip=on``); a split irqchip (``microvm``, ``pc-q35-4.0``) keeps
  ``isa-pit``, as QEMU's ``kvm_pit_in_kernel()``.
* **mc146818rtc on microvm** — ``rtc=auto`` means no RTC (QEMU's microvm creates it only
  when ``!kvm_enabled()``).

An accelerator that answers *no* for the paravirtual clocksource gets only "kvmclock:
absent" with that reason; one that answers *unknown* gets no decision from this plugin
(the plugin that knows its clock, e.g. xen, gives it).

The devices reach their VM only through the machine and the public :class:`accel.VM`
clock API (``get_clock``, and ``pause``/``resume``, which write the clock back).
"""

from __future__ import annotations

from accel.accelerator import Accelerator
from accel.capabilities import Capability, Support
from accel.machine import RunState
from accel.machine.device import Device, PropValue
from accel.plugin import ClockDeviceChoice, DeviceType, MachineView, PropertySpec

__all__ = ["KvmClock", "KvmPit", "clock_devices", "device_types"]


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


def device_types() -> list[DeviceType]:
    """The kvmclock and kvm-pit device types."""
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


def clock_devices(accelerator: Accelerator, machine: MachineView) -> list[ClockDeviceChoice]:
    """kvmclock, kvm-pit and the microvm RTC for ``machine`` on ``accelerator``."""
    caps = accelerator.capabilities()
    name = accelerator.name
    pv = caps.support(Capability.PV_CLOCKSOURCE)
    if pv is Support.UNKNOWN:
        return []
    if pv is Support.NO:
        return [
            ClockDeviceChoice(
                "kvmclock", False, f"{name} does not report a paravirtual clocksource"
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
                "kvm-pit", False, f"{name} does not report an in-kernel irqchip and PIT"
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
                f"{machine.machine_type} has rtc=auto: no RTC under {name} (as QEMU under kvm)",
            )
        )
    reliable = machine.compat.get("machine.pv-clock-reliable-get-clock", "on") != "off"
    props: tuple[tuple[str, object], ...] = (("x-mach-use-reliable-get-clock", reliable),)
    cpu_on = machine.cpu.flag("kvm", True) is not False and bool(machine.cpu.flag("kvmclock", True))
    if machine.compat.get("machine.pv-clock-always") == "on":
        out.append(
            ClockDeviceChoice(
                "kvmclock",
                True,
                f"{name} reports a paravirtual clocksource and {machine.machine_type} creates "
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
                f"{name} reports a paravirtual clocksource and the CPU model {machine.cpu} "
                "has the kvmclock flag (on by default)",
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
