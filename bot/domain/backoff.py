"""Exponential backoff, capped: how long something that keeps failing waits before its next
try (a release whose tick raises, a thread Slack refuses)."""

from __future__ import annotations

from datetime import timedelta

BACKOFF_CAP = timedelta(minutes=5)


def retry_delay(failures: int, base: timedelta, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """``base`` after the first failure, then twice as long after each further one, never
    more than ``cap``."""
    doublings = min(max(failures - 1, 0), 30)  # 2**30 bases is past any cap
    delay: timedelta = base * (2**doublings)
    return min(cap, delay)
