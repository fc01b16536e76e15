"""The KVM vCPU handle (a KVM_CREATE_VCPU file descriptor and its ``kvm_run`` page).

:class:`KvmVcpu`: registers (KVM_GET/SET_REGS, KVM_GET/SET_SREGS), the guest's CPUID
(KVM_SET_CPUID2, filtered by the CPU model's KVM paravirtual flags: :func:`filter_cpuid`,
:func:`cpuid_buffer`), KVM_KVMCLOCK_CTRL, and the KVM_RUN loop mapped onto accel's exits.
Made by :meth:`accel_kvm.KvmVM.create_vcpu`; it sees its VM only through the public
:class:`accel.VM` interface.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from accel.accelerator import (
    VM,
    CpuSpec,
    DescriptorTable,
    Exit,
    HaltExit,
    InternalErrorExit,
    InterruptedExit,
    InterruptWindowExit,
    IoDirection,
    MmioExit,
    PortIoExit,
    Registers,
    Segment,
    ShutdownExit,
    SpecialRegisters,
    Vcpu,
)
from accel.errors import (
    BackendCallError,
    HandleClosedError,
    InvalidArgumentError,
    UnsupportedError,
    VcpuStateError,
)

from . import bindings as b
from .ioctls import (
    ACCEL_NAME,
    KVM_GET_REGS,
    KVM_GET_SREGS,
    KVM_INTERRUPT,
    KVM_KVMCLOCK_CTRL,
    KVM_NMI,
    KVM_RUN,
    KVM_SET_CPUID2,
    KVM_SET_REGS,
    KVM_SET_SREGS,
    KVM_X86_SETUP_MCE,
    Sys,
    call,
    release_mapping,
)
from .state import KvmVcpuState

if TYPE_CHECKING:
    from accel.machine.cpu import FeatureWord, ModelCpuidHost

__all__ = [
    "CPU_FLAGS",
    "KVM_MODEL_DEFAULTS",
    "NAMED_MODEL_PV_DEFAULT",
    "NAMED_PV_BITS",
    "PASSTHROUGH_MODELS",
    "PV_FLAGS",
    "PV_HINTS",
    "KvmVcpu",
    "cpuid_buffer",
    "filter_cpuid",
    "hide_user_apic_features",
    "mce_cap",
    "model_host",
    "pv_features",
    "pv_hints",
]

#: kvm_run.exit_reason as an index into the page's 32-bit view.
_EXIT_REASON_WORD: Final = b.RUN_EXIT_REASON >> 2

#: QEMU's names of the KVM paravirtual CPUID flags (leaf 0x40000001 EAX) -> bits
#: (QEMU 7.2's FEAT_KVM feature word: ``kvmclock`` names both clock-source bits; bit 10,
#: KVM_FEATURE_ASYNC_PF_VMEXIT, has no name in 7.2, which refuses ``kvm-asyncpf-vmexit``).
PV_FLAGS: dict[str, tuple[int, ...]] = {
    "kvmclock": (b.KVM_FEATURE_CLOCKSOURCE, b.KVM_FEATURE_CLOCKSOURCE2),
    "kvm-nopiodelay": (b.KVM_FEATURE_NOP_IO_DELAY,),
    "kvm-mmu": (b.KVM_FEATURE_MMU_OP,),
    "kvm-asyncpf": (b.KVM_FEATURE_ASYNC_PF,),
    "kvm-steal-time": (b.KVM_FEATURE_STEAL_TIME,),
    "kvm-pv-eoi": (b.KVM_FEATURE_PV_EOI,),
    "kvm-pv-unhalt": (b.KVM_FEATURE_PV_UNHALT,),
    "kvm-pv-tlb-flush": (b.KVM_FEATURE_PV_TLB_FLUSH,),
    "kvm-pv-ipi": (b.KVM_FEATURE_PV_SEND_IPI,),
    "kvm-poll-control": (b.KVM_FEATURE_POLL_CONTROL,),
    "kvm-pv-sched-yield": (b.KVM_FEATURE_PV_SCHED_YIELD,),
    "kvm-asyncpf-int": (b.KVM_FEATURE_ASYNC_PF_INT,),
    "kvm-msi-ext-dest-id": (b.KVM_FEATURE_MSI_EXT_DEST_ID,),
    "kvmclock-stable-bit": (b.KVM_FEATURE_CLOCKSOURCE_STABLE_BIT,),
}

#: The paravirtual flags on by default for a named CPU model (QEMU 7.2's
#: ``kvm_default_props``: kvmclock, kvm-nopiodelay, kvm-asyncpf, kvm-steal-time,
#: kvm-pv-eoi, kvmclock-stable-bit), as a leaf 0x40000001 EAX mask: 0x0100007b.
NAMED_MODEL_PV_DEFAULT: Final = sum(
    1 << bit
    for name in (
        "kvmclock",
        "kvm-nopiodelay",
        "kvm-asyncpf",
        "kvm-steal-time",
        "kvm-pv-eoi",
        "kvmclock-stable-bit",
    )
    for bit in PV_FLAGS[name]
)

#: Every bit QEMU 7.2 names (0x0100faff): what ``host``/``max`` pass through, as QEMU's
#: default ``migratable=on`` keeps only named features (``migratable=off``: every bit).
NAMED_PV_BITS: Final = sum(1 << bit for bits in PV_FLAGS.values() for bit in bits)

#: Models that pass the host through: every named paravirtual flag the host supports.
PASSTHROUGH_MODELS: Final = frozenset({"host", "max"})

#: QEMU 7.2's FEAT_KVM_HINT (leaf 0x40000001 EDX): off for every model unless named.
PV_HINTS: dict[str, int] = {"kvm-hint-dedicated": b.KVM_HINTS_REALTIME}

#: Every CPU flag this plugin gives meaning to (declared in its AcceleratorInfo):
#: ``kvm`` (the whole KVM leaf range), the paravirtual flags and hints.
CPU_FLAGS: Final = ("kvm", *PV_FLAGS, *PV_HINTS)


def pv_hints(cpu: CpuSpec) -> int:
    """Leaf 0x40000001 EDX for ``cpu``: the hints switched on, as QEMU 7.2 (which offers
    KVM_HINTS_REALTIME whatever the host says and enables no hint by itself)."""
    return sum(1 << bit for name, bit in PV_HINTS.items() if cpu.flag(name) is True)


def pv_features(supported: int, cpu: CpuSpec) -> int:
    """Leaf 0x40000001 EAX for ``cpu`` given the host's ``supported`` EAX.

    As QEMU 7.2: ``host``/``max`` start from every named flag supported
    (:data:`NAMED_PV_BITS`; with ``migratable=off`` every supported bit), a named model
    from :data:`NAMED_MODEL_PV_DEFAULT` intersected with it; then each flag the spec
    names is switched on (only if the host supports it) or off.
    """
    if cpu.model not in PASSTHROUGH_MODELS:
        eax = supported & NAMED_MODEL_PV_DEFAULT
    elif cpu.flag("migratable", True):
        eax = supported & NAMED_PV_BITS
    else:
        eax = supported
    for name, on in cpu.flags:
        bits = PV_FLAGS.get(name)
        if bits is None:
            continue
        mask = sum(1 << bit for bit in bits)
        eax = (eax | (mask & supported)) if on else (eax & ~mask)
    return eax


def cpuid_buffer(entries: list[b.CpuidEntry]) -> bytearray:
    """``entries`` as the ``struct kvm_cpuid2`` buffer KVM_SET_CPUID2 takes."""
    n = len(entries)
    buf = bytearray(4 * (b.CPUID2_HEADER_WORDS + n * b.CPUID_ENTRY2_WORDS))
    words = memoryview(buf).cast("I")
    words[0] = n
    i = b.CPUID2_HEADER_WORDS
    for entry in entries:
        (
            words[i],
            words[i + 1],
            words[i + 2],
            words[i + 3],
            words[i + 4],
            words[i + 5],
            words[i + 6],
        ) = entry
        i += b.CPUID_ENTRY2_WORDS
    words.release()
    return buf


#: QEMU 7.2's KVM defaults for a named model that are CPUID features (``kvm_default_props``
#: in target/i386/kvm/kvm-cpu.c; its paravirtual ones are :data:`NAMED_MODEL_PV_DEFAULT`).
KVM_MODEL_DEFAULTS: Final[Mapping[str, bool]] = MappingProxyType(
    {"x2apic": True, "acpi": False, "monitor": False, "svm": False}
)


def model_host(entries: tuple[b.CpuidEntry, ...]) -> ModelCpuidHost:
    """What KVM_GET_SUPPORTED_CPUID says, as :func:`accel.machine.cpu.model_cpuid` takes
    it, with QEMU 7.2's fix-ups (``kvm_arch_get_supported_cpuid``): the hypervisor bit is
    always supported, and CPUID[0x80000001].EDX also has the AMD aliases of CPUID[1].EDX;
    the vendor is the host's (QEMU under KVM gives the host's vendor to every model)."""
    # The machine layer's CPU models, imported with the first vCPU (registering the
    # plugin imports nothing of the machine layer).
    from accel.machine.cpu import FEATURE_BITS, ModelCpuidHost

    regs = {(e[0], e[1]): e[3:] for e in entries}
    supported: dict[FeatureWord, int] = {}
    for word in {w for w, _bit in FEATURE_BITS.values()}:
        leaf, sub, reg = word
        values = regs.get((leaf, sub))
        if values is not None:
            supported[word] = values[("eax", "ebx", "ecx", "edx").index(reg)]
    supported[(1, 0, "ecx")] = supported.get((1, 0, "ecx"), 0) | 1 << 31
    aliases = supported.get((1, 0, "edx"), 0) & 0x0183F3FF
    supported[(0x80000001, 0, "edx")] = supported.get((0x80000001, 0, "edx"), 0) | aliases
    leaf0 = regs.get((0, 0), (0, 0, 0, 0))
    vendor = b"".join(v.to_bytes(4, "little") for v in (leaf0[1], leaf0[3], leaf0[2]))
    xsave = {
        sub: (values[0], values[1])
        for (leaf, sub), values in regs.items()
        if leaf == 0xD and sub >= 2 and values[0]
    }
    xd = regs.get((0xD, 0), (0, 0, 0, 0))
    return ModelCpuidHost(
        supported,
        KVM_MODEL_DEFAULTS,
        vendor.rstrip(b"\0").decode("ascii", "replace") or None,
        xsave,
        xd[0] | xd[3] << 32,
    )


#: QEMU 7.2's MCG_CAP for every model: MCG_CTL_P | MCG_SER_P and 10 banks (MCE_CAP_DEF,
#: MCE_BANKS_DEF in target/i386/cpu.h).
MCE_CAP_DEFAULT: Final = (1 << 8) | (1 << 24)
MCE_BANKS_DEFAULT: Final = 10


def mce_cap(cpuid: list[b.CpuidEntry], supported: int) -> int:
    """The MCG_CAP QEMU 7.2 gives a vCPU with ``cpuid`` (KVM_X86_SETUP_MCE's argument), or
    0 for none: only for family 6 or later with both MCE and MCA in CPUID[1].EDX, where
    KVM supports machine checks (``supported``: :meth:`KvmAccelerator.mce_cap_supported`,
    its bank count in bits 0-7); the capability bits KVM lacks are dropped, the banks
    capped at KVM's."""
    leaf1 = next((e for e in cpuid if e[0] == 1 and e[1] == 0), None)
    if leaf1 is None or not supported:
        return 0
    family = (leaf1[3] >> 8) & 0xF
    mce_mca = (1 << 7) | (1 << 14)
    if family < 6 or leaf1[6] & mce_mca != mce_mca:
        return 0
    return (MCE_CAP_DEFAULT & supported) | min(MCE_BANKS_DEFAULT, supported & 0xFF)


def filter_cpuid(
    entries: tuple[b.CpuidEntry, ...], cpu: CpuSpec, *, apic_id: int = 0, cores: int = 1
) -> list[b.CpuidEntry]:
    """The CPUID a vCPU of ``cpu`` gets, as QEMU 7.2 gives it under KVM.

    A named model (:data:`accel.machine.cpu.CPU_DEFINITIONS`: qemu64, kvm64, Haswell,
    ...) gets QEMU's CPUID for it (:func:`~accel.machine.cpu.model_cpuid`) filtered by
    ``entries`` (the supported CPUID), with ``apic_id`` in leaves 1 and 0xB and the
    topology of one socket of ``cores`` cores; ``host``,
    ``max`` and any other model get ``entries`` themselves. Then KVM's paravirtual range:
    ``-kvm`` hides it (0x40000000..0x400000FF); otherwise leaf 0x40000001 EAX is
    :func:`pv_features` of the supported one (a named model gets QEMU's default set,
    ``host``/``max`` everything; a flag switched on that the host does not support stays
    off).
    """
    from accel.machine.cpu import CPU_DEFINITIONS, model_cpuid

    definition = CPU_DEFINITIONS.get(cpu.model)
    base: list[b.CpuidEntry]
    if definition is None:
        base = [e for e in entries if not 0x40000000 <= e[0] <= 0x400000FF]
    else:
        base = model_cpuid(definition, cpu, model_host(entries), apic_id=apic_id, cores=cores)
    if cpu.flag("kvm", True) is False:
        return base
    pv: list[b.CpuidEntry] = []
    for entry in entries:
        if not 0x40000000 <= entry[0] <= 0x400000FF:
            continue
        if entry[0] == b.KVM_CPUID_FEATURES:
            function, index, flags, eax, ebx, ecx, _hints = entry
            entry = (function, index, flags, pv_features(eax, cpu), ebx, ecx, pv_hints(cpu))
        pv.append(entry)
    if definition is None:
        # host/max: the supported CPUID in the kernel's order, the PV leaves in place.
        out = list(entries)
        at = {e[:2]: i for i, e in enumerate(out)}
        for entry in pv:
            out[at[entry[:2]]] = entry
        return out
    return pv + base


#: CPUID.1:ECX bits a local APIC outside KVM cannot serve: x2APIC (bit 21; its MSRs
#: reach userspace only with KVM_CAP_X86_USER_SPACE_MSR, which this plugin does not use)
#: and the TSC-deadline timer (bit 24; IA32_TSC_DEADLINE is KVM's in-kernel LAPIC's).
#: QEMU 7.2 clears both without the in-kernel irqchip (kvm_arch_get_supported_cpuid).
USER_APIC_HIDDEN_ECX: Final = (1 << 21) | (1 << 24)


def hide_user_apic_features(entries: list[b.CpuidEntry]) -> list[b.CpuidEntry]:
    """``entries`` without x2APIC and TSC-deadline (:data:`USER_APIC_HIDDEN_ECX`): the
    CPUID of a vCPU whose local APIC is modelled outside KVM."""
    out: list[b.CpuidEntry] = []
    for entry in entries:
        if entry[0] == 1:
            function, index, flags, eax, ebx, ecx, edx = entry
            entry = (function, index, flags, eax, ebx, ecx & ~USER_APIC_HIDDEN_ECX, edx)
        out.append(entry)
    return out


_EXIT_NAMES = {
    b.KVM_EXIT_UNKNOWN: "unknown",
    b.KVM_EXIT_EXCEPTION: "exception",
    b.KVM_EXIT_HYPERCALL: "hypercall",
    b.KVM_EXIT_DEBUG: "debug",
    b.KVM_EXIT_SYSTEM_EVENT: "system-event",
}


class KvmVcpu(KvmVcpuState, Vcpu):
    """One KVM vCPU: its fd, its mapped ``kvm_run`` page, and :meth:`run`.

    The run loop reads ``kvm_run`` through preallocated memoryview casts and dispatches
    on the exit reason through a table built once; each exit allocates only its Exit
    object. ``exit.data`` of a port-I/O or MMIO exit is a view into the kvm_run page, so
    an IN or MMIO read is answered by writing into it before the next :meth:`run`.
    """

    def __init__(
        self,
        vm: VM,
        index: int,
        fd: int,
        cpu: CpuSpec,
        sys: Sys,
        mmap_size: int,
        cpuid: bytearray,
        on_close: Callable[[KvmVcpu], None] | None = None,
        *,
        in_kernel_irqchip: bool = False,
        mcg_cap: int = 0,
    ) -> None:
        """Take over vCPU ``fd`` (from KVM_CREATE_VCPU): map kvm_run, KVM_SET_CPUID2 with
        ``cpuid`` (a ``struct kvm_cpuid2``, see :func:`cpuid_buffer`), then
        KVM_X86_SETUP_MCE with ``mcg_cap`` where it is not 0 (see :func:`mce_cap`).

        Made by :meth:`KvmVM.create_vcpu`; on failure ``fd`` is closed. ``on_close`` is
        called with the vCPU when it closes (the VM forgets it). ``in_kernel_irqchip``
        says the VM has KVM_CREATE_IRQCHIP's LAPIC (then interrupts are not injected
        from userspace).
        """
        self._in_kernel_irqchip = in_kernel_irqchip
        self.vm = vm
        self._on_close = on_close
        self.index = index
        self.cpu = cpu
        self._sys = sys
        self._ioctl = sys.ioctl
        self._kicked = False
        self._closed = False
        # The last run() ended at HLT with no in-kernel LAPIC: KVM reports such a vCPU
        # RUNNABLE (userspace holds the halt), so get_mp_state says HALTED from this flag.
        self._user_halted = False
        # Interrupt injection without the in-kernel irqchip: an interrupt queued with
        # KVM_INTERRUPT and not yet entered (kvm_run's ready flag is stale until the next
        # KVM_RUN), and whether an interrupt window exit was asked for.
        self._irq_queued = False
        self._window_wanted = False
        try:
            try:
                mm = sys.mmap(fd, mmap_size)
            except OSError as exc:
                raise BackendCallError("mmap", exc.errno, accelerator=ACCEL_NAME) from exc
            try:
                call(sys, "KVM_SET_CPUID2", fd, KVM_SET_CPUID2, cpuid)
                if mcg_cap:
                    arg = bytearray(mcg_cap.to_bytes(8, "little"))
                    call(sys, "KVM_X86_SETUP_MCE", fd, KVM_X86_SETUP_MCE, arg)
            except BaseException:
                mm.close()
                raise
        except BaseException:
            sys.close(fd)
            raise
        self._fd = fd
        self._cpuid_struct = bytes(cpuid)
        self._mm = mm
        self._mv = memoryview(mm)
        self._u16 = self._mv.cast("H")
        self._u32 = self._mv.cast("I")
        self._u64 = self._mv.cast("Q")
        self._slices: dict[tuple[int, int], memoryview] = {}
        self._regs: b.kvm_regs | None = None
        self._sregs: b.kvm_sregs | None = None
        self._dispatch: dict[int, Callable[[], Exit | None]] = {
            b.KVM_EXIT_IO: self._exit_io,
            b.KVM_EXIT_MMIO: self._exit_mmio,
            b.KVM_EXIT_HLT: self._exit_hlt,
            b.KVM_EXIT_SHUTDOWN: self._exit_shutdown,
            b.KVM_EXIT_FAIL_ENTRY: self._exit_fail_entry,
            b.KVM_EXIT_INTERNAL_ERROR: self._exit_internal,
            b.KVM_EXIT_SYSTEM_EVENT: self._exit_system_event,
            b.KVM_EXIT_IRQ_WINDOW_OPEN: self._exit_irq_window,
            b.KVM_EXIT_INTR: self._exit_continue,
            # without the in-kernel LAPIC a CR8 write lowering the TPR exits here; KVM
            # already holds the new CR8 (kvm_run.cr8 carries it into the next KVM_RUN)
            b.KVM_EXIT_SET_TPR: self._exit_continue,
        }

    @property
    def fd(self) -> int:
        """The vCPU file descriptor."""
        return self._fd

    # ------------------------------------------------------------------ registers
    def get_regs(self) -> Registers:
        """KVM_GET_REGS."""
        self._check_open()
        r = self._regs
        if r is None:
            r = self._regs = b.kvm_regs()
        call(self._sys, "KVM_GET_REGS", self._fd, KVM_GET_REGS, r)
        return Registers(*(getattr(r, n) for n in Registers.NAMES))

    def set_regs(self, regs: Registers) -> None:
        """KVM_SET_REGS (every field of ``regs``)."""
        self._check_open()
        r = b.kvm_regs()
        for name in Registers.NAMES:
            setattr(r, name, getattr(regs, name) & 0xFFFFFFFFFFFFFFFF)
        call(self._sys, "KVM_SET_REGS", self._fd, KVM_SET_REGS, r)

    def get_sregs(self) -> SpecialRegisters:
        """KVM_GET_SREGS."""
        self._check_open()
        s = self._sregs
        if s is None:
            s = self._sregs = b.kvm_sregs()
        call(self._sys, "KVM_GET_SREGS", self._fd, KVM_GET_SREGS, s)
        out = SpecialRegisters()
        for name in SpecialRegisters.SEGMENTS:
            seg = getattr(s, name)
            setattr(out, name, Segment(*(getattr(seg, f) for f in Segment.FIELDS)))
        out.gdt = DescriptorTable(s.gdt.base, s.gdt.limit)
        out.idt = DescriptorTable(s.idt.base, s.idt.limit)
        for name in SpecialRegisters.CONTROL:
            setattr(out, name, getattr(s, name))
        return out

    def set_sregs(self, sregs: SpecialRegisters) -> None:
        """KVM_SET_SREGS (no pending interrupt is injected: the bitmap is zero)."""
        self._check_open()
        s = b.kvm_sregs()
        for name in SpecialRegisters.SEGMENTS:
            src = getattr(sregs, name)
            dst = getattr(s, name)
            for f in Segment.FIELDS:
                setattr(dst, f, getattr(src, f))
        s.gdt.base, s.gdt.limit = sregs.gdt.base, sregs.gdt.limit
        s.idt.base, s.idt.limit = sregs.idt.base, sregs.idt.limit
        for name in SpecialRegisters.CONTROL:
            setattr(s, name, getattr(sregs, name))
        call(self._sys, "KVM_SET_SREGS", self._fd, KVM_SET_SREGS, s)

    # ------------------------------------------------------------------ kvmclock
    def kvmclock_ctrl(self) -> bool:
        """KVM_KVMCLOCK_CTRL: tell the guest it was paused (so its watchdogs do not fire).

        Returns False when the guest has not armed kvmclock: KVM answers EINVAL then
        (``kvm_set_guest_paused`` has no pvclock page to flag), which is harmless because
        there is no guest clock to warn. An EINVAL while MSR_KVM_SYSTEM_TIME(_NEW) has its
        enable bit set means the PVCLOCK_GUEST_STOPPED flag did not reach the guest's page
        (Firecracker #5494): that is raised, as is every other errno.
        """
        self._check_open()
        try:
            self._sys.ioctl(self._fd, KVM_KVMCLOCK_CTRL, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                armed = [m for m, v in self.get_msrs(self.pv_clock_msrs()).items() if v & 1]
                if not armed:
                    return False
                raise BackendCallError(
                    "KVM_KVMCLOCK_CTRL",
                    exc.errno,
                    accelerator=ACCEL_NAME,
                    detail=f"vcpu {self.index}: kvmclock is armed (MSR {armed[0]:#x}) and "
                    "KVM did not flag the guest's pvclock page as stopped",
                ) from exc
            raise BackendCallError("KVM_KVMCLOCK_CTRL", exc.errno, accelerator=ACCEL_NAME) from exc
        return True

    # ------------------------------------------------------------------ run
    def run(self) -> Exit:
        """KVM_RUN until an exit the caller must see (EINTR is retried unless kicked; so is
        the EAGAIN an application processor gets after waiting for INIT/SIPI)."""
        if self._closed:
            raise HandleClosedError(self._describe())
        if self.vm.paused:
            raise VcpuStateError(
                f"vcpu {self.index}: the VM is paused",
                hint="call vm.resume() first",
                accelerator=ACCEL_NAME,
            )
        if self._window_wanted and self.interrupt_ready():
            # The window is open already (kvm_run of the last exit says so, and nothing
            # was queued since): at once, as the interface asks. Some hosts' KVM (kvm_pvm
            # here) never exits with KVM_EXIT_IRQ_WINDOW_OPEN, so this is where such a
            # host reports the window: at the guest's next exit instead of right after
            # STI and its shadow.
            return InterruptWindowExit()
        self._user_halted = False
        self._irq_queued = False
        ioctl = self._ioctl
        fd = self._fd
        dispatch = self._dispatch
        u32 = self._u32
        request = KVM_RUN
        while True:
            try:
                ioctl(fd, request, 0)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    if self._kicked:
                        self._kicked = False
                        self._mv[b.RUN_IMMEDIATE_EXIT] = 0
                        return InterruptedExit()
                    continue
                if exc.errno == errno.EAGAIN and self._ap_waiting():
                    # An application processor waited in the in-kernel LAPIC for
                    # INIT/SIPI and an event came: KVM returns EAGAIN; run on, as QEMU.
                    continue
                raise BackendCallError("KVM_RUN", exc.errno, accelerator=ACCEL_NAME) from exc
            handler = dispatch.get(u32[_EXIT_REASON_WORD])
            if handler is None:
                return self._exit_unknown()
            result = handler()
            if result is not None:
                return result

    def _data(self, offset: int, length: int) -> memoryview:
        key = (offset, length)
        view = self._slices.get(key)
        if view is None:
            view = self._slices[key] = self._mv[offset : offset + length]
        return view

    def _exit_io(self) -> Exit:
        mv = self._mv
        size = mv[b.RUN_IO_SIZE]
        count = self._u32[b.RUN_IO_COUNT >> 2]
        return PortIoExit(
            self._u16[b.RUN_IO_PORT >> 1],
            size,
            IoDirection.OUT if mv[b.RUN_IO_DIRECTION] else IoDirection.IN,
            self._data(self._u64[b.RUN_IO_DATA_OFFSET >> 3], size * count),
            count,
        )

    def _exit_mmio(self) -> Exit:
        length = self._u32[b.RUN_MMIO_LEN >> 2]
        return MmioExit(
            self._u64[b.RUN_MMIO_PHYS_ADDR >> 3],
            length,
            bool(self._mv[b.RUN_MMIO_IS_WRITE]),
            self._data(b.RUN_MMIO_DATA, length),
        )

    def _exit_hlt(self) -> Exit:
        self._user_halted = True
        return HaltExit()

    def _exit_shutdown(self) -> Exit:
        return ShutdownExit("triple fault")

    def _exit_system_event(self) -> Exit:
        kind = self._u32[b.RUN_SYSTEM_EVENT_TYPE >> 2]
        if kind == b.KVM_SYSTEM_EVENT_SHUTDOWN:
            return ShutdownExit("system event: shutdown")
        if kind == b.KVM_SYSTEM_EVENT_RESET:
            return ShutdownExit("system event: reset")
        if kind == b.KVM_SYSTEM_EVENT_CRASH:
            return ShutdownExit("system event: crash")
        return InternalErrorExit("system-event", kind, f"KVM_EXIT_SYSTEM_EVENT type {kind}")

    def _exit_fail_entry(self) -> Exit:
        reason = self._u64[b.RUN_FAIL_ENTRY_REASON >> 3]
        cpu = self._u32[b.RUN_FAIL_ENTRY_CPU >> 2]
        return InternalErrorExit(
            "fail-entry",
            reason,
            f"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on cpu {cpu}",
            (cpu,),
        )

    def _exit_internal(self) -> Exit:
        suberror = self._u32[b.RUN_INTERNAL_SUBERROR >> 2]
        ndata = min(self._u32[b.RUN_INTERNAL_NDATA >> 2], 16)
        base = b.RUN_INTERNAL_DATA >> 3
        data = tuple(self._u64[base + i] for i in range(ndata))
        return InternalErrorExit(
            "internal-error",
            suberror,
            f"KVM_EXIT_INTERNAL_ERROR: suberror {suberror}",
            data,
        )

    def _exit_continue(self) -> Exit | None:
        if self._kicked:
            self._kicked = False
            self._mv[b.RUN_IMMEDIATE_EXIT] = 0
            return InterruptedExit()
        return None

    def _exit_irq_window(self) -> Exit | None:
        if self._window_wanted:
            return InterruptWindowExit()
        return self._exit_continue()

    # ------------------------------------------------------------------ interrupt injection
    # Only for a VM without the in-kernel irqchip (KVM's "userspace irqchip" mode, as
    # QEMU's kernel-irqchip=off): KVM_INTERRUPT queues an external interrupt for the next
    # KVM_RUN, KVM_NMI an NMI, and kvm_run's request_interrupt_window makes KVM_RUN exit
    # with KVM_EXIT_IRQ_WINDOW_OPEN once the guest can take one. After every exit KVM
    # fills in ready_for_interrupt_injection and if_flag.
    def _require_user_irqchip(self, what: str) -> None:
        self._check_open()
        if self._in_kernel_irqchip:
            raise UnsupportedError(
                f"{ACCEL_NAME} vcpu {self.index} cannot {what}: its VM has the in-kernel "
                "irqchip, which delivers interrupts itself",
                hint="raise interrupt lines with vm.set_irq_line, or create the VM without "
                "the irqchip (VmOptions(irqchip=False))",
                accelerator=ACCEL_NAME,
                feature="interrupt-injection",
            )

    def interrupt_ready(self) -> bool:
        """kvm_run.ready_for_interrupt_injection and if_flag of the last exit, and no
        interrupt queued since (False before the first run: KVM has said nothing yet)."""
        self._require_user_irqchip("report whether it can take an interrupt")
        if self._irq_queued:
            return False
        mv = self._mv
        return bool(mv[b.RUN_READY_FOR_INTERRUPT_INJECTION]) and bool(mv[b.RUN_IF_FLAG])

    def inject_interrupt(self, vector: int) -> None:
        """KVM_INTERRUPT with ``vector``: taken before the next guest instruction."""
        self._require_user_irqchip("take an injected interrupt")
        if not isinstance(vector, int) or isinstance(vector, bool) or not 0 <= vector <= 255:
            raise InvalidArgumentError(
                f"interrupt vector must be an int in 0..255, not {vector!r}",
                hint="external interrupts use vectors 32..255",
                argument="vector",
                value=vector,
            )
        if not self.interrupt_ready():
            raise VcpuStateError(
                f"vcpu {self.index} cannot take interrupt {vector:#x} now (interrupts "
                "disabled, an STI/MOV SS shadow, or an interrupt already queued)",
                hint="check interrupt_ready() first, or request_interrupt_window(True) and "
                "inject at the InterruptWindowExit",
                accelerator=ACCEL_NAME,
            )
        call(self._sys, "KVM_INTERRUPT", self._fd, KVM_INTERRUPT, b.kvm_interrupt(vector))
        self._irq_queued = True

    def inject_nmi(self) -> None:
        """KVM_NMI: KVM holds it while NMIs are blocked."""
        self._require_user_irqchip("take an injected NMI")
        call(self._sys, "KVM_NMI", self._fd, KVM_NMI, 0)

    def request_interrupt_window(self, wanted: bool) -> None:
        """kvm_run.request_interrupt_window: KVM_RUN returns KVM_EXIT_IRQ_WINDOW_OPEN
        (:class:`~accel.InterruptWindowExit`) as soon as the guest can take an interrupt."""
        self._require_user_irqchip("report an interrupt window")
        self._window_wanted = bool(wanted)
        self._mv[b.RUN_REQUEST_INTERRUPT_WINDOW] = 1 if wanted else 0

    def _exit_unknown(self) -> Exit:
        reason = self._u32[b.RUN_EXIT_REASON >> 2]
        name = _EXIT_NAMES.get(reason, "unhandled")
        return InternalErrorExit("exit-" + name, reason, f"unhandled KVM exit reason {reason}")

    def _ap_waiting(self) -> bool:
        """This vCPU is an application processor (not KVM's boot vCPU 0): under the
        in-kernel irqchip it starts waiting for INIT/SIPI, the only wait after which
        KVM_RUN answers EAGAIN."""
        return self.index != 0

    def kick(self) -> None:
        """Set ``kvm_run.immediate_exit``: the next KVM_RUN returns at once (EINTR) and
        :meth:`run` returns :class:`InterruptedExit`. Async-signal and thread safe; a run
        already inside the guest stops at its next exit."""
        self._check_open()
        self._kicked = True
        self._mv[b.RUN_IMMEDIATE_EXIT] = 1

    # ------------------------------------------------------------------ close
    def _close(self) -> None:
        for view in self._slices.values():
            view.release()
        self._slices.clear()
        for view in (self._u16, self._u32, self._u64, self._mv):
            view.release()
        release_mapping(self._mm)
        fd, self._fd = self._fd, -1
        try:
            self._sys.close(fd)
        finally:
            if self._on_close is not None:
                self._on_close(self)
