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

from ..cli import Option, parse_options

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
    """Add ``run`` and ``machine list|show``."""
    from ._climachine import add_commands

    add_commands(subparsers)


def _cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from .runner import RunOptions, run_image

    if args.restore is not None:
        from ._climachine import cmd_run_restore

        return cmd_run_restore(args, ctx)
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
