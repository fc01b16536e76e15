"""TCG vCPU state beyond the registers, on unicorn 2.1: MSRs, x87/SSE as an XSAVE area,
debug registers, events and the MP state (the :mod:`accel.cpustate` records).

What unicorn holds was found by experiment on unicorn 2.1.4 (``tests/tcg/test_state.py``
re-checks every claim below against the engine):

MSRs
    ``uc.msr_write``/``msr_read`` run QEMU's ``helper_wrmsr``/``helper_rdmsr``: an index
    QEMU does not know reads 0 and ignores writes, *without an error*. So this module keeps
    the list (:data:`MSR_INDICES`) of the ones whose value a write/read-back keeps and that a
    guest RDMSR sees (and a guest WRMSR sets): EFER, STAR, LSTAR, CSTAR, FMASK, FS_BASE,
    GS_BASE, KERNEL_GS_BASE, TSC_AUX, SYSENTER_CS/ESP/EIP, PAT, MISC_ENABLE, MCG_STATUS, the
    MTRRs (default type, 8 variable pairs, 11 fixed-range). Refused, with the reason
    (:data:`UNHELD_MSRS`): TSC (unicorn's RDMSR and RDTSC read 0 for it and drop writes),
    APIC_BASE (unicorn drops it; the plugin keeps ``SpecialRegisters.apic_base``),
    TSC_ADJUST, SPEC_CTRL, DEBUGCTL, XSS, FEATURE_CONTROL, PKRS (dropped), MTRRcap and
    MCG_CAP (read-only constants), BNDCFGS (kept, but the CPU model has no MPX).
    A value the engine does not keep as written (EFER bits it masks) is refused, and the
    MSRs already written are put back: :meth:`set_msrs` is all-or-nothing.

FPU
    The x87 registers are read and written as unicorn's *physical* ``UC_X86_REG_FP0..7``
    (mantissa, exponent) and placed in stack order from FSW.TOP: the binding reads
    ``UC_X86_REG_ST0..7`` into an 8-byte integer (the exponent is lost), so they are not
    used. FCW, FSW (with TOP), the full tag word (stored abridged), FOP, FIP, FDP, MXCSR
    and XMM0-15 are unicorn registers; XCR0 is not, and is read and written in the
    engine's saved context at the offset :func:`xcr0_offset` finds by running XSETBV.
    The CPU model has no AVX (CPUID.1:ECX.AVX is 0), so there are no YMM high halves:
    an area or XCR0 with AVX state is refused. The area is the 64-bit (FXSAVE64) format
    KVM's KVM_GET_XSAVE uses: FIP and FDP are 64-bit, FCS and FDS are not carried.

Debug registers
    DR0-3, DR6 and DR7 are unicorn registers (held; this module does not arm DR7
    breakpoints in the engine).

Events
    Unicorn keeps no injected or pending exception, interrupt, NMI or SMI between two
    instructions (exceptions are delivered inside the instruction, see
    ``accel_tcg.delivery``); the events the plugin queues itself (an injected interrupt
    not yet delivered, a held NMI, NMI blocking) are added by ``TcgVcpu.get_events`` /
    ``set_events``, not here. The STI / MOV SS interrupt shadow is QEMU's
    ``HF_INHIBIT_IRQ`` flag (one flag for both: it reads as STI, bit 0). Anything else
    is refused by :func:`write_events`.

MP state
    RUNNABLE, or HALTED from a :class:`~accel.HaltExit` until the next ``run()``, as the
    plugin knows it (unicorn itself resumes after HLT). INIT and SIPI are the machine's
    interrupt controller's (it sets the registers at the SIPI vector): the other states
    are refused.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from typing import Any, Final

from accel.cpustate import XSAVE_LEGACY_SIZE, DebugRegisters, FpuState, VcpuEvents
from accel.errors import BackendCallError, InvalidArgumentError

from . import _state

__all__ = [
    "MSR_INDICES",
    "UNHELD_MSRS",
    "XSTATE_SUPPORTED",
    "read_debug_registers",
    "read_events",
    "read_fpu",
    "read_msrs",
    "reset_fpu",
    "write_debug_registers",
    "write_events",
    "write_fpu",
    "write_msrs",
    "xcr0_offset",
]

NAME: Final = "tcg"

_MTRR_FIXED = (0x250, 0x258, 0x259, *range(0x268, 0x270))
_MTRR_VARIABLE = tuple(range(0x200, 0x210))

#: The MSRs a unicorn 2.1 vCPU holds (see the module doc), sorted.
MSR_INDICES: Final[tuple[int, ...]] = tuple(
    sorted(
        {
            0xC0000080,  # EFER
            0xC0000081,  # STAR
            0xC0000082,  # LSTAR
            0xC0000083,  # CSTAR
            0xC0000084,  # FMASK (SFMASK)
            0xC0000100,  # FS_BASE
            0xC0000101,  # GS_BASE
            0xC0000102,  # KERNEL_GS_BASE
            0xC0000103,  # TSC_AUX
            0x174,  # SYSENTER_CS
            0x175,  # SYSENTER_ESP
            0x176,  # SYSENTER_EIP
            0x17A,  # MCG_STATUS
            0x1A0,  # MISC_ENABLE
            0x277,  # PAT
            0x2FF,  # MTRRdefType
            *_MTRR_VARIABLE,
            *_MTRR_FIXED,
        }
    )
)
_HELD: Final = frozenset(MSR_INDICES)

#: MSRs a guest or a snapshot may name that this vCPU does not hold, and why.
UNHELD_MSRS: Final[Mapping[int, str]] = {
    0x10: "IA32_TSC: unicorn's RDMSR reads 0 and a write is dropped (there is no guest TSC)",
    0x1B: "IA32_APIC_BASE: unicorn drops it; the plugin keeps SpecialRegisters.apic_base",
    0x3A: "IA32_FEATURE_CONTROL: unicorn drops writes",
    0x3B: "IA32_TSC_ADJUST: unicorn drops writes",
    0x48: "IA32_SPEC_CTRL: unicorn drops writes",
    0xFE: "IA32_MTRRCAP: a read-only constant of the CPU model",
    0x179: "IA32_MCG_CAP: a read-only constant of the CPU model",
    0x1D9: "IA32_DEBUGCTL: unicorn drops writes",
    0x6E1: "IA32_PKRS: unicorn drops writes",
    0xD90: "IA32_BNDCFGS: the CPU model has no MPX",
    0xDA0: "IA32_XSS: unicorn drops writes",
}

#: XCR0 components this vCPU can hold: x87 and SSE (the CPU model has no AVX).
XSTATE_SUPPORTED: Final = 0x3
_XSTATE_X87, _XSTATE_SSE = 1, 2
_MXCSR_MASK: Final = 0xFFFF  # the MXCSR bits QEMU accepts (FXSAVE's MXCSR_MASK)
_FCW_INIT: Final = 0x37F
_MXCSR_INIT: Final = 0x1F80
_HF_INHIBIT_IRQ: Final = 1 << 3  # QEMU's HF_INHIBIT_IRQ_MASK (STI / MOV SS shadow)
_U64: Final = (1 << 64) - 1


def _msr_name(index: int) -> str:
    return f"MSR {index:#x}"


def _unheld(index: int, what: str) -> BackendCallError:
    why = UNHELD_MSRS.get(index, "not an MSR this unicorn vCPU holds")
    return BackendCallError(
        what,
        None,
        accelerator=NAME,
        detail=f"{_msr_name(index)}: {why}",
        hint="ask msr_indices() for the MSRs this vCPU holds",
        msr=index,
    )


def _check_index(index: object, what: str) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise InvalidArgumentError(
            f"an MSR index is an int, not {index!r}", argument="index", value=index
        )
    if index not in _HELD:
        raise _unheld(index, what)
    return index


def read_msrs(uc: Any, indices: Iterable[int]) -> dict[int, int]:
    """The values of ``indices`` (all checked before any is read)."""
    wanted = [_check_index(i, "msr_read") for i in indices]
    return {i: int(uc.msr_read(i)) for i in wanted}


def write_msrs(uc: Any, values: Mapping[int, int]) -> None:
    """Write ``values``; all-or-nothing (a value the engine does not keep is refused, and
    what was already written is put back)."""
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"set_msrs takes a mapping of MSR index to value, not {type(values).__name__}",
            argument="values",
            value=values,
        )
    items: list[tuple[int, int]] = []
    for index, value in values.items():
        _check_index(index, "msr_write")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64:
            raise InvalidArgumentError(
                f"{_msr_name(index)}: value {value!r} is not a 64-bit unsigned int",
                argument="values",
                value=value,
            )
        items.append((index, value))
    old = {i: int(uc.msr_read(i)) for i, _ in items}
    done: list[int] = []
    for index, value in items:
        uc.msr_write(index, value)
        done.append(index)
        kept = int(uc.msr_read(index))
        if kept != value:
            for back in reversed(done):
                uc.msr_write(back, old[back])
            raise BackendCallError(
                "msr_write",
                None,
                accelerator=NAME,
                detail=f"{_msr_name(index)}: the engine keeps {kept:#x} for {value:#x} "
                "(bits this CPU model does not have); nothing was written",
                hint="write a value with only the bits the vCPU supports",
                msr=index,
            )


# --------------------------------------------------------------------------- FPU


@functools.cache
def xcr0_offset() -> int:
    """The offset of XCR0 in unicorn's saved x86 context (a fact about the loaded library,
    found once): run XSETBV with two values in a scratch engine and see which 8 bytes
    follow them."""
    x86, U = _state.x86, _state.U
    uc = U.Uc(U.UC_ARCH_X86, U.UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, bytes.fromhex("0f01d1"))  # xsetbv

    def context_after(value: int) -> bytes:
        uc.reg_write(x86.UC_X86_REG_RCX, 0)
        uc.reg_write(x86.UC_X86_REG_RAX, value)
        uc.reg_write(x86.UC_X86_REG_RDX, 0)
        uc.emu_start(0x1000, 0x1003)
        uc.reg_write(x86.UC_X86_REG_RAX, 0x5A5A)  # RAX must not be taken for XCR0
        return bytes(uc.context_save())

    three, one = context_after(3), context_after(1)
    found = [
        o
        for o in range(0, len(three) - 7, 4)
        if struct.unpack_from("<Q", three, o)[0] == 3 and struct.unpack_from("<Q", one, o)[0] == 1
    ]
    if len(found) != 1:
        raise _state.LayoutError(f"cannot find XCR0 in unicorn's x86 context ({found})")
    return found[0]


def _read_context_u64(uc: Any, offset: int) -> int:
    return int(struct.unpack_from("<Q", bytes(uc.context_save()), offset)[0])


def _patch_context(uc: Any, offset: int, fmt: str, value: int) -> None:
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    struct.pack_into(fmt, raw, offset, value)
    _state._load_context(uc, ctx, bytes(raw))


def _fp_regs(x86: Any) -> list[int]:
    return [getattr(x86, f"UC_X86_REG_FP{i}") for i in range(8)]


def _xmm_regs(x86: Any) -> list[int]:
    return [getattr(x86, f"UC_X86_REG_XMM{i}") for i in range(16)]


def read_fpu(uc: Any) -> FpuState:
    """x87 + SSE as an XSAVE standard-format area (64-bit legacy layout) and XCR0."""
    x86 = _state.x86
    fsw = int(uc.reg_read(x86.UC_X86_REG_FPSW)) & 0xFFFF
    top = (fsw >> 11) & 7
    full_tag = int(uc.reg_read(x86.UC_X86_REG_FPTAG))
    abridged = 0
    for phys in range(8):
        if (full_tag >> (2 * phys)) & 3 != 3:
            abridged |= 1 << phys
    area = bytearray(XSAVE_LEGACY_SIZE)
    struct.pack_into(
        "<HHBxHQQII",
        area,
        0,
        int(uc.reg_read(x86.UC_X86_REG_FPCW)) & 0xFFFF,
        fsw,
        abridged,
        int(uc.reg_read(x86.UC_X86_REG_FOP)) & 0x7FF,
        int(uc.reg_read(x86.UC_X86_REG_FIP)) & _U64,
        int(uc.reg_read(x86.UC_X86_REG_FDP)) & _U64,
        int(uc.reg_read(x86.UC_X86_REG_MXCSR)) & 0xFFFFFFFF,
        _MXCSR_MASK,
    )
    fp = _fp_regs(x86)
    for i in range(8):
        mantissa, exponent = uc.reg_read(fp[(top + i) & 7])
        struct.pack_into("<QH", area, 32 + 16 * i, mantissa, exponent)
    for i, reg in enumerate(_xmm_regs(x86)):
        area[160 + 16 * i : 176 + 16 * i] = int(uc.reg_read(reg)).to_bytes(16, "little")
    xcr0 = _read_context_u64(uc, xcr0_offset())
    # XSTATE_BV: the components this area holds, whatever the guest's XCR0 enables (as
    # KVM_GET_XSAVE saves all the vCPU supports: SSE registers live on under XCR0 = 1)
    struct.pack_into("<Q", area, 512, XSTATE_SUPPORTED)
    return FpuState(bytes(area), xcr0)


def _check_fpu(state: FpuState) -> tuple[int, int]:
    """(XSTATE_BV, MXCSR) of ``state`` after the checks XRSTOR and this vCPU make."""
    if not isinstance(state, FpuState):
        raise InvalidArgumentError(
            f"set_fpu takes an accel.cpustate.FpuState, not {type(state).__name__}",
            argument="state",
            value=state,
        )
    if state.xcr0 & ~XSTATE_SUPPORTED:
        raise InvalidArgumentError(
            f"XCR0 {state.xcr0:#x} enables state this vCPU does not have "
            f"(it supports {XSTATE_SUPPORTED:#x}: x87 and SSE; the CPU model has no AVX)",
            argument="xcr0",
            value=state.xcr0,
        )
    (xstate_bv,) = struct.unpack_from("<Q", state.xsave, 512)
    if xstate_bv & ~XSTATE_SUPPORTED:
        extra = state.xsave[576:]
        if any(extra):
            raise InvalidArgumentError(
                f"the XSAVE area holds state components {xstate_bv & ~XSTATE_SUPPORTED:#x} "
                "this vCPU does not have (no AVX/AVX-512 in the CPU model)",
                argument="xsave",
                value=xstate_bv,
            )
    mxcsr = state.mxcsr
    if mxcsr & ~_MXCSR_MASK:
        raise InvalidArgumentError(
            f"MXCSR {mxcsr:#x} sets reserved bits (mask {_MXCSR_MASK:#x}); XRSTOR would #GP",
            argument="xsave",
            value=mxcsr,
        )
    return xstate_bv, mxcsr


def write_fpu(uc: Any, state: FpuState) -> None:
    """Load ``state`` as XRSTOR with all of XCR0 requested would (components absent from
    XSTATE_BV take their initial values); checked before anything is written."""
    xstate_bv, mxcsr = _check_fpu(state)
    x86 = _state.x86
    raw = state.xsave
    if xstate_bv & _XSTATE_X87:
        fcw, fsw, abridged, fop, fip, fdp = struct.unpack_from("<HHBxHQQ", raw, 0)
        st = [struct.unpack_from("<QH", raw, 32 + 16 * i) for i in range(8)]
    else:
        fcw, fsw, abridged, fop, fip, fdp = _FCW_INIT, 0, 0, 0, 0, 0
        st = [(0, 0)] * 8
    top = (fsw >> 11) & 7
    uc.reg_write(x86.UC_X86_REG_FPSW, fsw)  # first: TOP places ST(i) below
    fp = _fp_regs(x86)
    for i, (mantissa, exponent) in enumerate(st):
        uc.reg_write(fp[(top + i) & 7], (mantissa, exponent))
    full_tag = 0
    for phys in range(8):
        if not abridged & (1 << phys):
            full_tag |= 3 << (2 * phys)  # empty (unicorn keeps empty / not empty)
    uc.reg_write(x86.UC_X86_REG_FPTAG, full_tag)
    uc.reg_write(x86.UC_X86_REG_FPCW, fcw)
    uc.reg_write(x86.UC_X86_REG_FOP, fop & 0x7FF)
    uc.reg_write(x86.UC_X86_REG_FIP, fip)
    uc.reg_write(x86.UC_X86_REG_FDP, fdp)
    uc.reg_write(x86.UC_X86_REG_MXCSR, mxcsr if xstate_bv & 0x3 else _MXCSR_INIT)
    for i, reg in enumerate(_xmm_regs(x86)):
        value = int.from_bytes(raw[160 + 16 * i : 176 + 16 * i], "little")
        uc.reg_write(reg, value if xstate_bv & _XSTATE_SSE else 0)
    _patch_context(uc, xcr0_offset(), "<Q", state.xcr0)


def reset_fpu(uc: Any) -> None:
    """The FPU state after RESET as KVM shows a new vCPU (FCW 0x37F, all registers empty,
    MXCSR 0x1F80, XCR0 1), in place of the engine's (FCW 0, MXCSR 0, tags not empty)."""
    area = bytearray(XSAVE_LEGACY_SIZE)
    struct.pack_into("<H", area, 0, _FCW_INIT)
    struct.pack_into("<II", area, 24, _MXCSR_INIT, _MXCSR_MASK)
    struct.pack_into("<Q", area, 512, XSTATE_SUPPORTED)
    write_fpu(uc, FpuState(bytes(area), 1))


# --------------------------------------------------------------------------- debug, events


def read_debug_registers(uc: Any) -> DebugRegisters:
    x86 = _state.x86
    dr = [int(uc.reg_read(getattr(x86, f"UC_X86_REG_DR{i}"))) & _U64 for i in (0, 1, 2, 3, 6, 7)]
    return DebugRegisters(*dr)


def write_debug_registers(uc: Any, state: DebugRegisters) -> None:
    if not isinstance(state, DebugRegisters):
        raise InvalidArgumentError(
            f"set_debug_registers takes an accel.cpustate.DebugRegisters, not "
            f"{type(state).__name__}",
            argument="state",
            value=state,
        )
    values = {0: state.dr0, 1: state.dr1, 2: state.dr2, 3: state.dr3, 6: state.dr6, 7: state.dr7}
    for n, value in values.items():
        limit = _U64 if n < 4 else 0xFFFFFFFF  # DR6/DR7 bits 63:32 are reserved (must be 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
            raise InvalidArgumentError(
                f"DR{n} value {value!r} is out of range (0..{limit:#x})",
                argument=f"dr{n}",
                value=value,
            )
    x86 = _state.x86
    for n, value in values.items():
        uc.reg_write(getattr(x86, f"UC_X86_REG_DR{n}"), value)


def read_events(uc: Any, layout: _state.ContextLayout) -> VcpuEvents:
    """The only event state unicorn keeps between instructions: the interrupt shadow."""
    (hflags,) = struct.unpack_from("<I", bytes(uc.context_save()), layout.hflags)
    return VcpuEvents(interrupt_shadow=1 if hflags & _HF_INHIBIT_IRQ else 0)


def write_events(uc: Any, layout: _state.ContextLayout, events: VcpuEvents) -> None:
    if not isinstance(events, VcpuEvents):
        raise InvalidArgumentError(
            f"set_events takes an accel.cpustate.VcpuEvents, not {type(events).__name__}",
            argument="events",
            value=events,
        )
    held = VcpuEvents(interrupt_shadow=events.interrupt_shadow)
    if events != held:
        extra = [
            name
            for name in events.__dataclass_fields__
            if getattr(events, name) != getattr(held, name)
        ]
        raise InvalidArgumentError(
            f"a tcg vCPU holds no injected or pending exception or SMI between instructions; "
            f"cannot set {', '.join(extra)}",
            hint="take the snapshot between instructions with no event in flight, or "
            "deliver the event through the interrupt-injection API",
            argument="events",
            value=events,
        )
    if events.interrupt_shadow not in (0, 1, 2, 3):
        raise InvalidArgumentError(
            f"interrupt_shadow {events.interrupt_shadow!r} is not 0..3 (bit 0 STI, bit 1 MOV SS)",
            argument="interrupt_shadow",
            value=events.interrupt_shadow,
        )
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    (hflags,) = struct.unpack_from("<I", raw, layout.hflags)
    hflags = (hflags | _HF_INHIBIT_IRQ) if events.interrupt_shadow else hflags & ~_HF_INHIBIT_IRQ
    struct.pack_into("<I", raw, layout.hflags, hflags)
    _state._load_context(uc, ctx, bytes(raw))
