"""``accel run``: its options (:func:`add_run`) and its handler, which calls the runner
(:mod:`accel.runner`).

``accel run IMAGE`` runs a flat binary: debug-console output streams to stdout, one line
on stderr says how the run ended (``accel: ACCEL: MESSAGE``), and the exit status is the
run's (QEMU's isa-debug-exit convention; see :mod:`accel.runner`). ``--restore
FILE`` resumes a machine snapshot instead of IMAGE. Option values and combinations that
cannot work are usage errors (status 2); errors of the image, machine or snapshot are
:class:`~accel.errors.AccelError` (status 1).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import stat
import sys
from collections.abc import Callable

from ..accelerator import Accelerator
from ..errors import AccelError, SnapshotError
from ..files import check_target
from ..machine.multiboot import parse_size
from ..runner import (
    KernelOptions,
    RunOptions,
    parse_duration,
    read_image,
    restore_image,
    run_image,
    run_kernel,
)
from . import Context, writing

__all__ = ["add_machine_options", "add_run", "address", "duration", "seconds"]

#: The longest --timeout or --stop-after accepted: a day (longer is surely a mistake, and
#: beyond what a timer can wait for on some platforms).
MAX_SECONDS = 24 * 3600.0


def address(text: str) -> int:
    """An ``argparse`` type: an integer, decimal or ``0x`` hex (``0b``, ``0o`` too)."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer (decimal or 0x hex)"
        ) from None


def seconds(text: str) -> float:
    """An ``argparse`` type: a number of seconds, more than 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of seconds above 0 and at most {MAX_SECONDS:g}"
        )
    return value


def duration(text: str) -> float:
    """An ``argparse`` type: :func:`~accel.runner.parse_duration`, at most a day."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"duration {text!r}: at most a day ({MAX_SECONDS:g} s)")
    return value


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose the machine (``run`` and ``machine show``); ``--machine``
    defaults to None, meaning ``pc``."""
    parser.add_argument(
        "--accel",
        metavar="LIST",
        help="accelerators to try in order, e.g. kvm:tcg (default: best available)",
    )
    parser.add_argument(
        "--machine",
        "-M",
        metavar="TYPE[,OPT=VAL]",
        help="machine type (default: pc); option kernel-irqchip=on|split|off",
    )
    parser.add_argument(
        "--cpu",
        metavar="SPEC",
        help="CPU model and flags, e.g. host,-kvmclock (default: the type's)",
    )
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a device (repeatable): isa-debug-exit,iobase=0xf4",
    )


def add_run(parser: argparse.ArgumentParser) -> None:
    """``accel run [options] IMAGE`` and ``accel run --restore FILE [options]``."""
    parser.description = (
        "Run IMAGE placed like QEMU's -bios (ending at 4 GiB and at 1 MiB, reset "
        "vector in its last 16 bytes). Adds isa-debugcon on port 0xE9 (output to stdout) and "
        "isa-debug-exit on 0xF4/4 unless --no-debug-devices. Exit status: (value << 1) | 1 "
        "for a write of value to isa-debug-exit; 0 when the guest halts with interrupts "
        "disabled or shuts down; 124 on --timeout; 125 when the accelerator cannot run the "
        "guest; 1 for errors; 2 for usage errors. The interrupt controller stays out of the "
        "accelerator unless --machine TYPE,kernel-irqchip=on (so that HLT ends the run). "
        "--save FILE writes a snapshot whenever the run stops (guest exit, halt, shutdown, "
        "--stop-after, --timeout, Ctrl-C: status 130, SIGTERM: 143, SIGHUP: 129); "
        "--restore FILE resumes one instead of IMAGE."
    )
    parser.add_argument(
        "image", metavar="IMAGE", nargs="?", help="flat binary (not with --restore)"
    )
    add_machine_options(parser)
    parser.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="stop the guest after this many seconds (exit status 124)",
    )
    parser.add_argument(
        "--stop-after",
        type=duration,
        metavar="DURATION",
        help="stop (pause) the guest after DURATION, e.g. 500ms or 2s (exit status 0); "
        "with --save, snapshot it",
    )
    parser.add_argument(
        "--save",
        metavar="FILE",
        help="write a snapshot to FILE (atomically) whenever the run stops",
    )
    parser.add_argument(
        "--restore",
        metavar="FILE",
        help="resume the machine snapshot in FILE (machine, CPU, devices and image come "
        "from it; --accel default: the snapshot's accelerator, then the others)",
    )
    parser.add_argument(
        "--restore-mode",
        choices=("same-host", "catch-up"),
        help="with --restore: same-host: the guest clock continues from the saved value "
        "(default); catch-up: it advances by the wall time since the save",
    )
    parser.add_argument(
        "--load-addr",
        type=address,
        metavar="ADDR",
        help="copy the image into RAM here instead of the -bios placement",
    )
    parser.add_argument(
        "--entry",
        type=address,
        metavar="ADDR",
        help="start in real mode at this address (default: --load-addr)",
    )
    parser.add_argument(
        "--no-debug-devices", action="store_true", help="do not add isa-debugcon and isa-debug-exit"
    )
    add_kernel_options(parser)
    # The handler reports the combinations argparse cannot express as this parser's errors.
    parser.set_defaults(handler=functools.partial(_cmd_run, parser))


def memory_size(text: str) -> int:
    """An ``argparse`` type: ``-m SIZE`` as QEMU reads it (:func:`parse_size`)."""
    try:
        return parse_size(text)
    except AccelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_kernel_options(parser: argparse.ArgumentParser) -> None:
    """``--kernel FILE [--append CMDLINE] [--initrd FILES] [-m SIZE] [--smp N] [--serial
    BACKEND]``, each also spelled as QEMU's (``-kernel``, ``-append``, ``-initrd``, ``-m``,
    ``-smp``, ``-serial``)."""
    group = parser.add_argument_group(
        "kernel boot (QEMU's -kernel)",
        "Boot a Multiboot kernel (kvm-unit-tests' *.flat) directly, without firmware: COM1 "
        "(0x3f8, IRQ 4) and fw_cfg (0x510) are added, the machine type's kernel-irqchip is "
        "kept (on for pc and q35), and the run ends at isa-debug-exit (0xf4/4), shutdown "
        "or --timeout. --stop-after and --save work as for IMAGE (every vCPU, COM1 and "
        "fw_cfg are saved; --restore does not read the kernel again).",
    )
    group.add_argument("--kernel", "-kernel", metavar="FILE", help="Multiboot kernel to boot")
    group.add_argument(
        "--append", "-append", metavar="CMDLINE", default="", help="kernel command line"
    )
    group.add_argument(
        "--initrd", "-initrd", metavar="FILE[,FILE...]",
        help="Multiboot modules (a module's arguments after a space; ',,' for a comma)",
    )  # fmt: skip
    group.add_argument(
        "--memory", "-m", dest="memory", type=memory_size, metavar="SIZE",
        help="guest RAM, QEMU's -m: 256 (MiB), 512M, 4G (default with --kernel: 128M)",
    )  # fmt: skip
    group.add_argument(
        "--smp", "-smp", type=int, metavar="N",
        help="number of vCPUs, at most the accelerator's MAX_VCPUS (default 1)",
    )  # fmt: skip
    group.add_argument(
        "--serial", "-serial", metavar="BACKEND",
        help="COM1's backend: stdio (default), file:PATH, null or none",
    )  # fmt: skip


def _cmd_run_kernel(parser: argparse.ArgumentParser, args: argparse.Namespace, ctx: Context) -> int:
    """``accel run --kernel FILE``: boot a Multiboot kernel (:func:`run_kernel`)."""
    pairs = (
        ("IMAGE", args.image), ("--restore", args.restore), ("--restore-mode", args.restore_mode),
        ("--load-addr", args.load_addr), ("--entry", args.entry),
    )  # fmt: skip
    given = [name for name, value in pairs if value is not None]
    if given:
        parser.error("--kernel boots the kernel file; drop " + ", ".join(given))
    _check_save(args.save, args.kernel)
    kernel = KernelOptions(
        kernel=args.kernel, append=args.append, initrd=args.initrd,
        ram_size=args.memory if args.memory is not None else 128 << 20,
        smp=args.smp if args.smp is not None else 1, serial=args.serial or "stdio",
    )  # fmt: skip
    options = RunOptions(
        machine=args.machine or "pc", cpu=args.cpu, devices=args.device, timeout=args.timeout,
        debug_devices=not args.no_debug_devices, stop_after=args.stop_after, save=args.save,
    )  # fmt: skip
    console = _console(ctx)
    acc = _open_with_fallback_notes(ctx, args.accel)
    try:
        result = run_kernel(
            acc, kernel, options, registry=ctx.registry, console=console,
            serial_input=_stdin_for_serial(),
        )  # fmt: skip
    finally:
        acc.close()
    ctx.err.write(f"accel: {acc.name}: {result.message}\n")
    return result.status & 0xFF


def _stdin_for_serial() -> int | None:
    """Standard input's descriptor when it is a terminal or a pipe (COM1 reads it for
    ``-serial stdio``, as QEMU's does), else None."""
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return None
    return fd if os.isatty(fd) or stat.S_ISFIFO(mode) else None


def _cmd_run(parser: argparse.ArgumentParser, args: argparse.Namespace, ctx: Context) -> int:
    if args.kernel is not None:
        return _cmd_run_kernel(parser, args, ctx)
    kernel_only = (
        ("--append", args.append or None), ("--initrd", args.initrd), ("-m", args.memory),
        ("--smp", args.smp), ("--serial", args.serial),
    )  # fmt: skip
    stray = [name for name, value in kernel_only if value is not None]
    if stray:
        parser.error(", ".join(stray) + ": only with --kernel")
    if args.restore is not None:
        return _cmd_run_restore(parser, args, ctx)
    if args.image is None:
        parser.error("the following arguments are required: IMAGE (or --restore FILE)")
    if args.restore_mode is not None:
        parser.error("--restore-mode is for --restore")
    _check_save(args.save, args.image)
    options = RunOptions(
        machine=args.machine or "pc", cpu=args.cpu, devices=args.device, timeout=args.timeout,
        load_addr=args.load_addr, entry=args.entry, debug_devices=not args.no_debug_devices,
        stop_after=args.stop_after, save=args.save,
    )  # fmt: skip
    image = read_image(args.image, options)
    console = _console(ctx)
    acc = _open_with_fallback_notes(ctx, args.accel)
    try:
        result = run_image(acc, image, options, registry=ctx.registry, console=console)
    finally:
        acc.close()
    ctx.err.write(f"accel: {acc.name}: {' '.join(result.message.split())}\n")  # one line
    return result.status & 0xFF


def _cmd_run_restore(
    parser: argparse.ArgumentParser, args: argparse.Namespace, ctx: Context
) -> int:
    """``accel run --restore FILE``: the machine comes from the snapshot."""
    pairs = (
        ("IMAGE", args.image), ("--cpu", args.cpu), ("--device", args.device),
        ("--load-addr", args.load_addr), ("--entry", args.entry),
        ("--no-debug-devices", args.no_debug_devices), ("--machine", args.machine),
    )  # fmt: skip
    given = [name for name, value in pairs if value]
    if given:
        parser.error(
            "--restore takes the machine and image from the snapshot; drop " + ", ".join(given)
        )
    _check_save(args.save, None)
    from ..snapshot import naming, open_snapshot, read_stream_header

    with open_snapshot(args.restore) as stream:  # a stream is checked and spooled
        with naming(args.restore):
            header = read_stream_header(stream)
            stream.seek(0)
        spec = args.accel
        if spec is None:  # the snapshot's accelerator, then the others by priority
            known = list(ctx.registry.accelerators())
            names = [n for n in dict.fromkeys([header.accelerator, *known]) if n in known]
            spec = ":".join(names) or None
        options = RunOptions(timeout=args.timeout, stop_after=args.stop_after, save=args.save)
        console = _console(ctx)
        acc = _open_with_fallback_notes(ctx, spec)
        notes: list[str] = []
        try:
            result = restore_image(
                acc, stream, options, mode=args.restore_mode, registry=ctx.registry,
                console=console, name=args.restore, warnings=notes,
                serial_input=_stdin_for_serial(),
            )  # fmt: skip
        finally:
            acc.close()
    for note in notes:  # what the snapshot lacked: one line each
        ctx.err.write(f"accel: {args.restore}: {note}\n")
    ctx.err.write(f"accel: {acc.name}: {' '.join(result.message.split())}\n")  # one line
    return result.status & 0xFF


def _check_save(save: str | None, image: str | None) -> None:
    """Refuse ``--save FILE`` before anything runs: FILE must be a regular file or a new
    one in a writable directory (written again when the run stops), and not the image."""
    if save is None:
        return
    target, _ = check_target(save)
    if image is not None and os.path.realpath(image) == target:
        raise SnapshotError(
            f"--save {save!r} is the image being run: the snapshot would replace it",
            hint="give the snapshot another file name",
            path=save,
        )


def _console(ctx: Context) -> Callable[[bytes], object]:
    """Where debug-console bytes go: stdout's file descriptor, or the context's stream."""
    out = ctx.out  # an AccelError when standard output is closed
    if ctx.out_stream is not None:

        def write_stream(data: bytes) -> None:
            with writing():
                out.write(data.decode("latin-1"))

        return write_stream
    fd = sys.stdout.fileno()
    sys.stdout.flush()

    def write_fd(data: bytes) -> None:
        with writing():
            os.write(fd, data)

    return write_fd


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
