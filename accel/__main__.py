"""The ``accel`` command's entry point (``[project.scripts] accel``) and ``python -m accel``.

:func:`command` imports :mod:`accel.cli` and runs :func:`accel.cli.main`. A Ctrl-C while
the command's modules are still importing, before ``main`` handles it, is reported as
``main`` reports one (``accel: error: interrupted``, status 130) instead of a traceback.
"""

from __future__ import annotations

import sys


def command() -> int:
    """Run the ``accel`` command on ``sys.argv`` and return its exit status."""
    try:
        from .cli import main

        return main()
    except KeyboardInterrupt:
        sys.stderr.write("accel: error: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(command())
