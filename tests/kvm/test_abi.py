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
