"""The process's own Prometheus metrics, on a registry of its own (not the global one):
the ticker records into it and ``serve`` exposes it on /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ticks = Counter("release_bot_ticks", "Reconcile ticks run", registry=r)
        self.tick_errors = Counter("release_bot_tick_errors", "Ticks that raised", registry=r)
        self.narration_errors = Counter(
            "release_bot_narration_errors", "Narration runs that raised", registry=r
        )
        self.tick_seconds = Histogram(
            "release_bot_tick_duration_seconds", "Time one reconcile tick takes", registry=r
        )
        self.last_tick = Gauge(
            "release_bot_last_tick_timestamp_seconds", "When the last tick ended", registry=r
        )
        self.http = Counter(
            "release_bot_http_requests", "HTTP requests served", ["path", "status"], registry=r
        )
