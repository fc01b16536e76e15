# Real-mode delivery through the IVT: INT 0x30 from CS = 0x0100 (the frame holds that
# CS and the IP after the INT) and a #DE whose handler skips the DIV and IRETs.
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
        mov word ptr [0x30 * 4], offset int30_handler
        mov word ptr [0x30 * 4 + 2], 0
        mov word ptr [0], offset de_handler
        mov word ptr [2], 0
        mov eax, after_int30 - start    # the IP after the INT, in CS 0x0100
        out PORT, eax
        .byte 0xea                      # ljmp $0x0100, $(in_cs100 - start)
        .word in_cs100 - start
        .word 0x0100
in_cs100:
        int 0x30
after_int30:
        mov eax, de_at - start
        out PORT, eax
        xor cx, cx
        mov ax, 5
de_at:  div cl
        REPORT 0x1111
        hlt

int30_handler:
        mov bp, sp
        REPORT 0x3000
        movzx eax, bp
        out PORT, eax
        movzx eax, word ptr [bp]        # IP
        out PORT, eax
        movzx eax, word ptr [bp + 2]    # CS
        out PORT, eax
        movzx eax, word ptr [bp + 4]    # FLAGS
        out PORT, eax
        iret
de_handler:
        mov bp, sp
        REPORT 0xde00
        movzx eax, word ptr [bp]
        out PORT, eax
        movzx eax, word ptr [bp + 2]
        out PORT, eax
        add word ptr [bp], 2            # skip DIV CL
        iret
