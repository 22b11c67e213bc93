"""Counts and Prometheus-style latency histograms: merging windows, quantiles, tails.

Buckets are cumulative ``le`` counts in seconds ("0.05", "0.1", ..., "+Inf") for one window,
summed across instances. Instances are merged by summing counts, never by averaging per-pod
quantiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from bot.domain.observations import CohortSample


def aggregate(samples: Sequence[CohortSample]) -> CohortSample:
    """Sum counts; KPI values are averaged weighted by requests."""
    requests = sum(s.requests for s in samples)
    buckets: dict[str, int] = {}
    kpi_sum: dict[str, float] = {}
    kpi_weight: dict[str, int] = {}
    for s in samples:
        for le, count in s.latency_buckets.items():
            buckets[le] = buckets.get(le, 0) + count
        for name, value in s.kpis.items():
            kpi_sum[name] = kpi_sum.get(name, 0.0) + value * s.requests
            kpi_weight[name] = kpi_weight.get(name, 0) + s.requests
    kpis = {n: kpi_sum[n] / kpi_weight[n] for n in kpi_sum if kpi_weight[n] > 0}
    return CohortSample(
        requests=requests,
        errors=sum(s.errors for s in samples),
        latency_buckets=buckets,
        kpis=kpis,
    )


@lru_cache(maxsize=1024)
def bound(le: str) -> float:
    """A bucket label as seconds; "+Inf" is infinity (a dozen labels, read every window)."""
    return math.inf if le == "+Inf" else float(le)


def sorted_buckets(buckets: dict[str, int]) -> list[tuple[float, int]]:
    return sorted((bound(le), c) for le, c in buckets.items())


def quantile_ms(buckets: dict[str, int], q: float) -> float | None:
    """Like Prometheus histogram_quantile: linear within the bucket holding rank q."""
    ordered = sorted_buckets(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower_le, lower_count = 0.0, 0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower_le * 1000
            span = count - lower_count
            share = (rank - lower_count) / span if span else 1.0
            return (lower_le + (le - lower_le) * share) * 1000
        lower_le, lower_count = le, count
    return lower_le * 1000


def slower_than(buckets: dict[str, int], budget_ms: float) -> tuple[float, int]:
    """(requests slower than the budget, interpolated within its bucket; total requests).

    Interpolation assumes requests spread evenly inside the bucket, as histogram_quantile
    does; when the budget is a bucket bound the count is exact.
    """
    return slower_than_sorted(sorted_buckets(buckets), budget_ms)


def slower_than_sorted(ordered: list[tuple[float, int]], budget_ms: float) -> tuple[float, int]:
    """``slower_than`` on a histogram already sorted (``sorted_buckets``)."""
    if not ordered:
        return 0.0, 0
    total = ordered[-1][1]
    budget = budget_ms / 1000
    lower_le, lower_count = 0.0, 0
    for le, count in ordered:
        if budget <= le:
            if math.isinf(le):
                at_or_below = float(lower_count)
            else:
                at_or_below = lower_count + (count - lower_count) * (budget - lower_le) / (
                    le - lower_le
                )
            return total - at_or_below, total
        lower_le, lower_count = le, count
    return 0.0, total


def above_bound(buckets: dict[str, int], le: str) -> int:
    """Requests above a bucket bound: exact, no interpolation."""
    total = buckets.get("+Inf", max(buckets.values(), default=0))
    return max(0, total - buckets.get(le, 0))


def tail_bound(buckets: dict[str, int], q: float) -> str | None:
    """The lowest finite bucket bound with at most a share ``1 - q`` of requests above it.

    For q = 0.95 that is the upper bound of the bucket holding the p95. None when the
    quantile lies in the +Inf bucket or there are no requests.
    """
    ordered = sorted((bound(le), le, c) for le, c in buckets.items())
    if not ordered or ordered[-1][2] == 0:
        return None
    total = ordered[-1][2]
    for value, label, count in ordered:
        if not math.isinf(value) and total - count <= (1 - q) * total:
            return label
    return None
