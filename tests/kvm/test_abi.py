"""The ctypes ABI checked against the kernel headers by compiling a C program."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
from accel_kvm import bindings, ioctls, vcpu, vm

HEADERS = Path("/usr/include/linux/kvm.h")


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/kvm.h>",
        "int main(void) {",
    ]
    for name, struct in bindings.STRUCTS.items():
        lines.append(f'printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
        for field in struct._fields_:
            fname = field[0]
            lines.append(
                f'printf("offsetof {name}.{fname} %zu\\n", offsetof(struct {name}, {fname}));'
            )
    for name in ioctls.IOCTLS:
        lines.append(f'printf("ioctl {name} %lu\\n", (unsigned long){name});')
    run_fields = {
        "RUN_IMMEDIATE_EXIT": "immediate_exit",
        "RUN_EXIT_REASON": "exit_reason",
        "RUN_REQUEST_INTERRUPT_WINDOW": "request_interrupt_window",
        "RUN_READY_FOR_INTERRUPT_INJECTION": "ready_for_interrupt_injection",
        "RUN_IF_FLAG": "if_flag",
        "RUN_IO_DIRECTION": "io.direction",
        "RUN_IO_SIZE": "io.size",
        "RUN_IO_PORT": "io.port",
        "RUN_IO_COUNT": "io.count",
        "RUN_IO_DATA_OFFSET": "io.data_offset",
        "RUN_MMIO_PHYS_ADDR": "mmio.phys_addr",
        "RUN_MMIO_DATA": "mmio.data",
        "RUN_MMIO_LEN": "mmio.len",
        "RUN_MMIO_IS_WRITE": "mmio.is_write",
        "RUN_FAIL_ENTRY_REASON": "fail_entry.hardware_entry_failure_reason",
        "RUN_FAIL_ENTRY_CPU": "fail_entry.cpu",
        "RUN_INTERNAL_SUBERROR": "internal.suberror",
        "RUN_INTERNAL_NDATA": "internal.ndata",
        "RUN_INTERNAL_DATA": "internal.data",
        "RUN_SYSTEM_EVENT_TYPE": "system_event.type",
    }
    for const, member in run_fields.items():
        lines.append(f'printf("run {const} %zu\\n", offsetof(struct kvm_run, {member}));')
    consts = [n for n in dir(bindings) if n.startswith(("KVM_CAP_", "KVM_EXIT_", "KVM_CLOCK_"))]
    for const in consts:
        lines.append(f'printf("const {const} %ld\\n", (long){const});')
    lines.append("return 0; }")
    return "\n".join(lines)


@pytest.mark.skipif(
    shutil.which("gcc") is None or not HEADERS.exists(), reason="needs gcc and linux-libc-dev"
)
def test_structs_ioctls_and_offsets_match_the_headers(tmp_path: Path) -> None:
    src = tmp_path / "abi.c"
    exe = tmp_path / "abi"
    src.write_text(_c_program())
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    checked = 0
    for line in out.splitlines():
        kind, key, value = line.split()
        expected = int(value)
        if kind == "sizeof":
            got = ctypes.sizeof(bindings.STRUCTS[key])
        elif kind == "offsetof":
            sname, fname = key.split(".")
            got = getattr(bindings.STRUCTS[sname], fname).offset
        elif kind == "ioctl":
            got = ioctls.IOCTLS[key]
        else:  # run, const
            got = getattr(bindings, key)
        assert got == expected, f"{kind} {key}: python {got} != C {expected}"
        checked += 1
    assert checked > 100


def test_buffers_built_by_hand_match_the_ctypes_structures() -> None:
    """The memory-region and CPUID buffers the plugin passes to the kernel have the
    structures' layout."""
    region = bindings.kvm_userspace_memory_region(1, 2, 3 << 32, 4 << 20, 0x7F0012345000)
    assert vm.region_bytes(1, 2, 3 << 32, 4 << 20, 0x7F0012345000) == bytes(region)
    entries = [(0x40000001, 0, 1, 0x1FF, 0, 0, 0), (7, 1, 2, 3, 4, 5, 0xFFFFFFFF)]
    buf = vcpu.cpuid_buffer(entries)
    header = bindings.kvm_cpuid2.from_buffer_copy(buf)
    entry_size = ctypes.sizeof(bindings.kvm_cpuid_entry2)
    assert header.nent == 2 and len(buf) == ctypes.sizeof(header) + 2 * entry_size
    for i, entry in enumerate(entries):
        got = bindings.kvm_cpuid_entry2.from_buffer_copy(
            buf, ctypes.sizeof(header) + i * entry_size
        )
        assert (got.function, got.index, got.flags, got.eax, got.ebx, got.ecx, got.edx) == entry
        assert list(got.padding) == [0, 0, 0]


def test_ioctl_sizes_come_from_the_structures() -> None:
    """An ioctl's size field (bits 16-29) is the size of the structure it passes."""
    sized = {
        "KVM_GET_REGS": bindings.kvm_regs,
        "KVM_SET_SREGS": bindings.kvm_sregs,
        "KVM_GET_CLOCK": bindings.kvm_clock_data,
        "KVM_SET_USER_MEMORY_REGION": bindings.kvm_userspace_memory_region,
        "KVM_SET_CPUID2": bindings.kvm_cpuid2,
    }
    for name, struct in sized.items():
        assert (ioctls.IOCTLS[name] >> 16) & 0x3FFF == ctypes.sizeof(struct), name
    assert ioctls.ioctl_name(ioctls.KVM_RUN) == "KVM_RUN"
    assert ioctls.ioctl_name(0x1234) == "ioctl 0x1234"
