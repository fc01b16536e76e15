"""A machine's run state, as the machine and its devices both see it.

``created`` → ``running`` ⇄ ``paused`` → ``shutdown`` (and ``created`` → ``paused``, the
state a restored machine is returned in). :class:`~accel.machine.Machine` keeps the
state; every device's :meth:`~accel.machine.Device.runstate_changed` and every notifier
sees each change.
"""

from __future__ import annotations

import enum

__all__ = ["RunState"]


class RunState(enum.Enum):
    """Where a machine is in its life."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
