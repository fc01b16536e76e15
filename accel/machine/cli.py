"""``accel run``, ``accel machine list`` and ``accel machine show`` (a command module),
and the runner behind ``accel run`` (:mod:`accel.machine.runner` re-exports it).

``accel run IMAGE`` runs a flat binary: debug-console output streams to stdout, one line
on stderr says how the run ended, and the exit status follows QEMU's isa-debug-exit
convention. ``accel machine list`` lists machine types (``--cpus``: CPU models;
``--devices``: device types). ``accel machine show`` prints the device tree a machine
would get on an accelerator and why each clock device is or is not there.

Placement (default) is QEMU's ``-bios``: the image is mapped so that it ends at the top
of the 4 GiB space, and its last 128 KiB (or all of it, if smaller) also end at the top
of the first megabyte; the vCPU starts in the architectural reset state (CS base
0xFFFF0000, IP 0xFFF0), so the reset vector is the image's 16th byte from the end.
``load_addr``/``entry`` instead copy the image into RAM at ``load_addr`` and start in
real mode at ``entry`` (default ``load_addr``).

Exit statuses: isa-debug-exit's ``(value << 1) | 1`` (low 8 bits, as the process exit
status); 0 when the guest halts with interrupts disabled or shuts down; 124 when
``timeout`` passes; 125 when the accelerator cannot run the guest (internal error).
Configuration errors raise :class:`~accel.errors.AccelError` (the command prints them and
exits 1).

Stopping and snapshots: ``stop_after`` ends the run after that many seconds with status
0, ``timeout`` with 124, SIGINT (in the main thread) with 130 — each through
:meth:`Machine.stop`, so the machine is paused at an instruction boundary. With ``save``
the machine is paused and written atomically to that path whenever the run stops,
however it stopped. :func:`restore_image` resumes such a snapshot; one taken after the
guest ended its run (exit device, halt, shutdown) reports that same end again.

The machine layer (:mod:`accel.machine.machine`) is imported when a run starts, not with
this module, so that ``--help`` and ``machine list`` do not load it.
"""

from __future__ import annotations

import os
import sys

from .._records import record
from ..cli import Option, parse_options
from ..errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import signal as _signal
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from ..accelerator import Accelerator
    from ..cli import Context
    from ..registry import Registry
    from ._snapshots import restore_image
    from .machine import Machine, RunResult, _Timer
else:
    import _signal

    from .._lazy import exports

    __getattr__, __dir__ = exports(globals(), {"restore_image": "._snapshots"})
    del exports


__all__ = [
    "DEBUG_DEVICES",
    "RunOptions",
    "add_commands",
    "load_image",
    "main",
    "parse_duration",
    "parse_fast",
    "restore_image",
    "run_image",
    "run_machine",
]


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(
            f"{text!r} is not an integer (decimal or 0x hex)"
        ) from None


def _duration(text: str) -> float:
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


# --------------------------------------------------------------------------- the runner

FOUR_GIB = 1 << 32
ONE_MIB = 1 << 20
ISA_BIOS_MAX = 128 << 10
PAGE = 4096
MAX_IMAGE = 16 << 20

#: The devices ``accel run`` adds unless told not to.
DEBUG_DEVICES: tuple[str, ...] = ("isa-debugcon,iobase=0xe9", "isa-debug-exit,iobase=0xf4,iosize=4")


@record
class RunOptions:
    machine: str = "pc"
    cpu: str | None = None
    devices: Sequence[str] = ()
    timeout: float | None = None
    load_addr: int | None = None
    entry: int | None = None
    debug_devices: bool = True
    ram_size: int = 16 << 20
    stop_after: float | None = None  # seconds: stop, pause (and save), status 0
    save: str | None = None  # write a snapshot here whenever the run stops


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``"500ms"``, ``"2s"``, ``"1.5"`` (seconds), ``"1m"`` -> seconds (a float > 0);
    ValueError otherwise."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?", text.strip())
    value = float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0
    if value <= 0:
        raise ValueError(f"duration {text!r}: give a positive number with ms, s or m, e.g. 500ms")
    return value


def _seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def _with_default_irqchip(spec: str) -> str:
    """``accel run`` keeps the interrupt controller out of the accelerator by default.

    With an in-kernel irqchip a HLT does not leave the accelerator, so "the guest halted
    with interrupts disabled" could not end the run; a user who wants the in-kernel
    irqchip (and PIT) passes ``--machine TYPE,kernel-irqchip=on``.
    """
    from .machine import parse_machine_spec

    _type, opts = parse_machine_spec(spec)
    return spec if "kernel-irqchip" in opts else f"{spec},kernel-irqchip=off"


def load_image(machine: Machine, image: bytes, load_addr: int | None, entry: int | None) -> None:
    """Place ``image`` in ``machine`` (initialised) and set the first vCPU's start."""
    vm = machine.vm
    assert vm is not None
    if not image:
        raise ConfigError("the image is empty", hint="give a flat binary", image="")
    if load_addr is None:
        if entry is not None:
            raise ConfigError("--entry needs --load-addr", argument="entry")
        if len(image) > MAX_IMAGE:
            raise ConfigError(
                f"image of {len(image)} bytes is larger than {MAX_IMAGE >> 20} MiB",
                image=len(image),
            )
        size = (len(image) + PAGE - 1) // PAGE * PAGE
        padded = bytes(size - len(image)) + image
        vm.add_memory(FOUR_GIB - size, size)
        vm.write_memory(FOUR_GIB - size, padded)
        isa = padded[-min(size, ISA_BIOS_MAX) :]
        if machine.ram_size < ONE_MIB:
            raise ConfigError("RAM must cover the first megabyte", argument="ram_size")
        vm.write_memory(ONE_MIB - len(isa), isa)
        return
    if load_addr < 0 or load_addr + len(image) > machine.ram_size:
        raise ConfigError(
            f"image at {load_addr:#x}..{load_addr + len(image):#x} does not fit in RAM "
            f"(0..{machine.ram_size:#x})",
            argument="load_addr",
        )
    vm.write_memory(load_addr, image)
    start = load_addr if entry is None else entry
    if not 0 <= start < ONE_MIB:
        raise ConfigError(
            f"entry {start:#x} must lie in the first megabyte (the vCPU starts in real mode)",
            argument="entry",
        )
    from ..accelerator import Registers, real_mode_sregs  # only for --load-addr images

    cpu = machine.vcpus[0]
    cs = (start >> 4) & 0xF000
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=cs, ds=0))
    cpu.set_regs(Registers(rip=start - (cs << 4), rflags=2, rdx=0x600))


def run_image(
    accelerator: Accelerator,
    image: bytes,
    options: RunOptions,
    *,
    registry: Registry | None = None,
    console: Callable[[bytes], Any] | None = None,
    extra_devices: Iterable[str] = (),
) -> RunResult:
    """Build the machine, load ``image``, run it; the machine is closed afterwards."""
    from .device import parse_device_spec
    from .machine import Machine

    user = [*options.devices, *extra_devices]
    if not options.debug_devices:
        devices = user
    elif user:
        user_types = {parse_device_spec(spec)[0] for spec in user}
        devices = [
            *(s for s in DEBUG_DEVICES if parse_device_spec(s)[0] not in user_types),  # user wins
            *user,
        ]
    else:
        devices = list(DEBUG_DEVICES)
    machine = Machine(
        accelerator,
        _with_default_irqchip(options.machine),
        options.cpu,
        devices,
        registry=registry,
        ram_size=options.ram_size,
        console=console,
    )
    with machine:
        load_image(machine, image, options.load_addr, options.entry)
        return run_machine(machine, options)


def run_machine(machine: Machine, options: RunOptions) -> RunResult:
    """Run an initialised (or resumed) machine until it stops; with ``options.save``,
    pause it and write its snapshot (atomically), saying so in the result's message.

    ``stop_after`` and ``timeout`` stop it through :meth:`Machine.stop` (paused at an
    instruction boundary), and so does SIGINT when called from the main thread.
    """
    from .machine import _Timer

    def on_sigint(signum: int, frame: object) -> None:
        machine.stop(130, "interrupted (SIGINT): guest paused", kind="interrupted")

    # SIGINT (Ctrl-C) stops the run at an instruction boundary, status 130, while the
    # machine runs and saves; only the main thread may set a handler, elsewhere SIGINT
    # keeps its meaning.
    previous: _signal._HANDLER = None
    try:
        previous = _signal.signal(_signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        installed = False
    else:
        installed = True
    timers: list[_Timer] = []
    try:
        try:
            if options.timeout is not None:
                t = options.timeout
                msg = f"timeout: the guest was still running after {t:g} s"
                timers.append(_Timer(t, lambda: machine.stop(124, msg, kind="timeout")))
            if options.stop_after is not None:
                after = options.stop_after
                note = f"stopped after {_seconds(after)} (--stop-after)"
                timers.append(_Timer(after, lambda: machine.stop(0, note, kind="stopped")))
            result = machine.run()
        finally:
            for timer in timers:
                timer.cancel()
        if options.save is None:
            return result
        from ._snapshots import save_after_run

        return save_after_run(machine, result, options)
    finally:
        if installed:
            _signal.signal(_signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """``python -m accel.machine.cli``: the ``accel`` command with this module's commands."""
    from .. import cli

    if __name__ not in cli.COMMAND_MODULES and "accel.machine.cli" not in cli.COMMAND_MODULES:
        cli.COMMAND_MODULES = (*cli.COMMAND_MODULES, "accel.machine.cli")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
