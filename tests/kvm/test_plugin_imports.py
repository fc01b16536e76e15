"""The plugins import nothing expensive on the way to running a guest (docs/performance.md).

tests/machine/test_start_path.py guards the whole ``accel run`` path under ``-X importtime``,
which names only the *first* importer of a module: a plugin's ``from typing import Any``
goes unseen there once a core module has loaded :mod:`typing`. These tests watch every
import statement a plugin module executes (``builtins.__import__`` and
``importlib.import_module``), in a fresh interpreter that runs a tiny guest with
``accel run --accel kvm`` (the registry loads every plugin and calls its hooks) and then
probes the xen stub and calls each plugin's hooks itself, and fail naming the plugin module
and the expensive module it asked for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The modules of the withdrawn start-up budget (tests/machine/test_start_path.py, deleted).
FORBIDDEN = frozenset(
    {
        "typing", "dataclasses", "enum", "inspect", "ast", "tokenize", "re", "argparse",
        "gettext", "pluggy", "functools", "collections", "contextlib", "threading", "signal",
        "datetime", "json", "importlib.metadata", "importlib.util", "unicorn", "pathlib",
    }
)  # fmt: skip

#: Runs in the child interpreter: argv[1] is the forbidden names (comma-separated),
#: argv[2] the steps to run with every plugin import statement watched. Prints one
#: ``WANTS <module> <- <plugin module>`` line per distinct forbidden request.
_WATCH = """
import builtins, importlib, sys

FORBIDDEN = frozenset(sys.argv[1].split(","))
PLUGINS = ("accel_kvm", "accel_tcg", "accel_xen")
wants = {}


def forbidden(name):
    parts = name.split(".")
    return any(".".join(parts[:i]) in FORBIDDEN for i in range(1, len(parts) + 1))


def note(importer_globals, names):
    who = (importer_globals or {}).get("__name__") or ""
    if who.partition(".")[0] in PLUGINS:
        for name in names:
            if forbidden(name):
                wants.setdefault(f"{name} <- {who}", None)
                return


real_import = builtins.__import__
real_import_module = importlib.import_module


def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        note(globals, [name, *(f"{name}.{f}" for f in fromlist or ())])
    return real_import(name, globals, locals, fromlist, level)


def watched_import_module(name, package=None):
    if not name.startswith("."):
        note(sys._getframe(1).f_globals, [name])
    return real_import_module(name, package)


builtins.__import__ = watched_import
importlib.import_module = watched_import_module
try:
    exec(sys.argv[2], {"__name__": "__steps__"})
finally:
    builtins.__import__ = real_import
    importlib.import_module = real_import_module
for line in wants:
    print("WANTS", line)
"""

#: ``accel run --accel kvm`` of the tiny guest (which calls every plugin's hooks through
#: the registry), then the xen stub's probe and the plugins' hooks called directly.
_RUN_STEPS = """
import sys
from accel.cli import main

status = main(["run", "--accel", "kvm", "-M", "microvm", sys.argv[3]])
assert status == 33, f"the tiny guest's isa-debug-exit status, not {status}"
assert "accel_kvm.vm" in sys.modules, "the guest ran on the KVM plugin"

import accel_kvm, accel_tcg, accel_xen

accel_xen.XenAccelerator().probe()
for plugin in (accel_kvm, accel_tcg, accel_xen):
    plugin.accel_accelerators()
accel_kvm.accel_device_types()
print("unicorn loaded" if "unicorn" in sys.modules else "unicorn not loaded")
"""


def _tiny_image(tmp_path: Path) -> Path:
    image = tmp_path / "tiny.bin"
    img = bytearray(0x10000)
    img[0xFFF0:0xFFF5] = bytes.fromhex("b010e6f4f4")  # mov al,0x10; out 0xf4,al; hlt
    image.write_bytes(bytes(img))
    return image


def watch(steps: str, *args: str) -> tuple[list[str], str]:
    """The forbidden imports plugin modules asked for while ``steps`` ran, and stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", _WATCH, ",".join(sorted(FORBIDDEN)), steps, *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    wants = [line[6:] for line in proc.stdout.splitlines() if line.startswith("WANTS ")]
    return wants, proc.stdout


@pytest.mark.kvm
def test_plugins_import_nothing_expensive_while_a_guest_runs(tmp_path: Path) -> None:
    wants, out = watch(_RUN_STEPS, str(_tiny_image(tmp_path)))
    assert not wants, "plugin modules imported:\n" + "\n".join(wants)
    assert "unicorn not loaded" in out


def test_the_watch_sees_a_plugin_import() -> None:
    """The watch is live: creating a tcg accelerator imports threading, and it says who."""
    wants, _ = watch("import accel_tcg\naccel_tcg.accel_accelerators()[0].factory()")
    assert "threading <- accel_tcg.accelerator" in wants


#: Modules of the KVM plugin (and ctypes) that only registers, the VM clock, the in-kernel
#: PIT and the test wrappers need, and the re-exporting accel_kvm._ioctl: a guest run loads
#: none of them (nor _ctypes, where the guest RAM's address can be read through
#: /proc/self/mem). (The runner imports the error classes it raises, so the lazy error
#: module is no longer among them.)
_RUN_SKIPS = (
    "ctypes",
    "accel_kvm._structs",
    "accel_kvm._wrappers",
    "accel_kvm._ioctl",
) + (("_ctypes",) if os.access("/proc/self/mem", os.R_OK) else ())


def test_the_system_call_layer_is_importable_from_ioctl() -> None:
    """accel_kvm._ioctl names the objects accel_kvm._abi defines, and the wrappers."""
    import accel_kvm
    from accel_kvm import _abi, _ioctl, _wrappers

    for name in ("ACCEL_NAME", "HostSys", "Sys", "buffer_address", "call", "release_mapping"):
        assert getattr(_ioctl, name) is getattr(_abi, name)
    assert _ioctl.NO_DEVICE_ERRNOS == _abi.NO_DEVICE_ERRNOS
    assert _ioctl.PERMISSION_ERRNOS == _abi.PERMISSION_ERRNOS
    assert _ioctl.FaultInjector is _wrappers.FaultInjector
    assert _ioctl.RecordingSys is _wrappers.RecordingSys
    assert _ioctl.ioctl_name is _wrappers.ioctl_name
    assert _ioctl.Sys is _wrappers.Sys
    assert accel_kvm.Sys is _wrappers.Sys
    assert "Sys" in dir(_abi)


@pytest.mark.kvm
def test_a_guest_run_loads_no_ctypes_structures_wrappers_or_rare_errors(tmp_path: Path) -> None:
    steps = (
        "import sys\n"
        "from accel.cli import main\n"
        "status = main(['run', '--accel', 'kvm', '-M', 'microvm', sys.argv[1]])\n"
        "assert status == 33, status\n"
        f"print([m for m in {_RUN_SKIPS!r} if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", steps, str(_tiny_image(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
