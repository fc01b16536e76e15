"""A vCPU's state beyond its registers, in accelerator-neutral records.

What a snapshot a real guest survives must carry besides :class:`~accel.Registers` and
:class:`~accel.SpecialRegisters` (QEMU's ``vmstate_x86_cpu``, cloud-hypervisor's
``VcpuState``): the MSRs, the x87/SSE/AVX state, the debug registers, the events in
flight and the multiprocessor state. Each accelerator maps its own representation onto
these records (KVM: KVM_GET_MSRS, KVM_GET_XSAVE/XCRS, KVM_GET_DEBUGREGS,
KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE; TCG: the engine's registers), so a record taken
on one accelerator can be written on another that can hold it.

The formats are the architectural ones, so nothing here belongs to one accelerator:
:class:`FpuState` is an XSAVE standard-format area (what XSAVE writes and XRSTOR reads),
MSRs are keyed by their architectural index.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import InvalidArgumentError

__all__ = [
    "MSR_NAMES",
    "XSAVE_LEGACY_SIZE",
    "CpuidEntry",
    "msr_name",
    "DebugRegisters",
    "FpuState",
    "MpState",
    "VcpuEvents",
]

#: The legacy (FXSAVE) region plus the XSAVE header: the smallest valid XSAVE area.
XSAVE_LEGACY_SIZE = 512 + 64


@dataclass(frozen=True, slots=True)
class FpuState:
    """x87, SSE and (where given) AVX and later state as an XSAVE standard-format area.

    ``xsave`` holds the legacy region (bytes 0..511: FCW, FSW, FTW (abridged), FOP,
    FIP/FDP, MXCSR at 24, MXCSR_MASK at 28, ST0-7 at 32, XMM0-15 at 160), the XSAVE header
    (bytes 512..575, XSTATE_BV first) and the extended components at their standard
    offsets (CPUID leaf 0xD; YMM_Hi128 at 576). ``xcr0`` is XCR0 (1 = x87 only, the
    reset value; 3 = x87+SSE; 7 with AVX).
    """

    xsave: bytes
    xcr0: int = 1

    def __post_init__(self) -> None:
        if len(self.xsave) < XSAVE_LEGACY_SIZE:
            raise InvalidArgumentError(
                f"an XSAVE area is at least {XSAVE_LEGACY_SIZE} bytes, got {len(self.xsave)}",
                hint="pass the legacy region and the XSAVE header",
                argument="xsave",
                value=len(self.xsave),
            )
        if not self.xcr0 & 1:
            raise InvalidArgumentError(
                f"XCR0 {self.xcr0:#x} lacks bit 0 (x87), which is always set",
                argument="xcr0",
                value=self.xcr0,
            )

    @property
    def fcw(self) -> int:
        return int.from_bytes(self.xsave[0:2], "little")

    @property
    def mxcsr(self) -> int:
        return int.from_bytes(self.xsave[24:28], "little")

    def st(self, i: int) -> bytes:
        """x87 register ST(i) / MM(i): its 10 bytes (80-bit extended precision)."""
        return self.xsave[32 + 16 * i : 42 + 16 * i]

    def xmm(self, i: int) -> bytes:
        """The 16 bytes of XMM register ``i``."""
        return self.xsave[160 + 16 * i : 176 + 16 * i]


@dataclass(frozen=True, slots=True)
class DebugRegisters:
    """DR0-DR3, DR6 and DR7 (architectural reset values for DR6 and DR7)."""

    dr0: int = 0
    dr1: int = 0
    dr2: int = 0
    dr3: int = 0
    dr6: int = 0xFFFF0FF0
    dr7: int = 0x400


@dataclass(frozen=True, slots=True)
class VcpuEvents:
    """Events in flight between two instructions (KVM's ``kvm_vcpu_events``, QEMU's
    ``env->exception_*`` / ``interrupt_injected`` / ``nmi_*``).

    An *injected* event is being delivered (its delivery was interrupted by the exit); a
    *pending* one is still to be raised. ``interrupt_shadow`` is the STI / MOV SS blocking
    (bit 0 STI, bit 1 MOV SS).
    """

    exception_injected: bool = False
    exception_pending: bool = False
    exception_nr: int = 0
    exception_has_error_code: bool = False
    exception_error_code: int = 0
    interrupt_injected: bool = False
    interrupt_nr: int = 0
    interrupt_soft: bool = False
    interrupt_shadow: int = 0
    nmi_injected: bool = False
    nmi_pending: bool = False
    nmi_masked: bool = False
    smi_pending: bool = False
    smm: bool = False


class MpState(enum.Enum):
    """A vCPU's multiprocessor state (KVM_MP_STATE_*, QEMU's ``cs->halted`` and
    ``env->mp_state``)."""

    RUNNABLE = "runnable"
    """Running (or ready to run) guest instructions."""
    UNINITIALIZED = "uninitialized"
    """An application processor before its first INIT."""
    INIT_RECEIVED = "init-received"
    """INIT seen: waiting for a SIPI."""
    HALTED = "halted"
    """Stopped at HLT, waiting for an interrupt."""
    SIPI_RECEIVED = "sipi-received"
    """A SIPI seen: starts at the vector's real-mode address on its next run."""


@dataclass(frozen=True, slots=True)
class CpuidEntry:
    """One CPUID leaf as given to a vCPU: ``function`` (EAX in), ``index`` (ECX in, the
    subleaf) and the four output registers."""

    function: int
    index: int
    eax: int
    ebx: int
    ecx: int
    edx: int


#: Names of the MSRs a snapshot carries (architectural indices, Intel SDM vol. 4; the KVM
#: paravirtual ones from ``asm/kvm_para.h``), for messages.
MSR_NAMES: dict[int, str] = {
    0x10: "TSC",
    0x11: "KVM_WALL_CLOCK",
    0x12: "KVM_SYSTEM_TIME",
    0x3B: "TSC_ADJUST",
    0x174: "SYSENTER_CS",
    0x175: "SYSENTER_ESP",
    0x176: "SYSENTER_EIP",
    0x1A0: "MISC_ENABLE",
    0x277: "PAT",
    0x4B564D00: "KVM_WALL_CLOCK_NEW",
    0x4B564D01: "KVM_SYSTEM_TIME_NEW",
    0x4B564D02: "KVM_ASYNC_PF_EN",
    0x4B564D03: "KVM_STEAL_TIME",
    0x4B564D04: "KVM_PV_EOI_EN",
    0xC0000081: "STAR",
    0xC0000082: "LSTAR",
    0xC0000083: "CSTAR",
    0xC0000084: "FMASK",
    0xC0000102: "KERNEL_GS_BASE",
    0xC0000103: "TSC_AUX",
}


def msr_name(index: int) -> str:
    """``"0xc0000082 (LSTAR)"``: an MSR index with its name where it has one."""
    name = MSR_NAMES.get(index)
    return f"{index:#x} ({name})" if name else f"{index:#x}"
