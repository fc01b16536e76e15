"""The Xen stub reads its host files with a bound and never waits at open: a FIFO, an
endless device or an oversized file under the (fake) root counts as unreadable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from accel_xen import XenAccelerator
from accel_xen.accelerator import MAX_ATTRIBUTE


def hypervisor_type(root: Path) -> Path:
    (root / "sys/hypervisor").mkdir(parents=True)
    return root / "sys/hypervisor/type"


def test_an_oversized_attribute_is_unreadable(tmp_path: Path) -> None:
    hypervisor_type(tmp_path).write_text("xen" + " " * MAX_ATTRIBUTE)
    avail = XenAccelerator(root=tmp_path).probe()
    assert not avail and "does not exist" in avail.reason  # read as unreadable, not as "xen"
    hypervisor_type(tmp_path / "ok").write_text("xen" + " " * (MAX_ATTRIBUTE - 4))
    assert "not running under Xen" not in XenAccelerator(root=tmp_path / "ok").probe().reason


def test_a_fifo_or_a_device_is_not_waited_for_nor_read_without_end(tmp_path: Path) -> None:
    os.mkfifo(hypervisor_type(tmp_path / "fifo"))  # no writer: a blocking open would hang
    (tmp_path / "dev").mkdir()
    os.symlink("/dev/zero", hypervisor_type(tmp_path / "zero"))
    code = (
        "import sys; from accel_xen import XenAccelerator\n"
        "for root in sys.argv[1:]: print(XenAccelerator(root=root).probe().reason)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "fifo"), str(tmp_path / "zero")],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    reasons = done.stdout.splitlines()
    assert len(reasons) == 2 and all("not running under Xen" in r for r in reasons), reasons
