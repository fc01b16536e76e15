"""A library of small x86 guest programs that every accelerator must run identically.

Each :class:`Program` is hand-encoded machine code (the assembly listing is in its
``listing``; bytes were produced by GNU ``as`` and checked against ``objdump``), the
memory it needs, the initial mode, and what must hold afterwards: final registers,
memory contents and the exact port / MMIO traffic. :func:`run_program` runs one on a
VM (or on a fresh VM of an accelerator) and returns a :class:`ProgramResult`;
:meth:`ProgramResult.mismatches` compares it with the program's expectations.

The module is accelerator-neutral: it uses only the :mod:`accel` interfaces.

Memory layout shared by the programs (all start in real mode with CS = 0):

* RAM ``0x0 .. 0x10000`` (64 KiB); code is loaded at ``0x1000``;
* MMIO ``0x10000 .. 0x11000`` (reached with ES = 0x1000);
* data the program reads is preloaded (``Program.data``).

IN and MMIO reads are answered by deterministic handlers (:func:`default_port_value`,
:func:`default_mmio_value`) so the expected registers are fixed.

Example::

    with accel.open("tcg") as acc:
        for program in PROGRAMS:
            result = run_program(acc, program)
            assert not result.mismatches(program), program.name
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..accelerator import (
    VM,
    Accelerator,
    Exit,
    HaltExit,
    MmioExit,
    PortIoExit,
    Registers,
    SpecialRegisters,
    real_mode_sregs,
)
from ..errors import InvalidArgumentError

__all__ = [
    "ARITHMETIC",
    "HALT",
    "LONG_MODE",
    "MMIO",
    "MMIO_BASE",
    "MMIO_BURST",
    "PORT_IO",
    "PORT_IO_LOOP",
    "PORT_IO_STRING",
    "PROGRAMS",
    "PROTECTED_MODE",
    "REAL_MODE_INTERRUPTS",
    "RAM_SIZE",
    "STACK_AND_CALLS",
    "STRINGS",
    "IoEvent",
    "Program",
    "ProgramResult",
    "default_mmio_value",
    "default_port_value",
    "program",
    "run_program",
]

RAM_SIZE = 0x10000
MMIO_BASE = 0x10000
MMIO_SIZE = 0x1000
LOAD_ADDRESS = 0x1000

PortHandler = Callable[[int, int], int]
"""``handler(port, size) -> value`` answers an IN."""
MmioHandler = Callable[[int, int], int]
"""``handler(address, size) -> value`` answers an MMIO read."""


def _pattern(key: int, size: int) -> int:
    return int.from_bytes(bytes((key + i * 0x11 + 0x40) & 0xFF for i in range(size)), "little")


def default_port_value(port: int, size: int) -> int:
    """The deterministic answer to ``IN`` from ``port``: bytes ``port + 0x40 + 0x11*i``."""
    return _pattern(port, size)


def default_mmio_value(address: int, size: int) -> int:
    """The deterministic answer to an MMIO read: bytes ``address + 0x40 + 0x11*i``."""
    return _pattern(address, size)


@dataclass(frozen=True, slots=True)
class IoEvent:
    """One port or MMIO access as the guest made it.

    ``kind`` is ``"pio"`` or ``"mmio"``; ``address`` the port or guest-physical
    address; ``value`` what was written, or what the handler answered to a read.
    """

    kind: str
    address: int
    size: int
    is_write: bool
    value: int

    def __repr__(self) -> str:
        op = "write" if self.is_write else "read"
        return f"{self.kind} {op} {self.address:#x}/{self.size} = {self.value:#x}"


def _out(port: int, size: int, value: int) -> IoEvent:
    return IoEvent("pio", port, size, True, value)


def _in(port: int, size: int) -> IoEvent:
    return IoEvent("pio", port, size, False, default_port_value(port, size))


def _mmio_w(address: int, size: int, value: int) -> IoEvent:
    return IoEvent("mmio", address, size, True, value)


def _mmio_r(address: int, size: int) -> IoEvent:
    return IoEvent("mmio", address, size, False, default_mmio_value(address, size))


@dataclass(frozen=True)
class Program:
    """A guest program with everything needed to run and check it.

    ``code`` is loaded at ``load_address`` and entered in real mode at CS:IP =
    ``cs``:(``load_address`` - ``cs``*16) with DS = ES = SS = ``ds``; ``data`` maps
    guest-physical addresses to bytes preloaded into RAM. ``expected_regs`` names
    :class:`~accel.Registers` fields; ``expected_sregs`` names dotted
    :class:`~accel.SpecialRegisters` paths (``"cs.selector"``, ``"cr0"``);
    ``expected_memory`` maps addresses to bytes; ``expected_io`` is the whole port and
    MMIO trace in order. ``checked_memory`` lists ``(address, size)`` ranges a result
    records (the expected ranges are always recorded).
    """

    name: str
    description: str
    listing: str
    code: bytes
    load_address: int = LOAD_ADDRESS
    cs: int = 0
    ds: int = 0
    ram_size: int = RAM_SIZE
    mmio: tuple[tuple[int, int], ...] = ()
    data: Mapping[int, bytes] = field(default_factory=dict)
    initial_regs: Mapping[str, int] = field(default_factory=dict)
    expected_regs: Mapping[str, int] = field(default_factory=dict)
    expected_sregs: Mapping[str, int] = field(default_factory=dict)
    expected_memory: Mapping[int, bytes] = field(default_factory=dict)
    expected_io: tuple[IoEvent, ...] = ()
    checked_memory: tuple[tuple[int, int], ...] = ()
    max_exits: int = 1000

    @property
    def entry_ip(self) -> int:
        return self.load_address - (self.cs << 4)

    @property
    def end_ip(self) -> int:
        """The IP after the final HLT (the last byte of ``code``)."""
        return self.entry_ip + len(self.code)

    def memory_ranges(self) -> tuple[tuple[int, int], ...]:
        ranges = {(a, len(b)) for a, b in self.expected_memory.items()}
        ranges.update(self.checked_memory)
        return tuple(sorted(ranges))


@dataclass
class ProgramResult:
    """What running a :class:`Program` produced."""

    program: str
    regs: Registers
    sregs: SpecialRegisters
    memory: dict[int, bytes]
    io: list[IoEvent]
    final_exit: Exit
    exits: int

    def sreg(self, path: str) -> int:
        """A dotted special-register value: ``"cs.selector"``, ``"gdt.base"``, ``"cr0"``."""
        obj: object = self.sregs
        for part in path.split("."):
            obj = getattr(obj, part)
        if not isinstance(obj, int):
            raise InvalidArgumentError(f"{path} is not a value", argument="path", value=path)
        return obj

    def mismatches(self, program: Program) -> list[str]:
        """Every way this result differs from ``program``'s expectations (empty = pass)."""
        out: list[str] = []
        if not isinstance(self.final_exit, HaltExit):
            out.append(f"final exit {self.final_exit!r}, expected HaltExit()")
        for name, want in program.expected_regs.items():
            got = getattr(self.regs, name)
            if got != want:
                out.append(f"{name} = {got:#x}, expected {want:#x}")
        for path, want in program.expected_sregs.items():
            got = self.sreg(path)
            if got != want:
                out.append(f"{path} = {got:#x}, expected {want:#x}")
        for address, want_bytes in program.expected_memory.items():
            got_bytes = self.memory.get(address)
            if got_bytes != want_bytes:
                out.append(
                    f"memory {address:#x} = {got_bytes.hex() if got_bytes else None}, "
                    f"expected {want_bytes.hex()}"
                )
        if list(program.expected_io) != self.io:
            out.append(f"I/O trace {self.io}, expected {list(program.expected_io)}")
        return out


def run_program(
    target: VM | Accelerator,
    program: Program,
    port_handler: PortHandler | None = None,
    mmio_handler: MmioHandler | None = None,
) -> ProgramResult:
    """Run ``program`` to its HLT and record registers, memory and the I/O trace.

    ``target`` is a fresh VM (memory and MMIO are added to it, vCPU 0 is created) or an
    accelerator (a VM is created and closed afterwards). Handlers default to
    :func:`default_port_value` and :func:`default_mmio_value`. The run stops at the
    first exit that is neither port I/O nor MMIO, or after ``program.max_exits``.
    """
    if isinstance(target, Accelerator):
        with target.create_vm() as vm:
            return run_program(vm, program, port_handler, mmio_handler)
    vm = target
    answer_port = port_handler or default_port_value
    answer_mmio = mmio_handler or default_mmio_value
    vm.add_memory(0, program.ram_size)
    for base, size in program.mmio:
        vm.add_mmio(base, size)
    vm.write_memory(program.load_address, program.code)
    for address, blob in program.data.items():
        vm.write_memory(address, blob)
    cpu = vm.create_vcpu()
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=program.cs, ds=program.ds))
    cpu.set_regs(Registers(rip=program.entry_ip, rflags=0x2, **program.initial_regs))

    trace: list[IoEvent] = []
    exits = 0
    ex: Exit = cpu.run()
    while True:
        exits += 1
        if isinstance(ex, PortIoExit):
            # string I/O may come as one exit of ``count`` elements of ``size`` bytes
            size = ex.size
            if ex.is_write:
                for i in range(ex.count):
                    element = int.from_bytes(ex.data[i * size : (i + 1) * size], "little")
                    trace.append(IoEvent("pio", ex.port, size, True, element))
            else:
                answer = bytearray()
                for _ in range(ex.count):
                    value = answer_port(ex.port, size) & ((1 << (8 * size)) - 1)
                    answer += value.to_bytes(size, "little")
                    trace.append(IoEvent("pio", ex.port, size, False, value))
                ex.reply(bytes(answer))
        elif isinstance(ex, MmioExit):
            if ex.is_write:
                trace.append(IoEvent("mmio", ex.address, ex.size, True, ex.value()))
            else:
                value = answer_mmio(ex.address, ex.size) & ((1 << (8 * ex.size)) - 1)
                ex.reply(value)
                trace.append(IoEvent("mmio", ex.address, ex.size, False, value))
        else:
            break
        if exits >= program.max_exits:
            break
        ex = cpu.run()
    memory = {a: vm.read_memory(a, n) for a, n in program.memory_ranges()}
    return ProgramResult(
        program=program.name,
        regs=cpu.get_regs(),
        sregs=cpu.get_sregs(),
        memory=memory,
        io=trace,
        final_exit=ex,
        exits=exits,
    )


# --------------------------------------------------------------------------- programs

ARITHMETIC = Program(
    name="arithmetic",
    description="16- and 32-bit add/sub/mul/shift/neg/and and a counted loop (sum 10..1)",
    listing="""
    0000: b8 34 12                 mov $0x1234,%ax
    0003: bb 0f 0f                 mov $0xf0f,%bx
    0006: 01 d8                    add %bx,%ax          ; ax = 0x2143
    0008: 89 c1                    mov %ax,%cx
    000a: 81 e9 00 01              sub $0x100,%cx       ; cx = 0x2043
    000e: 66 be 78 56 34 12        mov $0x12345678,%esi
    0014: 66 bf f0 de bc 9a        mov $0x9abcdef0,%edi
    001a: 66 01 f7                 add %esi,%edi        ; edi = 0xacf13568
    001d: 31 d2                    xor %dx,%dx
    001f: bd 0a 00                 mov $0xa,%bp
    0022: 01 ea                    add %bp,%dx          ; dx = 10+9+...+1 = 55
    0024: 4d                       dec %bp
    0025: 75 fb                    jne 0x22
    0027: b8 07 00                 mov $0x7,%ax
    002a: bb 06 00                 mov $0x6,%bx
    002d: f7 e3                    mul %bx              ; dx:ax = 42 (dx = 0)
    002f: c1 e0 04                 shl $0x4,%ax         ; ax = 0x2a0
    0032: f7 d9                    neg %cx              ; cx = 0xdfbd
    0034: 81 e1 f0 0f              and $0xff0,%cx       ; cx = 0x0fb0
    0038: 3d 00 02                 cmp $0x200,%ax       ; defines every flag: PF
    003b: f4                       hlt
    """,
    code=bytes.fromhex(
        "b83412bb0f0f01d889c181e9000166be7856341266bff0debc9a6601f731d2bd0a00"
        "01ea4d75fbb80700bb0600f7e3c1e004f7d981e1f00f3d0002f4"
    ),
    expected_regs={
        "rax": 0x2A0,
        "rbx": 6,
        "rcx": 0x0FB0,
        "rdx": 0,
        "rsi": 0x12345678,
        "rdi": 0xACF13568,
        "rbp": 0,
        "rip": 0x103C,
        "rflags": 0x6,
    },
)

_MESSAGE = b"llama in memory!"

STRINGS = Program(
    name="strings",
    description="rep movsb, rep stosb (forwards and, with DF=1, backwards), lodsw",
    listing="""
    0000: fc                       cld
    0001: be 00 20                 mov $0x2000,%si
    0004: bf 00 30                 mov $0x3000,%di
    0007: b9 10 00                 mov $0x10,%cx
    000a: f3 a4                    rep movsb %ds:(%si),%es:(%di)   ; copy 16 bytes
    000c: bf 00 31                 mov $0x3100,%di
    000f: b0 aa                    mov $0xaa,%al
    0011: b9 08 00                 mov $0x8,%cx
    0014: f3 aa                    rep stos %al,%es:(%di)          ; 8 x 0xaa
    0016: be 00 20                 mov $0x2000,%si
    0019: ad                       lods %ds:(%si),%ax              ; ax = "ll"
    001a: 89 c3                    mov %ax,%bx
    001c: fd                       std
    001d: bf 07 32                 mov $0x3207,%di
    0020: b0 55                    mov $0x55,%al
    0022: b9 04 00                 mov $0x4,%cx
    0025: f3 aa                    rep stos %al,%es:(%di)          ; 0x3207 down to 0x3204
    0027: fc                       cld
    0028: 81 fb 6c 6c              cmp $0x6c6c,%bx                 ; ZF PF
    002c: f4                       hlt
    """,
    code=bytes.fromhex(
        "fcbe0020bf0030b91000f3a4bf0031b0aab90800f3aabe0020ad89c3fdbf0732b055b90400f3aafc81fb6c6cf4"
    ),
    data={0x2000: _MESSAGE},
    expected_regs={
        "rax": 0x6C55,
        "rbx": 0x6C6C,
        "rcx": 0,
        "rsi": 0x2002,
        "rdi": 0x3203,
        "rip": 0x102D,
        "rflags": 0x46,
    },
    expected_memory={0x3000: _MESSAGE, 0x3100: b"\xaa" * 8, 0x3204: b"\x55" * 4},
    checked_memory=((0x3200, 0x10),),
)

STACK_AND_CALLS = Program(
    name="stack-and-calls",
    description="push/pop, near call/ret and a recursive factorial (5! = 120)",
    listing="""
    0000: bc 00 80                 mov $0x8000,%sp
    0003: b8 05 00                 mov $0x5,%ax
    0006: 50                       push %ax
    0007: e8 11 00                 call 1b <double>
    000a: 5b                       pop %bx              ; bx = 5
    000b: 89 c7                    mov %ax,%di          ; di = 10
    000d: b9 05 00                 mov $0x5,%cx
    0010: e8 0b 00                 call 1e <fact>
    0013: 89 c6                    mov %ax,%si          ; si = 120
    0015: 83 f8 78                 cmp $0x78,%ax        ; ZF PF
    0018: 9c                       pushf
    0019: 5d                       pop %bp              ; bp = 0x46
    001a: f4                       hlt
    double:
    001b: 01 c0                    add %ax,%ax
    001d: c3                       ret
    fact:                                               ; ax = cx!
    001e: 83 f9 01                 cmp $0x1,%cx
    0021: 76 09                    jbe 2c
    0023: 51                       push %cx
    0024: 49                       dec %cx
    0025: e8 f6 ff                 call 1e <fact>
    0028: 59                       pop %cx
    0029: f7 e1                    mul %cx
    002b: c3                       ret
    002c: b8 01 00                 mov $0x1,%ax
    002f: c3                       ret
    """,
    code=bytes.fromhex(
        "bc0080b8050050e811005b89c7b90500e80b0089c683f8789c5df401c0c383f90176"
        "095149e8f6ff59f7e1c3b80100c3"
    ),
    expected_regs={
        "rax": 120,
        "rbx": 5,
        "rcx": 5,
        "rdx": 0,
        "rsi": 120,
        "rdi": 10,
        "rbp": 0x46,
        "rsp": 0x8000,
        "rip": 0x101B,
        "rflags": 0x46,
    },
    expected_memory={
        # return addresses and saved CX of the recursion, then the pushed flags
        0x7FEE: bytes.fromhex("281002002810030028100400281005004600"),
    },
)

PORT_IO = Program(
    name="port-io",
    description="OUT and IN of 1, 2 and 4 bytes, immediate and DX ports; IN merges into EAX",
    listing="""
    0000: b0 42                    mov $0x42,%al
    0002: e6 10                    out %al,$0x10
    0004: b8 34 12                 mov $0x1234,%ax
    0007: ba 12 00                 mov $0x12,%dx
    000a: ef                       out %ax,(%dx)
    000b: 66 b8 ef be ad de        mov $0xdeadbeef,%eax
    0011: ba 14 00                 mov $0x14,%dx
    0014: 66 ef                    out %eax,(%dx)
    0016: e4 20                    in $0x20,%al         ; 0x60
    0018: 88 c3                    mov %al,%bl
    001a: ba 21 00                 mov $0x21,%dx
    001d: ed                       in (%dx),%ax         ; 0x7261
    001e: 89 c1                    mov %ax,%cx
    0020: ba 22 00                 mov $0x22,%dx
    0023: 66 ed                    in (%dx),%eax        ; 0x95847362
    0025: 66 89 c6                 mov %eax,%esi
    0028: 66 01 d8                 add %ebx,%eax
    002b: 66 e7 24                 out %eax,$0x24       ; 0x958473c2
    002e: 66 39 f0                 cmp %esi,%eax        ; PF
    0031: f4                       hlt
    """,
    code=bytes.fromhex(
        "b042e610b83412ba1200ef66b8efbeaddeba140066efe42088c3ba2100ed89c1ba22"
        "0066ed6689c66601d866e7246639f0f4"
    ),
    expected_regs={
        "rax": 0x958473C2,
        "rbx": 0x60,
        "rcx": 0x7261,
        "rdx": 0x22,
        "rsi": 0x95847362,
        "rip": 0x1032,
        "rflags": 0x6,
    },
    expected_io=(
        _out(0x10, 1, 0x42),
        _out(0x12, 2, 0x1234),
        _out(0x14, 4, 0xDEADBEEF),
        _in(0x20, 1),
        _in(0x21, 2),
        _in(0x22, 4),
        _out(0x24, 4, 0x958473C2),
    ),
)

MMIO = Program(
    name="mmio",
    description="MMIO writes and reads of 1, 2 and 4 bytes through ES = 0x1000",
    listing="""
    0000: b8 00 10                 mov $0x1000,%ax
    0003: 8e c0                    mov %ax,%es                     ; es base 0x10000 (MMIO)
    0005: 26 c6 06 00 00 11        movb $0x11,%es:0x0
    000b: 26 c7 06 10 00 33 22     movw $0x2233,%es:0x10
    0012: 26 66 c7 06 20 00 77 66 55 44 movl $0x44556677,%es:0x20
    001c: 26 a0 40 00              mov %es:0x40,%al                ; 0x80
    0020: 26 8b 1e 50 00           mov %es:0x50,%bx                ; 0xa190
    0025: 26 66 8b 0e 60 00        mov %es:0x60,%ecx               ; 0xd3c2b1a0
    002b: 66 89 ca                 mov %ecx,%edx
    002e: 01 da                    add %bx,%dx                     ; edx = 0xd3c25330
    0030: 26 66 89 16 70 00        mov %edx,%es:0x70
    0036: 66 39 ca                 cmp %ecx,%edx                   ; CF PF SF
    0039: f4                       hlt
    """,
    code=bytes.fromhex(
        "b800108ec026c60600001126c706100033222666c70620007766554426a04000268b"
        "1e500026668b0e60006689ca01da2666891670006639caf4"
    ),
    mmio=((MMIO_BASE, MMIO_SIZE),),
    expected_regs={
        "rax": 0x1080,
        "rbx": 0xA190,
        "rcx": 0xD3C2B1A0,
        "rdx": 0xD3C25330,
        "rip": 0x103A,
        "rflags": 0x87,
    },
    expected_sregs={"es.selector": 0x1000, "es.base": 0x10000},
    expected_io=(
        _mmio_w(0x10000, 1, 0x11),
        _mmio_w(0x10010, 2, 0x2233),
        _mmio_w(0x10020, 4, 0x44556677),
        _mmio_r(0x10040, 1),
        _mmio_r(0x10050, 2),
        _mmio_r(0x10060, 4),
        _mmio_w(0x10070, 4, 0xD3C25330),
    ),
)

HALT = Program(
    name="halt",
    description="HLT ends the run with a halt exit; RIP is past the HLT",
    listing="""
    0000: b8 34 12                 mov $0x1234,%ax
    0003: bb 78 56                 mov $0x5678,%bx
    0006: f4                       hlt
    """,
    code=bytes.fromhex("b83412bb7856f4"),
    expected_regs={"rax": 0x1234, "rbx": 0x5678, "rip": 0x1007, "rflags": 0x2},
)

#: Flat 4 GiB code (selector 0x08) and data (0x10) descriptors, accessed bits pre-set so
#: that no accelerator needs to write them back.
_GDT = bytes.fromhex("0000000000000000ffff0000009bcf00ffff00000093cf00")
_GDTR = bytes.fromhex("170000080000")  # limit 0x17, base 0x800


def _flat(seg: str, selector: int, type_: int) -> dict[str, int]:
    """Expected hidden state of a flat 4 GiB 32-bit segment loaded from the GDT above."""
    fields = {"selector": selector, "base": 0, "limit": 0xFFFFFFFF, "type": type_}
    fields.update(present=1, dpl=0, db=1, s=1, l=0, g=1)
    return {f"{seg}.{name}": value for name, value in fields.items()}


PROTECTED_MODE = Program(
    name="protected-mode",
    description="lgdt, CR0.PE, far jump to a 32-bit segment, 32-bit work, OUT/IN, HLT",
    listing="""
    ; GDT at 0x800: null, 0x08 flat code (9b cf), 0x10 flat data (93 cf); GDTR at 0x818
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
    0028: b8 78 56 34 12           mov $0x12345678,%eax
    002d: bb 11 11 11 11           mov $0x11111111,%ebx
    0032: 01 d8                    add %ebx,%eax        ; 0x23456789
    0034: a3 00 40 00 00           mov %eax,0x4000
    0039: 50                       push %eax
    003a: 59                       pop %ecx
    003b: bf 00 41 00 00           mov $0x4100,%edi
    0040: b8 04 03 02 01           mov $0x1020304,%eax
    0045: ab                       stos %eax,%es:(%edi)
    0046: ab                       stos %eax,%es:(%edi)
    0047: e7 30                    out %eax,$0x30
    0049: e5 31                    in $0x31,%eax        ; 0xa4938271
    004b: 89 c2                    mov %eax,%edx
    004d: 8b 35 00 40 00 00        mov 0x4000,%esi
    0053: 39 ce                    cmp %ecx,%esi        ; ZF PF
    0055: f4                       hlt
    """,
    code=bytes.fromhex(
        "fa660f011618080f20c06683c8010f22c066ea19100000080066b810008ed88ec08e"
        "d0bc00900000b878563412bb1111111101d8a3004000005059bf00410000b8040302"
        "01ababe730e53189c28b350040000039cef4"
    ),
    data={0x800: _GDT, 0x818: _GDTR},
    expected_regs={
        "rax": 0xA4938271,
        "rbx": 0x11111111,
        "rcx": 0x23456789,
        "rdx": 0xA4938271,
        "rsi": 0x23456789,
        "rdi": 0x4108,
        "rsp": 0x9000,
        "rip": 0x1056,
        "rflags": 0x46,
    },
    expected_sregs={
        "cr0": 0x60000011,
        **_flat("cs", 0x08, 0xB),
        **_flat("ds", 0x10, 0x3),
        **_flat("es", 0x10, 0x3),
        **_flat("ss", 0x10, 0x3),
        "gdt.base": 0x800,
        "gdt.limit": 0x17,
    },
    expected_memory={
        0x4000: bytes.fromhex("89674523"),
        0x4100: bytes.fromhex("0403020104030201"),
        0x8FFC: bytes.fromhex("89674523"),
    },
    expected_io=(_out(0x30, 4, 0x01020304), _in(0x31, 4)),
)


REAL_MODE_INTERRUPTS = Program(
    name="real-mode-interrupts",
    description="IVT set up by the guest; INT3 and IRET; #DE fault retried after its handler",
    listing="""
    0000: bc 00 80                 mov $0x8000,%sp
    0003: c7 06 0c 00 00 11        movw $0x1100,0xc     ; IVT[3] = 0000:1100
    0009: c7 06 0e 00 00 00        movw $0x0,0xe
    000f: c7 06 00 00 20 11        movw $0x1120,0x0     ; IVT[0] (#DE) = 0000:1120
    0015: c7 06 02 00 00 00        movw $0x0,0x2
    001b: bb 07 00                 mov $0x7,%bx
    001e: cc                       int3                 ; bx = 0x107, OUT 0x51
    001f: 31 d2                    xor %dx,%dx
    0021: b8 f4 01                 mov $0x1f4,%ax
    0024: 31 c9                    xor %cx,%cx
    0026: f7 f1                    div %cx              ; #DE: handler sets cx = 5, retried
    0028: e7 50                    out %ax,$0x50        ; 100
    002a: 39 d9                    cmp %bx,%cx          ; CF AF SF
    002c: f4                       hlt
    0100: 81 c3 00 01              add $0x100,%bx       ; INT3 handler
    0104: 89 d8                    mov %bx,%ax
    0106: e7 51                    out %ax,$0x51
    0108: cf                       iret
    0120: b9 05 00                 mov $0x5,%cx         ; #DE handler
    0123: e7 52                    out %ax,$0x52
    0125: cf                       iret
    ; (INT3, not INT imm8: some hosts' KVM emulates real mode and hangs on INT 0x80)
    """,
    code=bytes.fromhex(
        "bc0080c7060c000011c7060e000000c70600002011c70602000000bb0700cc31d2b8f40131c9f7f1e75039d9f4"
    ),
    data={0x1100: bytes.fromhex("81c3000189d8e751cf"), 0x1120: bytes.fromhex("b90500e752cf")},
    expected_regs={
        "rax": 100,
        "rbx": 0x107,
        "rcx": 5,
        "rdx": 0,
        "rsp": 0x8000,
        "rip": 0x102D,
        "rflags": 0x93,
    },
    expected_memory={
        0x0000: bytes.fromhex("20110000"),
        0x000C: bytes.fromhex("00110000"),
        # the #DE frame (it overwrote the INT3 one): IP of the DIV, CS, FLAGS
        0x7FFA: bytes.fromhex("261000004600"),
    },
    expected_io=(_out(0x51, 2, 0x107), _out(0x52, 2, 500), _out(0x50, 2, 100)),
)

#: Flat 64-bit code (0x08: L=1, D=0) and flat data (0x10) descriptors, accessed bits set.
_GDT64 = bytes.fromhex("0000000000000000ffff0000009baf00ffff00000093cf00")
#: Identity map of the first 2 MiB: PML4 at 0x2000 -> PDPT at 0x3000 -> one 2 MiB page.
_PAGE_TABLES = {
    0x2000: (0x3003).to_bytes(8, "little"),
    0x3000: (0x4003).to_bytes(8, "little"),
    0x4000: (0x83).to_bytes(8, "little"),
}
_R10 = 0x124578ABDF124577  # 0x0123456789abcdef + 0x1122334455667788

LONG_MODE = Program(
    name="long-mode",
    description="real mode to 64-bit long mode (PAE, EFER.LME, CR0.PG), 64-bit work, OUT/IN",
    listing="""
    ; GDT at 0x800: null, 0x08 64-bit code (9b af), 0x10 data (93 cf); GDTR at 0x818
    ; page tables at 0x2000/0x3000/0x4000 identity-map 0..2 MiB with one large page
    0000: fa                       cli
    0001: 66 0f 01 16 18 08        lgdtl 0x818
    0007: 66 b8 00 20 00 00        mov $0x2000,%eax
    000d: 0f 22 d8                 mov %eax,%cr3
    0010: 0f 20 e0                 mov %cr4,%eax
    0013: 66 83 c8 20              or $0x20,%eax                   ; CR4.PAE
    0017: 0f 22 e0                 mov %eax,%cr4
    001a: 66 b9 80 00 00 c0        mov $0xc0000080,%ecx            ; EFER
    0020: 0f 32                    rdmsr
    0022: 66 0d 00 01 00 00        or $0x100,%eax                  ; EFER.LME
    0028: 0f 30                    wrmsr
    002a: 0f 20 c0                 mov %cr0,%eax
    002d: 66 0d 01 00 00 80        or $0x80000001,%eax             ; CR0.PG | CR0.PE
    0033: 0f 22 c0                 mov %eax,%cr0
    0036: 66 ea 3e 10 00 00 08 00  ljmpl $0x8,$0x103e
    .code64
    003e: 66 b8 10 00              mov $0x10,%ax
    0042: 8e d8                    mov %eax,%ds
    0044: 8e c0                    mov %eax,%es
    0046: 8e d0                    mov %eax,%ss
    0048: bc 00 90 00 00           mov $0x9000,%esp
    004d: 48 b8 88 77 66 55 44 33 22 11 movabs $0x1122334455667788,%rax
    0057: 49 89 c1                 mov %rax,%r9
    005a: 49 ba ef cd ab 89 67 45 23 01 movabs $0x123456789abcdef,%r10
    0064: 4d 01 ca                 add %r9,%r10                    ; 0x124578abdf124577
    0067: 4c 89 14 25 00 50 00 00  mov %r10,0x5000
    006f: 41 52                    push %r10
    0071: 41 5b                    pop %r11
    0073: e7 40                    out %eax,$0x40                  ; 0x55667788
    0075: e5 41                    in $0x41,%eax                   ; 0xb4a39281, zero-extended
    0077: 49 89 c4                 mov %rax,%r12
    007a: 4d 39 d3                 cmp %r10,%r11                   ; ZF PF
    007d: f4                       hlt
    """,
    code=bytes.fromhex(
        "fa660f0116180866b8002000000f22d80f20e06683c8200f22e066b9800000c00f32"
        "660d000100000f300f20c0660d010000800f22c066ea3e100000080066b810008ed8"
        "8ec08ed0bc0090000048b888776655443322114989c149baefcdab89674523014d01"
        "ca4c891425005000004152415be740e5414989c44d39d3f4"
    ),
    data={0x800: _GDT64, 0x818: _GDTR, **_PAGE_TABLES},
    expected_regs={
        "rax": 0xB4A39281,
        "rcx": 0xC0000080,
        "rdx": 0,
        "rsp": 0x9000,
        "r9": 0x1122334455667788,
        "r10": _R10,
        "r11": _R10,
        "r12": 0xB4A39281,
        "rip": 0x107E,
        "rflags": 0x46,
    },
    expected_sregs={
        "cr0": 0xE0000011,
        "cr3": 0x2000,
        "cr4": 0x20,
        "efer": 0x500,
        **_flat("cs", 0x08, 0xB),
        "cs.db": 0,
        "cs.l": 1,
        **_flat("ds", 0x10, 0x3),
        **_flat("es", 0x10, 0x3),
        **_flat("ss", 0x10, 0x3),
        "gdt.base": 0x800,
        "gdt.limit": 0x17,
    },
    expected_memory={0x5000: _R10.to_bytes(8, "little"), 0x8FF8: _R10.to_bytes(8, "little")},
    expected_io=(_out(0x40, 4, 0x55667788), _in(0x41, 4)),
)


# --------------------------------------------------------------------------- long I/O sequences
#
# The programs above make at most a handful of accesses; these make thousands, so an
# accelerator that loses or corrupts the occasional byte (every 10th, every 4096th) or
# splits string I/O wrongly cannot pass. Their expectations are computed from the data
# they move and the deterministic handlers, not recorded from a run.


def _bytes_pattern(n: int, seed: int) -> bytes:
    """``n`` bytes with no short period (a byte lost anywhere changes the trace)."""
    return bytes(((i * 37) + (i >> 8) * 11 + seed) & 0xFF for i in range(n))


_PIO_OUT_BYTES = _bytes_pattern(0x1000, 0x5A)
_PIO_OUT_WORDS = _bytes_pattern(0x400, 0xC3)

PORT_IO_STRING = Program(
    name="port-io-string",
    description="rep outsb/insb of 4 KiB and rep outsw/insw of 1 KiB/512 B through DX",
    listing="""
    0000: fc                       cld
    0001: be 00 20                 mov $0x2000,%si
    0004: ba 60 00                 mov $0x60,%dx
    0007: b9 00 10                 mov $0x1000,%cx
    000a: f3 6e                    rep outsb %ds:(%si),(%dx)       ; 4096 bytes out
    000c: bf 00 40                 mov $0x4000,%di
    000f: ba 61 00                 mov $0x61,%dx
    0012: b9 00 10                 mov $0x1000,%cx
    0015: f3 6c                    rep insb (%dx),%es:(%di)        ; 4096 bytes in
    0017: be 00 30                 mov $0x3000,%si
    001a: ba 62 00                 mov $0x62,%dx
    001d: b9 00 02                 mov $0x200,%cx
    0020: f3 6f                    rep outsw %ds:(%si),(%dx)       ; 512 words out
    0022: bf 00 50                 mov $0x5000,%di
    0025: ba 63 00                 mov $0x63,%dx
    0028: b9 00 01                 mov $0x100,%cx
    002b: f3 6d                    rep insw (%dx),%es:(%di)        ; 256 words in
    002d: f4                       hlt
    """,
    code=bytes.fromhex(
        "fcbe0020ba6000b90010f36ebf0040ba6100b90010f36cbe0030ba6200b90002f36f"
        "bf0050ba6300b90001f36df4"
    ),
    data={0x2000: _PIO_OUT_BYTES, 0x3000: _PIO_OUT_WORDS},
    expected_regs={
        "rcx": 0,
        "rdx": 0x63,
        "rsi": 0x3400,
        "rdi": 0x5200,
        "rip": 0x102E,
        "rflags": 0x2,
    },
    expected_memory={
        0x2000: _PIO_OUT_BYTES,
        0x4000: default_port_value(0x61, 1).to_bytes(1, "little") * 0x1000,
        0x5000: default_port_value(0x63, 2).to_bytes(2, "little") * 0x100,
    },
    expected_io=(
        tuple(_out(0x60, 1, b) for b in _PIO_OUT_BYTES)
        + tuple(_in(0x61, 1) for _ in range(0x1000))
        + tuple(
            _out(0x62, 2, int.from_bytes(_PIO_OUT_WORDS[i : i + 2], "little"))
            for i in range(0, 0x400, 2)
        )
        + tuple(_in(0x63, 2) for _ in range(0x100))
    ),
    max_exits=20000,
)

PORT_IO_LOOP = Program(
    name="port-io-loop",
    description="768 single OUT/IN (256 rounds of a 2-byte OUT, a 1-byte OUT and an IN)",
    listing="""
    0000: 31 db                    xor %bx,%bx
    0002: b9 00 01                 mov $0x100,%cx
    loop:
    0005: 89 c8                    mov %cx,%ax
    0007: e7 72                    out %ax,$0x72                   ; the round, 256..1
    0009: 88 c8                    mov %cl,%al
    000b: e6 70                    out %al,$0x70                   ; its low byte
    000d: e4 71                    in $0x71,%al                    ; 0xb1
    000f: 30 e4                    xor %ah,%ah
    0011: 01 c3                    add %ax,%bx                     ; bx = 256 * 0xb1
    0013: e2 f0                    loop 5
    0015: 81 fb 00 b1              cmp $0xb100,%bx                 ; ZF PF
    0019: f4                       hlt
    """,
    code=bytes.fromhex("31dbb9000189c8e77288c8e670e47130e401c3e2f081fb00b1f4"),
    expected_regs={
        "rax": default_port_value(0x71, 1),
        "rbx": (0x100 * default_port_value(0x71, 1)) & 0xFFFF,
        "rcx": 0,
        "rip": 0x101A,
        "rflags": 0x46,
    },
    expected_io=tuple(
        event
        for n in range(0x100, 0, -1)
        for event in (_out(0x72, 2, n), _out(0x70, 1, n & 0xFF), _in(0x71, 1))
    ),
    max_exits=5000,
)

_MMIO_OUT_BYTES = _bytes_pattern(0x100, 0x17)
_MMIO_OUT_WORDS = _bytes_pattern(0x100, 0x99)
_MMIO_LOOP_SUM = sum(default_mmio_value(MMIO_BASE + 0x600 + i, 1) for i in range(0x40)) & 0xFFFF

MMIO_BURST = Program(
    name="mmio-burst",
    description="rep movsb/movsw of 256 bytes to MMIO, 256 bytes back, a 64-round read/write loop",
    listing="""
    0000: b8 00 10                 mov $0x1000,%ax
    0003: 8e c0                    mov %ax,%es                     ; es -> MMIO
    0005: fc                       cld
    0006: be 00 20                 mov $0x2000,%si
    0009: 31 ff                    xor %di,%di
    000b: b9 00 01                 mov $0x100,%cx
    000e: f3 a4                    rep movsb %ds:(%si),%es:(%di)   ; 256 byte writes
    0010: be 00 30                 mov $0x3000,%si
    0013: bf 00 02                 mov $0x200,%di
    0016: b9 80 00                 mov $0x80,%cx
    0019: f3 a5                    rep movsw %ds:(%si),%es:(%di)   ; 128 word writes
    001b: b8 00 10                 mov $0x1000,%ax
    001e: 8e d8                    mov %ax,%ds                     ; ds -> MMIO
    0020: 31 c0                    xor %ax,%ax
    0022: 8e c0                    mov %ax,%es                     ; es -> RAM
    0024: be 00 04                 mov $0x400,%si
    0027: bf 00 40                 mov $0x4000,%di
    002a: b9 00 01                 mov $0x100,%cx
    002d: f3 a4                    rep movsb %ds:(%si),%es:(%di)   ; 256 byte reads
    002f: 31 db                    xor %bx,%bx
    0031: b9 40 00                 mov $0x40,%cx
    0034: be 00 06                 mov $0x600,%si
    loop:
    0037: 8a 04                    mov (%si),%al                   ; read 0x10600 + i
    0039: 88 84 00 01              mov %al,0x100(%si)              ; write it to 0x10700 + i
    003d: 01 c3                    add %ax,%bx
    003f: 46                       inc %si
    0040: e2 f5                    loop 37
    0042: 31 c0                    xor %ax,%ax
    0044: 8e d8                    mov %ax,%ds
    0046: 39 c0                    cmp %ax,%ax                     ; ZF PF
    0048: f4                       hlt
    """,
    code=bytes.fromhex(
        "b800108ec0fcbe002031ffb90001f3a4be0030bf0002b98000f3a5b800108ed831c0"
        "8ec0be0004bf0040b90001f3a431dbb94000be00068a048884000101c346e2f531c0"
        "8ed839c0f4"
    ),
    mmio=((MMIO_BASE, MMIO_SIZE),),
    data={0x2000: _MMIO_OUT_BYTES, 0x3000: _MMIO_OUT_WORDS},
    expected_regs={
        "rax": 0,
        "rbx": _MMIO_LOOP_SUM,
        "rcx": 0,
        "rsi": 0x640,
        "rdi": 0x4100,
        "rip": 0x1049,
        "rflags": 0x46,
    },
    expected_memory={
        0x4000: bytes(default_mmio_value(MMIO_BASE + 0x400 + i, 1) for i in range(0x100))
    },
    expected_io=(
        tuple(_mmio_w(MMIO_BASE + i, 1, b) for i, b in enumerate(_MMIO_OUT_BYTES))
        + tuple(
            _mmio_w(MMIO_BASE + 0x200 + i, 2, int.from_bytes(_MMIO_OUT_WORDS[i : i + 2], "little"))
            for i in range(0, 0x100, 2)
        )
        + tuple(_mmio_r(MMIO_BASE + 0x400 + i, 1) for i in range(0x100))
        + tuple(
            event
            for i in range(0x40)
            for event in (
                _mmio_r(MMIO_BASE + 0x600 + i, 1),
                _mmio_w(MMIO_BASE + 0x700 + i, 1, default_mmio_value(MMIO_BASE + 0x600 + i, 1)),
            )
        )
    ),
    max_exits=5000,
)

PROGRAMS: tuple[Program, ...] = (
    ARITHMETIC,
    STRINGS,
    STACK_AND_CALLS,
    PORT_IO,
    MMIO,
    HALT,
    REAL_MODE_INTERRUPTS,
    PROTECTED_MODE,
    LONG_MODE,
    PORT_IO_STRING,
    PORT_IO_LOOP,
    MMIO_BURST,
)
"""Every program, in a stable order (use ``ids=lambda p: p.name`` to parametrise)."""


def program(name: str) -> Program:
    """The program called ``name``."""
    for p in PROGRAMS:
        if p.name == name:
            return p
    raise InvalidArgumentError(
        f"no guest program {name!r}",
        hint="one of: " + ", ".join(p.name for p in PROGRAMS),
        argument="name",
        value=name,
    )
