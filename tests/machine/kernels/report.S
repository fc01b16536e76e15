/*
 * report.S: a Multiboot (v1) test kernel for accel's kernel-boot tests.
 *
 * Entered as QEMU's -kernel leaves it (32-bit flat protected mode, EAX = 0x2BADB002,
 * EBX = the Multiboot information), it prints on COM1 (0x3f8, polling LSR.THRE), one
 * "key=value" line each:
 *   magic=   EAX at entry
 *   cmdline= the information's command line (flags bit 2)
 *   upper=   mem_upper (KiB from 1 MiB)
 *   sig=     fw_cfg's signature, read byte by byte through ports 0x510/0x511
 *   cpus=    FW_CFG_NB_CPUS (16-bit) through the ports
 *   ram=     FW_CFG_RAM_SIZE (64-bit) through the ports
 *   dmaram=  FW_CFG_RAM_SIZE again, through the DMA interface (0x514/0x518)
 *   e820=    the size of fw_cfg's etc/e820 file, from FILE_DIR through the ports
 * then writes 0x10 to isa-debug-exit (0xf4): exit status 33.
 *
 * Build (in this directory; tests/machine/test_kernel_boot.py checks the result):
 *   gcc -m32 -nostdlib -static -Wl,-n -Wl,-Ttext=0x100000 -Wl,--build-id=none \
 *       -Wl,--no-warn-rwx-segments -s -o report.elf report.S
 */
#define COM1 0x3f8
#define FW_CTL 0x510
#define FW_DATA 0x511
#define FW_DMA 0x514

        .text
        .globl _start
        .align 4
mb_header:
        .long 0x1BADB002
        .long 0x00000003
        .long -(0x1BADB002 + 0x00000003)

_start:
        mov $stack_top, %esp
        mov %eax, %esi                  /* magic */
        mov %ebx, %edi                  /* info */
        call serial_init

        lea s_magic, %eax
        call puts
        mov %esi, %eax
        call puthex32
        call newline

        lea s_cmdline, %eax
        call puts
        testl $4, (%edi)
        jz 1f
        mov 16(%edi), %eax
        call puts
1:      call newline

        lea s_upper, %eax
        call puts
        mov 8(%edi), %eax
        call puthex32
        call newline

        lea s_sig, %eax
        call puts
        mov $0x0000, %ax
        call fw_select
        mov $4, %ecx
2:      call fw_byte
        call putc
        loop 2b
        call newline

        lea s_cpus, %eax
        call puts
        mov $0x0005, %ax
        call fw_select
        call fw_byte
        movzbl %al, %ebx
        call fw_byte
        movzbl %al, %eax
        shl $8, %eax
        or %ebx, %eax
        call puthex32
        call newline

        lea s_ram, %eax
        call puts
        mov $0x0003, %ax
        call fw_select
        mov $8, %ecx
        lea ram_buf, %ebx
3:      call fw_byte
        mov %al, (%ebx)
        inc %ebx
        loop 3b
        mov ram_buf+4, %eax
        call puthex32
        mov ram_buf, %eax
        call puthex32
        call newline

        lea s_dmaram, %eax
        call puts
        /* FWCfgDmaAccess {be32 control, be32 length, be64 address} */
        movl $0x0a000300, dma_access    /* be32 (3 << 16) | SELECT | READ = 0x0003000a */
        movl $0x08000000, dma_access+4  /* be32 8 */
        movl $0, dma_access+8           /* be64 address: high half */
        lea dma_buf, %eax
        bswap %eax
        mov %eax, dma_access+12
        mov $FW_DMA, %dx
        xor %eax, %eax
        out %eax, %dx                   /* high half of the access's address */
        lea dma_access, %eax
        bswap %eax
        mov $FW_DMA+4, %dx
        out %eax, %dx                   /* low half: runs the transfer */
        mov dma_access, %eax            /* control written back: 0 */
        test %eax, %eax
        jnz dma_failed
        mov dma_buf+4, %eax
        call puthex32
        mov dma_buf, %eax
        call puthex32
        jmp 4f
dma_failed:
        lea s_failed, %eax
        call puts
4:      call newline

        lea s_e820, %eax
        call puts
        mov $0x0019, %ax                /* FILE_DIR */
        call fw_select
        call fw_be32
        mov %eax, %ebp                  /* count */
5:      test %ebp, %ebp
        jz 8f
        dec %ebp
        call fw_be32                    /* size */
        mov %eax, %esi
        call fw_be32                    /* select, reserved */
        lea name_buf, %ebx
        mov $56, %ecx
6:      call fw_byte
        mov %al, (%ebx)
        inc %ebx
        loop 6b
        lea name_buf, %eax
        lea s_etc_e820, %ebx
7:      mov (%eax), %cl
        cmp (%ebx), %cl
        jne 5b
        test %cl, %cl
        jz 9f
        inc %eax
        inc %ebx
        jmp 7b
9:      mov %esi, %eax
        call puthex32
8:      call newline

        mov $0xf4, %dx
        mov $0x10, %eax
        out %eax, %dx
        hlt
        jmp .

/* ---- fw_cfg */
fw_select:                              /* %ax = key */
        push %edx
        mov $FW_CTL, %dx
        out %ax, %dx
        pop %edx
        ret
fw_byte:                                /* %al = next byte */
        push %edx
        mov $FW_DATA, %dx
        in %dx, %al
        pop %edx
        ret
fw_be32:                                /* %eax = next 4 bytes, big-endian */
        push %ecx
        push %ebx
        xor %ebx, %ebx
        mov $4, %ecx
1:      shl $8, %ebx
        call fw_byte
        mov %al, %bl
        loop 1b
        mov %ebx, %eax
        pop %ebx
        pop %ecx
        ret

/* ---- COM1 */
serial_init:
        mov $COM1+3, %dx
        mov $0x80, %al                  /* DLAB */
        out %al, %dx
        mov $COM1, %dx
        mov $1, %al                     /* 115200 baud */
        out %al, %dx
        mov $COM1+1, %dx
        xor %al, %al
        out %al, %dx
        mov $COM1+3, %dx
        mov $3, %al                     /* 8N1 */
        out %al, %dx
        ret
putc:                                   /* %al */
        push %edx
        push %eax
        mov $COM1+5, %dx
1:      in %dx, %al
        test $0x20, %al                 /* THRE */
        jz 1b
        pop %eax
        mov $COM1, %dx
        out %al, %dx
        pop %edx
        ret
puts:                                   /* %eax = NUL-terminated string */
        push %ebx
        mov %eax, %ebx
1:      mov (%ebx), %al
        test %al, %al
        jz 2f
        call putc
        inc %ebx
        jmp 1b
2:      pop %ebx
        ret
newline:
        mov $'\n', %al
        jmp putc
puthex32:                               /* %eax, 8 hex digits */
        push %ecx
        push %ebx
        mov %eax, %ebx
        mov $8, %ecx
1:      rol $4, %ebx
        mov %ebx, %eax
        and $0xf, %eax
        mov hexdigits(%eax), %al
        call putc
        loop 1b
        pop %ebx
        pop %ecx
        ret

        .data
hexdigits:  .ascii "0123456789abcdef"
s_magic:    .asciz "magic="
s_cmdline:  .asciz "cmdline="
s_upper:    .asciz "upper="
s_sig:      .asciz "sig="
s_cpus:     .asciz "cpus="
s_ram:      .asciz "ram="
s_dmaram:   .asciz "dmaram="
s_e820:     .asciz "e820="
s_failed:   .asciz "failed"
s_etc_e820: .asciz "etc/e820"

        .bss
        .align 16
ram_buf:    .skip 8
dma_buf:    .skip 8
dma_access: .skip 16
name_buf:   .skip 56
        .align 16
stack:      .skip 4096
stack_top:
