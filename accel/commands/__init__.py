"""The ``accel`` command's command modules, and what their handlers share.

:mod:`accel.cli` builds the argument parser and imports a module of this package when
its command is dispatched: :mod:`~accel.commands.host` (``info``, ``plugins``,
``check``), :mod:`~accel.commands.run` (``run``), :mod:`~accel.commands.machine`
(``machine list|show``), :mod:`~accel.commands.snapshot` (``snapshot inspect``) and
:mod:`~accel.commands.conformance` (``conformance``). Each adds its arguments to the
sub-parser it is given and sets ``handler`` with :meth:`~argparse.ArgumentParser.set_defaults`.

A handler is ``handler(args, ctx) -> int``: it gets the parsed arguments and a
:class:`Context` (the registry and the output streams) and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

from ..errors import AccelError
from ..registry import Registry, default_registry

__all__ = ["Context", "Handler", "OutputError", "table", "writing"]


class OutputError(AccelError):
    """Standard output cannot be written (closed, a full disk: ``accel info > /dev/full``).

    A reader that went away (:exc:`BrokenPipeError`, ``accel info | head``) is not one:
    that ends the command quietly.
    """


@dataclass
class Context:
    """What a command handler gets besides its arguments.

    ``registry`` is ``injected`` or, on first use, the default registry; ``out`` and
    ``err`` are ``out_stream`` and ``err_stream``, or ``sys.stdout`` and ``sys.stderr``
    when not given.
    """

    injected: Registry | None = None
    out_stream: TextIO | None = None
    err_stream: TextIO | None = None
    _registry: Registry | None = field(default=None, init=False, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self.injected if self.injected is not None else default_registry()
        return self._registry

    @property
    def out(self) -> TextIO:
        """Where output goes; an :class:`OutputError` when the process was
        started with standard output closed (``accel info >&-``)."""
        out = self.out_stream if self.out_stream is not None else sys.stdout
        if out is None:  # Python sets sys.stdout to None when file descriptor 1 is closed
            raise OutputError(
                "standard output is closed",
                hint="redirect it to a file or to /dev/null instead of closing it",
            )
        return out

    @property
    def err(self) -> TextIO:
        return self.err_stream if self.err_stream is not None else sys.stderr

    def print(self, text: str = "") -> None:
        out = self.out
        with writing():
            print(text, file=out)

    def print_json(self, data: object) -> None:
        out = self.out
        with writing():
            import json  # only for --json output

            json.dump(data, out, indent=2, sort_keys=False, default=str)
            out.write("\n")

    def flush(self) -> None:
        """Flush the output stream, so that a write error is reported by the command."""
        out = self.out_stream if self.out_stream is not None else sys.stdout
        if out is not None:
            with writing():
                out.flush()


@contextmanager
def writing() -> Iterator[None]:
    """Turn an :exc:`OSError` of writing output into an :class:`OutputError` (a
    :exc:`BrokenPipeError` stays what it is)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write to standard output: {exc.strerror or exc}",
            hint="check where standard output goes: a full disk, a closed descriptor",
        ) from exc


Handler = Callable[[argparse.Namespace, Context], int]
"""A command: gets the parsed arguments and the :class:`Context`, returns the exit status."""


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows padded into aligned columns (the last column is not padded)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append((indent + "  ".join([*cells, row[-1]])).rstrip())
    return lines
