"""A machine: type, CPU, devices, clock devices asked of the accelerator, run state.

Initialisation (:meth:`Machine.init`) follows the order the 2011 kvmclock review
settled on:

1. create the VM (with the accelerator's in-kernel irqchip and PIT when the machine type
   asks for them and the accelerator's capabilities report them), guest RAM, the vCPUs;
2. *after the vCPUs exist*, decide the clock devices: the machine type's platform
   devices, then every plugin's ``accel_clock_devices(accelerator, machine)`` decisions
   (through :meth:`accel.Registry.clock_devices`) — add, replace or remove, each with a
   reason;
3. create every device (platform, clock, user) through the one device registry path,
   realise it in this machine, and build the exit dispatch table;
4. with a kernel boot plan (``boot=``), write it into RAM, load vCPU 0's 32-bit
   hand-over state and fill ``fw-cfg`` for it.

Guest RAM follows QEMU 7.2's pc and q35 layout (:meth:`Machine.ram_regions`). Device
interrupt lines (:meth:`Machine.set_irq`) go to the accelerator's in-kernel irqchip when
the machine has it there.

Every choice here is made from the accelerator's capabilities and its plugin's hook
answers, never from the accelerator's name. :meth:`Machine.describe` runs step 2
without a VM, for ``accel machine show``.

Run state (:class:`RunState`) is ``created`` → ``running`` ⇄ ``paused`` → ``shutdown``
(and ``created`` → ``paused``, the state a restored machine is returned in); notifiers
see every change. Pausing calls :meth:`accel.VM.pause` (the accelerator reads and caches
the VM clock), resuming calls :meth:`accel.VM.resume` (the clock is written back and
vCPUs are told they were paused) before any vCPU runs again. The vCPU runs on the thread
that calls :meth:`Machine.run`; :meth:`Machine.pause` and :meth:`Machine.stop` may come
from any other thread (:mod:`threading` events, and :data:`KICK_SIGNAL` to interrupt a
blocking run call).

Snapshots: :mod:`accel.snapshot` is the layer above this one and builds on it; the
machine layer never imports it. A machine is saved with
:func:`accel.snapshot.machine.save_machine` and restored with
:func:`accel.snapshot.machine.restore_machine` (both also exported by
:mod:`accel.snapshot`); what they need of a machine (its plan, devices, run state,
:attr:`Machine.ended`, :meth:`Machine.pause`) is public here.

Machine types (:mod:`accel.machine.types`), CPU models (:mod:`accel.machine.cpu`) and
the devices (:mod:`accel.machine.device`, :mod:`accel.machine.devices`) have modules of
their own; this one uses them.

Example::

    with Machine(acc, "q35", cpu="max", devices=["isa-debug-exit"]) as m:
        m.vm.write_memory(0x1000, program)          # then point vCPU 0 at it
        result = m.run(timeout=5)                   # a RunResult: status, kind, message
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from ..accelerator import (
    VM,
    Accelerator,
    CpuSpec,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    InterruptWindowExit,
    IoDirection,
    MmioExit,
    PortIoExit,
    Registers,
    ShutdownExit,
    Vcpu,
    VmOptions,
    real_mode_sregs,
)
from ..capabilities import Capability, Support
from ..errors import (
    AccelError,
    ConfigError,
    HandleClosedError,
    InvalidArgumentError,
    UnknownAcceleratorError,
    VcpuStateError,
)
from ..registry import Registry, default_registry

# resolve_cpu, RunState and the machine-type names are defined in cpu, runstate and types;
# the ``as`` imports keep them importable from here, where they were defined before.
from .cpu import resolve_cpu as resolve_cpu
from .device import DeviceRegistry, parse_device_spec
from .devices.base import Device, PioRead, PioWrite
from .devices.fw_cfg import FwCfgDevice
from .devices.intc import ApicDevice, IoApicDevice, PicDevice
from .fw_cfg import FwCfg
from .interrupts import InterruptRouter, LocalApic, MpState
from .multiboot import (
    BootPlan,
    MachineFamily,
    flat32_registers,
    flat32_sregs,
    legacy_firmware,
    ram_layout,
)
from .runstate import RunState as RunState
from .types import MACHINE_TYPES as MACHINE_TYPES
from .types import MachineType as MachineType
from .types import PlatformDevice as PlatformDevice
from .types import machine_types as machine_types
from .types import parse_machine_spec as parse_machine_spec
from .types import resolve_machine_type as resolve_machine_type

if TYPE_CHECKING:
    from ..plugin import AcceleratorInfo

__all__ = [
    "GUEST_ENDS",
    "KICK_SIGNAL",
    "DeviceDecision",
    "Machine",
    "MachinePlan",
    "RunResult",
]

# --------------------------------------------------------------------------- the machine

_PLATFORM_WINDOW = (0xFEC00000, 0xFF000000)


#: Sent to the thread running a vCPU after :meth:`accel.Vcpu.kick`, so a guest that never
#: exits on its own (``jmp $``) still leaves a blocking run call (QEMU's SIG_IPI).
KICK_SIGNAL: int = signal.SIGUSR1


def _install_kick_handler() -> bool:
    """A no-op handler for :data:`KICK_SIGNAL` (only the main thread may install it)."""
    current = signal.getsignal(KICK_SIGNAL)
    if current not in (signal.SIG_DFL, None):
        return current is not signal.SIG_IGN
    try:
        signal.signal(KICK_SIGNAL, _on_kick_signal)
    except ValueError:  # not the main thread
        return False
    return True


def _on_kick_signal(signum: int, frame: object) -> None:
    """Nothing to do: the signal only interrupts the vCPU thread's blocking call."""


class _DeviceLock:
    """A machine's device lock as a context manager that marks it held on this thread
    (so :meth:`Machine.set_irq` knows it may drive the interrupt controllers directly)."""

    __slots__ = ("_lock", "_tls")

    def __init__(self, lock: threading.Lock, tls: threading.local) -> None:
        self._lock = lock
        self._tls = tls

    def __enter__(self) -> None:
        self._lock.acquire()
        self._tls.locked = True

    def __exit__(self, *exc: object) -> None:
        self._tls.locked = False
        self._lock.release()


class _Timer(threading.Timer):
    """A daemon :class:`threading.Timer` that starts when made: ``fn(*args)`` after
    ``seconds`` unless :meth:`cancel` comes first."""

    def __init__(
        self, seconds: float, fn: Callable[..., object], args: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(seconds, fn, args)
        self.daemon = True
        self.start()


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceDecision:
    """One device of the machine's tree, present or not, and why."""

    name: str
    present: bool
    reason: str
    origin: str  # "platform", "accelerator", "machine" or "user"
    properties: tuple[tuple[str, object], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "device": self.name,
            "present": self.present,
            "reason": self.reason,
            "origin": self.origin,
            "properties": dict(self.properties),
        }

    def line(self) -> str:
        return f"{self.name}: {'present' if self.present else 'absent'} — {self.reason}"


#: Run ends the guest itself caused: a snapshot taken after one records it (see
#: :attr:`Machine.ended`), since the guest cannot go on past its own end the same way on
#: every accelerator (KVM has completed the exit instruction, TCG would execute it again).
GUEST_ENDS = frozenset({"debug-exit", "halt", "shutdown", "internal-error"})


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: the exit status ``accel run`` returns and what to tell people."""

    status: int
    kind: str  # debug-exit, halt, shutdown, internal-error; timeout, stopped, interrupted
    message: str

    @property
    def guest_ended(self) -> bool:
        """The guest ended the run (exit device, halt, shutdown, internal error), as
        opposed to being stopped from outside (timeout, :meth:`Machine.stop`)."""
        return self.kind in GUEST_ENDS


class _View:
    """What clock-device hooks see of the machine (:class:`accel.MachineView`)."""

    def __init__(
        self,
        mtype: MachineType,
        compat: Mapping[str, str],
        cpu: CpuSpec,
        accelerator: Accelerator,
        vm: VM | None,
    ) -> None:
        self._mtype = mtype
        self._compat = dict(compat)
        self._cpu = cpu
        self._acc = accelerator
        self._vm = vm

    @property
    def machine_type(self) -> str:
        return self._mtype.name

    @property
    def family(self) -> str:
        return self._mtype.family

    @property
    def version(self) -> tuple[int, int] | None:
        return self._mtype.version2

    @property
    def compat(self) -> Mapping[str, str]:
        return self._compat

    @property
    def cpu(self) -> CpuSpec:
        return self._cpu

    @property
    def vm(self) -> VM | None:
        return self._vm

    @property
    def accelerator(self) -> Accelerator:
        return self._acc


@dataclasses.dataclass
class MachinePlan:
    """The device tree a machine gets (or would get), and the settings behind it."""

    machine_type: MachineType
    accelerator: str
    cpu: CpuSpec
    compat: dict[str, str]
    irqchip_in_accelerator: bool
    decisions: list[DeviceDecision] = dataclasses.field(default_factory=list)

    @property
    def devices(self) -> list[DeviceDecision]:
        return [d for d in self.decisions if d.present]

    def device_names(self) -> set[str]:
        return {d.name for d in self.decisions if d.present}

    def to_json(self) -> dict[str, object]:
        return {
            "machine": self.machine_type.name,
            "family": self.machine_type.family,
            "accelerator": self.accelerator,
            "cpu": str(self.cpu),
            "irqchip_in_accelerator": self.irqchip_in_accelerator,
            "compat": self.compat,
            "devices": [d.to_json() for d in self.decisions if d.present],
            "absent": [d.to_json() for d in self.decisions if not d.present],
        }


def _accel_info(registry: Registry, acc: Accelerator) -> AcceleratorInfo | None:
    try:
        return registry.info(acc.name)
    except UnknownAcceleratorError:
        return None


def _plan(
    registry: Registry,
    acc: Accelerator,
    machine: str,
    cpu: str | CpuSpec | None,
    user_devices: Sequence[str],
    vm: VM | None,
    device_registry: DeviceRegistry,
) -> MachinePlan:
    """The machine's settings and device decisions."""
    plan, decisions = _plan_platform(registry, acc, machine, cpu)
    return _plan_devices(plan, decisions, registry, acc, user_devices, vm, device_registry)


def _plan_platform(
    registry: Registry, acc: Accelerator, machine: str, cpu: str | CpuSpec | None
) -> tuple[MachinePlan, dict[str, DeviceDecision]]:
    """The machine's settings and its platform decisions (machine init's first pass,
    before the VM exists); :func:`_plan_devices` completes them."""
    type_name, opts = parse_machine_spec(machine)
    mtype = resolve_machine_type(type_name)
    cpu_spec = resolve_cpu(
        cpu,
        mtype.default_cpu,
        _accel_info(registry, acc),
        accelerators=registry.accelerators().values(),
    )
    compat = dict(mtype.compat)
    for key, value in opts.items():
        compat[f"machine.{key}"] = value
    caps = acc.capabilities()
    irqchip = (
        compat.get("machine.kernel-irqchip") == "on"
        and caps[Capability.IRQCHIP].support is Support.YES
    )
    plan = MachinePlan(mtype, acc.name, cpu_spec, compat, irqchip)

    decisions: dict[str, DeviceDecision] = {}
    for pdev in mtype.devices:
        decisions[pdev.type] = DeviceDecision(
            pdev.type, True, f"platform device of {mtype.name}", "platform", pdev.properties
        )
    for name in ("isa-pit", "hpet", "mc146818rtc"):
        if name not in decisions:
            decisions[name] = DeviceDecision(
                name, False, f"{mtype.name} does not model {name}", "platform"
            )
    decisions["fw-cfg"] = DeviceDecision(
        "fw-cfg",
        False,
        "added for a kernel boot (accel run --kernel), where QEMU 7.2's -kernel test "
        "kernels read it (NB_CPUS, RAM_SIZE, etc/e820)",
        "machine",
    )
    decisions["isa-serial"] = DeviceDecision(
        "isa-serial",
        False,
        "no -serial backend: accel run --kernel adds COM1 (0x3f8, IRQ 4) with -serial stdio",
        "machine",
    )
    if irqchip:
        decisions["irqchip"] = DeviceDecision(
            "irqchip",
            True,
            f"{acc.name} provides an in-kernel irqchip (kernel-irqchip=on)",
            "machine",
        )
    else:
        why = (
            f"kernel-irqchip={compat.get('machine.kernel-irqchip')}"
            if compat.get("machine.kernel-irqchip") != "on"
            else f"{acc.name} does not report an in-kernel irqchip"
        )
        decisions["irqchip"] = DeviceDecision(
            "irqchip", False, f"interrupt controller not in the accelerator ({why})", "machine"
        )
        _plan_user_irqchip(decisions, mtype, caps, why)

    return plan, decisions


#: The userspace interrupt controllers and the machine families QEMU 7.2 gives them.
_USER_INTC: tuple[tuple[str, frozenset[str], str, tuple[tuple[str, object], ...]], ...] = (
    ("isa-i8259", frozenset({"pc", "q35", "isapc", "microvm"}), "the 8259 PIC pair",
     (("iobase", 0x20), ("slave-iobase", 0xA0), ("elcr-iobase", 0x4D0))),
    ("ioapic", frozenset({"pc", "q35", "microvm"}), "the I/O APIC", (("base", 0xFEC00000),)),
    ("apic", frozenset({"pc", "q35", "isapc", "microvm"}), "the vCPUs' local APICs",
     (("base", 0xFEE00000),)),
)  # fmt: skip


def _plan_user_irqchip(
    decisions: dict[str, DeviceDecision], mtype: MachineType, caps: Any, why: str
) -> None:
    """Without the accelerator's irqchip: the userspace PIC pair, IOAPIC and local APICs
    when the accelerator takes injected interrupts (decided by
    :attr:`Capability.INTERRUPT_INJECTION`, never by the accelerator's name)."""
    inject = caps[Capability.INTERRUPT_INJECTION]
    for name, families, what, props in _USER_INTC:
        if inject.support is not Support.YES:
            decisions[name] = DeviceDecision(
                name,
                False,
                f"{what} would be modelled here ({why}), but the accelerator cannot take "
                f"injected interrupts (interrupt-injection: {inject.support.value}"
                + (f", {inject.source}" if inject.source else "")
                + ")",
                "machine",
            )
        elif mtype.family not in families:
            decisions[name] = DeviceDecision(name, False, f"{mtype.name} has no {name}", "machine")
        else:
            decisions[name] = DeviceDecision(
                name,
                True,
                f"{what} modelled in userspace ({why}); interrupts are injected into the "
                "vCPUs (interrupt-injection)",
                "machine",
                props,
            )


def _plan_devices(
    plan: MachinePlan,
    decisions: dict[str, DeviceDecision],
    registry: Registry,
    acc: Accelerator,
    user_devices: Sequence[str],
    vm: VM | None,
    device_registry: DeviceRegistry,
) -> MachinePlan:
    """``plan`` with every plugin's clock-device decisions and the user's devices."""
    view = _View(plan.machine_type, plan.compat, plan.cpu, acc, vm)
    decided: set[str] = set()
    for choice in registry.clock_devices(acc, view):
        if choice.device in decided:
            continue
        decided.add(choice.device)
        if choice.present:
            if choice.replaces and decisions.get(choice.replaces) is not None:
                old = decisions[choice.replaces]
                if old.present:
                    decisions[choice.replaces] = DeviceDecision(
                        old.name,
                        False,
                        f"replaced by {choice.device}: {choice.reason}",
                        "accelerator",
                    )
            decisions[choice.device] = DeviceDecision(
                choice.device, True, choice.reason, "accelerator", tuple(choice.properties)
            )
        else:
            decisions[choice.device] = DeviceDecision(
                choice.device, False, choice.reason, "accelerator"
            )
    plan.decisions = list(decisions.values())
    for spec in user_devices:
        name, props = parse_device_spec(spec)
        _refuse_duplicate(plan, name)
        notes: list[str] = []
        _dtype, values = device_registry.validate(name, props, user=True, notes=notes)
        given = tuple((k, values[k]) for k in props) if notes else tuple(props.items())
        reason = "requested by a device spec" + "".join(f"; {n}" for n in notes)
        plan.decisions.append(DeviceDecision(name, True, reason, "user", given))
    return plan


#: Device types a machine holds at most one of (one chipset timer, clock, controller).
_SINGLE_INSTANCE = frozenset({"hpet", "isa-pit", "mc146818rtc", "irqchip"})


def _refuse_duplicate(plan: MachinePlan, name: str) -> None:
    """A user device that duplicates a single-instance device the machine already has
    is refused by name, before anything is built."""
    if name not in _SINGLE_INSTANCE:
        return
    for d in plan.decisions:
        if d.present and d.name == name:
            kind = {"platform": "machine platform device", "user": "device spec"}.get(
                d.origin, "added for the accelerator"
            )
            raise ConfigError(
                f"{plan.machine_type.name} already has an {name} ({kind}): a second "
                f"--device {name} cannot be added",
                hint=f"remove --device {name}, or choose a machine type without one",
                device=name,
                machine=plan.machine_type.name,
            )


#: Guest RAM granularity and bound a :class:`Machine` accepts for ``ram_size``.
RAM_ALIGN = 4 << 10
MAX_RAM_SIZE = 1 << 40


def _check_size_args(smp: object, ram_size: object) -> None:
    """``smp`` and ``ram_size`` refused before anything is made (the upper bound of
    ``smp`` is the accelerator's, checked by :func:`_check_smp_capability`)."""
    if not isinstance(smp, int) or isinstance(smp, bool) or smp < 1:
        raise InvalidArgumentError(
            f"smp must be an int of at least 1 (the number of vCPUs), not {smp!r}",
            hint="give 1 or more vCPUs, up to the accelerator's max-vcpus capability",
            argument="smp",
            value=smp,
        )
    if (
        not isinstance(ram_size, int)
        or isinstance(ram_size, bool)
        or not 0 < ram_size <= MAX_RAM_SIZE
        or ram_size % RAM_ALIGN
    ):
        raise InvalidArgumentError(
            f"ram_size must be a positive multiple of 4 KiB up to {MAX_RAM_SIZE >> 30} GiB, "
            f"not {ram_size!r}",
            hint="for example 16 << 20 (16 MiB)",
            argument="ram_size",
            value=ram_size,
        )


def _check_smp_capability(acc: Accelerator, smp: int) -> None:
    """``smp`` within the accelerator's max-vcpus capability (when it states a number)."""
    answer = acc.capabilities()[Capability.MAX_VCPUS]
    limit = answer.value
    if answer.support is Support.YES and isinstance(limit, int) and smp > limit:
        raise InvalidArgumentError(
            f"smp is {smp}, outside the valid range 1..{limit} ({acc.name}'s max-vcpus capability)",
            hint=f"give at most {limit} vCPUs",
            argument="smp",
            value=smp,
        )


class Machine:
    """A machine on an open accelerator.

    ``machine`` is a machine spec (``"pc"``, ``"microvm"``, ``"pc,kernel-irqchip=off"``),
    ``cpu`` a CPU spec (``"host,-pv-flag"``; None for the type's default), ``devices``
    user device specs. ``console`` receives debug-console and ``stdio`` serial bytes (a
    binary stream or a callable). ``ram_size`` bytes of RAM are laid out as
    :meth:`ram_regions` says (QEMU 7.2's split at 4 GiB on pc and q35). ``boot`` is a
    Multiboot :class:`~accel.machine.multiboot.BootPlan` (built for the same RAM size
    and machine family) that :meth:`init` applies: the machine gets ``fw-cfg`` filled for
    it, its writes go into RAM and vCPU 0 gets the hand-over state. ``serial`` is a
    ``-serial`` backend (``"stdio"``, ``"file:PATH"``, ``"null"``) for a COM1
    ``isa-serial`` the machine adds. A user device spec of type ``fw-cfg`` or
    ``isa-serial`` takes the place of the machine's. ``fw_cfg`` True adds that ``fw-cfg``
    without a ``boot`` plan (a restored kernel machine). Nothing touches the accelerator
    until :meth:`init`.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        machine: str = "pc",
        cpu: str | CpuSpec | None = None,
        devices: Iterable[str] = (),
        *,
        registry: Registry | None = None,
        ram_size: int = 16 << 20,
        smp: int = 1,
        console: IO[bytes] | Callable[[bytes], Any] | None = None,
        boot: BootPlan | None = None,
        serial: str | None = None,
        fw_cfg: bool = False,
    ) -> None:
        _check_size_args(smp, ram_size)
        self.accelerator = accelerator
        self.registry = registry if registry is not None else default_registry()
        self.device_registry = DeviceRegistry(self.registry)
        self._spec = machine
        self._cpu_arg = cpu
        self._user_devices = list(devices)
        self.ram_size = ram_size
        self.smp = smp
        #: The Multiboot plan :meth:`init` applies (RAM writes, vCPU 0, fw-cfg), or None.
        self.boot = boot
        #: The ``-serial`` backend of the COM1 port :meth:`init` adds, or None for none.
        self.serial = serial
        #: Add ``fw-cfg`` as a kernel boot does, without a plan (a restored kernel machine:
        #: its contents come from the snapshot).
        self.fw_cfg = fw_cfg
        self._irq_to_vm = False
        if console is None:
            self._console: Callable[[bytes], Any] | None = None
        elif callable(console):
            self._console = console
        else:
            self._console = console.write
        self.plan: MachinePlan | None = None
        self.vm: VM | None = None
        self.vcpus: list[Vcpu] = []
        self.devices: list[Device] = []
        self.state = RunState.CREATED
        self._notifiers: list[Callable[[RunState, RunState], None]] = []
        self._pio: dict[int, tuple[PioRead | None, PioWrite | None, Device]] = {}
        self._mmio: list[tuple[int, int, PioRead | None, PioWrite | None, Device]] = []
        self._stop: RunResult | None = None
        self._stop_req: RunResult | None = None
        #: How the guest ended its last run (a :data:`GUEST_ENDS` result), None while it
        #: has not. Carried by snapshots: a machine restored from one taken after the
        #: guest ended has it set, and ``accel run --restore`` reports it without running.
        self.ended: RunResult | None = None
        self._lock = threading.RLock()
        self._t0 = time.monotonic_ns()
        self._paused_at: int | None = None
        self._paused_total = 0
        self._run_thread: int | None = None
        self._pause_req = threading.Event()
        self._paused_ack = threading.Event()
        self._resumed = threading.Event()
        self._can_signal = _install_kick_handler()
        self._io_lock = threading.Lock()
        self._ap_threads: list[threading.Thread] = []
        self._ap_idents: dict[int, int] = {}
        self._ap_gate = threading.Event()
        self._ap_exit = threading.Event()
        self._ap_cond = threading.Condition()
        self._ap_parked = 0
        #: The userspace interrupt router (None when the interrupt controller is in the
        #: accelerator, or there is none): see :mod:`accel.machine.interrupts`.
        self.interrupts: InterruptRouter | None = None
        self._apic_device: ApicDevice | None = None
        self._tls = threading.local()
        self._dlock = _DeviceLock(self._io_lock, self._tls)
        self._window_asked: list[bool] = []
        self._cpu_events: list[threading.Event] = []
        self._cpu_running: list[bool] = []
        self._irq_queue: list[tuple[int, bool]] = []
        self._irq_queue_lock = threading.Lock()

    # ------------------------------------------------------------------ planning

    @classmethod
    def describe(
        cls,
        accelerator: Accelerator,
        machine: str = "pc",
        cpu: str | CpuSpec | None = None,
        devices: Iterable[str] = (),
        *,
        registry: Registry | None = None,
    ) -> MachinePlan:
        """The device tree :meth:`init` would build, with reasons, without a VM."""
        reg = registry if registry is not None else default_registry()
        return _plan(reg, accelerator, machine, cpu, list(devices), None, DeviceRegistry(reg))

    # ------------------------------------------------------------------ init

    def init(self) -> Machine:
        """Create the VM, RAM and vCPUs, then decide and realise the devices."""
        if self.vm is not None:
            return self
        acc = self.accelerator
        _check_smp_capability(acc, self.smp)
        plan, decisions = _plan_platform(self.registry, acc, self._spec, self._cpu_arg)
        irqchip = plan.irqchip_in_accelerator
        pit = irqchip and acc.capabilities()[Capability.PIT].support is Support.YES
        self._kernel_decisions(decisions)
        # QEMU 7.2's -smp N: N cores in one socket, but N sockets on types before 6.2.
        version = plan.machine_type.version2
        cores = self.smp if version is None or version >= (6, 2) else 1
        self.vm = vm = acc.create_vm(VmOptions(irqchip=irqchip, pit=pit, cpu_cores=cores))
        try:
            # The accelerator's interrupt controller takes device interrupt lines only
            # when the machine put it there and the VM reports it.
            self._irq_to_vm = irqchip and vm.check(Capability.IRQCHIP).support is Support.YES
            for base, size in self.ram_regions(plan.machine_type):
                vm.add_memory(base, size)
            for i in range(self.smp):
                self.vcpus.append(vm.create_vcpu(i, cpu=plan.cpu))
            # vCPUs exist: now ask the accelerator's plugin for the clock devices.
            self.plan = _plan_devices(
                plan,
                decisions,
                self.registry,
                acc,
                self._user_devices,
                vm,
                self.device_registry,
            )
            for d in self.plan.decisions:
                if not d.present:
                    continue
                dev = self.device_registry.create(
                    d.name, dict(d.properties), user=d.origin == "user"
                )
                dev.id = d.name
                dev.realize(self)
                self.devices.append(dev)
            self._wire_interrupts()
            self._declare_platform_window()
            if self.boot is not None:
                self._apply_boot(self.boot)
        except BaseException:
            self.close()
            raise
        return self

    def _wire_interrupts(self) -> None:
        """Connect the userspace interrupt controllers' models through a router."""
        pic = next((d for d in self.devices if isinstance(d, PicDevice)), None)
        ioapic = next((d for d in self.devices if isinstance(d, IoApicDevice)), None)
        apic = next((d for d in self.devices if isinstance(d, ApicDevice)), None)
        if apic is None:
            return
        router = InterruptRouter(self._io_lock, self.guest_ns, self._wake_cpu)
        router.attach(
            pic.model if pic is not None else None,
            ioapic.model if ioapic is not None else None,
            apic.lapics,
        )
        apic.current_cpu = self._current_cpu
        if self.vm is not None and self.vm.check(Capability.VCPU_STATE).support is Support.YES:
            apic.apic_base = self._apic_base
        apic.get_cr8 = self._get_cr8
        apic.set_cr8 = self._set_cr8
        self._apic_device = apic
        self._cpu_events = [threading.Event() for _ in self.vcpus]
        self._cpu_running = [False] * len(self.vcpus)
        self._window_asked = [False] * len(self.vcpus)
        self.interrupts = router

    def _device_lock(self) -> _DeviceLock:
        """The machine's device lock (QEMU's big lock), marked held on this thread."""
        return self._dlock

    def _apic_base(self, index: int) -> int | None:
        """IA32_APIC_BASE of vCPU ``index`` (read on that vCPU's own thread, during its
        exit); None where the vCPU does not give it."""
        try:
            return self.vcpus[index].get_msrs((0x1B,)).get(0x1B)
        except AccelError:
            return None

    def _get_cr8(self, index: int) -> int:
        return self.vcpus[index].get_sregs().cr8

    def _set_cr8(self, index: int, value: int) -> None:
        cpu = self.vcpus[index]
        sregs = cpu.get_sregs()
        if sregs.cr8 != value:
            sregs.cr8 = value
            cpu.set_sregs(sregs)

    def _current_cpu(self) -> int:
        return int(getattr(self._tls, "cpu", 0))

    def _wake_cpu(self, index: int) -> None:
        """The router's wake-up: vCPU ``index`` leaves a HLT / SIPI wait, or its run call
        (so it injects what is pending)."""
        if index >= len(self._cpu_events):
            return
        self._cpu_events[index].set()
        if self._cpu_running[index]:
            self._kick_cpu(index)

    def _kick_cpu(self, index: int) -> None:
        if index == 0:
            self.kick()
            return
        self.vcpus[index].kick()
        ident = self._ap_idents.get(index)
        if ident is not None and self._can_signal and ident != threading.get_ident():
            signal.pthread_kill(ident, KICK_SIGNAL)

    def _drain_irqs(self) -> None:
        """Apply line changes queued by threads that do not hold the device lock (the
        serial input reader); the caller holds it."""
        with self._irq_queue_lock:
            queued, self._irq_queue = self._irq_queue, []
        router = self.interrupts
        assert router is not None
        for irq, level in queued:
            router.set_irq(irq, level)

    def _lapic(self, cpu: Vcpu) -> LocalApic:
        assert self.interrupts is not None
        return self.interrupts.lapics[cpu.index]

    def _user_irq_wait(self, cpu: Vcpu, halted: bool, go_on: Callable[[], bool]) -> None:
        """Hold ``cpu`` while its local APIC waits for INIT/SIPI, or (``halted``) in HLT
        until an interrupt (or NMI, INIT, SIPI) is pending for it, or ``go_on()`` says
        the vCPU must leave the wait (pause, stop, end of the run)."""
        router = self.interrupts
        assert router is not None
        lapic = router.lapics[cpu.index]
        event = self._cpu_events[cpu.index]
        while True:
            with self._device_lock():
                self._drain_irqs()
                event.clear()
                if lapic.mp_state is MpState.WAIT_SIPI:
                    if lapic.sipi_vector is not None:
                        self._start_at_sipi(cpu, lapic)
                        return
                elif not halted or router.pending(cpu.index) or lapic.nmi_pending:
                    return
            if go_on():
                return
            event.wait(0.05)

    def _halt_forever(self, cpu: Vcpu) -> bool:
        """A HLT nothing can end: interrupts disabled on the only vCPU with no NMI
        pending (only another processor's NMI, INIT or SIPI IPI could wake it). The run
        then ends as "guest halted with interrupts disabled", as without an interrupt
        controller."""
        if len(self.vcpus) > 1 or cpu.get_regs().rflags & 0x200:
            return False
        with self._device_lock():
            return not self._lapic(cpu).nmi_pending

    def _start_at_sipi(self, cpu: Vcpu, lapic: LocalApic) -> None:
        """A SIPI with vector V: the vCPU starts in real mode at V << 8 : 0."""
        vector = lapic.sipi_vector
        assert vector is not None
        lapic.sipi_vector = None
        lapic.mp_state = MpState.RUNNING
        sregs = real_mode_sregs(cpu.get_sregs(), cs=vector << 8, ds=0)
        sregs.cr0 = 0x60000010
        sregs.cr4 = 0
        sregs.efer = 0
        cpu.set_sregs(sregs)
        cpu.set_regs(Registers(rip=0, rflags=0x2))

    def _user_irq_inject(self, cpu: Vcpu) -> bool:
        """Before ``cpu`` runs (device lock held): an NMI, then the pending external
        interrupt if the vCPU can take it now, else an interrupt window request. Marks
        the vCPU running (a wake-up from now on kicks it). False when the vCPU is not
        to run (waiting for SIPI)."""
        router = self.interrupts
        assert router is not None
        if self._irq_queue:
            self._drain_irqs()
        index = cpu.index
        lapic = router.lapics[index]
        if lapic.mp_state is MpState.WAIT_SIPI:
            return False
        if lapic.nmi_pending:
            lapic.nmi_pending = False
            cpu.inject_nmi()
        if lapic.irr and self._apic_device is not None:
            self._apic_device.sync_tpr(cpu.index)  # CR8 writes change what may go in
        want = False
        if router.pending(index):
            if cpu.interrupt_ready():
                vector = router.acknowledge(index)
                if vector is not None:
                    cpu.inject_interrupt(vector)
                want = router.pending(index)
            else:
                want = True
        if want or self._window_asked[index]:
            cpu.request_interrupt_window(want)
            self._window_asked[index] = want
        self._cpu_running[index] = True
        return True

    def ram_regions(self, mtype: MachineType | None = None) -> list[tuple[int, int]]:
        """Guest RAM as ``[(base, size), ...]``: QEMU 7.2's split for pc and q35 (the part
        below the type's 4 GiB limit at 0, the rest at 4 GiB; :func:`ram_layout`), one
        region at 0 for the other types."""
        if mtype is None:
            mtype = resolve_machine_type(parse_machine_spec(self._spec)[0])
        try:
            family = MachineFamily.of(mtype.family)
        except ConfigError:
            return [(0, self.ram_size)]
        return ram_layout(family, self.ram_size)

    def _kernel_decisions(self, decisions: dict[str, DeviceDecision]) -> None:
        """fw-cfg for a kernel boot, COM1 for a ``-serial`` backend (unless the user's
        device specs add their own)."""
        user_types = {parse_device_spec(spec)[0] for spec in self._user_devices}
        if (self.boot is not None or self.fw_cfg) and "fw-cfg" not in user_types:
            decisions["fw-cfg"] = DeviceDecision(
                "fw-cfg",
                True,
                "a kernel boot: the kernel reads fw_cfg (NB_CPUS, RAM_SIZE, etc/e820) at "
                "0x510, as under QEMU 7.2's -kernel",
                "machine",
            )
        if self.serial is not None and "isa-serial" not in user_types:
            decisions["isa-serial"] = DeviceDecision(
                "isa-serial",
                True,
                f"COM1 for -serial {self.serial}",
                "machine",
                (("chardev", self.serial),),
            )

    def _run_firmware(self, cpu: Vcpu) -> None:
        """Leave the PICs, the PIT and the IVT as the firmware would
        (:func:`~accel.machine.multiboot.legacy_firmware`): write its pieces, run its
        real-mode set-up on ``cpu`` until it writes its done port, or to the HLT after it
        where the irqchip is not in the accelerator (its port accesses go to the
        machine's devices where the accelerator does not handle them itself)."""
        vm = self.vm
        assert vm is not None
        fw = legacy_firmware()
        for address, data in fw.writes:
            vm.write_memory(address, data)
        saved_sregs = cpu.get_sregs()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=fw.cs, ds=0))
        cpu.set_regs(Registers(rip=fw.ip, rflags=0x2))
        done = False
        for _ in range(64):
            ex = cpu.run()
            if isinstance(ex, PortIoExit):
                if ex.port != fw.done_port:
                    self._port_io(ex)
                elif self._irq_to_vm:
                    # The routine's HLT would wait in the accelerator's irqchip: stop
                    # at the done port (the OUT needs nothing more from the machine).
                    done = True
                else:
                    continue  # on to its HLT, an exit that leaves nothing pending
            elif isinstance(ex, HaltExit):
                done = True
            elif not isinstance(ex, MmioExit | InterruptedExit):
                break
            if done:
                cpu.set_sregs(saved_sregs)
                return
        raise ConfigError(
            f"{self.accelerator.name} did not run the firmware set-up to its end",
            hint="the accelerator must run real-mode code with port I/O",
        )

    def _apply_boot(self, plan: BootPlan) -> None:
        """Write the plan into RAM, load vCPU 0's hand-over state, fill fw-cfg."""
        vm = self.vm
        assert vm is not None
        regions = tuple(self.ram_regions())
        if tuple(plan.ram) != regions:
            raise ConfigError(
                f"the boot plan's RAM {list(plan.ram)} is not this machine's {list(regions)}",
                hint="build the plan with the machine's ram_size and machine family",
            )
        cpu = self.vcpus[0]
        self._run_firmware(cpu)
        for address, data in plan.writes:
            vm.write_memory(address, data)
        cpu.set_sregs(flat32_sregs(cpu.get_sregs(), gdt_base=plan.gdt_address))
        cpu.set_regs(flat32_registers(plan))
        for dev in self.devices:
            if isinstance(dev, FwCfgDevice):
                dev.load(FwCfg.for_multiboot(plan, cpus=self.smp, memory=dev.memory))

    def _declare_platform_window(self) -> None:
        """Declare the chipset window no device claimed as MMIO: reads there give 0.

        A PC's 0xFEC00000..0xFF000000 holds the IOAPIC, HPET and local APICs; a guest
        probing a device this machine lacks (the HPET of microvm) reads 0 as on QEMU's
        unassigned memory, on every accelerator (software ones only see declared ranges).
        """
        assert self.vm is not None
        start, end = _PLATFORM_WINDOW
        taken = sorted((b, b + s) for b, s, *_ in self._mmio if b < end and b + s > start)
        pos = start
        for b, e in [*taken, (end, end)]:
            if b > pos:
                self.vm.add_mmio(pos, b - pos)
            pos = max(pos, e)

    def device(self, name: str) -> Device:
        for dev in self.devices:
            if dev.type_name == name:
                return dev
        raise ConfigError(f"machine has no device {name!r}", device=name)

    # ------------------------------------------------------------------ device services

    def register_pio(
        self,
        base: int,
        count: int,
        read: PioRead | None,
        write: PioWrite | None,
        device: Device,
    ) -> None:
        """Route ports ``base .. base+count-1`` to ``device``'s handlers."""
        for port in range(base, base + count):
            if port in self._pio:
                other = self._pio[port][2]
                raise ConfigError(
                    f"device {device.type_name!r}: port {port:#x} is already used by "
                    f"{other.type_name!r}",
                    device=device.type_name,
                    property="iobase",
                )
            self._pio[port] = (read, write, device)

    def register_mmio(
        self,
        base: int,
        size: int,
        read: PioRead | None,
        write: PioWrite | None,
        device: Device,
    ) -> None:
        """Route guest-physical ``base .. base+size-1`` to ``device`` (offsets, sizes)."""
        assert self.vm is not None
        self.vm.add_mmio(base, size)
        self._mmio.append((base, size, read, write, device))

    def console_write(self, data: bytes) -> None:
        if self._console is not None:
            self._console(data)

    def set_irq(self, irq: int, level: bool) -> None:
        """Drive ISA line ``irq``: :meth:`accel.VM.set_irq_line` when the interrupt
        controller is in the accelerator (:attr:`MachinePlan.irqchip_in_accelerator` and
        the VM reports :attr:`~accel.Capability.IRQCHIP`); otherwise there is no
        interrupt controller modelled here and the level goes nowhere."""
        if self._irq_to_vm and self.vm is not None:
            self.vm.set_irq_line(irq, level)
        elif self.interrupts is not None:
            if getattr(self._tls, "locked", False):
                self.interrupts.set_irq(irq, level)
            elif self._io_lock.acquire(blocking=False):
                try:
                    self.interrupts.set_irq(irq, level)
                finally:
                    self._io_lock.release()
            else:  # a thread without the device lock (serial input): the vCPUs apply it
                with self._irq_queue_lock:
                    self._irq_queue.append((irq, level))
                for i in range(len(self._cpu_events)):
                    self._wake_cpu(i)

    def irq_routed(self) -> bool:
        """Interrupt lines reach an interrupt controller (the accelerator's, or the
        userspace one): a device need not drive a line nothing listens to."""
        return self._irq_to_vm or self.interrupts is not None

    def request_stop(self, status: int, message: str, *, kind: str) -> None:
        """End the current :meth:`run` after this exit with ``status``."""
        if self._stop is None:
            self._stop = RunResult(status, kind, message)

    def guest_ns(self) -> int:
        """Guest time in ns since the machine was created; stands still while paused."""
        now = self._paused_at if self._paused_at is not None else time.monotonic_ns()
        return now - self._t0 - self._paused_total

    # ------------------------------------------------------------------ run state

    def add_runstate_notifier(self, fn: Callable[[RunState, RunState], None]) -> None:
        self._notifiers.append(fn)

    def remove_runstate_notifier(self, fn: Callable[[RunState, RunState], None]) -> None:
        self._notifiers.remove(fn)

    def _set_state(self, new: RunState) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        for dev in self.devices:
            dev.runstate_changed(old, new)
        for fn in list(self._notifiers):
            fn(old, new)

    def pause(self) -> None:
        """Enter the paused state: the VM caches its clock; notifiers see ``paused``.

        From another thread while :meth:`run` is running, the vCPU is kicked out first
        and this returns once it stopped. An initialised machine that has not run yet
        (``created``) is paused directly — what a restore does before it applies device
        state, so devices see the restored clock. :meth:`resume` leaves the state.
        Paused or shut down: nothing to do.
        """
        with self._lock:
            if self.state is RunState.CREATED:
                if self.vm is None:
                    raise VcpuStateError(
                        "machine is not initialised", hint="call init() before pause()"
                    )
                self._do_pause()
                return
            if self.state is not RunState.RUNNING:
                return
            if self._run_thread is not None and self._run_thread != threading.get_ident():
                self._paused_ack.clear()
                self._pause_req.set()
                self.kick()
            else:
                self._do_pause()
                return
        self._paused_ack.wait()
        with self._lock:
            # The run loop may have ended on its own (halt, exit device, stop request)
            # before it saw the request: it then wakes us from its ``finally`` without
            # pausing, and the pause is ours to make.
            if self.state is RunState.RUNNING and self._run_thread is None:
                self._pause_req.clear()
                self._do_pause()

    def _do_pause(self) -> None:
        assert self.vm is not None
        self.vm.pause()
        self._paused_at = time.monotonic_ns()
        self._set_state(RunState.PAUSED)

    def resume(self) -> None:
        """Leave the paused state: the VM writes the clock back before any vCPU runs;
        a :meth:`run` waiting in the pause goes on (else call :meth:`run`)."""
        with self._lock:
            if self.state is not RunState.PAUSED:
                return
            assert self.vm is not None
            self.vm.resume()
            if self._paused_at is not None:
                self._paused_total += time.monotonic_ns() - self._paused_at
                self._paused_at = None
            self._set_state(RunState.RUNNING)
            self._resumed.set()

    def shutdown(self) -> None:
        self._set_state(RunState.SHUTDOWN)

    def stop(self, status: int, message: str, *, kind: str = "stopped") -> None:
        """End the current (or next) :meth:`run` at an instruction boundary, leaving the
        machine paused; :meth:`run` returns ``RunResult(status, kind, message)``.

        Safe from another thread, a timer or a signal handler (it only sets flags and
        kicks the vCPU); the first request wins. ``accel run`` uses it for
        ``--stop-after``, ``--timeout`` and SIGINT, then saves the paused machine.
        """
        if self._stop_req is None:
            self._stop_req = RunResult(status, kind, message)
        self._pause_req.set()
        self.kick()

    # ------------------------------------------------------------------ run loop

    def run(self, timeout: float | None = None) -> RunResult:
        """Run the guest until it ends the run (or ``timeout`` seconds pass).

        vCPU 0 runs on the calling thread. With the interrupt controller in the
        accelerator every other vCPU runs on a thread of its own (started here, ended
        before this returns), waiting in its local APIC for INIT/SIPI; an exit device,
        shutdown or internal error on any vCPU ends the run for all, and a pause or stop
        holds them all. Without one, vCPUs other than 0 stay in their reset state.
        """
        if self.vm is None:
            self.init()
        if self.state is RunState.SHUTDOWN:
            raise VcpuStateError("machine is shut down")
        vcpu = self.vcpus[0]
        self._stop = None
        timer = _Timer(timeout, self._on_timeout, (timeout,)) if timeout is not None else None
        self._run_thread = threading.get_ident()
        if self.state is RunState.CREATED:
            self._set_state(RunState.RUNNING)
        self.ended = None
        # The application processors run on threads of their own while this run lasts,
        # when they can wait for INIT/SIPI in the accelerator's local APICs; device
        # handlers then run under one lock (QEMU's big lock).
        router = self.interrupts
        started = self._start_aps()
        lock = self._device_lock if started or router is not None else None
        if router is not None:
            self._tls.cpu = 0
            router.start()

        def stopping() -> bool:
            return self._pause_req.is_set() or self._stop is not None

        after_io = False
        io_rip: int | None = None  # where a possibly unfinished port/MMIO instruction is
        retries = 0
        try:
            while True:
                ex: Exit
                t: type[Exit]
                if router is not None:
                    with self._device_lock():
                        runnable = self._user_irq_inject(vcpu)
                    if not runnable:  # INIT: wait for the SIPI
                        self._user_irq_wait(vcpu, False, stopping)
                        if self._pause_req.is_set():
                            ex = InterruptedExit()
                            t = InterruptedExit
                        else:
                            continue
                    else:
                        ex = vcpu.run()
                        self._cpu_running[0] = False
                        t = type(ex)
                        if t is HaltExit and not self._halt_forever(vcpu):
                            # HLT waits in the userspace local APIC for an interrupt
                            self._user_irq_wait(vcpu, True, stopping)
                            t = InterruptedExit if stopping() else InterruptWindowExit
                else:
                    ex = vcpu.run()
                    t = type(ex)
                if t is PortIoExit:
                    assert isinstance(ex, PortIoExit)
                    if lock is None:
                        self._port_io(ex)
                    else:
                        with lock():
                            self._port_io(ex)
                elif t is MmioExit:
                    assert isinstance(ex, MmioExit)
                    if lock is None:
                        self._mmio_access(ex)
                    else:
                        with lock():
                            self._mmio_access(ex)
                elif t is HaltExit:
                    if vcpu.get_regs().rflags & 0x200:
                        self._stop = RunResult(
                            0,
                            "halt",
                            "guest halted with interrupts enabled, and nothing modelled here "
                            "can wake it: run ended",
                        )
                    else:
                        self._stop = RunResult(0, "halt", "guest halted with interrupts disabled")
                elif t is ShutdownExit:
                    assert isinstance(ex, ShutdownExit)
                    self._stop = RunResult(0, "shutdown", f"guest shut down ({ex.reason})")
                    self._set_state(RunState.SHUTDOWN)
                elif t is InternalErrorExit:
                    assert isinstance(ex, InternalErrorExit)
                    regs = vcpu.get_regs()
                    self._stop = RunResult(
                        125,
                        "internal-error",
                        f"{self.accelerator.name} could not run the guest: {ex.kind}"
                        f" (code {ex.code:#x}) {ex.detail} at rip={regs.rip:#x}".rstrip(),
                    )
                elif t is InterruptedExit and self._pause_req.is_set():
                    # After a port/MMIO exit the accelerator may still hold that
                    # instruction half done (TCG parks inside it, RIP on it; a KVM IN
                    # completes on the next KVM_RUN), and a kick landing before the next
                    # run returns at once. Run on, kicking again shortly, until the vCPU
                    # has left the RIP of the last I/O exit (bounded: a guest may loop on
                    # one OUT), so the pause lands on an instruction boundary.
                    if after_io and io_rip is None:  # asked while the exit was handled
                        io_rip = vcpu.get_regs().rip
                    if io_rip is not None and retries < 50 and vcpu.get_regs().rip == io_rip:
                        retries += 1
                        after_io = False
                        _Timer(0.002, self.kick)
                        continue
                    io_rip, retries = None, 0
                    self._pause_req.clear()
                    self._resumed.clear()
                    self._park_aps()
                    self._do_pause()
                    stop, self._stop_req = self._stop_req, None
                    if stop is not None:
                        if self._stop is None:
                            self._stop = stop
                        self._paused_ack.set()
                    else:
                        self._paused_ack.set()
                        self._resumed.wait()
                        self._ap_gate.set()
                after_io = t is PortIoExit or t is MmioExit
                if after_io and self._pause_req.is_set():
                    io_rip = vcpu.get_regs().rip
                if self._stop is not None:
                    if self._stop.guest_ended:
                        self.ended = self._stop
                    return self._stop
        finally:
            self._stop_aps()
            if router is not None:
                router.stop()
            self._run_thread = None
            self._paused_ack.set()  # a pause() waiting from another thread must not hang
            if timer is not None:
                timer.cancel()

    def _port_io(self, ex: PortIoExit) -> None:
        """Hand a port access to the device registered for the port (all ones without)."""
        h = self._pio.get(ex.port)
        size = ex.size
        if ex.direction is IoDirection.OUT:
            if h is not None and h[1] is not None:
                if ex.count == 1:
                    h[1](ex.port, size, int.from_bytes(ex.data, "little"))
                else:
                    data = bytes(ex.data)
                    for i in range(ex.count):
                        chunk = data[i * size : (i + 1) * size]
                        h[1](ex.port, size, int.from_bytes(chunk, "little"))
        elif h is not None and h[0] is not None:
            mask = (1 << (8 * size)) - 1
            if ex.count == 1:
                ex.data[:] = (h[0](ex.port, size) & mask).to_bytes(size, "little")
            else:
                ex.data[:] = b"".join(
                    (h[0](ex.port, size) & mask).to_bytes(size, "little") for _ in range(ex.count)
                )
        else:
            ex.data[:] = b"\xff" * len(ex.data)

    # ------------------------------------------------------------------ application processors

    def _start_aps(self) -> bool:
        """Start a thread per application processor (vCPU 1 and up) for this run, when the
        interrupt controller is in the accelerator: its local APICs hold the APs until
        the boot processor sends INIT/SIPI (a HLT waits there too). Without one the APs
        stay in their reset state, as before; so they do when :data:`KICK_SIGNAL` has no
        handler (a machine made outside the main thread), since only the signal gets a
        vCPU out of such a wait. True when threads were started."""
        aps = self.vcpus[1:]
        if not aps or not (self._irq_to_vm or self.interrupts is not None) or not self._can_signal:
            return False
        self._ap_exit.clear()
        self._ap_gate.set()
        self._ap_parked = 0
        for cpu in aps:
            thread = threading.Thread(
                target=self._ap_loop, args=(cpu,), name=f"vcpu {cpu.index}", daemon=True
            )
            self._ap_threads.append(thread)
            thread.start()
        with self._ap_cond:
            self._ap_cond.wait_for(lambda: len(self._ap_idents) == len(aps), timeout=5)
        return True

    def _kick_aps(self) -> None:
        for event in self._cpu_events[1:]:
            event.set()
        for cpu in self.vcpus[1:]:
            cpu.kick()
            ident = self._ap_idents.get(cpu.index)
            if ident is not None and self._can_signal:
                signal.pthread_kill(ident, KICK_SIGNAL)

    def _park_aps(self) -> None:
        """Hold every application processor outside its run call (before a pause)."""
        if not self._ap_threads:
            return
        self._ap_gate.clear()
        live = sum(t.is_alive() for t in self._ap_threads)
        self._kick_aps()
        with self._ap_cond:
            while self._ap_parked < live:
                if not self._ap_cond.wait(0.01):
                    self._kick_aps()  # a kick may land before the AP entered its run
                live = sum(t.is_alive() for t in self._ap_threads)

    def _stop_aps(self) -> None:
        """End the application processors' threads (the run is over) and wait for them."""
        if not self._ap_threads:
            return
        self._ap_exit.set()
        self._ap_gate.set()
        while any(t.is_alive() for t in self._ap_threads):
            self._kick_aps()
            for t in self._ap_threads:
                t.join(0.01)
        self._ap_threads.clear()
        self._ap_idents.clear()

    def _ap_loop(self, cpu: Vcpu) -> None:
        """Run application processor ``cpu`` until the run ends; its exits go to the
        same devices as the boot processor's (under the machine's I/O lock), and an end
        it causes (exit device, shutdown, internal error) ends the run for all."""
        with self._ap_cond:
            self._ap_idents[cpu.index] = threading.get_ident()
            self._ap_cond.notify_all()
        lock = self._device_lock
        router = self.interrupts
        self._tls.cpu = cpu.index

        def leave() -> bool:
            return self._ap_exit.is_set() or not self._ap_gate.is_set() or self._stop is not None

        while not self._ap_exit.is_set():
            if not self._ap_gate.is_set():
                with self._ap_cond:
                    self._ap_parked += 1
                    self._ap_cond.notify_all()
                self._ap_gate.wait()
                with self._ap_cond:
                    self._ap_parked -= 1
                continue
            end: RunResult | None = None
            try:
                if router is not None:
                    with lock():
                        runnable = self._user_irq_inject(cpu)
                    if not runnable:  # waiting for INIT/SIPI in the userspace APIC
                        self._user_irq_wait(cpu, False, leave)
                        continue
                ex = cpu.run()
                if router is not None:
                    self._cpu_running[cpu.index] = False
            except AccelError as exc:
                end = RunResult(125, "internal-error", f"vCPU {cpu.index}: {exc}")
            else:
                t = type(ex)
                if t is PortIoExit:
                    assert isinstance(ex, PortIoExit)
                    with lock():
                        self._port_io(ex)
                elif t is MmioExit:
                    assert isinstance(ex, MmioExit)
                    with lock():
                        self._mmio_access(ex)
                elif t is HaltExit and router is not None:
                    self._user_irq_wait(cpu, True, leave)
                elif t is ShutdownExit:
                    assert isinstance(ex, ShutdownExit)
                    end = RunResult(0, "shutdown", f"guest shut down ({ex.reason}) on vCPU "
                                    f"{cpu.index}")  # fmt: skip
                elif t is InternalErrorExit:
                    assert isinstance(ex, InternalErrorExit)
                    end = RunResult(
                        125, "internal-error",
                        f"{self.accelerator.name} could not run vCPU {cpu.index}: {ex.kind} "
                        f"(code {ex.code:#x}) {ex.detail}".rstrip(),
                    )  # fmt: skip
            if end is not None:
                with lock():
                    if self._stop is None:
                        self._stop = end
            if self._stop is not None:
                self.kick()  # the boot processor's run returns it
                return

    def _on_timeout(self, timeout: float) -> None:
        self.request_stop(
            124, f"timeout: the guest was still running after {timeout:g} s", kind="timeout"
        )
        self.kick()

    def kick(self) -> None:
        """Make the running (or next) vCPU run return: :meth:`accel.Vcpu.kick`, then
        :data:`KICK_SIGNAL` to the thread in :meth:`run` so a blocking call returns."""
        if not self.vcpus:
            return
        if self._cpu_events:
            self._cpu_events[0].set()
        try:
            self.vcpus[0].kick()
        except HandleClosedError:  # a late kick (a retry timer) after the machine closed
            return
        thread = self._run_thread
        if thread is not None and self._can_signal and thread != threading.get_ident():
            signal.pthread_kill(thread, KICK_SIGNAL)

    def _mmio_access(self, ex: MmioExit) -> None:
        addr = ex.address
        for base, size, read, write, _dev in self._mmio:
            if base <= addr < base + size:
                if ex.is_write:
                    if write is not None:
                        write(addr - base, ex.size, int.from_bytes(ex.data, "little"))
                elif read is not None:
                    v = read(addr - base, ex.size) & ((1 << (8 * ex.size)) - 1)
                    ex.data[:] = v.to_bytes(ex.size, "little")
                else:
                    ex.data[:] = bytes(ex.size)
                return
        if not ex.is_write:
            ex.data[:] = bytes(ex.size)  # unassigned memory reads as 0, as QEMU

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        for dev in self.devices:
            dev.unrealize()
        self.devices.clear()
        if self.vm is not None:
            self.vm.close()
        self._set_state(RunState.SHUTDOWN)

    def __enter__(self) -> Machine:
        return self.init()

    def __exit__(self, *exc: object) -> None:
        self.close()
