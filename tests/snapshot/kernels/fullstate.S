/* fullstate.S: a flat 64 KiB firmware image (QEMU -bios placement: reset vector at
 * 0xFFFF0) for the full-state snapshot test. Build:
 *   gcc -c -o fullstate.o fullstate.S && objcopy -O binary fullstate.o fullstate.bin
 *
 * Real mode (CS=0xF000, DS=SS=0): WRMSR/RDMSR, RDTSC and the x2APIC MSRs work in any
 * mode, and this host's KVM (kvm_pvm) cannot run x87/SSE guest code, so the image does
 * not switch to long mode. It:
 *   1. arms kvmclock (MSR_KVM_SYSTEM_TIME_NEW = 0x5001, WALL_CLOCK_NEW = 0x6000),
 *      writes STAR, LSTAR, KERNEL_GS_BASE (TSC_AUX only where CPUID has RDTSCP),
 *   2. enables the x2APIC and programs its timer one-shot (vector 0x40, count 1000)
 *      with IF=0, so the interrupt is left pending in the LAPIC's IRR,
 *   3. reads its kvmclock (pvclock at 0x5000) for 1.5 s of guest time, keeping the
 *      largest step between two reads (a pause + save + restore happens here),
 *   4. reports on port 0xE9: each MSR it wrote reads back ("MSRS OK" or "MSR BAD"),
 *      how its clock advanced: every step under 1 ms "CLOCK OK", under 200 ms "CLOCK
 *      SLOW" (the host descheduled the vCPU thread: 2 cores shared here), beyond "CLOCK
 *      JUMP", a step back "CLOCK BACK", no progress "CLOCK STUCK"; then "STEP" and the
 *      largest step in hex ns (informative: differs run to run); then STI and whether
 *      vector 0x40 arrives ("IRQ OK" / "IRQ NONE"), and exits through isa-debug-exit
 *      (port 0xF4) with 0x10 (exit status 33).
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0x7000, %sp
    movw $(irq40 - _start), 0x100       /* IVT[0x40] = F000:irq40 */
    movw $0xF000, 0x102
    movb $0, 0x7f00                     /* interrupt seen flag */

    /* the MSR table: write every entry */
    movw $(msrs - _start), %si
1:  movl %cs:(%si), %ecx
    testl %ecx, %ecx
    jz 2f
    movl %cs:4(%si), %eax
    movl %cs:8(%si), %edx
    wrmsr
    addw $12, %si
    jmp 1b
2:
    /* x2APIC on (IA32_APIC_BASE bits 10, 11), timer one-shot vector 0x40 */
    movl $0x1b, %ecx
    rdmsr
    orl $0xc00, %eax
    wrmsr
    movl $0x80f, %ecx                   /* SVR: APIC software-enabled, spurious 0xff */
    movl $0x1ff, %eax
    xorl %edx, %edx
    wrmsr
    movl $0x83e, %ecx                   /* divide configuration: by 1 */
    movl $0xb, %eax
    xorl %edx, %edx
    wrmsr
    movl $0x832, %ecx                   /* LVT timer: one-shot, vector 0x40, unmasked */
    movl $0x40, %eax
    wrmsr
    movl $0x838, %ecx                   /* initial count */
    movl $1000, %eax
    wrmsr

    /* 1.5 s of kvmclock: t0 in 0x7f10, previous in 0x7f14, largest step in 0x7f18 */
    call now
    movl %eax, 0x7f10
    movl %eax, 0x7f14
    movl $0, 0x7f18
3:  call now
    movl %eax, %ebx
    subl 0x7f14, %ebx                   /* step (unsigned: a step back is huge) */
    cmpl 0x7f18, %ebx
    jbe 4f
    movl %ebx, 0x7f18
4:  movl %eax, 0x7f14
    subl 0x7f10, %eax
    cmpl $1500000000, %eax
    jb 3b

    /* every MSR reads back */
    movw $(msrs - _start), %si
5:  movl %cs:(%si), %ecx
    testl %ecx, %ecx
    jz 6f
    rdmsr
    cmpl %cs:4(%si), %eax
    jne msr_bad
    cmpl %cs:8(%si), %edx
    jne msr_bad
    addw $12, %si
    jmp 5b
6:  movw $(s_msrs_ok - _start), %si
    call puts
    jmp clock
msr_bad:
    movw $(s_msr_bad - _start), %si
    call puts
clock:
    movl 0x7f18, %eax
    movw $(s_clock_stuck - _start), %si
    testl %eax, %eax
    jz 7f
    movw $(s_clock_back - _start), %si
    testl %eax, %eax
    js 7f
    movw $(s_clock_ok - _start), %si
    cmpl $1000000, %eax
    jb 7f
    movw $(s_clock_slow - _start), %si
    cmpl $200000000, %eax
    jb 7f
    movw $(s_clock_jump - _start), %si
7:  call puts
    movw $(s_step - _start), %si        /* the largest step, in hex ns */
    call puts
    movl 0x7f18, %eax
    call puthex
    movb $10, %al
    outb %al, $0xe9

    /* the pending timer interrupt arrives once IF=1 */
    movl $100000, %ecx
    sti
8:  cmpb $0, 0x7f00
    jne 9f
    loopl 8b
9:  cli
    movw $(s_irq_ok - _start), %si
    cmpb $0, 0x7f00
    jne 10f
    movw $(s_irq_none - _start), %si
10: call puts
    movb $0x10, %al
    outb %al, $0xf4
    hlt

irq40:
    movb $1, 0x7f00
    pushl %eax
    pushl %ecx
    pushl %edx
    movl $0x80b, %ecx                   /* x2APIC EOI */
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    popl %edx
    popl %ecx
    popl %eax
    iret

/* eax = low 32 bits of the kvmclock reading in ns (pvclock at 0x5000) */
now:
    pushl %ebx
    pushl %ecx
    pushl %edx
    pushl %esi
    pushl %edi
1:  movl 0x5000, %edi                   /* version */
    testl $1, %edi
    jnz 1b
    rdtsc
    subl 0x5008, %eax                   /* - tsc_timestamp */
    sbbl 0x500c, %edx
    movb 0x501c, %cl                    /* tsc_shift (signed) */
    testb %cl, %cl
    js 2f
    shldl %cl, %eax, %edx
    shll %cl, %eax
    jmp 3f
2:  negb %cl
    shrdl %cl, %edx, %eax
    shrl %cl, %edx
3:  movl %edx, %ebx                     /* high half of the delta */
    mull 0x5018                         /* low * tsc_to_system_mul */
    movl %edx, %esi                     /* >> 32 */
    movl %ebx, %eax
    mull 0x5018                         /* high * mul: its low 32 bits */
    addl %esi, %eax
    addl 0x5010, %eax                   /* + system_time */
    cmpl 0x5000, %edi
    jne 1b
    popl %edi
    popl %esi
    popl %edx
    popl %ecx
    popl %ebx
    ret

/* print eax as 8 hex digits on port 0xE9 */
puthex:
    movw $8, %cx
1:  roll $4, %eax
    movl %eax, %edx
    andb $0xf, %al
    addb $'0', %al
    cmpb $'9', %al
    jbe 2f
    addb $('a' - '9' - 1), %al
2:  outb %al, $0xe9
    movl %edx, %eax
    loop 1b
    ret

/* print the NUL-terminated string at CS:SI on port 0xE9 */
puts:
    movb %cs:(%si), %al
    testb %al, %al
    jz 1f
    outb %al, $0xe9
    incw %si
    jmp puts
1:  ret

    .balign 4
msrs:   /* index, low, high (a zero index ends the table) */
    .long 0x4b564d01, 0x5001, 0
    .long 0x4b564d00, 0x6000, 0
    .long 0xc0000081, 0x00000000, 0x00230010      /* STAR */
    .long 0xc0000082, 0x81a00000, 0xffffffff      /* LSTAR */
    .long 0xc0000102, 0x00001000, 0xffff8880      /* KERNEL_GS_BASE */
    .long 0

s_msrs_ok:     .asciz "MSRS OK\n"
s_msr_bad:     .asciz "MSR BAD\n"
s_clock_ok:    .asciz "CLOCK OK\n"
s_clock_jump:  .asciz "CLOCK JUMP\n"
s_clock_slow:  .asciz "CLOCK SLOW\n"
s_clock_back:  .asciz "CLOCK BACK\n"
s_step:        .asciz "STEP "
s_clock_stuck: .asciz "CLOCK STUCK\n"
s_irq_ok:      .asciz "IRQ OK\n"
s_irq_none:    .asciz "IRQ NONE\n"

    .org 0xfff0
    ljmp $0xf000, $(_start - _start)
    .org 0x10000
