"""Anytime-valid sequential tests: evidence the canary judge may look at every tick.

Each test holds, for a null hypothesis such as "the canary's error rate is at most 1.2 times
the baseline's", a mixture of likelihood ratios (an e-process). While the null holds it is a
nonnegative supermartingale starting at 1, so by Ville's inequality it ever reaches ``1/α``
with probability at most ``α``, however often it is looked at. Judging every 10 seconds
therefore costs nothing in false rollbacks, unlike re-running a fixed-sample test (Lindon &
Malek 2022, "Anytime-valid inference for multinomial count data"; Howard, Ramdas, McAuliffe
& Sekhon 2021). ``min(1, 1/E)`` is an anytime-valid p-value.

The alternatives form a grid in log-ratio steps of ``STEP`` beyond the null (up to 16 times
it). Their weights are normal in the log ratio, centred on ``PRIOR_CENTRE`` (1.8 times the
null) with ``PRIOR_SD``: most weight on the regressions worth a rollback (1.3 to 5 times),
some on every effect, so small ones are still caught given more data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict

STEP = 0.1
OFFSETS = np.arange(1, 29) * STEP  # log-ratio distance of each alternative from the null
PRIOR_CENTRE = 0.6
PRIOR_SD = 0.5
_PRIOR = np.exp(-0.5 * ((OFFSETS - PRIOR_CENTRE) / PRIOR_SD) ** 2)
LOG_WEIGHTS = np.log(_PRIOR / _PRIOR.sum())
K = len(OFFSETS)
# Mean shifts, in standard deviations of a block of ``unit`` requests: a KPI moves little
# against its noise, so this grid is log-spaced from 0.01 to 1 with its weight around 0.1.
SHIFTS = np.exp(np.linspace(math.log(0.01), 0.0, 40))
_SHIFT_PRIOR = np.exp(-0.5 * ((np.log(SHIFTS) - math.log(0.1)) / 1.0) ** 2)
SHIFT_LOG_WEIGHTS = np.log(_SHIFT_PRIOR / _SHIFT_PRIOR.sum())
# Both directions of the shift grid and its squares, computed once (the same floats).
_SIGNED_SHIFTS = {1.0: 1.0 * SHIFTS, -1.0: -1.0 * SHIFTS}
_SHIFTS_SQUARED = SHIFTS**2


class Evidence(BaseModel):
    """Mutable test state, stored with the release; assignment is not re-validated (speed)."""

    model_config = ConfigDict(extra="forbid")

    def __setattr__(self, name: str, value: object) -> None:
        # The running sums change about a hundred times a window: a field is written
        # straight into the instance, skipping pydantic's assignment path (a quarter of the
        # time of adding a window). Anything else (an unknown name) still goes through it.
        if name in type(self).__pydantic_fields__:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)


def log_mixture(log_ratios: np.ndarray, log_weights: np.ndarray = LOG_WEIGHTS) -> float:
    """log Σ w_k exp(r_k), computed stably."""
    z = log_ratios + log_weights
    top = float(z.max())
    return top + math.log(float(np.exp(z - top).sum()))


# One e-value to compute: (log likelihood ratios, log weights) of its alternatives; None
# when there is no evidence yet (log E = 0).
Mixture = tuple[np.ndarray, np.ndarray] | None


def log_mixtures(mixtures: Sequence[Mixture]) -> list[float]:
    """``log_mixture`` of each, computed together: those of one length in one numpy pass
    (a verdict needs a dozen; each numpy call on a short array costs mostly its overhead).
    Row by row, numpy reduces exactly as it does one array at a time: the same floats."""
    out = [0.0] * len(mixtures)
    present = [(i, m) for i, m in enumerate(mixtures) if m is not None]
    lengths = {len(m[0]) for _, m in present}
    for length in lengths:
        group = present if len(lengths) == 1 else [p for p in present if len(p[1][0]) == length]
        z = np.array([m[0] for _, m in group])
        weights = group[0][1][1]
        # One grid's weights (the usual case) broadcast: the same sums as row by row.
        same = all(m[1] is weights for _, m in group)
        z += weights if same else np.array([m[1] for _, m in group])
        top = np.maximum.reduce(z, axis=1)
        z -= top[:, None]
        np.exp(z, out=z)
        sums = np.add.reduce(z, axis=1)
        for (i, _), t, total in zip(group, top.tolist(), sums.tolist(), strict=True):
            out[i] = t + math.log(total)
    return out


def _one(mixture: Mixture) -> float:
    return 0.0 if mixture is None else log_mixture(*mixture)


@lru_cache(maxsize=64)
def _log_thetas(worse_than: float, within: float) -> np.ndarray:
    thetas = np.concatenate(
        [
            math.log(worse_than) + OFFSETS,
            [math.log(worse_than)],
            math.log(within) - OFFSETS,
            [math.log(within)],
        ]
    )
    thetas.setflags(write=False)
    return thetas


def _packed(value: object) -> object:
    """A state stored before the log likelihoods were packed: a list of floats."""
    if isinstance(value, list):
        return np.asarray(value, dtype="<f8").tobytes()
    return value


# One float64 per alternative, packed (little-endian; base64 in JSON): about half the JSON
# text of the same floats written out, and read back without parsing one number at a time.
PackedFloats = Annotated[bytes, BeforeValidator(_packed)]


def _unpack(packed: bytes) -> np.ndarray:
    return np.frombuffer(packed, dtype="<f8")


Counts = tuple[int, int, int, int]  # canary events, canary requests, baseline's two


def add_windows(windows: Sequence[tuple[Counts, RatioEvidence]]) -> None:
    """``RatioEvidence.add`` of each (counts, test), in one numpy pass: each distinct (null,
    counts) likelihood step computed once (a window's release-long and stage tests, and the
    error-rate guardrails' canary-vs-baseline ones, see the same counts), every test's log
    likelihoods added together. Elementwise, so the same floats as one at a time."""
    if len({id(test) for _, test in windows}) < len(windows):
        for window in windows:  # a test fed twice: its windows in turn, not one overwritten
            add_windows([window])
        return
    moving: list[tuple[RatioEvidence, int]] = []  # (test, its step's row)
    rows: dict[tuple[float, float, int, int, int, int], int] = {}
    for counts, test in windows:
        canary_events, canary_requests, baseline_events, baseline_requests = counts
        if canary_requests <= 0 or baseline_requests <= 0:
            continue  # no comparison in this window: the evidence does not move
        state = test.__dict__  # plain writes, as ``Evidence.__setattr__`` does, minus a call
        state["canary_events"] += canary_events
        state["canary_requests"] += canary_requests
        state["baseline_events"] += baseline_events
        state["baseline_requests"] += baseline_requests
        if canary_events + baseline_events:
            key = (test.worse_than, test.within, *counts)
            moving.append((test, rows.setdefault(key, len(rows))))
    if not moving:
        return
    # Given m events, each is the canary's with probability θr/(θr + 1), r the window's
    # ratio of canary to baseline requests: the step is c·log(θr) - m·log(1 + θr).
    log_rate = np.array([_log_thetas(k[0], k[1]) for k in rows]) + np.array(
        [[math.log(k[3] / k[5])] for k in rows]
    )
    canary = np.array([[k[2]] for k in rows], dtype=np.float64)
    events = np.array([[k[2] + k[4]] for k in rows], dtype=np.float64)
    steps = canary * log_rate - events * np.logaddexp(log_rate, 0.0)
    grown = [(test, row) for test, row in moving if test.loglik]
    for test, row in moving:
        if not test.loglik:  # its first events: the step is the whole likelihood
            test.__dict__["loglik"] = steps[row].astype("<f8").tobytes()
    if grown:
        before = b"".join(test.loglik for test, _ in grown)
        total = _unpack(before).reshape(len(grown), -1) + steps[[row for _, row in grown]]
        packed = total.astype("<f8", copy=False).tobytes()
        width = len(packed) // len(grown)
        for i, (test, _) in enumerate(grown):
            test.__dict__["loglik"] = packed[i * width : (i + 1) * width]


class RatioEvidence(Evidence):
    """Canary against baseline on the per-request rate of one kind of event.

    θ = canary rate / baseline rate (of errors, or of requests slower than a bound). Given
    that a window saw m events, each came from the canary with probability θr/(θr + 1),
    where r is the ratio of canary to baseline requests in that window (the Poisson
    approximation; for θ = 1 the exact conditional law is hypergeometric, which is less
    spread, so the test stays valid). The baseline's own rate cancels out, however it moves
    with load through the day.

    Two nulls are tested on the same likelihood: "θ ≤ worse_than" (rejecting it says the
    canary is worse beyond tolerance) and "θ ≥ within" (rejecting it bounds the regression).
    """

    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    worse_than: float
    within: float
    loglik: PackedFloats = b""
    canary_events: int = 0
    canary_requests: int = 0
    baseline_events: int = 0
    baseline_requests: int = 0

    def add(
        self, canary_events: int, canary_requests: int, baseline_events: int, baseline_requests: int
    ) -> None:
        add_windows([((canary_events, canary_requests, baseline_events, baseline_requests), self)])

    def log_e_worse(self) -> float:
        """log E against "θ ≤ worse_than"."""
        return _one(self.worse_mixture())

    def log_e_within(self) -> float:
        """log E against "θ ≥ within"."""
        return _one(self.within_mixture())

    def worse_mixture(self) -> Mixture:
        if not self.loglik:
            return None
        ll = _unpack(self.loglik)
        return ll[:K] - ll[K], LOG_WEIGHTS

    def within_mixture(self) -> Mixture:
        if not self.loglik:
            return None
        ll = _unpack(self.loglik)
        return ll[K + 1 : 2 * K + 1] - ll[2 * K + 1], LOG_WEIGHTS

    def ratio(self) -> float | None:
        """The pooled estimate of θ (None until both sides saw requests and the baseline events)."""
        if not self.canary_requests or not self.baseline_requests or not self.baseline_events:
            return None
        return (self.canary_events / self.canary_requests) / (
            self.baseline_events / self.baseline_requests
        )


@lru_cache(maxsize=256)
def _rate_grid(limit: float, direction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bad request and per good request, the log likelihood ratio of each alternative."""
    limit = min(max(limit, 1e-9), 1 - 1e-9)
    alternatives = limit * np.exp(direction * OFFSETS)
    valid = alternatives < 1
    p = alternatives[valid]
    return (
        np.log(p / limit),
        np.log1p(-p) - math.log1p(-limit),
        LOG_WEIGHTS[valid],
    )


@lru_cache(maxsize=256)
def _stacked_grids(
    grids: tuple[tuple[float, float], ...],
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Of the (limit, direction) grids whose every alternative is valid: their places in
    ``grids`` and ``_rate_grid``'s per-request likelihood ratios, stacked."""
    whole = tuple(i for i, g in enumerate(grids) if len(_rate_grid(*g)[0]) == K)
    steps = np.array([_rate_grid(*grids[i])[0] for i in whole])
    rests = np.array([_rate_grid(*grids[i])[1] for i in whole])
    return whole, steps, rests


def rate_mixtures(asked: Sequence[tuple[RateEvidence, float] | None]) -> list[Mixture]:
    """``RateEvidence.mixture`` of each (evidence, direction; None: not asked), those on a
    whole grid in one numpy pass (elementwise, so the same floats as one at a time)."""
    out: list[Mixture] = [None] * len(asked)
    live = [(i, item) for i, item in enumerate(asked) if item is not None and item[0].requests > 0]
    if not live:
        return out
    whole, steps, rests = _stacked_grids(tuple((rate.limit, d) for _, (rate, d) in live))
    if whole:
        rates = [live[k][1][0] for k in whole]
        events = np.array([r.events for r in rates])[:, None]
        rest = np.array([r.requests - r.events for r in rates])[:, None]
        for k, llr in zip(whole, events * steps + rest * rests, strict=True):
            out[live[k][0]] = llr, LOG_WEIGHTS
    for i, (rate, direction) in live:
        if out[i] is None:  # a grid cut short by the limit
            out[i] = rate.mixture(direction)
    return out


class RateEvidence(Evidence):
    """One cohort's share of bad requests against a fixed limit (an absolute guardrail).

    Requests are Bernoulli trials; the null "share ≤ limit" is rejected when the canary is
    over the limit, and "share ≥ limit" when it is under. ``events`` may be fractional when a
    latency budget falls inside a histogram bucket (interpolated, as histogram_quantile is).
    """

    limit: float  # a share in (0, 1)
    events: float = 0.0
    requests: float = 0.0

    def add(self, events: float, requests: float) -> None:
        state = self.__dict__  # plain writes (see ``RatioEvidence.add_step``)
        state["events"] += events
        state["requests"] += requests

    def mixture(self, direction: float) -> Mixture:
        """``log_e_above`` (+1) or ``log_e_below`` (-1) to compute."""
        if self.requests <= 0:
            return None
        log_step, log_rest, log_weights = _rate_grid(self.limit, direction)
        if not len(log_step):
            return None
        return self.events * log_step + (self.requests - self.events) * log_rest, log_weights

    def log_e_above(self) -> float:
        """log E against "share ≤ limit"."""
        return _one(self.mixture(+1.0))

    def log_e_below(self) -> float:
        """log E against "share ≥ limit"."""
        return _one(self.mixture(-1.0))

    def share(self) -> float | None:
        return self.events / self.requests if self.requests else None


class MeanEvidence(Evidence):
    """The mean of a series of block values (a KPI, or its canary-minus-baseline difference).

    Each value carries a weight, the requests behind it: its variance is taken as σ²/weight
    (a conversion rate's variance falls with the sessions behind it), so a block from a 50 %
    stage counts ten times one from a 5 % stage. A Gaussian mixture over shifts, measured in
    σ for a block of ``unit`` requests, with σ estimated from the data: approximately
    anytime-valid once enough blocks are in (the plug-in is why a KPI needs a minimum
    number of blocks before it may decide). ``reference`` sums the baseline's values, for
    nulls relative to the baseline level.
    """

    n: int = 0
    weight: float = 0.0
    total: float = 0.0  # Σ weight · value
    total_sq: float = 0.0  # Σ weight · value²
    reference: float = 0.0  # Σ weight · baseline value

    def add(self, value: float, weight: float, reference: float = 0.0) -> None:
        if weight <= 0:
            return
        self.n += 1
        self.weight += weight
        self.total += weight * value
        self.total_sq += weight * value * value
        self.reference += weight * reference

    def mean(self) -> float | None:
        return self.total / self.weight if self.weight else None

    def reference_mean(self) -> float | None:
        return self.reference / self.weight if self.weight else None

    def mixture(self, null_mean: float, direction: float, unit: float) -> Mixture:
        """``log_e_above`` (+1) or ``log_e_below`` (-1) to compute."""
        if self.n < 2:
            return None
        variance = max((self.total_sq - self.total**2 / self.weight) / (self.n - 1), 0.0)
        floor = 1e-12 * max(1.0, abs(null_mean))
        sd = max(math.sqrt(variance), floor)  # per unit of weight
        standardized = (self.total - self.weight * null_mean) / (sd * math.sqrt(unit))
        llr = _SIGNED_SHIFTS[direction] * standardized - self.weight / unit * _SHIFTS_SQUARED / 2
        return llr, SHIFT_LOG_WEIGHTS

    def log_e_below(self, null_mean: float, unit: float = 1.0) -> float:
        """log E against "mean ≥ null_mean"."""
        return _one(self.mixture(null_mean, -1.0, unit))

    def log_e_above(self, null_mean: float, unit: float = 1.0) -> float:
        """log E against "mean ≤ null_mean"."""
        return _one(self.mixture(null_mean, +1.0, unit))
