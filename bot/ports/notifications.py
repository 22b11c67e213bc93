"""The record of notifications: each moment of each release to each target, its outcome and
its error, and when it is tried again (an outbox of its own beside the thread's)."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.domain.notify import Delivery, DeliveryStatus, Moment


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    release_id: str
    event_id: int
    moment: Moment
    target: str


class AbstractNotificationLog(abc.ABC):
    @abc.abstractmethod
    def plan(self, planned: Iterable[PlannedDelivery], now: datetime) -> None:
        """Record each as pending, due now; one already recorded (same event and target) is
        left as it is, so planning twice tells no one twice."""

    @abc.abstractmethod
    def due(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first."""

    @abc.abstractmethod
    def record(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        attempts: int,
        error: str | None,
        next_attempt_at: datetime | None,
        delivered_at: datetime | None,
        reference: str | None,
    ) -> None: ...

    @abc.abstractmethod
    def for_release(self, release_id: str) -> list[Delivery]:
        """Every delivery of the release, in the order they were planned."""
