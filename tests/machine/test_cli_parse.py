"""``accel run``'s direct argument parser agrees with argparse, or leaves the line to it.

The two parsers share one option table (``accel.machine.cli.RUN_OPTIONS``). Whatever the
direct parser returns must be exactly argparse's namespace for the same command line; for
anything it is not sure of (abbreviations, ``--``, help, errors) it returns None, and
argparse's answer and messages are what the user gets.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from accel import cli
from accel.machine import cli as machine_cli

_PARSER: list[argparse.ArgumentParser] = []


def argparse_run(argv: list[str]) -> argparse.Namespace:
    """``accel run ARGV`` through the whole argparse parser (top level and ``run``)."""
    if not _PARSER:
        _PARSER.append(cli.build_parser(("accel.machine.cli",)))
    return _PARSER[0].parse_args(["run", *argv])


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_agrees(argv: list[str]) -> bool:
    """Check the direct parser against argparse on ``argv``; True when it did not decline."""
    fast = machine_cli.parse_fast("run", argv)
    if fast is None:
        return False
    slow = argparse_run(argv)  # must not fail where the direct parser succeeded
    fast_vars, slow_vars = vars(fast), vars(slow)
    assert fast_vars.keys() == slow_vars.keys(), argv
    for key, value in slow_vars.items():
        assert same(fast_vars[key], value), (argv, key, fast_vars[key], value)
    return True


LONG = [n for opt in machine_cli.RUN_OPTIONS for n in opt.names if n.startswith("--")]
NAMES = [n for opt in machine_cli.RUN_OPTIONS if not opt.positional for n in opt.names]
ODD_NAMES = [
    "--acc", "--mach", "--rest", "--restore-m", "--no", "--dev", "--stop", "-h", "--help",
    "--", "-", "-Mmicrovm", "-M=pc", "--bogus", "--version", "--=x", "-x", "---accel",
    "--Accel",
]  # fmt: skip
VALUES = [
    "kvm", "tcg", "kvm:tcg", "microvm", "pc", "q35,kernel-irqchip=on", "host,-kvmclock",
    "isa-debug-exit,iobase=0xf4", "1", "0.5", "1e3", "nan", "inf", "-1", "-0.5", "-x", "",
    " ", "0x1000", "4096", "0b11", "zz", "500ms", "2s", "1m", "5q", "-5s", "same-host",
    "catch-up", "bogus", "img.bin", "a b", "-a b", "a=b", "--accel", "-M", "--", "-",
]  # fmt: skip

names = st.sampled_from(NAMES)
values = st.one_of(st.sampled_from(VALUES), st.text(max_size=6))
token_groups = st.one_of(
    st.tuples(names, values).map(list),
    st.tuples(st.sampled_from(LONG), values).map(lambda nv: [f"{nv[0]}={nv[1]}"]),
    st.tuples(st.sampled_from(ODD_NAMES), values).map(list),
    names.map(lambda n: [n]),
    st.sampled_from(ODD_NAMES).map(lambda n: [n]),
    values.map(lambda v: [v]),
)
#: Plausible values of each option: most command lines made of them are parsed directly.
GOOD_VALUES = {
    "--accel": ["kvm", "tcg", "kvm:tcg"],
    "--machine": ["microvm", "pc", "q35,kernel-irqchip=on"],
    "-M": ["microvm", "isapc"],
    "--cpu": ["host", "host,-kvmclock"],
    "--device": ["isa-debug-exit,iobase=0xf4", "kvmclock"],
    "--timeout": ["1", "0.5", "1e3", "nan"],
    "--stop-after": ["500ms", "2s", "1m"],
    "--save": ["vm.snap", ""],
    "--restore": ["vm.snap"],
    "--restore-mode": ["same-host", "catch-up"],
    "--load-addr": ["0x1000", "4096", "0b11"],
    "--entry": ["0xffff0", "7"],
}
GOOD_PAIRS = [(n, v) for n, vs in GOOD_VALUES.items() for v in vs]
good_groups = st.one_of(
    st.sampled_from(GOOD_PAIRS).map(list),
    st.sampled_from([f"{n}={v}" for n, v in GOOD_PAIRS if n.startswith("--") and v]).map(
        lambda t: [t]
    ),
    st.just(["--no-debug-devices"]),
    st.sampled_from(["img.bin", "/tmp/tiny.bin", "x=y"]).map(lambda v: [v]),
)
argvs = st.one_of(
    st.lists(good_groups, max_size=8),
    st.lists(st.one_of(good_groups, token_groups), max_size=8),
    st.lists(token_groups, max_size=8),
).map(lambda groups: [t for g in groups for t in g])


@settings(max_examples=600, deadline=None)
@given(argv=argvs)
def test_direct_parser_declines_or_agrees_with_argparse(argv: list[str]) -> None:
    event("parsed directly" if assert_agrees(argv) else "left to argparse")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["img.bin"],
        ["--accel", "kvm", "-M", "microvm", "/tmp/tiny.bin"],
        ["img", "--accel=kvm:tcg", "--machine=q35,kernel-irqchip=on", "--cpu", "host"],
        ["--device", "a,x=1", "img", "--device=b", "--device", "c"],
        ["--timeout", "1.5", "--stop-after=500ms", "--save", "vm.snap", "img"],
        ["--restore", "vm.snap", "--restore-mode", "catch-up"],
        ["--load-addr", "0x1000", "--entry=4096", "--no-debug-devices", "img"],
        ["-M", "pc", "-M", "isapc", "--accel", "tcg", "--accel", "kvm", "img"],
        ["--save", "", "img"],
    ],
)
def test_common_command_lines_are_parsed_directly(argv: list[str]) -> None:
    assert assert_agrees(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["-h"],
        ["--acc", "kvm", "img"],
        ["--", "img"],
        ["img", "other"],
        ["--accel"],
        ["--accel", "--cpu", "host"],
        ["--timeout", "-1", "img"],
        ["--timeout", "soon"],
        ["--restore-mode", "later"],
        ["--load-addr", "zz"],
        ["--stop-after", "5q"],
        ["--no-debug-devices=1"],
        ["--accel=", "img"],
        ["-Mmicrovm", "img"],
        ["-M=pc", "img"],
        ["-", "img"],
        ["--accel=--"],
        ["--save=-x", "img"],
    ],
)
def test_unsure_command_lines_are_left_to_argparse(argv: list[str]) -> None:
    assert machine_cli.parse_fast("run", argv) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--timeout", "soon"],
            "accel run: error: argument --timeout: invalid float value: 'soon'",
        ),
        (["--acc"], "accel run: error: argument --accel: expected one argument"),
        (["a", "b"], "accel: error: unrecognized arguments: b"),
    ],
)
def test_argparse_reports_what_the_direct_parser_declines(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: accel ") and err.endswith(message + "\n")


def test_main_parses_run_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """``accel run ...`` reaches its handler without building the argparse parser."""

    def no_parser(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("argparse parser built for a plain run command line")

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(cli, "build_parser", no_parser)
    monkeypatch.setattr(machine_cli, "_cmd_run", lambda args, ctx: seen.append(args) or 7)
    assert cli.main(["run", "--accel", "kvm", "-M", "microvm", "img"]) == 7
    (args,) = seen
    expected = vars(argparse_run(["--accel", "kvm", "-M", "microvm", "img"]))
    assert {k: v for k, v in vars(args).items() if k != "handler"} == {
        k: v for k, v in expected.items() if k != "handler"
    }


def test_namespace_compares_and_prints_like_argparse() -> None:
    fast = machine_cli.parse_fast("run", ["img", "--device", "d"])
    assert fast is not None
    slow = argparse_run(["img", "--device", "d"])
    assert fast == slow and slow == fast
    assert "image" in fast and "nope" not in fast
    assert repr(fast).startswith("Namespace(") and "image='img'" in repr(fast)
    assert fast != argparse.Namespace(image="img")
