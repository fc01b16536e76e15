/*
 * smp.S: a Multiboot (v1) test kernel for accel's application processors.
 *
 * The boot processor reads FW_CFG_NB_CPUS, prints "cpus=N" and "bsp=ID" (its local
 * APIC's ID register, 0xfee00020) on COM1, copies a real-mode trampoline to 0x8000 and
 * sends INIT, then two SIPIs with vector 0x08, to all the other processors through its
 * local APIC's ICR (0xfee00300). Each application processor starts in real mode at
 * 0x0800:0000, loads the boot processor's GDT, enters 32-bit protected mode, takes a
 * spinlock, prints "ap=ID" (its local APIC's ID register), counts itself and halts. Once N - 1 have
 * counted themselves the boot processor prints "done" and writes 0x10 to isa-debug-exit
 * (0xf4): exit status 33.
 *
 * Build (in this directory; tests/machine/test_kernel_boot.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o smp.elf smp.S
 */
#define COM1 0x3f8
#define LAPIC 0xfee00000
#define TRAMPOLINE 0x8000
/* shared words in low memory, reachable from real mode with DS = 0 */
#define LOCK 0x7000
#define COUNT 0x7004
#define GDTPTR 0x7010
#define AP_STACK 0x70000

        .text
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

_start:
        mov $0x80000, %esp
        movl $0, LOCK
        movl $0, COUNT
        mov $COM1+3, %dx
        mov $3, %al
        out %al, %dx

        mov $0x0005, %ax                /* FW_CFG_NB_CPUS */
        mov $0x510, %dx
        out %ax, %dx
        mov $0x511, %dx
        in %dx, %al
        movzbl %al, %ebp
        in %dx, %al
        movzbl %al, %eax
        shl $8, %eax
        or %eax, %ebp                   /* %ebp = number of CPUs */

        lea s_cpus, %esi
        call puts
        mov %ebp, %eax
        call putdec
        call newline
        lea s_bsp, %esi
        call puts
        mov LAPIC+0x20, %eax            /* the local APIC's ID register */
        shr $24, %eax
        call putdec
        call newline

        sgdt GDTPTR
        /* the trampoline into place */
        lea ap_start, %esi
        mov $TRAMPOLINE, %edi
        mov $(ap_end - ap_start), %ecx
        rep movsb

        /* software-enable the local APIC, then INIT, SIPI, SIPI to all but self */
        movl $0x1ff, LAPIC+0xf0
        movl $0x000c4500, LAPIC+0x300
        call delay
        movl $0x000c4608, LAPIC+0x300
        call delay
        movl $0x000c4608, LAPIC+0x300

        dec %ebp                        /* application processors to wait for */
1:      pause
        cmp COUNT, %ebp
        jne 1b

        mov $1, %eax                    /* print under the lock: the APs may still be */
        call lock                       /* writing their lines */
        lea s_done, %esi
        call puts
        call newline
        movl $0, LOCK
        mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

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

/* ---- COM1 (32-bit) */
putc:                                   /* %al */
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
puts:                                   /* %esi */
1:      mov (%esi), %al
        test %al, %al
        jz 2f
        call putc
        inc %esi
        jmp 1b
2:      ret
newline:
        mov $'\n', %al
        jmp putc
putdec:                                 /* %eax < 1000 */
        push %ebx
        push %edx
        mov $10, %ebx
        xor %ecx, %ecx
1:      xor %edx, %edx
        div %ebx
        push %edx
        inc %ecx
        test %eax, %eax
        jnz 1b
2:      pop %eax
        add $'0', %al
        call putc
        loop 2b
        pop %edx
        pop %ebx
        ret

/* ---- the application processors: real mode at 0x8000, then protected mode */
        .code16
ap_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        lgdtl (GDTPTR)                  /* the boot processor's GDT (sgdt) */
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmpl $0x08, $ap32
ap_end:
        .code32
ap32:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $1, %eax
1:      xchg %eax, LOCK                 /* no stack until the lock is ours */
        test %eax, %eax
        jz 2f
        mov $1, %eax
        pause
        jmp 1b
2:      mov $AP_STACK, %esp
        lea s_ap, %esi
        call puts
        mov LAPIC+0x20, %eax            /* the local APIC's ID register */
        shr $24, %eax
        call putdec
        call newline
        lock incl COUNT
        movl $0, LOCK
3:      cli
        hlt
        jmp 3b

s_ap:   .asciz "ap="
s_cpus: .asciz "cpus="
s_bsp:  .asciz "bsp="
s_done: .asciz "done"
