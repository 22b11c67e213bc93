"""Cross-field consistency of a release report (the output contract as JSON): what one field
says must not contradict another. ``inconsistencies`` lists each contradiction in a line."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _alert(report: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((a for a in report["monitoring"]["alerts"] if a["name"].startswith(prefix)), None)


def inconsistencies(report: dict[str, Any]) -> list[str]:
    found: list[str] = []
    status = report["status"]
    rollback = report["rollback_status"]
    stages = report["progressive_rollout"]["stages"]
    envs = report["deployment_plan"]["environments"]
    health = report["health_metrics"]
    canary = report["canary_analysis"]
    alerts = report["monitoring"]["alerts"]

    # status vs rollback
    if (status == "rolled_back") != (rollback["required"] and rollback["success"] is True):
        found.append(f"status {status} but rollback required={rollback['required']}")
    if not rollback["required"]:
        for field in ("triggered_by", "started_at", "completed_at", "duration_minutes", "success"):
            if rollback[field] is not None:
                found.append(f"no rollback, yet rollback_status.{field} = {rollback[field]}")
    elif rollback["triggered_by"] == "automated" and not any(a["triggered"] for a in alerts):
        found.append("an automated rollback, yet no alert triggered")

    # durations
    for path, value in (
        ("canary_analysis.duration_minutes", canary["duration_minutes"]),
        ("rollback_status.duration_minutes", rollback["duration_minutes"]),
        *((f"stage {s['percentage']}%.duration_minutes", s["duration_minutes"]) for s in stages),
    ):
        if value is not None and value < 0:
            found.append(f"{path} is negative: {value}")
    started, completed = rollback["started_at"], rollback["completed_at"]
    if started and completed and _at(completed) < _at(started):
        found.append("rollback completed before it started")

    # stages vs status
    for s in stages:
        ran = s["status"] != "pending"
        if ran != (s["started_at"] is not None):
            found.append(
                f"stage {s['percentage']}% is {s['status']} with started_at {s['started_at']}"
            )
        if not ran and s["health_status"] is not None:
            found.append(f"stage {s['percentage']}% never ran, yet is {s['health_status']}")
    if status == "completed" and any(s["status"] != "completed" for s in stages):
        found.append("completed, yet a stage did not complete")
    if status == "rolled_back" and any(s["status"] in ("active", "completed") for s in stages):
        found.append("rolled back, yet a stage is still active or completed")
    if status == "failed" and any(s["status"] != "pending" for s in stages):
        found.append("failed before deployment, yet a stage ran")
    if status in ("rolled_back", "failed") and report["progressive_rollout"]["current_percentage"]:
        found.append(f"{status}, yet the new version serves some traffic")

    # environments vs status
    if status == "completed" and any(e["status"] != "deployed" for e in envs):
        found.append("completed, yet an environment is not deployed")
    if status == "failed" and any(e["status"] != "pending" for e in envs):
        found.append("failed before deployment, yet an environment was reached")
    if status == "rolled_back" and not any(e["status"] == "failed" for e in envs):
        found.append("rolled back, yet no environment failed")
    if status == "rolled_back":
        for e in envs:
            if e["name"] != "prod" and e["status"] == "failed":
                found.append(f"{e['name']} was verified before prod, yet is failed")

    # alerts vs their guardrails
    for a in alerts:
        if a["triggered"] != (a["timestamp"] is not None):
            found.append(f"alert {a['name']!r}: triggered={a['triggered']} at {a['timestamp']}")
    availability = _alert(report, "availability")
    if availability is not None:
        critical = health["availability"]["status"] == "critical"
        if critical != availability["triggered"]:
            found.append(
                f"availability is {health['availability']['status']} but its alert "
                f"triggered={availability['triggered']}"
            )
    error_alert = _alert(report, "error_rate")
    error_fired = error_alert is not None and error_alert["triggered"]
    error_judged = canary["metrics"]["error_rate"]["verdict"] == "fail"
    if error_fired and not error_judged and not rollback["required"]:
        found.append("the error-rate alert triggered, yet nothing failed or rolled back")

    # trends vs what the canary served
    trend = health["error_rate"]["trend"]
    if status == "rolled_back" and error_fired and trend == "decreasing":
        found.append("the error rate broke its guardrail, yet its trend is decreasing")

    # nothing measured is never healthy-looking
    measured = health["availability"]["current"] is not None
    if not measured:
        if health["availability"]["status"] == "healthy":
            found.append("no request measured, yet availability is healthy")
        for q in ("p50", "p95", "p99"):
            if health["latency"][q] is not None:
                found.append(f"no request measured, yet latency {q} = {health['latency'][q]}")
    elif health["latency"]["p95"] in (None, 0.0):
        found.append("availability is reported, yet p95 is missing or 0 (nothing measured?)")
    if status == "failed":
        if measured:
            found.append("nothing was deployed, yet health figures are reported")
        if report["post_deployment"]["smoke_tests"]["passed"]:
            found.append("nothing was deployed, yet post-deploy smoke tests passed")
        if report["progressive_rollout"]["users_affected"]:
            found.append("nothing was deployed, yet users were affected")

    # canary analysis vs its stage
    if canary["traffic_percentage"] >= 100:
        for name in ("error_rate", "latency_p95", "success_rate"):
            if canary["metrics"][name]["baseline"] is not None:
                found.append(f"canary_analysis at 100% reports a baseline {name}")
    if canary["recommendation"] == "rollback" and status == "completed":
        found.append("completed, yet the canary analysis recommends rollback")

    # KPIs: impact agrees with the numbers' sign
    for kpi in health["business_kpis"]:
        if kpi["impact"] == "positive" and kpi["value"] < kpi["baseline"]:
            found.append(f"KPI {kpi['metric']} positive while below its baseline")
        if kpi["impact"] == "negative" and kpi["value"] > kpi["baseline"]:
            found.append(f"KPI {kpi['metric']} negative while above its baseline")

    # logs: figures only when measured, never new errors without a baseline
    logs = report["monitoring"]["logs"]
    if not logs["measured"] and (logs["error_spike"] is not None or logs["new_error_types"]):
        found.append("logs not measured, yet log figures are reported")

    # traces: figures only when measured, and then near the latency the judge saw
    traces = report["monitoring"]["traces"]
    path = traces["critical_path_latency"]
    if not traces["measured"] and (path is not None or traces["bottlenecks"]):
        found.append("traces not measured, yet trace figures are reported")
    p95 = health["latency"]["p95"]
    if traces["measured"] and path is not None and p95 and not 0.5 <= path / p95 <= 2:
        found.append(f"the traces' critical path {path} ms is far from the p95 of {p95} ms")

    # communication: the two flags are read from the deliveries listed beside them
    told = report["deployment_artifacts"]["communication"]
    delivered = [n for n in told["notifications"] if n["status"] == "delivered"]
    if told["stakeholders_notified"] != bool(delivered):
        found.append(f"stakeholders_notified={told['stakeholders_notified']}, deliveries disagree")
    paged = any(n["where"] == "statuspage" for n in delivered)
    if told["status_page_updated"] != paged:
        found.append(f"status_page_updated={told['status_page_updated']}, deliveries disagree")
    for n in told["notifications"]:
        if (n["status"] == "delivered") != (n["delivered_at"] is not None):
            found.append(f"{n['target']} ({n['moment']}) is {n['status']} at {n['delivered_at']}")

    # user feedback: counted only where people could report
    feedback = report["post_deployment"]["user_feedback"]
    if not feedback["measured"]:
        if feedback["sentiment"] is not None or feedback["issues_reported"] is not None:
            found.append("user feedback not measured, yet figures are reported")
    elif (feedback["sentiment"] == "negative") != bool(feedback["issues_reported"]):
        found.append(
            f"sentiment {feedback['sentiment']} with {feedback['issues_reported']} issues reported"
        )
    return found
