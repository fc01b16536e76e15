# count.S - count ECX up to the 32-bit `limit` (file offset 0xffec: patch it for a
# shorter or longer run), printing a dot on debugcon every 65536 steps, then print the
# count in decimal and exit through isa-debug-exit with 0x21: exit status
# (0x21 << 1) | 1 = 67. Runs long enough to be stopped mid-count (`accel run
# --stop-after 500ms --save FILE`), saved, and finished by `accel run --restore FILE`.
        .code16
        .text
        .globl _start
_start:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        mov     $msg, %si
        call    puts
        mov     limit, %eax
        call    putdec
        mov     $nl, %si
        call    puts
        xor     %ecx, %ecx
1:      inc     %ecx
        test    $0xffff, %cx
        jnz     2f
        mov     $'.', %al
        outb    %al, $0xe9
2:      cmp     limit, %ecx
        jne     1b
        mov     $nl, %si
        call    puts
        mov     $done, %si
        call    puts
        mov     %ecx, %eax
        call    putdec
        mov     $nl, %si
        call    puts
        mov     $0x21, %al
        outb    %al, $0xf4              # isa-debug-exit: status (0x21 << 1) | 1 = 67
3:      hlt
        jmp     3b

# puts: print the NUL-terminated string at DS:SI on port 0xE9
puts:   push    %ax
4:      lodsb
        test    %al, %al
        jz      5f
        outb    %al, $0xe9
        jmp     4b
5:      pop     %ax
        ret

# putdec: print EAX in decimal
putdec: mov     $10, %ebx
        xor     %cx, %cx
6:      xor     %edx, %edx
        div     %ebx
        push    %dx
        inc     %cx
        test    %eax, %eax
        jnz     6b
7:      pop     %ax
        add     $'0', %al
        outb    %al, $0xe9
        loop    7b
        ret

msg:    .asciz  "counting to "
nl:     .asciz  "\n"
done:   .asciz  "count = "

        .org    0xffec
limit:  .long   0x400000                # 4194304 steps (64 dots)
reset:  ljmp    $0xf000, $_start
        .org    0x10000
