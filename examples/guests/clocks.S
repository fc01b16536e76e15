# clocks.S - read every clock device a PC machine may list and say which work:
#   rtc       CMOS time on ports 0x70/0x71 (BCD seconds/minutes/hours valid)
#   pit       i8254 channel 0 programmed, then two counter latches (0x43/0x40) differ
#   hpet      main counter at 0xFED000F0 advances once enabled (unreal mode for 4 GiB)
#   kvmclock  if CPUID shows the KVM leaves: MSR_KVM_SYSTEM_TIME_NEW, then the
#             pvclock structure at 0x5000 has a non-zero, even version and system_time
# Prints one line per clock on debugcon and exits through isa-debug-exit with a mask:
# rtc 1, pit 2, hpet 4, kvmclock 8 (status = (mask << 1) | 1).
        .code16
        .text
        .globl _start
_start:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        xor     %bp, %bp                # the mask

        # ---- unreal mode: FS with base 0 and a 4 GiB limit
        lgdtl   %cs:gdtr
        mov     %cr0, %eax
        or      $1, %al
        mov     %eax, %cr0
        mov     $8, %bx
        mov     %bx, %fs
        and     $0xfe, %al
        mov     %eax, %cr0
        xor     %bx, %bx
        mov     %bx, %fs                # real-mode selector, cached 4 GiB limit stays

        # ---- RTC
        mov     $s_rtc, %si
        call    puts
        mov     $0x00, %al
        call    cmos                    # seconds
        mov     %al, %bl
        mov     $0x02, %al
        call    cmos                    # minutes
        mov     %al, %bh
        mov     $0x04, %al
        call    cmos                    # hours
        cmp     $0xff, %al
        je      rtc_none
        cmp     $0x59, %bl
        ja      rtc_bad
        cmp     $0x59, %bh
        ja      rtc_bad
        cmp     $0x23, %al
        ja      rtc_bad
        mov     $0x0d, %al
        call    cmos                    # status D: valid RAM and time
        cmp     $0xff, %al              # nothing answers on the port: no RTC
        je      rtc_none
        test    $0x80, %al
        jz      rtc_bad
        or      $1, %bp
        mov     $s_ok, %si
        jmp     rtc_done
rtc_none:
        mov     $s_absent, %si
        jmp     rtc_done
rtc_bad:
        mov     $s_bad, %si
rtc_done:
        call    puts

        # ---- PIT channel 0: mode 2, reload 0xFFFF, then latch twice
        mov     $s_pit, %si
        call    puts
        mov     $0x34, %al
        outb    %al, $0x43
        mov     $0xff, %al
        outb    %al, $0x40
        outb    %al, $0x40
        call    pitlatch
        mov     %ax, %bx
        call    delay
        call    pitlatch
        cmp     %ax, %bx
        je      pit_bad
        or      $2, %bp
        mov     $s_ok, %si
        jmp     pit_done
pit_bad:
        mov     $s_bad, %si
pit_done:
        call    puts

        # ---- HPET: enable, read the main counter twice
        mov     $s_hpet, %si
        call    puts
        mov     $0xfed00000, %ebx
        movl    %fs:(%ebx), %eax        # capabilities: 0 or ~0 when nothing is there
        test    %eax, %eax
        jz      hpet_none
        cmp     $0xffffffff, %eax
        je      hpet_none
        movl    $1, %fs:0x10(%ebx)      # ENABLE_CNF
        movl    %fs:0xf0(%ebx), %ecx
        call    delay
        movl    %fs:0xf0(%ebx), %edx
        cmp     %ecx, %edx
        je      hpet_bad
        or      $4, %bp
        mov     $s_ok, %si
        jmp     hpet_done
hpet_none:
        mov     $s_absent, %si
        jmp     hpet_done
hpet_bad:
        mov     $s_bad, %si
hpet_done:
        call    puts

        # ---- kvmclock
        mov     $s_kvmclock, %si
        call    puts
        mov     $0x40000000, %eax
        cpuid
        cmp     $0x4b4d564b, %ebx       # "KVMK"
        jne     kc_none
        cmp     $0x564b4d56, %ecx       # "VMKV"
        jne     kc_none
        mov     $0x40000001, %eax
        cpuid
        test    $0x09, %al              # CLOCKSOURCE or CLOCKSOURCE2
        jz      kc_none
        mov     $0x4b564d01, %ecx       # MSR_KVM_SYSTEM_TIME_NEW
        mov     $0x5001, %eax           # pvclock at 0x5000, enable bit
        xor     %edx, %edx
        wrmsr
        mov     $0x5000, %ebx
        movl    %fs:(%ebx), %eax        # version
        test    %eax, %eax
        jz      kc_bad
        test    $1, %al
        jnz     kc_bad
        movl    %fs:16(%ebx), %eax      # system_time (low, high)
        orl     %fs:20(%ebx), %eax
        jz      kc_bad
        or      $8, %bp
        mov     $s_ok, %si
        jmp     kc_done
kc_none:
        mov     $s_absent, %si
        jmp     kc_done
kc_bad:
        mov     $s_bad, %si
kc_done:
        call    puts

        mov     %bp, %ax
        outb    %al, $0xf4              # isa-debug-exit: status (mask << 1) | 1
1:      hlt
        jmp     1b

# cmos: AL = CMOS register AL
cmos:   outb    %al, $0x70
        inb     $0x71, %al
        ret

# pitlatch: AX = latched count of channel 0
pitlatch:
        xor     %al, %al
        outb    %al, $0x43
        inb     $0x40, %al
        mov     %al, %ah
        inb     $0x40, %al
        xchg    %al, %ah
        ret

delay:  push    %ecx
        mov     $0x40000, %ecx
2:      addr32 loop 2b
        pop     %ecx
        ret

puts:   push    %ax
        push    %dx
        mov     $0xe9, %dx
3:      lodsb
        test    %al, %al
        jz      4f
        outb    %al, %dx
        jmp     3b
4:      pop     %dx
        pop     %ax
        ret

s_rtc:      .asciz "rtc: "
s_pit:      .asciz "pit: "
s_hpet:     .asciz "hpet: "
s_kvmclock: .asciz "kvmclock: "
s_ok:       .asciz "ok\n"
s_bad:      .asciz "BROKEN\n"
s_absent:   .asciz "absent\n"

        .p2align 3
gdt:    .quad   0
        .quad   0x00cf93000000ffff      # flat 4 GiB data, accessed (the GDT is in ROM)
gdtr:   .word   gdtr - gdt - 1
        .long   0xf0000 + gdt

        .org    0xfff0
reset:  ljmp    $0xf000, $_start
        .org    0x10000
