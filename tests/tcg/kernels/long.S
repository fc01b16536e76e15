# Long-mode exception delivery: ring 0 -> ring 0, ring 3 -> ring 0 through RSP0, IST,
# #PF error codes and CR2, #GP error code, #DF, triple fault, interrupt vs trap gates,
# and the injected-interrupt / interrupt-window / NMI flows the test drives.
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
        # identity paging: 0-2 MiB user+supervisor, 2-4 MiB supervisor only, 4 MiB+ absent
        mov di, 0x9000
        mov cx, 0x1800
        xor ax, ax
        cld
        rep stosw
        mov dword ptr [0x9000], 0xa007
        mov dword ptr [0xa000], 0xb007
        mov dword ptr [0xb000], 0x87
        mov dword ptr [0xb008], 0x200083
        mov eax, cr4
        or eax, 0x20                    # PAE
        mov cr4, eax
        mov eax, 0x9000
        mov cr3, eax
        mov ecx, 0xc0000080
        rdmsr
        or eax, 0x100                   # EFER.LME
        wrmsr
        mov eax, cr0
        or eax, 0x80010001              # PG, WP, PE
        mov cr0, eax
        .byte 0x66, 0xea                # ljmpl $0x18, $long_entry
        .long long_entry
        .word 0x18

.macro SETGATE vec, handler, attr, ist
        mov edi, IDT + \vec * 16
        mov eax, offset \handler
        mov word ptr [rdi], ax
        mov word ptr [rdi + 2], 0x18
        mov byte ptr [rdi + 4], \ist
        mov byte ptr [rdi + 5], \attr
        shr eax, 16
        mov word ptr [rdi + 6], ax
        mov dword ptr [rdi + 8], 0
        mov dword ptr [rdi + 12], 0
.endm

# iretq to ring 3 at \target with RSP 0x6800 and IOPL 3 (ring 3 may OUT)
.macro TO_RING3 target
        push 0x23
        push 0x6800
        push 0x3002
        push 0x2b
        push offset \target
        iretq
.endm

        .code64
long_entry:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov fs, ax
        mov gs, ax
        mov rsp, 0x7000
        mov qword ptr [TSS + 4], 0x5000         # RSP0
        mov qword ptr [TSS + 0x24], 0x4808      # IST1
        mov qword ptr [TSS + 0x2c], 0x4400      # IST2
        mov word ptr [TSS + 0x66], 0x68
        mov edi, offset gdt + 0x48              # 64-bit TSS descriptor: base 0x6000
        mov dword ptr [rdi], 0x60000067
        mov dword ptr [rdi + 4], 0x00008900
        mov qword ptr [rdi + 8], 0
        mov ax, 0x48
        ltr ax
        mov edi, IDT
        mov ecx, 512
        xor eax, eax
        rep stosq
        lidt [idtr]
        SETGATE 0, de_handler, 0x8e, 0
        SETGATE 2, nmi_handler, 0x8e, 0
        SETGATE 8, df_handler, 0x8e, 2
        SETGATE 13, gp_handler, 0x8e, 0
        SETGATE 14, pf_handler, 0x8e, 0
        SETGATE 0x20, irq_handler, 0x8e, 0
        SETGATE 0x21, irq_handler, 0x8e, 0
        SETGATE 0x40, ist_handler, 0x8e, 1
        SETGATE 0x41, if_handler, 0x8e, 0       # interrupt gate
        SETGATE 0x42, if_handler, 0x8f, 0       # trap gate
        SETGATE 0x80, int80_handler, 0xee, 0    # DPL 3 interrupt gate
        movzx eax, word ptr [TEST_ID]
        jmp [tests + rax * 8]

# -- the tests (SI = index)
t_de:   # 1: #DE at ring 0, RSP not 16-byte aligned, handler skips the DIV and returns
        REPORTA de_at
        mov rsp, 0x6ff8
        xor ecx, ecx
        mov eax, 7
de_at:  div ecx
        REPORT 0x1111
        hlt
t_ring3:        # 2: INT 0x80 from ring 3: the stack from RSP0, SS NULL
        TO_RING3 user_int80
t_ist:  # 3: INT 0x40 through a gate with IST1
        REPORTA after_ist
        int 0x40
after_ist:
        hlt
t_pf:   # 4: a write to a page that is not present
        REPORTA pf_at
pf_at:  mov dword ptr [0x400123], 1
        hlt
t_pf_user:      # 5: a ring-3 write to a supervisor page
        TO_RING3 user_pf
t_gp:   # 6: MOV DS with a selector beyond the GDT limit
        REPORTA gp_at
        mov ax, 0x50
gp_at:  mov ds, ax
        hlt
t_df:   # 7: #PF whose gate is not present: #NP after #PF is a double fault
        and byte ptr [IDT + 14 * 16 + 5], 0x7f
        REPORTA df_at
df_at:  mov dword ptr [0x400000], 1
        hlt
t_triple:       # 8: no IDT at all
        lidt [idtr_empty]
        ud2
t_gates:        # 9: IF in an interrupt gate's handler and a trap gate's
        sti
        int 0x41
        int 0x42
        cli
        hlt
t_inject:       # 10: injected interrupts, HLT wake-up, IF = 0 then STI, the window
        REPORTA after_halt
        REPORTA window_at
        sti
        hlt
after_halt:
        REPORT 0x1002
        cli
        REPORT 0x1003                   # IF = 0: not ready; the test asks for a window
        jmp 1f
1:      nop
        sti
        nop                             # in the STI shadow
window_at:
        REPORT 0x1004
        hlt
t_nmi:  # 11: NMIs, with IF = 0, the second held until the first handler's IRET
        cli
        REPORT 0x1101                   # the test injects an NMI here
        jmp 1f
1:      REPORT 0x1102
        hlt

t_syscall:      # 12: SYSCALL (which unicorn leaves to the plugin): RCX, R11, CS, SS, LSTAR
        mov ecx, 0xc0000080
        rdmsr
        or eax, 1                       # EFER.SCE
        wrmsr
        mov ecx, 0xc0000081             # STAR[47:32] = 0x18: CS 0x18, SS 0x20
        xor eax, eax
        mov edx, 0x18
        wrmsr
        mov ecx, 0xc0000082             # LSTAR
        mov eax, offset syscall_target
        xor edx, edx
        wrmsr
        mov ecx, 0xc0000084             # FMASK: TF and IF
        mov eax, 0x300
        wrmsr
        REPORTA after_syscall
        sti
        syscall
after_syscall:
        hlt
t_no_sce:       # 13: SYSCALL with EFER.SCE clear is #UD, at the SYSCALL
        SETGATE 6, ud_handler, 0x8e, 0
        REPORTA ud_at
ud_at:  syscall
        hlt
syscall_target:
        mov rsi, rcx
        REPORT 0x5c00
        REPORTV esi                     # RCX: the next RIP
        REPORTV r11d                    # R11: RFLAGS (IF was set)
        xor eax, eax
        mov ax, cs
        out PORT, eax
        mov ax, ss
        out PORT, eax
        pushfq
        pop rax
        out PORT, eax                   # RFLAGS & ~FMASK
        hlt
ud_handler:
        mov rsi, rsp
        REPORT 0x0600
        REPORTV [rsi]
        hlt

        .code64
user_int80:
        REPORTA after_int80
        int 0x80
after_int80:
        hlt                             # (#GP at ring 3: never reached)
user_pf:
        REPORTA user_pf_at
user_pf_at:
        mov dword ptr [0x200010], 1
        hlt

# -- handlers: report a marker, the handler's RSP at entry, then what the CPU pushed
report_frame:   # RSI = the frame's RIP slot: RIP, CS, RFLAGS, RSP, SS (low 32 bits)
        REPORTV [rsi]
        REPORTV [rsi + 8]
        REPORTV [rsi + 16]
        REPORTV [rsi + 24]
        REPORTV [rsi + 32]
        ret
report_ss:
        xor eax, eax
        mov ax, ss
        out PORT, eax
        ret

de_handler:
        mov rsi, rsp
        REPORT 0xde00
        REPORTV esi
        call report_frame
        call report_ss
        add qword ptr [rsp], 2          # skip DIV ECX
        iretq
int80_handler:
        mov rsi, rsp
        REPORT 0x8000
        REPORTV esi
        call report_frame
        call report_ss
        hlt
ist_handler:
        mov rsi, rsp
        REPORT 0x4000
        REPORTV esi
        call report_frame
        call report_ss
        hlt
pf_handler:
        mov rsi, rsp
        REPORT 0x0e00
        REPORTV esi
        REPORTV [rsi]                   # error code
        mov rax, cr2
        out PORT, eax
        add rsi, 8
        call report_frame
        hlt
gp_handler:
        mov rsi, rsp
        REPORT 0x0d00
        REPORTV esi
        REPORTV [rsi]
        add rsi, 8
        call report_frame
        hlt
df_handler:
        mov rsi, rsp
        REPORT 0x0800
        REPORTV esi
        REPORTV [rsi]
        add rsi, 8
        call report_frame
        hlt
if_handler:
        mov rsi, rsp
        pushfq
        pop rax
        and eax, 0x200
        out PORT, eax                   # IF inside the handler
        REPORTV [rsi + 16]              # IF in the pushed RFLAGS
        iretq
irq_handler:
        mov rsi, rsp
        REPORT 0x2000
        REPORTV [rsi]                   # the RIP it interrupted
        REPORTV [rsi + 16]
        iretq
nmi_handler:
        REPORT 0x0200                   # the test injects a second NMI here
        jmp 1f
1:      REPORT 0x0201
        iretq

        .balign 8
tests:
        .quad 0, t_de, t_ring3, t_ist, t_pf, t_pf_user, t_gp, t_df, t_triple, t_gates
        .quad t_inject, t_nmi, t_syscall, t_no_sce
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        # 0x08 code32
        .quad 0x00cf92000000ffff        # 0x10 data
        .quad 0x00af9a000000ffff        # 0x18 code64
        .quad 0x00cff2000000ffff        # 0x20 data, DPL 3
        .quad 0x00affa000000ffff        # 0x28 code64, DPL 3
        .quad 0, 0, 0                   # 0x30-0x47
        .quad 0, 0                      # 0x48 TSS (16 bytes, built at run time)
gdt_end:
gdtr:
        .word gdt_end - gdt - 1
        .long gdt
idtr:
        .word 256 * 16 - 1
        .quad IDT
idtr_empty:
        .word 0
        .quad 0
