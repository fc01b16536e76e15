"""``python -m accel``: the same as the ``accel`` command."""

from __future__ import annotations

from .cli import command

if __name__ == "__main__":
    command()
