"""The ``accel`` command: what this host can accelerate, which plugins are loaded, and why.

``accel info`` lists every registered accelerator with its availability and key
capabilities, ``accel plugins`` the plugins behind them, ``accel check`` gives
PASS/WARN/FAIL lines like ``virt-host-validate``. Every command prints aligned plain text
for people and, with ``--json``, everything for programs.

Errors never show a traceback: an :class:`~accel.errors.AccelError` becomes one line
``accel: error: <message> (hint: <what to do>)`` on stderr and exit status 1; usage errors
exit with status 2 (argparse's convention).

Commands are contributed by *command modules* (:data:`COMMAND_MODULES`): each exposes
``add_commands(subparsers)`` and registers its sub-parsers with
``set_defaults(handler=...)``, where a handler is ``handler(args, ctx) -> int`` and
:class:`Context` gives it the registry and the output streams. A command module's top level
should stay cheap: its handlers import what they need. The parser imports command modules
lazily: :data:`COMMAND_INDEX` says which module adds a top-level command, so
``accel run ...`` imports only the module that adds ``run``; ``--help``, a command not in the
index, or a module that turns out not to add it, imports them all.

A command module may also expose ``parse_fast(command, args)``: the namespace argparse
would return for ``accel COMMAND ARGS``, or None. :mod:`argparse` alone costs milliseconds
at start-up, so ``accel run`` is parsed this way: its arguments are an :class:`Option` table
that :func:`add_options` gives to argparse and :func:`parse_options` reads directly. The
direct parser takes only the plain forms (exact option names, ``--name=value``, values not
starting with ``-``) and declines anything else, so help, abbreviations and every error
message are argparse's own.

Example::

    $ accel info
    $ accel check && echo "hardware acceleration works"
    $ python -m accel plugins --json
"""

from __future__ import annotations

import os
import sys
from _collections_abc import Callable

from . import __version__
from ._records import field, record
from .accelerator import Accelerator, Availability
from .capabilities import Capability, CapabilityAnswer, CapabilitySet, ClockFlags, Support
from .errors import AccelError
from .plugin import AcceleratorInfo
from .registry import Registry, default_registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from argparse import Namespace
    from collections.abc import Iterable, Sequence
    from typing import Any, TextIO

    from ._cliparser import CommandModule
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

#: Capabilities ``accel info`` shows in its plain-text view (``--json`` shows all).
KEY_CAPABILITIES: tuple[Capability, ...] = (
    Capability.USER_MEMORY,
    Capability.MAX_VCPUS,
    Capability.NR_VCPUS,
    Capability.IRQCHIP,
    Capability.PIT,
    Capability.PV_CLOCKSOURCE,
    Capability.ADJUST_CLOCK,
    Capability.CLOCK_CTRL,
    Capability.TSC_CONTROL,
)


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
            self._registry = self.injected if self.injected is not None else default_registry()
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


Handler = Callable[["argparse.Namespace", Context], int]
"""A subcommand: gets the parsed arguments and the :class:`Context`, returns the exit status."""


def __getattr__(name: str) -> object:
    if name == "CommandModule":  # a typing.Protocol: built when asked for, not at start-up
        from ._cliparser import CommandModule

        return CommandModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- survey


@record
class Survey:
    """One accelerator as the commands see it: its info, availability and capabilities.

    ``capabilities`` is None when the accelerator is unavailable or could not answer
    (``capabilities_error`` then says why).
    """

    info: AcceleratorInfo
    availability: Availability
    capabilities: CapabilitySet | None = None
    capabilities_error: str | None = None

    @property
    def name(self) -> str:
        return self.info.name

    def to_json(self) -> dict[str, Any]:
        av = self.availability
        return {
            "name": self.info.name,
            "summary": self.info.summary,
            "plugin": self.info.plugin,
            "priority": self.info.priority,
            "hardware": self.info.hardware,
            "available": av.available,
            "reason": av.reason,
            "hint": av.hint,
            "details": dict(av.details),
            "unsupported": self.info.unsupported_features,
            "capabilities": self.capabilities.to_json() if self.capabilities else None,
            "capabilities_error": self.capabilities_error,
        }


def survey(registry: Registry, names: Iterable[str] | None = None) -> list[Survey]:
    """Probe each registered accelerator (or those ``names``) once and read its capabilities.

    Never raises for a misbehaving accelerator: a probe or capability query that raises
    is reported as the reason. Each accelerator is closed again before returning.
    """
    infos = [registry.info(n) for n in names] if names else list(registry.accelerators().values())
    return [_survey_one(info) for info in infos]


def _survey_one(info: AcceleratorInfo) -> Survey:
    try:
        acc: Accelerator = info.factory()
    except Exception as exc:  # a plugin bug must not hide the other accelerators
        return Survey(info, Availability.unavailable(f"could not be created: {_describe(exc)}"))
    try:
        try:
            availability = acc.probe()
        except Exception as exc:  # probe() should never raise; report it if it does
            return Survey(info, Availability.unavailable(f"probe failed: {_describe(exc)}"))
        result = Survey(info, availability)
        if availability.available:
            try:
                result.capabilities = acc.capabilities()
            except Exception as exc:
                result.capabilities_error = _describe(exc)
        return result
    finally:
        import contextlib

        with contextlib.suppress(Exception):  # closing must not hide the answer
            acc.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AccelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- formatting


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows padded into aligned columns (the last column is not padded)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append((indent + "  ".join([*cells, row[-1]])).rstrip())
    return lines


def _answer_text(cap: Capability, answer: CapabilityAnswer) -> str:
    text = answer.support.value
    if answer.support is Support.YES and answer.value is not None:
        if cap is Capability.ADJUST_CLOCK:
            flags = [(f.name or "").lower() for f in ClockFlags if f in answer.flags]
            text += f" ({', '.join(flags) or 'no flags'})"
        else:
            text += f" ({answer.value})"
    return text


# --------------------------------------------------------------------------- info


def _cmd_info(args: argparse.Namespace, ctx: Context) -> int:
    reg = ctx.registry
    results = survey(reg, args.names or None)
    if args.json:
        ctx.print_json(
            {
                "accelerators": [r.to_json() for r in results],
                "load_errors": [e.fields() for e in reg.load_errors],
            }
        )
        return 0
    if not results:
        ctx.print("no accelerators registered")
        ctx.print("  hint: install a plugin that provides one; `accel plugins` lists what loaded")
    rows = [["ACCELERATOR", "STATUS", "KIND", "PRIORITY", "SUMMARY"]]
    for r in results:
        rows.append(
            [
                r.name,
                "available" if r.availability.available else "unavailable",
                "hardware" if r.info.hardware else "software",
                str(r.info.priority),
                r.info.summary,
            ]
        )
    if results:
        for line in _table(rows):
            ctx.print(line)
    for r in results:
        ctx.print()
        av = r.availability
        state = "available" if av.available else "unavailable"
        ctx.print(f"{r.name}: {state}" + (f": {av.reason}" if av.reason else ""))
        if av.hint:
            ctx.print(f"  hint: {av.hint}")
        if r.capabilities is not None:
            caps = r.capabilities
            for line in _table(
                [[c.value, _answer_text(c, caps[c]), caps[c].source] for c in KEY_CAPABILITIES],
                indent="  ",
            ):
                ctx.print(line)
        elif r.capabilities_error:
            ctx.print(f"  capabilities could not be read: {r.capabilities_error}")
        if r.info.unsupported:
            ctx.print("  declared unsupported:")
            for line in _table([list(item) for item in r.info.unsupported], indent="    "):
                ctx.print(line)
    for err in reg.load_errors:
        ctx.print()
        ctx.print(f"plugin load error: {err}")
    return 0


# --------------------------------------------------------------------------- plugins


def _cmd_plugins(args: argparse.Namespace, ctx: Context) -> int:
    reg = ctx.registry
    records = reg.plugins()
    errors = reg.load_errors
    if args.json:
        ctx.print_json(
            {
                "plugins": [r.to_json() for r in records],
                "load_errors": [e.fields() for e in errors],
            }
        )
        return 0
    if not records and not errors:
        ctx.print("no plugins registered")
        ctx.print(
            "  hint: plugins register under the 'accel.plugins' entry-point group; "
            "check ACCEL_PLUGINS / ACCEL_DISABLE_PLUGINS"
        )
        return 0
    rows = [["NAME", "VERSION", "DISTRIBUTION", "SOURCE", "HOOKS"]]
    for r in records:
        hooks = ", ".join(r.hooks) if r.error is None else "(failed to load)"
        rows.append([r.name, r.version or "-", r.distribution or "-", r.source, hooks or "-"])
    for line in _table(rows):
        ctx.print(line)
    if errors:
        ctx.print()
        ctx.print("load errors:")
        for err in errors:
            ctx.print(f"  {err.plugin}: {err.message}")
        ctx.print(f"  hint: {errors[0].hint}")
    return 0


# --------------------------------------------------------------------------- check


@record(frozen=True)
class Check:
    """One line of ``accel check``: ``subject: title : STATUS (detail; hint: ...)``."""

    subject: str
    title: str
    status: str  # "PASS", "WARN" or "FAIL"
    detail: str = ""
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "check": self.title,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
        }


#: The capability checks run on each available accelerator: (capability, title, hint).
CAPABILITY_CHECKS: tuple[tuple[Capability, str, str], ...] = (
    (
        Capability.USER_MEMORY,
        "guest RAM is host memory",
        "guest memory access will be slower; a newer accelerator or host may provide it",
    ),
    (
        Capability.IRQCHIP,
        "in-accelerator interrupt controller",
        "interrupt controllers will be emulated by the VMM, which is slower",
    ),
    (
        Capability.PV_CLOCKSOURCE,
        "paravirtual clocksource",
        "guests fall back to emulated timers; their clock may drift and run slower",
    ),
    (
        Capability.ADJUST_CLOCK,
        "adjustable VM clock",
        "guest time cannot be saved and restored exactly across pause, snapshot or migration",
    ),
)


HARDWARE_CHECK = "a hardware accelerator is usable"


def run_checks(results: Sequence[Survey], load_errors: Iterable[AccelError]) -> list[Check]:
    """The checks ``accel check`` prints, in order."""
    checks: list[Check] = []
    for err in load_errors:
        subject = f"plugin {getattr(err, 'plugin', None) or '?'}"
        checks.append(Check(subject, "plugin loads", "WARN", err.message, err.hint))
    if not results:
        checks.append(
            Check(
                "accel",
                "an accelerator is registered",
                "FAIL",
                "no accelerator plugin is registered",
                "install a plugin that provides one; check ACCEL_PLUGINS / ACCEL_DISABLE_PLUGINS",
            )
        )
    for r in results:
        av = r.availability
        kind = "hardware" if r.info.hardware else "software"
        if not av.available:
            checks.append(
                Check(
                    r.name,
                    f"{kind} accelerator usable",
                    "FAIL",
                    av.reason,
                    av.hint or "see `accel info` for details",
                )
            )
            continue
        checks.append(Check(r.name, f"{kind} accelerator usable", "PASS", av.reason))
        if r.capabilities is None:
            checks.append(
                Check(
                    r.name,
                    "capabilities readable",
                    "WARN",
                    r.capabilities_error or "no answer",
                    "report this to the plugin's authors",
                )
            )
            continue
        for cap, title, hint in CAPABILITY_CHECKS:
            answer = r.capabilities[cap]
            label = f"{title} ({cap.value})"
            if answer.support is Support.YES:
                checks.append(Check(r.name, label, "PASS"))
            else:
                detail = "not supported" if answer.support is Support.NO else "unknown"
                declared = r.info.unsupported_features.get(cap.value)
                if declared:
                    detail += f": {declared}"
                checks.append(Check(r.name, label, "WARN", detail, hint))
    usable_hw = [r.name for r in results if r.info.hardware and r.availability.available]
    if usable_hw:
        checks.append(Check("accel", HARDWARE_CHECK, "PASS", ", ".join(usable_hw)))
    else:
        hw = [r.name for r in results if r.info.hardware]
        checks.append(
            Check(
                "accel",
                HARDWARE_CHECK,
                "FAIL",
                f"none of {', '.join(hw)} is usable" if hw else "no hardware accelerator plugin",
                "enable hardware virtualization (VT-x / AMD-V) in the firmware and give your user "
                "access to it, or install a plugin for one; the lines above say what each lacks",
            )
        )
    return checks


def _cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    reg = ctx.registry
    results = survey(reg)
    checks = run_checks(results, reg.load_errors)
    usable_hw = [r.name for r in results if r.info.hardware and r.availability.available]
    usable_sw = [r.name for r in results if not r.info.hardware and r.availability.available]
    status = 0 if usable_hw else 1
    if usable_hw:
        verdict = f"hardware acceleration is usable ({', '.join(usable_hw)})"
    elif usable_sw:
        verdict = (
            "no hardware accelerator is usable; only software emulation "
            f"({', '.join(usable_sw)}), which is much slower"
        )
    else:
        verdict = "no accelerator is usable"
    if args.json:
        ctx.print_json(
            {
                "checks": [c.to_json() for c in checks],
                "hardware_usable": bool(usable_hw),
                "usable": usable_hw + usable_sw,
                "result": verdict,
            }
        )
        return status
    width = max((len(c.subject) + len(c.title) + 2 for c in checks), default=0)
    for c in checks:
        extra = "; ".join(p for p in (c.detail, f"hint: {c.hint}" if c.hint else "") if p)
        label = f"{c.subject}: {c.title}".ljust(width)
        ctx.print(f"{label} : {c.status}" + (f" ({extra})" if extra else ""))
    ctx.print()
    ctx.print(f"result: {verdict}")
    return status


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
        if self.positional:
            return self.names[0]
        name = next((n for n in self.names if n.startswith("--")), self.names[0])
        return name.lstrip("-").replace("-", "_")

    def initial(self) -> Any:
        """The value when not given (argparse converts a string default with ``type``)."""
        if self.action == "store_true":
            return False
        if self.action == "append":
            return list(self.default)
        if isinstance(self.default, str) and self.type is not None:
            return self.type(self.default)
        return self.default


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
    named: dict[str, Option] = {}
    positionals = [opt for opt in options if opt.positional]
    if len(positionals) > 1 or any(opt.nargs not in (None, "?") for opt in positionals):
        return None  # how argparse shares strings out among positionals is its business
    for opt in options:
        if not opt.positional:
            if opt.nargs is not None or opt.action not in ("store", "store_true", "append"):
                return None
            named.update(dict.fromkeys(opt.names, opt))
    values: dict[str, Any] = {}
    given: str | None = None
    try:
        i, end = 0, len(args)
        while i < end:
            arg = args[i]
            i += 1
            if not arg.startswith("-"):
                if not positionals or given is not None:
                    return None
                given = arg
                continue
            name, eq, text = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            option = named.get(name)
            if option is None:
                return None
            if option.action == "store_true":
                if eq:
                    return None
                values[option.dest] = True
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
                values.setdefault(option.dest, list(option.default)).append(_value(option, text))
            else:
                values[option.dest] = _value(option, text)
        for opt in positionals:
            if given is not None:
                values[opt.dest] = _value(opt, given)
            elif opt.nargs != "?":
                return None
            elif isinstance(opt.default, str):
                values[opt.dest] = _value(opt, opt.default)
        for opt in options:
            if opt.dest not in values:
                try:
                    values[opt.dest] = opt.initial()
                except Exception:  # a bad default: argparse says so
                    raise _Decline from None
    except _Decline:
        return None
    return Namespace(**{**defaults, **values})


# --------------------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``info``, ``plugins`` and ``check`` (this module is a command module too)."""
    p = subparsers.add_parser(
        "info",
        help="registered accelerators: available or not and why, key capabilities",
        description="Probe every registered accelerator and show whether it is usable here "
        "(and if not, why and what to do) and its key capabilities. --json shows everything: "
        "each capability as yes/no/unknown with its value and source.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these accelerators")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_info)

    p = subparsers.add_parser(
        "plugins",
        help="loaded plugins: version, distribution, hooks, load errors",
        description="List every plugin: registered ones with their hooks, and those that "
        "failed to load with the error.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_plugins)

    p = subparsers.add_parser(
        "check",
        help="validate the host: PASS/WARN/FAIL lines with hints",
        description="Check each accelerator and its key capabilities. Exit status 0 when a "
        "hardware accelerator is usable, 1 otherwise, 2 on usage errors.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_check)


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
    """Run the ``accel`` command; returns the exit status (0, 1, or 2 for usage errors)."""
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
