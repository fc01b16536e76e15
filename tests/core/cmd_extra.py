"""A command module for test_cli: shows how another command is added to ``accel``."""

from __future__ import annotations

import argparse

from accel.commands import Context
from accel.errors import ConfigError


def _hello(args: argparse.Namespace, ctx: Context) -> int:
    if args.fail:
        raise ConfigError("machine type 'pc-9.9' is unknown\nsecond line", hint="see the list")
    if args.crash:
        raise KeyboardInterrupt
    ctx.print(f"hello from {len(ctx.registry.accelerators())} accelerators")
    return 0


def add_hello(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--crash", action="store_true")
    parser.set_defaults(handler=_hello)
