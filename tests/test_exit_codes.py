"""Scripts read a release's outcome from the exit code (README "Exit codes"): `run` and
`resume` exit 0 completed, 3 rolled back, 4 failed, 5 waiting for a human with no terminal,
2 an incomplete line, 1 bad input."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli

START = "2026-11-24T14:00:00Z"
LINE = "payments-api 2.4.1 risk=medium ticket=CHG-1 changes=x"
LOW_RISK = LINE.replace("risk=medium", "risk=low")  # fewer, shorter stages: the same exit
FAULTY = "payments-api 2.4.2 risk=medium ticket=CHG-2 changes=x"
FAILING = "payments-api 2.4.3 risk=low ticket=CHG-3 changes=x deps=payments-db:unhealthy"


def run(tmp_path: Path, line: str, *extra: str) -> tuple[int, str]:
    out = tmp_path / "report.json"
    proc = cli(
        "run", line, "--db", str(tmp_path / "r.db"), "--clock-start", START,
        "--json-out", str(out), *extra,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr
    status = json.loads(out.read_text())["status"] if out.exists() else ""
    return proc.returncode, status


def test_a_completed_release_exits_0(tmp_path: Path) -> None:
    assert run(tmp_path, LOW_RISK, "--approve-as", "alice") == (0, "completed")


def test_a_rolled_back_release_exits_3(tmp_path: Path) -> None:
    assert run(tmp_path, FAULTY, "--approve-as", "alice", "--fault", "errors:3x@25") == (
        3,
        "rolled_back",
    )


def test_a_failed_release_exits_4(tmp_path: Path) -> None:
    assert run(tmp_path, FAILING, "--approve-as", "alice") == (4, "failed")


def test_a_release_waiting_for_approval_without_a_terminal_exits_5(tmp_path: Path) -> None:
    code, _ = run(tmp_path, LINE)
    assert code == 5


def test_an_incomplete_line_exits_2_and_bad_input_1(tmp_path: Path) -> None:
    assert run(tmp_path, "payments-api 2.4.1")[0] == 2
    assert run(tmp_path, LINE, "--fault", "errors:lots")[0] == 1


def test_resume_exits_with_the_outcome_of_the_release_it_finishes(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    crashed = cli(
        "run", FAULTY, "--approve-as", "alice", "--fault", "errors:3x@25", "--db", db,
        "--clock-start", START, "--crash-after-ticks", "3",
    )  # fmt: skip
    assert crashed.returncode == 137
    resumed = cli("resume", "--db", db, "--approve-as", "alice")
    assert resumed.returncode == 3, resumed.stderr
    assert '"status": "rolled_back"' in resumed.stdout
    assert cli("resume", "--db", db).returncode == 0  # nothing left to resume
