"""One test body, every accelerator: the guest programs end in the same state everywhere.

Each program of :mod:`accel.testing.programs` runs to its HLT; the final state must be
the *complete* state the program implies (every general register, every special
register including hidden segment parts, the memory it writes, the exact port and MMIO
traffic) — the same expected state for every accelerator, so passing on two of them
means they agree.

Legitimate differences between accelerators, and how this test avoids them:

* MMIO: KVM exits on an access to any address no memory slot backs; TCG (unicorn) only
  on ranges declared with ``add_mmio`` (an undeclared one is an ``InternalErrorExit``).
  The programs declare their MMIO range, which both honour.
* Register state *at* a port/MMIO exit (before the next run) is an implementation
  detail: KVM leaves RIP on the I/O instruction until the exit completes; TCG's RIP at
  an MMIO exit is only synchronised to the start of its translation block. Only final
  states are compared.
* ``rep ins/outs``: KVM reports one exit with ``count`` elements, TCG one exit per
  element; the program runner records each element, so string-I/O programs
  (port-io-string) give the same trace on both.
* Writes to a read-only region: an MMIO exit on KVM, an ``InternalErrorExit`` on TCG.
* Undefined flags (after MUL, shifts by more than 1 ...) may differ between hardware
  and emulation: every program sets all flags with a defining instruction (CMP) before
  its HLT, and never stores undefined flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from accel import Accelerator, Registers, SpecialRegisters, real_mode_sregs
from accel.testing.programs import PROGRAMS, Program, ProgramResult, run_program


def _kvm() -> Accelerator:
    import accel_kvm

    factory: Callable[[], Accelerator] | None = getattr(accel_kvm, "KvmAccelerator", None)
    if factory is None:
        pytest.skip("accel_kvm has no accelerator class yet (KvmAccelerator)")
    return factory()


def _tcg() -> Accelerator:
    from accel_tcg.accelerator import TcgAccelerator

    return TcgAccelerator()


ACCELERATORS = [
    pytest.param(_kvm, id="kvm", marks=pytest.mark.kvm),
    pytest.param(_tcg, id="tcg"),
]


@pytest.fixture(params=ACCELERATORS)
def accelerator(request: pytest.FixtureRequest) -> Iterator[Accelerator]:
    acc: Accelerator = request.param()
    avail = acc.probe()
    if not avail:
        pytest.skip(f"{acc.name} unavailable: {avail.reason}")
    with acc:
        yield acc


def expected_regs(program: Program) -> dict[str, int]:
    """Every general register: the program's expectations, the rest as they started."""
    start = Registers(rip=program.entry_ip, rflags=0x2, **program.initial_regs).as_dict()
    return {**start, **program.expected_regs}


def expected_sregs(program: Program) -> dict[str, object]:
    """Every special register: the real-mode start state with the program's changes."""
    state = real_mode_sregs(SpecialRegisters(), cs=program.cs, ds=program.ds).as_dict()
    for path, value in program.expected_sregs.items():
        node: dict[str, object] = state
        *parents, leaf = path.split(".")
        for part in parents:
            child = node[part]
            assert isinstance(child, dict)
            node = child
        node[leaf] = value
    return state


def test_programs_give_identical_state(accelerator: Accelerator) -> None:
    failures: dict[str, list[str]] = {}
    for program in PROGRAMS:
        result: ProgramResult = run_program(accelerator, program)
        problems = result.mismatches(program)
        regs = result.regs.as_dict()
        for name, want in expected_regs(program).items():
            if regs[name] != want:
                problems.append(f"{name} = {regs[name]:#x}, expected {want:#x}")
        sregs = result.sregs.as_dict()
        for name, want_s in expected_sregs(program).items():
            if sregs[name] != want_s:
                problems.append(f"{name} = {sregs[name]}, expected {want_s}")
        if problems:
            failures[program.name] = problems
    assert not failures, f"{accelerator.name}: {failures}"
    assert len(PROGRAMS) >= 7
