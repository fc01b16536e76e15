"""Bad input to ``accel run --kernel`` (and the flat-image path's bounded read), through the
command: each is one line naming what is wrong, exit status 1, and nothing started.

"Nothing started" is checked on an in-memory accelerator (tests/fakes.py) registered in
the command's registry: its ``log`` records every ``create_vm``, and a good kernel on the
same accelerator does reach ``create_vm`` (so the check can fail). The loader's own
checks are in test_multiboot.py; these go through :func:`accel.cli.main` and a real
``accel`` process, as a user meets them.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accel.cli import main
from accel.errors import ConfigError
from accel.runner import check_ram_size, host_ram_limit
from tests.fakes import FakeAccelerator, fake_info, registry_with
from tests.machine.test_multiboot import REPORT_CODE, elf32, mb_header, write

KERNELS = Path(__file__).resolve().parent / "kernels"
REPORT = KERNELS / "report.elf"
MiB = 1 << 20


def run_cli(*args: str) -> tuple[int, str, list[FakeAccelerator]]:
    """``accel run --accel fake ARGS`` through main(): (status, stderr, accelerators made)."""
    made: list[FakeAccelerator] = []

    def factory() -> FakeAccelerator:
        made.append(FakeAccelerator("fake"))
        return made[-1]

    reg = registry_with(fake_info("fake", factory=factory))
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--accel", "fake", "--serial", "null", *args],
                  registry=reg, out=out, err=err)  # fmt: skip
    return status, err.getvalue(), made


def refused(args: list[str], needle: str) -> str:
    status, err, made = run_cli(*args)
    assert status == 1, err
    assert err.count("\n") == 1 and err.startswith("accel: error: "), err
    assert needle in err, err
    assert "Traceback" not in err
    assert all("create_vm" not in acc.log for acc in made), "a VM was made before the refusal"
    return err


def test_a_good_kernel_does_start_on_the_fake() -> None:
    """The control: the same command with a good kernel reaches create_vm."""
    _status, _err, made = run_cli("--kernel", str(REPORT), "-m", "32")
    assert made and "create_vm" in made[0].log


def test_neither_multiboot_nor_flat(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", b"just some text, no kernel here\n" * 300)
    refused(["--kernel", path], "no Multiboot header in its first 8192 bytes")


def test_truncated_elf(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE * 100
    data = elf32([(0x100000, text, len(text))], 0x100000)
    path = write(tmp_path, "cut.elf", data[: 0x1000 + 100])
    refused(["--kernel", path], "beyond the file")


def test_segment_outside_ram(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "far.elf", elf32([(0x100000, text, 64 * MiB)], 0x100000))
    err = refused(["--kernel", path, "-m", "32"], "the segment 0x100000..0x4100000 does not fit")
    assert "-m" in err  # the hint says what to change


def test_segment_in_the_legacy_window(tmp_path: Path) -> None:
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "vga.elf", elf32([(0xB8000, text, len(text))], 0xB8000))
    refused(["--kernel", path], "overlaps the legacy window")


def test_segment_over_the_information_area_with_no_room_after_it(tmp_path: Path) -> None:
    """A kernel over 0x9000..0x9580 moves the information after itself (as realmode.flat
    needs); one that fills low RAM up to the legacy window leaves it nowhere."""
    text = mb_header() + REPORT_CODE
    path = write(tmp_path, "low.elf", elf32([(0x8000, text, 0x9F800 - 0x8000)], 0x8000))
    refused(["--kernel", path], "the boot information")


@pytest.mark.parametrize(("smp", "needle"), [("0", "--smp 0"), ("9", "more than fake supports")])
def test_smp_zero_or_above_the_accelerators_limit(smp: str, needle: str) -> None:
    refused(["--kernel", str(REPORT), "--smp", smp], needle)  # the fake's MAX_VCPUS is 8


def test_missing_initrd(tmp_path: Path) -> None:
    refused(["--kernel", str(REPORT), "--initrd", str(tmp_path / "nope.img")],
            "cannot open initrd")  # fmt: skip


def test_missing_one_initrd_of_several(tmp_path: Path) -> None:
    good = write(tmp_path, "a.img", b"module")
    refused(["--kernel", str(REPORT), "--initrd", f"{good},{tmp_path / 'b.img'}"], "b.img")


def test_unreadable_kernel(tmp_path: Path) -> None:
    refused(["--kernel", str(tmp_path)], "is a directory, not a regular file")
    refused(["--kernel", str(tmp_path / "missing.elf")], "No such file or directory")
    locked = tmp_path / "locked.elf"
    locked.write_bytes(REPORT.read_bytes())
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads it anyway
        return
    refused(["--kernel", str(locked)], "Permission denied")


def test_kernel_or_initrd_that_is_a_stream_is_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(["--kernel", str(fifo)], "FIFO")  # opening never waits for a writer
    refused(["--kernel", "/dev/zero"], "character device")
    refused(["--kernel", str(REPORT), "--initrd", "/dev/zero"], "character device")


def test_memory_more_than_the_host_can_map() -> None:
    limit = host_ram_limit()
    if limit is None or limit + (1 << 30) > 1 << 40:
        pytest.skip(f"this host sets no limit under -m's 1 TiB maximum ({limit})")
    size = (limit >> 30) + 1
    refused(["--kernel", str(REPORT), "-m", f"{size}G"], "more guest RAM than this host can map")


def test_memory_too_small_for_the_kernel() -> None:
    refused(["--kernel", str(REPORT), "-m", "1"], "does not fit in RAM")


def _proc(tmp_path: Path, meminfo: str, mode: str) -> dict[str, str]:
    (tmp_path / "meminfo").write_text(meminfo)
    (tmp_path / "overcommit").write_text(mode + "\n")
    return {"meminfo": str(tmp_path / "meminfo"), "overcommit": str(tmp_path / "overcommit")}


MEMINFO = "MemTotal:  4096 kB\nSwapTotal:  1024 kB\nCommitLimit:  3072 kB\nCommitted_AS: 9 kB\n"


def test_host_limit_follows_linux_overcommit(tmp_path: Path) -> None:
    heuristic = _proc(tmp_path, MEMINFO, "0")
    assert host_ram_limit(**heuristic) == 5 << 20  # RAM + swap
    check_ram_size(5 << 20, **heuristic)
    with pytest.raises(ConfigError, match=r"-m 5\.5M is more .* \(at most 5M: RAM \+ swap\)"):
        check_ram_size((5 << 20) + (1 << 19), **heuristic)
    strict = _proc(tmp_path, MEMINFO, "2")
    assert host_ram_limit(**strict) == 3 << 20
    with pytest.raises(ConfigError, match=r"vm\.overcommit_memory=2"):
        check_ram_size(4 << 20, **strict)
    always = _proc(tmp_path, MEMINFO, "1")  # overcommit always: only RLIMIT_AS bounds it
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        assert host_ram_limit(**always) is None
        check_ram_size(1 << 40, **always)


def _accel_exe() -> list[str]:
    script = shutil.which("accel", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "accel"]


@pytest.mark.parametrize(
    "args",
    [["run", "/dev/zero"], ["run", "--accel", "tcg", "--kernel", "/dev/zero"]],
    ids=["image", "kernel"],
)
def test_dev_zero_is_refused_without_reading_it(args: list[str]) -> None:
    """``accel run /dev/zero`` once read about 1 GB/s until the kernel killed it; every image
    read is bounded now. (The subprocess timeout turns a hang into a failure.)"""
    done = subprocess.run([*_accel_exe(), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "character device" in done.stderr
    assert done.stdout == ""
