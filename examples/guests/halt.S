# halt.S - print a line on the debug console, then halt with interrupts disabled.
# `accel run` ends the run with status 0; QEMU would keep the halted guest forever.
        .code16
        .text
        .globl _start
_start:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        mov     $msg, %si
        mov     $0xe9, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        outb    %al, %dx
        jmp     1b
2:      hlt

msg:    .asciz  "halting with interrupts disabled\n"

        .org    0xfff0
reset:  ljmp    $0xf000, $_start
        .org    0x10000
