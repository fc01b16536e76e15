"""The argparse side of the ``accel`` command (see :mod:`accel.cli`), and
:func:`add_options`, which gives argparse a command's :class:`~accel.cli.Option` table.

:mod:`argparse` costs milliseconds at start-up, so :mod:`accel.cli` imports this module
only when a command line needs argparse: ``--help``, an error, a command without a fast
parser (``parse_fast``), or one its fast parser declines.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, Protocol

from . import cli

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .cli import Option

__all__ = ["CommandModule", "HelpFormatter", "Parser", "ParserExit", "add_options"]


class CommandModule(Protocol):
    """What a module listed in :data:`accel.cli.COMMAND_MODULES` provides."""

    def add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None: ...


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter with the terminal width found as argparse finds it."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse, but ``exit``/``error`` raise instead of leaving the process.

    The top-level parser imports its command modules lazily (:meth:`_load_for`): only the
    module that adds the command being parsed, or all of them whenever help, usage or an
    unknown command needs the full list.
    """

    _pending: list[str] | None = None  # command modules not imported yet (top level only)
    _commands: argparse._SubParsersAction[Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise ParserExit(status)

    def _load(self, names: Iterable[str] | None = None) -> None:
        """Import the pending command modules (those of ``names``; None: all), in order."""
        if not self._pending or self._commands is None:
            return
        wanted = None if names is None else set(names)
        for module_name in list(self._pending):
            if wanted is None or module_name in wanted:
                self._pending.remove(module_name)
                module: CommandModule = importlib.import_module(module_name)
                module.add_commands(self._commands)

    def _load_for(self, args: Sequence[str]) -> None:
        if not self._pending or self._commands is None:
            return
        command = args[0] if args else None
        if command is None or command.startswith("-"):
            self._load()  # --help, --version, no command: everything
            return
        if command not in self._commands.choices:
            self._load([cli.COMMAND_INDEX.get(command, "")])
        if command not in self._commands.choices:
            self._load()  # not in the index (or the index is wrong): find it anywhere

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._load_for(list(sys.argv[1:] if args is None else args))
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._load()
        return super().format_usage()

    def format_help(self) -> str:
        self._load()
        return super().format_help()


class ParserExit(Exception):
    """Raised by :meth:`Parser.exit` instead of :exc:`SystemExit`: the status to return."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """``parser.add_argument`` for each of ``options``, in order."""
    for opt in options:
        kwargs: dict[str, Any] = {"help": opt.help}
        if opt.action == "store_true":
            kwargs["action"] = "store_true"
        else:
            if opt.action != "store":
                kwargs["action"] = opt.action
            kwargs["default"] = list(opt.default) if opt.action == "append" else opt.default
            for key in ("metavar", "type", "choices", "nargs"):
                if getattr(opt, key) is not None:
                    kwargs[key] = getattr(opt, key)
        parser.add_argument(*opt.names, **kwargs)


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil (argparse makes a
    formatter for every ``add_argument``, and shutil costs milliseconds at start-up)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    try:
        lines = int(os.environ["LINES"])
    except (KeyError, ValueError):
        lines = 0
    if columns <= 0 or lines <= 0:
        try:
            size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size((80, 24))
        if columns <= 0:
            columns = size.columns or 80
    return columns
