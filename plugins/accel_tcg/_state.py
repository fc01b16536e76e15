"""Register state of a unicorn x86 engine in the contract's dataclasses.

Unicorn's register API sets a segment register by *selector* only (the hidden base,
limit and flags are then computed as the processor would, from the GDT in protected
mode). The contract's :class:`~accel.SpecialRegisters` carries the hidden parts too (the
architectural reset state has CS selector 0xF000 with base 0xFFFF0000), so segment
caches are read and written in the engine's saved context (QEMU's ``CPUX86State``),
whose layout this module finds at run time by writing known values and looking for
them. If the layout cannot be found, :func:`find_layout` raises and the accelerator
reports itself unavailable with that reason rather than run with a wrong state.
"""

from __future__ import annotations

import ctypes
import importlib
import struct
from dataclasses import dataclass
from typing import Any

from accel.accelerator import DescriptorTable, Registers, Segment, SpecialRegisters

#: The unicorn module and its x86 constants, typed loosely (unicorn's own hints are partial).
U: Any = importlib.import_module("unicorn")
x86: Any = importlib.import_module("unicorn.x86_const")
UcError: type[Exception] = U.UcError
RIP: int = x86.UC_X86_REG_RIP

# QEMU's hidden-flag bits (target/i386/cpu.h) that depend on segment caches.
HF_CPL_MASK = 0x3
HF_CS32_MASK = 1 << 4
HF_SS32_MASK = 1 << 5
HF_ADDSEG_MASK = 1 << 6
HF_PE_MASK = 1 << 7
HF_LMA_MASK = 1 << 14
HF_CS64_MASK = 1 << 15

# QEMU's segment-cache flag bits (the descriptor's high dword).
DESC_TYPE_SHIFT = 8
DESC_S_SHIFT = 12
DESC_DPL_SHIFT = 13
DESC_P_SHIFT = 15
DESC_AVL_SHIFT = 20
DESC_L_SHIFT = 21
DESC_B_SHIFT = 22
DESC_G_SHIFT = 23

MSR_EFER = 0xC0000080
EFER_LMA = 1 << 10
CR0_PE = 1

#: Segment order of QEMU's ``segs[]`` array, then the four system caches that follow it.
_SEG_ORDER = ("es", "cs", "ss", "ds", "fs", "gs")
_SEG_STRUCT = struct.Struct("<IxxxxQII")  # selector, (pad), base, limit, flags

_GPR = (
    ("rax", x86.UC_X86_REG_RAX),
    ("rbx", x86.UC_X86_REG_RBX),
    ("rcx", x86.UC_X86_REG_RCX),
    ("rdx", x86.UC_X86_REG_RDX),
    ("rsi", x86.UC_X86_REG_RSI),
    ("rdi", x86.UC_X86_REG_RDI),
    ("rsp", x86.UC_X86_REG_RSP),
    ("rbp", x86.UC_X86_REG_RBP),
    ("r8", x86.UC_X86_REG_R8),
    ("r9", x86.UC_X86_REG_R9),
    ("r10", x86.UC_X86_REG_R10),
    ("r11", x86.UC_X86_REG_R11),
    ("r12", x86.UC_X86_REG_R12),
    ("r13", x86.UC_X86_REG_R13),
    ("r14", x86.UC_X86_REG_R14),
    ("r15", x86.UC_X86_REG_R15),
    ("rip", x86.UC_X86_REG_RIP),
    ("rflags", x86.UC_X86_REG_RFLAGS),
)
_GPR_IDS = [reg for _, reg in _GPR]


@dataclass(frozen=True, slots=True)
class ContextLayout:
    """Byte offsets inside unicorn's saved x86 context (``CPUX86State``)."""

    hflags: int
    efer: int
    segs: int  # ES, CS, SS, DS, FS, GS, then LDT, TR (24 bytes each)
    size: int
    #: ``error_code`` of the exception being raised (then ``exception_is_int``), or None
    #: when not found: protected-mode exception delivery is then not offered.
    exc_error: int | None = None

    def seg_offset(self, name: str) -> int:
        if name == "ldt":
            return self.segs + 6 * _SEG_STRUCT.size
        if name == "tr":
            return self.segs + 7 * _SEG_STRUCT.size
        return self.segs + _SEG_ORDER.index(name) * _SEG_STRUCT.size


class LayoutError(RuntimeError):
    """Unicorn's context layout is not the one this module understands."""


def find_layout() -> ContextLayout:
    """Locate the segment caches and hidden flags in this unicorn build's context."""
    uc = U.Uc(U.UC_ARCH_X86, U.UC_MODE_16)
    uc.reg_write(x86.UC_X86_REG_ES, 0x1234)
    uc.reg_write(x86.UC_X86_REG_DS, 0x4321)
    raw = bytes(uc.context_save())
    es = raw.find(_SEG_STRUCT.pack(0x1234, 0x12340, 0xFFFF, 0x9300))
    ds = raw.find(_SEG_STRUCT.pack(0x4321, 0x43210, 0xFFFF, 0x9300))
    if es < 0 or ds != es + 3 * _SEG_STRUCT.size:
        raise LayoutError("cannot find the segment caches in unicorn's x86 context")
    probe = U.Uc(U.UC_ARCH_X86, U.UC_MODE_16)
    before = bytes(probe.context_save())
    probe.msr_write(MSR_EFER, 0xD01)  # SCE | LME | NXE (LME is masked in 16-bit mode)
    after = bytes(probe.context_save())
    efer = after.find(struct.pack("<Q", probe.msr_read(MSR_EFER)))
    if efer < 0 or before[efer : efer + 8] != bytes(8):
        raise LayoutError("cannot find EFER in unicorn's x86 context")
    layout = ContextLayout(
        hflags=es - 8, efer=efer, segs=es, size=len(raw), exc_error=_find_exception_fields()
    )
    # Check the hidden flags word: real mode has PE clear, 32-bit mode PE|CS32|SS32.
    (hf16,) = struct.unpack_from("<I", raw, layout.hflags)
    raw32 = bytes(U.Uc(U.UC_ARCH_X86, U.UC_MODE_32).context_save())
    (hf32,) = struct.unpack_from("<I", raw32, layout.hflags)
    want = HF_PE_MASK | HF_CS32_MASK | HF_SS32_MASK
    if hf16 & HF_PE_MASK or hf32 & want != want or len(raw32) != len(raw):
        raise LayoutError("cannot find the hidden flags in unicorn's x86 context")
    return layout


def _find_exception_fields() -> int | None:
    """Offset of QEMU's ``error_code, exception_is_int, exception_next_eip`` in the context.

    Found by running ``int 0x0d`` in a probe engine: inside the interrupt hook those read
    0, 1 and the address after the INT.
    """
    probe = U.Uc(U.UC_ARCH_X86, U.UC_MODE_16)
    probe.mem_map(0, 0x2000)
    probe.mem_write(0x1000, bytes.fromhex("cd0d f4"))
    seen: list[bytes] = []

    def on_intr(uc: Any, vector: int, _ud: object) -> None:
        seen.append(bytes(uc.context_save()))
        uc.emu_stop()

    probe.hook_add(U.UC_HOOK_INTR, on_intr)
    try:
        probe.emu_start(0x1000, 0x2000)
    except Exception:
        return None
    if not seen:
        return None
    raw = seen[0]
    at = raw.find(struct.pack("<IIQ", 0, 1, 0x1002))
    if at < 0 or at % 4 or raw.find(struct.pack("<IIQ", 0, 1, 0x1002), at + 1) >= 0:
        return None
    # QEMU: error_code, exception_is_int, exception_next_eip, dr[8], 4 pointers, then
    # old_exception, which is -1 when no exception is in flight.
    fresh = bytes(U.Uc(U.UC_ARCH_X86, U.UC_MODE_64).context_save())
    if struct.unpack_from("<i", fresh, at + _OLD_EXCEPTION)[0] != -1:
        return None
    return at


_OLD_EXCEPTION = 4 + 4 + 8 + 8 * 8 + 4 * 8


def exception_delivered(uc: Any, layout: ContextLayout) -> None:
    """Tell the engine no exception is in flight any more (``old_exception = -1``).

    Unicorn leaves delivery to its hook, so QEMU never clears the in-flight exception;
    without this the next fault would be promoted to a double fault.
    """
    if layout.exc_error is None:
        return
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    struct.pack_into("<i", raw, layout.exc_error + _OLD_EXCEPTION, -1)
    _load_context(uc, ctx, bytes(raw))


def exception_info(uc: Any, layout: ContextLayout) -> tuple[int, bool] | None:
    """``(error_code, is_software_int)`` of the exception being raised, if known."""
    if layout.exc_error is None:
        return None
    raw = bytes(uc.context_save())
    error, is_int = struct.unpack_from("<iI", raw, layout.exc_error)
    return error & 0xFFFFFFFF, bool(is_int)


def load_segment_cache(
    uc: Any, layout: ContextLayout, name: str, selector: int, descriptor: int
) -> None:
    """Load segment ``name`` from a raw 8-byte GDT ``descriptor`` (no checks: the caller's).

    Keeps QEMU's hidden flags consistent for CS (32-bit default operand size).
    """
    lo, hi = descriptor & 0xFFFFFFFF, descriptor >> 32
    base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)
    limit = (lo & 0xFFFF) | (hi & 0x000F0000)
    flags = hi & 0x00F0FF00
    if flags & (1 << DESC_G_SHIFT):
        limit = (limit << 12) | 0xFFF
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    _SEG_STRUCT.pack_into(raw, layout.seg_offset(name), selector & 0xFFFF, base, limit, flags)
    if name == "cs":
        (hflags,) = struct.unpack_from("<I", raw, layout.hflags)
        hflags &= ~(HF_CS32_MASK | HF_CS64_MASK | HF_CPL_MASK)
        if flags & (1 << DESC_B_SHIFT):
            hflags |= HF_CS32_MASK
        hflags |= (flags >> DESC_DPL_SHIFT) & 3
        struct.pack_into("<I", raw, layout.hflags, hflags)
    _load_context(uc, ctx, bytes(raw))


def new_engine(tb_size_mib: int | None = None) -> Any:
    """A unicorn x86 engine (64-bit build; the guest's mode comes from its registers),
    with a translation buffer of ``tb_size_mib`` MiB (set before the engine is first
    used, as unicorn requires) or unicorn's default."""
    uc = U.Uc(U.UC_ARCH_X86, U.UC_MODE_64)
    if tb_size_mib is not None:
        uc.ctl_set_tcg_buffer_size(tb_size_mib << 20)
    # No "until" address: with one, unicorn translates it when emu_start ends, and under
    # 32-bit paging (where the address is truncated to an unmapped one) that page fault
    # leaves the address in the guest's CR2 (measured on 2.1.4). An empty exit list
    # makes emu_start ignore its "until" argument.
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    return uc


# --------------------------------------------------------------------------- segments


def seg_to_flags(seg: Segment) -> int:
    return (
        (seg.type & 0xF) << DESC_TYPE_SHIFT
        | (seg.s & 1) << DESC_S_SHIFT
        | (seg.dpl & 3) << DESC_DPL_SHIFT
        | (seg.present & 1) << DESC_P_SHIFT
        | (seg.avl & 1) << DESC_AVL_SHIFT
        | (seg.l & 1) << DESC_L_SHIFT
        | (seg.db & 1) << DESC_B_SHIFT
        | (seg.g & 1) << DESC_G_SHIFT
    )


def flags_to_seg(selector: int, base: int, limit: int, flags: int) -> Segment:
    present = (flags >> DESC_P_SHIFT) & 1
    return Segment(
        base=base,
        limit=limit,
        selector=selector,
        type=(flags >> DESC_TYPE_SHIFT) & 0xF,
        present=present,
        dpl=(flags >> DESC_DPL_SHIFT) & 3,
        db=(flags >> DESC_B_SHIFT) & 1,
        s=(flags >> DESC_S_SHIFT) & 1,
        l=(flags >> DESC_L_SHIFT) & 1,
        g=(flags >> DESC_G_SHIFT) & 1,
        avl=(flags >> DESC_AVL_SHIFT) & 1,
        unusable=0 if present else 1,
    )


# --------------------------------------------------------------------------- access


def read_regs(uc: Any) -> Registers:
    values = uc.reg_read_batch(_GPR_IDS)
    return Registers(*values)


def write_regs(uc: Any, regs: Registers) -> None:
    uc.reg_write_batch([(reg, getattr(regs, name)) for name, reg in _GPR])


def read_sregs(uc: Any, layout: ContextLayout, apic_base: int) -> SpecialRegisters:
    raw = bytes(uc.context_save())
    segs: dict[str, Segment] = {}
    for name in (*_SEG_ORDER, "ldt", "tr"):
        sel, base, limit, flags = _SEG_STRUCT.unpack_from(raw, layout.seg_offset(name))
        segs[name] = flags_to_seg(sel, base, limit, flags)
    _, gbase, glimit, _ = uc.reg_read(x86.UC_X86_REG_GDTR)
    _, ibase, ilimit, _ = uc.reg_read(x86.UC_X86_REG_IDTR)
    cr0, cr2, cr3, cr4, cr8 = uc.reg_read_batch(
        [
            x86.UC_X86_REG_CR0,
            x86.UC_X86_REG_CR2,
            x86.UC_X86_REG_CR3,
            x86.UC_X86_REG_CR4,
            x86.UC_X86_REG_CR8,
        ]
    )
    return SpecialRegisters(
        gdt=DescriptorTable(gbase, glimit),
        idt=DescriptorTable(ibase, ilimit),
        cr0=cr0,
        cr2=cr2,
        cr3=cr3,
        cr4=cr4,
        cr8=cr8,
        efer=uc.msr_read(MSR_EFER),
        apic_base=apic_base,
        **segs,
    )


def write_sregs(uc: Any, layout: ContextLayout, sregs: SpecialRegisters) -> None:
    """Load every special register, hidden segment parts included."""
    uc.reg_write(x86.UC_X86_REG_CR4, sregs.cr4)
    uc.reg_write(x86.UC_X86_REG_CR3, sregs.cr3)
    uc.msr_write(MSR_EFER, sregs.efer)
    uc.reg_write(x86.UC_X86_REG_CR0, sregs.cr0)
    uc.reg_write(x86.UC_X86_REG_CR2, sregs.cr2)
    uc.reg_write(x86.UC_X86_REG_CR8, sregs.cr8)
    uc.reg_write(x86.UC_X86_REG_GDTR, (0, sregs.gdt.base, sregs.gdt.limit, 0))
    uc.reg_write(x86.UC_X86_REG_IDTR, (0, sregs.idt.base, sregs.idt.limit, 0))

    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    for name in (*_SEG_ORDER, "ldt", "tr"):
        seg: Segment = getattr(sregs, name)
        flags = seg_to_flags(seg)
        _SEG_STRUCT.pack_into(
            raw, layout.seg_offset(name), seg.selector & 0xFFFF, seg.base, seg.limit, flags
        )
    # EFER.LMA is read-only to WRMSR: write the whole register in the context.
    struct.pack_into("<Q", raw, layout.efer, sregs.efer)
    (hflags,) = struct.unpack_from("<I", raw, layout.hflags)
    hflags &= ~HF_LMA_MASK
    if sregs.efer & EFER_LMA:
        hflags |= HF_LMA_MASK
    hflags &= ~(HF_CPL_MASK | HF_CS32_MASK | HF_SS32_MASK | HF_ADDSEG_MASK | HF_CS64_MASK)
    pe = bool(sregs.cr0 & CR0_PE)
    lma = bool(hflags & HF_LMA_MASK)
    if lma and sregs.cs.l:
        hflags |= HF_CS32_MASK | HF_SS32_MASK | HF_CS64_MASK
    else:
        if sregs.cs.db:
            hflags |= HF_CS32_MASK
        if sregs.ss.db:
            hflags |= HF_SS32_MASK
    if pe:
        hflags |= sregs.ss.dpl & 3 if not sregs.cs.l else sregs.cs.dpl & 3
    if not hflags & HF_CS64_MASK and (
        not pe or not hflags & HF_CS32_MASK or (sregs.ds.base | sregs.es.base | sregs.ss.base)
    ):
        hflags |= HF_ADDSEG_MASK
    struct.pack_into("<I", raw, layout.hflags, hflags)
    ctx_bytes = bytes(raw)
    _load_context(uc, ctx, ctx_bytes)


def segment_base(uc: Any, layout: ContextLayout, name: str) -> int:
    """The hidden base of segment register ``name``."""
    raw = bytes(uc.context_save())
    _, base, _, _ = _SEG_STRUCT.unpack_from(raw, layout.seg_offset(name))
    return int(base)


def segment_limit(uc: Any, layout: ContextLayout, name: str) -> int:
    """The hidden limit of segment register ``name``."""
    raw = bytes(uc.context_save())
    _, _, limit, _ = _SEG_STRUCT.unpack_from(raw, layout.seg_offset(name))
    return int(limit)


def load_real_mode_segment(uc: Any, layout: ContextLayout, name: str, selector: int) -> None:
    """Load a segment as real mode does: selector and base = selector << 4, rest kept."""
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    off = layout.seg_offset(name)
    _, _, limit, flags = _SEG_STRUCT.unpack_from(raw, off)
    _SEG_STRUCT.pack_into(raw, off, selector & 0xFFFF, (selector & 0xFFFF) << 4, limit, flags)
    _load_context(uc, ctx, bytes(raw))


def _load_context(uc: Any, ctx: Any, raw: bytes) -> None:
    ctypes.memmove(ctx.context, raw, len(raw))
    uc.context_restore(ctx)


__all__ = [
    "ContextLayout",
    "LayoutError",
    "exception_delivered",
    "exception_info",
    "find_layout",
    "load_segment_cache",
    "load_real_mode_segment",
    "segment_base",
    "new_engine",
    "read_regs",
    "read_sregs",
    "write_regs",
    "write_sregs",
]
