"""The argparse side of ``accel run`` and ``accel machine list|show``, and the commands
that ``accel run`` with a plain command line never needs (see :mod:`accel.machine.cli`)."""

from __future__ import annotations

import sys

from . import cli
from .cli import MACHINE_OPTIONS, RUN_OPTIONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..cli import Context

__all__ = ["add_commands"]


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``run`` and ``machine list|show``."""
    from .._cliparser import add_options

    p = subparsers.add_parser(
        "run",
        help="run a flat binary image to its end (like qemu -bios IMAGE)",
        description="Run IMAGE placed like QEMU's -bios (ending at 4 GiB and at 1 MiB, reset "
        "vector in its last 16 bytes). Adds isa-debugcon on port 0xE9 (output to stdout) and "
        "isa-debug-exit on 0xF4/4 unless --no-debug-devices. Exit status: (value << 1) | 1 "
        "for a write of value to isa-debug-exit; 0 when the guest halts with interrupts "
        "disabled or shuts down; 124 on --timeout; 125 when the accelerator cannot run the "
        "guest; 1 for errors. The interrupt controller stays out of the accelerator unless "
        "--machine TYPE,kernel-irqchip=on (so that HLT ends the run). --save FILE writes a "
        "snapshot whenever the run stops (guest exit, halt, shutdown, --stop-after, "
        "--timeout, Ctrl-C: status 130); --restore FILE resumes one instead of IMAGE.",
    )
    add_options(p, RUN_OPTIONS)
    p.set_defaults(handler=cli._cmd_run)

    mp = subparsers.add_parser(
        "machine",
        help="machine types and the devices a machine gets",
        description="List machine types, or show the device tree of a machine.",
    )
    msub = mp.add_subparsers(title="machine commands", metavar="COMMAND",
                             parser_class=type(mp))  # fmt: skip
    lp = msub.add_parser("list", help="machine types (and CPU models, device types)")
    lp.add_argument("--cpus", action="store_true", help="list CPU models instead")
    lp.add_argument("--devices", action="store_true", help="list device types instead")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=_cmd_list)
    sp = msub.add_parser(
        "show",
        help="the device tree a machine gets, and why each clock device is or is not there",
    )
    add_options(sp, MACHINE_OPTIONS)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(handler=_cmd_show)
    mp.set_defaults(handler=lambda args, ctx: _usage(mp))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_usage(sys.stderr)
    sys.stderr.write("accel: error: a machine command is required (list or show)\n")
    return 2


def _cmd_list(args: argparse.Namespace, ctx: Context) -> int:
    from .cpu import cpu_models
    from .device import DeviceRegistry
    from .types import machine_types

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
    from .machine import Machine

    acc = ctx.registry.open(args.accel)
    try:
        plan = Machine.describe(acc, args.machine, args.cpu, args.device, registry=ctx.registry)
    finally:
        acc.close()
    if args.json:
        ctx.print_json(plan.to_json())
        return 0
    mt = plan.machine_type
    ctx.print(f"machine: {mt.name}" + (f" ({args.machine})" if args.machine != mt.name else ""))
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


def cmd_run_restore(args: argparse.Namespace, ctx: Context) -> int:
    """``accel run --restore FILE``: the machine comes from the snapshot."""
    from ..snapshot.format import _Input, read_header
    from .cli import RunOptions, restore_image

    pairs = (
        ("IMAGE", args.image), ("--cpu", args.cpu), ("--device", args.device),
        ("--load-addr", args.load_addr), ("--entry", args.entry),
        ("--no-debug-devices", args.no_debug_devices), ("--machine", args.machine != "pc"),
    )  # fmt: skip
    given = [name for name, value in pairs if value]
    if given:
        ctx.err.write(
            f"accel: error: --restore takes the machine and image from the snapshot; "
            f"drop {', '.join(given)}\n"
        )
        return 1
    try:
        stream = open(args.restore, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        ctx.err.write(f"accel: error: cannot read snapshot {args.restore!r}: {exc.strerror}\n")
        return 1
    with stream:
        try:
            header = read_header(_Input(stream))
            stream.seek(0)
        except OSError as exc:
            ctx.err.write(f"accel: error: cannot read snapshot {args.restore!r}: {exc.strerror}\n")
            return 1
        spec = args.accel
        if spec is None:  # the snapshot's accelerator, then the others by priority
            known = list(ctx.registry.accelerators())
            names = [n for n in dict.fromkeys([header.accelerator, *known]) if n in known]
            spec = ":".join(names) or None
        options = RunOptions(timeout=args.timeout, stop_after=args.stop_after, save=args.save)
        console = cli._console(ctx)
        acc = cli._open_with_fallback_notes(ctx, spec)
        try:
            result = restore_image(
                acc, stream, options, mode=args.restore_mode, registry=ctx.registry,
                console=console,
            )  # fmt: skip
        finally:
            acc.close()
    ctx.err.write(f"accel: {acc.name}: {result.message}\n")
    return result.status & 0xFF
