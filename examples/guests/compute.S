# compute.S - compute fib(10) = 55, print it in decimal on debugcon, and exit
# through isa-debug-exit with the result: exit status (55 << 1) | 1 = 111.
        .code16
        .text
        .globl _start
_start:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        mov     $msg, %si
        call    puts
        # fib(10) iteratively: a=0, b=1, ten times (a, b) = (b, a+b)
        xor     %ax, %ax
        mov     $1, %bx
        mov     $10, %cx
1:      mov     %bx, %di
        add     %ax, %bx
        mov     %di, %ax
        loop    1b
        push    %ax
        call    putdec
        mov     $nl, %si
        call    puts
        pop     %ax
        outb    %al, $0xf4              # isa-debug-exit: status (55 << 1) | 1
2:      hlt
        jmp     2b

# puts: print the NUL-terminated string at DS:SI on port 0xE9
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

# putdec: print AX in decimal
putdec: mov     $10, %bx
        xor     %cx, %cx
5:      xor     %dx, %dx
        div     %bx
        push    %dx
        inc     %cx
        test    %ax, %ax
        jnz     5b
6:      pop     %ax
        add     $'0', %al
        outb    %al, $0xe9
        loop    6b
        ret

msg:    .asciz  "fib(10) = "
nl:     .asciz  "\n"

        .org    0xfff0
reset:  ljmp    $0xf000, $_start
        .org    0x10000
