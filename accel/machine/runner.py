"""``accel run IMAGE``: load a flat binary, run it to its end, report how it ended.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..accelerator import Accelerator, Registers, real_mode_sregs
from ..errors import ConfigError
from ..registry import Registry
from .device import parse_device_spec
from .machine import Machine, RunResult, parse_machine_spec

__all__ = ["DEBUG_DEVICES", "RunOptions", "load_image", "run_image"]

FOUR_GIB = 1 << 32
ONE_MIB = 1 << 20
ISA_BIOS_MAX = 128 << 10
PAGE = 4096
MAX_IMAGE = 16 << 20

#: The devices ``accel run`` adds unless told not to.
DEBUG_DEVICES: tuple[str, ...] = ("isa-debugcon,iobase=0xe9", "isa-debug-exit,iobase=0xf4,iosize=4")


@dataclass
class RunOptions:
    machine: str = "pc"
    cpu: str | None = None
    devices: Sequence[str] = ()
    timeout: float | None = None
    load_addr: int | None = None
    entry: int | None = None
    debug_devices: bool = True
    ram_size: int = 16 << 20


def _with_default_irqchip(spec: str) -> str:
    """``accel run`` keeps the interrupt controller out of the accelerator by default.

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
    user_types = {parse_device_spec(spec)[0] for spec in user}
    defaults = [
        spec
        for spec in (DEBUG_DEVICES if options.debug_devices else ())
        if parse_device_spec(spec)[0] not in user_types  # the user's own spec wins
    ]
    devices = [*defaults, *user]
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
        return machine.run(options.timeout)
