"""The release report: contract-valid JSON for completed, rolled-back, failed and live releases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jsonschema
import pytest

from bot.config import load_config
from bot.domain.config import ServiceConfig
from bot.domain.contract import ReleaseReport, contract_json_schema, iso
from bot.domain.flags import FlagState
from bot.domain.release import Event, Release
from bot.domain.report import ReportContext, build_report
from tests.domain_helpers import (
    MINUTE,
    STABLE,
    T0,
    VERSION,
    bad_window,
    ci_results,
    gated_release,
    kpi_rail,
    make_request,
    new_release,
    on_metrics_loss,
    run,
    started_release,
    tick,
    tr,
)

Built = tuple[Release, ReleaseReport, dict[str, Any], list[Event]]
VALIDATOR = jsonschema.Draft202012Validator(contract_json_schema())


def context(now: datetime, svc: ServiceConfig | None = None, **fields: Any) -> ReportContext:
    base: dict[str, Any] = {
        "service_config": svc or ServiceConfig(),
        "flags": {},
        "dependencies": [],
        "evidence": ci_results(T0),
        "notified": True,
        "now": now,
    }
    return ReportContext(**(base | fields))


def report_of(
    release: Release, now: datetime, **fields: Any
) -> tuple[ReleaseReport, dict[str, Any], list[Event]]:
    events = release.collect_events()
    report = build_report(release, events, context(now, **fields))
    data = report.model_dump(mode="json")
    VALIDATOR.validate(data)
    return report, data, events


@pytest.fixture(scope="module")
def completed() -> Built:
    release = started_release(make_request(risk="medium", kpis=[kpi_rail("conversion")]))
    end = run(release, T0)
    assert release.status == "completed"
    return (release, *report_of(release, end))


@pytest.fixture(scope="module")
def rolled_back() -> Built:
    release = started_release(make_request(risk="medium"))
    now = run(release, T0, stop=lambda r: r.step_index == 2)  # 25 % in both regions
    now += MINUTE
    tick(release, now, bad_window)
    now += MINUTE
    tick(release, now)  # the router reports the stable version back
    assert release.status == "rolled_back"
    return (release, *report_of(release, now))


@pytest.fixture(scope="module")
def failed() -> Built:
    release = gated_release(make_request(risk="high"), artifact=None, stable_version=None)
    assert release.status == "failed"
    return (release, *report_of(release, T0 + MINUTE))


# -- status and validity ------------------------------------------------------------------------


def test_status_mapping(completed: Built, rolled_back: Built, failed: Built) -> None:
    assert completed[1].status == "completed"
    assert rolled_back[1].status == "rolled_back"
    assert failed[1].status == "failed"
    for _, report, data, _ in (completed, rolled_back, failed):
        assert data["release_id"] == "rel-1"
        assert report.version == VERSION


@pytest.mark.parametrize("state", ["pending_gates", "awaiting_approval", "scheduled", "rolling"])
def test_live_releases_are_in_progress_and_valid(state: str) -> None:
    request = make_request(risk="medium")
    now = T0
    if state == "pending_gates":
        release = new_release(request)
    else:
        release = gated_release(request)
        if state != "awaiting_approval":
            release.approve("alice", now)
        if state == "rolling":
            release.begin_if_due(now)
            now = run(release, now, stop=lambda r: r.step_index == 2)
    report, data, _ = report_of(release, now)
    assert report.status == "in_progress"
    assert data["rollback_status"]["required"] is False
    if state == "pending_gates":
        assert data["pre_deployment"]["checks"] == []
        assert data["pre_deployment"]["artifacts"]["signed"] is False
    if state == "awaiting_approval":
        assert data["compliance"]["approval_board"] == "pending"
        assert data["next_actions"][0]["trigger"] == "manual"
    if state == "rolling":
        assert data["progressive_rollout"]["current_percentage"] == 25
        assert data["next_actions"][0]["trigger"] == "metric"


def test_paused_report_asks_a_human() -> None:
    release = on_metrics_loss(started_release(make_request(risk="medium")), "pause")
    now = run(release, T0, stop=lambda r: r.step_index == 1)
    for i in range(3):
        release.record_metrics_error("prometheus timed out", now + (i + 1) * MINUTE)
    assert release.status == "paused"
    report, data, _ = report_of(release, now + 3 * MINUTE)
    by_metric = {t["metric"]: t["action"] for t in data["deployment_plan"]["rollback_triggers"]}
    assert by_metric["metrics_provider"] == "pause"  # what the release did
    assert report.status == "in_progress"
    assert data["next_actions"][0]["trigger"] == "manual"
    assert "resume or roll back" in data["next_actions"][0]["action"]
    provider = next(a for a in data["monitoring"]["alerts"] if a["name"].startswith("metrics"))
    assert provider["triggered"] is True and provider["severity"] == "critical"
    assert "Paused" in report.summary


def test_a_rollback_in_progress_has_no_end_yet() -> None:
    release = started_release(make_request(risk="medium"))
    now = run(release, T0, stop=lambda r: r.step_index == 1)
    release.request_rollback("alice", "customer reports", now)
    report, data, _ = report_of(release, now)
    assert report.status == "in_progress"
    rb = data["rollback_status"]
    assert (rb["required"], rb["triggered_by"], rb["reason"]) == (
        True,
        "manual",
        "customer reports",
    )
    assert rb["started_at"] == iso(now)
    assert rb["completed_at"] is None and rb["duration_minutes"] is None and rb["success"] is None


def holding_release() -> tuple[Release, datetime]:
    release = started_release(make_request(risk="high", peak_hours=[tr("14:10", "15:00")]))
    now = T0 + 10 * MINUTE
    tick(release, now)
    assert release.holding_until == T0.replace(hour=15)
    return release, now


def test_a_hold_is_reported_as_the_next_action() -> None:
    release, now = holding_release()
    _, data, _ = report_of(release, now)
    action = data["next_actions"][0]
    assert action["trigger"] == "time"
    assert action["scheduled_for"] == "2025-03-04T15:00:00Z"
    assert "after peak hours" in action["action"]
    assert data["progressive_rollout"]["stages"][0]["status"] == "pending"
    assert data["progressive_rollout"]["stages"][0]["started_at"] is None


def test_the_summary_does_not_claim_a_step_that_is_on_hold() -> None:
    release, now = holding_release()
    report, _, _ = report_of(release, now)
    assert "now at 1%" not in report.summary
    assert "15:00" in report.summary


def test_every_report_has_a_short_summary(
    completed: Built, rolled_back: Built, failed: Built
) -> None:
    for _, report, _, _ in (completed, rolled_back, failed):
        assert 0 < len(report.summary.split()) <= 200
        assert VERSION in report.summary
    assert "Completed" in completed[1].summary
    assert "Rolled back" in rolled_back[1].summary
    assert "Nothing was deployed" in failed[1].summary


def test_a_long_story_is_clipped_to_200_words() -> None:
    release = started_release(make_request(risk="medium"))
    release.blockers = ["word " * 300]
    release.status = "failed"
    report, _, _ = report_of(release, T0)
    assert len(report.summary.split()) <= 200


# -- rollback_status ----------------------------------------------------------------------------


def test_no_rollback_leaves_its_facts_null(completed: Built, failed: Built) -> None:
    for _, _, data, _ in (completed, failed):
        rb = data["rollback_status"]
        assert rb["required"] is False
        for key in ("triggered_by", "started_at", "completed_at", "duration_minutes", "success"):
            assert rb[key] is None, key
        assert rb["data_loss"] is False
        assert rb["reason"].startswith("not required")


def test_a_rollback_fills_its_facts(rolled_back: Built) -> None:
    release, _, data, _ = rolled_back
    rb = data["rollback_status"]
    assert rb["required"] is True
    assert rb["triggered_by"] == "automated"
    assert "error_rate" in rb["reason"] or "availability" in rb["reason"]
    assert rb["started_at"] == iso(release.rollback.started_at)
    assert rb["completed_at"] == iso(release.rollback.completed_at)
    assert rb["duration_minutes"] == pytest.approx(1.0)
    assert rb["success"] is True
    assert data["next_actions"][0]["action"].startswith("investigate")


# -- stages and environments --------------------------------------------------------------------


def test_completed_stages_and_environments(completed: Built) -> None:
    release, _, data, _ = completed
    rollout = data["progressive_rollout"]
    assert [s["percentage"] for s in rollout["stages"]] == [5, 25, 50, 100]
    assert {s["status"] for s in rollout["stages"]} == {"completed"}
    assert all(s["started_at"] is not None for s in rollout["stages"])
    assert rollout["current_percentage"] == 100
    assert rollout["users_affected"] > 0
    assert rollout["rollout_velocity"] == "normal"
    envs = data["deployment_plan"]["environments"]
    assert [(e["name"], e["region"], e["order"]) for e in envs] == [
        ("staging", "us-east-1", 1),
        ("prod", "us-east-1", 2),
        ("prod", "eu-west-1", 3),
    ]
    assert {e["status"] for e in envs} == {"deployed"}
    assert data["deployment_plan"]["timeline"]["start"] == iso(release.steps[0].started_at)
    assert data["canary_analysis"]["recommendation"] == "promote"
    assert data["canary_analysis"]["traffic_percentage"] == 100
    assert data["compliance"]["approval_board"] == "approved"
    assert data["risk_assessment"]["blast_radius"] == "global"


def test_pending_stages_have_no_start(rolled_back: Built) -> None:
    _, _, data, _ = rolled_back
    stages = data["progressive_rollout"]["stages"]
    assert [s["status"] for s in stages] == ["rolled_back", "rolled_back", "pending", "pending"]
    assert stages[0]["started_at"] is not None and stages[1]["started_at"] is not None
    assert stages[2]["started_at"] is None and stages[3]["started_at"] is None
    assert stages[1]["health_status"] == "unhealthy"
    assert data["progressive_rollout"]["current_percentage"] == 0
    # dev and staging were deployed and verified before prod rolled back
    envs = data["deployment_plan"]["environments"]
    assert {e["status"] for e in envs if e["name"] == "prod"} == {"failed"}
    assert {e["status"] for e in envs if e["name"] != "prod"} <= {"deployed"}
    assert data["canary_analysis"]["recommendation"] == "rollback"
    assert data["canary_analysis"]["traffic_percentage"] == 25
    assert data["canary_analysis"]["metrics"]["error_rate"]["verdict"] == "fail"
    fired = [a for a in data["monitoring"]["alerts"] if a["triggered"]]
    assert fired and all(a["timestamp"] is not None for a in fired)
    assert data["risk_assessment"]["confidence_score"] == 0


def test_a_failed_release_has_nothing_deployed(failed: Built) -> None:
    release, _, data, _ = failed
    rollout = data["progressive_rollout"]
    assert rollout["current_percentage"] == 0
    assert rollout["users_affected"] == 0
    assert {s["status"] for s in rollout["stages"]} == {"pending"}
    assert all(s["started_at"] is None for s in rollout["stages"])
    assert {e["status"] for e in data["deployment_plan"]["environments"]} == {"pending"}
    assert data["deployment_plan"]["timeline"]["start"] is None
    assert data["canary_analysis"]["recommendation"] == "extend_analysis"
    assert data["canary_analysis"]["traffic_percentage"] == 0
    assert data["pre_deployment"]["approvals"] == []
    assert data["compliance"]["approval_board"] == "pending"
    failing = {c["check"] for c in data["pre_deployment"]["checks"] if c["status"] == "fail"}
    assert failing == {"build_artifacts", "rollback_plan"}
    assert data["risk_assessment"]["confidence_score"] == 0
    assert data["risk_assessment"]["blast_radius"] == "minimal"
    action = data["next_actions"][0]["action"]
    assert "build_artifacts" in action and "rollback_plan" in action
    assert release.blockers[0] in action


# -- compliance and plan ------------------------------------------------------------------------


def test_audit_trail_is_the_events(completed: Built, rolled_back: Built, failed: Built) -> None:
    for _, _, data, events in (completed, rolled_back, failed):
        trail = data["compliance"]["audit_trail"]
        assert [(a["action"], a["actor"], a["details"]) for a in trail] == [
            (e.action, e.actor, e.details) for e in events
        ]
        assert [a["timestamp"] for a in trail] == [iso(e.at) for e in events]
    assert data["compliance"]["change_ticket"] == "CHG-1234"


def test_approvals_are_reported(completed: Built) -> None:
    _, _, data, _ = completed
    assert [(a["type"], a["approver"]) for a in data["pre_deployment"]["approvals"]] == [
        ("manual", "alice")
    ]
    assert data["pre_deployment"]["approvals"][0]["timestamp"] == iso(T0)


def test_a_rejected_release_shows_the_board_rejected() -> None:
    release = gated_release(make_request(risk="medium"))
    release.reject("bob", "freeze", T0)
    _, data, _ = report_of(release, T0)
    assert data["status"] == "failed"
    assert data["compliance"]["approval_board"] == "rejected"


def test_plan_section_reports_triggers_and_durations(completed: Built) -> None:
    release, _, data, _ = completed
    plan = data["deployment_plan"]
    assert plan["strategy"] == "canary"
    assert [t["metric"] for t in plan["rollback_triggers"]] == [
        t.metric for t in release.plan.triggers
    ]
    # Losing the metrics rolls back by default (on_metrics_loss), and the report says so.
    by_metric = {t["metric"]: t["action"] for t in plan["rollback_triggers"]}
    assert by_metric["metrics_provider"] == "auto_rollback"
    timeline = plan["timeline"]
    assert timeline["canary_duration_minutes"] == release.plan.minutes("canary")
    assert timeline["rollout_duration_minutes"] == release.plan.minutes("rollout")
    assert timeline["validation_duration_minutes"] == release.plan.minutes("validation")


def test_shadow_is_reported_as_canary() -> None:
    release = started_release(make_request(risk="medium", strategy="shadow"))
    now = run(release, T0, stop=lambda r: r.step_index == 2)
    _, data, _ = report_of(release, now)
    assert data["deployment_plan"]["strategy"] == "canary"
    assert data["progressive_rollout"]["stages"][0]["percentage"] == 100  # the mirror


def test_feature_flag_report_with_the_service_config() -> None:
    svc = load_config().for_service("payments-api")
    request = make_request(risk="medium", strategy="feature_flag", flags=[("new_checkout", 100)])
    release = started_release(request)
    end = run(release, T0)
    assert release.status == "completed"
    flag = FlagState(name="new_checkout", service="shop", percentage=100)
    report, data, _ = report_of(release, end, svc=svc, flags={"new_checkout": flag})
    flags = data["feature_flags"]
    assert [(f["name"], f["status"], f["percentage"], f["kill_switch"]) for f in flags] == [
        ("new_checkout", "full", 100, True)
    ]
    assert data["deployment_plan"]["strategy"] == "feature_flag"
    assert data["deployment_artifacts"]["runbook"] == svc.runbook
    assert data["deployment_artifacts"]["communication"]["incident_channel"] == (
        "#payments-incidents"
    )
    assert data["compliance"]["regulatory_requirements"] == svc.regulatory_requirements
    assert [d["name"] for d in data["monitoring"]["dashboards"]] == ["payments-api golden signals"]
    assert any("remove the release flag" in a["action"] for a in data["next_actions"])
    assert report.post_deployment.smoke_tests.critical_paths_verified


def test_changelog_is_split_from_the_changes(completed: Built) -> None:
    _, _, data, _ = completed
    changelog = data["deployment_artifacts"]["changelog"]
    assert changelog["features"] == ["faster checkout"]
    assert changelog["fixes"] == ["fix refund rounding"]


def test_rollback_procedure_names_the_stable_version(rolled_back: Built) -> None:
    release, report, _, events = rolled_back
    assert release.previous_version == STABLE
    assert events[-1].action == "rollback_completed"
    assert STABLE in events[-1].details
    assert report.rollback_status.completed_at is not None
    assert report.health_metrics.error_rate.threshold == 1.0
    assert report.canary_analysis.duration_minutes > 0
    assert report.canary_analysis.statistical_confidence <= 1
    assert timedelta(0) < (
        datetime.fromisoformat(report.rollback_status.completed_at.replace("Z", "+00:00"))
        - datetime.fromisoformat(report.rollback_status.started_at.replace("Z", "+00:00"))
    )
