# hello.S - print a line on the debug console (port 0xE9), then exit through
# isa-debug-exit (port 0xF4) with value 0: exit status (0 << 1) | 1 = 1.
#
# A 64 KiB flat image placed like QEMU's -bios: the reset vector at offset 0xFFF0
# jumps to the copy of the image below 1 MiB (CS=0xF000).
#   accel run examples/guests/hello.bin
#   qemu-system-x86_64 -bios hello.bin -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=4
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
2:      xor     %al, %al
        outb    %al, $0xf4              # isa-debug-exit: status 1
3:      hlt
        jmp     3b

msg:    .asciz  "Hello from a guest, via debugcon on port 0xE9!\n"

        .org    0xfff0
reset:  ljmp    $0xf000, $_start        # the reset vector
        .org    0x10000
