"""The argparse side of the ``accel`` command (see :mod:`accel.cli`).

:mod:`argparse` costs milliseconds at start-up, so :mod:`accel.cli` imports this module
only when a command line needs argparse: ``--help``, an error, a command without a fast
parser (``parse_fast``), or one its fast parser declines.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, Protocol

from . import cli

__all__ = ["CommandModule", "HelpFormatter", "Parser", "ParserExit"]


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
            width = cli._terminal_columns() - 2
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
