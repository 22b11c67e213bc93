"""The judge benchmark: scenario generator, reference judges and their statistics, harness."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.judge_bench import (
    FLAGGER,
    JUDGE_NAMES,
    KAYENTA,
    OURS,
    RunOutcome,
    Summary,
    build_registry,
    main,
    markdown_table,
    run_judge,
    run_seed,
    summarise,
    target_checks,
)
from bench.reference_judges import (
    FlaggerStyleJudge,
    Guardrails,
    KayentaStyleJudge,
    MetricResult,
    classify_metric,
    histogram_quantile,
    hodges_lehmann,
    kayenta_score,
    make_flagger_judge,
    mann_whitney_interval,
    parse_guardrails,
)
from bench.scenarios import (
    BUCKET_LABELS,
    BUCKETS,
    WINDOWS_PER_RUN,
    Cohort,
    Decision,
    Window,
    all_scenarios,
    scenario_named,
)

# -- hand-built windows -------------------------------------------------------------------------

FAST = BUCKETS.index(0.1)  # requests land in (0.05, 0.1]
SLOW = BUCKETS.index(0.5)  # requests land in (0.25, 0.5]


def cohort(requests: int, errors: int = 0, slow: int = 0, kpi: float | None = 0.05) -> Cohort:
    """``requests`` with ``slow`` of them in (0.25 s, 0.5 s] and the rest in (0.05 s, 0.1 s]."""
    cum = [0] * len(BUCKET_LABELS)
    for i in range(len(cum)):
        if i >= SLOW:
            cum[i] = requests
        elif i >= FAST:
            cum[i] = requests - slow
    return Cohort(requests, errors, tuple(cum), kpi)


def windows(canary: list[Cohort], baseline: list[Cohort] | None = None) -> list[Window]:
    base = baseline if baseline is not None else [cohort(1900)] * len(canary)
    return [Window(10.0 * (i + 1), b, c) for i, (b, c) in enumerate(zip(base, canary, strict=True))]


def first_decision(
    judge: FlaggerStyleJudge | KayentaStyleJudge, ws: list[Window]
) -> tuple[Decision | None, float | None]:
    for w in ws:
        decision = judge.observe(w)
        if decision is not None:
            return decision, w.end_seconds
    return None, None


def flagger() -> FlaggerStyleJudge:
    return FlaggerStyleJudge(parse_guardrails("error_rate<1% p95<300ms kpi:conversion>=-5%"))


GOOD = cohort(100)
BAD_ERRORS = cohort(100, errors=5)  # 95 % success
PER_MINUTE = 6

# -- scenarios ------------------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed_and_well_formed() -> None:
    s = scenario_named("healthy")
    a, b, c = s.windows(7), s.windows(7), s.windows(8)
    assert a == b
    assert a != c
    assert len(a) == WINDOWS_PER_RUN == 360
    assert [w.end_seconds for w in a[:2]] == [10.0, 20.0] and a[-1].end_seconds == 3600.0
    for w in a:
        for co in (w.baseline, w.canary):
            assert len(co.buckets) == len(BUCKET_LABELS)
            assert list(co.buckets) == sorted(co.buckets)
            assert co.buckets[-1] == co.requests
            assert 0 <= co.errors <= co.requests
            assert co.kpi is None or 0.0 <= co.kpi <= 1.0


def test_scenarios_are_the_seven_of_issue_3_then_issue_17s() -> None:
    names = [s.name for s in all_scenarios()]
    assert names == [
        "healthy",
        "errors_2x",
        "p95_+30%",
        "latency_drift",
        "kpi_drop",
        "low_traffic",
        "diurnal",
        "rare_event",
        "healthy_1%_500",
        "healthy_1%_1000",
        "kpi_drop_10%",
        "latency_+40%",
        "errors_2.5x",
    ]
    assert {s.name for s in all_scenarios() if s.bad} == set(names[1:5] + names[10:])
    for s in all_scenarios():
        assert s.guardrails == "error_rate<1% p95<300ms kpi:conversion>=-5%"
        assert s.base_kpi == 0.05
    with pytest.raises(KeyError, match="known"):
        scenario_named("nope")


def _totals(name: str, seeds: range, part: slice = slice(None)) -> dict[str, float]:
    """Pooled rates over ``seeds`` and the windows in ``part``."""
    req = np.zeros(2)
    err = np.zeros(2)
    fast = np.zeros(2)  # requests ≤ 0.1 s
    conv = np.zeros(2)
    for seed in seeds:
        for w in scenario_named(name).windows(seed)[part]:
            for i, c in enumerate((w.baseline, w.canary)):
                req[i] += c.requests
                err[i] += c.errors
                fast[i] += c.buckets[FAST]
                conv[i] += (c.kpi or 0.0) * (c.requests // 2)
    n_windows = len(seeds) * len(range(WINDOWS_PER_RUN)[part])
    return {
        "rps": req.sum() / (10 * n_windows),
        "share": req[1] / req.sum(),
        "base_err": err[0] / req[0],
        "canary_err": err[1] / req[1],
        "base_fast": fast[0] / req[0],
        "canary_fast": fast[1] / req[1],
        "base_kpi": conv[0] / (req[0] / 2),
        "canary_kpi": conv[1] / (req[1] / 2),
    }


def test_healthy_averages_match_the_scenario() -> None:
    t = _totals("healthy", range(3))
    assert t["rps"] == pytest.approx(200, rel=0.01)
    assert t["share"] == pytest.approx(0.05, rel=0.03)
    assert t["canary_err"] == pytest.approx(0.005, rel=0.15)
    assert t["base_err"] == pytest.approx(0.005, rel=0.05)
    p_fast = 0.5 * (1 + math.erf(math.log(100 / 80) / 0.45 / math.sqrt(2)))  # P(latency ≤ 100 ms)
    assert t["canary_fast"] == pytest.approx(p_fast, abs=0.01)
    assert t["canary_kpi"] == pytest.approx(0.05, rel=0.08)


def test_bad_scenarios_move_only_the_canary() -> None:
    errors = _totals("errors_2x", range(3))
    assert errors["canary_err"] == pytest.approx(0.01, rel=0.1)
    assert errors["base_err"] == pytest.approx(0.005, rel=0.05)
    slow = _totals("p95_+30%", range(2))
    p_fast_slow = 0.5 * (1 + math.erf(math.log(100 / 104) / 0.45 / math.sqrt(2)))
    assert slow["canary_fast"] == pytest.approx(p_fast_slow, abs=0.015)
    assert slow["base_fast"] == pytest.approx(0.69, abs=0.01)
    kpi = _totals("kpi_drop", range(3))
    assert kpi["canary_kpi"] == pytest.approx(0.04, rel=0.08)
    assert kpi["base_kpi"] == pytest.approx(0.05, rel=0.03)
    early = _totals("latency_drift", range(2), slice(0, 60))
    late = _totals("latency_drift", range(2), slice(300, 360))
    assert early["canary_fast"] > 0.6 > 0.4 > late["canary_fast"]
    assert late["base_fast"] == pytest.approx(0.69, abs=0.01)


def test_low_traffic_and_diurnal_loads() -> None:
    low = _totals("low_traffic", range(3))
    assert low["rps"] == pytest.approx(20, rel=0.02)
    assert low["share"] == pytest.approx(0.01, rel=0.15)
    first = _totals("diurnal", range(2), slice(0, 30))
    last = _totals("diurnal", range(2), slice(330, 360))
    assert first["rps"] == pytest.approx(100, rel=0.05)
    assert last["rps"] == pytest.approx(300, rel=0.05)
    assert first["base_err"] == pytest.approx(0.003, rel=0.2)
    assert last["base_err"] == pytest.approx(0.008, rel=0.1)
    assert first["base_fast"] > last["base_fast"]  # the median climbs from 70 to 100 ms


# -- histogram_quantile -----------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = (0.1, 0.2, 0.5, math.inf)
    cum = (10, 30, 40, 40)
    assert histogram_quantile(0.5, cum, bounds) == pytest.approx(0.15)  # rank 20 in (0.1, 0.2]
    assert histogram_quantile(0.95, cum, bounds) == pytest.approx(0.44)  # rank 38 in (0.2, 0.5]
    assert histogram_quantile(0.1, cum, bounds) == pytest.approx(0.04)  # first bucket from 0
    assert histogram_quantile(0.9, (10, 30, 40, 50), bounds) == 0.5  # rank in +Inf: last bound
    assert math.isnan(histogram_quantile(0.5, (0, 0, 0, 0), bounds))
    assert histogram_quantile(0.95, cohort(100).buckets) == pytest.approx(0.05 + 0.05 * 0.95)


def test_guardrails_parse() -> None:
    g = parse_guardrails("error_rate<1% p95<300ms kpi:conversion>=-5%")
    assert g == Guardrails(max_error_rate=0.01, max_p95_seconds=0.3, kpi_min_relative=-0.05)
    assert parse_guardrails("p95<0.5s") == Guardrails(None, 0.5, None)


# -- Mann-Whitney and Hodges-Lehmann ----------------------------------------------------------------


def test_hodges_lehmann_is_the_median_pairwise_difference() -> None:
    assert hodges_lehmann([1, 2, 3], [0]) == 2
    assert hodges_lehmann([1, 2], [0, 1]) == 1  # differences 1, 0, 2, 1
    y = [1.0, 2.0, 4.0, 7.0, 11.0]
    assert hodges_lehmann([v + 3.5 for v in y], y) == pytest.approx(3.5)


def test_mann_whitney_interval_on_a_hand_checked_shift() -> None:
    # x − y: 25 differences 6..14; sigma = sqrt(25/12 · 11) ≈ 4.787. At 98 % (z ≈ 2.326) the
    # corrected statistic (12 − k)/4.787 drops below z right after the first difference, and
    # below −z only after the last one; at 95 % (z ≈ 1.96) after the 3rd and the 23rd.
    x, y = [11, 12, 13, 14, 15], [1, 2, 3, 4, 5]
    r98 = mann_whitney_interval(x, y, 0.98)
    assert (r98.lower, r98.upper, r98.estimate) == (6, 14, 10)
    r95 = mann_whitney_interval(x, y, 0.95)
    assert (r95.lower, r95.upper) == (7, 13)
    shifted = mann_whitney_interval([v + 10 for v in range(1, 9)], list(range(1, 9)))
    assert shifted.estimate == 10
    assert shifted.lower < 10 < shifted.upper


def test_mann_whitney_interval_contains_zero_for_identical_samples() -> None:
    r = mann_whitney_interval([3, 1, 4, 1, 5, 9, 2, 6], [3, 1, 4, 1, 5, 9, 2, 6])
    assert r.estimate == 0
    assert r.lower < 0 < r.upper


def test_classifier_reproduces_kayentas_known_pass_on_sparse_data() -> None:
    # spinnaker/spinnaker#6278: 7 canary points at 100 vs all-1 baseline passes Kayenta, whose
    # interval is [~0, 99] and estimate 99: the lower bound is not above 0.25 × 99.
    experiment, control = [100.0] * 7 + [1.0] * 3, [1.0] * 10
    r = mann_whitney_interval(experiment, control)
    assert (r.lower, r.upper, r.estimate) == (0.0, 99.0, 99.0)
    assert classify_metric(control, experiment, "increase", critical=True).label == "Pass"


def test_classifier_directions_and_criticality() -> None:
    low, high = [1.0, 2.0, 3.0, 4.0, 5.0], [11.0, 12.0, 13.0, 14.0, 15.0]
    r = classify_metric(low, high, "increase", critical=True)
    assert r.label == "High" and r.critical and r.deviation == pytest.approx(13 / 3)
    assert classify_metric(low, high, "decrease").label == "Pass"
    assert classify_metric(high, low, "increase").label == "Pass"
    assert classify_metric(high, low, "decrease").label == "Low"
    assert classify_metric(low, low[::-1]).label == "Pass"  # identical data
    assert classify_metric([], high, critical=True) == MetricResult("Nodata", True, 1.0)
    assert classify_metric([1.0] * 5, [2.0] * 5, "increase").label == "High"  # both constant


def test_kayenta_score() -> None:
    ok, high = MetricResult("Pass", False, 1.0), MetricResult("High", False, 2.0)
    assert kayenta_score([ok, ok, ok]) == pytest.approx(100)
    assert kayenta_score([ok, high, ok]) == pytest.approx(200 / 3)
    assert kayenta_score([ok, ok, MetricResult("Nodata", False, 1.0)]) == pytest.approx(200 / 3)
    assert kayenta_score([MetricResult("High", True, 2.0), ok, ok]) == 0


# -- Flagger-style ------------------------------------------------------------------------------


def test_flagger_rolls_back_on_the_tick_after_the_fifth_failed_interval() -> None:
    judge = flagger()
    decision, at = first_decision(judge, windows([BAD_ERRORS] * 60))
    # failed checks at minutes 1..5; Flagger checks the counter before analysing, at minute 6
    assert (decision, at) == ("rollback", 360.0)
    assert judge.failed_checks == 5


def test_flagger_needs_five_failures_and_promotes_after_ten_clean_intervals() -> None:
    assert first_decision(flagger(), windows([GOOD] * 120)) == ("promote", 600.0)
    four_bad = [BAD_ERRORS] * (4 * PER_MINUTE) + [GOOD] * (20 * PER_MINUTE)
    assert first_decision(flagger(), windows(four_bad)) == ("promote", 14 * 60.0)
    five_bad = [BAD_ERRORS] * (5 * PER_MINUTE) + [GOOD] * (20 * PER_MINUTE)
    assert first_decision(flagger(), windows(five_bad)) == ("rollback", 6 * 60.0)
    # failures need not be consecutive: failedChecks only grows
    alternating = ([BAD_ERRORS] * PER_MINUTE + [GOOD] * PER_MINUTE) * 10
    assert first_decision(flagger(), windows(alternating)) == ("rollback", 10 * 60.0)


def test_flagger_counts_no_traffic_and_slow_p95_as_failures() -> None:
    assert first_decision(flagger(), windows([cohort(0, kpi=None)] * 60)) == ("rollback", 360.0)
    slow = cohort(100, slow=10)  # p95 = 0.25 + 0.25 × (95 − 90)/10 = 0.375 s > 300 ms
    assert first_decision(flagger(), windows([slow] * 60)) == ("rollback", 360.0)
    a_little_slow = cohort(100, slow=4)  # p95 in (0.05, 0.1]: passes
    assert first_decision(flagger(), windows([a_little_slow] * 60)) == ("promote", 600.0)


def test_flagger_ignores_the_kpi() -> None:
    ws = windows([cohort(100, kpi=0.0)] * 60)
    assert first_decision(make_flagger_judge(scenario_named("kpi_drop")), ws) == ("promote", 600.0)


# -- Kayenta-style ------------------------------------------------------------------------------


def _steady(n: int, requests: int, errors: tuple[int, ...], kpi: tuple[float, ...]) -> list[Cohort]:
    """Windows with deterministic variation; 10 % of requests slow so p95 is in (0.25, 0.5]."""
    return [
        cohort(requests, errors=errors[i % len(errors)], slow=requests // 10, kpi=kpi[i % len(kpi)])
        for i in range(n)
    ]


def test_kayenta_rolls_back_a_clear_error_jump_at_its_first_analysis() -> None:
    base = _steady(360, 1000, (2, 3, 4, 3, 2, 5, 3), (0.05, 0.051, 0.049))
    canary = _steady(360, 100, (5, 6, 4, 7, 5, 6, 5), (0.05, 0.051, 0.049))
    judge = KayentaStyleJudge()
    assert first_decision(judge, windows(canary, base)) == ("rollback", 300.0)
    assert judge.last_results["error_rate"].label == "High"
    assert judge.last_results["error_rate"].critical
    assert judge.scores == [0.0]


def test_kayenta_rolls_back_a_kpi_drop_but_not_a_kpi_rise() -> None:
    base = _steady(360, 1000, (3,), (0.05, 0.051, 0.049, 0.052))
    drop = _steady(360, 1000, (3,), (0.03, 0.031, 0.029))
    judge = KayentaStyleJudge()
    assert first_decision(judge, windows(drop, base)) == ("rollback", 300.0)
    assert judge.last_results["kpi"].label == "Low"
    assert judge.scores == [pytest.approx(200 / 3)]
    rise = _steady(360, 1000, (3,), (0.07, 0.071, 0.069))
    assert first_decision(KayentaStyleJudge(), windows(rise, base)) == ("promote", 1800.0)


def test_kayenta_promotes_identical_series_at_the_end_of_its_lifetime() -> None:
    series = _steady(360, 500, (1, 2, 3, 4), (0.05, 0.04, 0.06))
    judge = KayentaStyleJudge()
    assert first_decision(judge, windows(series, series)) == ("promote", 1800.0)
    assert judge.scores == [100.0] * 6


# -- harness ------------------------------------------------------------------------------------


class _DecidesAt:
    def __init__(self, seconds: float, decision: Decision) -> None:
        self.seconds, self.decision = seconds, decision

    def observe(self, window: Window) -> Decision | None:
        return self.decision if window.end_seconds >= self.seconds else None


def test_run_judge_reports_time_and_canary_requests_until_the_decision() -> None:
    ws = windows([cohort(7)] * 30)
    cumulative = [7 * (i + 1) for i in range(30)]
    assert run_judge(_DecidesAt(60, "rollback"), ws, cumulative) == RunOutcome("rollback", 1.0, 42)
    assert run_judge(_DecidesAt(1e9, "promote"), ws, cumulative) == RunOutcome(None, None, 210)
    assert run_seed(1, 5) == 1_000_008


def test_registry_order_and_reference_judges() -> None:
    registry = build_registry()
    assert list(registry)[-2:] == [FLAGGER, KAYENTA]
    assert list(registry) == [n for n in JUDGE_NAMES if n in registry]


def _summary(name: str, judge: str, rolled: int, minutes: list[float] | None = None) -> Summary:
    s = scenario_named(name)
    outcomes = [RunOutcome("rollback", m, 100) for m in (minutes or [3.0] * rolled)]
    outcomes += [RunOutcome("promote", 12.0, 500)] * (100 - len(outcomes))
    return summarise(s, judge, outcomes)


def test_targets_pass_and_fail() -> None:
    good = [
        _summary("healthy", OURS, 1),
        _summary("healthy", FLAGGER, 1),
        _summary("healthy", KAYENTA, 10),
        _summary("errors_2x", OURS, 100, [4.0] * 100),
        _summary("errors_2x", KAYENTA, 100, [10.0] * 100),
    ]
    # false rollbacks, promoted within the planned bake, errors_2x twice, pooled
    assert [status for status, _ in target_checks(good)] == ["PASS"] * 5 + ["INFO"]
    bad = [
        _summary("healthy", OURS, 2),  # 2 % > 1 %, above flagger's 1 %, 98 % in the bake
        _summary("healthy", FLAGGER, 1),
        _summary("errors_2x", OURS, 100, [6.0] * 100),  # > 5 min and > half of 10
        _summary("errors_2x", KAYENTA, 100, [10.0] * 100),
    ]
    assert [status for status, _ in target_checks(bad)] == ["FAIL"] * 5 + ["INFO"]


def test_markdown_table_lines_up() -> None:
    rows = [_summary("healthy", FLAGGER, 3), _summary("errors_2x", FLAGGER, 80)]
    rows.append(replace(rows[1], judge=KAYENTA))
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert len({len(line) for line in table}) == 1
    assert "| healthy" in table[2] and "3.0%" in table[2]
    assert "80.0%" in table[3] and "20.0%" in table[3]  # detection, misses


def test_main_runs_the_reference_judges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.md"
    argv = ["--runs", "2", "--judges", "flagger,kayenta", "--scenarios", "healthy,errors_2x"]
    assert main([*argv, "--markdown", str(out)]) == 0
    printed = capsys.readouterr().out
    table = out.read_text(encoding="utf-8")
    assert table.strip() in printed
    assert table.count("flagger-style") == 2 and table.count("kayenta-style") == 2
    assert "targets: skipped (release-bot not run)" in printed
    assert "runs per scenario: 2" in printed
    assert main(["--scenarios", "nope"]) == 2
    assert main(["--judges", "nope"]) == 2


def test_without_bench_ours_only_the_references_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "bench.ours", None)  # as if bench/ours.py did not exist
    assert list(build_registry()) == [FLAGGER, KAYENTA]
    assert main(["--runs", "1", "--scenarios", "healthy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: judge release-bot needs bench/ours.py (make_judge), which does not exist yet; "
        "run with --judges flagger-style,kayenta-style"
    ]
