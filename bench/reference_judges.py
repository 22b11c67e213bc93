"""Two reference canary judges for the benchmark, written from their projects' sources.

``FlaggerStyleJudge`` reproduces Flagger's analysis loop; ``KayentaStyleJudge`` reproduces
Kayenta's NetflixACAJudge as Spinnaker's canary stage runs it. Both read the scenario's
guardrails (``error_rate<1% p95<300ms kpi:conversion>=-5%``) and the same 10-second windows as
every other judge. Each class docstring says what was read and which choices the sources leave
open. The helpers (Prometheus ``histogram_quantile``, the Hodges-Lehmann estimate, the
Mann-Whitney confidence interval, Kayenta's metric classifier and scorer) are plain numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from bench.scenarios import BUCKETS, WINDOW_SECONDS, Cohort, Decision, Scenario, Window

__all__ = [
    "UPPER_BOUNDS",
    "FlaggerStyleJudge",
    "Guardrails",
    "KayentaStyleJudge",
    "MetricResult",
    "ShiftInterval",
    "classify_metric",
    "histogram_quantile",
    "hodges_lehmann",
    "kayenta_score",
    "make_flagger_judge",
    "make_kayenta_judge",
    "mann_whitney_interval",
    "parse_guardrails",
    "remove_outliers",
]

UPPER_BOUNDS: tuple[float, ...] = (*BUCKETS, math.inf)
WINDOWS_PER_MINUTE = 60 // WINDOW_SECONDS

FloatArray = npt.NDArray[np.float64]


# -- guardrails -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The parts of a request's guardrails the reference judges can use."""

    max_error_rate: float | None  # fraction, e.g. 0.01 for error_rate<1%
    max_p95_seconds: float | None
    kpi_min_relative: float | None  # e.g. -0.05 for kpi:conversion>=-5%


_ERROR_RATE = re.compile(r"\berror_rate\s*<=?\s*([0-9.]+)\s*%")
_P95 = re.compile(r"\bp95\s*<=?\s*([0-9.]+)\s*(ms|s)\b")
_KPI = re.compile(r"\bkpi:[\w.-]+\s*>=?\s*([-+]?[0-9.]+)\s*%")


def parse_guardrails(text: str) -> Guardrails:
    """``error_rate<1% p95<300ms kpi:conversion>=-5%`` → (0.01, 0.3, -0.05); missing → None."""
    err, p95, kpi = _ERROR_RATE.search(text), _P95.search(text), _KPI.search(text)
    p95_s = None
    if p95 is not None:
        p95_s = float(p95.group(1)) / (1000.0 if p95.group(2) == "ms" else 1.0)
    return Guardrails(
        max_error_rate=float(err.group(1)) / 100 if err else None,
        max_p95_seconds=p95_s,
        kpi_min_relative=float(kpi.group(1)) / 100 if kpi else None,
    )


# -- Prometheus histogram_quantile -------------------------------------------------------------


def histogram_quantile(
    q: float, cumulative: Sequence[float], upper_bounds: Sequence[float] = UPPER_BOUNDS
) -> float:
    """Prometheus' ``histogram_quantile`` over one set of cumulative bucket counts.

    As promql's ``bucketQuantile``: rank = q·count; find the first bucket whose cumulative
    count reaches the rank; interpolate linearly inside it (from 0 for the first bucket); a rank
    in the +Inf bucket answers the highest finite bound. NaN when there are no observations."""
    if len(cumulative) != len(upper_bounds) or len(cumulative) < 2:
        raise ValueError("one cumulative count per bucket, the last one +Inf, at least two")
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(cumulative) if c >= rank)
    if b == len(cumulative) - 1:
        return float(upper_bounds[-2])
    if b == 0 and upper_bounds[0] <= 0:
        return float(upper_bounds[0])
    start = 0.0 if b == 0 else float(upper_bounds[b - 1])
    below = 0.0 if b == 0 else float(cumulative[b - 1])
    count = float(cumulative[b]) - below
    return start + (float(upper_bounds[b]) - start) * ((rank - below) / count)


# -- Flagger ------------------------------------------------------------------------------------


class FlaggerStyleJudge:
    """Flagger's canary analysis: absolute thresholds, a failed-check counter, fixed steps.

    Read: fluxcd/flagger ``pkg/controller/scheduler.go`` (``advanceCanary``, ``runCanary``,
    ``runAnalysis``, ``nextStepWeight``, ``rollback``), ``pkg/controller/scheduler_metrics.go``
    (``runBuiltinMetricChecks``: request-success-rate against ``thresholdRange.min``,
    request-duration against ``thresholdRange.max`` in ms, any error or ``ErrNoValuesFound``
    halts advancement) and ``pkg/metrics/providers/prometheus.go`` (an empty or NaN result is
    ``ErrNoValuesFound``).

    What Flagger does, per ``interval`` (60 s here, Flagger's usual setting; the metric query
    window is the same ``1m``):

    * it first checks ``failedChecks >= threshold`` and rolls back if so, *then* analyses. So the
      rollback lands on the tick after the 5th failed check, one interval later; we keep that
      (it costs Flagger one minute and that minute's canary requests in the table);
    * it runs the checks in order and stops at the first failure: at most one failed check per
      interval. ``failedChecks`` only grows during a run (it is reset only for a new revision);
    * a passing interval moves the canary weight up by ``stepWeight`` (5) until ``maxWeight``
      (50); the interval that passes at ``maxWeight`` promotes. The weight is 5 after the
      initialising tick, so promotion takes 10 passing intervals (``maxWeight/stepWeight``), at
      least 10 minutes. A failing interval holds the weight.

    Choices the sources leave to the user or that the bench imposes:

    * thresholds come from the guardrails: request success rate ≥ 100 − 1 = 99 % (``error_rate<1%``),
      and the request duration check on p95 ≤ 300 ms (Flagger's built-in ``request-duration`` is
      p99; a user with this guardrail writes the p95 query as a custom metric with the same
      semantics). p95 is ``histogram_quantile(0.95, …)`` over that interval's canary buckets;
    * a check with no canary requests in the interval fails ("no values found"), as Flagger
      does when the canary gets no traffic;
    * the KPI is not checked. A ``conversion`` custom metric at Flagger's per-minute resolution
      fails ~44 % of healthy minutes at 5 % traffic (about 300 canary sessions a minute, KPI
      ≥ 95 % of 5 %), so a user would leave it out; this judge therefore misses ``kpi_drop`` by construction;
    * the canary share stays at the scenario's (e.g. 5 %) for the whole run: the bench does not
      move traffic, so Flagger's weight only counts steps towards promotion;
    * webhooks, load testers, confirm gates and the promotion traffic shift are not modelled;
      "promote" is the tick at which Flagger starts promoting.
    """

    def __init__(
        self,
        guardrails: Guardrails,
        *,
        interval_seconds: int = 60,
        threshold: int = 5,
        step_weight: int = 5,
        max_weight: int = 50,
    ) -> None:
        if interval_seconds % WINDOW_SECONDS:
            raise ValueError(f"interval must be a multiple of {WINDOW_SECONDS} s")
        self.min_success_rate = (
            None if guardrails.max_error_rate is None else 100.0 * (1 - guardrails.max_error_rate)
        )
        self.max_p95_seconds = guardrails.max_p95_seconds
        self.windows_per_interval = interval_seconds // WINDOW_SECONDS
        self.threshold = threshold
        self.step_weight = step_weight
        self.max_weight = max_weight
        self.weight = step_weight  # the initialising tick routed the first step to the canary
        self.failed_checks = 0
        self.intervals = 0
        self._interval: list[Cohort] = []  # the canary's windows since the last tick

    def observe(self, window: Window) -> Decision | None:
        self._interval.append(window.canary)
        if len(self._interval) < self.windows_per_interval:
            return None
        cohorts, self._interval = self._interval, []
        return self._tick(cohorts)

    def _tick(self, cohorts: Sequence[Cohort]) -> Decision | None:
        self.intervals += 1
        if self.failed_checks >= self.threshold:
            return "rollback"
        if not self._checks_pass(cohorts):
            self.failed_checks += 1
            return None
        if self.weight < self.max_weight:
            self.weight = min(self.weight + self.step_weight, 100)
            return None
        return "promote"

    def _checks_pass(self, cohorts: Sequence[Cohort]) -> bool:
        """Flagger's checks over the interval, in order, stopping at the first failure."""
        requests = sum(c.requests for c in cohorts)
        if self.min_success_rate is not None:
            if requests == 0:
                return False  # no values found
            success = 100.0 * (requests - sum(c.errors for c in cohorts)) / requests
            if success < self.min_success_rate:
                return False
        if self.max_p95_seconds is not None:
            buckets = [sum(col) for col in zip(*(c.buckets for c in cohorts), strict=True)]
            p95 = histogram_quantile(0.95, buckets)
            if math.isnan(p95) or p95 > self.max_p95_seconds:
                return False
        return True


def make_flagger_judge(scenario: Scenario) -> FlaggerStyleJudge:
    return FlaggerStyleJudge(parse_guardrails(scenario.guardrails))


# -- Mann-Whitney, Hodges-Lehmann ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShiftInterval:
    """A confidence interval on the location shift experiment − control, and its estimate."""

    lower: float
    upper: float
    estimate: float


def hodges_lehmann(experiment: Sequence[float], control: Sequence[float]) -> float:
    """The Hodges-Lehmann shift: the median of the n·m differences experiment_i − control_j."""
    x, y = np.asarray(experiment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if not x.size or not y.size:
        raise ValueError("both samples need at least one value")
    return float(np.median(np.subtract.outer(x, y)))


def mann_whitney_interval(
    experiment: Sequence[float] | FloatArray,
    control: Sequence[float] | FloatArray,
    confidence: float = 0.98,
) -> ShiftInterval:
    """Two-sided Mann-Whitney (Wilcoxon rank-sum) confidence interval on experiment − control.

    As Kayenta's ``MannWhitney.calculateConfidenceInterval`` (kayenta-mannwhitney, itself R's
    asymptotic ``wilcox.test(conf.int = TRUE, correct = TRUE)``): the bounds are the shifts mu
    where the continuity-corrected, tie-corrected normal statistic of the ranks of
    (experiment − mu) among control crosses ±z. That statistic is a step function of mu that
    only jumps at the n·m pairwise differences, so where Kayenta runs a Brent solver between
    min and max difference, we read the crossings off the sorted differences directly (the
    solver converges onto the same jump points). Between two differences the only ties are
    within each sample, which is the tie correction used. The estimate is the Hodges-Lehmann
    median of the differences, which lies in the flat zero region the solver lands in."""
    x, y = np.asarray(experiment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    n, m = x.size, y.size
    if not n or not m:
        raise ValueError("both samples need at least one value")
    d = np.sort(np.subtract.outer(x, y).ravel())
    big_n = n * m
    ties = 0.0
    for sample in (x, y):
        ordered = np.sort(sample)
        edge = np.ones(1, dtype=bool)
        starts = np.flatnonzero(np.concatenate([edge, ordered[1:] != ordered[:-1], edge]))
        t = np.diff(starts).astype(np.float64)  # sizes of the runs of equal values
        ties += float(np.sum(t**3 - t))
    size = n + m
    variance = n * m / 12.0 * ((size + 1) - ties / (size * (size - 1)))
    sigma = math.sqrt(variance)
    dz = big_n / 2.0 - np.arange(1, big_n + 1, dtype=np.float64)  # on (d[k-1], d[k]), k = 1..N
    stat = (dz - 0.5 * np.sign(dz)) / sigma  # non-increasing in k
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)

    def crossing(q: float) -> float:
        first = int(np.searchsorted(-stat, -q, side="left"))  # first k-1 with stat <= q
        return float(d[min(first, big_n - 1)])

    middle = (big_n - 1) // 2, big_n // 2
    estimate = float((d[middle[0]] + d[middle[1]]) / 2)  # the median of the differences
    return ShiftInterval(lower=crossing(z), upper=crossing(-z), estimate=estimate)


# -- Kayenta's metric classifier and scorer -----------------------------------------------------

Direction = Literal["increase", "decrease", "either"]
Label = Literal["Pass", "High", "Low", "Nodata"]


@dataclass(frozen=True, slots=True)
class MetricResult:
    label: Label
    critical: bool  # a critical metric's failure: the whole analysis scores 0
    deviation: float  # mean(experiment) / mean(control), Kayenta's "ratio"


def _percentiles(sorted_values: FloatArray, percents: Sequence[float]) -> list[float]:
    """numpy's default (linear) percentiles of an already sorted, non-empty array."""
    last = sorted_values.size - 1
    out = []
    for p in percents:
        pos = p / 100.0 * last
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(float(sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])))
    return out


def remove_outliers(values: FloatArray, factor: float = 3.0) -> FloatArray:
    """Kayenta's ``IQRDetector(factor = 3.0, reduceSensitivity = true)``: drop values outside
    [min(p1, Q1 − f·IQR), max(p99, Q3 + f·IQR)] (percentiles interpolated as numpy does)."""
    if values.size == 0:
        return values
    p1, p25, p75, p99 = _percentiles(np.sort(values), (1.0, 25.0, 75.0, 99.0))
    iqr = p75 - p25
    lower, upper = min(p1, p25 - factor * iqr), max(p99, p75 + factor * iqr)
    kept: FloatArray = values[(values >= lower) & (values <= upper)]
    return kept


def classify_metric(
    control: Sequence[float] | FloatArray,
    experiment: Sequence[float] | FloatArray,
    direction: Direction = "either",
    *,
    critical: bool = False,
    tolerance: float = 0.25,
    confidence: float = 0.98,
    allowed: tuple[float, float] = (1.0, 1.0),
    critical_effect: tuple[float, float] = (1.0, 1.0),
    outliers: bool = True,
) -> MetricResult:
    """Kayenta's ``NetflixACAJudge.classifyMetric`` + ``MannWhitneyClassifier.classify``.

    NaNs are removed (``nanStrategy`` remove), then outliers (IQR, factor 3). Empty side:
    Nodata (critical if the metric is). Identical samples, or a single distinct value overall:
    Pass. Otherwise High when the 98 % interval's lower bound exceeds ``tolerance`` × |HL|
    (and the direction allows an increase and mean ratio ≥ ``allowed[1]``); Low symmetrically.
    ``allowed`` = (allowedDecrease, allowedIncrease) and ``critical_effect`` =
    (criticalDecrease, criticalIncrease), both 1.0 by default as in Kayenta."""
    x = np.asarray(experiment, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if outliers:
        x, y = remove_outliers(x), remove_outliers(y)
    if not x.size or not y.size:
        return MetricResult("Nodata", critical, 1.0)
    x, y = np.sort(x), np.sort(y)
    if x.size == y.size and np.array_equal(x, y):
        return MetricResult("Pass", False, 1.0)
    x_constant, y_constant = x[0] == x[-1], y[0] == y[-1]
    if x_constant and y_constant and x[0] == y[0]:  # a single distinct value overall
        return MetricResult("Pass", False, 1.0)

    if x_constant and y_constant:
        # Kayenta adds Gaussian noise of scale 1e-5 × value to break the all-tied ranks; in the
        # limit the interval and the estimate are the difference of the two constants.
        shift = float(x[0] - y[0])
        interval = ShiftInterval(shift, shift, shift)
    else:
        interval = mann_whitney_interval(x, y, confidence)

    control_mean, experiment_mean = float(np.mean(y)), float(np.mean(x))
    if control_mean == 0.0:
        deviation = 1.0
    elif experiment_mean == 0.0:
        deviation = math.nan  # EffectSizes.meanRatio: NaN when either mean is 0
    else:
        deviation = experiment_mean / control_mean

    bound = tolerance * abs(interval.estimate)
    high = (
        direction in ("increase", "either") and interval.lower > bound and deviation >= allowed[1]
    )
    low = (
        direction in ("decrease", "either") and interval.upper < -bound and deviation <= allowed[0]
    )
    if high:
        return MetricResult("High", critical and deviation >= critical_effect[1], deviation)
    if low:
        return MetricResult("Low", critical and deviation <= critical_effect[0], deviation)
    return MetricResult("Pass", False, deviation)


def kayenta_score(results: Sequence[MetricResult], weights: Sequence[float] | None = None) -> float:
    """Kayenta's ``WeightedSumScorer`` with one group per metric.

    A group scores 100 × Pass / (Pass + High + Low); Nodata groups keep their weight but add
    nothing; groups without a configured weight share what is left of 100 equally (so equal
    weights by default). Any critical failure makes the score 0."""
    if any(r.critical and r.label != "Pass" for r in results):
        return 0.0
    if weights is None:
        weights = [100.0 / len(results)] * len(results) if results else []
    score = 0.0
    for r, w in zip(results, weights, strict=True):
        if r.label == "Nodata":
            continue
        score += (100.0 if r.label == "Pass" else 0.0) * w / 100.0
    return score


class KayentaStyleJudge:
    """Kayenta's NetflixACAJudge, run as Spinnaker's canary stage runs it.

    Read: spinnaker/kayenta
    ``kayenta-judge/src/main/scala/com/netflix/kayenta/judge/NetflixACAJudge.scala``
    (per-metric ``direction``, ``nanStrategy``, ``critical``, ``mustHaveData``,
    ``effectSize.allowedIncrease/allowedDecrease`` and ``criticalIncrease/criticalDecrease``,
    all defaulting to 1.0; ``IQRDetector(factor = 3.0, reduceSensitivity = true)`` outlier
    removal; ``MannWhitneyClassifier(tolerance = 0.25, confLevel = 0.98)``),
    ``.../judge/classifiers/metric/MannWhitneyClassifier.scala`` (Nodata, identical-data and
    all-tied shortcuts, Gaussian noise for two constant samples, bounds ±tolerance·|HL|, High
    needs lower CI > bound and mean ratio ≥ allowedIncrease, critical High needs ratio ≥
    criticalIncrease), ``.../judge/scorers/WeightedSumScorer.scala`` (group score = share of
    Pass among Pass/High/Low, unweighted groups share the remaining weight equally, a critical
    failure scores 0), ``.../judge/classifiers/score/ThresholdScoreClassifier.scala``
    (Pass ≥ pass, Marginal ≥ marginal, else Fail), ``.../judge/detectors/IQRDetector.scala``,
    ``.../judge/stats/EffectSizes.scala`` (meanRatio), and
    ``kayenta-mannwhitney/src/main/scala/com/netflix/kayenta/mannwhitney/MannWhitney.scala``
    (the R ``wilcox.test`` asymptotic interval: normal approximation with tie and continuity
    correction, root-finding over the shift; experiment = canary, control = baseline). From
    spinnaker/orca ``orca-kayenta/.../tasks/MonitorKayentaCanaryTask.kt`` (an interval whose
    score is ≤ marginal fails the stage) and ``AggregateCanaryResultsTask.kt`` (at the end:
    ≤ marginal or < pass fails, so a final "marginal" is a failure, i.e. a rollback).

    The analysis: one data point per minute and cohort for three metrics, compared over all
    minutes so far at every 5-minute interval, for a 30-minute lifetime (6 analyses):

    * ``error_rate`` = errors / requests in the minute; direction increase; **critical**;
    * ``latency_p95`` = ``histogram_quantile(0.95, …)`` over the minute's merged buckets;
      direction increase;
    * ``kpi`` = the request-weighted mean of the minute's window conversion rates; direction
      decrease.

    At each interval: score ≤ 75 (marginal) or a critical failure (score 0) → rollback; at the
    end of the lifetime: score ≥ 95 (pass) → promote, else rollback.

    Choices where the sources leave one open:

    * minimum data: the classifier needs only a non-empty series on each side (empty → Nodata,
      excluded from the score; a critical metric with no data fails). There is no minimum count
      in the source (the docs recommend 50+ points per metric, i.e. hours), so every interval
      is analysed, the first one with 5 points per cohort;
    * NaN handling: a minute without canary requests (or sessions) has no value and is dropped
      (``nanStrategy: remove``, the documented default);
    * weights: one group per metric, no group weights, so the three metrics weigh 1/3 each;
      the guardrails' thresholds (1 %, 300 ms, −5 %) are not used: Kayenta compares canary with
      baseline, it has no absolute limits;
    * outliers: the NetflixACAJudge version read applies the IQR detector to both series on
      every metric; kept (the current docs also describe an ``outliers`` option; its default
      could not be checked in the source, so the code read wins). On a mostly-zero series the
      IQR is 0 and the fences fall back to p1/p99, which drops the largest value;
    * the Hodges-Lehmann estimate is the median of the pairwise differences (see
      ``mann_whitney_interval``); ``tolerance`` 0.25 and confidence 0.98 are the judge's
      hard-coded values; effect sizes stay at their 1.0 defaults (any increase counts).

    Known consequence, not a bug: at 20 rps and 1 % canary a minute holds ~6 canary sessions, so
    the canary's per-minute conversion is 0 in most minutes and Mann-Whitney sees a decrease;
    Kayenta rolls back most ``low_traffic`` runs on the KPI (the sparse-data weakness of
    spinnaker/kayenta#426, from the other side). Re-judging the same data at six intervals
    also inflates its false rollbacks on healthy canaries (about 8 %).
    """

    def __init__(
        self,
        *,
        interval_minutes: int = 5,
        lifetime_minutes: int = 30,
        pass_score: float = 95.0,
        marginal_score: float = 75.0,
        confidence: float = 0.98,
        tolerance: float = 0.25,
    ) -> None:
        self.interval_minutes = interval_minutes
        self.lifetime_minutes = lifetime_minutes
        self.pass_score = pass_score
        self.marginal_score = marginal_score
        self.confidence = confidence
        self.tolerance = tolerance
        self.scores: list[float] = []
        self.last_results: dict[str, MetricResult] = {}
        self._seen = 0
        # per-minute series, index 0 baseline, 1 canary
        self._error_rate: tuple[list[float], list[float]] = ([], [])
        self._p95: tuple[list[float], list[float]] = ([], [])
        self._kpi: tuple[list[float], list[float]] = ([], [])
        self._minute: list[Window] = []

    def observe(self, window: Window) -> Decision | None:
        self._minute.append(window)
        self._seen += 1
        if self._seen % WINDOWS_PER_MINUTE:
            return None
        self._close_minute()
        minutes = self._seen // WINDOWS_PER_MINUTE
        if minutes % self.interval_minutes or minutes > self.lifetime_minutes:
            return None
        return self._analyse(final=minutes >= self.lifetime_minutes)

    def _close_minute(self) -> None:
        for i, cohorts in enumerate(
            ([w.baseline for w in self._minute], [w.canary for w in self._minute])
        ):
            req = sum(c.requests for c in cohorts)
            if req:
                buckets = [sum(col) for col in zip(*(c.buckets for c in cohorts), strict=True)]
                self._error_rate[i].append(sum(c.errors for c in cohorts) / req)
                self._p95[i].append(histogram_quantile(0.95, buckets))
            else:
                self._error_rate[i].append(math.nan)
                self._p95[i].append(math.nan)
            weighted = [(c.kpi, c.requests) for c in cohorts if c.kpi is not None and c.requests]
            weight = sum(r for _, r in weighted)
            self._kpi[i].append(sum(k * r for k, r in weighted) / weight if weight else math.nan)
        self._minute = []

    def _analyse(self, *, final: bool) -> Decision | None:
        conf, tol = self.confidence, self.tolerance
        base_err, canary_err = self._error_rate
        base_p95, canary_p95 = self._p95
        base_kpi, canary_kpi = self._kpi
        results = {
            "error_rate": classify_metric(
                base_err, canary_err, "increase", critical=True, confidence=conf, tolerance=tol
            ),
            "latency_p95": classify_metric(
                base_p95, canary_p95, "increase", confidence=conf, tolerance=tol
            ),
            "kpi": classify_metric(
                base_kpi, canary_kpi, "decrease", confidence=conf, tolerance=tol
            ),
        }
        self.last_results = results
        score = kayenta_score(list(results.values()))
        self.scores.append(score)
        if score <= self.marginal_score:
            return "rollback"
        if final:
            return "promote" if score >= self.pass_score else "rollback"
        return None


def make_kayenta_judge(scenario: Scenario) -> KayentaStyleJudge:
    return KayentaStyleJudge()
