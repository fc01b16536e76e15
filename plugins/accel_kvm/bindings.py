"""The /dev/kvm ABI for x86-64: constants and ctypes structures (the kvm-bindings part).

Everything here mirrors ``<linux/kvm.h>``, ``<asm/kvm.h>`` and ``<asm/kvm_para.h>``
(Debian ``linux-libc-dev``): capability numbers, exit reasons, paravirtual CPUID bits,
and the structures as :class:`ctypes.Structure` subclasses. The ``SIZEOF_*`` and
``RUN_*`` constants are computed from the structures (``ctypes.sizeof`` and field
offsets), so they cannot drift from them; tests/kvm/test_abi.py compiles a C program
against the headers and compares every size, offset, ioctl number and constant.

Nothing here issues a system call: the ioctl numbers and the system-call layer are in
:mod:`accel_kvm.ioctls`.
"""

from __future__ import annotations

import ctypes
from typing import Final

KVMIO: Final = 0xAE
API_VERSION: Final = 12

KVM_NR_INTERRUPTS: Final = 256
KVM_MEM_READONLY: Final = 1 << 1
KVM_CLOCK_TSC_STABLE: Final = 2
KVM_CLOCK_REALTIME: Final = 1 << 2
KVM_CLOCK_HOST_TSC: Final = 1 << 3

# --------------------------------------------------------------------------- exit reasons
KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_EXCEPTION: Final = 1
KVM_EXIT_IO: Final = 2
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_DEBUG: Final = 4
KVM_EXIT_HLT: Final = 5
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_IRQ_WINDOW_OPEN: Final = 7
KVM_EXIT_SHUTDOWN: Final = 8
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_SET_TPR: Final = 11
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_SYSTEM_EVENT: Final = 24
KVM_EXIT_IO_IN: Final = 0
KVM_EXIT_IO_OUT: Final = 1

KVM_SYSTEM_EVENT_SHUTDOWN: Final = 1
KVM_SYSTEM_EVENT_RESET: Final = 2
KVM_SYSTEM_EVENT_CRASH: Final = 3

# --------------------------------------------------------------------------- capabilities
KVM_CAP_IRQCHIP: Final = 0
KVM_CAP_USER_MEMORY: Final = 3
KVM_CAP_NR_VCPUS: Final = 9
KVM_CAP_IRQFD: Final = 32
KVM_CAP_PIT2: Final = 33
KVM_CAP_MCE: Final = 31
KVM_CAP_IOEVENTFD: Final = 36
KVM_CAP_ADJUST_CLOCK: Final = 39
KVM_CAP_XSAVE: Final = 55
KVM_CAP_TSC_CONTROL: Final = 60
KVM_CAP_GET_TSC_KHZ: Final = 61
KVM_CAP_MAX_VCPUS: Final = 66
KVM_CAP_KVMCLOCK_CTRL: Final = 76
KVM_CAP_CHECK_EXTENSION_VM: Final = 105
KVM_CAP_IMMEDIATE_EXIT: Final = 136

# --------------------------------------------------------------------------- paravirt CPUID
KVM_CPUID_SIGNATURE: Final = 0x40000000
KVM_CPUID_FEATURES: Final = 0x40000001
KVM_FEATURE_CLOCKSOURCE: Final = 0
KVM_FEATURE_NOP_IO_DELAY: Final = 1
KVM_FEATURE_MMU_OP: Final = 2
KVM_FEATURE_CLOCKSOURCE2: Final = 3
KVM_FEATURE_ASYNC_PF: Final = 4
KVM_FEATURE_STEAL_TIME: Final = 5
KVM_FEATURE_PV_EOI: Final = 6
KVM_FEATURE_PV_UNHALT: Final = 7
KVM_FEATURE_PV_TLB_FLUSH: Final = 9
KVM_FEATURE_ASYNC_PF_VMEXIT: Final = 10
KVM_FEATURE_PV_SEND_IPI: Final = 11
KVM_FEATURE_POLL_CONTROL: Final = 12
KVM_FEATURE_PV_SCHED_YIELD: Final = 13
KVM_FEATURE_ASYNC_PF_INT: Final = 14
KVM_FEATURE_MSI_EXT_DEST_ID: Final = 15
KVM_FEATURE_CLOCKSOURCE_STABLE_BIT: Final = 24
#: Leaf 0x40000001 EDX: the vCPUs are dedicated to physical CPUs.
KVM_HINTS_REALTIME: Final = 0
MSR_KVM_SYSTEM_TIME_NEW: Final = 0x4B564D01
MSR_KVM_WALL_CLOCK_NEW: Final = 0x4B564D00

# --------------------------------------------------------------------------- structures


class kvm_regs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
        )
    ]  # fmt: skip


class kvm_segment(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint32),
        ("selector", ctypes.c_uint16),
        ("type", ctypes.c_uint8),
        ("present", ctypes.c_uint8),
        ("dpl", ctypes.c_uint8),
        ("db", ctypes.c_uint8),
        ("s", ctypes.c_uint8),
        ("l", ctypes.c_uint8),
        ("g", ctypes.c_uint8),
        ("avl", ctypes.c_uint8),
        ("unusable", ctypes.c_uint8),
        ("padding", ctypes.c_uint8),
    ]


class kvm_dtable(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint16),
        ("padding", ctypes.c_uint16 * 3),
    ]


class kvm_sregs(ctypes.Structure):
    _fields_ = [
        ("cs", kvm_segment),
        ("ds", kvm_segment),
        ("es", kvm_segment),
        ("fs", kvm_segment),
        ("gs", kvm_segment),
        ("ss", kvm_segment),
        ("tr", kvm_segment),
        ("ldt", kvm_segment),
        ("gdt", kvm_dtable),
        ("idt", kvm_dtable),
        ("cr0", ctypes.c_uint64),
        ("cr2", ctypes.c_uint64),
        ("cr3", ctypes.c_uint64),
        ("cr4", ctypes.c_uint64),
        ("cr8", ctypes.c_uint64),
        ("efer", ctypes.c_uint64),
        ("apic_base", ctypes.c_uint64),
        ("interrupt_bitmap", ctypes.c_uint64 * ((KVM_NR_INTERRUPTS + 63) // 64)),
    ]


class kvm_userspace_memory_region(ctypes.Structure):
    _fields_ = [
        ("slot", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("guest_phys_addr", ctypes.c_uint64),
        ("memory_size", ctypes.c_uint64),
        ("userspace_addr", ctypes.c_uint64),
    ]


class kvm_clock_data(ctypes.Structure):
    _fields_ = [
        ("clock", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("pad0", ctypes.c_uint32),
        ("realtime", ctypes.c_uint64),
        ("host_tsc", ctypes.c_uint64),
        ("pad", ctypes.c_uint32 * 4),
    ]


class kvm_pit_config(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32 * 15)]


class kvm_irq_level(ctypes.Structure):
    """``struct kvm_irq_level`` (KVM_IRQ_LINE): ``irq`` (a union with ``status``), ``level``."""

    _fields_ = [("irq", ctypes.c_uint32), ("level", ctypes.c_uint32)]


class kvm_interrupt(ctypes.Structure):
    """``struct kvm_interrupt`` (KVM_INTERRUPT): the vector to inject."""

    _fields_ = [("irq", ctypes.c_uint32)]


class kvm_cpuid_entry2(ctypes.Structure):
    _fields_ = [
        ("function", ctypes.c_uint32),
        ("index", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("eax", ctypes.c_uint32),
        ("ebx", ctypes.c_uint32),
        ("ecx", ctypes.c_uint32),
        ("edx", ctypes.c_uint32),
        ("padding", ctypes.c_uint32 * 3),
    ]


class kvm_cpuid2(ctypes.Structure):
    """The header of ``struct kvm_cpuid2``; ``nent`` entries follow it in the buffer."""

    _fields_ = [("nent", ctypes.c_uint32), ("padding", ctypes.c_uint32)]


# kvm_run: the fixed header, then a 256-byte union of per-exit structures.
class kvm_run_io(ctypes.Structure):
    _fields_ = [
        ("direction", ctypes.c_uint8),
        ("size", ctypes.c_uint8),
        ("port", ctypes.c_uint16),
        ("count", ctypes.c_uint32),
        ("data_offset", ctypes.c_uint64),
    ]


class kvm_run_mmio(ctypes.Structure):
    _fields_ = [
        ("phys_addr", ctypes.c_uint64),
        ("data", ctypes.c_uint8 * 8),
        ("len", ctypes.c_uint32),
        ("is_write", ctypes.c_uint8),
    ]


class kvm_run_fail_entry(ctypes.Structure):
    _fields_ = [("hardware_entry_failure_reason", ctypes.c_uint64), ("cpu", ctypes.c_uint32)]


class kvm_run_internal(ctypes.Structure):
    _fields_ = [
        ("suberror", ctypes.c_uint32),
        ("ndata", ctypes.c_uint32),
        ("data", ctypes.c_uint64 * 16),
    ]


class kvm_run_system_event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("ndata", ctypes.c_uint32),
        ("data", ctypes.c_uint64 * 16),
    ]


class kvm_run_exit_union(ctypes.Union):
    _fields_ = [
        ("io", kvm_run_io),
        ("mmio", kvm_run_mmio),
        ("fail_entry", kvm_run_fail_entry),
        ("internal", kvm_run_internal),
        ("system_event", kvm_run_system_event),
        ("padding", ctypes.c_char * 256),
    ]


class kvm_run(ctypes.Structure):
    """The leading part of ``struct kvm_run`` (the part the plugin reads)."""

    _fields_ = [
        ("request_interrupt_window", ctypes.c_uint8),
        ("immediate_exit", ctypes.c_uint8),
        ("padding1", ctypes.c_uint8 * 6),
        ("exit_reason", ctypes.c_uint32),
        ("ready_for_interrupt_injection", ctypes.c_uint8),
        ("if_flag", ctypes.c_uint8),
        ("flags", ctypes.c_uint16),
        ("cr8", ctypes.c_uint64),
        ("apic_base", ctypes.c_uint64),
        ("u", kvm_run_exit_union),
    ]


# --------------------------------------------------------------------------- vCPU and irqchip state
# (KVM_GET/SET_MSRS, XSAVE, XCRS, DEBUGREGS, VCPU_EVENTS, MP_STATE, LAPIC, IRQCHIP, PIT2:
# driven by :mod:`accel_kvm.state`)


class kvm_msr_entry(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("data", ctypes.c_uint64),
    ]


class kvm_msrs(ctypes.Structure):
    """The header of ``struct kvm_msrs``; ``nmsrs`` ``kvm_msr_entry`` follow it."""

    _fields_ = [("nmsrs", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class kvm_msr_list(ctypes.Structure):
    """The header of ``struct kvm_msr_list``; ``nmsrs`` u32 indices follow it."""

    _fields_ = [("nmsrs", ctypes.c_uint32)]


KVM_XSAVE_SIZE: Final = 4096


class kvm_xsave(ctypes.Structure):
    _fields_ = [("region", ctypes.c_uint32 * (KVM_XSAVE_SIZE // 4))]


class kvm_xcr(ctypes.Structure):
    _fields_ = [
        ("xcr", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("value", ctypes.c_uint64),
    ]


KVM_MAX_XCRS: Final = 16


class kvm_xcrs(ctypes.Structure):
    _fields_ = [
        ("nr_xcrs", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("xcrs", kvm_xcr * KVM_MAX_XCRS),
        ("padding", ctypes.c_uint64 * 16),
    ]


class kvm_debugregs(ctypes.Structure):
    _fields_ = [
        ("db", ctypes.c_uint64 * 4),
        ("dr6", ctypes.c_uint64),
        ("dr7", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("reserved", ctypes.c_uint64 * 9),
    ]


class kvm_vcpu_events_exception(ctypes.Structure):
    _fields_ = [
        ("injected", ctypes.c_uint8),
        ("nr", ctypes.c_uint8),
        ("has_error_code", ctypes.c_uint8),
        ("pending", ctypes.c_uint8),
        ("error_code", ctypes.c_uint32),
    ]


class kvm_vcpu_events_interrupt(ctypes.Structure):
    _fields_ = [
        ("injected", ctypes.c_uint8),
        ("nr", ctypes.c_uint8),
        ("soft", ctypes.c_uint8),
        ("shadow", ctypes.c_uint8),
    ]


class kvm_vcpu_events_nmi(ctypes.Structure):
    _fields_ = [
        ("injected", ctypes.c_uint8),
        ("pending", ctypes.c_uint8),
        ("masked", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class kvm_vcpu_events_smi(ctypes.Structure):
    _fields_ = [
        ("smm", ctypes.c_uint8),
        ("pending", ctypes.c_uint8),
        ("smm_inside_nmi", ctypes.c_uint8),
        ("latched_init", ctypes.c_uint8),
    ]


class kvm_vcpu_events(ctypes.Structure):
    _fields_ = [
        ("exception", kvm_vcpu_events_exception),
        ("interrupt", kvm_vcpu_events_interrupt),
        ("nmi", kvm_vcpu_events_nmi),
        ("sipi_vector", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("smi", kvm_vcpu_events_smi),
        ("triple_fault", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 26),
        ("exception_has_payload", ctypes.c_uint8),
        ("exception_payload", ctypes.c_uint64),
    ]


KVM_VCPUEVENT_VALID_NMI_PENDING: Final = 0x00000001
KVM_VCPUEVENT_VALID_SIPI_VECTOR: Final = 0x00000002
KVM_VCPUEVENT_VALID_SHADOW: Final = 0x00000004
KVM_VCPUEVENT_VALID_SMM: Final = 0x00000008


class kvm_mp_state(ctypes.Structure):
    _fields_ = [("mp_state", ctypes.c_uint32)]


KVM_MP_STATE_RUNNABLE: Final = 0
KVM_MP_STATE_UNINITIALIZED: Final = 1
KVM_MP_STATE_INIT_RECEIVED: Final = 2
KVM_MP_STATE_HALTED: Final = 3
KVM_MP_STATE_SIPI_RECEIVED: Final = 4

KVM_APIC_REG_SIZE: Final = 0x400


class kvm_lapic_state(ctypes.Structure):
    _fields_ = [("regs", ctypes.c_char * KVM_APIC_REG_SIZE)]


class kvm_pic_state(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint8)
        for name in (
            "last_irr",
            "irr",
            "imr",
            "isr",
            "priority_add",
            "irq_base",
            "read_reg_select",
            "poll",
            "special_mask",
            "init_state",
            "auto_eoi",
            "rotate_on_auto_eoi",
            "special_fully_nested_mode",
            "init4",
            "elcr",
            "elcr_mask",
        )
    ]


KVM_IOAPIC_NUM_PINS: Final = 24


class kvm_ioapic_state(ctypes.Structure):
    _fields_ = [
        ("base_address", ctypes.c_uint64),
        ("ioregsel", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("irr", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("redirtbl", ctypes.c_uint64 * KVM_IOAPIC_NUM_PINS),
    ]


class kvm_irqchip_union(ctypes.Union):
    _fields_ = [
        ("dummy", ctypes.c_char * 512),
        ("pic", kvm_pic_state),
        ("ioapic", kvm_ioapic_state),
    ]


KVM_IRQCHIP_PIC_MASTER: Final = 0
KVM_IRQCHIP_PIC_SLAVE: Final = 1
KVM_IRQCHIP_IOAPIC: Final = 2


class kvm_irqchip(ctypes.Structure):
    _fields_ = [
        ("chip_id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("chip", kvm_irqchip_union),
    ]


class kvm_pit_channel_state(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_uint32),
        ("latched_count", ctypes.c_uint16),
        ("count_latched", ctypes.c_uint8),
        ("status_latched", ctypes.c_uint8),
        ("status", ctypes.c_uint8),
        ("read_state", ctypes.c_uint8),
        ("write_state", ctypes.c_uint8),
        ("write_latch", ctypes.c_uint8),
        ("rw_mode", ctypes.c_uint8),
        ("mode", ctypes.c_uint8),
        ("bcd", ctypes.c_uint8),
        ("gate", ctypes.c_uint8),
        ("count_load_time", ctypes.c_int64),
    ]


class kvm_pit_state2(ctypes.Structure):
    _fields_ = [
        ("channels", kvm_pit_channel_state * 3),
        ("flags", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 9),
    ]


KVM_CAP_XSAVE2: Final = 208


#: Structures whose size and field offsets tests/kvm/test_abi.py checks against the headers.
STRUCTS: Final[dict[str, type[ctypes.Structure]]] = {
    "kvm_regs": kvm_regs,
    "kvm_segment": kvm_segment,
    "kvm_dtable": kvm_dtable,
    "kvm_sregs": kvm_sregs,
    "kvm_userspace_memory_region": kvm_userspace_memory_region,
    "kvm_clock_data": kvm_clock_data,
    "kvm_pit_config": kvm_pit_config,
    "kvm_irq_level": kvm_irq_level,
    "kvm_interrupt": kvm_interrupt,
    "kvm_cpuid_entry2": kvm_cpuid_entry2,
    "kvm_cpuid2": kvm_cpuid2,
    "kvm_msr_entry": kvm_msr_entry,
    "kvm_msrs": kvm_msrs,
    "kvm_msr_list": kvm_msr_list,
    "kvm_xsave": kvm_xsave,
    "kvm_xcr": kvm_xcr,
    "kvm_xcrs": kvm_xcrs,
    "kvm_debugregs": kvm_debugregs,
    "kvm_vcpu_events": kvm_vcpu_events,
    "kvm_mp_state": kvm_mp_state,
    "kvm_lapic_state": kvm_lapic_state,
    "kvm_pic_state": kvm_pic_state,
    "kvm_ioapic_state": kvm_ioapic_state,
    "kvm_irqchip": kvm_irqchip,
    "kvm_pit_channel_state": kvm_pit_channel_state,
    "kvm_pit_state2": kvm_pit_state2,
}

# --------------------------------------------------------------------------- sizes and offsets
SIZEOF_KVM_REGS: Final = ctypes.sizeof(kvm_regs)
SIZEOF_KVM_SREGS: Final = ctypes.sizeof(kvm_sregs)
SIZEOF_KVM_USERSPACE_MEMORY_REGION: Final = ctypes.sizeof(kvm_userspace_memory_region)
SIZEOF_KVM_CLOCK_DATA: Final = ctypes.sizeof(kvm_clock_data)
SIZEOF_KVM_PIT_CONFIG: Final = ctypes.sizeof(kvm_pit_config)
SIZEOF_KVM_CPUID_ENTRY2: Final = ctypes.sizeof(kvm_cpuid_entry2)
SIZEOF_KVM_CPUID2: Final = ctypes.sizeof(kvm_cpuid2)

#: struct kvm_cpuid2 and kvm_cpuid_entry2 in 32-bit words: a header (nent, padding), then
#: per entry function, index, flags, eax, ebx, ecx, edx and three words of padding.
CPUID2_HEADER_WORDS: Final = SIZEOF_KVM_CPUID2 // 4
CPUID_ENTRY2_WORDS: Final = SIZEOF_KVM_CPUID_ENTRY2 // 4

#: (function, index, flags, eax, ebx, ecx, edx) of one kvm_cpuid_entry2.
CpuidEntry = tuple[int, int, int, int, int, int, int]

# Offsets in the mapped kvm_run page that the vCPU run loop reads (it reads the page
# through memoryview casts, not through a ctypes object, to allocate nothing per exit).
_U: Final = kvm_run.u.offset
RUN_IMMEDIATE_EXIT: Final = kvm_run.immediate_exit.offset
RUN_EXIT_REASON: Final = kvm_run.exit_reason.offset
RUN_REQUEST_INTERRUPT_WINDOW: Final = kvm_run.request_interrupt_window.offset
RUN_READY_FOR_INTERRUPT_INJECTION: Final = kvm_run.ready_for_interrupt_injection.offset
RUN_IF_FLAG: Final = kvm_run.if_flag.offset
RUN_IO_DIRECTION: Final = _U + kvm_run_io.direction.offset
RUN_IO_SIZE: Final = _U + kvm_run_io.size.offset
RUN_IO_PORT: Final = _U + kvm_run_io.port.offset
RUN_IO_COUNT: Final = _U + kvm_run_io.count.offset
RUN_IO_DATA_OFFSET: Final = _U + kvm_run_io.data_offset.offset
RUN_MMIO_PHYS_ADDR: Final = _U + kvm_run_mmio.phys_addr.offset
RUN_MMIO_DATA: Final = _U + kvm_run_mmio.data.offset
RUN_MMIO_LEN: Final = _U + kvm_run_mmio.len.offset
RUN_MMIO_IS_WRITE: Final = _U + kvm_run_mmio.is_write.offset
RUN_FAIL_ENTRY_REASON: Final = _U + kvm_run_fail_entry.hardware_entry_failure_reason.offset
RUN_FAIL_ENTRY_CPU: Final = _U + kvm_run_fail_entry.cpu.offset
RUN_INTERNAL_SUBERROR: Final = _U + kvm_run_internal.suberror.offset
RUN_INTERNAL_NDATA: Final = _U + kvm_run_internal.ndata.offset
RUN_INTERNAL_DATA: Final = _U + kvm_run_internal.data.offset
RUN_SYSTEM_EVENT_TYPE: Final = _U + kvm_run_system_event.type.offset
