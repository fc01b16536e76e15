/* cpuid.S: a 64 KiB flat BIOS image (loaded at 0xF0000, reset vector at 0xFFFF0) that
 * executes CPUID for every (leaf, subleaf) in `leaves` and writes EAX, EBX, ECX, EDX
 * (16 bytes, little-endian) per pair to debugcon (port 0xE9), then writes 0 to
 * isa-debug-exit (0xF4). Real mode, CS = DS = 0xF000. The oracle of tests/kvm/test_cpuid.py:
 * the same image under qemu-system-x86_64 -accel kvm -cpu MODEL and under accel.
 * Build: gcc -c -o cpuid.o cpuid.S && ld -m elf_x86_64 -Ttext=0 --oformat binary -e _start -o cpuid.bin cpuid.o */
	.code16
	.section .text
	.globl _start
_start:
	cli
	movw $0xf000, %ax
	movw %ax, %ds
	movw $leaves, %si
next:
	movl (%si), %eax
	cmpl $0xffffffff, %eax
	je done
	movl 4(%si), %ecx
	cpuid
	call put
	movl %ebx, %eax
	call put
	movl %ecx, %eax
	call put
	movl %edx, %eax
	call put
	addw $8, %si
	jmp next
done:
	movb $0, %al
	outb %al, $0xf4
	hlt
	jmp done
/* EAX's four bytes to port 0xE9, low byte first */
put:
	movw $4, %di
1:	outb %al, $0xe9
	shrl $8, %eax
	decw %di
	jnz 1b
	ret

	.balign 8
leaves:
	.long 0x0, 0
	.long 0x1, 0
	.long 0x2, 0
	.long 0x4, 0
	.long 0x4, 1
	.long 0x4, 2
	.long 0x4, 3
	.long 0x5, 0
	.long 0x6, 0
	.long 0x7, 0
	.long 0x7, 1
	.long 0xa, 0
	.long 0xb, 0
	.long 0xb, 1
	.long 0xd, 0
	.long 0xd, 1
	.long 0xd, 2
	.long 0x40000000, 0
	.long 0x40000001, 0
	.long 0x80000000, 0
	.long 0x80000001, 0
	.long 0x80000002, 0
	.long 0x80000003, 0
	.long 0x80000004, 0
	.long 0x80000005, 0
	.long 0x80000006, 0
	.long 0x80000007, 0
	.long 0x80000008, 0
	.long 0x8000000a, 0
	.long 0x8000001d, 0
	.long 0x8000001d, 1
	.long 0x8000001d, 2
	.long 0x8000001d, 3
	.long 0x8000001d, 4
	.long 0x8000001e, 0
	.long 0xffffffff, 0

	.org 0xfff0
reset:
	ljmp $0xf000, $_start
	.org 0x10000
