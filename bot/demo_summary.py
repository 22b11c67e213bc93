"""Print one line per release report: what `make demo` ends with.

It reads only the reports it is given; `make demo` deletes every earlier report before its
releases run, so a release that wrote nothing is named here as missing, never shown from a
stale file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class ReportUnreadable(Exception):
    """A report this run should have written is missing or is not a release report."""


def read_report(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ReportUnreadable(
            f"{path}: no report: its release did not write one (see its output above); "
            "run `make demo` again from the start"
        )
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ReportUnreadable(f"{path}: not JSON ({error}); run `make demo` again") from None
    if not isinstance(report, dict) or "release_id" not in report:
        raise ReportUnreadable(f"{path}: not a release report; run `make demo` again")
    return report


def outcome(report: dict[str, Any]) -> str:
    """What happened, from the report's own fields."""
    rollback = report["rollback_status"]
    if rollback["required"]:
        return f"{rollback['triggered_by']} rollback: {rollback['reason']}"
    if report["status"] == "failed":
        failed = [c for c in report["pre_deployment"]["checks"] if c["status"] == "fail"]
        return "stopped by " + "; ".join(f"{c['check']}: {c['details']}" for c in failed)
    traffic = report["progressive_rollout"]["current_percentage"]
    return f"{report['version']} serves {traffic:g}% of traffic"


def summary_lines(paths: list[Path]) -> list[str]:
    lines = [f"{'release':32} {'status':12} {'traffic':>7}  outcome"]
    for path in paths:
        report = read_report(path)
        traffic = report["progressive_rollout"]["current_percentage"]
        lines.append(
            f"{report['release_id']:32} {report['status']:12} {traffic:>6g}%  {outcome(report)}"
        )
    return lines


def main(args: list[str]) -> int:
    try:
        lines = summary_lines([Path(arg) for arg in args])
    except ReportUnreadable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
