/*
 * irq.S: a Multiboot (v1) test kernel for COM1's interrupt (IRQ 4) through the PIC.
 *
 * It switches to 64-bit long mode first (identity-mapped first GiB, 2 MiB pages), as
 * kvm-unit-tests do: this kind of host's nested KVM (kvm_pvm) cannot deliver an
 * interrupt to 32-bit code. It relies on the firmware state accel's (and QEMU's) boot
 * leaves: the master PIC initialised with vector base 0x08. It installs an IDT whose
 * vector 0x0c (IRQ 4) is the UART handler, unmasks only IRQ 4, enables interrupts and
 * the UART's THR-empty interrupt: the handler sends "irq tx\n" a byte per interrupt
 * (nothing polls LSR for it), then switches to the received-data interrupt and echoes
 * every byte it receives until a newline. Then it writes 0x10 to isa-debug-exit (0xf4):
 * exit status 33. Without an interrupt controller delivering IRQ 4 nothing is printed
 * and it never ends.
 *
 * Build (in this directory; tests/machine/test_kernel_boot.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o irq.elf irq.S
 */
#define COM1 0x3f8

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
        or $0x83, %eax                  /* present, writable, 2 MiB */
        mov %eax, (%edi, %ecx, 8)
        inc %ecx
        cmp $512, %ecx
        jne 1b
        movl $pd + 3, pdpt
        movl $pdpt + 3, pml4
        mov $pml4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax                  /* PAE */
        mov %eax, %cr4
        mov $0xc0000080, %ecx           /* EFER.LME */
        rdmsr
        or $0x100, %eax
        wrmsr
        lgdt gdt_desc
        mov %cr0, %eax
        or $0x80000000, %eax            /* PG: long mode */
        mov %eax, %cr0
        ljmp $0x08, $start64

        .code64
start64:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x80000, %rsp
        /* (absolute addresses go through 32-bit registers: this is an ELF32 file) */
        mov $uart_isr, %eax             /* IDT entry 0x0c: 64-bit interrupt gate */
        mov $idt + 16 * 0x0c, %edi
        mov %ax, (%rdi)
        movw $0x08, 2(%rdi)
        movw $0x8e00, 4(%rdi)
        shr $16, %eax
        mov %ax, 6(%rdi)
        movl $0, 8(%rdi)
        mov $idt_desc, %eax
        lidt (%rax)

        mov $COM1+3, %dx
        mov $3, %al                     /* 8N1 */
        out %al, %dx
        mov $COM1+4, %dx
        mov $0x0b, %al                  /* DTR, RTS, OUT2 (the PC's IRQ enable) */
        out %al, %dx
        mov $0xef, %al                  /* only IRQ 4 on the master PIC */
        out %al, $0x21
        mov $0xff, %al
        out %al, $0xa1
        sti
        mov $COM1+1, %dx
        mov $0x02, %al                  /* IER: THR empty */
        out %al, %dx
        mov $phase, %ebx
1:      hlt
        cmpl $2, (%rbx)
        jne 1b
        cli
        mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

uart_isr:
        push %rax
        push %rdx
        push %rsi
        push %rbx
        mov $phase, %ebx
        mov $COM1+2, %dx                /* IIR: which interrupt */
        in %dx, %al
        and $0x0e, %al
        cmp $0x02, %al
        je 2f
        cmp $0x04, %al
        je 3f
        cmp $0x0c, %al
        je 3f
        jmp 9f
2:      mov $cursor, %esi               /* THR empty: the next byte, or switch to RX */
        mov (%rsi), %esi
        mov (%rsi), %al
        test %al, %al
        jz 4f
        mov $cursor, %esi
        incl (%rsi)
        mov $COM1, %dx
        out %al, %dx
        jmp 9f
4:      movl $1, (%rbx)
        mov $COM1+1, %dx
        mov $0x01, %al                  /* IER: received data only */
        out %al, %dx
        jmp 9f
3:      mov $COM1+5, %dx                /* received data: echo all there is */
        in %dx, %al
        test $0x01, %al
        jz 9f
        mov $COM1, %dx
        in %dx, %al
        mov %al, %ah
        mov $COM1+5, %dx
5:      in %dx, %al                     /* the echo polls THRE (IER has no THRI now) */
        test $0x20, %al
        jz 5b
        mov %ah, %al
        mov $COM1, %dx
        out %al, %dx
        cmp $'\n', %al
        jne 3b
        movl $2, (%rbx)
9:      mov $0x20, %al                  /* EOI */
        out %al, $0x20
        pop %rbx
        pop %rsi
        pop %rdx
        pop %rax
        iretq

        .data
        .align 16
gdt:    .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
gdt_desc:
        .word 3 * 8 - 1
        .long gdt
        .align 16
idt_desc:
        .word 16 * 256 - 1
        .long idt, 0
cursor: .long message
phase:  .long 0
message: .asciz "irq tx\n"

        .bss
        .align 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
idt:    .skip 16 * 256
