"""What a release saw while it ran: the gates' verdicts, recent windows, the traffic its new
version served, logs, traces and verification results. Kept for the report, the live card
and the agent; nothing here decides the release's next step (the judge keeps its own
evidence)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.base import Model, MutableModel
from bot.domain.contract import Artifacts, Check
from bot.domain.observations import CohortSample, LogSummary, TraceSummary, WindowSample

HISTORY_WINDOWS = 60
RECENT_MINUTES = 5.0  # the span of recent windows kept for the report's health figures


class VerificationResult(Model):
    """What a verification step found: smoke tests and synthetic transactions."""

    ok: bool
    details: str
    smoke_passed: int
    smoke_failed: int
    transactions: list[dict[str, float | str]] = []


class Observed(MutableModel):
    checks: list[Check] = []  # the quality gates' verdicts
    artifacts: Artifacts | None = None  # as the gates verified them
    windows: list[WindowSample] = []  # the current step's last RECENT_MINUTES of windows
    user_requests: int = 0  # requests the new version served to users (mirrors excluded)
    baseline_history: list[CohortSample] = []
    canary_error_rates: list[float] = []  # per-window canary error rate, recent, for the trend
    logs: LogSummary | None = None  # summed over the current step's judged windows
    traces: TraceSummary | None = None  # the latest judged window's
    verifications: list[VerificationResult] = []

    def start_step(self) -> None:
        """Windows, logs and traces describe the step being judged: a new step starts afresh."""
        self.windows, self.logs, self.traces = [], None, None

    def add_window(self, sample: WindowSample, now: datetime, served_users: bool) -> None:
        """One judged window; ``served_users``: the canary's requests were users' (not a
        shadow's mirrored copies)."""
        self.windows = [
            w for w in [*self.windows, sample] if w.end > now - timedelta(minutes=RECENT_MINUTES)
        ]
        if served_users:
            self.user_requests += sample.canary.requests
        if sample.baseline.requests:
            self.baseline_history = [*self.baseline_history, sample.baseline][-HISTORY_WINDOWS:]
        if sample.canary.requests:
            rate = sample.canary.errors / sample.canary.requests * 100
            self.canary_error_rates = [*self.canary_error_rates, rate][-HISTORY_WINDOWS:]

    def add_telemetry(self, logs: list[LogSummary], traces: list[TraceSummary]) -> None:
        """Logs and traces seen during the window just judged, read while it was live."""
        for summary in logs:
            self.logs = summary if self.logs is None else _add_logs(self.logs, summary)
        if traces:
            self.traces = TraceSummary(
                critical_path_ms=max(t.critical_path_ms for t in traces),
                dependency_failures=sorted({d for t in traces for d in t.dependency_failures}),
                bottlenecks=sorted({b for t in traces for b in t.bottlenecks}),
            )


def _add_logs(a: LogSummary, b: LogSummary) -> LogSummary:
    def add(x: dict[str, int], y: dict[str, int]) -> dict[str, int]:
        return {k: x.get(k, 0) + y.get(k, 0) for k in x.keys() | y.keys()}

    return LogSummary(
        baseline_errors_by_type=add(a.baseline_errors_by_type, b.baseline_errors_by_type),
        canary_errors_by_type=add(a.canary_errors_by_type, b.canary_errors_by_type),
        baseline_lines=a.baseline_lines + b.baseline_lines,
        canary_lines=a.canary_lines + b.canary_lines,
    )
