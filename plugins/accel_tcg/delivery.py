"""Exception and interrupt delivery for the TCG vCPU, in every CPU mode.

Unicorn raises an exception inside the instruction and hands the vector to the plugin's
interrupt hook; it delivers nothing itself. This module does what the processor does
next (Intel SDM vol. 3, ch. 6 "Interrupt and exception handling"; QEMU's
``target/i386/tcg/seg_helper.c``: ``do_interrupt_real``, ``do_interrupt_protected``,
``do_interrupt64``), reading and writing the guest's registers in the engine and its
memory *through the guest's paging* (:func:`accel_tcg.paging.translate`):

real mode
    The IVT entry (IP, CS) at ``IDTR.base + 4 * vector``; FLAGS, CS and IP pushed on SS:SP
    (16-bit wrap), IF, TF and AC cleared.
16- and 32-bit protected mode, paging off or on
    An 8-byte IDT gate: 16-bit (type 6/7) or 32-bit (type 14/15) interrupt or trap gate.
    A software ``INT n`` / ``INT3`` / ``INTO`` needs gate DPL >= CPL (else #GP). The gate's
    code segment comes from the GDT or the LDT; a handler at an inner privilege level
    (non-conforming, DPL < CPL) gets the stack for that level from the TSS (32-bit TSS:
    ESPn/SSn at 4 + 8n; 16-bit TSS: SPn/SSn at 2 + 4n), and the old SS:ESP is pushed
    before (E)FLAGS, CS, (E)IP and the error code, each 2 or 4 bytes as the gate says.
    The stack pointer wraps at 16 bits when SS is a 16-bit segment (SS.B = 0).
64-bit long mode
    A 16-byte gate (type 14/15 only); a handler at an inner privilege level, or any gate
    with a non-zero IST field, switches to RSPn / ISTn of the 64-bit TSS (RSPn at 4 + 8n,
    ISTn at 0x24 + 8(n-1)) and SS becomes the NULL selector with RPL = the new CPL; RSP
    is aligned down to 16 bytes; SS, RSP, RFLAGS, CS, RIP and the error code are pushed
    as 8-byte values, always.

In every protected mode an interrupt gate clears IF (a trap gate leaves it), and TF, NT,
RF and VM are cleared. Task gates (a hardware task switch) are not emulated: delivery
through one ends the run with an :class:`~accel.InternalErrorExit` saying so, as does
virtual-8086 mode.

Faults while delivering
    A check that fails (gate beyond the IDT limit: #GP(vector * 8 + 2, or * 16 in long
    mode), a non-present gate or code segment: #NP, a bad TSS stack: #TS, a stack page
    that is not mapped or not writable: #PF with CR2 and the error code the walk finds)
    is raised as the SDM says, with EXT (bit 0) set when the event being delivered was
    not a software interrupt. It combines with the event being delivered as SDM table 6-5
    says: contributory (#DE #TS #NP #SS #GP) after contributory, or a contributory or
    #PF after a #PF, is a double fault (#DF, error code 0); anything else is delivered
    in turn; a fault while delivering #DF is a triple fault, which ends the run as
    :class:`~accel.ShutdownExit` ``"triple fault: ..."`` (the machine's reset).

What unicorn tells, and what is worked out here
    Unicorn (QEMU 5's TCG) leaves in its CPU state, inside the interrupt hook, the error
    code QEMU computed (``env->error_code``: the selector of a #GP from a segment load,
    the #PF error code), whether the event is a software interrupt
    (``env->exception_is_int``: INT n, INT3, INTO) and, for a #PF, CR2 (it sets it before
    raising). RIP there is the faulting instruction for a fault and the next instruction
    for a software interrupt (measured on 2.1.4: ``div`` leaves RIP at the DIV, ``int3``
    after it), which is what the frame holds. Which vectors push an error code is the
    architecture's (#DF #TS #NP #SS #GP #PF #AC #CP, never for a software INT n), not
    the engine's. A #UD reaches the plugin as ``UC_ERR_INSN_INVALID`` from
    ``emu_start``, with RIP at the instruction. Faults this module raises itself (above)
    carry the error codes it computes.

Not emulated (and said here): accessed/dirty bits of the page tables and descriptors are
not set by delivery; a non-canonical handler address or stack pointer is not checked;
SMEP/SMAP, protection keys and shadow stacks (#CP is listed only for its error code).
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Any, Final

from accel.accelerator import Exit, InternalErrorExit, ShutdownExit

from . import _state
from .paging import PageFault, translate

__all__ = ["ERROR_CODE_VECTORS", "Event", "Outcome", "deliver", "syscall"]

#: Exceptions that push an error code (#DF #TS #NP #SS #GP #PF #AC #CP).
ERROR_CODE_VECTORS: Final = frozenset({8, 10, 11, 12, 13, 14, 17, 21})
#: SDM table 6-4: the contributory exceptions (#DE #TS #NP #SS #GP).
_CONTRIBUTORY: Final = frozenset({0, 10, 11, 12, 13})
_DF, _TS, _NP, _SS, _GP, _PF = 8, 10, 11, 12, 13, 14

_IF: Final = 1 << 9
_TF: Final = 1 << 8
_NT: Final = 1 << 14
_RF: Final = 1 << 16
_VM: Final = 1 << 17
_AC: Final = 1 << 18
_CR0_PE: Final = 1

# QEMU's segment-cache flag bits (the descriptor's high dword).
_DESC_DPL_SHIFT: Final = 13
_DESC_P: Final = 1 << 15
_DESC_S: Final = 1 << 12
_DESC_CODE: Final = 1 << 11
_DESC_CONFORMING: Final = 1 << 10
_DESC_W: Final = 1 << 9
_DESC_L: Final = 1 << 21
_DESC_B: Final = 1 << 22
_DESC_G: Final = 1 << 23

_SEG = struct.Struct("<IxxxxQII")  # selector, (pad), base, limit, flags (QEMU SegmentCache)
_MAX_CHAIN: Final = 8


@dataclass(frozen=True, slots=True)
class Event:
    """One event to deliver: an exception, a software interrupt or an external one."""

    vector: int
    #: the error code pushed (None: none is pushed)
    error_code: int | None = None
    #: INT n / INT3 / INTO: the gate's DPL is checked against CPL, RIP is the next insn
    software: bool = False
    #: an external interrupt or NMI (EXT = 1 in the error code of a fault delivering it)
    external: bool = False

    @property
    def ext(self) -> int:
        """The EXT bit of a fault raised while delivering this event."""
        return 0 if self.software else 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`deliver` did: ``exit`` ends the run (triple fault, unsupported);
    otherwise the handler's linear address is ``resume_at`` and ``delivered`` the event
    the guest took (it may be a #DF or a fault of the delivery, not the one asked for)."""

    exit: Exit | None
    resume_at: int | None = None
    delivered: Event | None = None


class _Fault(Exception):
    """A fault raised while delivering an event."""

    def __init__(self, vector: int, error_code: int | None, cr2: int | None = None) -> None:
        super().__init__(vector, error_code, cr2)
        self.vector = vector
        self.error_code = error_code
        self.cr2 = cr2


class _Unsupported(Exception):
    """Delivery this module does not emulate (a task gate, virtual-8086 mode)."""


class _NoMemory(Exception):
    """A table or stack is not in guest RAM (the caller reports an internal error)."""


def _name(vector: int) -> str:
    names = {0: "#DE", 6: "#UD", 8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF"}
    return names.get(vector, f"vector {vector}")


def _combine(first: Event, second: _Fault) -> Event | None:
    """SDM table 6-5: the event to deliver after ``second`` faulted while delivering
    ``first``; None for a triple fault."""
    if first.vector == _DF and not first.software:
        return None
    double = not first.software and (
        (first.vector in _CONTRIBUTORY and second.vector in _CONTRIBUTORY)
        or (first.vector == _PF and (second.vector in _CONTRIBUTORY or second.vector == _PF))
    )
    if double:
        return Event(_DF, 0)
    return Event(second.vector, second.error_code)


def deliver(uc: Any, layout: _state.ContextLayout, event: Event) -> Outcome:
    """Deliver ``event`` on engine ``uc`` as the CPU's mode says (see the module doc)."""
    first = _name(event.vector)
    chain = [first if first.startswith("vector") else f"vector {event.vector} ({first})"]
    current = event
    rip: int | None = None  # where a fault of the delivery points (None: RIP as it is)
    for _ in range(_MAX_CHAIN):
        try:
            resume = _Delivery(uc, layout, current, rip).run()
            return Outcome(None, resume, current)
        except _Fault as fault:
            if fault.cr2 is not None:
                uc.reg_write(_state.x86.UC_X86_REG_CR2, fault.cr2)
            raised = _name(fault.vector)
            if fault.error_code is not None:
                raised += f"({fault.error_code:#x})"
            nxt = _combine(current, fault)
            if nxt is None:
                reason = " -> ".join(chain) + f", then {raised} while delivering #DF"
                return Outcome(ShutdownExit("triple fault: " + reason))
            chain.append(raised if nxt.vector == fault.vector else f"{raised}, so #DF")
            if current.software and rip is None:
                rip = _software_insn(uc, layout, current.vector)
            current = nxt
        except _Unsupported as exc:
            return Outcome(
                InternalErrorExit(
                    "emulation", event.vector, f"vector {event.vector}: {exc} by the tcg plugin"
                )
            )
        except (_NoMemory, _state.UcError) as exc:
            return Outcome(
                InternalErrorExit(
                    "emulation", event.vector, f"vector {event.vector}: delivery failed: {exc}"
                )
            )
    return Outcome(ShutdownExit("triple fault: " + " -> ".join(chain)))  # pragma: no cover


def _software_insn(uc: Any, layout: _state.ContextLayout, vector: int) -> int:
    """The address of the INT n / INT3 / INTO that raised software interrupt ``vector``.

    Unicorn leaves RIP after the instruction (the frame of a software interrupt holds the
    next instruction), but a fault while delivering it is a fault *of that instruction*
    and its frame must point at it. The instruction is found by its bytes before RIP:
    ``CD ib`` (2 bytes), ``CC`` (INT3) and ``CE`` (INTO), 1 byte.
    """
    from .paging import linear_to_physical

    rip = int(uc.reg_read(_state.x86.UC_X86_REG_RIP))
    base = 0 if _state.HF_CS64_MASK & _hflags(uc, layout) else _state.segment_base(uc, layout, "cs")

    def byte_at(offset: int) -> int | None:
        physical = linear_to_physical(uc, base + rip - offset)
        if physical is None:
            return None
        try:
            return int(bytes(uc.mem_read(physical, 1))[0])
        except _state.UcError:
            return None

    if byte_at(2) == 0xCD and byte_at(1) == vector:
        return rip - 2
    if (vector, byte_at(1)) in ((3, 0xCC), (4, 0xCE)):
        return rip - 1
    return rip


def _hflags(uc: Any, layout: _state.ContextLayout) -> int:
    return int(struct.unpack_from("<I", bytes(uc.context_save()), layout.hflags)[0])


class _Delivery:
    """One attempt at delivering one event; raises :class:`_Fault` when a check fails."""

    def __init__(
        self, uc: Any, layout: _state.ContextLayout, event: Event, rip: int | None = None
    ) -> None:
        x86 = _state.x86
        self.uc, self.layout, self.event = uc, layout, event
        self.ctx = uc.context_save()
        self.raw = bytearray(bytes(self.ctx))
        self.cr0 = int(uc.reg_read(x86.UC_X86_REG_CR0))
        self.rip = int(uc.reg_read(x86.UC_X86_REG_RIP)) if rip is None else rip
        self.rsp = int(uc.reg_read(x86.UC_X86_REG_RSP))
        self.rflags = int(uc.reg_read(x86.UC_X86_REG_RFLAGS))
        self.hflags = int(struct.unpack_from("<I", self.raw, layout.hflags)[0])
        self.cpl = self.hflags & _state.HF_CPL_MASK
        self.long = bool(self.hflags & _state.HF_LMA_MASK)

    # -- engine state
    def seg(self, name: str) -> tuple[int, int, int, int]:
        sel, base, limit, flags = _SEG.unpack_from(self.raw, self.layout.seg_offset(name))
        return int(sel), int(base), int(limit), int(flags)

    def set_seg(self, name: str, sel: int, base: int, limit: int, flags: int) -> None:
        _SEG.pack_into(self.raw, self.layout.seg_offset(name), sel & 0xFFFF, base, limit, flags)

    def commit(self, rsp: int, rip: int, rflags: int, hflags: int) -> None:
        """Write the new segments and hidden flags, then the registers; the in-flight
        exception is cleared (QEMU's ``old_exception = -1``: unicorn never does, and the
        next fault would be promoted to #DF)."""
        x86 = _state.x86
        struct.pack_into("<I", self.raw, self.layout.hflags, hflags)
        if self.layout.exc_error is not None:
            struct.pack_into("<i", self.raw, self.layout.exc_error + _state._OLD_EXCEPTION, -1)
        _state._load_context(self.uc, self.ctx, bytes(self.raw))
        self.uc.reg_write(x86.UC_X86_REG_RSP, rsp)
        self.uc.reg_write(x86.UC_X86_REG_RFLAGS, rflags)
        self.uc.reg_write(x86.UC_X86_REG_RIP, rip)

    # -- guest memory through paging (implicit accesses to tables are supervisor ones)
    def _physical(self, linear: int, write: bool, user: bool) -> int:
        try:
            return translate(self.uc, linear, write=write, user=user)
        except PageFault as pf:
            raise _Fault(_PF, pf.error_code, cr2=pf.linear) from None

    def read(self, linear: int, size: int, *, user: bool = False) -> bytes:
        out = b""
        while size:
            chunk = min(size, 0x1000 - (linear & 0xFFF))
            phys = self._physical(linear, False, user)
            try:
                out += bytes(self.uc.mem_read(phys, chunk))
            except _state.UcError as exc:
                raise _NoMemory(f"no guest RAM at {phys:#x} (linear {linear:#x})") from exc
            linear, size = linear + chunk, size - chunk
        return out

    def write(self, linear: int, data: bytes, *, user: bool = False) -> None:
        # every page is translated (and may fault) before any byte is written
        pieces = []
        at = 0
        while at < len(data):
            chunk = min(len(data) - at, 0x1000 - ((linear + at) & 0xFFF))
            pieces.append((self._physical(linear + at, True, user), data[at : at + chunk]))
            at += chunk
        for phys, piece in pieces:
            try:
                self.uc.mem_write(phys, piece)
            except _state.UcError as exc:
                raise _NoMemory(f"no guest RAM at {phys:#x} (linear {linear:#x})") from exc
        # translated code of those bytes is stale (a guest store would drop it)
        with contextlib.suppress(_state.UcError):
            self.uc.ctl_remove_cache(linear, linear + len(data))

    # -- descriptors
    def descriptor(self, selector: int, vector_fault: int) -> int:
        """The 8-byte descriptor of ``selector`` (GDT or LDT); #GP/#TS(selector) when it
        is beyond the table's limit."""
        x86 = _state.x86
        if selector & 4:
            _, base, limit, _ = self.seg("ldt")
        else:
            _, base, limit, _ = self.uc.reg_read(x86.UC_X86_REG_GDTR)
        index = selector & ~7
        if index + 7 > limit:
            raise _Fault(vector_fault, (selector & 0xFFFC) | self.event.ext)
        (value,) = struct.unpack("<Q", self.read(base + index, 8))
        return int(value)

    @staticmethod
    def cache(descriptor: int) -> tuple[int, int, int]:
        lo, hi = descriptor & 0xFFFFFFFF, descriptor >> 32
        base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)
        limit = (lo & 0xFFFF) | (hi & 0x000F0000)
        flags = hi & 0x00F0FF00
        if flags & _DESC_G:
            limit = (limit << 12) | 0xFFF
        return base, limit, flags

    def _hflags_for(self, cs_flags: int, ss_flags: int, cpl: int) -> int:
        """QEMU's ``cpu_x86_load_seg_cache`` hidden flags for the new CS, SS and CPL."""
        hf = self.hflags & ~(
            _state.HF_CS32_MASK
            | _state.HF_CS64_MASK
            | _state.HF_SS32_MASK
            | _state.HF_ADDSEG_MASK
            | _state.HF_CPL_MASK
        )
        hf |= cpl
        if self.long and cs_flags & _DESC_L:
            return hf | _state.HF_CS32_MASK | _state.HF_SS32_MASK | _state.HF_CS64_MASK
        if cs_flags & _DESC_B:
            hf |= _state.HF_CS32_MASK
        if ss_flags & _DESC_B:
            hf |= _state.HF_SS32_MASK
        bases = self.seg("ds")[1] | self.seg("es")[1] | self.seg("ss")[1]
        if not hf & _state.HF_CS32_MASK or bases:
            hf |= _state.HF_ADDSEG_MASK
        return hf

    # -- the modes
    def run(self) -> int:
        if not self.cr0 & _CR0_PE:
            return self.real()
        if self.rflags & _VM:
            raise _Unsupported("delivery in virtual-8086 mode is not emulated")
        if self.long:
            return self.protected(gate_size=16)
        return self.protected(gate_size=8)

    def real(self) -> int:
        x86, ev = _state.x86, self.event
        _, idt_base, idt_limit, _ = self.uc.reg_read(x86.UC_X86_REG_IDTR)
        if ev.vector * 4 + 3 > idt_limit:
            raise _Fault(_GP, ev.vector * 8 + 2 | ev.ext)
        ip, cs = (int(v) for v in struct.unpack("<HH", self.read(idt_base + ev.vector * 4, 4)))
        ss_base = self.seg("ss")[1]
        sp = self.rsp & 0xFFFF
        for word in (self.rflags, self.seg("cs")[0], self.rip):
            sp = (sp - 2) & 0xFFFF
            self.write(ss_base + sp, (word & 0xFFFF).to_bytes(2, "little"))
        _, _, limit, flags = self.seg("cs")
        self.set_seg("cs", cs, cs << 4, limit, flags)
        rflags = self.rflags & ~(_IF | _TF | _AC)
        self.commit((self.rsp & ~0xFFFF) | sp, ip, rflags, self.hflags)
        return (cs << 4) + ip

    def protected(self, *, gate_size: int) -> int:
        ev = self.event
        x86 = _state.x86
        _, idt_base, idt_limit, _ = self.uc.reg_read(x86.UC_X86_REG_IDTR)
        idt_error = ev.vector * gate_size + 2 | ev.ext  # IDT bit (1) and EXT
        if ev.vector * gate_size + gate_size - 1 > idt_limit:
            raise _Fault(_GP, idt_error)
        raw = self.read(idt_base + ev.vector * gate_size, gate_size)
        lo, hi = (int(v) for v in struct.unpack_from("<II", raw))
        gate_type = (hi >> 8) & 0x1F
        gate_dpl = (hi >> 13) & 3
        if gate_size == 16:
            if gate_type not in (0xE, 0xF):
                raise _Fault(_GP, idt_error)
            upper = int(struct.unpack_from("<I", raw, 8)[0])
            offset = (lo & 0xFFFF) | (hi & 0xFFFF0000) | (upper << 32)
            ist = hi & 7
            shift = 3
        else:
            if gate_type == 5:
                raise _Unsupported(
                    "a task gate (hardware task switch) in the IDT; task switches are not emulated"
                )
            if gate_type not in (6, 7, 0xE, 0xF):
                raise _Fault(_GP, idt_error)
            offset = (lo & 0xFFFF) | (hi & 0xFFFF0000)
            shift = 2 if gate_type & 8 else 1
            if shift == 1:
                offset &= 0xFFFF
            ist = 0
        trap = bool(gate_type & 1)
        if ev.software and gate_dpl < self.cpl:
            raise _Fault(_GP, ev.vector * gate_size + 2)
        if not hi & 0x8000:
            raise _Fault(_NP, idt_error)
        selector = lo >> 16
        if not selector & ~3:
            raise _Fault(_GP, ev.ext)
        descriptor = self.descriptor(selector, _GP)
        cs_base, cs_limit, cs_flags = self.cache(descriptor)
        dpl = (cs_flags >> _DESC_DPL_SHIFT) & 3
        sel_error = (selector & 0xFFFC) | ev.ext
        if not cs_flags & _DESC_S or not cs_flags & _DESC_CODE or dpl > self.cpl:
            raise _Fault(_GP, sel_error)
        if not cs_flags & _DESC_P:
            raise _Fault(_NP, sel_error)
        if gate_size == 16 and (not cs_flags & _DESC_L or cs_flags & _DESC_B):
            raise _Fault(_GP, sel_error)
        conforming = bool(cs_flags & _DESC_CONFORMING)
        if conforming:
            dpl = self.cpl  # a conforming handler runs at the caller's privilege
        old_ss = self.seg("ss")
        inner = dpl < self.cpl
        if gate_size == 16:
            new_stack = inner or ist != 0
            rsp = self._tss64_stack(ist + 3 if ist else dpl) if new_stack else self.rsp
            rsp &= ~0xF
            words = [old_ss[0], self.rsp, self.rflags, self.seg("cs")[0], self.rip]
            if ev.error_code is not None:
                words.append(ev.error_code)
            frame = b"".join((w & (2**64 - 1)).to_bytes(8, "little") for w in reversed(words))
            rsp = (rsp - len(frame)) & (2**64 - 1)
            self.write(rsp, frame, user=dpl == 3)
            ss = (dpl, 0, 0, dpl << _DESC_DPL_SHIFT) if new_stack else old_ss
            new_rsp = rsp
        else:
            if inner:
                ss_sel, esp = self._tss_stack(dpl)
                ss_desc = self.descriptor(ss_sel, _TS)
                ss_base, ss_limit, ss_flags = self.cache(ss_desc)
                ts_error = (ss_sel & 0xFFFC) | ev.ext
                if (
                    ss_sel & 3 != dpl
                    or not ss_sel & ~3
                    or (ss_flags >> _DESC_DPL_SHIFT) & 3 != dpl
                    or not ss_flags & _DESC_S
                    or ss_flags & _DESC_CODE
                    or not ss_flags & _DESC_W
                ):
                    raise _Fault(_TS, ts_error)
                if not ss_flags & _DESC_P:
                    raise _Fault(_SS, ts_error)
                ss = (ss_sel, ss_base, ss_limit, ss_flags)
            elif dpl == self.cpl:
                ss, esp = old_ss, self.rsp
            else:  # pragma: no cover - dpl > cpl was refused above
                raise _Fault(_GP, sel_error)
            mask = 0xFFFFFFFF if ss[3] & _DESC_B else 0xFFFF
            size = 1 << shift
            words = [self.rflags, self.seg("cs")[0], self.rip]
            if inner:
                words = [old_ss[0], self.rsp, *words]
            if ev.error_code is not None:
                words.append(ev.error_code)
            sp = esp & mask
            for word in words:  # pushed one by one: the 16-bit stack pointer wraps
                sp = (sp - size) & mask
                value = (word & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                self.write(ss[1] + sp, value, user=dpl == 3)
            new_rsp = (esp & ~mask) | sp
            if not inner:
                new_rsp = (self.rsp & ~mask) | sp
        rflags = self.rflags & ~(_TF | _NT | _RF | _VM)
        if not trap:
            rflags &= ~_IF
        self.set_seg("ss", *ss)
        self.set_seg("cs", (selector & ~3) | dpl, cs_base, cs_limit, cs_flags)
        self.commit(new_rsp, offset, rflags, self._hflags_for(cs_flags, ss[3], dpl))
        return cs_base + offset if gate_size == 8 else offset

    def _tss_stack(self, dpl: int) -> tuple[int, int]:
        """SSn:ESPn (32-bit TSS) or SSn:SPn (16-bit TSS) for privilege level ``dpl``."""
        tr_sel, base, limit, flags = self.seg("tr")
        ts_error = (tr_sel & 0xFFFC) | self.event.ext
        if not flags & _DESC_P:
            raise _Fault(_TS, ts_error)
        tss_type = (flags >> 8) & 0xF
        if tss_type in (9, 0xB):  # 32-bit TSS
            at = 4 + 8 * dpl
            if at + 7 > limit:
                raise _Fault(_TS, ts_error)
            esp, ss = struct.unpack("<IH", self.read(base + at, 6))
            return int(ss), int(esp)
        if tss_type in (1, 3):  # 16-bit TSS
            at = 2 + 4 * dpl
            if at + 3 > limit:
                raise _Fault(_TS, ts_error)
            sp, ss = struct.unpack("<HH", self.read(base + at, 4))
            return int(ss), int(sp)
        raise _Fault(_TS, ts_error)

    def _tss64_stack(self, level: int) -> int:
        """RSPn (``level`` 0-2) or ISTn (``level`` = n + 3) of the 64-bit TSS."""
        tr_sel, base, limit, flags = self.seg("tr")
        at = 8 * level + 4
        if not flags & _DESC_P or at + 7 > limit:
            raise _Fault(_TS, (tr_sel & 0xFFFC) | self.event.ext)
        (rsp,) = struct.unpack("<Q", self.read(base + at, 8))
        return int(rsp)


# --------------------------------------------------------------------------- SYSCALL

#: MSRs SYSCALL reads (IA32_STAR, LSTAR, CSTAR, FMASK).
_MSR_STAR, _MSR_LSTAR, _MSR_CSTAR, _MSR_FMASK = 0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084
_EFER_SCE: Final = 1
_SYSCALL_LEN: Final = 2  # 0F 05


def syscall(uc: Any, layout: _state.ContextLayout) -> bool:
    """Execute the SYSCALL at RIP (unicorn hands SYSCALL to an instruction hook and does
    nothing else: without this a guest's SYSCALL is skipped as a NOP; measured on 2.1.4).

    As the SDM's SYSCALL pseudo-code and QEMU's ``helper_syscall``: in long mode RCX = the
    next RIP, R11 = RFLAGS (RF clear), RFLAGS &= ~IA32_FMASK, CS = STAR[47:32] (64-bit
    ring-0 code), SS = STAR[47:32] + 8, RIP = LSTAR (from 64-bit code) or CSTAR (from
    compatibility mode); in legacy protected mode ECX = the next EIP, IF, RF and VM
    cleared, a flat 32-bit CS and SS, EIP = STAR[31:0]. CPL becomes 0. The hook runs with
    RIP at the instruction and unicorn adds the instruction's length after it, so the new
    RIP is written less that length. False (nothing done) when EFER.SCE is clear or the
    CPU is in real mode: the caller raises #UD.
    """
    x86 = _state.x86
    efer = int(uc.msr_read(_state.MSR_EFER))
    cr0 = int(uc.reg_read(x86.UC_X86_REG_CR0))
    if not efer & _EFER_SCE or not cr0 & _CR0_PE:
        return False
    ctx = uc.context_save()
    raw = bytearray(bytes(ctx))
    hflags = int(struct.unpack_from("<I", raw, layout.hflags)[0])
    rip = int(uc.reg_read(x86.UC_X86_REG_RIP))
    rflags = int(uc.reg_read(x86.UC_X86_REG_RFLAGS))
    selector = (int(uc.msr_read(_MSR_STAR)) >> 32) & 0xFFFF
    nxt = rip + _SYSCALL_LEN
    code_flags = _DESC_G | _DESC_P | _DESC_S | _DESC_CODE | _DESC_W | (1 << 8)  # R, A
    data_flags = _DESC_G | _DESC_B | _DESC_P | _DESC_S | _DESC_W | (1 << 8)  # W, A
    from_64 = bool(hflags & _state.HF_CS64_MASK)
    hflags &= ~(
        _state.HF_CPL_MASK | _state.HF_CS32_MASK | _state.HF_CS64_MASK | _state.HF_ADDSEG_MASK
    )
    regs: tuple[tuple[int, int], ...]
    if hflags & _state.HF_LMA_MASK:
        target = int(uc.msr_read(_MSR_LSTAR if from_64 else _MSR_CSTAR))
        code_flags |= _DESC_L
        hflags |= _state.HF_CS32_MASK | _state.HF_SS32_MASK | _state.HF_CS64_MASK
        new_rflags = rflags & ~int(uc.msr_read(_MSR_FMASK)) & ~_RF
        regs = ((x86.UC_X86_REG_RCX, nxt), (x86.UC_X86_REG_R11, rflags & ~_RF))
    else:
        target = int(uc.msr_read(_MSR_STAR)) & 0xFFFFFFFF
        code_flags |= _DESC_B
        hflags |= _state.HF_CS32_MASK | _state.HF_SS32_MASK
        new_rflags = rflags & ~(_IF | _RF | _VM)
        regs = ((x86.UC_X86_REG_RCX, nxt & 0xFFFFFFFF),)
    _SEG.pack_into(raw, layout.seg_offset("cs"), selector & 0xFFFC, 0, 0xFFFFFFFF, code_flags)
    _SEG.pack_into(raw, layout.seg_offset("ss"), (selector + 8) & 0xFFFC, 0, 0xFFFFFFFF, data_flags)
    struct.pack_into("<I", raw, layout.hflags, hflags)
    _state._load_context(uc, ctx, bytes(raw))
    for reg, value in regs:
        uc.reg_write(reg, value)
    uc.reg_write(x86.UC_X86_REG_RFLAGS, new_rflags)
    uc.reg_write(x86.UC_X86_REG_RIP, (target - _SYSCALL_LEN) & (2**64 - 1))
    return True
