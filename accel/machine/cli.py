"""``accel run``, ``accel machine list`` and ``accel machine show`` (a command module).

``accel run IMAGE`` runs a flat binary (see :mod:`accel.machine.runner`): debug-console
output streams to stdout, one line on stderr says how the run ended, and the exit status
follows QEMU's isa-debug-exit convention. ``accel machine list`` lists machine types
(``--cpus``: CPU models; ``--devices``: device types). ``accel machine show`` prints the
device tree a machine would get on an accelerator and why each clock device is or is not
there.
"""

from __future__ import annotations

import os
import sys

from ..cli import Option, add_options, parse_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from ..accelerator import Accelerator
    from ..cli import Context

__all__ = ["add_commands", "main", "parse_fast"]


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer (decimal or 0x hex)"
        ) from None


def _duration(text: str) -> float:
    from .runner import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        import argparse

        raise argparse.ArgumentTypeError(str(exc)) from None


#: The options of ``run`` and ``machine show`` that choose the machine.
MACHINE_OPTIONS: tuple[Option, ...] = (
    Option(
        ("--accel",),
        metavar="LIST",
        help="accelerators to try in order, e.g. kvm:tcg (default: best available)",
    ),
    Option(
        ("--machine", "-M"),
        default="pc",
        metavar="TYPE[,OPT=VAL]",
        help="machine type (default: pc); option kernel-irqchip=on|split|off",
    ),
    Option(
        ("--cpu",),
        metavar="SPEC",
        help="CPU model and flags, e.g. host,-kvmclock (default: the type's)",
    ),
    Option(
        ("--device",),
        action="append",
        default=(),
        metavar="SPEC",
        help="add a device (repeatable): isa-debug-exit,iobase=0xf4",
    ),
)

#: The arguments of ``accel run``: argparse's (``--help``, errors) and :func:`parse_fast`'s.
RUN_OPTIONS: tuple[Option, ...] = (
    Option(("image",), metavar="IMAGE", nargs="?", help="flat binary (not with --restore)"),
    *MACHINE_OPTIONS,
    Option(
        ("--timeout",),
        type=float,
        metavar="SECONDS",
        help="stop the guest after this many seconds (exit status 124)",
    ),
    Option(
        ("--stop-after",),
        type=_duration,
        metavar="DURATION",
        help="stop (pause) the guest after DURATION, e.g. 500ms or 2s (exit status 0); "
        "with --save, snapshot it",
    ),
    Option(
        ("--save",),
        metavar="FILE",
        help="write a snapshot to FILE (atomically) whenever the run stops",
    ),
    Option(
        ("--restore",),
        metavar="FILE",
        help="resume the machine snapshot in FILE (machine, CPU, devices and image come "
        "from it; --accel default: the snapshot's accelerator, then the others)",
    ),
    Option(
        ("--restore-mode",),
        choices=("same-host", "catch-up"),
        default="same-host",
        help="same-host: the guest clock continues from the saved value (default); "
        "catch-up: it advances by the wall time since the save",
    ),
    Option(
        ("--load-addr",),
        type=_int,
        metavar="ADDR",
        help="copy the image into RAM here instead of the -bios placement",
    ),
    Option(
        ("--entry",),
        type=_int,
        metavar="ADDR",
        help="start in real mode at this address (default: --load-addr)",
    ),
    Option(
        ("--no-debug-devices",),
        action="store_true",
        help="do not add isa-debugcon and isa-debug-exit",
    ),
)


def parse_fast(command: str, args: list[str]) -> argparse.Namespace | None:
    """``accel COMMAND ARGS`` parsed without argparse, for ``run`` (see
    :func:`accel.cli.parse_options`); None: argparse parses it."""
    if command != "run":
        return None
    return parse_options(RUN_OPTIONS, args, handler=_cmd_run)


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
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
    p.set_defaults(handler=_cmd_run)

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


def _cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from .runner import RunOptions, run_image

    if args.restore is not None:
        return _cmd_run_restore(args, ctx)
    if args.image is None:
        ctx.err.write("accel: error: accel run needs IMAGE (or --restore FILE)\n")
        return 1
    try:
        with open(args.image, "rb") as f:
            image = f.read()
    except OSError as exc:
        ctx.err.write(f"accel: error: cannot read image {args.image!r}: {exc.strerror}\n")
        return 1
    options = RunOptions(
        machine=args.machine, cpu=args.cpu, devices=args.device, timeout=args.timeout,
        load_addr=args.load_addr, entry=args.entry, debug_devices=not args.no_debug_devices,
        stop_after=args.stop_after, save=args.save,
    )  # fmt: skip
    console = _console(ctx)
    acc = _open_with_fallback_notes(ctx, args.accel)
    try:
        result = run_image(acc, image, options, registry=ctx.registry, console=console)
    finally:
        acc.close()
    ctx.err.write(f"accel: {acc.name}: {result.message}\n")
    return result.status & 0xFF


def _cmd_run_restore(args: argparse.Namespace, ctx: Context) -> int:
    """``accel run --restore FILE``: the machine comes from the snapshot."""
    from ..snapshot.format import _Input, read_header
    from .runner import RunOptions, restore_image

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
        console = _console(ctx)
        acc = _open_with_fallback_notes(ctx, spec)
        try:
            result = restore_image(
                acc, stream, options, mode=args.restore_mode, registry=ctx.registry,
                console=console,
            )  # fmt: skip
        finally:
            acc.close()
    ctx.err.write(f"accel: {acc.name}: {result.message}\n")
    return result.status & 0xFF


def _console(ctx: Context) -> Callable[[bytes], object]:
    """Where debug-console bytes go: stdout's file descriptor, or the context's stream."""
    out = ctx.out_stream
    if out is None:
        fd = sys.stdout.fileno()
        sys.stdout.flush()

        def console(data: bytes) -> None:
            os.write(fd, data)

    else:
        stream = out

        def console(data: bytes) -> None:
            stream.write(data.decode("latin-1"))

    return console


def _open_with_fallback_notes(ctx: Context, spec: str | None) -> Accelerator:
    """``registry.open(spec)``, saying on stderr which candidates were passed over and why
    (like QEMU's "failed to initialize kvm: ...; falling back to tcg")."""
    skipped: list[tuple[str, str]] = []
    acc = ctx.registry.open(
        spec, on_unusable=(lambda name, reason: skipped.append((name, reason))) if spec else None
    )
    for name, reason in skipped:
        ctx.err.write(f"accel: {name} is not usable ({reason}); falling back to {acc.name}\n")
    return acc


def main(argv: list[str] | None = None) -> int:
    """``python -m accel.machine.cli``: the ``accel`` command with this module's commands."""
    from .. import cli

    if __name__ not in cli.COMMAND_MODULES and "accel.machine.cli" not in cli.COMMAND_MODULES:
        cli.COMMAND_MODULES = (*cli.COMMAND_MODULES, "accel.machine.cli")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
