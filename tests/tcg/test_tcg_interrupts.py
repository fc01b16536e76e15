"""TCG delivers exceptions through a 32-bit protected-mode IDT (paging off, ring 0).

Not in the shared program library: on a host whose KVM emulates non-paged protected
mode (kvm_pvm), KVM ends this program with an emulation failure at the INT, so the
expected state here is checked on TCG only (hand-computed, see the listing).
"""

from __future__ import annotations

import pytest
from accel_tcg.accelerator import TcgAccelerator

from accel import PortIoExit, Registers, ShutdownExit, real_mode_sregs
from accel.testing.programs import IoEvent, Program, run_program

GDT = bytes.fromhex("0000000000000000ffff0000009bcf00ffff00000093cf00")
GDTR = bytes.fromhex("170000080000")


def out(port: int, size: int, value: int) -> IoEvent:
    return IoEvent("pio", port, size, True, value)


def flat(seg: str, selector: int, type_: int) -> dict[str, int]:
    fields = {"selector": selector, "base": 0, "limit": 0xFFFFFFFF, "type": type_}
    fields.update(present=1, dpl=0, db=1, s=1, l=0, g=1)
    return {f"{seg}.{name}": value for name, value in fields.items()}


def _gate(offset: int, selector: int = 0x08, type_attr: int = 0x8E) -> bytes:
    """A 32-bit IDT gate (0x8E: present ring-0 interrupt gate)."""
    lo = (selector << 16) | (offset & 0xFFFF)
    hi = (offset & 0xFFFF0000) | (type_attr << 8)
    return lo.to_bytes(4, "little") + hi.to_bytes(4, "little")


_PM_INT_CODE = bytes.fromhex(
    "fa660f011618080f20c06683c8010f22c066ea19100000080066b810008ed88ec08e"
    "d0bc009000000f011d20080000bb07000000cd8031d2b8f401000031c9f7f166b818"
    "008ee0e75039d9f4"
)
_PM_INT_HANDLERS = {
    0x1100: bytes.fromhex("81c30001000089d8e751cf"),
    0x1120: bytes.fromhex("b905000000e752cf"),
    0x1140: bytes.fromhex("5e8304240289f0e753cf"),
}

PROTECTED_MODE_INTERRUPTS = Program(
    name="protected-mode-interrupts",
    description="32-bit IDT: INT 0x80 and IRET, #DE (fault, re-executed), #GP with error code",
    listing="""
    ; GDT as in protected-mode; IDT at 0x3000 (IDTR at 0x820: limit 0x7ff): interrupt
    ; gates 0x00 -> 0x1120, 0x0d -> 0x1140, 0x80 -> 0x1100
    0000: fa                       cli
    0001: 66 0f 01 16 18 08        lgdtl 0x818
    0007: 0f 20 c0                 mov %cr0,%eax
    000a: 66 83 c8 01              or $0x1,%eax
    000e: 0f 22 c0                 mov %eax,%cr0
    0011: 66 ea 19 10 00 00 08 00  ljmpl $0x8,$0x1019
    .code32
    0019: 66 b8 10 00              mov $0x10,%ax
    001d: 8e d8                    mov %eax,%ds
    001f: 8e c0                    mov %eax,%es
    0021: 8e d0                    mov %eax,%ss
    0023: bc 00 90 00 00           mov $0x9000,%esp
    0028: 0f 01 1d 20 08 00 00     lidtl 0x820
    002f: bb 07 00 00 00           mov $0x7,%ebx
    0034: cd 80                    int $0x80            ; ebx = 0x107, OUT 0x51
    0036: 31 d2                    xor %edx,%edx
    0038: b8 f4 01 00 00           mov $0x1f4,%eax
    003d: 31 c9                    xor %ecx,%ecx
    003f: f7 f1                    div %ecx             ; #DE: handler sets ecx = 5, retried
    0041: 66 b8 18 00              mov $0x18,%ax
    0045: 8e e0                    mov %eax,%fs         ; #GP(0x18): beyond the GDT limit
    0047: e7 50                    out %eax,$0x50
    0049: 39 d9                    cmp %ebx,%ecx        ; CF AF SF
    004b: f4                       hlt
    0100: 81 c3 00 01 00 00        add $0x100,%ebx      ; INT 0x80 handler
    0106: 89 d8                    mov %ebx,%eax
    0108: e7 51                    out %eax,$0x51
    010a: cf                       iret
    0120: b9 05 00 00 00           mov $0x5,%ecx        ; #DE handler
    0125: e7 52                    out %eax,$0x52
    0127: cf                       iret
    0140: 5e                       pop %esi             ; #GP handler: error code
    0141: 83 04 24 02              addl $0x2,(%esp)     ; skip the 2-byte mov to fs
    0145: 89 f0                    mov %esi,%eax
    0147: e7 53                    out %eax,$0x53
    0149: cf                       iret
    """,
    code=_PM_INT_CODE,
    data={
        0x800: GDT,
        0x818: GDTR,
        0x820: bytes.fromhex("ff0700300000"),
        0x3000: _gate(0x1120),
        0x3000 + 13 * 8: _gate(0x1140),
        0x3000 + 0x80 * 8: _gate(0x1100),
        **_PM_INT_HANDLERS,
    },
    expected_regs={
        "rax": 0x18,
        "rbx": 0x107,
        "rcx": 5,
        "rdx": 0,
        "rsi": 0x18,
        "rsp": 0x9000,
        "rip": 0x104C,
        "rflags": 0x93,
    },
    expected_sregs={
        "cr0": 0x60000011,
        **flat("cs", 0x08, 0xB),
        **flat("ds", 0x10, 0x3),
        **flat("es", 0x10, 0x3),
        **flat("ss", 0x10, 0x3),
        "gdt.base": 0x800,
        "gdt.limit": 0x17,
        "idt.base": 0x3000,
        "idt.limit": 0x7FF,
    },
    checked_memory=((0x8FF0, 0x10),),
    expected_io=(
        out(0x51, 4, 0x107),
        out(0x52, 4, 500),
        out(0x53, 4, 0x18),
        out(0x50, 4, 0x18),
    ),
)


def test_int_fault_and_error_code_through_the_idt() -> None:
    result = run_program(TcgAccelerator(), PROTECTED_MODE_INTERRUPTS)
    assert result.mismatches(PROTECTED_MODE_INTERRUPTS) == []
    # the #GP frame: error code 0x18, EIP of the faulting mov to FS (0x1045, plus the 2
    # its handler added to skip it), CS 0x08, EFLAGS
    frame = result.memory[0x8FF0]
    assert frame[:4] == (0x18).to_bytes(4, "little")
    assert frame[4:8] == (0x1045 + 2).to_bytes(4, "little")
    assert frame[8:12] == (0x08).to_bytes(4, "little")


@pytest.mark.parametrize(
    ("gate", "error_code"),
    [
        (bytes(8), 0x80 * 8 + 2),  # no gate type: #GP(IDT entry 0x80)
        (bytes.fromhex("2011 0800 00 0e 00 00"), 0x80 * 8 + 2 + 0x10000),  # not present: #NP
        (bytes.fromhex("2011 1800 00 8e 00 00"), 0x18),  # selector beyond the GDT: #GP(0x18)
    ],
)
def test_gates_that_fault_deliver_the_fault(gate: bytes, error_code: int) -> None:
    """INT 0x80 through a bad gate: the fault the SDM gives, with its error code (no EXT
    bit: a software interrupt), reaches its own handler. #NP (vector 11) has no gate
    either, so it goes on to #GP(11 * 8 + 2 + EXT) -- contributory after contributory is
    a double fault -- and #DF has none: triple fault."""
    with TcgAccelerator() as acc, acc.create_vm() as vm:
        data = dict(PROTECTED_MODE_INTERRUPTS.data)
        data[0x3000 + 0x80 * 8] = gate
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x1000, PROTECTED_MODE_INTERRUPTS.code)
        for address, blob in data.items():
            vm.write_memory(address, blob)
        cpu = vm.create_vcpu()
        cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=0))
        cpu.set_regs(Registers(rip=0x1000, rflags=2))
        ex = cpu.run()
        if error_code > 0xFFFF:
            assert isinstance(ex, ShutdownExit), ex
            assert ex.reason == (
                "triple fault: vector 128 -> #NP(0x402) -> #GP(0x5b), so #DF, "
                "then #GP(0x43) while delivering #DF"
            )
            return
        assert isinstance(ex, PortIoExit), ex
        assert (ex.port, ex.value()) == (0x53, error_code)  # the #GP handler's OUT
