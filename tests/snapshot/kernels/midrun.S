/*
 * midrun.S: a Multiboot (v1) test kernel for snapshots taken mid-run, on every vCPU.
 *
 * The boot processor reads FW_CFG_NB_CPUS (0x510/0x511), turns on PAE paging (2 MiB
 * identity pages: this host's KVM cannot deliver an interrupt in protected mode without
 * paging, nor set CR0.PG without PAE), loads an IDT, and, where it has a local APIC (its version register at
 * 0xfee00030 reads other than 0), starts the application processors with INIT, SIPI,
 * SIPI (vector 0x08: a real-mode trampoline copied to 0x8000, which loads the same GDT,
 * paging and IDT). Every processor then, with interrupts off:
 *   1. writes STAR, LSTAR and KERNEL_GS_BASE (values that differ per processor), and
 *      TSC_AUX where CPUID 0x80000001 EDX bit 27 (RDTSCP) says the vCPU has it and the
 *      command line does not hold "notscaux" (then TSCAUX NO is reported);
 *   2. arms kvmclock where CPUID 0x40000000 says "KVMKVMKVM" and 0x40000001 EAX bit 3
 *      (CLOCKSOURCE2) is set: MSR_KVM_SYSTEM_TIME_NEW = its pvclock page | 1
 *      (0x5000 + 0x40 * slot; the boot processor also WALL_CLOCK_NEW = 0x6000);
 *   3. programs its local APIC timer one-shot (vector 0x40, divide by 1, count 1000),
 *      which fires at once and stays pending in the IRR (IF is 0);
 *   4. reads its kvmclock for 400 ms of guest time, keeping the largest step between
 *      two reads (without kvmclock: 150000 rounds of a short loop) -- a pause, save and
 *      restore lands here;
 *   5. reads every MSR it wrote back, then sets IF and waits (bounded) for vector 0x40;
 *   6. counts itself done.
 * The boot processor waits for all, then prints on COM1 "CPUS ran/N" and, per
 * processor in slot order,
 *   "CPU i MSRS OK|BAD TSCAUX YES|NO CLOCK OK|SLOW|JUMP|BACK|STUCK|NONE IRQ OK|NONE|NOAPIC"
 *   "CPU i STEP xxxxxxxx"   (the largest kvmclock step in hex ns: differs run to run)
 * (CLOCK: every step under 1 ms OK, under 200 ms SLOW -- the host descheduled the vCPU
 * thread --, beyond JUMP, a step back BACK, no progress STUCK) and ends with 0x10 to
 * isa-debug-exit (0xf4): exit status 33.
 *
 * Build (in this directory; tests/snapshot/test_midrun_kernel.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o midrun.elf midrun.S
 */
#define COM1 0x3f8
#define LAPIC 0xfee00000
#define TRAMPOLINE 0x8000
#define PVCLOCK 0x5000
#define WALLCLOCK 0x6000
#define LOCK 0x7000
#define DONE 0x7004
#define GDTPTR 0x7010
#define IDTPTR 0x7020
#define NEXTSLOT 0x7030
#define NCPUS 0x7034
#define HAVE_APIC 0x7038
#define HAVE_PVCLOCK 0x703c
#define HAVE_RDTSCP 0x7040
#define STACKS 0x7044
#define PERCPU 0x7100           /* 0x40 bytes per slot */
#define PGDIR 0x20000
#define IDT 0x26000
#define MAXCPUS 4
/* per-slot offsets */
#define P_IRQ 0
#define P_MSRS 4
#define P_STEP 8
#define P_T0 12
#define P_PREV 16
#define P_STAT 20               /* clock status: index into s_clock */


/* From 32-bit protected mode (flat, our GDT) into long mode at \target (selector 0x08) */
        .macro LONG_MODE target
        mov %cr4, %eax
        or $0x20, %eax                  /* PAE */
        mov %eax, %cr4
        mov $PGDIR, %eax
        mov %eax, %cr3
        mov $0xc0000080, %ecx           /* EFER.LME */
        rdmsr
        or $0x100, %eax
        wrmsr
        mov %cr0, %eax
        or $0x80000000, %eax            /* PG */
        mov %eax, %cr0
        ljmp $0x08, $\target
        .endm

        .text
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

_start:
        cli
        mov $0x80000, %esp
        mov %ebx, %esi                  /* the Multiboot information */
        movl $0, LOCK
        movl $0, DONE
        movl $0, NEXTSLOT
        movl $0, STACKS
        mov $COM1+3, %dx                /* 8N1 */
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
        or %eax, %ebp
        cmp $MAXCPUS, %ebp
        jbe 1f
        mov $MAXCPUS, %ebp
1:      mov %ebp, NCPUS

        /* what the vCPU has */
        movl $0, HAVE_PVCLOCK
        mov $0x40000000, %eax
        cpuid
        cmp $0x4b4d564b, %ebx           /* "KVMK" */
        jne 2f
        cmp $0x564b4d56, %ecx           /* "VMKV" */
        jne 2f
        cmp $0x4d, %edx                 /* "M" */
        jne 2f
        mov $0x40000001, %eax
        cpuid
        shr $3, %eax
        and $1, %eax
        mov %eax, HAVE_PVCLOCK
2:      movl $0, HAVE_RDTSCP
        mov $0x80000000, %eax
        cpuid
        cmp $0x80000001, %eax
        jb 3f
        mov $0x80000001, %eax
        cpuid
        shr $27, %edx
        and $1, %edx
        mov %edx, HAVE_RDTSCP
        testl $4, (%esi)                /* "notscaux" on the command line (after the */
        jz 3f                           /* kernel's name): leave TSC_AUX alone */
        mov 16(%esi), %eax
21:     cmpb $0, (%eax)
        je 3f
        cmpl $0x73746f6e, (%eax)        /* "nots" */
        jne 22f
        cmpl $0x78756163, 4(%eax)       /* "caux" */
        jne 22f
        movl $0, HAVE_RDTSCP
        jmp 3f
22:     inc %eax
        jmp 21b
3:      mov LAPIC+0x30, %eax            /* version: 0 where no local APIC answers */
        xor %ecx, %ecx
        test %eax, %eax
        jz 4f
        cmp $0xffffffff, %eax
        je 4f
        mov $1, %ecx
4:      mov %ecx, HAVE_APIC

        /* long mode's tables: a PML4 at PGDIR, a PDPT after it, four page directories
         * after that: 2048 identity 2 MiB pages (4 GiB); the top 32 MiB uncached */
        movl $(PGDIR + 0x1003), PGDIR
        movl $0, PGDIR+4
        movl $(PGDIR + 0x2003), PGDIR+0x1000
        movl $(PGDIR + 0x3003), PGDIR+0x1008
        movl $(PGDIR + 0x4003), PGDIR+0x1010
        movl $(PGDIR + 0x5003), PGDIR+0x1018
        movl $0, PGDIR+0x1004
        movl $0, PGDIR+0x100c
        movl $0, PGDIR+0x1014
        movl $0, PGDIR+0x101c
        xor %ecx, %ecx
5:      mov %ecx, %eax
        shl $21, %eax
        or $0x83, %eax                  /* present, writable, 2 MiB */
        cmp $0x7f0, %ecx
        jb 6f
        or $0x18, %eax                  /* PCD | PWT */
6:      mov %eax, PGDIR+0x2000(,%ecx,8)
        movl $0, PGDIR+0x2004(,%ecx,8)
        inc %ecx
        cmp $2048, %ecx
        jb 5b

        /* IDT (64-bit gates): every vector to ignore_irq, 0x40 to timer_irq */
        xor %ecx, %ecx
7:      lea ignore_irq, %eax
        cmp $0x40, %ecx
        jne 8f
        lea timer_irq, %eax
8:      mov %ecx, %edi
        shl $4, %edi
        mov %eax, %edx
        and $0xffff, %eax
        or $0x00080000, %eax            /* selector 0x08 */
        and $0xffff0000, %edx
        or $0x8e00, %edx                /* present, DPL 0, interrupt gate */
        mov %eax, IDT(%edi)
        mov %edx, IDT+4(%edi)
        movl $0, IDT+8(%edi)
        movl $0, IDT+12(%edi)
        inc %ecx
        cmp $256, %ecx
        jb 7b
        movw $(256 * 16 - 1), IDTPTR
        movl $IDT, IDTPTR+2
        movl $0, IDTPTR+6
        movw $(gdt_end - gdt - 1), GDTPTR
        movl $gdt, GDTPTR+2
        lgdt GDTPTR
        ljmp $0x18, $1f                 /* our own 32-bit code segment */
1:      mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        LONG_MODE bsp64

        .code64
bsp64:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x80000, %rsp
        lidt IDTPTR
        mov $LAPIC, %r15
        mov $1, %eax                    /* CPUs that run: 1 without a local APIC */
        cmpl $0, HAVE_APIC
        je 9f
        mov NCPUS, %eax
9:      mov %eax, %ebp                  /* %ebp = CPUs that run */

        cmpl $1, %ebp
        je 10f
        lea ap_start(%rip), %rsi        /* the trampoline into place */
        mov $TRAMPOLINE, %rdi
        mov $(ap_end - ap_start), %rcx
        rep movsb
        movl $0x1ff, 0xf0(%r15)
        movl $0x000c4500, 0x300(%r15)   /* INIT to all but self */
        call delay
        movl $0x000c4608, 0x300(%r15)   /* SIPI, vector 0x08 */
        call delay
        movl $0x000c4608, 0x300(%r15)
10:     call cpu_main

        dec %ebp                        /* wait for the others */
11:     pause
        cmp DONE, %ebp                  /* until DONE = all that run */
        jae 11b

        lea s_cpus(%rip), %rsi
        call puts
        mov %ebp, %eax
        inc %eax
        call putdec
        mov $'/', %al
        call putc
        mov NCPUS, %eax
        call putdec
        call newline

        xor %ebx, %ebx                  /* slot */
12:     cmp %ebp, %ebx
        ja 20f
        mov %ebx, %edi
        shl $6, %edi
        add $PERCPU, %edi               /* %rdi = the slot's area */
        call cpu_prefix
        lea s_msrs_ok(%rip), %rsi
        cmpl $0, P_MSRS(%rdi)
        je 13f
        lea s_msrs_bad(%rip), %rsi
13:     call puts
        lea s_tscaux_yes(%rip), %rsi
        cmpl $0, HAVE_RDTSCP
        jne 14f
        lea s_tscaux_no(%rip), %rsi
14:     call puts
        mov P_STAT(%rdi), %eax
        lea s_clock(%rip), %rsi
        mov (%rsi,%rax,8), %rsi
        call puts
        lea s_irq_noapic(%rip), %rsi
        cmpl $0, HAVE_APIC
        je 15f
        lea s_irq_ok(%rip), %rsi
        cmpl $0, P_IRQ(%rdi)
        jne 15f
        lea s_irq_none(%rip), %rsi
15:     call puts
        call newline
        call cpu_prefix
        lea s_step(%rip), %rsi
        call puts
        mov P_STEP(%rdi), %eax
        call puthex
        call newline
        inc %ebx
        jmp 12b

20:     mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

cpu_prefix:                             /* "CPU <ebx> " */
        lea s_cpu(%rip), %rsi
        call puts
        mov %ebx, %eax
        call putdec
        mov $' ', %al
        jmp putc

delay:
        mov $2000, %ecx
1:      pause
        loop 1b
        ret

/* ---- what every processor does; its slot comes from NEXTSLOT (64-bit; %r15 = LAPIC) */
cpu_main:
        push %rbx
        push %rdi
        push %rbp
        mov $1, %eax
        lock xadd %eax, NEXTSLOT
        mov %eax, %ebx                  /* %ebx = slot */
        mov %eax, %edi
        shl $6, %edi
        add $PERCPU, %edi               /* %rdi = the slot's area */
        movl $0, P_IRQ(%rdi)
        movl $0, P_STEP(%rdi)
        movl $1, P_MSRS(%rdi)           /* not checked yet */

        /* 1. the MSRs */
        mov $0xc0000081, %ecx           /* STAR */
        xor %eax, %eax
        mov $0x00230010, %edx
        wrmsr
        mov $0xc0000082, %ecx           /* LSTAR */
        mov %ebx, %eax
        shl $12, %eax
        add $0x81a00000, %eax
        mov $0xffffffff, %edx
        wrmsr
        mov $0xc0000102, %ecx           /* KERNEL_GS_BASE */
        lea 0x1000(%rbx), %eax
        mov $0xffff8880, %edx
        wrmsr
        cmpl $0, HAVE_RDTSCP
        je 1f
        mov $0xc0000103, %ecx           /* TSC_AUX */
        lea 0x100(%rbx), %eax
        xor %edx, %edx
        wrmsr

        /* 2. kvmclock */
1:      cmpl $0, HAVE_PVCLOCK
        je 2f
        test %ebx, %ebx
        jnz 3f
        mov $0x4b564d00, %ecx           /* WALL_CLOCK_NEW */
        mov $WALLCLOCK, %eax
        xor %edx, %edx
        wrmsr
3:      mov $0x4b564d01, %ecx           /* SYSTEM_TIME_NEW */
        mov %ebx, %eax
        shl $6, %eax
        add $(PVCLOCK | 1), %eax
        xor %edx, %edx
        wrmsr

        /* 3. the local APIC timer, pending with IF = 0 */
2:      cmpl $0, HAVE_APIC
        je 4f
        movl $0x1ff, 0xf0(%r15)         /* SVR: enabled, spurious 0xff */
        movl $0xb, 0x3e0(%r15)          /* divide by 1 */
        movl $0x40, 0x320(%r15)         /* LVT timer: one-shot, vector 0x40 */
        movl $1000, 0x380(%r15)         /* initial count */

        /* 4. the clock, or a bounded loop without one */
4:      cmpl $0, HAVE_PVCLOCK
        jne 5f
        movl $5, P_STAT(%rdi)           /* NONE */
        mov $150000, %ecx
6:      pause
        loop 6b
        jmp 9f
5:      call now
        mov %eax, P_T0(%rdi)
        mov %eax, P_PREV(%rdi)
7:      call now
        mov %eax, %edx
        sub P_PREV(%rdi), %edx          /* the step (unsigned: a step back is huge) */
        cmp P_STEP(%rdi), %edx
        jbe 8f
        mov %edx, P_STEP(%rdi)
8:      mov %eax, P_PREV(%rdi)
        sub P_T0(%rdi), %eax
        cmp $400000000, %eax
        jb 7b
        mov P_STEP(%rdi), %eax
        movl $4, P_STAT(%rdi)           /* STUCK */
        test %eax, %eax
        jz 9f
        movl $3, P_STAT(%rdi)           /* BACK */
        test %eax, %eax
        js 9f
        movl $0, P_STAT(%rdi)           /* OK */
        cmp $1000000, %eax
        jb 9f
        movl $1, P_STAT(%rdi)           /* SLOW */
        cmp $200000000, %eax
        jb 9f
        movl $2, P_STAT(%rdi)           /* JUMP */

        /* 5. every MSR reads back; then the pending interrupt */
9:      mov $0xc0000081, %ecx
        rdmsr
        test %eax, %eax
        jnz 20f
        cmp $0x00230010, %edx
        jne 20f
        mov $0xc0000082, %ecx
        rdmsr
        mov %ebx, %esi
        shl $12, %esi
        add $0x81a00000, %esi
        cmp %esi, %eax
        jne 20f
        cmp $0xffffffff, %edx
        jne 20f
        mov $0xc0000102, %ecx
        rdmsr
        lea 0x1000(%rbx), %esi
        cmp %esi, %eax
        jne 20f
        cmp $0xffff8880, %edx
        jne 20f
        cmpl $0, HAVE_RDTSCP
        je 10f
        mov $0xc0000103, %ecx
        rdmsr
        lea 0x100(%rbx), %esi
        cmp %esi, %eax
        jne 20f
        test %edx, %edx
        jnz 20f
10:     cmpl $0, HAVE_PVCLOCK
        je 11f
        mov $0x4b564d01, %ecx
        rdmsr
        mov %ebx, %esi
        shl $6, %esi
        add $(PVCLOCK | 1), %esi
        cmp %esi, %eax
        jne 20f
11:     movl $0, P_MSRS(%rdi)           /* OK */
20:     mov $100000, %ecx
        sti
21:     cmpl $0, P_IRQ(%rdi)
        jne 22f
        loop 21b
22:     cli
        lock incl DONE                  /* 6. done */
        pop %rbp
        pop %rdi
        pop %rbx
        ret

timer_irq:                              /* this processor's slot (in %rdi) saw it */
        movl $1, P_IRQ(%rdi)
        movl $0, 0xb0(%r15)             /* EOI */
ignore_irq:
        iretq

/* %eax = the low 32 bits of this processor's kvmclock in ns (its page: slot in %ebx) */
now:
        push %rbx
        push %rcx
        push %rdx
        push %rsi
        push %rdi
        push %rbp
        mov %ebx, %ebp
        shl $6, %ebp
        add $PVCLOCK, %ebp
1:      mov 0(%rbp), %edi               /* version */
        test $1, %edi
        jnz 1b
        rdtsc
        sub 8(%rbp), %eax               /* - tsc_timestamp */
        sbb 12(%rbp), %edx
        movb 28(%rbp), %cl              /* tsc_shift (signed) */
        testb %cl, %cl
        js 2f
        shld %cl, %eax, %edx
        shl %cl, %eax
        jmp 3f
2:      negb %cl
        shrd %cl, %edx, %eax
        shr %cl, %edx
3:      mov %edx, %ebx                  /* high half of the delta */
        mull 24(%rbp)                   /* low * tsc_to_system_mul */
        mov %edx, %esi                  /* >> 32 */
        mov %ebx, %eax
        mull 24(%rbp)                   /* high * mul: its low 32 bits */
        add %esi, %eax
        add 16(%rbp), %eax              /* + system_time */
        cmp 0(%rbp), %edi
        jne 1b
        pop %rbp
        pop %rdi
        pop %rsi
        pop %rdx
        pop %rcx
        pop %rbx
        ret

/* ---- COM1 (64-bit) */
putc:                                   /* %al */
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
puts:                                   /* %rsi */
        push %rax
1:      mov (%rsi), %al
        test %al, %al
        jz 2f
        call putc
        inc %rsi
        jmp 1b
2:      pop %rax
        ret
newline:
        mov $'\n', %al
        jmp putc
putdec:                                 /* %eax < 1000 */
        push %rbx
        push %rcx
        push %rdx
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
        pop %rdx
        pop %rcx
        pop %rbx
        ret
puthex:                                 /* %eax as 8 hex digits */
        push %rcx
        push %rdx
        mov $8, %ecx
1:      rol $4, %eax
        mov %eax, %edx
        and $0xf, %al
        add $'0', %al
        cmp $'9', %al
        jbe 2f
        add $('a' - '9' - 1), %al
2:      call putc
        mov %edx, %eax
        loop 1b
        pop %rdx
        pop %rcx
        ret

/* ---- the application processors: real mode at 0x8000, 32-bit, then long mode */
        .code16
ap_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        lgdtl (GDTPTR)                  /* our GDT */
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
        LONG_MODE ap64
        .code64
ap64:
        mov $0x1000, %eax               /* a stack of its own: 0x7f000 down */
        lock xadd %eax, STACKS
        mov $0x7f000, %esp
        sub %eax, %esp
        lidt IDTPTR
        mov $LAPIC, %r15
        call cpu_main
1:      cli
        hlt
        jmp 1b

        .data
        .align 8
gdt:    .quad 0
        .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff        /* 0x10: data */
        .quad 0x00cf9a000000ffff        /* 0x18: 32-bit code */
gdt_end:
        .align 8
s_clock:
        .long s_clock_ok, 0, s_clock_slow, 0, s_clock_jump, 0, s_clock_back, 0
        .long s_clock_stuck, 0, s_clock_none, 0
s_cpus:         .asciz "CPUS "
s_cpu:          .asciz "CPU "
s_msrs_ok:      .asciz "MSRS OK"
s_msrs_bad:     .asciz "MSRS BAD"
s_tscaux_yes:   .asciz " TSCAUX YES"
s_tscaux_no:    .asciz " TSCAUX NO"
s_clock_ok:     .asciz " CLOCK OK"
s_clock_slow:   .asciz " CLOCK SLOW"
s_clock_jump:   .asciz " CLOCK JUMP"
s_clock_back:   .asciz " CLOCK BACK"
s_clock_stuck:  .asciz " CLOCK STUCK"
s_clock_none:   .asciz " CLOCK NONE"
s_irq_ok:       .asciz " IRQ OK"
s_irq_none:     .asciz " IRQ NONE"
s_irq_noapic:   .asciz " IRQ NOAPIC"
s_step:         .asciz "STEP "
