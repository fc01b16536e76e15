"""Asking QEMU 7.2 which devices a machine gets (`info qtree` over QMP, nothing booted)."""

from __future__ import annotations

import re
import shutil
import subprocess

QEMU = "qemu-system-x86_64"

_QMP = (
    '{"execute":"qmp_capabilities"}\n'
    '{"execute":"human-monitor-command","arguments":{"command-line":"info qtree"}}\n'
    '{"execute":"quit"}\n'
)


def qemu_path() -> str | None:
    return shutil.which(QEMU)


def qemu_devices(accel: str, machine: str, cpu: str | None) -> tuple[set[str] | None, str]:
    """The device types in QEMU's qtree, or None and QEMU's stderr when it refused."""
    args = [QEMU, "-accel", accel, "-M", machine, "-nodefaults", "-display", "none",
            "-no-user-config", "-S", "-qmp", "stdio"]  # fmt: skip
    if cpu:
        args += ["-cpu", cpu]
    p = subprocess.run(args, input=_QMP, capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or "dev:" not in p.stdout:
        return None, p.stderr.strip()
    return set(re.findall(r"dev: ([\w-]+)", p.stdout)), p.stderr.strip()
