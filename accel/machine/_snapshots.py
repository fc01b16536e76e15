"""Snapshot glue of ``accel run``: the save after a run and :func:`restore_image`
(re-exported by :mod:`accel.machine.cli` and :mod:`accel.machine.runner`; loaded only
when a run saves or restores)."""

from __future__ import annotations

from dataclasses import replace

from ..errors import SnapshotError
from ..snapshot.core import atomic_file
from ..snapshot.machine import restore_machine, save_machine
from .cli import run_machine
from .machine import Machine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    from ..accelerator import Accelerator
    from ..registry import Registry
    from .cli import RunOptions
    from .machine import RunResult

__all__ = ["restore_image", "save_after_run"]


def save_after_run(machine: Machine, result: RunResult, options: RunOptions) -> RunResult:
    """Pause ``machine`` and write its snapshot to ``options.save`` (atomically); the
    result's message says so. ``options.save`` None: ``result`` as it is."""
    if options.save is None:
        return result
    machine.pause()
    try:
        with atomic_file(options.save) as f:
            save_machine(machine, f)
    except OSError as exc:
        raise SnapshotError(
            f"cannot write the snapshot {options.save!r}: {exc.strerror or exc}",
            hint=f"the run ended: {result.message}",
        ) from exc
    return replace(result, message=f"{result.message}; snapshot written to {options.save}")


def restore_image(
    accelerator: Accelerator,
    stream: IO[bytes],
    options: RunOptions,
    *,
    mode: str | None = None,
    registry: Registry | None = None,
    console: Callable[[bytes], Any] | None = None,
) -> RunResult:
    """Restore the machine snapshot in ``stream`` on ``accelerator`` and run it on (with
    ``options``' ``timeout``, ``stop_after`` and ``save``; the image, machine, CPU and
    device options come from the snapshot). The machine is closed afterwards.

    A snapshot taken after the guest ended its run gives that same result again (and is
    saved again with ``save``) without running the guest.
    """
    machine = restore_machine(stream, accelerator, mode=mode, registry=registry, console=console)
    with machine:
        if machine.ended is not None:
            ended = machine.ended
            result = replace(ended, message=f"{ended.message} (the run had ended at the save)")
            return save_after_run(machine, result, options)
        machine.resume()
        return run_machine(machine, options)
