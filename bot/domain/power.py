"""How much traffic a sequential test needs: the power calculation behind promotion and plans.

The tests of ``bot.domain.sequential`` mix likelihood ratios over a grid of alternatives; the
mixture's log e-value is at least ``log w_k + llr_k`` for every alternative k. After n trials
(requests, or events for a ratio test) ``llr_k`` is close to normal with mean ``n μ_k`` and
variance ``n v_k`` (μ_k, v_k: one trial's log likelihood ratio under the truth), so the test
crosses its threshold by trial n with probability at least ``power`` once, for some k,
``n μ_k - z(power) √(n v_k) ≥ threshold - log w_k``. That n is what this module returns: a
slight overestimate (the mixture gains from its neighbours too), never an optimistic one.

Pure functions, used by the judge (was a regression at the margin given its chance to show?)
and by the planner (how long does a step need to reach a verdict?).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from bot.domain.sequential import LOG_WEIGHTS, OFFSETS

POWER = 0.90  # the judge: a regression at the margin would have been caught 9 times in 10
PLAN_POWER = 0.99  # the planner: a healthy step reaches its verdict within its bake 99 in 100


def _trials(
    means: np.ndarray,
    variances: np.ndarray,
    log_weights: np.ndarray,
    threshold: float,
    power: float,
) -> float:
    """The fewest trials after which some alternative's term has crossed with ``power``."""
    z = NormalDist().inv_cdf(power)
    need = threshold - log_weights
    ok = means > 0
    if not ok.any():
        return math.inf
    mu, b = means[ok], z * np.sqrt(variances[ok])
    root = (b + np.sqrt(b * b + 4 * mu * np.maximum(need[ok], 0.0))) / (2 * mu)  # √n
    return float((root * root).min())


def _bernoulli(
    truth: float, null: float, alternatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per trial, the mean and variance of each alternative's log likelihood ratio against
    ``null`` when the trial succeeds with probability ``truth``."""
    hit = np.log(alternatives / null)
    miss = np.log1p(-alternatives) - math.log1p(-null)
    mean = truth * hit + (1 - truth) * miss
    return mean, truth * (1 - truth) * (hit - miss) ** 2


def requests_to_hold(limit: float, share: float, threshold: float, power: float) -> float:
    """Requests until "share ≥ limit" is rejected (an absolute guardrail shown to hold) with
    probability ``power``, when the true share of bad requests is ``share``."""
    if not 0 < limit < 1 or share >= limit:
        return math.inf
    alternatives = limit * np.exp(-OFFSETS)
    mean, var = _bernoulli(max(share, 0.0), limit, alternatives)
    return _trials(mean, var, LOG_WEIGHTS, threshold, power)


def _canary_odds(theta: float, ratio: float) -> float:
    """Probability that an event came from the canary: θr / (θr + 1)."""
    return theta * ratio / (theta * ratio + 1)


def events_to_detect(
    worse_than: float, theta: float, ratio: float, threshold: float, power: float
) -> float:
    """Events (canary and baseline together) until "θ ≤ worse_than" is rejected with
    probability ``power`` when the true rate ratio is ``theta``; ``ratio``: canary requests
    per baseline request."""
    if theta <= worse_than or ratio <= 0:
        return math.inf
    thetas = worse_than * np.exp(OFFSETS)
    alternatives = thetas * ratio / (thetas * ratio + 1)
    mean, var = _bernoulli(
        _canary_odds(theta, ratio), _canary_odds(worse_than, ratio), alternatives
    )
    return _trials(mean, var, LOG_WEIGHTS, threshold, power)


def events_to_bound(
    within: float, theta: float, ratio: float, threshold: float, power: float
) -> float:
    """Events until "θ ≥ within" is rejected (a regression of ``within``× ruled out) with
    probability ``power`` when the true rate ratio is ``theta``."""
    if theta >= within or ratio <= 0:
        return math.inf
    thetas = within * np.exp(-OFFSETS)
    alternatives = thetas * ratio / (thetas * ratio + 1)
    mean, var = _bernoulli(_canary_odds(theta, ratio), _canary_odds(within, ratio), alternatives)
    return _trials(mean, var, LOG_WEIGHTS, threshold, power)


def detection_power_reached(
    worse_than: float,
    margin: float,
    canary_requests: float,
    baseline_requests: float,
    baseline_share: float,
    threshold: float,
    power: float = POWER,
) -> bool:
    """Whether the exposure so far would have caught a canary at ``margin`` times the
    baseline's rate with probability ``power``: the events such a canary would have brought
    reach the events the rollback test needs."""
    if canary_requests <= 0 or baseline_requests <= 0 or baseline_share <= 0:
        return False
    ratio = canary_requests / baseline_requests
    needed = events_to_detect(worse_than, margin, ratio, threshold, power)
    expected = baseline_share * (margin * canary_requests + baseline_requests)
    return expected >= needed
