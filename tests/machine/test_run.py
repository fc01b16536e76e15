"""`accel run` and the example guests: output, exit status, every clock on every accelerator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import accel
from accel.machine import Machine, RunState
from accel.runner import RunOptions, load_image, run_image

ROOT = Path(__file__).resolve().parents[2]
GUESTS = ROOT / "examples" / "guests"
ACCELS = [pytest.param("kvm", marks=pytest.mark.kvm), "tcg"]


def run(accel_name: str, guest: str, machine: str = "pc", **kw: object) -> tuple[int, str, str]:
    out: list[bytes] = []
    acc = accel.open(accel_name)
    try:
        result = run_image(
            acc,
            (GUESTS / f"{guest}.bin").read_bytes(),
            RunOptions(machine=machine, timeout=30, **kw),  # type: ignore[arg-type]
            console=out.append,
        )
    finally:
        acc.close()
    return result.status & 0xFF, b"".join(out).decode(), result.kind


@pytest.mark.parametrize("accel_name", ACCELS)
@pytest.mark.parametrize(
    ("guest", "status", "output", "kind"),
    [
        ("hello", 1, "Hello from a guest, via debugcon on port 0xE9!\n", "debug-exit"),
        ("compute", 111, "fib(10) = 55\n", "debug-exit"),
        ("halt", 0, "halting with interrupts disabled\n", "halt"),
    ],
)
def test_example_guests(accel_name: str, guest: str, status: int, output: str, kind: str) -> None:
    assert run(accel_name, guest) == (status, output, kind)


def clocks_output(rtc: str, pit: str, hpet: str, kvmclock: str) -> str:
    return f"rtc: {rtc}\npit: {pit}\nhpet: {hpet}\nkvmclock: {kvmclock}\n"


@pytest.mark.parametrize(
    ("accel_name", "machine", "expect"),
    [
        pytest.param("kvm", "pc", ("ok", "ok", "ok", "ok"), marks=pytest.mark.kvm),
        # in-kernel irqchip: the PIT the guest latches is KVM's (kvm-pit)
        pytest.param(
            "kvm", "pc,kernel-irqchip=on", ("ok", "ok", "ok", "ok"), marks=pytest.mark.kvm
        ),
        pytest.param("kvm", "q35", ("ok", "ok", "ok", "ok"), marks=pytest.mark.kvm),
        pytest.param("kvm", "isapc", ("ok", "ok", "absent", "ok"), marks=pytest.mark.kvm),
        pytest.param("kvm", "microvm", ("absent", "ok", "absent", "ok"), marks=pytest.mark.kvm),
        ("tcg", "pc", ("ok", "ok", "ok", "absent")),
        ("tcg", "q35", ("ok", "ok", "ok", "absent")),
        ("tcg", "isapc", ("ok", "ok", "absent", "absent")),
        ("tcg", "microvm", ("ok", "ok", "absent", "absent")),
    ],
)
def test_guest_reads_every_listed_clock(
    accel_name: str, machine: str, expect: tuple[str, str, str, str]
) -> None:
    """The guest finds working exactly the clock devices the machine lists."""
    status, output, _ = run(accel_name, "clocks", machine)
    assert output == clocks_output(*expect)
    acc = accel.open(accel_name)
    try:
        listed = Machine.describe(acc, machine).device_names()
    finally:
        acc.close()
    names = {"rtc": {"mc146818rtc"}, "pit": {"isa-pit", "kvm-pit"}, "hpet": {"hpet"},
             "kvmclock": {"kvmclock"}}  # fmt: skip
    for (clock, devs), got in zip(names.items(), expect, strict=True):
        assert (got == "ok") == bool(listed & devs), clock
    mask = sum(1 << i for i, got in enumerate(expect) if got == "ok")
    assert status == ((mask << 1) | 1) & 0xFF


@pytest.mark.parametrize("accel_name", ACCELS)
def test_load_addr_and_entry(accel_name: str) -> None:
    # mov al,0x2a; out 0xf4,al  at 0x7c00
    image = bytes.fromhex("b02ae6f4")
    acc = accel.open(accel_name)
    try:
        result = run_image(acc, image, RunOptions(load_addr=0x7C00, timeout=30))
    finally:
        acc.close()
    assert result.status == (0x2A << 1) | 1


def test_entry_needs_load_addr() -> None:
    acc = accel.open("tcg")
    try:
        with pytest.raises(accel.errors.ConfigError, match="--entry needs --load-addr"):
            run_image(acc, b"\xf4", RunOptions(entry=0x1000))
    finally:
        acc.close()


@pytest.mark.parametrize("accel_name", ACCELS)
def test_timeout_ends_a_spinning_guest(accel_name: str) -> None:
    image = bytes.fromhex("ebfe")  # jmp $
    acc = accel.open(accel_name)
    try:
        result = run_image(acc, image, RunOptions(load_addr=0x1000, timeout=0.5))
    finally:
        acc.close()
    assert (result.status, result.kind) == (124, "timeout")


def accel_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accel", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_command_streams_output_and_says_how_it_ended() -> None:
    p = accel_cmd("run", "--accel", "tcg", str(GUESTS / "compute.bin"))
    assert p.returncode == 111
    assert p.stdout == "fib(10) = 55\n"
    assert "isa-debug-exit" in p.stderr and "111" in p.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "/nonexistent.bin"], "cannot read image"),
        (["run", "--accel", "tcg", "-M", "pc-i440fx-9.9", "IMG"], "unknown machine type"),
        (["run", "--accel", "tcg", "--device", "kvmclock", "IMG"], "cannot be created"),
        (["run", "--accel", "tcg", "--cpu", "host", "IMG"], "requires a hardware accelerator"),
    ],
)
def test_command_errors_are_one_clear_line(args: list[str], needle: str) -> None:
    args = [str(GUESTS / "hello.bin") if a == "IMG" else a for a in args]
    p = accel_cmd(*args)
    assert p.returncode == 1
    assert needle in p.stderr and "Traceback" not in p.stderr


def test_no_debug_devices() -> None:
    p = accel_cmd("run", "--accel", "tcg", "--no-debug-devices", "--timeout", "5",
                  str(GUESTS / "hello.bin"))  # fmt: skip
    # No debugcon, no exit port: the guest's writes go nowhere and it halts (cli; hlt).
    assert (p.returncode, p.stdout) == (0, "")
    assert "halted with interrupts disabled" in p.stderr


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("as", "ld", "objcopy")), reason="GNU binutils not installed"
)
def test_prebuilt_guests_match_their_listings(tmp_path: Path) -> None:
    for src in GUESTS.glob("*.S"):
        shutil.copy(src, tmp_path)
    shutil.copy(GUESTS / "build.sh", tmp_path)
    subprocess.run(["sh", str(tmp_path / "build.sh")], check=True, timeout=60)
    for src in GUESTS.glob("*.S"):
        name = src.stem + ".bin"
        assert (tmp_path / name).read_bytes() == (GUESTS / name).read_bytes(), name


@pytest.mark.kvm
def test_pause_resume_sets_clock_before_vcpus_run() -> None:
    """QEMU's kvmclock order, seen in the ioctls: GET_CLOCK at pause; SET_CLOCK, then
    KVMCLOCK_CTRL, before the next KVM_RUN; guest time never goes back."""
    from accel_kvm import KvmAccelerator, RecordingSys

    rec = RecordingSys()
    acc = KvmAccelerator(sys=rec)
    assert acc.probe()
    with Machine(acc, "pc,kernel-irqchip=off", devices=["isa-debug-exit,iobase=0xf4,iosize=4",
                 "isa-debugcon"]) as m:  # fmt: skip
        load_image(m, (GUESTS / "clocks.bin").read_bytes(), None, None)
        assert m.run(timeout=30).kind == "debug-exit"  # the guest enabled kvmclock
        assert m.vm is not None
        before = m.vm.get_clock().clock
        n = len(rec.log)
        m.pause()
        assert m.state is RunState.PAUSED
        paused_at = m.device("kvmclock").state()["clock"]
        assert isinstance(paused_at, int) and paused_at >= before
        assert "KVM_GET_CLOCK" in rec.names()[n:]
        n = len(rec.log)
        m.resume()
        m.run(timeout=30)  # continues after the exit port: hlt
        after = rec.names()[n:]
        assert after.index("KVM_SET_CLOCK") < after.index("KVM_KVMCLOCK_CTRL")
        assert after.index("KVM_KVMCLOCK_CTRL") < after.index("KVM_RUN")
        assert m.vm.get_clock().clock >= paused_at
    acc.close()


@pytest.mark.parametrize("accel_name", ACCELS)
def test_pause_from_another_thread_stops_the_running_guest(accel_name: str) -> None:
    import threading

    acc = accel.open(accel_name)
    try:
        with Machine(acc, "microvm,kernel-irqchip=off") as m:
            load_image(m, bytes.fromhex("ebfe"), 0x1000, None)  # jmp $
            states: list[str] = []
            m.add_runstate_notifier(lambda old, new: states.append(new.value))
            result: list[object] = []
            t = threading.Thread(target=lambda: result.append(m.run(timeout=60)))
            t.start()
            while m.state is not RunState.RUNNING:
                threading.Event().wait(0.01)
            m.pause()
            assert m.state is RunState.PAUSED
            frozen = m.guest_ns()
            assert m.guest_ns() == frozen
            m.resume()
            m.request_stop(0, "test over", kind="test")
            m.kick()
            t.join(60)
            assert not t.is_alive()
            assert states == ["running", "paused", "running"]
    finally:
        acc.close()


def test_user_debug_device_spec_replaces_the_default() -> None:
    # QEMU-style: the user names isa-debug-exit (elsewhere); it replaces accel run's own.
    image = bytes.fromhex("b005e6f0")  # mov al,5; out 0xf0,al
    acc = accel.open("tcg")
    try:
        result = run_image(
            acc,
            image,
            RunOptions(load_addr=0x1000, devices=["isa-debug-exit,iobase=0xf0,iosize=1"]),
        )
    finally:
        acc.close()
    assert result.status == 11


def test_fallback_is_reported(tmp_path: Path) -> None:
    env = dict(os.environ, ACCEL_KVM_DEVICE=str(tmp_path / "no-kvm"))
    p = subprocess.run(
        [sys.executable, "-m", "accel", "run", "--accel", "kvm:tcg",
         str(GUESTS / "compute.bin")],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert p.returncode == 111
    assert "accel: kvm is not usable (" in p.stderr and "falling back to tcg" in p.stderr


def test_fallback_over_a_plugin_that_is_not_loaded() -> None:
    env = dict(os.environ, ACCEL_PLUGINS="tcg")
    p = subprocess.run(
        [sys.executable, "-m", "accel", "run", "--accel", "kvm:tcg", str(GUESTS / "compute.bin")],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert p.returncode == 111, p.stderr
    assert "accel: kvm is not usable (" in p.stderr and "ACCEL_PLUGINS" in p.stderr
    assert "falling back to tcg" in p.stderr


class _HaltThenPause:
    """A vCPU proxy: when the guest halts, another thread asks the machine to pause
    *before* the run loop sees the halt, so the loop ends without ever handling the
    request — the race that once left ``Machine.pause()`` waiting for ever."""

    def __init__(self, inner: accel.Vcpu, machine: Machine, paused: list[bool]) -> None:
        self._inner = inner
        self._machine = machine
        self._paused = paused

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def run(self) -> accel.Exit:
        import threading

        ex = self._inner.run()
        if isinstance(ex, accel.HaltExit):
            asker = threading.Thread(
                target=lambda: (self._machine.pause(), self._paused.append(True)), daemon=True
            )
            asker.start()
            asker.join(0.3)  # it is now waiting for the loop to acknowledge
        return ex


def test_pause_requested_as_the_run_ends_does_not_hang() -> None:
    import threading

    acc = accel.open("tcg")
    try:
        with Machine(acc, "microvm") as m:
            load_image(m, bytes.fromhex("f4"), 0x1000, None)  # hlt (interrupts off)
            paused: list[bool] = []
            m.vcpus[0] = _HaltThenPause(m.vcpus[0], m, paused)  # type: ignore[assignment]
            result = m.run(timeout=30)
            assert result.kind == "halt"
            deadline = threading.Event()
            for _ in range(100):
                if paused:
                    break
                deadline.wait(0.05)
            assert paused == [True], "pause() never returned after the run ended"
            assert m.state is RunState.PAUSED
    finally:
        acc.close()


def test_a_run_restores_the_signal_handlers_it_set() -> None:
    import signal

    from accel.runner import STOP_SIGNALS

    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    acc = accel.open("tcg")
    try:
        result = run_image(acc, bytes.fromhex("f4"), RunOptions(load_addr=0x1000, timeout=30))
    finally:
        acc.close()
    assert result.kind == "halt"
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before


def test_runner_options_are_frozen_dataclasses() -> None:
    import dataclasses

    options = RunOptions(machine="q35", timeout=1.0)
    assert dataclasses.replace(options, timeout=2.0) == RunOptions(machine="q35", timeout=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 3.0  # type: ignore[misc]
