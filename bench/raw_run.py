"""The raw-ioctl floor under ``accel run``: run a flat image the way QEMU's ``-bios`` places it.

No accel code: /dev/kvm ioctls from the standard library only. The image is mapped at the
top of the first megabyte and of the 4 GiB space, one vCPU starts in the architectural reset
state, and the process exits with isa-debug-exit's status ``(value << 1) | 1`` when the
guest writes port 0xF4, as ``accel run`` and QEMU do. bench/bench_run.py times it beside
``accel run`` and QEMU.

With ``--stdlib`` it first imports what any Python VMM on the standard parts imports
(dataclasses, enum, argparse, importlib.metadata, pluggy, ctypes): the floor under
``accel run``.

    python bench/raw_run.py [--stdlib] IMAGE
"""

import ctypes
import fcntl
import mmap
import os
import struct
import sys

KVMIO = 0xAE
KVM_CREATE_VM = KVMIO << 8 | 0x01
KVM_GET_VCPU_MMAP_SIZE = KVMIO << 8 | 0x04
KVM_CREATE_VCPU = KVMIO << 8 | 0x41
KVM_RUN = KVMIO << 8 | 0x80
KVM_SET_USER_MEMORY_REGION = 1 << 30 | 32 << 16 | KVMIO << 8 | 0x46
KVM_EXIT_IO = 2


def main(path: str) -> int:
    with open(path, "rb") as f:
        image = f.read()
    size = len(image)
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    mem = mmap.mmap(-1, size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    mem[:] = image
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    for slot, base in enumerate((0x100000 - size, 0x100000000 - size)):
        region = struct.pack("IIQQQ", slot, 0, base, size, addr)
        fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)
    cpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    run = mmap.mmap(cpu, fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0))
    while True:
        fcntl.ioctl(cpu, KVM_RUN, 0)
        (reason,) = struct.unpack_from("I", run, 8)
        if reason != KVM_EXIT_IO:
            print(f"unexpected exit reason {reason}", file=sys.stderr)
            return 1
        _direction, _size, port, _count, offset = struct.unpack_from("BBHIQ", run, 32)
        if port == 0xF4:
            status = int(run[offset]) << 1 | 1
            run.close()
            os.close(cpu)
            os.close(vm)
            os.close(kvm)
            return status


if __name__ == "__main__":
    if sys.argv[1] == "--stdlib":
        import argparse  # noqa: F401
        import dataclasses  # noqa: F401
        import enum  # noqa: F401
        import importlib.metadata  # noqa: F401

        import pluggy  # noqa: F401

        del sys.argv[1]
    sys.exit(main(sys.argv[1]))
