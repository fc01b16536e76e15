"""Running a machine to its end as ``accel run`` does, as library code: a flat image,
timeouts, stop signals, and a snapshot written or restored around the run.

It sits above the machine and snapshot layers (it uses both).

:func:`run_image` builds a :class:`~accel.machine.machine.Machine`, places the image with
:func:`load_image` and runs it with :func:`run_machine`; :func:`restore_image` resumes a
machine snapshot instead. :class:`RunOptions` holds the choices (``accel run``'s options).

Placement (default) is QEMU's ``-bios``: the image is mapped so that it ends at the top
of the 4 GiB space, and its last 128 KiB (or all of it, if smaller) also end at the top
of the first megabyte; the vCPU starts in the architectural reset state (CS base
0xFFFF0000, IP 0xFFF0), so the reset vector is the image's 16th byte from the end.
``load_addr``/``entry`` instead copy the image into RAM at ``load_addr`` and start in
real mode at ``entry`` (default ``load_addr``).

Run results carry the exit status: isa-debug-exit's ``(value << 1) | 1``; 0 when the guest
halts with interrupts disabled or shuts down; 124 when ``timeout`` passes; 125 when the
accelerator cannot run the guest (internal error). Configuration errors raise
:class:`~accel.errors.ConfigError`.

Kernels: :func:`run_kernel` boots a Multiboot kernel (kvm-unit-tests' ``*.flat``) as
QEMU's ``-kernel`` does, with the options of :class:`KernelOptions`: the loader places
it and its boot information directly (no firmware runs), vCPU 0 starts at its entry in
32-bit flat protected mode, COM1 and fw-cfg are added.

Stopping and snapshots: ``stop_after`` ends the run after that many seconds with status
0, ``timeout`` with 124, and, when :func:`run_machine` is called from the main thread,
SIGINT with 130, SIGTERM with 143 and SIGHUP with 129 — each through
:meth:`Machine.stop`, so the machine is paused at an instruction boundary. With ``save``
the machine is paused and written atomically to that path whenever the run stops,
however it stopped (a kernel boot's too: :func:`run_kernel`). :func:`restore_image`
resumes such a snapshot; one taken after the
guest ended its run (exit device, halt, shutdown) reports that same end again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from .accelerator import Accelerator, Registers, real_mode_sregs
from .capabilities import Capability
from .errors import ConfigError, SnapshotError
from .files import atomic_file, check_target, read_file
from .machine.device import parse_device_spec
from .machine.devices import SerialPort
from .machine.machine import Machine, RunResult, parse_machine_spec, resolve_machine_type
from .machine.multiboot import load_multiboot
from .machine.serial import SerialBackendKind, parse_serial_backend
from .registry import Registry

__all__ = [
    "DEBUG_DEVICES",
    "KERNEL_DEVICES",
    "STOP_SIGNALS",
    "KernelOptions",
    "RunOptions",
    "check_save_target",
    "load_image",
    "parse_duration",
    "read_image",
    "restore_image",
    "check_smp",
    "run_image",
    "run_kernel",
    "run_machine",
]

FOUR_GIB = 1 << 32
ONE_MIB = 1 << 20
ISA_BIOS_MAX = 128 << 10
PAGE = 4096
MAX_IMAGE = 16 << 20

#: The devices :func:`run_image` adds unless told not to.
DEBUG_DEVICES: tuple[str, ...] = ("isa-debugcon,iobase=0xe9", "isa-debug-exit,iobase=0xf4,iosize=4")

#: The devices :func:`run_kernel` adds unless told not to (kvm-unit-tests' command line).
KERNEL_DEVICES: tuple[str, ...] = ("isa-debug-exit,iobase=0xf4,iosize=4",)

#: The signals that stop a run (see :func:`run_machine`): signal -> how the result says it.
#: The run's exit status is the shell's for a process killed by the signal, 128 + its number.
STOP_SIGNALS: dict[signal.Signals, str] = {
    signal.SIGINT: "interrupted (SIGINT)",
    signal.SIGTERM: "terminated (SIGTERM)",
    signal.SIGHUP: "hung up (SIGHUP)",
}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to build and run the machine: ``accel run``'s options.

    ``stop_after`` (seconds) stops and pauses the run with status 0, ``timeout`` with 124;
    ``save`` is a path the machine's snapshot is written to whenever the run stops.
    """

    machine: str = "pc"
    cpu: str | None = None
    devices: Sequence[str] = ()
    timeout: float | None = None
    load_addr: int | None = None
    entry: int | None = None
    debug_devices: bool = True
    ram_size: int = 16 << 20
    stop_after: float | None = None
    save: str | None = None


@dataclass(frozen=True, slots=True)
class KernelOptions:
    """A kernel boot, QEMU's ``-kernel FILE -append CMDLINE -initrd FILES -m SIZE -smp N
    -serial BACKEND``: ``ram_size`` in bytes (:func:`~accel.machine.multiboot.parse_size`
    reads ``-m``), ``initrd`` as ``-initrd``'s text (modules separated by ``,``), ``serial``
    a ``-serial`` backend (``stdio``, ``file:PATH``, ``null``, ``none``)."""

    kernel: str
    append: str = ""
    initrd: str | None = None
    ram_size: int = 128 << 20
    smp: int = 1
    serial: str = "stdio"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, None: 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?")


def parse_duration(text: str) -> float:
    """``"500ms"``, ``"2s"``, ``"1.5"`` (seconds), ``"1m"`` -> seconds (a float > 0);
    ValueError otherwise."""
    m = _DURATION.fullmatch(text.strip())
    value = float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0
    if value <= 0:
        raise ValueError(f"duration {text!r}: give a positive number with ms, s or m, e.g. 500ms")
    return value


def _seconds(value: float) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def _with_default_irqchip(spec: str) -> str:
    """A run keeps the interrupt controller out of the accelerator by default.

    With an in-kernel irqchip a HLT does not leave the accelerator, so "the guest halted
    with interrupts disabled" could not end the run; a user who wants the in-kernel
    irqchip (and PIT) passes ``--machine TYPE,kernel-irqchip=on``.
    """
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
    cpu = machine.vcpus[0]
    cs = (start >> 4) & 0xF000
    cpu.set_sregs(real_mode_sregs(cpu.get_sregs(), cs=cs, ds=0))
    cpu.set_regs(Registers(rip=start - (cs << 4), rflags=2, rdx=0x600))


def read_image(path: str, options: RunOptions) -> bytes:
    """The flat image at ``path``, read with a bound: at most :data:`MAX_IMAGE` bytes for
    the ``-bios`` placement, at most the RAM size with ``load_addr``.

    As QEMU's ``-bios`` reads a file, the image must be a regular file (``/dev/stdin``
    redirected from a file is one; a pipe, FIFO or device is refused rather than read
    without end). Every failure is a :class:`~accel.errors.ConfigError` naming the file.
    """
    limit = MAX_IMAGE if options.load_addr is None else options.ram_size
    image = read_file(
        path,
        limit,
        what="image",
        error=ConfigError,
        hint="give the path of a flat binary file (as qemu -bios takes); save a stream to "
        "a file first",
    )
    if not image:
        raise ConfigError(f"the image {path!r} is empty", hint="give a flat binary", path=path)
    return image


def check_save_target(options: RunOptions) -> None:
    """Refuse ``options.save`` before the run when it could not be written: not a regular
    file (a FIFO, device node, directory, socket), or in a directory that does not exist
    or cannot be written (a :class:`~accel.errors.SnapshotError` naming the path)."""
    if options.save is not None:
        check_target(options.save)


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
    user = [*options.devices, *extra_devices]
    if not options.debug_devices:
        devices = user
    else:
        user_types = {parse_device_spec(spec)[0] for spec in user}
        devices = [
            *(s for s in DEBUG_DEVICES if parse_device_spec(s)[0] not in user_types),  # user wins
            *user,
        ]
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


#: Where Linux says how it commits memory (read by :func:`host_ram_limit`).
MEMINFO = "/proc/meminfo"
OVERCOMMIT = "/proc/sys/vm/overcommit_memory"


def host_ram_limit(meminfo: str = MEMINFO, overcommit: str = OVERCOMMIT) -> int | None:
    """The most guest RAM, in bytes, this host can map, or None where it sets no limit.

    Guest RAM is private anonymous memory. Under Linux's default overcommit heuristic
    (``vm.overcommit_memory`` 0) a mapping larger than RAM + swap is refused; under strict
    accounting (2) the commit limit (``CommitLimit``) bounds it; with 1 nothing does. The
    process's address-space limit (RLIMIT_AS) bounds it too. None where nothing is known
    (no ``/proc``).
    """
    found = _host_ram_limit(meminfo, overcommit)
    return found[0] if found else None


def _host_ram_limit(meminfo: str, overcommit: str) -> tuple[int, str] | None:
    import resource

    limits: list[tuple[int, str]] = []
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append((soft, "the address-space limit, ulimit -v"))
    try:
        with open(overcommit, encoding="ascii") as f:
            mode = int(f.read().strip() or 0)
    except (OSError, ValueError):
        mode = 0
    fields: dict[str, int] = {}
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                words = rest.split()
                if words and words[0].isdigit():
                    fields[key] = int(words[0]) * 1024  # kB
    except OSError:
        pass
    if mode == 2 and "CommitLimit" in fields:
        limits.append((fields["CommitLimit"], "the commit limit, vm.overcommit_memory=2"))
    elif mode == 0 and "MemTotal" in fields:
        limits.append((fields["MemTotal"] + fields.get("SwapTotal", 0), "RAM + swap"))
    return min(limits) if limits else None


def check_ram_size(ram_size: int, *, meminfo: str = MEMINFO, overcommit: str = OVERCOMMIT) -> None:
    """Refuse ``ram_size`` (``-m``) when it is more than the host can map
    (:func:`host_ram_limit`): a :class:`ConfigError` before anything starts, rather than
    a failed mapping after the VM exists."""
    found = _host_ram_limit(meminfo, overcommit)
    if found is not None and ram_size > found[0]:
        limit, why = found
        raise ConfigError(
            f"-m {_size_text(ram_size)} is more guest RAM than this host can map "
            f"(at most {_size_text(limit)}: {why})",
            hint="give a smaller -m",
            argument="memory",
            value=ram_size,
            limit=limit,
        )


def _size_text(size: int) -> str:
    for shift, unit in ((30, "G"), (20, "M"), (10, "K")):
        if size >= 1 << shift:
            value = size / (1 << shift)
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}B"


def check_smp(accelerator: Accelerator, smp: int) -> None:
    """Refuse ``smp`` vCPUs unless 1 <= smp <= the accelerator's
    :attr:`~accel.Capability.MAX_VCPUS` (:class:`ConfigError`, before anything starts)."""
    answer = accelerator.capabilities()[Capability.MAX_VCPUS]
    limit = answer.value if isinstance(answer.value, int) and answer.value > 0 else None
    if smp < 1:
        raise ConfigError(
            f"--smp {smp}: a machine has at least one vCPU", hint="give --smp 1 or more",
            argument="smp", value=smp,
        )  # fmt: skip
    if limit is not None and smp > limit:
        raise ConfigError(
            f"--smp {smp} is more than {accelerator.name} supports ({limit} vCPUs per VM)",
            hint=f"give --smp {limit} or fewer", argument="smp", value=smp,
        )  # fmt: skip


def run_kernel(
    accelerator: Accelerator,
    kernel: KernelOptions,
    options: RunOptions,
    *,
    registry: Registry | None = None,
    console: Callable[[bytes], Any] | None = None,
    extra_devices: Iterable[str] = (),
    serial_input: int | None = None,
) -> RunResult:
    """Boot a Multiboot kernel as QEMU's ``-kernel`` does and run it to its end.

    Checks first (a :class:`ConfigError` before any VM exists): ``kernel.ram_size`` against
    what the host can map (:func:`check_ram_size`), ``kernel.smp`` against the
    accelerator's MAX_VCPUS, the ``-serial`` backend, the machine type (pc or q35), the
    kernel and its modules (:func:`~accel.machine.multiboot.load_multiboot` with the
    machine's RAM layout). The machine keeps its type's ``kernel-irqchip`` (``on`` for
    pc and q35, as QEMU): where the accelerator has an in-kernel irqchip a HLT waits
    there for an interrupt, and the run ends by isa-debug-exit (added at 0xf4/4, as
    kvm-unit-tests' command line does, unless ``options.debug_devices`` is False),
    shutdown, ``timeout``/``stop_after`` or a stop signal. The machine gets fw-cfg with the
    boot plan (NB_CPUS = ``smp``) and COM1 on ``kernel.serial`` (none for ``none``);
    ``console`` receives the serial port's output for ``stdio``, and bytes read from the
    file descriptor ``serial_input`` (standard input, for ``stdio``) reach its receiver.

    With ``options.save`` the machine is saved whenever the run stops, as for an image
    (:func:`run_machine`): every vCPU (the APs waiting for INIT/SIPI in their MP state),
    COM1, fw-cfg (its items, the kernel among them, and its selection), the clock
    devices and RAM; :func:`restore_image` rebuilds the same machine without reading
    the kernel again.
    """
    check_ram_size(kernel.ram_size)
    check_smp(accelerator, kernel.smp)
    backend = parse_serial_backend(kernel.serial)
    check_save_target(options)
    type_name, _opts = parse_machine_spec(options.machine)
    mtype = resolve_machine_type(type_name)
    plan = load_multiboot(
        kernel.kernel, ram_size=kernel.ram_size, cmdline=kernel.append,
        initrd=kernel.initrd, machine=mtype.family,
    )  # fmt: skip
    user = [*options.devices, *extra_devices]
    devices = user
    if options.debug_devices:
        user_types = {parse_device_spec(spec)[0] for spec in user}
        defaults = (s for s in KERNEL_DEVICES if parse_device_spec(s)[0] not in user_types)
        devices = [*defaults, *user]
    machine = Machine(
        accelerator, options.machine, options.cpu, devices, registry=registry,
        ram_size=kernel.ram_size, smp=kernel.smp, console=console, boot=plan,
        serial=backend.spec if backend.has_port else None,
    )  # fmt: skip
    with machine:
        if serial_input is not None and backend.kind is SerialBackendKind.STDIO:
            _attach_serial_input(machine, serial_input)
        return run_machine(machine, options)


def _attach_serial_input(machine: Machine, fd: int) -> None:
    """Standard input (``fd``) into the machine's first ``stdio`` serial port, if any."""
    for dev in machine.devices:
        if isinstance(dev, SerialPort) and dev.backend.kind is SerialBackendKind.STDIO:
            dev.attach_input(fd)
            return


@contextmanager
def _stopping_on_signals(machine: Machine) -> Iterator[None]:
    """While the block runs, each of :data:`STOP_SIGNALS` stops ``machine`` (status 128 +
    the signal's number); the previous handlers come back afterwards. Only the main
    thread may set handlers: elsewhere the signals keep their meaning."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        what = STOP_SIGNALS[signal.Signals(signum)]
        machine.stop(128 + signum, f"{what}: guest paused", kind="interrupted")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _timer(seconds: float, fn: Callable[[], object]) -> threading.Timer:
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()
    return timer


def run_machine(machine: Machine, options: RunOptions) -> RunResult:
    """Run an initialised (or resumed) machine until it stops; with ``options.save``,
    pause it and write its snapshot (atomically), saying so in the result's message.

    ``stop_after`` and ``timeout`` stop it through :meth:`Machine.stop` (paused at an
    instruction boundary), and so do SIGINT, SIGTERM and SIGHUP when called from the
    main thread (:data:`STOP_SIGNALS`), until the snapshot is written. A ``save`` path
    that could not be written is refused before the machine runs (:func:`check_save_target`).
    """
    check_save_target(options)
    deadlines: list[tuple[float, Callable[[], object]]] = []
    if options.timeout is not None:
        t = options.timeout
        msg = f"timeout: the guest was still running after {t:g} s"
        deadlines.append((t, lambda: machine.stop(124, msg, kind="timeout")))
    if options.stop_after is not None:
        after = options.stop_after
        note = f"stopped after {_seconds(after)} (--stop-after)"
        deadlines.append((after, lambda: machine.stop(0, note, kind="stopped")))
    with _stopping_on_signals(machine), _at_deadlines(deadlines):
        result = machine.run()
    return save_after_run(machine, result, options)


@contextmanager
def _at_deadlines(deadlines: Sequence[tuple[float, Callable[[], object]]]) -> Iterator[None]:
    """While the block runs, call each ``fn`` of ``deadlines`` ``seconds`` after it began.

    On the main thread, when the process has neither a SIGALRM handler of its own nor
    ITIMER_REAL armed, through that timer (one ``setitimer`` per deadline: a run that a
    test rig repeats thousands of times starts no thread); else a
    :class:`threading.Timer` each. Either way ``fn`` runs as a signal handler or on
    another thread, which :meth:`Machine.stop` allows. Afterwards the timer is disarmed
    and the previous handler is back.
    """
    if not deadlines:
        yield
        return
    if not _alarm_is_free():
        timers = [_timer(seconds, fn) for seconds, fn in deadlines]
        try:
            yield
        finally:
            for timer in timers:
                timer.cancel()
        return
    start = time.monotonic()
    pending = sorted(((start + s, i, fn) for i, (s, fn) in enumerate(deadlines)),
                     key=lambda d: d[:2])  # fmt: skip

    def on_alarm(signum: int, frame: object) -> None:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            pending.pop(0)[2]()
        if pending:
            signal.setitimer(signal.ITIMER_REAL, max(pending[0][0] - now, 1e-6))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, max(pending[0][0] - start, 1e-6))
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _alarm_is_free() -> bool:
    """True on the main thread when SIGALRM has its default action and ITIMER_REAL is not
    armed: nobody else in the process uses the real-time interval timer."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGALRM) == signal.SIG_DFL and signal.getitimer(
        signal.ITIMER_REAL
    ) == (0.0, 0.0)


def save_after_run(machine: Machine, result: RunResult, options: RunOptions) -> RunResult:
    """Pause ``machine`` and write its snapshot to ``options.save`` (atomically); the
    result's message says so. ``options.save`` None: ``result`` as it is."""
    if options.save is None:
        return result
    from .snapshot import save_machine  # the snapshot layer loads when a run saves

    machine.pause()
    try:
        with atomic_file(options.save) as f:  # an OSError becomes a SnapshotError
            save_machine(machine, f)
    except SnapshotError as exc:
        ended = f"the run ended: {result.message}"
        exc.hint = f"{exc.hint}; {ended}" if exc.hint else ended
        raise
    return dataclasses.replace(
        result, message=f"{result.message}; snapshot written to {options.save}"
    )


def restore_image(
    accelerator: Accelerator,
    stream: IO[bytes],
    options: RunOptions,
    *,
    mode: str | None = None,
    registry: Registry | None = None,
    console: Callable[[bytes], Any] | None = None,
    name: str | None = None,
    warnings: list[str] | None = None,
    serial_input: int | None = None,
) -> RunResult:
    """Restore the machine snapshot in ``stream`` on ``accelerator`` and run it on (with
    ``options``' ``timeout``, ``stop_after`` and ``save``; the image, machine, CPU and
    device options come from the snapshot). The machine is closed afterwards.

    A snapshot taken after the guest ended its run gives that same result again (and is
    saved again with ``save``) without running the guest. ``name`` (the snapshot's file)
    prefixes the message of a :class:`~accel.errors.SnapshotError` of the restore.
    A kernel machine's COM1 on ``stdio`` writes to ``console`` and reads the file
    descriptor ``serial_input`` (as :func:`run_kernel`).
    """
    from .snapshot import naming, restore_machine

    check_save_target(options)
    with naming(name) if name is not None else contextlib.nullcontext():
        machine = restore_machine(
            stream, accelerator, mode=mode, registry=registry, console=console,
            warnings=warnings,
        )  # fmt: skip
    with machine:
        if machine.ended is not None:
            ended = machine.ended
            result = dataclasses.replace(
                ended, message=f"{ended.message} (the run had ended at the save)"
            )
            return save_after_run(machine, result, options)
        if serial_input is not None:
            _attach_serial_input(machine, serial_input)
        machine.resume()
        return run_machine(machine, options)
