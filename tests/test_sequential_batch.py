"""The judge's batched evidence maths gives the same floats, bit for bit, as one test at a
time: the batches only save numpy calls, never change a verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.judge import Totals
from bot.domain.observations import CohortSample
from bot.domain.sequential import (
    LOG_WEIGHTS,
    OFFSETS,
    SHIFT_LOG_WEIGHTS,
    MeanEvidence,
    RateEvidence,
    RatioEvidence,
    add_windows,
    log_mixture,
    log_mixtures,
    rate_mixtures,
)

counts = st.tuples(
    st.integers(0, 50), st.integers(0, 5000), st.integers(0, 500), st.integers(0, 50000)
)


def _one_at_a_time(test: RatioEvidence, windows: list[tuple[int, int, int, int]]) -> bytes:
    """The likelihood as ``add`` computed it before the batches: one numpy step per window."""
    ll = np.zeros(0)
    for ce, cr, be, br in windows:
        if cr <= 0 or br <= 0 or ce + be == 0:
            continue
        thetas = np.concatenate(
            [
                math.log(test.worse_than) + OFFSETS,
                [math.log(test.worse_than)],
                math.log(test.within) - OFFSETS,
                [math.log(test.within)],
            ]
        )
        log_rate = thetas + math.log(cr / br)
        step = ce * log_rate - (ce + be) * np.logaddexp(log_rate, 0.0)
        ll = ll + step if len(ll) else step
    return ll.astype("<f8").tobytes()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(counts, min_size=1, max_size=4), min_size=1, max_size=12))
def test_windows_added_together_match_one_window_at_a_time(
    windows: list[list[tuple[int, int, int, int]]],
) -> None:
    """Tests sharing counts (and nulls) in a pass, each test's windows as a sequence."""
    nulls = [(1.0, 2.0), (1.0, 2.0), (1.2, 2.0), (1.0, 3.0)]
    tests = [RatioEvidence(worse_than=w, within=b) for w, b in nulls]
    fed: list[list[tuple[int, int, int, int]]] = [[] for _ in tests]
    for window in windows:
        # Each test gets one of this window's counts; the first two always share theirs.
        batch = [(window[min(i, len(window) - 1) if i > 1 else 0], t) for i, t in enumerate(tests)]
        add_windows(batch)
        for i, (c, _) in enumerate(batch):
            fed[i].append(c)
    for test, its in zip(tests, fed, strict=True):
        assert test.loglik == _one_at_a_time(test, its)
        assert test.canary_requests == sum(c[1] for c in its if c[1] > 0 and c[3] > 0)
    single = RatioEvidence(worse_than=1.2, within=2.0)
    for c in fed[2]:
        single.add(*c)
    assert single == tests[2]


def test_a_test_fed_twice_in_one_pass_gets_both_windows() -> None:
    twice, apart = (
        RatioEvidence(worse_than=1.0, within=2.0),
        RatioEvidence(worse_than=1.0, within=2.0),
    )
    add_windows([((3, 100, 10, 1900), twice), ((1, 120, 12, 1800), twice)])
    apart.add(3, 100, 10, 1900)
    apart.add(1, 120, 12, 1800)
    assert twice == apart and twice.canary_requests == 220


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20), st.integers(0, 2**32 - 1))
def test_mixtures_computed_together_match_one_at_a_time(kinds: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    grids = {1: LOG_WEIGHTS, 2: SHIFT_LOG_WEIGHTS, 3: LOG_WEIGHTS[:9]}
    mixtures = [
        None if kind == 0 else (rng.normal(size=len(grids[kind])) * 200, grids[kind])
        for kind in kinds
    ]
    expected = [0.0 if m is None else log_mixture(*m) for m in mixtures]
    assert log_mixtures(mixtures) == expected


@pytest.mark.parametrize("limit", [0.005, 0.01, 0.05, 0.3, 0.9])
def test_rate_mixtures_together_match_each_evidence(limit: float) -> None:
    """Whole grids in one pass; a limit high enough to cut the grid, or no requests yet,
    one at a time: either way, the same e-values."""
    rates = [RateEvidence(limit=limit), RateEvidence(limit=limit), RateEvidence(limit=0.01)]
    rates[0].add(24.0, 6193.0)
    rates[2].add(1.6000000000003638, 114005.0)
    asked = [(r, d) for r in rates for d in (+1.0, -1.0)] + [None]
    together = log_mixtures(rate_mixtures(asked))
    alone = [r.log_e_above() if d > 0 else r.log_e_below() for r, d in asked[:-1]] + [0.0]
    assert together == alone
    assert together[0] != 0.0 and together[2] == 0.0


def test_kpi_evidence_keeps_its_e_values() -> None:
    evidence = MeanEvidence()
    for i in range(15):
        evidence.add(-0.2 + 0.01 * (i % 4), 300.0 + i, 5.0)
    mixture = evidence.mixture(-0.1, -1.0, 300.0)
    assert mixture is not None
    assert evidence.log_e_below(-0.1, 300.0) == log_mixture(*mixture)
    assert evidence.log_e_above(-0.1, 300.0) != evidence.log_e_below(-0.1, 300.0)


def test_evidence_sums_written_in_place_still_refuse_unknown_fields() -> None:
    rate = RateEvidence(limit=0.01)
    rate.events = 3.0
    assert rate.model_dump()["events"] == 3.0
    with pytest.raises(ValueError, match="no_such_field"):
        rate.no_such_field = 1.0  # type: ignore[attr-defined]


def test_a_kpi_block_sums_requests_and_kpis_only() -> None:
    sample = CohortSample(
        requests=10, errors=1, latency_buckets={"0.1": 9, "+Inf": 10}, kpis={"conv": 0.5}
    )
    block, cohort = Totals(), Totals()
    block.add(sample, histogram=False)
    cohort.add(sample)
    assert block.buckets == {} and cohort.buckets == {"0.1": 9, "+Inf": 10}
    assert block.kpi("conv") == cohort.kpi("conv") == 0.5 and block.requests == 10
