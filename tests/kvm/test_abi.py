"""The ctypes ABI checked against the kernel headers by compiling a C program."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
from accel_kvm import _abi

HEADERS = Path("/usr/include/linux/kvm.h")


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/kvm.h>",
        "int main(void) {",
    ]
    for name, struct in _abi.STRUCTS.items():
        lines.append(f'printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
        for field in struct._fields_:
            fname = field[0]
            lines.append(
                f'printf("offsetof {name}.{fname} %zu\\n", offsetof(struct {name}, {fname}));'
            )
    for name in _abi.IOCTLS:
        lines.append(f'printf("ioctl {name} %lu\\n", (unsigned long){name});')
    run_fields = {
        "RUN_IMMEDIATE_EXIT": "immediate_exit",
        "RUN_EXIT_REASON": "exit_reason",
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
    consts = [n for n in dir(_abi) if n.startswith(("KVM_CAP_", "KVM_EXIT_", "KVM_CLOCK_"))]
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
            got = ctypes.sizeof(_abi.STRUCTS[key])
        elif kind == "offsetof":
            sname, fname = key.split(".")
            got = getattr(_abi.STRUCTS[sname], fname).offset
        elif kind == "ioctl":
            got = _abi.IOCTLS[key]
        else:  # run, const
            got = getattr(_abi, key)
        assert got == expected, f"{kind} {key}: python {got} != C {expected}"
        checked += 1
    assert checked > 100


def test_sizes_and_offsets_match_the_ctypes_structures() -> None:
    """The constants the run path uses instead of ctypes agree with the structures."""
    from accel_kvm import _structs, accelerator, vcpu, vm

    sizes = [n for n in dir(_abi) if n.startswith("SIZEOF_")]
    assert len(sizes) == 7
    for const in sizes:
        struct = _abi.STRUCTS[const.removeprefix("SIZEOF_").lower()]
        assert getattr(_abi, const) == ctypes.sizeof(struct), const
    union = _structs.kvm_run.u.offset
    run_fields = {
        "RUN_IMMEDIATE_EXIT": _structs.kvm_run.immediate_exit.offset,
        "RUN_EXIT_REASON": _structs.kvm_run.exit_reason.offset,
        "RUN_IO_DIRECTION": union + _structs.kvm_run_io.direction.offset,
        "RUN_IO_SIZE": union + _structs.kvm_run_io.size.offset,
        "RUN_IO_PORT": union + _structs.kvm_run_io.port.offset,
        "RUN_IO_COUNT": union + _structs.kvm_run_io.count.offset,
        "RUN_IO_DATA_OFFSET": union + _structs.kvm_run_io.data_offset.offset,
        "RUN_MMIO_PHYS_ADDR": union + _structs.kvm_run_mmio.phys_addr.offset,
        "RUN_MMIO_DATA": union + _structs.kvm_run_mmio.data.offset,
        "RUN_MMIO_LEN": union + _structs.kvm_run_mmio.len.offset,
        "RUN_MMIO_IS_WRITE": union + _structs.kvm_run_mmio.is_write.offset,
        "RUN_FAIL_ENTRY_REASON": union
        + _structs.kvm_run_fail_entry.hardware_entry_failure_reason.offset,
        "RUN_FAIL_ENTRY_CPU": union + _structs.kvm_run_fail_entry.cpu.offset,
        "RUN_INTERNAL_SUBERROR": union + _structs.kvm_run_internal.suberror.offset,
        "RUN_INTERNAL_NDATA": union + _structs.kvm_run_internal.ndata.offset,
        "RUN_INTERNAL_DATA": union + _structs.kvm_run_internal.data.offset,
        "RUN_SYSTEM_EVENT_TYPE": union + _structs.kvm_run_system_event.type.offset,
    }
    for const, offset in run_fields.items():
        assert getattr(_abi, const) == offset, const
    assert ctypes.sizeof(_abi.kvm_cpuid2) == accelerator._HEADER_WORDS * 4
    assert ctypes.sizeof(_abi.kvm_cpuid_entry2) == accelerator._ENTRY_WORDS * 4
    region = _abi.kvm_userspace_memory_region(1, 2, 3 << 32, 4 << 20, 0x7F0012345000)
    assert vm.region_bytes(1, 2, 3 << 32, 4 << 20, 0x7F0012345000) == bytes(region)
    entries = [(0x40000001, 0, 1, 0x1FF, 0, 0, 0), (7, 1, 2, 3, 4, 5, 0xFFFFFFFF)]
    buf = vcpu.cpuid_buffer(entries)
    header = _abi.kvm_cpuid2.from_buffer_copy(buf)
    assert header.nent == 2 and len(buf) == ctypes.sizeof(header) + 2 * 40
    for i, entry in enumerate(entries):
        got = _abi.kvm_cpuid_entry2.from_buffer_copy(buf, ctypes.sizeof(header) + i * 40)
        assert (got.function, got.index, got.flags, got.eax, got.ebx, got.ecx, got.edx) == entry
        assert list(got.padding) == [0, 0, 0]


def test_structures_are_the_same_objects_through_abi() -> None:
    from accel_kvm import _structs

    for name in ("kvm_regs", "kvm_sregs", "kvm_run", "STRUCTS"):
        assert getattr(_abi, name) is getattr(_structs, name)
        assert name in dir(_abi)
    with pytest.raises(AttributeError):
        _abi.no_such_name  # noqa: B018
