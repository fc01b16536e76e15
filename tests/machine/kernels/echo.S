/*
 * echo.S: a Multiboot (v1) test kernel for accel's COM1 receive path.
 *
 * It prints "echo> " on COM1, then copies every byte it receives (polling LSR.DR) back
 * to COM1 (polling LSR.THRE) until a newline, and writes 0x10 to isa-debug-exit (0xf4):
 * exit status 33.
 *
 * Build (in this directory; tests/machine/test_kernel_boot.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o echo.elf echo.S
 */
#define COM1 0x3f8

        .text
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

_start:
        mov $0x80000, %esp               /* a stack in low RAM */
        mov $COM1+3, %dx
        mov $3, %al                     /* 8N1, DLAB off */
        out %al, %dx
        lea prompt, %esi
1:      mov (%esi), %al
        test %al, %al
        jz 2f
        call putc
        inc %esi
        jmp 1b
2:      mov $COM1+5, %dx
3:      in %dx, %al
        test $0x01, %al                 /* DR: a byte is waiting */
        jz 3b
        mov $COM1, %dx
        in %dx, %al
        call putc
        cmp $'\n', %al
        jne 2b
        mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

putc:                                   /* %al */
        push %eax
        mov $COM1+5, %dx
1:      in %dx, %al
        test $0x20, %al
        jz 1b
        pop %eax
        mov $COM1, %dx
        out %al, %dx
        ret

prompt: .asciz "echo> "
