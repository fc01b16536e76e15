"""Outcomes of the conformance suite: one per (check, accelerator), and the matrix.

Each outcome has a :class:`Status`; ``detail`` says why for anything but a plain pass
(the failure message, the skip or unavailability reason, the declared reason).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckOutcome", "Status", "SuiteResult", "format_matrix"]


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    UNAVAILABLE = "unavailable"
    DECLARED = "declared-unsupported"
    DECLARED_PASSES = "declared-unsupported-but-passes"

    @property
    def cell(self) -> str:
        """The short text shown in the matrix."""
        return _CELLS[self]


_CELLS = {
    Status.PASS: "pass",
    Status.FAIL: "FAIL",
    Status.SKIPPED: "skipped",
    Status.UNAVAILABLE: "unavailable",
    Status.DECLARED: "declared",
    Status.DECLARED_PASSES: "pass (declared)",
}


def _skip_reason(longrepr: object) -> str:
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ").strip()


def _fail_message(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return str(message).strip()
    text = str(getattr(report, "longrepr", "") or "").strip()
    return text.splitlines()[-1] if text else "failed"


@dataclass
class CheckOutcome:
    """The outcome of one check on one accelerator, merged over setup/call/teardown."""

    check: str
    accelerator: str
    nodeid: str = ""
    status: Status = Status.PASS
    detail: str = ""
    unneeded: tuple[str, ...] = ()
    duration: float = 0.0
    _decided: bool = field(default=False, repr=False)

    def add(self, report: Any) -> None:
        """Fold in one phase's :class:`pytest.TestReport`."""
        self.duration += float(getattr(report, "duration", 0.0) or 0.0)
        props = list(getattr(report, "user_properties", ()))
        marked = {str(v) for k, v in props if k == "accel_status"}
        unneeded = tuple(dict.fromkeys(str(v) for k, v in props if k == "accel_unneeded"))
        if report.failed:
            if self.status is not Status.FAIL:
                prefix = "" if report.when == "call" else f"error in {report.when}: "
                self.status, self.detail = Status.FAIL, prefix + _fail_message(report)
            self._decided = True
            return
        if self._decided:
            return
        if report.skipped:
            if Status.UNAVAILABLE.value in marked:
                status = Status.UNAVAILABLE
            elif Status.DECLARED.value in marked:
                status = Status.DECLARED
            else:
                status = Status.SKIPPED
            self.status, self.detail = status, _skip_reason(report.longrepr)
            self._decided = True
        elif report.when == "call":
            if unneeded:
                self.status = Status.DECLARED_PASSES
                self.unneeded = unneeded
                self.detail = "declared unsupported but passes: " + ", ".join(unneeded)
            else:
                self.status = Status.PASS
            self._decided = True

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "accelerator": self.accelerator,
            "status": self.status.value,
            "detail": self.detail,
            "unneeded_declarations": list(self.unneeded),
            "nodeid": self.nodeid,
            "duration": round(self.duration, 4),
        }


@dataclass
class SuiteResult:
    """Every outcome of one run of the suite, with the accelerators it covered."""

    accelerators: list[str]
    outcomes: list[CheckOutcome]
    exit_code: int = 0
    output: str = ""
    duration: float = 0.0

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.status is Status.FAIL]

    @property
    def ok(self) -> bool:
        """True when nothing failed and pytest itself reported no error."""
        return not self.failed and self.exit_code in (0, 5)

    @property
    def checks(self) -> list[str]:
        return list(dict.fromkeys(o.check for o in self.outcomes))

    def get(self, check: str, accelerator: str) -> CheckOutcome | None:
        for o in self.outcomes:
            if o.check == check and o.accelerator == accelerator:
                return o
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accelerators": self.accelerators,
            "checks": self.checks,
            "duration": round(self.duration, 3),
            "pytest_exit_code": self.exit_code,
            "results": [o.to_json() for o in self.outcomes],
        }


def _short(check: str) -> str:
    return check.removeprefix("test_")


def format_matrix(result: SuiteResult) -> list[str]:
    """The check x accelerator matrix, then one line per outcome that is not a plain pass."""
    accs = result.accelerators
    rows: list[Sequence[str]] = [["CHECK", *accs]]
    for check in result.checks:
        row = [_short(check)]
        for acc in accs:
            o = result.get(check, acc)
            row.append(o.status.cell if o else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    notes: list[str] = []
    for acc in accs:
        unavailable = [
            o for o in result.outcomes if o.accelerator == acc and o.status is Status.UNAVAILABLE
        ]
        if unavailable:
            notes.append(f"{acc}: unavailable: {_strip_name(acc, unavailable[0].detail)}")
    for o in _not_plain(result.outcomes):
        notes.append(f"{_short(o.check)}[{o.accelerator}]: {o.status.value}: {o.detail}")
    if notes:
        lines.append("")
        lines.extend(notes)
    return lines


def _strip_name(acc: str, detail: str) -> str:
    return detail.removeprefix(f"{acc} is unavailable: ")


def _not_plain(outcomes: Iterable[CheckOutcome]) -> list[CheckOutcome]:
    return [o for o in outcomes if o.status not in (Status.PASS, Status.UNAVAILABLE)]
