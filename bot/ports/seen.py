"""Requests already acted on: a signed Slack request, or an event Slack delivers again, is
acted on once, whichever process receives it."""

from __future__ import annotations

import abc
from datetime import datetime


class AbstractSeenRequests(abc.ABC):
    @abc.abstractmethod
    def first(self, key: str, now: datetime, until: datetime) -> bool:
        """Record ``key`` as seen until ``until``. True only for the call that recorded it
        (the first insert wins, across processes); False while an earlier record lasts.
        Records whose time is over at ``now`` are forgotten."""
