"""The ``accel`` command: the argparse parser and :func:`main`, its console-script entry point.

The top-level parser has one sub-parser per :class:`Command` of :data:`COMMANDS`, with
its name and help line; ``accel --help`` needs nothing more. The arguments of a command
come from its command module (``"accel.commands.host:add_info"``), which is imported only
when that command is on the command line. The module's function adds the arguments to
the sub-parser and sets ``handler`` (see :mod:`accel.commands`).

An :class:`~accel.errors.AccelError` becomes one line ``accel: error: <message> (hint:
<what to do>)`` on stderr and exit status 1. Usage errors are argparse's: the usage of
the (sub)command at fault, ``accel COMMAND: error: ...`` and exit status 2.

Example::

    $ accel info
    $ accel check && echo "hardware acceleration works"
    $ python -m accel plugins --json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TextIO

from . import __version__
from .commands import Context, Handler, OutputError, writing
from .errors import AccelError
from .registry import Registry

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "COMMANDS",
    "Command",
    "CommandParser",
    "HelpParser",
    "VersionAction",
    "build_parser",
    "main",
]


@dataclass(frozen=True, slots=True)
class Command:
    """One ``accel`` command: its name, the ``"module:function"`` that adds its arguments
    to its sub-parser (imported when the command is dispatched), and its help line."""

    name: str
    target: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Import the command's module and let it add its arguments to ``parser``."""
        module_name, _, function = self.target.partition(":")
        getattr(importlib.import_module(module_name), function)(parser)


#: The commands, in the order ``accel --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "info",
        "accel.commands.host:add_info",
        "registered accelerators: available or not and why, key capabilities",
    ),
    Command(
        "plugins",
        "accel.commands.host:add_plugins",
        "loaded plugins: version, distribution, hooks, load errors",
    ),
    Command(
        "check",
        "accel.commands.host:add_check",
        "validate the host: PASS/WARN/FAIL lines with hints",
    ),
    Command(
        "run",
        "accel.commands.run:add_run",
        "run a flat binary image to its end (like qemu -bios IMAGE)",
    ),
    Command(
        "machine",
        "accel.commands.machine:add_machine",
        "machine types and the devices a machine gets",
    ),
    Command("snapshot", "accel.commands.snapshot:add_snapshot", "work with snapshot files"),
    Command(
        "conformance",
        "accel.commands.conformance:add_conformance",
        "run the conformance suite on accelerators and print a check x accelerator matrix",
    ),
)


def _write_stdout(text: str, file: SupportsWrite[str] | None = None) -> None:
    """Write ``text`` to ``file`` (default: standard output) and flush it; a failure is an
    :class:`~accel.commands.OutputError` (argparse itself would drop it and exit 0)."""
    out = sys.stdout if file is None else file
    if out is None:  # file descriptor 1 was closed
        raise OutputError(
            "standard output is closed",
            hint="redirect it to a file or to /dev/null instead of closing it",
        )
    with writing():
        out.write(text)
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()


class HelpParser(argparse.ArgumentParser):
    """An argument parser whose ``--help`` output that cannot be written (``accel --help >
    /dev/full``) is an error, as any command's output is, rather than silently lost."""

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        _write_stdout(self.format_help(), file)

    def error(self, message: str) -> NoReturn:
        """argparse's usage error, on one line: the message quotes the user's words as they
        were typed (``unrecognized arguments: ...``), so a control character or line break
        among them is shown escaped (``\\x1e``, ``\\n``)."""
        super().error(_printable(message))


class VersionAction(argparse.Action):
    """``--version``: print ``accel VERSION`` (an error when it cannot be written) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        _write_stdout(f"accel {__version__}\n")
        parser.exit()


class CommandParser(HelpParser):
    """The parser of a command (and of a command group's commands).

    An argument it does not know is its own usage error, with its own usage line
    (``accel plugins: error: unrecognized arguments: extra``), rather than one the
    top-level parser reports with the top-level usage.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _printable(text: str) -> str:
    """``text`` with each character that is not printable (a line break, a control
    character) written as its escape, as ``repr`` writes it."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def build_parser(
    argv: Sequence[str] = (), commands: Sequence[Command] | None = None
) -> argparse.ArgumentParser:
    """The ``accel`` parser with a sub-parser for each of ``commands`` (:data:`COMMANDS`).

    The arguments of the command named in ``argv`` (its first word that is not an
    option: the top level takes no option with a value) are added to its sub-parser,
    which imports its module; the other commands have only their name and help line.
    """
    parser = HelpParser(
        prog="accel",
        description="Virtualization accelerators behind one plugin interface.",
        epilog="Environment: ACCEL_PLUGINS=a,b loads only those plugins; "
        "ACCEL_DISABLE_PLUGINS=a,b skips those.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=CommandParser
    )
    given = next((arg for arg in argv if not arg.startswith("-")), None)
    for command in COMMANDS if commands is None else commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.name == given:
            command.add_arguments(p)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the ``accel`` command on ``argv`` (default: ``sys.argv[1:]``) and return its exit
    status: the command's, 1 for an :class:`~accel.errors.AccelError` or output that cannot
    be written, 2 for a usage error, 130 when interrupted.

    ``registry`` replaces the default registry; ``out`` and ``err`` replace ``sys.stdout``
    and ``sys.stderr`` for what the command prints (argparse's help and usage errors go
    to ``sys.stdout`` and ``sys.stderr``).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    ctx = Context(registry, out, err)
    try:
        args = build_parser(args_list).parse_args(args_list)
        handler: Handler = args.handler
        status = handler(args, ctx)
        ctx.flush()  # a write error is the command's, reported below
        return status
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return _exit_status(exc)
    except OutputError as exc:
        _discard_stdout(ctx)
        _error(ctx, str(exc))
        return 1
    except AccelError as exc:
        _error(ctx, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(ctx, "interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (``accel info | head``): nothing more to say.
        _discard_stdout(ctx)
        return 1


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _discard_stdout(ctx: Context) -> None:
    """Point standard output at /dev/null, so that the interpreter's final flush of what
    could not be written does not report it a second time (unless the command's output
    went to a stream of its own)."""
    if ctx.out_stream is not None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _error(ctx: Context, text: str) -> None:
    line = " ".join(text.split())
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no stderr: the status tells
        ctx.err.write(f"accel: error: {line}\n")
        ctx.err.flush()
