"""Print one line per release report: what `make demo` ends with."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    print(f"\n{'release':42} {'status':12} {'traffic':>7}  outcome")
    for path in paths:
        report = json.loads(Path(path).read_text())
        rollout = report["progressive_rollout"]
        rollback = report["rollback_status"]
        if rollback["required"]:
            outcome = f"{rollback['triggered_by']} rollback: {rollback['reason']}"
        elif report["status"] == "failed":
            failed = [
                c["check"] for c in report["pre_deployment"]["checks"] if c["status"] == "fail"
            ]
            outcome = "blocked by " + ", ".join(failed) + "; nothing deployed"
        else:
            outcome = report["summary"].split(". ")[-1]
        print(
            f"{report['release_id']:42} {report['status']:12} {rollout['current_percentage']:>6g}%  {outcome}"
        )
        print(f"{'':42} report: {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
