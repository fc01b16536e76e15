# 16- and 32-bit protected-mode exception delivery, with paging off and on: #DE round
# trip, #PF error code and CR2 under 32-bit paging, ring 3 -> ring 0 through the TSS's
# ESP0/SS0, the #GP error code of a segment load and of an INT through a DPL-0 gate, and
# a 16-bit interrupt gate into a 16-bit code segment with a 16-bit stack.
        .intel_syntax noprefix
        .include "common.inc"
        .text
        .code16
        .globl start
start:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        mov [TEST_ID], si
        lgdt [gdtr]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        .byte 0x66, 0xea                # ljmpl $0x08, $pm_entry
        .long pm_entry
        .word 0x08

.macro SETGATE32 vec, handler, attr, sel=0x08
        mov edi, IDT + \vec * 8
        mov eax, offset \handler
        mov word ptr [edi], ax
        mov word ptr [edi + 2], \sel
        mov byte ptr [edi + 4], 0
        mov byte ptr [edi + 5], \attr
        shr eax, 16
        mov word ptr [edi + 6], ax
.endm

.macro TO_RING3 target
        push 0x23
        push 0x6800
        push 0x3002                     # IOPL 3: ring 3 may OUT
        push 0x33
        push offset \target
        iret
.endm

        .code32
pm_entry:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov esp, 0x7000
        mov dword ptr [TSS + 4], 0x5000         # ESP0
        mov dword ptr [TSS + 8], 0x10           # SS0
        mov word ptr [TSS + 0x66], 0x68
        mov dword ptr [gdt + 0x48], 0x60000067  # 32-bit TSS at 0x6000
        mov dword ptr [gdt + 0x4c], 0x00008900
        mov ax, 0x48
        ltr ax
        mov edi, IDT
        mov ecx, 512
        xor eax, eax
        cld
        rep stosd
        lidt [idtr]
        SETGATE32 0, de_handler, 0x8e
        SETGATE32 13, gp_handler, 0x8e
        SETGATE32 14, pf_handler, 0x8e
        SETGATE32 0x31, h16, 0x86, 0x38         # 16-bit interrupt gate
        SETGATE32 0x32, de_handler, 0x8e        # DPL 0: INT 0x32 from ring 3 is a #GP
        SETGATE32 0x80, int80_handler, 0xee     # DPL 3
        movzx eax, word ptr [TEST_ID]
        jmp [tests + eax * 4]

paging_on:      # 32-bit paging: one 4 MiB user page at 0 (PSE), nothing above
        mov edi, 0x9000
        mov ecx, 1024
        xor eax, eax
        rep stosd
        mov dword ptr [0x9000], 0x87
        mov eax, cr4
        or eax, 0x10                    # PSE
        mov cr4, eax
        mov eax, 0x9000
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80010000              # PG, WP
        mov cr0, eax
        ret

# -- the tests
t_de:   # 1: #DE, paging off, ring 0: the frame, and IRET back past the DIV
        REPORTA de_at
        xor ecx, ecx
        mov eax, 9
de_at:  div ecx
        REPORT 0x1111
        hlt
t_pf:   # 2: 32-bit paging, a write where nothing is mapped
        call paging_on
        REPORTA pf_at
pf_at:  mov dword ptr [0x800004], 1
        hlt
t_ring3:        # 3: 32-bit paging, INT 0x80 from ring 3: ESP0/SS0 from the TSS
        call paging_on
        TO_RING3 user_int80
t_gp:   # 4: 32-bit paging, MOV DS with a selector beyond the GDT limit
        call paging_on
        REPORTA gp_at
        mov ax, 0x50
gp_at:  mov ds, ax
        hlt
t_pm16: # 5: a 16-bit code segment and stack, a 16-bit interrupt gate
        REPORTA after_int31
        .byte 0xea                      # ljmp $0x38, $code16
        .long code16
        .word 0x38
t_dpl:  # 6: INT 0x32 from ring 3 through a DPL-0 gate: #GP(0x32 * 8 + 2)
        TO_RING3 user_int32

user_int80:
        REPORTA after_int80
        int 0x80
after_int80:
        hlt
user_int32:
        REPORTA int32_at
int32_at:
        int 0x32
after_int32:
        hlt

        .code16
code16:
        mov ax, 0x40
        mov ss, ax
        mov sp, 0x7000
        int 0x31
after_int31:
        hlt
h16:
        mov bp, sp
        REPORT 0x1600
        movzx eax, bp
        out PORT, eax
        movzx eax, word ptr [bp]        # IP
        out PORT, eax
        movzx eax, word ptr [bp + 2]    # CS
        out PORT, eax
        movzx eax, word ptr [bp + 4]    # FLAGS
        out PORT, eax
        hlt

        .code32
# -- handlers: a marker, ESP at entry, [error code, CR2,] then EIP CS EFLAGS ESP SS
report_frame:   # ESI = the frame's EIP slot
        REPORTV [esi]
        REPORTV [esi + 4]
        REPORTV [esi + 8]
        REPORTV [esi + 12]
        REPORTV [esi + 16]
        ret
de_handler:
        mov esi, esp
        REPORT 0xde00
        REPORTV esi
        call report_frame
        add dword ptr [esp], 2          # skip DIV ECX
        iret
int80_handler:
        mov esi, esp
        REPORT 0x8000
        REPORTV esi
        call report_frame
        xor eax, eax
        mov ax, ss
        out PORT, eax
        hlt
pf_handler:
        mov esi, esp
        REPORT 0x0e00
        REPORTV esi
        REPORTV [esi]
        mov eax, cr2
        out PORT, eax
        add esi, 4
        call report_frame
        hlt
gp_handler:
        mov esi, esp
        REPORT 0x0d00
        REPORTV esi
        REPORTV [esi]
        add esi, 4
        call report_frame
        hlt

        .balign 4
tests:
        .long 0, t_de, t_pf, t_ring3, t_gp, t_pm16, t_dpl
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        # 0x08 code32
        .quad 0x00cf92000000ffff        # 0x10 data
        .quad 0                         # 0x18
        .quad 0x00cff2000000ffff        # 0x20 data, DPL 3
        .quad 0                         # 0x28
        .quad 0x00cffa000000ffff        # 0x30 code32, DPL 3
        .quad 0x000f9a000000ffff        # 0x38 code16
        .quad 0x000f92000000ffff        # 0x40 data16
        .quad 0                         # 0x48 TSS (built at run time)
gdt_end:
gdtr:
        .word gdt_end - gdt - 1
        .long gdt
idtr:
        .word 256 * 8 - 1
        .long IDT
