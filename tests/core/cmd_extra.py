"""A command module for test_cli: shows how another area adds subcommands."""

from __future__ import annotations

import argparse
from typing import Any

from accel.cli import Context
from accel.errors import ConfigError


def _hello(args: argparse.Namespace, ctx: Context) -> int:
    if args.fail:
        raise ConfigError("machine type 'pc-9.9' is unknown\nsecond line", hint="see the list")
    if args.crash:
        raise KeyboardInterrupt
    ctx.print(f"hello from {len(ctx.registry.accelerators())} accelerators")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("hello", help="test command")
    p.add_argument("--fail", action="store_true")
    p.add_argument("--crash", action="store_true")
    p.set_defaults(handler=_hello)
