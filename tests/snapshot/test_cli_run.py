"""``accel run --save FILE`` / ``accel run --restore FILE`` and the machine snapshots behind them.

Most tests run the real command in a subprocess (``python -m accel run ...``): exit
status, stdout (the guest's debug console) and stderr (one line) are what users see, and
SIGINT goes to a real process. A run cut by ``--stop-after`` or SIGINT and finished by
``--restore`` must print, in all, what an uninterrupted run prints, and end the same way.
"""

from __future__ import annotations

import functools
import io
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import accel
from accel.machine import Machine, RunState
from accel.runner import load_image, parse_duration

GUESTS = Path(__file__).resolve().parents[2] / "examples" / "guests"
ROOT = Path(__file__).resolve().parents[2]

ACCELS = ["tcg", pytest.param("kvm", marks=pytest.mark.kvm)]

#: count.bin's limit (file offset 0xffec) per accelerator, for a run of a few seconds:
#: under nested KVM real mode runs in KVM's instruction emulator, TCG's JIT is fast.
COUNT_LIMIT = {"tcg": 200_000_000, "kvm": 400_000}
COUNT_STATUS = 67  # isa-debug-exit 0x21


def accel_run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accel", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def one_line(stderr: str) -> str:
    """The single line ``accel run`` writes on stderr (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@functools.cache
def startup_seconds(accel_name: str) -> float:
    """Wall time of an ``accel run`` whose guest ends at once (halt.bin): start-up."""
    t0 = time.monotonic()
    assert accel_run("--accel", accel_name, str(GUESTS / "halt.bin")).returncode == 0
    return time.monotonic() - t0


def timed_run(accel_name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """An uninterrupted run, and roughly how long its guest ran (wall time - start-up)."""
    startup = startup_seconds(accel_name)
    t0 = time.monotonic()
    done = accel_run("--accel", accel_name, *args)
    return done, time.monotonic() - t0 - startup


def stopped_mid_run(args: list[str], seconds: float) -> subprocess.CompletedProcess[str]:
    """``accel run --stop-after SECONDS *args`` until the stop lands before the guest's own
    end, halving the duration each time it did not (guest speed varies with host load)."""
    seconds = max(seconds, 0.1)
    for _ in range(6):
        got = accel_run("--stop-after", f"{seconds:.3f}s", *args)
        if got.returncode == 0:
            assert "count =" not in got.stdout
            return got
        assert got.returncode == COUNT_STATUS, got.stderr
        seconds /= 2
    pytest.fail("the guest always ended before --stop-after")


def count_image(tmp_path: Path, limit: int) -> Path:
    data = bytearray((GUESTS / "count.bin").read_bytes())
    data[0xFFEC:0xFFF0] = struct.pack("<I", limit)
    path = tmp_path / f"count-{limit}.bin"
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------------------- guest exit


@pytest.mark.parametrize("accel_name", ACCELS)
@pytest.mark.parametrize(("guest", "status"), [("compute.bin", 111), ("halt.bin", 0)])
def test_save_at_guest_end_then_restore_ends_the_same(
    accel_name: str, guest: str, status: int, tmp_path: Path
) -> None:
    image = str(GUESTS / guest)
    full = accel_run("--accel", accel_name, image)
    assert full.returncode == status, full.stderr

    snap = tmp_path / "end.snap"
    first = accel_run("--accel", accel_name, "--save", str(snap), image)
    assert first.returncode == status and first.stdout == full.stdout
    assert one_line(first.stderr).endswith(f"; snapshot written to {snap}")
    assert snap.is_file()

    # The guest had ended its run: the restore reports the same end, runs nothing more
    # (on KVM the exit instruction was complete, on TCG it would run again).
    again = accel_run("--restore", str(snap))
    assert again.returncode == status, again.stderr
    assert again.stdout == ""  # everything was printed by the first run
    line = one_line(again.stderr)
    assert line.startswith(f"accel: {accel_name}: ")
    assert line.endswith("(the run had ended at the save)")
    assert one_line(full.stderr).split(": ", 2)[2] in line


# --------------------------------------------------------------------------- --stop-after


@pytest.mark.parametrize("accel_name", ACCELS)
def test_stop_after_then_restore_equals_an_uninterrupted_run(
    accel_name: str, tmp_path: Path
) -> None:
    limit = COUNT_LIMIT[accel_name]
    image = str(count_image(tmp_path, limit))
    full, took = timed_run(accel_name, image)
    assert full.returncode == COUNT_STATUS, full.stderr
    assert full.stdout.endswith(f"count = {limit}\n")

    # Stop twice (the second time in a restored machine), then let it finish.
    s1, s2 = tmp_path / "one.snap", tmp_path / "two.snap"
    first = stopped_mid_run(["--accel", accel_name, "--save", str(s1), image], took / 4)
    assert "stopped after" in one_line(first.stderr) and "snapshot written" in first.stderr

    second = stopped_mid_run(["--restore", str(s1), "--save", str(s2)], took / 4)
    assert one_line(second.stderr).startswith(f"accel: {accel_name}: stopped after")

    last = accel_run("--restore", str(s2), "--restore-mode", "catch-up", "--accel", accel_name)
    assert last.returncode == COUNT_STATUS, last.stderr
    assert first.stdout + second.stdout + last.stdout == full.stdout
    assert one_line(last.stderr) == one_line(full.stderr)

    # The same snapshot restores twice: it is a file, not a one-shot stream.
    again = accel_run("--restore", str(s1))
    assert again.returncode == COUNT_STATUS
    assert first.stdout + again.stdout == full.stdout


def outs_program(n: int) -> bytes:
    """Real mode at 0x1000: ``n`` times OUT 'x' to debugcon, then isa-debug-exit 0x21."""
    return (
        bytes.fromhex("66b9")
        + struct.pack("<I", n)
        + bytes.fromhex("b078 e6e9 6649 75f8 b021 e6f4 f4".replace(" ", ""))
    )


@pytest.mark.parametrize("accel_name", ACCELS)
def test_a_stop_lands_on_an_instruction_boundary_after_port_io(
    accel_name: str, tmp_path: Path
) -> None:
    """A guest doing nothing but port I/O is stopped right after an I/O exit nearly every
    time. TCG holds that OUT half done until the next run: the machine completes it
    before pausing, else the restored guest would print the byte a second time."""
    image = tmp_path / "outs.bin"
    image.write_bytes(outs_program(60_000))
    args = ["--load-addr", "0x1000", str(image)]
    full, took = timed_run(accel_name, *args)
    assert full.returncode == COUNT_STATUS and full.stdout == "x" * 60_000
    for n in range(2):
        snap = tmp_path / f"{n}.snap"
        save = ["--accel", accel_name, "--save", str(snap), *args]
        cut = stopped_mid_run(save, took / 3)
        rest = accel_run("--restore", str(snap))
        assert rest.returncode == COUNT_STATUS
        assert len(cut.stdout) + len(rest.stdout) == 60_000, (len(cut.stdout), len(rest.stdout))


def test_snapshot_inspect_shows_the_run_snapshot(tmp_path: Path) -> None:
    image = str(count_image(tmp_path, COUNT_LIMIT["tcg"]))
    snap = tmp_path / "s.snap"
    run = accel_run("--accel", "tcg", "--stop-after", "300ms", "--save", str(snap), image)
    assert run.returncode == 0, run.stderr
    out = subprocess.run(
        [sys.executable, "-m", "accel", "snapshot", "inspect", str(snap)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "accelerator:   tcg" in out.stdout and "machine type:  pc-i440fx-7.2" in out.stdout
    for section in ("machine", "isa-debugcon", "isa-debug-exit", "clock", "cpu-regs"):
        assert f"\n  {section} " in out.stdout
    js = subprocess.run(
        [sys.executable, "-m", "accel", "snapshot", "inspect", "--json", str(snap)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert js.returncode == 0 and '"machine_type": "pc-i440fx-7.2"' in js.stdout


# --------------------------------------------------------------------------- SIGINT

#: Real mode at 0x1000: print "ready\n" on debugcon, then spin (jmp $) forever.
SPIN = b"".join(bytes([0xB0, c, 0xE6, 0xE9]) for c in b"ready\n") + b"\xeb\xfe"


def _interrupt(
    args: list[str], sig: signal.Signals = signal.SIGINT
) -> subprocess.CompletedProcess[str]:
    """Start ``accel run``, wait for the guest's "ready", send ``sig``, collect."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "accel", "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.3)  # spinning in the guest now
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "ready\n" + out, err)


@pytest.mark.parametrize("accel_name", ACCELS)
def test_sigint_on_a_spinning_guest_saves_a_snapshot_that_restores(
    accel_name: str, tmp_path: Path
) -> None:
    image = tmp_path / "spin.bin"
    image.write_bytes(SPIN)
    snap = tmp_path / "int.snap"
    base = ["--accel", accel_name, "--load-addr", "0x1000"]
    got = _interrupt([*base, "--save", str(snap), str(image)])
    assert got.returncode == 130, got.stderr
    line = one_line(got.stderr)
    assert (
        line
        == f"accel: {accel_name}: interrupted (SIGINT): guest paused; snapshot written to {snap}"
    )
    assert got.stdout == "ready\n"

    # Restored, the guest spins on where it was: nothing more printed, stopped again.
    on = accel_run("--restore", str(snap), "--stop-after", "300ms")
    assert on.returncode == 0 and on.stdout == "", on.stderr
    assert one_line(on.stderr) == f"accel: {accel_name}: stopped after 300 ms (--stop-after)"
    late = accel_run("--restore", str(snap), "--timeout", "0.3")
    assert late.returncode == 124 and "timeout" in one_line(late.stderr)

    # Without --save: the same status and one line, no traceback.
    plain = _interrupt([*base, str(image)])
    assert plain.returncode == 130
    assert one_line(plain.stderr) == f"accel: {accel_name}: interrupted (SIGINT): guest paused"


@pytest.mark.parametrize(
    ("sig", "status", "what"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGHUP, 129, "hung up (SIGHUP)")],
)
def test_sigterm_and_sighup_stop_the_guest_as_sigint_does(
    sig: signal.Signals, status: int, what: str, tmp_path: Path
) -> None:
    image = tmp_path / "spin.bin"
    image.write_bytes(SPIN)
    snap = tmp_path / "term.snap"
    got = _interrupt(
        ["--accel", "tcg", "--load-addr", "0x1000", "--save", str(snap), str(image)], sig
    )
    assert got.returncode == status, got.stderr
    assert one_line(got.stderr) == f"accel: tcg: {what}: guest paused; snapshot written to {snap}"
    on = accel_run("--restore", str(snap), "--stop-after", "200ms")
    assert on.returncode == 0 and on.stdout == "", on.stderr


# --------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "compute.snap"
    done = accel_run("--accel", "tcg", "--save", str(path), str(GUESTS / "compute.bin"))
    assert done.returncode == 111, done.stderr
    return path.read_bytes()


def _bare_vm_snapshot() -> bytes:
    from accel import snapshot

    with accel.open("tcg") as acc:
        vm = acc.create_vm()
        vm.add_memory(0, 0x10000)
        vm.create_vcpu()
        buf = io.BytesIO()
        snapshot.save(vm, buf)
        vm.close()
    return buf.getvalue()


@pytest.mark.parametrize(
    "damage",
    ["foreign", "text", "truncated", "flipped", "trailing", "empty", "missing", "directory",
     "bare-vm"],
)  # fmt: skip
def test_damaged_or_foreign_snapshot_is_one_line(
    damage: str, good_snapshot: bytes, tmp_path: Path
) -> None:
    data = good_snapshot
    target = tmp_path / "bad.snap"
    if damage == "foreign":
        target.write_bytes(b"\x7fELF" + bytes(200))
    elif damage == "text":
        target.write_bytes(b"this is not a snapshot\n" * 10)
    elif damage == "truncated":
        target.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "flipped":
        target.write_bytes(data[:300] + bytes([data[300] ^ 0x10]) + data[301:])
    elif damage == "trailing":
        target.write_bytes(data + b"\0")
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "directory":
        target = tmp_path
    elif damage == "bare-vm":  # a VM snapshot, not a machine's
        target.write_bytes(_bare_vm_snapshot())
    else:
        target = tmp_path / "nope.snap"
    got = accel_run("--restore", str(target), "--accel", "tcg")
    assert got.returncode == 1, got.stderr
    assert one_line(got.stderr).startswith("accel: error:")
    assert got.stdout == ""


def usage_error(got: subprocess.CompletedProcess[str]) -> str:
    """The error line of a usage error of ``accel run`` (status 2, after its usage)."""
    assert got.returncode == 2 and got.stdout == "", got.stderr
    assert "Traceback" not in got.stderr
    assert got.stderr.startswith("usage: accel run "), got.stderr
    last = got.stderr.splitlines()[-1]
    assert last.startswith("accel run: error: ")
    return last.removeprefix("accel run: error: ")


def test_restore_takes_the_machine_from_the_snapshot(good_snapshot: bytes, tmp_path: Path) -> None:
    snap = tmp_path / "c.snap"
    snap.write_bytes(good_snapshot)
    both = accel_run("--restore", str(snap), "--cpu", "qemu64", str(GUESTS / "hello.bin"))
    assert usage_error(both) == (
        "--restore takes the machine and image from the snapshot; drop IMAGE, --cpu"
    )
    machine = accel_run("--restore", str(snap), "-M", "pc")
    assert usage_error(machine).endswith("drop --machine")
    assert usage_error(accel_run()) == (
        "the following arguments are required: IMAGE (or --restore FILE)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "-1"],
        ["--timeout", "0"],
        ["--timeout", "nan"],
        ["--timeout", "inf"],
        ["--timeout", "1e30"],
        ["--timeout", "soon"],
        ["--stop-after", "-1s"],
        ["--stop-after", "0s"],
        ["--stop-after", "100000m"],
        ["--load-addr", "zz"],
        ["--restore-mode", "later"],
        ["--restore-mode", "catch-up"],  # without --restore
    ],
)
def test_option_values_that_cannot_work_are_usage_errors(args: list[str]) -> None:
    message = usage_error(accel_run(*args, str(GUESTS / "hello.bin")))
    assert message.startswith(f"argument {args[0]}: ") or message == (
        "--restore-mode is for --restore"
    ), message


def test_unwritable_save_path_is_one_line_before_the_guest_runs(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.snap"
    got = accel_run("--accel", "tcg", "--save", str(target), str(GUESTS / "hello.bin"))
    assert got.returncode == 1
    assert got.stdout == ""  # refused before the guest printed anything
    line = one_line(got.stderr)
    assert line == (
        f"accel: error: cannot write the snapshot {str(target)!r}: directory "
        f"{str(target.parent)!r} does not exist (hint: create the directory first or give "
        "another path)"
    )
    assert not target.parent.exists()


@pytest.mark.kvm
def test_a_kvm_snapshot_with_an_unarmed_kvmclock_restores_on_tcg_saying_so(
    tmp_path: Path,
) -> None:
    """A machine with KVM's paravirtual clock does not silently become one without it: the
    guest never armed it, so it moves, and the restore says that kvmclock is left out (an
    armed one is refused: tests/snapshot/test_midrun_kernel.py)."""
    snap = tmp_path / "k.snap"
    done = accel_run("--accel", "kvm", "--save", str(snap), str(GUESTS / "compute.bin"))
    assert done.returncode == 111, done.stderr
    got = accel_run("--restore", str(snap), "--accel", "tcg")
    assert got.returncode == 111, got.stderr
    assert (
        f"accel: {snap}: the snapshot's kvmclock (no state of its own) is not on tcg: the "
        "machine goes on without it"
    ) in got.stderr.splitlines()


@pytest.mark.kvm
def test_a_kvm_snapshot_is_refused_where_the_device_tree_differs(tmp_path: Path) -> None:
    """The in-kernel PIT (kvm-pit, state in the VM's pit section) has no TCG counterpart
    here: TCG would build isa-pit, a device with state of its own."""
    snap = tmp_path / "k.snap"
    done = accel_run(
        "--accel", "kvm", "--machine", "pc,kernel-irqchip=on", "--save", str(snap),
        str(GUESTS / "compute.bin"),
    )  # fmt: skip
    assert done.returncode == 111, done.stderr
    got = accel_run("--restore", str(snap), "--accel", "tcg")
    assert got.returncode == 1 and got.stdout == ""
    line = one_line(got.stderr)
    assert line.startswith(f"accel: error: {snap}: on tcg this machine would have devices"), line
    assert "kvm-pit" in line


def test_stop_after_durations() -> None:
    assert parse_duration("500ms") == pytest.approx(0.5)
    assert parse_duration("2s") == 2.0
    assert parse_duration("1.5") == 1.5
    assert parse_duration("1m") == 60.0
    for bad in ("", "0s", "-1s", "soon", "5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    got = accel_run("--stop-after", "soon", str(GUESTS / "compute.bin"))
    assert got.returncode == 2 and "Traceback" not in got.stderr
    assert "--stop-after" in got.stderr


# --------------------------------------------------------------------------- the API


@pytest.fixture
def tcg() -> Iterator[accel.Accelerator]:
    with accel.open("tcg") as acc:
        yield acc


def test_pause_enters_paused_from_created_and_resume_leaves_it(tcg: accel.Accelerator) -> None:
    m = Machine(tcg, "pc,kernel-irqchip=off")
    with pytest.raises(accel.errors.VcpuStateError):
        m.pause()  # not initialised
    with m:
        states: list[str] = []
        m.add_runstate_notifier(lambda old, new: states.append(f"{old.value}->{new.value}"))
        m.pause()
        assert m.state is RunState.PAUSED
        m.pause()  # idempotent
        m.resume()
        assert states == ["created->paused", "paused->running"]


def test_machine_stop_pauses_the_run_at_a_boundary(tcg: accel.Accelerator) -> None:
    import threading

    with Machine(tcg, "pc,kernel-irqchip=off") as m:
        load_image(m, b"\xeb\xfe", 0x1000, None)
        threading.Timer(0.2, lambda: m.stop(7, "enough", kind="stopped")).start()
        result = m.run()
        assert (result.status, result.kind, result.message) == (7, "stopped", "enough")
        assert m.state is RunState.PAUSED and m.ended is None
        assert not result.guest_ended


def test_no_import_cycle_between_machine_and_snapshot() -> None:
    """accel.snapshot imports accel.machine; the machine layer imports it only when used."""
    code = "import accel.machine.machine, sys; assert 'accel.snapshot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env={**os.environ})
