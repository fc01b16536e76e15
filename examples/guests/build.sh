#!/bin/sh
# Rebuild the example guests from their listings with GNU binutils.
set -e
cd "$(dirname "$0")"
for src in *.S; do
    name=${src%.S}
    as --32 -o "$name.o" "$src"
    ld -m elf_i386 -Ttext=0 -e _start -o "$name.elf" "$name.o"
    objcopy -O binary -j .text "$name.elf" "$name.bin"
    rm -f "$name.o" "$name.elf"
done
