"""``fw-cfg``: QEMU's firmware configuration device (:class:`~accel.machine.fw_cfg.FwCfg`)
on I/O ports 0x510 (selector), 0x511 (data) and the DMA interface at 0x514-0x51b.

The item model lives in :mod:`accel.machine.fw_cfg`; this device puts it on the ports
from ``iobase`` and gives its DMA interface the machine's guest RAM (the VM's
``read_memory``/``write_memory``). When realised it holds what a QEMU 7.2 pc machine
without ``-kernel`` offers (:func:`~accel.machine.fw_cfg.build_fw_cfg` for the VM's RAM
and vCPUs); a kernel boot replaces the contents with :meth:`FwCfgDevice.load`
(:meth:`FwCfg.for_multiboot <accel.machine.fw_cfg.FwCfg.for_multiboot>`).
"""

from __future__ import annotations

from ...errors import ConfigError
from ...plugin import PropertySpec
from ..fw_cfg import CTL_PORT, DMA_PORT, DMA_PORT_END, FwCfg, GuestMemory, build_fw_cfg
from .base import Device, MachineServices, PropValue, port_property

__all__ = ["FwCfgDevice", "VmMemory"]


class VmMemory:
    """The :class:`~accel.machine.fw_cfg.GuestMemory` of a machine: its VM's RAM."""

    def __init__(self, machine: MachineServices) -> None:
        self._machine = machine

    def read(self, address: int, size: int) -> bytes:
        vm = self._machine.vm
        if vm is None:
            raise ConfigError("fw-cfg DMA before the machine has a VM", device="fw-cfg")
        return vm.read_memory(address, size)

    def write(self, address: int, data: bytes) -> None:
        vm = self._machine.vm
        if vm is None:
            raise ConfigError("fw-cfg DMA before the machine has a VM", device="fw-cfg")
        vm.write_memory(address, data)


class FwCfgDevice(Device):
    """``fw-cfg``: selector/data ports at ``iobase``/``iobase+1``, DMA at ``iobase+4``."""

    PROPERTIES = (
        port_property("iobase", CTL_PORT, "selector port (data: +1, DMA: +4..+11)"),
        PropertySpec("dma", bool, True, "offer the DMA interface (ID bit 1, ports +4..+11)"),
    )

    def __init__(self, **props: PropValue) -> None:
        super().__init__(**props)
        self.model: FwCfg | None = None

    @property
    def memory(self) -> GuestMemory | None:
        """What DMA transfers read and write (None with ``dma=off``)."""
        if not self.props.get("dma", True):
            return None
        return VmMemory(self.machine)

    def realize(self, machine: MachineServices) -> None:
        super().realize(machine)
        vm = machine.vm
        ram = sum(r.size for r in vm.memory_regions) if vm is not None else 0
        cpus = len(vm.vcpus) if vm is not None else 1
        self.model = build_fw_cfg(ram_size=ram, cpus=max(cpus, 1), memory=self.memory)
        base = int(self.props["iobase"])
        count = (DMA_PORT_END - CTL_PORT) if self.props.get("dma", True) else 2
        machine.register_pio(base, count, self._read, self._write, self)

    def load(self, model: FwCfg) -> None:
        """Replace the contents (a kernel boot: :meth:`FwCfg.for_multiboot`)."""
        self.model = model

    def _port(self, port: int) -> int:
        return port - int(self.props["iobase"]) + CTL_PORT

    def _read(self, port: int, size: int) -> int:
        assert self.model is not None
        return self.model.read_port(self._port(port), size)

    def _write(self, port: int, size: int, value: int) -> None:
        assert self.model is not None
        self.model.write_port(self._port(port), size, value)

    def state(self) -> dict[str, object]:
        model = self.model
        return {
            "iobase": f"{int(self.props['iobase']):#x}",
            "dma": f"{int(self.props['iobase']) + DMA_PORT - CTL_PORT:#x}"
            if self.props.get("dma", True)
            else "off",
            "files": [f.name for f in model.files] if model is not None else [],
        }
