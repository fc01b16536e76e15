"""``accel machine list`` and ``accel machine show`` (:func:`add_machine`).

``accel machine list`` lists machine types (``--cpus``: CPU models; ``--devices``: device
types). ``accel machine show`` prints the device tree a machine would get on an
accelerator and why each clock device is or is not there.
"""

from __future__ import annotations

import argparse

from ..machine.cpu import cpu_models
from ..machine.device import DeviceRegistry
from ..machine.machine import Machine
from ..machine.types import machine_types
from . import Context
from .run import add_machine_options

__all__ = ["add_machine"]


def add_machine(parser: argparse.ArgumentParser) -> None:
    """``accel machine list [--cpus|--devices] [--json]`` and ``accel machine show``."""
    parser.description = "List machine types, or show the device tree of a machine."
    sub = parser.add_subparsers(
        title="machine commands", metavar="COMMAND", required=True, parser_class=type(parser)
    )
    lp = sub.add_parser(
        "list",
        help="machine types (and CPU models, device types)",
        description="List machine types with their aliases, or CPU models, or device types.",
    )
    lp.add_argument("--cpus", action="store_true", help="list CPU models instead")
    lp.add_argument("--devices", action="store_true", help="list device types instead")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=_cmd_list)
    sp = sub.add_parser(
        "show",
        help="the device tree a machine gets, and why each clock device is or is not there",
        description="Show the device tree a machine gets on an accelerator, and why each "
        "clock device is or is not there.",
    )
    add_machine_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(handler=_cmd_show)


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:

    if args.cpus:
        models = cpu_models()
        if args.json:
            ctx.print_json([m.to_json() for m in models])
        else:
            for m in models:
                extra = " (hardware accelerators only)" if m.requires_hardware else ""
                ctx.print(f"{m.name:<16} {m.description}{extra}")
        return 0
    if args.devices:
        types = DeviceRegistry(ctx.registry).types()
        if args.json:
            ctx.print_json([
                {"name": t.name, "summary": t.summary, "plugin": t.plugin,
                 "user_creatable": t.user_creatable,
                 "not_creatable_reason": t.not_creatable_reason or None,
                 "properties": [{"name": p.name, "type": p.type.__name__,
                                 "default": p.default, "doc": p.doc} for p in t.properties]}
                for t in types.values()
            ])  # fmt: skip
        else:
            for t in types.values():
                props = ",".join(
                    f"{p.name}={p.default:#x}" if p.type is int and isinstance(p.default, int)
                    else f"{p.name}={p.default}" for p in t.properties
                )  # fmt: skip
                src = f" [{t.plugin}]" if t.plugin else ""
                user = "" if t.user_creatable else " (machine only)"
                ctx.print(f"{t.name:<16} {t.summary}{src}{user}" + (f"  {props}" if props else ""))
        return 0
    mts = machine_types()
    if args.json:
        ctx.print_json([m.to_json() for m in mts])
        return 0
    for mt in mts:
        for alias in mt.aliases:
            ctx.print(f"{alias:<20} {mt.description} (alias of {mt.name})")
        tags = " (default)" if mt.is_default else ""
        tags += " (deprecated)" if mt.deprecated else ""
        ctx.print(f"{mt.name:<20} {mt.description}{tags}")
    return 0


def _cmd_show(args: argparse.Namespace, ctx: Context) -> int:

    spec = args.machine or "pc"
    acc = ctx.registry.open(args.accel)
    try:
        plan = Machine.describe(acc, spec, args.cpu, args.device, registry=ctx.registry)
    finally:
        acc.close()
    if args.json:
        ctx.print_json(plan.to_json())
        return 0
    mt = plan.machine_type
    ctx.print(f"machine: {mt.name}" + (f" ({spec})" if spec != mt.name else ""))
    ctx.print(f"accelerator: {plan.accelerator}")
    ctx.print(f"cpu: {plan.cpu}")
    if plan.compat:
        ctx.print("compat: " + ", ".join(f"{k}={v}" for k, v in sorted(plan.compat.items())))
    ctx.print("devices:")
    for d in plan.devices:
        props = ",".join(f"{k}={v}" for k, v in d.properties)
        ctx.print(f"  {d.name}" + (f" ({props})" if props else "") + f"  [{d.origin}]")
    ctx.print("why:")
    for d in plan.decisions:
        ctx.print(f"  {d.line()}")
    return 0
