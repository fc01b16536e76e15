"""``accel run IMAGE``: load a flat binary, run it to its end, report how it ended.

The runner lives in :mod:`accel.machine.cli` beside the ``run`` command (one module on the
command's start-up path); this module keeps its names importable from here.
"""

from __future__ import annotations

from .cli import DEBUG_DEVICES, RunOptions, load_image, parse_duration, run_image, run_machine
from .cli import FOUR_GIB as FOUR_GIB
from .cli import ISA_BIOS_MAX as ISA_BIOS_MAX
from .cli import MAX_IMAGE as MAX_IMAGE
from .cli import ONE_MIB as ONE_MIB
from .cli import PAGE as PAGE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._snapshots import restore_image
else:
    from .._lazy import exports

    __getattr__, __dir__ = exports(globals(), {"restore_image": "._snapshots"})
    del exports


__all__ = [
    "DEBUG_DEVICES",
    "RunOptions",
    "load_image",
    "parse_duration",
    "restore_image",
    "run_image",
    "run_machine",
]
