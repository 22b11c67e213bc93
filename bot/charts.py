"""PNG charts of a rollout stage for the Slack thread: error rate and p95, canary vs baseline.

matplotlib is imported inside the functions: importing this module costs nothing, and the
chart is drawn on a bare ``Figure`` with the Agg canvas, so pyplot's global state (and its
choice of an interactive backend) is never touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.request import Guardrail
from bot.ports.series import SeriesPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CANARY_COLOR = "tab:orange"
BASELINE_COLOR = "tab:blue"
LIMIT_COLOR = "tab:red"


@dataclass(frozen=True, slots=True)
class Bin:
    """Windows summed over ``[start, start + width)``; rates and p95s are None without requests."""

    start: datetime
    canary_requests: int
    canary_errors: int
    baseline_requests: int
    baseline_errors: int
    canary_p95_ms: float | None
    baseline_p95_ms: float | None

    @property
    def canary_error_pct(self) -> float | None:
        return _pct(self.canary_errors, self.canary_requests)

    @property
    def baseline_error_pct(self) -> float | None:
        return _pct(self.baseline_errors, self.baseline_requests)


def _pct(errors: int, requests: int) -> float | None:
    return 100.0 * errors / requests if requests else None


def _weighted_p95(pairs: Sequence[tuple[float | None, int]]) -> float | None:
    """Request-weighted mean of the windows' p95s.

    Only an approximation of the bin's true p95 (quantiles do not average; the exact way is
    to sum the buckets, which the series does not keep), good enough to show a trend. The
    judge decides on the buckets themselves, not on this.
    """
    weighted = [(p95, n) for p95, n in pairs if p95 is not None and n > 0]
    total = sum(n for _, n in weighted)
    if not total:
        return None
    return sum(p95 * n for p95, n in weighted) / total


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def bin_points(points: Sequence[SeriesPoint], bucket_minutes: float = 1.0) -> list[Bin]:
    """Re-bin 10-second windows (too noisy to plot) into ``bucket_minutes`` bins.

    Bins are aligned on the clock (a 1-minute bin starts on the minute), a window belongs to
    the bin holding its start, and requests and errors are summed, so a bin's error rate is
    its errors over its requests, not a mean of per-window rates. Only bins holding at least
    one window are returned, in time order.
    """
    if bucket_minutes <= 0:
        raise ValueError("bucket_minutes must be positive")
    width = bucket_minutes * 60.0
    groups: dict[int, list[SeriesPoint]] = {}
    for point in points:
        index = math.floor(_utc(point.start).timestamp() / width)
        groups.setdefault(index, []).append(point)
    bins: list[Bin] = []
    for index in sorted(groups):
        group = groups[index]
        bins.append(
            Bin(
                start=datetime.fromtimestamp(index * width, UTC),
                canary_requests=sum(p.canary_requests for p in group),
                canary_errors=sum(p.canary_errors for p in group),
                baseline_requests=sum(p.baseline_requests for p in group),
                baseline_errors=sum(p.baseline_errors for p in group),
                canary_p95_ms=_weighted_p95([(p.canary_p95_ms, p.canary_requests) for p in group]),
                baseline_p95_ms=_weighted_p95(
                    [(p.baseline_p95_ms, p.baseline_requests) for p in group]
                ),
            )
        )
    return bins


def guardrail_limits(guardrails: Sequence[Guardrail]) -> tuple[float | None, float | None]:
    """(error-rate limit in %, p95 limit in ms) to draw; None when there is no such cap.

    Only upper bounds are drawn; when several guardrails cap the same metric the tightest
    one is the line that matters. ``Guardrail`` keeps rates in percent and latencies in
    milliseconds (the parser turns ``p95<0.3s`` into 300 ms), so no unit conversion is needed.
    """
    caps = [g for g in guardrails if g.upper_bound and not g.relative]
    errors = [g.value for g in caps if g.metric == "error_rate" and g.unit == "percent"]
    p95s = [g.value for g in caps if g.metric == "latency_p95" and g.unit == "ms"]
    return (min(errors, default=None), min(p95s, default=None))


def _plotted(bins: Sequence[Bin], width: timedelta) -> tuple[list[datetime], list[Bin | None]]:
    """x positions and bins, with a None row (drawn as NaN) wherever bins are more than one
    width apart, so a pause in the series breaks the line instead of bridging it."""
    xs: list[datetime] = []
    rows: list[Bin | None] = []
    for i, current in enumerate(bins):
        if i and current.start - bins[i - 1].start > width:
            xs.append(bins[i - 1].start + width)
            rows.append(None)
        xs.append(current.start)
        rows.append(current)
    return xs, rows


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _limit_line(axes: Axes, value: float, label: str) -> None:
    axes.axhline(value, color=LIMIT_COLOR, linestyle="--", linewidth=1.2, label=label)


def stage_figure(
    points: Sequence[SeriesPoint],
    *,
    title: str,
    error_limit_pct: float | None,
    p95_limit_ms: float | None,
    bucket_minutes: float = 1.0,
) -> Figure:
    """The chart as a ``Figure`` (what ``stage_chart`` renders), for callers that inspect it."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    errors_ax, p95_ax = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title)
    errors_ax.set_ylabel("error rate (%)")
    p95_ax.set_ylabel("p95 latency (ms)")
    if error_limit_pct is not None:
        _limit_line(errors_ax, error_limit_pct, f"error_rate<{error_limit_pct:g}%")
    if p95_limit_ms is not None:
        _limit_line(p95_ax, p95_limit_ms, f"p95<{p95_limit_ms:g}ms")

    bins = bin_points(points, bucket_minutes)
    if not bins:
        for axes in (errors_ax, p95_ax):
            axes.text(
                0.5, 0.5, "no data yet", transform=axes.transAxes, ha="center", va="center",
                fontsize=14, color="grey",
            )  # fmt: skip
            if not axes.lines:  # no limit line either: a 0..0.06 scale would mean nothing
                axes.set_yticks([])
        p95_ax.set_xticks([])
    else:
        times, rows = _plotted(bins, timedelta(minutes=bucket_minutes))
        # Naive UTC datetime64 (typed as an array, unlike a list of datetimes); the date
        # locator and formatter below are told the zone is UTC.
        xs = np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[us]")
        lines: list[tuple[Axes, str, str, Callable[[Bin], float | None]]] = [
            (errors_ax, "canary", CANARY_COLOR, lambda b: b.canary_error_pct),
            (errors_ax, "baseline", BASELINE_COLOR, lambda b: b.baseline_error_pct),
            (p95_ax, "canary", CANARY_COLOR, lambda b: b.canary_p95_ms),
            (p95_ax, "baseline", BASELINE_COLOR, lambda b: b.baseline_p95_ms),
        ]
        for axes, label, color, pick in lines:
            ys = [_or_nan(pick(b) if b is not None else None) for b in rows]
            axes.plot(xs, ys, color=color, marker="o", markersize=3, linewidth=1.5, label=label)
        # HH:MM ticks, the date once in the corner; matplotlib.dates ships no type stubs.
        locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
        p95_ax.xaxis.set_major_locator(locator)
        formatter = ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
        p95_ax.xaxis.set_major_formatter(formatter)
        p95_ax.set_xlabel(f"UTC, {bucket_minutes:g}-minute bins")

    for axes in (errors_ax, p95_ax):
        axes.margins(y=0.1)  # headroom above a limit line drawn at the top of the data
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize="small")
    return figure


def stage_chart(
    points: Sequence[SeriesPoint],
    *,
    title: str,
    error_limit_pct: float | None,
    p95_limit_ms: float | None,
    bucket_minutes: float = 1.0,
) -> bytes:
    """A PNG of the stage to post in the thread; empty input gives a "no data yet" chart."""
    figure = stage_figure(
        points,
        title=title,
        error_limit_pct=error_limit_pct,
        p95_limit_ms=p95_limit_ms,
        bucket_minutes=bucket_minutes,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
