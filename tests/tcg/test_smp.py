"""SMP on TCG: several vCPUs of one VM over shared guest RAM (accel_tcg.scheduler).

The guests are 32-bit flat protected-mode loops (listings beside the bytes; a test
re-assembles them with GNU ``as`` where it is installed and compares).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from accel_tcg.accelerator import TcgAccelerator, TcgVcpu, TcgVM

from accel import (
    Capability,
    HaltExit,
    InterruptedExit,
    PortIoExit,
    Registers,
    Segment,
    SpecialRegisters,
)
from accel.errors import CapabilityError, InvalidArgumentError, VcpuStateError

COUNTER = 0x2000
LOCK = 0x3000
CODE = 0x1000
N = 100_000


def loop(n: int, body: bytes) -> bytes:
    """``mov ecx, n; L: body; dec ecx; jnz L; hlt`` (a short backward jump)."""
    rel = -(len(body) + 3)
    assert rel >= -128
    return (
        b"\xb9" + n.to_bytes(4, "little") + body + b"\x49\x75" + (rel & 0xFF).to_bytes() + b"\xf4"
    )


#: mov eax, 1; lock xadd [COUNTER], eax
LOCK_XADD = bytes.fromhex("b801000000 f00fc10500200000")
#: lock inc dword [COUNTER]
LOCK_INC = bytes.fromhex("f0ff0500200000")
#: retry: mov eax, [COUNTER]; lea edx, [eax+1]; lock cmpxchg [COUNTER], edx; jnz retry
LOCK_CMPXCHG = bytes.fromhex("a100200000 8d5001 f00fb11500200000 75ee")
#: spin: mov eax, 1; xchg [LOCK], eax; test eax, eax; jnz spin
#: mov edx, [COUNTER]; inc edx; mov [COUNTER], edx   (not atomic: the lock protects it)
#: mov dword [LOCK], 0
SPINLOCK = bytes.fromhex(
    "b801000000 870500300000 85c0 75f1 8b1500200000 42 891500200000 c70500300000 00000000"
)

LISTING = {
    LOCK_XADD: "mov $1, %eax\nlock xadd %eax, 0x2000",
    LOCK_INC: "lock incl 0x2000",
    LOCK_CMPXCHG: "1: mov 0x2000, %eax\nlea 1(%eax), %edx\nlock cmpxchg %edx, 0x2000\njnz 1b",
    SPINLOCK: "1: mov $1, %eax\nxchg %eax, 0x3000\ntest %eax, %eax\njnz 1b\n"
    "mov 0x2000, %edx\ninc %edx\nmov %edx, 0x2000\nmovl $0, 0x3000",
}


def flat(selector: int, code: bool) -> Segment:
    return Segment(
        base=0, limit=0xFFFFFFFF, selector=selector, type=0xB if code else 0x3, db=1, g=1
    )


def protected(cpu: TcgVcpu, rip: int) -> None:
    sregs: SpecialRegisters = cpu.get_sregs()
    sregs.cs = flat(0x08, True)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(sregs, name, flat(0x10, False))
    sregs.cr0 = 0x11
    cpu.set_sregs(sregs)
    cpu.set_regs(Registers(rip=rip, rflags=2, rsp=0x8000))


@pytest.fixture
def acc() -> Iterator[TcgAccelerator]:
    with TcgAccelerator() as a:
        yield a


def smp_vm(acc: TcgAccelerator, code: bytes, ncpus: int) -> tuple[TcgVM, list[TcgVcpu]]:
    vm = acc.create_vm()
    vm.add_memory(0, 0x10000)
    vm.write_memory(CODE, code)
    cpus = [vm.create_vcpu() for _ in range(ncpus)]
    for cpu in cpus:
        protected(cpu, CODE)
    return vm, cpus


def run_all(cpus: list[TcgVcpu]) -> list[object]:
    """Run every vCPU on its own caller thread until its first exit."""
    results: list[object] = [None] * len(cpus)

    def one(i: int) -> None:
        results[i] = cpus[i].run()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(cpus))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a vCPU did not finish"
    return results


def counter(vm: TcgVM) -> int:
    return int.from_bytes(vm.read_memory(COUNTER, 4), "little")


def test_listings_assemble_to_the_bytes(tmp_path: Path) -> None:
    if shutil.which("as") is None or shutil.which("objcopy") is None:
        pytest.skip("GNU as/objcopy are not installed")
    for code, listing in LISTING.items():
        src = tmp_path / "g.s"
        src.write_text(".code32\n" + listing + "\n")
        obj, raw = tmp_path / "g.o", tmp_path / "g.bin"
        subprocess.run(["as", "--32", "-o", str(obj), str(src)], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
        assert raw.read_bytes() == code, listing


@pytest.mark.parametrize(
    "body", [LOCK_XADD, LOCK_INC, LOCK_CMPXCHG], ids=["xadd", "inc", "cmpxchg"]
)
@pytest.mark.parametrize("ncpus", [1, 2, 4])
def test_locked_counter_is_exact(acc: TcgAccelerator, body: bytes, ncpus: int) -> None:
    vm, cpus = smp_vm(acc, loop(N, body), ncpus)
    with vm:
        results = run_all(cpus)
        assert all(isinstance(r, HaltExit) for r in results), results
        assert counter(vm) == N * ncpus  # no lost update


@pytest.mark.parametrize("ncpus", [2, 4])
def test_locked_counter_is_exact_across_time_slices(acc: TcgAccelerator, ncpus: int) -> None:
    # Long enough (4 x 10^7 instructions per vCPU) that no vCPU finishes inside one slice:
    # the vCPUs are preempted in the middle of their loops and take turns.
    n = 10_000_000
    vm, cpus = smp_vm(acc, loop(n, LOCK_XADD), ncpus)
    with vm:
        results = run_all(cpus)
        assert all(isinstance(r, HaltExit) for r in results), results
        assert counter(vm) == (n * ncpus) & 0xFFFFFFFF
        assert sum(c._slice_ends for c in cpus) >= ncpus - 1


def test_spinlock_critical_section_is_exclusive(acc: TcgAccelerator) -> None:
    iterations = 20_000
    vm, cpus = smp_vm(acc, loop(iterations, SPINLOCK), 4)
    with vm:
        results = run_all(cpus)
        assert all(isinstance(r, HaltExit) for r in results), results
        assert counter(vm) == 4 * iterations
        assert vm.read_memory(LOCK, 4) == bytes(4)


def test_vcpus_took_turns_in_one_run(acc: TcgAccelerator) -> None:
    # vCPU 0 spins until vCPU 1 (run from another thread) sets the flag: it can only halt
    # if the scheduler hands the token on while vCPU 0 is still in its run().
    spin = bytes.fromhex("833d0030000000 74f7 f4")  # 1: cmpl $0, 0x3000; je 1b; hlt
    setter = bytes.fromhex("c70500300000 01000000 f4")  # movl $1, 0x3000; hlt
    vm = acc.create_vm()
    with vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x1000, spin)
        vm.write_memory(0x1100, setter)
        a, b = vm.create_vcpu(), vm.create_vcpu()
        protected(a, 0x1000)
        protected(b, 0x1100)
        results = run_all([a, b])
        assert all(isinstance(r, HaltExit) for r in results), results


def test_multi_refuses_a_second_vcpu_with_the_reason() -> None:
    with TcgAccelerator(thread="multi") as acc, acc.create_vm() as vm:
        vm.create_vcpu()
        with pytest.raises(CapabilityError) as info:
            vm.create_vcpu()
        assert info.value.capability is Capability.MAX_VCPUS
        assert "not atomic" in str(info.value) and "thread=single" in (info.value.hint or "")


def test_multi_engines_run_in_parallel_and_lose_locked_updates() -> None:
    # What thread=single exists for, measured on raw unicorn engines over one mapping
    # (the plugin itself refuses this configuration). Unicorn runs the engines in
    # parallel (ctypes releases the GIL) and LOCK XADD is not atomic across them.
    import ctypes
    import mmap

    import unicorn

    buf = mmap.mmap(-1, 0x10000)
    anchor = ctypes.c_char.from_buffer(buf)
    address = ctypes.addressof(anchor)
    code = loop(2_000_000, LOCK_XADD)
    buf[CODE : CODE + len(code)] = code
    engines = []
    for _ in range(2):
        uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)
        uc.mem_map_ptr(0, 0x10000, unicorn.UC_PROT_ALL, address)
        engines.append(uc)
    threads = [
        threading.Thread(target=uc.emu_start, args=(CODE, CODE + len(code) - 1)) for uc in engines
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = int.from_bytes(buf[COUNTER : COUNTER + 4], "little")
    del engines, anchor
    if total == 4_000_000:
        pytest.skip("the two engines never overlapped on this (busy) host: nothing was lost")
    assert total < 4_000_000  # updates were lost: the engines ran at once, non-atomically


def test_pause_and_clock_with_all_vcpus_running(acc: TcgAccelerator) -> None:
    forever = bytes.fromhex("ebfe")  # jmp .
    vm = acc.create_vm()
    with vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(CODE, forever)
        cpus = [vm.create_vcpu() for _ in range(3)]
        for cpu in cpus:
            protected(cpu, CODE)
        results: list[object] = []
        threads = [threading.Thread(target=lambda c=c: results.append(c.run())) for c in cpus]
        for t in threads:
            t.start()
        for cpu in cpus:  # all three inside run() (one emulating, two waiting their turn)
            while not cpu._in_flight:
                threading.Event().wait(0.001)
        vm.pause()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 3 and all(isinstance(r, InterruptedExit) for r in results)
        before = vm.get_clock().clock
        threading.Event().wait(0.05)
        assert vm.get_clock().clock == before  # the VM's one clock stands still for all
        with pytest.raises(VcpuStateError):
            cpus[1].run()
        vm.resume()
        assert vm.get_clock().clock >= before


def test_kick_each_vcpu_while_all_run(acc: TcgAccelerator) -> None:
    vm, cpus = smp_vm(acc, bytes.fromhex("ebfe"), 2)
    with vm:
        results: dict[int, object] = {}
        threads = [
            threading.Thread(target=lambda c=c: results.__setitem__(c.index, c.run())) for c in cpus
        ]
        for t in threads:
            t.start()
        for cpu in cpus:
            while not cpu._in_flight:
                threading.Event().wait(0.001)
        cpus[1].kick()  # the one waiting for its turn, or the one emulating
        threads[1].join(timeout=30)
        assert isinstance(results.get(1), InterruptedExit)
        assert threads[0].is_alive()  # the other runs on
        cpus[0].kick()
        threads[0].join(timeout=30)
        assert isinstance(results.get(0), InterruptedExit)


def test_close_with_all_vcpus_running(acc: TcgAccelerator) -> None:
    vm, cpus = smp_vm(acc, bytes.fromhex("ebfe"), 4)
    threads = [threading.Thread(target=c.run) for c in cpus]
    for t in threads:
        t.start()
    for cpu in cpus:
        while not cpu._in_flight:
            threading.Event().wait(0.001)
    vm.close()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_exit_of_one_vcpu_lets_the_others_run(acc: TcgAccelerator) -> None:
    # vCPU 0 parks in an OUT exit its caller does not complete yet; vCPU 1 still runs.
    vm = acc.create_vm()
    with vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x1000, bytes.fromhex("e610 f4"))  # out 0x10, al; hlt
        vm.write_memory(0x1100, loop(N, LOCK_XADD))
        a, b = vm.create_vcpu(), vm.create_vcpu()
        protected(a, 0x1000)
        protected(b, 0x1100)
        assert isinstance(a.run(), PortIoExit)
        assert isinstance(b.run(), HaltExit) and counter(vm) == N
        assert isinstance(a.run(), HaltExit)


def test_start_a_vcpu_that_never_ran_while_another_runs(acc: TcgAccelerator) -> None:
    # What a SIPI does from outside: registers of a fresh vCPU are set while vCPU 0 runs.
    vm, cpus = smp_vm(acc, bytes.fromhex("ebfe"), 1)
    with vm:
        vm.write_memory(0x1100, loop(1000, LOCK_XADD))
        runner = threading.Thread(target=cpus[0].run)
        runner.start()
        while not cpus[0]._in_flight:
            threading.Event().wait(0.001)
        ap = vm.create_vcpu()  # vCPU 0 is kicked once, to run sliced from now on
        protected(ap, 0x1100)
        assert ap.get_regs().rip == 0x1100
        assert isinstance(ap.run(), HaltExit) and counter(vm) == 1000
        runner.join(timeout=30)  # (the kick that started slicing ended its run)
        assert not runner.is_alive()


def test_thread_and_tb_size_defaults() -> None:
    from accel_tcg.accelerator import DEFAULT_TB_SIZE_MIB

    with TcgAccelerator() as acc, acc.create_vm() as vm:
        assert (acc.thread, acc.tb_size) == ("single", DEFAULT_TB_SIZE_MIB)
        cpu = vm.create_vcpu()
        assert cpu._uc.ctl_get_tcg_buffer_size() == DEFAULT_TB_SIZE_MIB << 20
        assert DEFAULT_TB_SIZE_MIB % 2  # not a multiple of 2 MiB (no huge-page alignment)
    with pytest.raises(InvalidArgumentError) as info:
        TcgAccelerator(thread="parallel")
    assert "'single'" in str(info.value) and info.value.argument == "thread"


def test_sliced_vcpus_halt_under_long_mode_paging(acc: TcgAccelerator) -> None:
    # Under paging the byte before RIP is found through the page tables: the code runs at
    # linear 0x201000, an alias (PD entry 1) of physical 0x1000, so a check that read
    # the linear address as physical would never see the HLT and the vCPUs would run on.
    n = 2_000_000
    # mov ecx, n; L: mov eax, 1; lock xadd [abs 0x2000], eax; dec ecx; jnz L; hlt
    code = (
        b"\xb9"
        + n.to_bytes(4, "little")
        + bytes.fromhex("b801000000 f00fc1042500200000 ffc9 75ee f4")
    )
    vm = acc.create_vm()
    with vm:
        vm.add_memory(0, 0x10000)
        vm.write_memory(0x5000, (0x6003).to_bytes(8, "little"))  # PML4 -> PDPT
        vm.write_memory(0x6000, (0x7003).to_bytes(8, "little"))  # PDPT -> PD
        vm.write_memory(0x7000, (0x83).to_bytes(8, "little") * 2)  # 0 and 2 MiB -> phys 0
        vm.write_memory(CODE, code)
        cpus = [vm.create_vcpu() for _ in range(2)]
        for cpu in cpus:
            sregs = cpu.get_sregs()
            sregs.cs = Segment(base=0, limit=0xFFFFFFFF, selector=8, type=0xB, l=1, g=1)
            for name in ("ds", "es", "fs", "gs", "ss"):
                setattr(sregs, name, flat(0x10, False))
            sregs.cr3, sregs.cr4, sregs.efer, sregs.cr0 = 0x5000, 0x20, 0x500, 0x80000011
            cpu.set_sregs(sregs)
            cpu.set_regs(Registers(rip=0x200000 + CODE, rflags=2))
        results = run_all(cpus)
        assert all(isinstance(r, HaltExit) for r in results), results
        assert counter(vm) == 2 * n
        assert sum(c._slice_ends for c in cpus) >= 1
        assert all(c.get_regs().rip == 0x200000 + CODE + len(code) for c in cpus)


def test_kicks_of_sliced_vcpus_never_run_an_instruction_twice(acc: TcgAccelerator) -> None:
    # emu_stop from another thread can land after the store of a LOCK XADD and run it
    # again (see test_multi_engines_...): kicks of sliced vCPUs wait for the slice end.
    n = 3_000_000
    vm, cpus = smp_vm(acc, loop(n, LOCK_XADD), 2)
    with vm:
        done: list[object] = []
        interrupted = [0, 0]

        def drive(i: int) -> None:
            while True:
                ex = cpus[i].run()
                if not isinstance(ex, InterruptedExit):
                    done.append(ex)
                    return
                interrupted[i] += 1

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for cpu in cpus:
                cpu.kick()
            threading.Event().wait(0.002)
        assert all(isinstance(ex, HaltExit) for ex in done) and len(done) == 2, done
        assert sum(interrupted) > 0  # the kicks did interrupt the runs
        assert counter(vm) == 2 * n  # and no instruction ran twice


def test_set_registers_of_a_vcpu_that_never_ran_while_another_runs(
    acc: TcgAccelerator,
) -> None:
    # A SIPI from outside: both vCPUs exist; vCPU 1 has never run; vCPU 0 spins in run().
    vm, cpus = smp_vm(acc, bytes.fromhex("ebfe"), 2)  # jmp .
    with vm:
        vm.write_memory(0x1100, loop(50_000, LOCK_XADD))
        bsp, ap = cpus
        runner = threading.Thread(target=bsp.run)
        runner.start()
        while not bsp._in_flight:
            threading.Event().wait(0.001)
        sregs = ap.get_sregs()
        sregs.cs = flat(0x08, True)
        ap.set_sregs(sregs)
        ap.set_regs(Registers(rip=0x1100, rflags=2, rsp=0x8000))
        assert ap.get_regs().rip == 0x1100
        assert isinstance(ap.run(), HaltExit) and counter(vm) == 50_000
        assert runner.is_alive()  # vCPU 0 ran on meanwhile, in turns with vCPU 1
        bsp.kick()
        runner.join(timeout=30)
        assert not runner.is_alive()
