"""Linear to guest-physical address translation through the guest's page tables.

Unicorn reads and writes memory by guest-physical address (``mem_read``), while the CPU
fetches by linear address: with paging on, the plugin walks the tables itself to look at
the instruction bytes before RIP (see ``TcgVcpu._halted_here``). 32-bit (with 4 MiB
pages), PAE and 4-level long-mode paging; accessed/dirty bits are not touched.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from . import _state

__all__ = ["PageFault", "linear_to_physical", "translate"]

_P: Final = 1
_PS: Final = 1 << 7
_CR0_PG: Final = 1 << 31
_CR4_PSE: Final = 1 << 4
_CR4_PAE: Final = 1 << 5
_ADDR: Final = 0x000F_FFFF_FFFF_F000  # bits 51:12 of a PAE / long-mode entry


def _entry(uc: Any, address: int, size: int) -> int:
    return int(struct.unpack("<Q" if size == 8 else "<I", bytes(uc.mem_read(address, size)))[0])


def linear_to_physical(uc: Any, linear: int) -> int | None:
    """The guest-physical address of ``linear``, or None when it is not mapped (or the
    tables are not in guest memory)."""
    x86 = _state.x86
    cr0 = int(uc.reg_read(x86.UC_X86_REG_CR0))
    if not cr0 & _CR0_PG:
        return linear & 0xFFFF_FFFF
    cr3 = int(uc.reg_read(x86.UC_X86_REG_CR3))
    cr4 = int(uc.reg_read(x86.UC_X86_REG_CR4))
    try:
        if uc.msr_read(_state.MSR_EFER) & _state.EFER_LMA:
            table = cr3 & _ADDR
            for shift in (39, 30, 21, 12):
                entry = _entry(uc, table + ((linear >> shift) & 0x1FF) * 8, 8)
                if not entry & _P:
                    return None
                if shift in (30, 21) and entry & _PS:
                    mask = (1 << shift) - 1
                    return (entry & _ADDR & ~mask) | (linear & mask)
                table = entry & _ADDR
            return table | (linear & 0xFFF)
        linear &= 0xFFFF_FFFF
        if cr4 & _CR4_PAE:
            pdpte = _entry(uc, (cr3 & 0xFFFF_FFE0) + (linear >> 30) * 8, 8)
            if not pdpte & _P:
                return None
            pde = _entry(uc, (pdpte & _ADDR) + ((linear >> 21) & 0x1FF) * 8, 8)
            if not pde & _P:
                return None
            if pde & _PS:
                return (pde & _ADDR & ~0x1FFFFF) | (linear & 0x1FFFFF)
            pte = _entry(uc, (pde & _ADDR) + ((linear >> 12) & 0x1FF) * 8, 8)
            return (pte & _ADDR) | (linear & 0xFFF) if pte & _P else None
        pde = _entry(uc, (cr3 & 0xFFFF_F000) + (linear >> 22) * 4, 4)
        if not pde & _P:
            return None
        if pde & _PS and cr4 & _CR4_PSE:
            return (pde & 0xFFC0_0000) | (linear & 0x3F_FFFF)
        pte = _entry(uc, (pde & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4, 4)
        return (pte & 0xFFFF_F000) | (linear & 0xFFF) if pte & _P else None
    except _state.UcError:
        return None


_RW: Final = 1 << 1
_US: Final = 1 << 2
_CR0_WP: Final = 1 << 16
_PF_P: Final = 1
_PF_W: Final = 1 << 1
_PF_U: Final = 1 << 2


class PageFault(Exception):
    """An access the guest's page tables do not allow: a #PF with ``error_code`` (P, W/R,
    U/S as the SDM's figure 4-12 says) and CR2 = ``linear``."""

    def __init__(self, linear: int, error_code: int) -> None:
        super().__init__(f"page fault at {linear:#x} (error code {error_code:#x})")
        self.linear = linear
        self.error_code = error_code


def _walk(uc: Any, linear: int) -> tuple[int, int, int] | None:
    """``(physical, rw, us)`` of ``linear`` with the R/W and U/S bits ANDed over every
    level, or None when a level is not present. Paging must be on."""
    x86 = _state.x86
    cr3 = int(uc.reg_read(x86.UC_X86_REG_CR3))
    cr4 = int(uc.reg_read(x86.UC_X86_REG_CR4))
    rw = us = 1
    if uc.msr_read(_state.MSR_EFER) & _state.EFER_LMA:
        table = cr3 & _ADDR
        for shift in (39, 30, 21, 12):
            entry = _entry(uc, table + ((linear >> shift) & 0x1FF) * 8, 8)
            if not entry & _P:
                return None
            rw &= (entry >> 1) & 1
            us &= (entry >> 2) & 1
            if shift in (30, 21) and entry & _PS:
                mask = (1 << shift) - 1
                return (entry & _ADDR & ~mask) | (linear & mask), rw, us
            table = entry & _ADDR
        return table | (linear & 0xFFF), rw, us
    linear &= 0xFFFF_FFFF
    if cr4 & _CR4_PAE:
        # (PDPTEs have no R/W or U/S bits)
        pdpte = _entry(uc, (cr3 & 0xFFFF_FFE0) + (linear >> 30) * 8, 8)
        if not pdpte & _P:
            return None
        pde = _entry(uc, (pdpte & _ADDR) + ((linear >> 21) & 0x1FF) * 8, 8)
        if not pde & _P:
            return None
        rw, us = (pde >> 1) & 1, (pde >> 2) & 1
        if pde & _PS:
            return (pde & _ADDR & ~0x1FFFFF) | (linear & 0x1FFFFF), rw, us
        pte = _entry(uc, (pde & _ADDR) + ((linear >> 12) & 0x1FF) * 8, 8)
        if not pte & _P:
            return None
        return (pte & _ADDR) | (linear & 0xFFF), rw & (pte >> 1) & 1, us & (pte >> 2) & 1
    pde = _entry(uc, (cr3 & 0xFFFF_F000) + (linear >> 22) * 4, 4)
    if not pde & _P:
        return None
    rw, us = (pde >> 1) & 1, (pde >> 2) & 1
    if pde & _PS and cr4 & _CR4_PSE:
        return (pde & 0xFFC0_0000) | (linear & 0x3F_FFFF), rw, us
    pte = _entry(uc, (pde & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4, 4)
    if not pte & _P:
        return None
    return (pte & 0xFFFF_F000) | (linear & 0xFFF), rw & (pte >> 1) & 1, us & (pte >> 2) & 1


def translate(uc: Any, linear: int, *, write: bool, user: bool) -> int:
    """The guest-physical address of a data access to ``linear``, checked as the CPU
    checks it (present; U/S for a user access; R/W for a user write, and for a supervisor
    write when CR0.WP is set); :class:`PageFault` when it is not allowed. Paging off:
    the linear address (32 bits). Accessed and dirty bits are not set."""
    cr0 = int(uc.reg_read(_state.x86.UC_X86_REG_CR0))
    if not cr0 & _CR0_PG:
        return linear & 0xFFFF_FFFF
    code = (_PF_W if write else 0) | (_PF_U if user else 0)
    walked = _walk(uc, linear)
    if walked is None:
        raise PageFault(linear, code)
    physical, rw, us = walked
    if user and not us:
        raise PageFault(linear, code | _PF_P)
    if write and not rw and (user or cr0 & _CR0_WP):
        raise PageFault(linear, code | _PF_P)
    return physical
