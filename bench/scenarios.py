"""Synthetic canary scenarios for the judge benchmark, and the contract a judge meets.

Every scenario is one hour of traffic cut into 10-second windows (360 of them). A window holds,
for the baseline and the canary, the request and error counts, the latency histogram as
Prometheus cumulative bucket counts (``le`` of ``BUCKET_LABELS``) and the conversion KPI.

A run is drawn at once with ``numpy.random.default_rng(seed)``: total requests ~ Poisson(rps·10 s)
split between the cohorts ~ Binomial(canary share), errors ~ Binomial(requests, error rate),
latencies ~ Multinomial over the buckets of a lognormal (median m, sigma 0.45), sessions =
requests // 2 and conversions ~ Binomial(sessions, conversion rate). Rates are taken at the
middle of each window. The same seed gives the same windows, whichever judge reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from bot.adapters.sim.fleet import BUCKET_LABELS, BUCKETS

__all__ = [
    "BUCKETS",
    "BUCKET_LABELS",
    "HORIZON_SECONDS",
    "LATENCY_SIGMA",
    "WINDOWS_PER_RUN",
    "WINDOW_SECONDS",
    "BenchJudge",
    "Cohort",
    "Decision",
    "JudgeFactory",
    "Load",
    "Regression",
    "Scenario",
    "Window",
    "all_scenarios",
    "scenario_named",
]

WINDOW_SECONDS = 10
HORIZON_SECONDS = 3600
WINDOWS_PER_RUN = HORIZON_SECONDS // WINDOW_SECONDS
LATENCY_SIGMA = 0.45
GUARDRAILS = "error_rate<1% p95<300ms kpi:conversion>=-5%"
BASE_CONVERSION = 0.05


@dataclass(frozen=True, slots=True)
class Cohort:
    requests: int
    errors: int
    buckets: tuple[
        int, ...
    ]  # cumulative counts per le of BUCKET_LABELS (seconds, last "+Inf"), this window only
    kpi: float | None  # conversions / sessions in this window; None when no sessions


@dataclass(frozen=True, slots=True)
class Window:
    end_seconds: (
        float  # seconds since the analysis started; each window is WINDOW_SECONDS = 10 long
    )
    baseline: Cohort
    canary: Cohort


Decision = Literal["rollback", "promote"]


class BenchJudge(Protocol):
    """One canary analysis: fed the windows in order until it decides."""

    def observe(self, window: Window) -> Decision | None: ...  # None: keep analysing


JudgeFactory = Callable[["Scenario"], BenchJudge]  # one fresh judge per run


@dataclass(frozen=True, slots=True)
class Load:
    """What both cohorts see: total traffic, error rate and median latency.

    With ``diurnal`` the load climbs from the trough (first values) to the peak (second values)
    along half a sine over the hour, and every quantity moves in proportion to the load's
    position between trough and peak; otherwise it stays at the trough values."""

    rps: tuple[float, float] = (200.0, 200.0)
    error_rate: tuple[float, float] = (0.005, 0.005)
    median_ms: tuple[float, float] = (80.0, 80.0)
    diurnal: bool = False

    def position(self, minutes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Where the load stands between trough (0) and peak (1) at ``minutes`` into the run."""
        if not self.diurnal:
            return np.zeros_like(minutes)
        horizon = HORIZON_SECONDS / 60
        return np.asarray((1 - np.cos(np.pi * minutes / horizon)) / 2, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Regression:
    """How the canary differs from the baseline (all neutral: a healthy canary)."""

    error_factor: float = 1.0
    latency_factor: float = 1.0  # multiplies the median, hence every quantile
    latency_drift_per_minute: float = 0.0  # median × (1 + drift · minutes since start)
    kpi_factor: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    bad: bool  # True: the canary regresses and should be rolled back
    description: str  # one line, for the table
    guardrails: str  # the request's guardrails, e.g. "error_rate<1% p95<300ms kpi:conversion>=-5%"
    base_kpi: float  # the KPI level a user sees on dashboards (Flagger-style absolute thresholds may use it)
    canary_share: float  # e.g. 0.05
    load: Load = field(default_factory=Load, repr=False)
    regression: Regression = field(default_factory=Regression, repr=False)

    def windows(self, seed: int) -> list[Window]:
        """The whole 60-minute run (360 windows), deterministic per seed."""
        rng = np.random.default_rng(seed)
        n = WINDOWS_PER_RUN
        minutes = (np.arange(n, dtype=np.float64) + 0.5) * WINDOW_SECONDS / 60
        pos = self.load.position(minutes)
        lo, hi = self.load.rps
        total = rng.poisson((lo + (hi - lo) * pos) * WINDOW_SECONDS)
        canary_req = rng.binomial(total, self.canary_share)
        requests = np.stack([total - canary_req, canary_req])  # (2, n): baseline, canary

        elo, ehi = self.load.error_rate
        base_err = elo + (ehi - elo) * pos
        err_rate = np.stack([base_err, np.minimum(base_err * self.regression.error_factor, 1.0)])
        errors = rng.binomial(requests, err_rate)

        counts = rng.multinomial(requests, _bucket_probabilities(self.load, self.regression))
        cumulative = np.cumsum(counts, axis=-1)

        sessions = requests // 2
        conv_rate = np.array([[self.base_kpi], [self.base_kpi * self.regression.kpi_factor]])
        conversions = rng.binomial(sessions, np.broadcast_to(conv_rate, sessions.shape))
        with np.errstate(invalid="ignore", divide="ignore"):
            kpi = np.where(sessions > 0, conversions / np.maximum(sessions, 1), np.nan)

        req_l, err_l, cum_l, kpi_l = (
            requests.tolist(),
            errors.tolist(),
            cumulative.tolist(),
            kpi.tolist(),
        )
        cohorts: list[list[Cohort]] = [
            [
                Cohort(r, e, tuple(b), None if k != k else k)  # k != k: NaN, no sessions
                for r, e, b, k in zip(req_l[c], err_l[c], cum_l[c], kpi_l[c], strict=True)
            ]
            for c in (0, 1)
        ]
        return [
            Window(float((i + 1) * WINDOW_SECONDS), base, can)
            for i, (base, can) in enumerate(zip(cohorts[0], cohorts[1], strict=True))
        ]


@lru_cache(maxsize=64)
def _bucket_probabilities(load: Load, regression: Regression) -> npt.NDArray[np.float64]:
    """Probability of each bucket per cohort and window, shape (2, 360, len(BUCKET_LABELS)).

    It does not depend on the seed, so it is computed once per scenario."""
    n = WINDOWS_PER_RUN
    minutes = (np.arange(n, dtype=np.float64) + 0.5) * WINDOW_SECONDS / 60
    pos = load.position(minutes)
    mlo, mhi = load.median_ms
    base_med = mlo + (mhi - mlo) * pos
    canary_med = (
        base_med * regression.latency_factor * (1 + regression.latency_drift_per_minute * minutes)
    )
    medians = np.stack([base_med, canary_med])  # (2, n)
    log_bounds = np.log(np.array(BUCKETS) * 1000.0)
    z = (log_bounds[None, None, :] - np.log(medians)[:, :, None]) / LATENCY_SIGMA
    cdf_of = np.frompyfunc(NormalDist().cdf, 1, 1)
    cdf = np.asarray(cdf_of(z), dtype=np.float64)
    edges = np.concatenate([np.zeros((2, n, 1)), cdf, np.ones((2, n, 1))], axis=-1)
    probs = np.clip(np.diff(edges, axis=-1), 0.0, None)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def all_scenarios() -> tuple[Scenario, ...]:
    """The seven scenarios of issue 3, then issue 17's, in table order."""

    def scenario(
        name: str,
        bad: bool,
        description: str,
        *,
        canary_share: float = 0.05,
        load: Load | None = None,
        regression: Regression | None = None,
    ) -> Scenario:
        return Scenario(
            name=name,
            bad=bad,
            description=description,
            guardrails=GUARDRAILS,
            base_kpi=BASE_CONVERSION,
            canary_share=canary_share,
            load=load or Load(),
            regression=regression or Regression(),
        )

    return (
        scenario(
            "healthy", False, "200 rps, 5% canary, 0.5% errors, p50 80 ms, conv 5%: no change"
        ),
        scenario(
            "errors_2x",
            True,
            "canary errors 0.5% → 1.0%",
            regression=Regression(error_factor=2.0),
        ),
        scenario(
            "p95_+30%",
            True,
            "canary latency ×1.3 (every quantile +30%)",
            regression=Regression(latency_factor=1.3),
        ),
        scenario(
            "latency_drift",
            True,
            "canary latency ×(1 + 1%/min): +30% at 30 min",
            regression=Regression(latency_drift_per_minute=0.01),
        ),
        scenario(
            "kpi_drop",
            True,
            "canary conversion −20% (5% → 4%)",
            regression=Regression(kpi_factor=0.8),
        ),
        scenario(
            "low_traffic",
            False,
            "20 rps, 1% canary (~12 canary req/min): no change",
            canary_share=0.01,
            load=Load(rps=(20.0, 20.0)),
        ),
        scenario(
            "diurnal",
            False,
            "100 → 300 rps over the hour; errors 0.3 → 0.8%, p50 70 → 100 ms on both",
            load=Load(
                rps=(100.0, 300.0), error_rate=(0.003, 0.008), median_ms=(70.0, 100.0), diurnal=True
            ),
        ),
        # issue 17: rare events, 1 % canaries on moderate traffic, smaller regressions
        scenario(
            "rare_event",
            False,
            "2,000 rps, 1% canary, 0.02% errors: no change",
            canary_share=0.01,
            load=Load(rps=(2000.0, 2000.0), error_rate=(0.0002, 0.0002)),
        ),
        scenario(
            "healthy_1%_500",
            False,
            "500 rps, 1% canary (~5 canary rps): no change",
            canary_share=0.01,
            load=Load(rps=(500.0, 500.0)),
        ),
        scenario(
            "healthy_1%_1000",
            False,
            "1,000 rps, 1% canary (~10 canary rps), 0.2% errors: no change",
            canary_share=0.01,
            load=Load(rps=(1000.0, 1000.0), error_rate=(0.002, 0.002)),
        ),
        scenario(
            "kpi_drop_10%",
            True,
            "canary conversion −10% (5% → 4.5%)",
            regression=Regression(kpi_factor=0.9),
        ),
        scenario(
            "latency_+40%",
            True,
            "150 rps: canary latency ×1.4",
            load=Load(rps=(150.0, 150.0)),
            regression=Regression(latency_factor=1.4),
        ),
        scenario(
            "errors_2.5x",
            True,
            "150 rps: canary errors 0.5% → 1.25%",
            load=Load(rps=(150.0, 150.0)),
            regression=Regression(error_factor=2.5),
        ),
    )


def scenario_named(name: str) -> Scenario:
    for s in all_scenarios():
        if s.name == name:
            return s
    known = ", ".join(s.name for s in all_scenarios())
    raise KeyError(f"no scenario {name!r} (known: {known})")
