"""End to end through the real command: runs on the simulator, reports against the schema."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT, cli, report_of

START = "2026-11-24T14:00:00Z"  # outside payments-api's peak hours
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout; fix refund rounding"'
# Fewer and shorter stages, for the tests where only the way to completion matters.
LOW_RISK = LINE.replace("risk=medium", "risk=low")


def run(tmp_path: Path, line: str, *extra: str, name: str = "r") -> tuple[dict[str, Any], str]:
    out = tmp_path / f"{name}.json"
    proc = cli(
        "run", line, "--approve-as", "alice", "--db", str(tmp_path / f"{name}.db"),
        "--clock-start", START, "--json-out", str(out), *extra,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr
    report = report_of(out)
    # the outcome's exit code (README "Exit codes")
    assert proc.returncode == {"completed": 0, "rolled_back": 3, "failed": 4}[report["status"]]
    return report, proc.stdout


@dataclass(frozen=True)
class Healthy:
    report: dict[str, Any]
    thread: str
    db: Path


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Healthy:
    """One healthy release of LINE for the module: the tests that only read it share it."""
    where = tmp_path_factory.mktemp("healthy")
    report, thread = run(where, LINE, name="healthy")
    return Healthy(report, thread, where / "healthy.db")


def copy_of(db: Path, tmp_path: Path) -> Path:
    """A test's own copy of a shared database (the run has ended: everything is in the file)."""
    copy = tmp_path / db.name
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", f"{copy}{suffix}")
    return copy


def actions(report: dict[str, Any]) -> list[str]:
    return [e["action"] for e in report["compliance"]["audit_trail"]]


def test_a_healthy_release_completes(healthy: Healthy, contract_schema: dict[str, Any]) -> None:
    report, thread = healthy.report, healthy.thread
    jsonschema.validate(report, contract_schema)
    assert report["status"] == "completed"
    assert report["progressive_rollout"]["current_percentage"] == 100
    assert all(s["status"] == "completed" for s in report["progressive_rollout"]["stages"])
    assert report["rollback_status"]["required"] is False
    assert report["rollback_status"]["started_at"] is None
    assert [a["approver"] for a in report["pre_deployment"]["approvals"]] == ["alice"]
    assert all(e["status"] == "deployed" for e in report["deployment_plan"]["environments"])
    assert report["canary_analysis"]["recommendation"] == "promote"
    steps = Counter(a for a in actions(report) if a == "step_started")
    assert steps["step_started"] == 6  # dev, staging, 5, 25, 50, 100
    assert "release completed" in thread


@pytest.mark.parametrize(
    ("fault", "guardrails"),
    [
        ("errors:3x@25", {"availability", "error_rate"}),
        ("latency:2x@25", {"p95", "p99"}),
        ("kpi:-30%@25", {"kpi:checkout_conversion"}),
    ],
)
def test_a_faulty_release_rolls_back_by_itself(
    tmp_path: Path, contract_schema: dict[str, Any], fault: str, guardrails: set[str]
) -> None:
    report, thread = run(tmp_path, LINE, "--fault", fault)
    jsonschema.validate(report, contract_schema)
    rollback = report["rollback_status"]
    assert report["status"] == "rolled_back"
    assert rollback["required"] is True
    assert rollback["triggered_by"] == "automated"
    assert rollback["success"] is True
    assert report["progressive_rollout"]["current_percentage"] == 0
    assert any(g in rollback["reason"] for g in guardrails), rollback["reason"]
    stages = report["progressive_rollout"]["stages"]
    # The fault starts at 25 %: the 5 % stage passed; a later one broke and nothing went on.
    broke = next(i for i, s in enumerate(stages) if s["health_status"] == "unhealthy")
    assert stages[broke]["percentage"] >= 25
    assert stages[0]["health_status"] == "healthy"
    assert [s["status"] for s in stages[: broke + 1]] == ["rolled_back"] * (broke + 1)
    assert all(s["status"] == "pending" for s in stages[broke + 1 :])
    assert [a for a in report["monitoring"]["alerts"] if a["triggered"]]
    assert "rollback completed" in thread


def test_a_failing_critical_gate_stops_with_nothing_deployed(
    tmp_path: Path, contract_schema: dict[str, Any]
) -> None:
    report, _ = run(tmp_path, LINE + " deps=payments-db:unhealthy")
    jsonschema.validate(report, contract_schema)
    assert report["status"] == "failed"
    failed = [c for c in report["pre_deployment"]["checks"] if c["status"] == "fail"]
    assert [c["check"] for c in failed] == ["dependency_health"]
    assert "payments-db" in failed[0]["details"]
    assert report["progressive_rollout"]["current_percentage"] == 0
    assert all(s["started_at"] is None for s in report["progressive_rollout"]["stages"])
    assert all(e["status"] == "pending" for e in report["deployment_plan"]["environments"])
    assert "step_started" not in actions(report)
    assert report["pre_deployment"]["approvals"] == []


def test_a_degraded_dependency_only_warns(tmp_path: Path) -> None:
    report, _ = run(tmp_path, LOW_RISK + " deps=ledger:degraded")
    checks = {c["check"]: c["status"] for c in report["pre_deployment"]["checks"]}
    assert checks["dependency_health"] == "warning"
    assert report["status"] == "completed"


@pytest.mark.parametrize(
    ("line", "kinds", "extra"),
    [
        (f"{LOW_RISK} strategy=blue_green", ["green verify", "blue-green switch"], []),
        (f"{LOW_RISK} strategy=rolling", ["of instances"], []),
        (f"{LINE} strategy=feature_flag flags=new_checkout", ["dark launch", "flag 5%"], []),
        # Seed 0's shadow step opens on a 4-sigma minute (canary 0.378 % errors vs 0.224 %,
        # both cohorts at the profile's 0.3 %): one of the judge's ~0.2 % false rollbacks of a
        # healthy stage. This test is about the strategies, so its run draws other numbers.
        (f"{LOW_RISK} strategy=shadow", ["shadow 100% mirrored"], ["--seed", "1"]),
    ],
    ids=["blue_green", "rolling", "feature_flag", "shadow"],
)
def test_every_strategy_completes_doing_its_own_thing(
    tmp_path: Path, contract_schema: dict[str, Any], line: str, kinds: list[str], extra: list[str]
) -> None:
    report, thread = run(tmp_path, line, *extra)
    jsonschema.validate(report, contract_schema)
    assert report["status"] == "completed", report["summary"]
    for kind in kinds:
        assert kind in thread
    expected = {"blue_green": "blue_green", "rolling": "rolling", "feature_flag": "feature_flag"}
    strategy = line.split("strategy=")[1].split()[0]
    assert report["deployment_plan"]["strategy"] == expected.get(strategy, "canary")


def test_a_feature_flag_release_rolls_back_with_the_kill_switch(tmp_path: Path) -> None:
    report, _ = run(
        tmp_path, f"{LINE} strategy=feature_flag flags=new_checkout", "--fault", "errors:3x@25"
    )
    assert report["status"] == "rolled_back"
    flag = report["feature_flags"][0]
    assert (flag["name"], flag["status"], flag["percentage"]) == ("new_checkout", "off", 0)
    assert flag["kill_switch"] is True


def test_shadow_catches_a_regression_before_any_user_sees_it(tmp_path: Path) -> None:
    report, _ = run(tmp_path, f"{LINE} strategy=shadow", "--fault", "errors:3x")
    assert report["status"] == "rolled_back"
    assert report["progressive_rollout"]["users_affected"] == 0
    assert report["progressive_rollout"]["stages"][0]["status"] == "rolled_back"


def test_parse_names_exactly_what_is_missing() -> None:
    proc = cli("parse", "newsvc 1.0.0")
    assert proc.returncode == 2
    answer = json.loads(proc.stdout)
    assert answer["error"] == "insufficient_context"
    assert "Build artifacts" in answer["missing"]
    assert "Changes included" in answer["missing"]
    assert answer["next_best_step"]


@pytest.mark.parametrize(
    "bad", ["payments-api 2.4.1 strategy=yolo", "payments-api 2.4.1 stages=5,140"]
)
def test_bad_input_gets_a_message_not_a_traceback(bad: str) -> None:
    proc = cli("parse", bad)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_run_refuses_a_bad_fault_spec(tmp_path: Path) -> None:
    proc = cli("run", LINE, "--fault", "errors:lots", "--db", str(tmp_path / "x.db"))
    assert proc.returncode == 1
    assert "errors:" in proc.stderr and "Traceback" not in proc.stderr


def _steps_once(report: dict[str, Any]) -> None:
    started = [
        (e["action"], e["details"]) for e in report["compliance"]["audit_trail"]
        if e["action"] in ("step_started", "step_completed")
    ]  # fmt: skip
    assert len(started) == len(set(started)), "a step ran twice"


def test_a_hard_kill_mid_release_then_resume_finishes_it(
    tmp_path: Path, contract_schema: dict[str, Any], healthy: Healthy
) -> None:
    reference = healthy.report
    db = tmp_path / "crash.db"
    proc = cli(
        "run", LINE, "--approve-as", "alice", "--db", str(db), "--clock-start", START,
        "--crash-after-ticks", "150",
    )  # fmt: skip
    assert proc.returncode == 137
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute("SELECT status FROM releases").fetchone()
    assert status == "rolling_out"
    out = tmp_path / "resumed.json"
    resumed = cli("resume", "--db", str(db), "--json-out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(out)
    jsonschema.validate(report, contract_schema)
    assert report["status"] == "completed"
    _steps_once(report)
    # Nothing lost or repeated: the same story as the run that was never interrupted.
    assert actions(report) == actions(reference)


def _has_release(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM releases").fetchone()[0] > 0
    except sqlite3.Error:
        return False


@pytest.mark.parametrize("kill_after", [0.05, 0.3, 0.8])
def test_sigkill_at_any_moment_loses_nothing(tmp_path: Path, kill_after: float) -> None:
    db = tmp_path / "k.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", LINE, "--approve-as", "alice", "--db", str(db),
         "--clock-start", START, "--speed", "2000"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not _has_release(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    out = tmp_path / "after.json"
    resumed = cli("resume", "--db", str(db), "--approve-as", "alice", "--json-out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    if out.exists():  # the release may have been finished before the kill landed
        report = report_of(out)
        assert report["status"] == "completed"
        _steps_once(report)
    with sqlite3.connect(db) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM releases")]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert statuses == ["completed"]
    assert events > 20


def test_report_list_status_and_history_read_the_database(tmp_path: Path, healthy: Healthy) -> None:
    report = healthy.report
    db = str(copy_of(healthy.db, tmp_path))
    again = cli("report", report["release_id"], "--db", db)
    assert json.loads(again.stdout)["release_id"] == report["release_id"]
    assert report["release_id"] in cli("list", "--db", db).stdout
    assert "release_completed" in cli("history", "payments-api", "--db", db).stdout
    assert "completed" in cli("status", report["release_id"], "--db", db).stdout
    missing = cli("report", "rel-nope", "--db", db)
    assert missing.returncode == 1 and "no release" in missing.stderr


def test_the_audit_trail_is_append_only(tmp_path: Path, healthy: Healthy) -> None:
    db = copy_of(healthy.db, tmp_path)
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE events SET details = 'tampered'")
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM events")


def test_lock_dry_run_pause_and_promote_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    dry = cli("dry-run", LINE, "--db", db)
    assert dry.returncode == 0, dry.stderr
    assert "would wait for approval from alice, bob" in dry.stdout
    assert "rollback rehearsal not run in a dry run" in dry.stdout
    assert "no releases yet" in cli("list", "--db", db).stdout
    locked = cli("lock", "prod", "--as", "alice", "--reason", "code freeze", "--db", db)
    assert locked.returncode == 0 and "prod locked by alice" in locked.stdout
    assert "code freeze" in cli("locks", "--db", db).stdout
    refused = cli("run", LINE, "--approve-as", "alice", "--db", db)
    assert refused.returncode == 1
    assert "error: payments-api cannot be released to prod: prod is locked by alice" in (
        refused.stderr
    )
    assert "`/release unlock prod`" in refused.stderr
    assert cli("dry-run", LINE, "--db", db).returncode == 1
    denied = cli("unlock", "prod", "--as", "mallory", "--db", db)
    assert denied.returncode == 1 and "error: mallory cannot unlock prod" in denied.stderr
    assert cli("unlock", "prod", "--as", "bob", "--db", db).returncode == 0
    assert "nothing is locked" in cli("locks", "--db", db).stdout
    again = cli("unlock", "prod", "--as", "bob", "--db", db)
    assert again.returncode == 1 and "prod is not locked" in again.stderr

    crashed = cli(  # mid-rollout of the low-risk plan
        "run", LOW_RISK, "--approve-as", "alice", "--db", db, "--crash-after-ticks", "60",
    )  # fmt: skip
    assert crashed.returncode == 137
    with sqlite3.connect(db) as conn:
        (release_id,) = conn.execute("SELECT id FROM releases").fetchone()
    prefix = release_id[:24]
    mallory = cli("pause", prefix, "--as", "mallory", "--db", db)
    assert mallory.returncode == 1 and "mallory cannot pause" in mallory.stderr
    paused = cli("pause", prefix, "--as", "tester", "--reason", "a look", "--db", db)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.splitlines()[-1] == f"{release_id}: paused"
    assert "⏸️ paused [tester]: a look" in paused.stdout  # the thread, then the answer
    twice = cli("pause", prefix, "--as", "alice", "--db", db)
    assert twice.returncode == 1 and "already paused (by tester" in twice.stderr
    promote = cli("promote", prefix, "--as", "alice", "--db", db)
    assert promote.returncode == 1 and f"cannot promote {release_id}: it is paused" in (
        promote.stderr
    )
    resumed = cli("resume-release", prefix, "--as", "alice", "--db", db)
    assert resumed.returncode == 0 and "rolling out" in resumed.stdout
    finished = cli(
        "resume", "--db", db, "--approve-as", "alice", "--json-out", str(tmp_path / "r.json")
    )
    assert finished.returncode == 0, finished.stderr
    assert report_of(tmp_path / "r.json")["status"] == "completed"
    trail = cli("history", "payments-api", "--db", db).stdout
    for action in ("refused", "paused", "resumed", "release_completed"):
        assert action in trail
