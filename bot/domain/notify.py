"""Who is told what a release did, and whether it got through: the moments stakeholders hear
of (start, completion, rollback, failure), each target's recorded delivery, and what the
report makes of them. Pure: the service records, the adapters send."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from bot.domain.base import Model

Moment = Literal["started", "completed", "rolled_back", "failed"]
# The audit trail's actions stakeholders hear of, by the moment each one is.
MOMENT_OF_ACTION: dict[str, Moment] = {
    "rollout_started": "started",
    "release_completed": "completed",
    "rollback_started": "rolled_back",
    "release_failed": "failed",
}
DeliveryStatus = Literal["pending", "delivered", "failed"]
# A target that keeps refusing is given up after this many attempts (spread by backoff over
# about half an hour): the report then says it was not told.
MAX_ATTEMPTS = 8
THREAD = "the release thread"
STATUS_PAGE = "Statuspage"
PAGERDUTY = "PagerDuty"
# Where a target is, as the report names it: any other target is an incident channel.
TargetKind = Literal["thread", "incident_channel", "pagerduty", "statuspage"]
_KIND_OF_TARGET: dict[str, TargetKind] = {
    THREAD: "thread",
    PAGERDUTY: "pagerduty",
    STATUS_PAGE: "statuspage",
}


def target_kind(target: str) -> TargetKind:
    return _KIND_OF_TARGET.get(target, "incident_channel")


class Delivery(Model):
    """One notification of one moment to one target, as recorded."""

    id: int
    release_id: str
    event_id: int
    moment: Moment
    target: str  # who is told: the release thread, #payments-incidents, PagerDuty, Statuspage
    status: DeliveryStatus
    attempts: int = 0
    error: str | None = None  # the last refusal, one line
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    reference: str | None = None  # what the target answered: a message ts, an incident id


def stakeholders_notified(deliveries: Sequence[Delivery]) -> bool:
    """Someone was told: at least one notification got through."""
    return any(d.status == "delivered" for d in deliveries)


def status_page_updated(deliveries: Sequence[Delivery]) -> bool:
    return any(d.target == STATUS_PAGE and d.status == "delivered" for d in deliveries)


def told_line(deliveries: Sequence[Delivery]) -> str:
    """One line for people: who was told of what, and what did not get through (yet)."""
    if not deliveries:
        return "Stakeholders: nobody was told (no chat or notification target reaches people)."
    parts = []
    for d in deliveries:
        what = d.moment.replace("_", " ")
        match d.status:
            case "delivered":
                parts.append(f"{d.target} told ({what})")
            case "pending":
                waiting = f"not yet told ({what}: {d.error})" if d.error else f"being told ({what})"
                parts.append(f"{d.target} {waiting}")
            case "failed":
                parts.append(f"{d.target} NOT told ({what}: {d.error or 'refused'})")
    return "Stakeholders: " + "; ".join(parts) + "."
