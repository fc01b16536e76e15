/*
 * apic.S: a Multiboot (v1) test kernel for the local APIC and the I/O APIC in long mode
 * (this kind of host's nested KVM cannot deliver an interrupt to 32-bit code).
 *
 * The boot processor masks both 8259s, software-enables its local APIC (SVR 0x1ff) and
 * prints its APIC ID, then:
 *   1. one-shot timer (vector 0x30, divide by 1, initial count 1000000: 1 ms at the 1 GHz
 *      APIC bus clock): waits in HLT for the interrupt, prints "oneshot=N cur=C" (N
 *      interrupts taken, C the current-count register afterwards: 0);
 *   2. periodic timer (initial count 2000000: 2 ms): takes 10 interrupts in HLT, masks
 *      the timer and prints "periodic=10";
 *   3. COM1's THR-empty interrupt routed through I/O APIC pin 4 (vector 0x31, edge,
 *      physical destination 0): the handler sends "ioapic\n" a byte per interrupt;
 *   4. with more than one CPU (fw_cfg NB_CPUS): INIT/SIPI to the others; each
 *      application processor (32-bit protected mode) prints "ap=ID" and sends a fixed
 *      IPI with vector 0x40 to APIC ID 0; the boot processor counts them in its handler
 *      and prints "ipi=N".
 * Then it writes 0x10 to isa-debug-exit (0xf4): exit status 33. Every interrupt handler
 * ends with an EOI to the local APIC (0xfee000b0).
 *
 * Build (in this directory; tests/machine/test_kernel_boot.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o apic.elf apic.S
 */
#define COM1 0x3f8
#define LAPIC 0xfee00000
#define IOAPIC 0xfec00000
#define TRAMPOLINE 0x8000
#define LOCK 0x7000
#define GDTPTR 0x7010
#define AP_STACK 0x70000

        .text
        .code32
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

_start:
        mov $0x80000, %esp
        mov $pd, %edi                   /* 512 x 2 MiB: the first GiB */
        xor %ecx, %ecx
1:      mov %ecx, %eax
        shl $21, %eax
        or $0x83, %eax
        mov %eax, (%edi, %ecx, 8)
        inc %ecx
        cmp $512, %ecx
        jne 1b
        movl $pd + 3, pdpt              /* the APIC pages at 0xfec00000.. (3rd GiB... 4th) */
        movl $pd_hi + 3, pdpt + 24
        mov $pd_hi, %edi                /* 0xc0000000..: 512 x 2 MiB, uncached */
        xor %ecx, %ecx
1:      mov %ecx, %eax
        shl $21, %eax
        add $0xc0000000, %eax
        or $0x9b, %eax                  /* present, writable, PCD, PWT, 2 MiB */
        mov %eax, (%edi, %ecx, 8)
        inc %ecx
        cmp $512, %ecx
        jne 1b
        movl $pdpt + 3, pml4
        mov $pml4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax
        mov %eax, %cr4
        mov $0xc0000080, %ecx
        rdmsr
        or $0x100, %eax
        wrmsr
        lgdt gdt_desc
        mov %cr0, %eax
        or $0x80000000, %eax
        mov %eax, %cr0
        ljmp $0x08, $start64

        .code64
start64:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x80000, %rsp
        mov $0x30, %edi
        mov $timer_isr, %esi
        call set_gate
        mov $0x31, %edi
        mov $uart_isr, %esi
        call set_gate
        mov $0x40, %edi
        mov $ipi_isr, %esi
        call set_gate
        mov $idt_desc, %eax
        lidt (%rax)

        mov $COM1+3, %dx
        mov $3, %al
        out %al, %dx
        mov $0xff, %al                  /* both 8259s masked: the APICs only */
        out %al, $0x21
        out %al, $0xa1
        mov $LAPIC, %ebx
        mov $ticks, %r12d               /* (absolute symbols through registers: ELF32) */
        mov $ipis, %r13d
        mov $uart_done, %r14d
        movl $0x1ff, 0xf0(%rbx)         /* SVR: software enable, spurious 0xff */
        mov $s_id, %esi
        call puts
        mov 0x20(%rbx), %eax
        shr $24, %eax
        call putdec
        call newline

        /* 1. one-shot */
        movl $0xb, 0x3e0(%rbx)          /* divide by 1 */
        movl $0x30, 0x320(%rbx)         /* LVT timer: vector 0x30, one-shot */
        sti
        movl $1000000, 0x380(%rbx)
1:      cli                             /* test, then sti; hlt (no lost wake-up) */
        cmpl $1, (%r12)
        jae 2f
        sti
        hlt
        jmp 1b
2:      sti
        mov $s_oneshot, %esi
        call puts
        mov (%r12), %eax
        call putdec
        mov $s_cur, %esi
        call puts
        mov 0x390(%rbx), %eax
        call putdec
        call newline

        /* 2. periodic */
        movl $0, (%r12)
        movl $0x20030, 0x320(%rbx)      /* periodic */
        movl $2000000, 0x380(%rbx)
1:      cli
        cmpl $10, (%r12)
        jae 2f
        sti
        hlt
        jmp 1b
2:      sti
        movl $0x10030, 0x320(%rbx)      /* masked */
        movl $0, 0x380(%rbx)
        mov $s_periodic, %esi
        call puts
        mov (%r12), %eax
        call putdec
        call newline

        /* 3. COM1 through IOAPIC pin 4 */
        mov $IOAPIC, %ecx
        movl $0x19, (%rcx)              /* redirection 4, high: destination 0 */
        movl $0, 0x10(%rcx)
        movl $0x18, (%rcx)              /* low: vector 0x31, fixed, edge, unmasked */
        movl $0x31, 0x10(%rcx)
        mov $COM1+4, %dx
        mov $0x0b, %al                  /* DTR, RTS, OUT2 */
        out %al, %dx
        mov $COM1+1, %dx
        mov $0x02, %al                  /* IER: THR empty */
        out %al, %dx
1:      cli
        cmpl $1, (%r14)
        je 2f
        sti
        hlt
        jmp 1b
2:      sti

        /* 4. the other processors */
        mov $0x0005, %ax                /* FW_CFG_NB_CPUS */
        mov $0x510, %dx
        out %ax, %dx
        mov $0x511, %dx
        in %dx, %al
        movzbl %al, %ebp
        cmp $2, %ebp
        jb 9f
        movl $0, LOCK
        sgdt GDTPTR
        mov $ap_start, %esi
        mov $TRAMPOLINE, %edi
        mov $(ap_end - ap_start), %ecx
        rep movsb
        movl $0x000c4500, 0x300(%rbx)   /* INIT to all but self */
        call delay
        movl $0x000c4608, 0x300(%rbx)   /* SIPI, vector 0x08 */
        call delay
        movl $0x000c4608, 0x300(%rbx)
        dec %ebp
1:      cli
        cmp (%r13), %ebp
        jbe 2f
        sti
        hlt
        jmp 1b
2:      sti
        mov $1, %eax                    /* the last AP may still be printing */
        call lock
        mov $s_ipi, %esi
        call puts
        mov (%r13), %eax
        call putdec
        call newline
        movl $0, LOCK
9:      cli
        mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

set_gate:                               /* %edi vector, %esi handler */
        shl $4, %edi
        add $idt, %edi
        mov %si, (%rdi)
        movw $0x08, 2(%rdi)
        movw $0x8e00, 4(%rdi)
        shr $16, %esi
        mov %si, 6(%rdi)
        movl $0, 8(%rdi)
        movl $0, 12(%rdi)
        ret

delay:
        mov $2000, %ecx
1:      pause
        loop 1b
        ret

lock:
1:      xchg %eax, LOCK
        test %eax, %eax
        jz 2f
        mov $1, %eax
        pause
        jmp 1b
2:      ret

timer_isr:
        push %rax
        mov $ticks, %eax
        incl (%rax)
        mov $LAPIC, %eax
        movl $0, 0xb0(%rax)
        pop %rax
        iretq

ipi_isr:
        push %rax
        mov $ipis, %eax
        lock incl (%rax)
        mov $LAPIC, %eax
        movl $0, 0xb0(%rax)
        pop %rax
        iretq

uart_isr:
        push %rax
        push %rdx
        push %rsi
        mov $COM1+2, %dx
        in %dx, %al
        and $0x0e, %al
        cmp $0x02, %al
        jne 9f
        mov $cursor, %esi
        mov (%rsi), %esi
        mov (%rsi), %al
        test %al, %al
        jz 4f
        mov $cursor, %esi
        incl (%rsi)
        mov $COM1, %dx
        out %al, %dx
        jmp 9f
4:      mov $COM1+1, %dx
        xor %al, %al                    /* IER: nothing */
        out %al, %dx
        mov $uart_done, %esi
        movl $1, (%rsi)
9:      mov $LAPIC, %eax
        movl $0, 0xb0(%rax)
        pop %rsi
        pop %rdx
        pop %rax
        iretq

/* ---- COM1 from long mode */
putc:
        push %rdx
        push %rax
        mov $COM1+5, %dx
1:      in %dx, %al
        test $0x20, %al
        jz 1b
        pop %rax
        mov $COM1, %dx
        out %al, %dx
        pop %rdx
        ret
puts:
1:      mov (%rsi), %al
        test %al, %al
        jz 2f
        call putc
        inc %esi
        jmp 1b
2:      ret
newline:
        mov $'\n', %al
        jmp putc
putdec:                                 /* %eax */
        push %rbx
        push %rdx
        push %rcx
        mov $10, %ebx
        xor %ecx, %ecx
1:      xor %edx, %edx
        div %ebx
        push %rdx
        inc %ecx
        test %eax, %eax
        jnz 1b
2:      pop %rax
        add $'0', %al
        call putc
        loop 2b
        pop %rcx
        pop %rdx
        pop %rbx
        ret

/* ---- the application processors: real mode at 0x8000, then 32-bit protected mode */
        .code16
ap_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        lgdtl (GDTPTR)
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $0x18, $ap32
ap_end:
        .code32
ap32:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $1, %eax
1:      xchg %eax, LOCK
        test %eax, %eax
        jz 2f
        mov $1, %eax
        pause
        jmp 1b
2:      mov $AP_STACK, %esp
        mov LAPIC+0x20, %eax
        shr $24, %eax
        shl $12, %eax
        sub %eax, %esp                  /* a stack of its own */
        lea s_ap, %esi
        call putsap
        mov LAPIC+0x20, %eax
        shr $24, %eax
        add $'0', %al
        call putcap
        mov $'\n', %al
        call putcap
        movl $0, LOCK
        movl $0x1ff, LAPIC+0xf0
        movl $0, LAPIC+0x310            /* fixed IPI, vector 0x40, to APIC ID 0 */
        movl $0x00000040, LAPIC+0x300
3:      cli
        hlt
        jmp 3b
putcap:
        push %edx
        push %eax
        mov $COM1+5, %dx
1:      in %dx, %al
        test $0x20, %al
        jz 1b
        pop %eax
        mov $COM1, %dx
        out %al, %dx
        pop %edx
        ret
putsap:
1:      mov (%esi), %al
        test %al, %al
        jz 2f
        call putcap
        inc %esi
        jmp 1b
2:      ret

        .data
        .align 16
gdt:    .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
        .quad 0x00cf9a000000ffff        /* 0x18: 32-bit code */
gdt_desc:
        .word 4 * 8 - 1
        .long gdt
        .align 16
idt_desc:
        .word 16 * 256 - 1
        .long idt, 0
ticks:  .long 0
ipis:   .long 0
uart_done: .long 0
cursor: .long message
message: .asciz "ioapic\n"
s_id:   .asciz "apic id="
s_oneshot: .asciz "oneshot="
s_cur:  .asciz " cur="
s_periodic: .asciz "periodic="
s_ipi:  .asciz "ipi="
s_ap:   .asciz "ap="

        .bss
        .align 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
pd_hi:  .skip 4096
idt:    .skip 16 * 256
