"""The ``accel`` command: dispatch to command modules, and the direct parser of ``run``.

An :class:`~accel.errors.AccelError` becomes one line ``accel: error: <message> (hint:
<what to do>)`` on stderr and exit status 1; usage errors exit with status 2 (argparse's).

Commands come from *command modules* (:data:`COMMAND_MODULES`): each exposes
``add_commands(subparsers)`` and registers its sub-parsers with ``set_defaults(handler=...)``,
where a handler is ``handler(args, ctx) -> int`` and :class:`Context` gives it the registry
and the output streams. A command module's top level should stay cheap. The parser imports
only the module that :data:`COMMAND_INDEX` names for the command given; ``--help``, a command
not in the index, or a module that turns out not to add it, imports them all. ``info``,
``plugins`` and ``check`` are in :mod:`accel._clihost`.

A command module may also expose ``parse_fast(command, args)``: the namespace argparse would
return for ``accel COMMAND ARGS``, or None. ``accel run`` is parsed this way, without
:mod:`argparse` (milliseconds at start-up): its arguments are an :class:`Option` table that
:func:`add_options` gives to argparse and :func:`parse_options` reads directly, taking only
the plain forms and declining anything else, so help, abbreviations and every error message
are argparse's own (:mod:`accel._cliparser`).

Example::

    $ accel info
    $ accel check && echo "hardware acceleration works"
    $ python -m accel plugins --json
"""

from __future__ import annotations

import os
import sys

from . import __version__
from ._lazy import exports
from ._records import field, record
from .errors import AccelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from argparse import Namespace
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn, TextIO

    from ._clihost import CAPABILITY_CHECKS as CAPABILITY_CHECKS
    from ._clihost import HARDWARE_CHECK as HARDWARE_CHECK
    from ._clihost import KEY_CAPABILITIES as KEY_CAPABILITIES
    from ._clihost import Check, Survey, survey
    from ._clihost import run_checks as run_checks
    from ._cliparser import CommandModule, add_options
    from .registry import Registry
else:

    class Namespace:
        """What a handler gets from :func:`parse_options`: :class:`argparse.Namespace`'s
        attributes, ``==``, ``in`` and repr, without importing :mod:`argparse`."""

        __hash__ = None

        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

        def __eq__(self, other):
            argparse = sys.modules.get("argparse")
            if isinstance(other, Namespace) or (
                argparse is not None and isinstance(other, argparse.Namespace)
            ):
                return vars(self) == vars(other)
            return NotImplemented

        def __contains__(self, key):
            return key in self.__dict__

        def __repr__(self):
            items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
            return f"Namespace({items})"


__all__ = [
    "COMMAND_INDEX",
    "COMMAND_MODULES",
    "Check",
    "CommandModule",
    "Context",
    "Handler",
    "Option",
    "Survey",
    "add_options",
    "build_parser",
    "main",
    "parse_options",
    "survey",
]

#: Modules that contribute subcommands, imported in this order when the parser is built.
#: Each exposes ``add_commands(subparsers)``. A new area of the command (``accel machine
#: ...``) adds its module here; list only modules that exist.
COMMAND_MODULES: tuple[str, ...] = (
    "accel.cli",
    "accel.machine.cli",
    "accel.snapshot.cli",
    "accel.testing.cli",
)

#: Which command module adds each top-level command: a hint that lets the parser import
#: only the module a command line needs. A command missing here still works (every
#: module is imported to find it); a module of :data:`COMMAND_MODULES` is only imported
#: through its entries here when it is in :data:`COMMAND_MODULES` too.
COMMAND_INDEX: dict[str, str] = {
    "info": "accel.cli",
    "plugins": "accel.cli",
    "check": "accel.cli",
    "run": "accel.machine.cli",
    "machine": "accel.machine.cli",
    "snapshot": "accel.snapshot.cli",
    "conformance": "accel.testing.cli",
}


@record
class Context:
    """What a command handler gets besides its arguments.

    ``registry`` is the injected one or, on first use, the default registry; ``out`` and
    ``err`` are the streams to print to (``sys.stdout``/``sys.stderr`` when not given).
    """

    injected: Registry | None = None
    out_stream: TextIO | None = None
    err_stream: TextIO | None = None
    _registry: Registry | None = field(default=None, init=False, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            if self.injected is not None:
                self._registry = self.injected
            else:
                from .registry import default_registry

                self._registry = default_registry()
        return self._registry

    @property
    def out(self) -> TextIO:
        return self.out_stream if self.out_stream is not None else sys.stdout

    @property
    def err(self) -> TextIO:
        return self.err_stream if self.err_stream is not None else sys.stderr

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def print_json(self, data: object) -> None:
        import json  # only --json output needs it (milliseconds at start-up otherwise)

        json.dump(data, self.out, indent=2, sort_keys=False, default=str)
        self.out.write("\n")


if TYPE_CHECKING:
    Handler = Callable[[argparse.Namespace, Context], int]
    """A subcommand: gets the parsed arguments and the :class:`Context`, returns the exit
    status (built on first use at run time)."""

#: Names defined in the modules that only some command lines need.
_ELSEWHERE = {
    "CommandModule": "accel._cliparser",
    "add_options": "accel._cliparser",
    "_terminal_columns": "accel._cliparser",
    "CAPABILITY_CHECKS": "accel._clihost",
    "HARDWARE_CHECK": "accel._clihost",
    "KEY_CAPABILITIES": "accel._clihost",
    "Check": "accel._clihost",
    "Survey": "accel._clihost",
    "run_checks": "accel._clihost",
    "survey": "accel._clihost",
}


_elsewhere = exports(globals(), _ELSEWHERE)[0]
del exports


def __getattr__(name: str) -> object:
    if name == "Handler":  # built here: a generic alias, not a name another module defines
        from _collections_abc import Callable

        handler = globals()["Handler"] = Callable[["argparse.Namespace", Context], int]
        return handler
    return _elsewhere(name)


# --------------------------------------------------------------------------- options


@record(frozen=True)
class Option:
    """One argument of a command, for argparse (:func:`add_options`) and for the direct
    parser (:func:`parse_options`) alike, so that the two cannot disagree.

    ``names`` are the option strings as argparse takes them, long name first
    (``("--machine", "-M")``), or a positional argument's one name (``("image",)``).
    ``action`` is ``"store"`` (takes a value, which ``type`` converts and ``choices``
    limits), ``"store_true"`` (a flag) or ``"append"`` (a repeatable value; ``default`` is
    the items to start from, and each parse gets a new list of them). ``nargs`` is for a
    positional: None (required) or ``"?"`` (optional).
    """

    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    action: str = "store"
    nargs: str | None = None

    @property
    def positional(self) -> bool:
        return not self.names[0].startswith("-")

    @property
    def dest(self) -> str:
        """The namespace attribute, named as argparse names it."""
        names = self.names
        if not names[0].startswith("-"):
            return names[0]
        for name in names:
            if name.startswith("--"):
                return name.lstrip("-").replace("-", "_")
        return names[0].lstrip("-").replace("-", "_")

    def initial(self) -> Any:
        """The value when not given (argparse converts a string default with ``type``)."""
        if self.action == "store_true":
            return False
        if self.action == "append":
            return list(self.default)
        if isinstance(self.default, str) and self.type is not None:
            return self.type(self.default)
        return self.default


class _Decline(Exception):
    """The direct parser leaves this command line to argparse."""


def _value(opt: Option, text: str) -> Any:
    try:
        value = text if opt.type is None else opt.type(text)
    except Exception:  # argparse reports it (or raises it) in its own words
        raise _Decline from None
    if opt.choices is not None and value not in opt.choices:
        raise _Decline
    return value


def parse_options(
    options: Sequence[Option], args: Sequence[str], **defaults: Any
) -> Namespace | None:
    """``args`` parsed with ``options`` (plus ``defaults``, as ``set_defaults`` adds them)
    exactly as argparse parses them after :func:`add_options`, without importing argparse;
    or None for argparse to parse them.

    Only the plain forms are read here: exact option names (no abbreviations), each
    followed by its value or written ``--name=value``; values (not empty after ``=``) and
    the positional not starting with ``-``; flags without ``=``; repeated options (the
    last one counts, or all of them for ``append``). Anything else, ``-h`` and ``--``
    included, and a value that ``type`` rejects or ``choices`` excludes, a missing or
    extra positional, gives None, so that help and error messages are argparse's own.
    """
    named: dict[str, tuple[Option, str]] = {}
    dests: list[tuple[Option, str]] = []
    positional: tuple[Option, str] | None = None
    for opt in options:
        entry = (opt, opt.dest)
        dests.append(entry)
        if opt.positional:
            if positional is not None or opt.nargs not in (None, "?"):
                return None  # how argparse shares strings out among positionals is its business
            positional = entry
        elif opt.nargs is not None or opt.action not in ("store", "store_true", "append"):
            return None
        else:
            for name in opt.names:
                named[name] = entry
    values: dict[str, Any] = {}
    given: str | None = None
    try:
        i, end = 0, len(args)
        while i < end:
            arg = args[i]
            i += 1
            if not arg.startswith("-"):
                if positional is None or given is not None:
                    return None
                given = arg
                continue
            name, eq, text = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            found = named.get(name)
            if found is None:
                return None
            option, dest = found
            if option.action == "store_true":
                if eq:
                    return None
                values[dest] = True
                continue
            if eq:
                if not text or text.startswith("-"):
                    return None
            elif i < end and not args[i].startswith("-"):
                text = args[i]
                i += 1
            else:
                return None
            if option.action == "append":
                values.setdefault(dest, list(option.default)).append(_value(option, text))
            else:
                values[dest] = _value(option, text)
        if positional is not None:
            option, dest = positional
            if given is not None:
                values[dest] = _value(option, given)
            elif option.nargs != "?":
                return None
            elif isinstance(option.default, str):
                values[dest] = _value(option, option.default)
        for option, dest in dests:
            if dest not in values:
                try:
                    values[dest] = option.initial()
                except Exception:  # a bad default: argparse says so
                    raise _Decline from None
    except _Decline:
        return None
    return Namespace(**{**defaults, **values})


# --------------------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``info``, ``plugins`` and ``check`` (this module is a command module too)."""
    from ._clihost import add_commands

    add_commands(subparsers)


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``accel`` argument parser with the commands of ``modules`` (:data:`COMMAND_MODULES`).

    With explicit ``modules`` every one is imported now; by default they are imported when
    a command line is parsed, only the one that adds its command (see :data:`COMMAND_INDEX`).
    """
    from ._cliparser import Parser

    parser = Parser(
        prog="accel",
        description="Virtualization accelerators behind one plugin interface.",
        epilog="Environment: ACCEL_PLUGINS=a,b loads only those plugins; "
        "ACCEL_DISABLE_PLUGINS=a,b skips those.",
    )
    parser.add_argument("--version", action="version", version=f"accel {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    parser._commands = sub
    parser._pending = list(dict.fromkeys(COMMAND_MODULES if modules is None else modules))
    if modules is not None:
        parser._load()
    return parser


def _parse_fast(argv: Sequence[str]) -> Namespace | None:
    """``argv`` parsed by its command module's ``parse_fast``, or None (no such parser, or
    it declines): then argparse parses it."""
    command = argv[0] if argv else ""
    module_name = COMMAND_INDEX.get(command)
    if module_name is None or module_name not in COMMAND_MODULES:
        return None
    __import__(module_name)
    parse = getattr(sys.modules[module_name], "parse_fast", None)
    if parse is None:
        return None
    args: Namespace | None = parse(command, list(argv[1:]))
    return args


def main(argv: list[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run the ``accel`` command; returns the exit status (0, 1, or 2 for usage errors).

    Without ``argv`` it is the process's own command (``sys.argv``), soon to exit: the
    garbage collector then runs less often (its first threshold at least
    :data:`_GC_THRESHOLD`: start-up allocates thousands of long-lived objects, which the
    default 700 would scan again and again), and whatever is alive when the command ends
    is frozen (:func:`gc.freeze`), so that the interpreter's exit does not spend
    milliseconds collecting the modules it is about to drop anyway.
    """
    if argv is not None:
        return _main(argv, registry)
    import gc

    threshold, *older = gc.get_threshold()
    gc.set_threshold(max(threshold, _GC_THRESHOLD), *older)
    try:
        return _main(argv, registry)
    finally:
        gc.freeze()


#: The garbage collector's first threshold while ``main()`` runs as the process's command.
_GC_THRESHOLD = 20_000


def command() -> NoReturn:
    """Run ``accel`` as this process's command and end the process with its status.

    What ``bin/accel`` and ``python -m accel`` call. The interpreter's own exit would, after
    the atexit callbacks and a flush of the standard streams, tear down every module and
    object one by one: about a millisecond here, a twentieth of a short ``accel run``, for
    memory the kernel is about to reclaim anyway. So when the command returns normally
    and no other thread is alive, this does what matters of that exit itself (runs the
    atexit callbacks, flushes stdout and stderr) and ends with :func:`os._exit`; in every
    other case (an exception, ``SystemExit`` from argument parsing, a live thread, a
    stream that cannot be flushed) it leaves the exit to the interpreter.
    """
    status = main()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(status)
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)  # the interpreter reports the failed flush as it always does
    os._exit(status)


def _main(argv: list[str] | None, registry: Registry | None) -> int:
    args = _parse_fast(sys.argv[1:] if argv is None else argv)
    if args is None:
        from ._cliparser import ParserExit

        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except ParserExit as exc:
            return exc.status
        if getattr(args, "handler", None) is None:
            parser.print_usage(sys.stderr)
            sys.stderr.write("accel: error: a command is required (hint: try `accel --help`)\n")
            return 2
    handler: Handler = args.handler
    ctx = Context(registry)
    try:
        return handler(args, ctx)
    except AccelError as exc:
        _error(ctx, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(ctx, "interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (``accel info | head``): nothing more to say, and point
        # stdout at /dev/null so the interpreter's final flush does not complain.
        import contextlib

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _error(ctx: Context, text: str) -> None:
    line = " ".join(text.split())
    try:
        ctx.err.write(f"accel: error: {line}\n")
        ctx.err.flush()
    except (BrokenPipeError, ValueError):  # stderr closed: the exit status still tells
        pass
