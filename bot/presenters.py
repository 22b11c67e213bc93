"""Thread-style text for each audit event: what the chat shows as the release moves."""

from __future__ import annotations

from bot.domain.narration import Narration
from bot.domain.release import Release
from bot.ports.store import StoredEvent

ICONS = {
    "release_requested": "🚀",
    "plan_created": "🗺️",
    "gate_checked": "🔎",
    "approval_requested": "✋",
    "approved": "✅",
    "rejected": "⛔",
    "scheduled": "⏰",
    "rollout_started": "▶️",
    "step_started": "📈",
    "verified": "🧪",
    "analysis_passed": "📊",
    "step_completed": "✔️",
    "holding": "⏸️",
    "alert": "🚨",
    "metrics_unavailable": "❓",
    "router_unavailable": "🚧",
    "paused": "⏸️",
    "decision_requested": "✋",
    "bake_extended": "⏳",
    "promoted_on_override": "⚠️",
    "held_step_rolled_back": "⏪",
    "resumed": "▶️",
    "rollback_started": "⏪",
    "rollback_waiting": "⏳",
    "rollback_completed": "↩️",
    "release_completed": "🎉",
    "release_failed": "❌",
    "cancelled": "🛑",
    "tick_failed": "💥",
    "tick_recovered": "🩹",
}


def event_text(release: Release, event: StoredEvent) -> str:
    icon = ICONS.get(event.action, "•")
    who = "" if event.actor == "release-bot" else f" [{event.actor}]"
    return f"{icon} {event.action.replace('_', ' ')}{who}: {event.details}"


def analysis_line(release: Release) -> str | None:
    """One line of metrics against guardrails, for the latest judgement."""
    verdict = release.judgement
    if verdict is None:
        return None
    parts = []
    for r in verdict.results:
        shown = "n/a" if r.observed is None else f"{r.observed:.3g}"
        mark = {"breached": "✗", "holds": "✓", "unproven": "~", "no_data": "?"}[r.state]
        parts.append(f"{r.test} {shown} {mark}")
    return (
        f"📊 {release.current_percentage():g}% · {verdict.canary_requests} canary req · "
        + ", ".join(parts)
        + f" → {verdict.recommendation} (confidence {verdict.statistical_confidence:.3f})"
    )


def status_lines(release: Release) -> list[str]:
    """Where a release stands, a few lines: what `status` answers in the CLI and in Slack."""
    step = release.current_step
    where = (
        f"step {step.index + 1}/{len(release.plan.steps)} ({step.description})"
        if step
        else "not started"
    )
    lines = [
        f"{release.id}: {release.status.replace('_', ' ')}, "
        f"{release.current_percentage():g}% of traffic, {where}"
    ]
    if release.pending_approval:
        lines.append(
            f"  waiting for approval of {release.pending_approval} from "
            + ", ".join(release.approvers)
        )
    if release.held is not None:
        lines.append(f"  held for a decision: {release.held.reason}")
        lines.append(
            f"  {', '.join(release.approvers) or 'an approver'}: extend the bake, promote on "
            "an override (who and why are recorded), or roll back"
        )
    elif release.pause_reason:
        lines.append(f"  paused: {release.pause_reason}")
    if release.rollback:
        lines.append(f"  rollback ({release.rollback.triggered_by}): {release.rollback.reason}")
    if backoff := backoff_line(release):
        lines.append(f"  {backoff}")
    line = analysis_line(release)
    if line and release.is_active:
        lines.append(f"  {line}")
    if release.narration is not None:
        lines.append(f"  {agent_line(release.narration)}")
    return lines


def backoff_line(release: Release) -> str | None:
    """How an errored release waits (its ticks raised): the failures in a row, the last
    error, the next try. None when its last tick went through."""
    if not release.errored or not release.is_active:
        return None
    count = release.failed_ticks
    last = f" (last: {release.tick_error})" if release.tick_error else ""
    retry = f"; next try at {release.retry_at:%H:%M:%S} UTC" if release.retry_at else ""
    return f"backing off after {count} failed tick{'s' if count > 1 else ''} in a row{last}{retry}"


def agent_line(narration: Narration) -> str:
    """Who planned and speaks for the release, and what the LLM cost so far."""
    return f"agent: {narration.model}, plan by {narration.planner}; {narration.usage.describe()}"
