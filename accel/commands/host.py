"""``accel info``, ``accel plugins`` and ``accel check``.

``accel info`` lists every registered accelerator with its availability and key
capabilities, ``accel plugins`` the plugins behind them, ``accel check`` gives
PASS/WARN/FAIL lines like ``virt-host-validate``. Every command prints aligned plain text
for people and, with ``--json``, everything for programs. :func:`add_info`,
:func:`add_plugins` and :func:`add_check` add each command's arguments (see
:mod:`accel.cli`).

An accelerator whose probe says it is present but cannot create VMs here
(``Availability.creates_vms`` False, :meth:`Availability.present`) is shown as
``present`` by ``accel info`` and as a WARN by ``accel check``; it never counts as usable.
One whose probe says it is *absent* because this host is not the kind it needs
(``Availability.applicable`` False, :meth:`Availability.absent`: the Xen stub on a host not
running under Xen) is an ``N/A`` line in ``accel check``, neither PASS nor FAIL and not
counted in the exit status; a present-but-broken one (``/dev/kvm`` permission denied, or
missing: the kvm plugin treats a Linux host without ``/dev/kvm`` as fixable) stays FAIL.
``accel info`` folds an unavailable accelerator's declared-unsupported features into one
line (in full when the accelerator is named on the command line, and always in ``--json``).

Example::

    $ accel info
    $ accel check && echo "hardware acceleration works"
    $ python -m accel plugins --json
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..accelerator import Accelerator, Availability
from ..capabilities import Capability, CapabilityAnswer, CapabilitySet, ClockFlags, Support
from ..errors import AccelError
from ..plugin import AcceleratorInfo
from ..registry import Registry
from . import Context, table

__all__ = [
    "CAPABILITY_CHECKS",
    "HARDWARE_CHECK",
    "KEY_CAPABILITIES",
    "Check",
    "Survey",
    "add_check",
    "add_info",
    "add_plugins",
    "run_checks",
    "survey",
]

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


# --------------------------------------------------------------------------- survey


@dataclass(slots=True)
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

    @property
    def usable(self) -> bool:
        """Available and able to create VMs here."""
        return self.availability.available and self.availability.creates_vms

    @property
    def status(self) -> str:
        """``available``, ``present`` (probed, but it cannot create VMs) or ``unavailable``."""
        if not self.availability.available:
            return "unavailable"
        return "available" if self.availability.creates_vms else "present"

    def to_json(self) -> dict[str, Any]:
        av = self.availability
        return {
            "name": self.info.name,
            "summary": self.info.summary,
            "plugin": self.info.plugin,
            "priority": self.info.priority,
            "hardware": self.info.hardware,
            "available": av.available,
            "creates_vms": av.creates_vms,
            "applicable": av.applicable,
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
        with contextlib.suppress(Exception):  # closing must not hide the answer
            acc.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AccelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- formatting


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
                r.status,
                "hardware" if r.info.hardware else "software",
                str(r.info.priority),
                r.info.summary,
            ]
        )
    if results:
        for line in table(rows):
            ctx.print(line)
    for r in results:
        ctx.print()
        av = r.availability
        ctx.print(f"{r.name}: {r.status}" + (f": {av.reason}" if av.reason else ""))
        if av.available and not av.creates_vms:
            ctx.print("  cannot create VMs here")
        if av.hint:
            ctx.print(f"  hint: {av.hint}")
        if r.capabilities is not None:
            caps = r.capabilities
            for line in table(
                [[c.value, _answer_text(c, caps[c]), caps[c].source] for c in KEY_CAPABILITIES],
                indent="  ",
            ):
                ctx.print(line)
        elif r.capabilities_error:
            ctx.print(f"  capabilities could not be read: {r.capabilities_error}")
        if r.info.unsupported and not av.available and r.name not in (args.names or ()):
            names = ", ".join(r.info.unsupported_features)
            ctx.print(f"  declared unsupported: {names} (reasons: accel info {r.name})")
        elif r.info.unsupported:
            ctx.print("  declared unsupported:")
            for line in table([list(item) for item in r.info.unsupported], indent="    "):
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
    for line in table(rows):
        ctx.print(line)
    if errors:
        ctx.print()
        ctx.print("load errors:")
        for err in errors:
            ctx.print(f"  {err.plugin}: {err.message}")
        ctx.print(f"  hint: {errors[0].hint}")
    return 0


# --------------------------------------------------------------------------- check


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``accel check``: ``subject: title : STATUS (detail; hint: ...)``."""

    subject: str
    title: str
    status: str  # "PASS", "WARN", "FAIL" or "N/A" (an accelerator absent by design)
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
        if not av.available and not av.applicable:
            checks.append(Check(r.name, f"{kind} accelerator usable", "N/A", av.reason))
            continue
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
        if not av.creates_vms:
            checks.append(
                Check(
                    r.name,
                    f"{kind} accelerator usable",
                    "WARN",
                    f"present, but cannot create VMs here: {av.reason}",
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
    usable_hw = [r.name for r in results if r.info.hardware and r.usable]
    if usable_hw:
        checks.append(Check("accel", HARDWARE_CHECK, "PASS", ", ".join(usable_hw)))
    else:
        hw_all = [r.name for r in results if r.info.hardware]
        hw = [r.name for r in results if r.info.hardware and r.availability.applicable]
        checks.append(
            Check(
                "accel",
                HARDWARE_CHECK,
                "FAIL",
                f"none of {', '.join(hw)} is usable"
                if hw
                else (
                    f"none of {', '.join(hw_all)} applies to this host"
                    if hw_all
                    else "no hardware accelerator plugin"
                ),
                "enable hardware virtualization (VT-x / AMD-V) in the firmware and give your user "
                "access to it, or install a plugin for one; the lines above say what each lacks",
            )
        )
    return checks


def _cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    reg = ctx.registry
    results = survey(reg)
    checks = run_checks(results, reg.load_errors)
    usable_hw = [r.name for r in results if r.info.hardware and r.usable]
    usable_sw = [r.name for r in results if not r.info.hardware and r.usable]
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


# --------------------------------------------------------------------------- arguments


def add_info(parser: argparse.ArgumentParser) -> None:
    """``accel info [NAME...] [--json]``."""
    parser.description = (
        "Probe every registered accelerator and show whether it is usable here "
        "(and if not, why and what to do) and its key capabilities. --json shows everything: "
        "each capability as yes/no/unknown with its value and source."
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these accelerators")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_cmd_info)


def add_plugins(parser: argparse.ArgumentParser) -> None:
    """``accel plugins [--json]``."""
    parser.description = (
        "List every plugin: registered ones with their hooks, and those that "
        "failed to load with the error."
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_cmd_plugins)


def add_check(parser: argparse.ArgumentParser) -> None:
    """``accel check [--json]``."""
    parser.description = (
        "Check each accelerator and its key capabilities: PASS, WARN, FAIL, or N/A for "
        "an accelerator this host is not the kind for (Xen when not under Xen). Exit status "
        "0 when a hardware accelerator is usable, 1 otherwise, 2 on usage errors."
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=_cmd_check)
