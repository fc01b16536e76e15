"""``accel snapshot inspect FILE [--json]`` (:func:`add_snapshot`).

A damaged or foreign file gives one line ``accel: error: FILE: ...`` and exit status 1
(the error is a :class:`~accel.errors.SnapshotError`, which the command's main loop
prints). FILE may be a stream (``/dev/stdin``, a FIFO): it is checked as it is read (see
:func:`accel.snapshot.open_snapshot`); a directory, block device or terminal is refused.
"""

from __future__ import annotations

import argparse
import datetime

from ..snapshot import SnapshotInfo, inspect, naming, open_snapshot
from . import Context

__all__ = ["add_snapshot", "cmd_inspect", "format_info"]


def add_snapshot(parser: argparse.ArgumentParser) -> None:
    """``accel snapshot inspect FILE [--json]``."""
    parser.description = (
        "Work with snapshot files written by accel (machine.save / accel run --save)."
    )
    sub = parser.add_subparsers(
        title="snapshot commands", metavar="COMMAND", required=True, parser_class=type(parser)
    )
    q = sub.add_parser(
        "inspect",
        help="print a snapshot's header and sections",
        description="Check a snapshot file (structure, lengths, every CRC32) and print its "
        "header (format, accelerator, machine type, CPU model) and sections. Exit status 1 "
        "with a one-line error for a damaged or foreign file.",
    )
    q.add_argument("file", metavar="FILE", help="the snapshot file")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=cmd_inspect)


def cmd_inspect(args: argparse.Namespace, ctx: Context) -> int:
    path: str = args.file
    with open_snapshot(path) as f, naming(path):  # a stream (a pipe, a FIFO) is spooled
        info = inspect(f)
    if args.json:
        ctx.print_json(info.to_json())
    else:
        for line in format_info(info, path):
            ctx.print(line)
    return 0


def _when(ns: int) -> str:
    try:
        t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ns)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_info(info: SnapshotInfo, path: str) -> list[str]:
    h = info.header
    lines = [
        f"file:          {path} ({info.size} bytes)",
        f"format:        {h.format_name} version {h.format_version}",
        f"accelerator:   {h.accelerator or '-'}",
        f"machine type:  {h.machine_type or '-'}",
        f"cpu model:     {h.cpu_model or '-'}",
        f"created:       {_when(h.created_ns)}",
        "sections:",
    ]
    rows = [("NAME", "INSTANCE", "VERSION", "BYTES", "")]
    for s in info.sections:
        extra = s.note
        if s.name == "clock" and s.fields is not None:
            reliable = s.fields.get("reliable")
            extra = f"clock {s.fields.get('clock')} ns, reliable={reliable}"
        elif s.name == "vm" and s.fields is not None:
            regions = s.fields.get("regions") or []
            extra = f"{len(regions)} RAM region(s), vCPUs {s.fields.get('vcpus')}"
        elif s.name == "machine" and s.fields is not None:
            extra = (
                f"{s.fields.get('machine_type')}, cpu {s.fields.get('cpu')}, "
                f"devices: {', '.join(s.fields.get('devices') or []) or '-'}"
            )
        elif s.summary:
            extra = s.summary
        elif s.fields is None and not s.note:
            extra = "(section not known to this accel)"
        rows.append((s.name, str(s.instance), str(s.version_id), str(s.length), extra))
    for r in info.ram:
        rows.append(
            (
                "ram",
                str(r.region),
                "1",
                str(r.stored_bytes),
                f"{r.bytes} bytes of RAM in {r.chunks} chunks ({r.zero_chunks} all-zero)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append(("  " + "  ".join([*cells, row[4]])).rstrip())
    return lines
