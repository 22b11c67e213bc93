"""Each judged window of a release, kept for the thread's charts."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from bot.domain.observations import WindowSample


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One judged window of a release, as the chart needs it."""

    step: int
    start: datetime
    end: datetime
    canary_requests: int
    canary_errors: int
    baseline_requests: int
    baseline_errors: int
    canary_p95_ms: float | None
    baseline_p95_ms: float | None


class AbstractSeries(abc.ABC):
    @abc.abstractmethod
    def add(self, release_id: str, step: int, sample: WindowSample) -> None:
        """Record one judged window; a window already recorded (same end) is left as it is."""

    @abc.abstractmethod
    def points(self, release_id: str, step: int | None = None) -> list[SeriesPoint]:
        """The release's windows in time order, all steps or only ``step``."""
