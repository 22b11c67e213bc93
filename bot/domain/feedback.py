"""Users' feedback on a release: the problems they report (``issue_reported`` in the audit
trail), when they may report one, and what the report makes of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

ISSUE_REPORTED = "issue_reported"
# A problem often shows after the rollout: users may report one this long after the end.
REPORT_WINDOW = timedelta(days=7)
MAX_ISSUE_CHARS = 1000
USAGE = "say what is wrong: /release issue RELEASE_ID what you see"


def issue_text(text: str) -> str:
    """The report's text on one line, as it is audited."""
    return " ".join(text.split())


def issue_refusal(
    release_id: str, active: bool, finished_at: datetime | None, text: str, now: datetime
) -> str | None:
    """Why this report of a problem is refused, in one line naming the fix; None: taken."""
    said = issue_text(text)
    if not said:
        return f"the report of a problem is empty; {USAGE}"
    if len(said) > MAX_ISSUE_CHARS:
        return (
            f"the report is {len(said)} characters; say it in at most {MAX_ISSUE_CHARS} "
            "(link to the details)"
        )
    if not active and finished_at is not None and now - finished_at > REPORT_WINDOW:
        return (
            f"{release_id} ended on {finished_at:%Y-%m-%d %H:%M} UTC, more than "
            f"{REPORT_WINDOW.days} days ago: report the problem to the service's owners "
            "or on its current release"
        )
    return None


Sentiment = Literal["positive", "neutral", "negative"]


def sentiment(issues: int) -> Sentiment:
    """Only problems are collected, never praise: none reported is neutral, any negative."""
    return "negative" if issues else "neutral"
