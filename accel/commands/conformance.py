"""``accel conformance``: run the conformance suite and print the check x accelerator matrix.

:func:`add_conformance` adds the command's arguments (see :mod:`accel.cli`). Each cell is
``pass``, ``FAIL``, ``skipped``, ``unavailable``, ``declared`` (declared unsupported and
failing, so skipped with the reason) or ``pass (declared)`` (declared unsupported but
passing: the declaration is not needed); the lines under the matrix give the reason for
everything that is not a plain pass. Exit status 0 only when nothing failed.

The suite runs under pytest, which the main install does not bring: install the
``conformance`` extra (``pip install 'accel[conformance]'``). Without pytest the command
says so in one line and exits 1.

Example::

    $ accel conformance --accel kvm,tcg,xen
    $ accel conformance --json | jq '.results[] | select(.status == "fail")'
    $ accel conformance --accel kvm --kernel-tests kut/ --kernel-tests-expected kut/results.tsv
"""

from __future__ import annotations

import argparse

from ..errors import AccelError
from . import Context

__all__ = ["CONFORMANCE_EXTRA", "add_conformance"]

#: What to install for ``accel conformance`` (pyproject.toml's ``conformance`` extra).
CONFORMANCE_EXTRA = "accel[conformance]"


def _cmd_conformance(args: argparse.Namespace, ctx: Context) -> int:
    try:  # pytest is needed only here: importing this module must not need it
        from ..testing.results import format_matrix
        from ..testing.runner import run_suite
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ("pytest", "_pytest"):
            raise  # a broken install of something else: not a missing extra
        raise AccelError(
            "the conformance suite needs pytest", hint=f"pip install '{CONFORMANCE_EXTRA}'"
        ) from exc
    reg = ctx.registry
    names = None
    if args.accel:
        names = [n.strip() for n in args.accel.replace(":", ",").split(",") if n.strip()]
        for name in names:
            reg.info(name)  # unknown names: an AccelError with a did-you-mean
    extra: list[str] = []
    if args.k:
        extra += ["-k", args.k]
    if args.exitfirst:
        extra.append("-x")
    if args.kernel_tests_expected and not args.kernel_tests:
        raise AccelError(
            "--kernel-tests-expected compares kernel tests: give --kernel-tests DIR too"
        )
    if args.kernel_tests:  # a malformed unittests.cfg or table: one line, before pytest
        from ..testing.kernel_tests import load, load_expected

        load(args.kernel_tests)
        if args.kernel_tests_expected:
            load_expected(args.kernel_tests_expected)
    result = run_suite(
        names,
        registry=reg,
        pytest_args=extra,
        quiet=not args.verbose,
        kernel_tests=args.kernel_tests,
        kernel_tests_expected=args.kernel_tests_expected,
    )
    if args.json:
        ctx.print_json(result.to_json())
    else:
        for line in format_matrix(result):
            ctx.print(line)
        ctx.print()
        failed = len(result.failed)
        verdict = "conformance: " + (f"{failed} check(s) failed" if failed else "nothing failed")
        ctx.print(f"{verdict} ({len(result.outcomes)} results in {result.duration:.1f} s)")
        if not result.outcomes and result.exit_code not in (0, 5):
            ctx.print("pytest could not run the suite; its output follows")
            ctx.print(result.output.rstrip())
    return 0 if result.ok else 1


def add_conformance(parser: argparse.ArgumentParser) -> None:
    """``accel conformance [--accel NAMES] [--json] [-k EXPR] [-x] [-v] [--kernel-tests DIR
    [--kernel-tests-expected FILE]]``."""
    parser.description = (
        "Run every conformance check (accel.testing.suite) on each accelerator and "
        "print pass / FAIL / skipped / unavailable / declared for each. Checks of features an "
        "accelerator declares unsupported skip with its reason when they fail. Exit status 0 "
        "only when nothing failed."
    )
    p = parser
    p.add_argument(
        "--accel",
        metavar="NAMES",
        help="comma- or colon-separated accelerators (default: every registered one)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-k", metavar="EXPR", help="only checks matching this pytest -k expression")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    p.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    p.add_argument(
        "--kernel-tests",
        metavar="DIR",
        help="also run the kvm-unit-tests of DIR (unittests.cfg and its kernels): "
        "one kut::NAME row each",
    )
    p.add_argument(
        "--kernel-tests-expected",
        metavar="FILE",
        help="reference results (TSV: test, accel, smp, append, status, wall, summary): a "
        "kernel test passes when it gives the reference's exit status and SUMMARY line",
    )
    p.set_defaults(handler=_cmd_conformance)
