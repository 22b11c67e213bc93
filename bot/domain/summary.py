"""The report's summary, written by rules from what happened (the LLM may rephrase it later)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.plan import step_label
from bot.domain.release import Event, Release


def summarise(release: Release, events: Sequence[Event]) -> str:
    req = release.request
    head = (
        f"{req.service} {release.version} ({release.plan.risk} risk) via {release.plan.strategy}"
        f" to {', '.join(req.deployment_config.environments)}"
        f" in {', '.join(req.deployment_config.regions)}."
    )
    checks = release.observed.checks
    gates = ""
    if checks:
        fails = [c.check for c in checks if c.status == "fail"]
        warns = [c.check for c in checks if c.status == "warning"]
        gates = (
            f" {len(checks) - len(fails) - len(warns)}/{len(checks)} pre-deployment checks passed"
        )
        gates += f"; failed: {', '.join(fails)}" if fails else ""
        gates += f"; warnings: {', '.join(warns)}" if warns else ""
        gates += "."
    done = [
        release.plan.steps[i]
        for i, r in enumerate(release.steps)
        if r.status in ("completed", "rolled_back") or r.status == "active"
    ]
    progress = f" Steps reached: {', '.join(step_label(s) for s in done)}." if done else ""
    outcome = {
        "completed": f" Completed: {release.version} serves 100% of traffic; every guardrail held.",
        "failed": " Failed before deployment: "
        + "; ".join(release.blockers)
        + ". Nothing was deployed.",
        "awaiting_approval": f" Waiting for approval ({release.pending_approval}).",
        "scheduled": f" Scheduled to start at {release.plan.start:%Y-%m-%d %H:%M} UTC.",
        "paused": f" Paused: {release.pause_reason}.",
        "pending_gates": " Pre-deployment checks are running.",
    }.get(release.status, "")
    if release.rollback is not None:
        rb = release.rollback
        state = "completed" if rb.completed_at else "in progress"
        stable = release.previous_version or "The stable version"
        outcome = (
            f" Rolled back ({rb.triggered_by}, {state}): {rb.reason}. {stable} serves all traffic."
        )
    elif release.status == "rolling_out" and release.current_step is not None:
        step = step_label(release.current_step)
        if release.holding_until is not None:
            outcome = (
                f" Holding for peak hours: {step} starts at {release.holding_until:%H:%M} UTC."
            )
        else:
            outcome = f" Rolling out: now at {step}."
    approvals = release.approvals
    who = f" Approved by {', '.join(sorted({a.approver for a in approvals}))}." if approvals else ""
    alerts = [a for a in release.alerts if a.action_taken.startswith("alerted")]
    alerting = (
        f" Alerts without rollback: {', '.join(a.guardrail for a in alerts)}." if alerts else ""
    )
    return (head + gates + who + progress + outcome + alerting).strip()
