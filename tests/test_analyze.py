"""``release-bot analyze``: recorded metric windows through the canary judge.

The recordings are generated here with ``random.Random`` (only ``random()``, whose stream
Python keeps stable across versions). ``data/examples/canary-errors.jsonl`` is one of them;
regenerate it with::

    .venv/bin/python -c "from tests.test_analyze import example; print(example(), end='')" \\
        > data/examples/canary-errors.jsonl
"""

from __future__ import annotations

import bisect
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.analyze import (
    LineError,
    MalformedRecording,
    WindowLineError,
    WindowResult,
    analyze,
    parse_guardrails,
    parse_recording,
    parse_window_line,
    summary_record,
    window_record,
)
from bot.domain.contract import CanaryMetrics
from bot.parsing import ParseError, parse_guardrail
from tests.conftest import ROOT, cli

EXAMPLE = ROOT / "data" / "examples" / "canary-errors.jsonl"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LES = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")
# Cumulative share of requests at or under each bound: p95 falls in the 0.1-0.25 s bucket.
CUMULATIVE = (0.42, 0.79, 0.974, 0.995, 0.9995, 1.0)


# -- a deterministic recording generator ---------------------------------------------------------


def cohort(
    rng: random.Random, rps: float, error_rate: float, seconds: float, kpi: float | None
) -> dict[str, Any]:
    """One cohort's window: requests within ±5 % of ``rps``, each failing with
    ``error_rate`` and landing in a latency bucket drawn from ``CUMULATIVE``."""
    requests = round(rps * seconds * (0.95 + 0.1 * rng.random()))
    errors = 0
    per_bucket = [0] * len(LES)
    for _ in range(requests):
        errors += rng.random() < error_rate
        per_bucket[bisect.bisect_left(CUMULATIVE, rng.random())] += 1
    running, buckets = 0, {}
    for le, count in zip(LES, per_bucket, strict=True):
        running += count
        buckets[le] = running
    out: dict[str, Any] = {"requests": requests, "errors": errors, "latency_buckets": buckets}
    if kpi is not None:
        out["kpis"] = {"checkout_conversion": round(kpi * (0.9 + 0.2 * rng.random()), 5)}
    return out


def recording(
    seed: int = 1,
    windows: int = 60,
    canary_error_rate: float = 0.005,
    baseline_error_rate: float = 0.005,
    jump_minute: float = 0.0,
    seconds: float = 10.0,
    kpis: bool = False,
    baseline_rps: float = 200.0,
) -> str:
    """JSON Lines: 200 rps baseline, 10 rps canary, 0.5 % errors in both, 10 s windows; the
    canary's errors are ``canary_error_rate`` from ``jump_minute`` on."""
    rng = random.Random(seed)
    lines = []
    for i in range(windows):
        end = T0 + timedelta(seconds=seconds * (i + 1))
        started = (end - T0).total_seconds() / 60 > jump_minute
        canary_rate = canary_error_rate if started else 0.005
        kpi = 0.031 if kpis else None
        line = {
            "t": end.isoformat().replace("+00:00", "Z"),
            "baseline": cohort(rng, baseline_rps, baseline_error_rate, seconds, kpi),
            "canary": cohort(rng, 10, canary_rate, seconds, kpi),
        }
        lines.append(json.dumps(line))
    return "\n".join(lines) + "\n"


def example() -> str:
    """``data/examples/canary-errors.jsonl``: the canary's errors jump to 3 % at minute 2."""
    return recording(seed=7, windows=40, canary_error_rate=0.03, jump_minute=2.0, kpis=True)


def judged(text: str, guardrails: str = "", **kwargs: Any) -> list[WindowResult]:
    windows = [w.sample for w in parse_recording(text)]
    return analyze(windows, parse_guardrails(guardrails), **kwargs)


def first(results: list[WindowResult], recommendation: str) -> WindowResult | None:
    return next((r for r in results if r.recommendation == recommendation), None)


def minutes(result: WindowResult | None) -> float:
    assert result is not None
    return (result.t - T0).total_seconds() / 60


def good_line(**changes: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "t": "2026-11-24T10:00:10Z",
        "baseline": {
            "requests": 1900,
            "errors": 9,
            "latency_buckets": {
                "0.05": 800, "0.1": 1500, "0.25": 1850, "0.5": 1890, "1": 1899, "+Inf": 1900,
            },
            "kpis": {"checkout_conversion": 0.031},
        },
        "canary": {
            "requests": 10,
            "errors": 0,
            "latency_buckets": {"0.05": 4, "0.1": 8, "0.25": 10, "0.5": 10, "1": 10, "+Inf": 10},
        },
    }  # fmt: skip
    line.update(changes)
    return line


def with_canary(**changes: Any) -> str:
    line = good_line()
    line["canary"] = {**line["canary"], **changes}
    return json.dumps(line)


# -- the judge over recordings --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_healthy_canary_promotes_after_the_soak_and_never_rolls_back(seed: int) -> None:
    results = judged(recording(seed=seed))
    assert len(results) == 60
    assert all(r.recommendation != "rollback" for r in results)
    assert all(r.decided_by == [] for r in results)
    assert results[-1].recommendation == "promote"
    assert results[-1].statistical_confidence >= 0.95
    assert minutes(first(results, "promote")) >= 5  # the default --min-soak


def test_min_soak_delays_the_promotion() -> None:
    results = judged(recording(seed=1, windows=80), min_soak_minutes=12)
    assert minutes(first(results, "promote")) >= 12


def test_five_times_the_baselines_errors_rolls_back_within_minutes_and_stays_rolled_back() -> None:
    results = judged(recording(seed=4, canary_error_rate=0.025))
    rollback = first(results, "rollback")
    assert rollback is not None
    assert minutes(rollback) <= 4
    assert "errors vs baseline" in rollback.decided_by
    assert rollback.statistical_confidence >= 0.99
    assert any("error rate: canary" in d for d in rollback.details)
    later = results[results.index(rollback) :]
    assert all(r.recommendation == "rollback" for r in later)
    assert all(r.decided_by == rollback.decided_by for r in later)
    # the metrics keep counting after the rollback
    assert later[-1].metrics.error_rate != rollback.metrics.error_rate
    assert [r.canary_requests for r in later] == [
        json.loads(line)["canary"]["requests"]
        for line in recording(seed=4, canary_error_rate=0.025).splitlines()[-len(later) :]
    ]


def test_a_larger_alpha_rolls_back_no_later_and_states_its_own_confidence() -> None:
    text = recording(seed=5, canary_error_rate=0.02)
    strict, lax = judged(text, alpha=0.001), judged(text, alpha=0.2)
    strict_at, lax_at = first(strict, "rollback"), first(lax, "rollback")
    assert strict_at is not None and lax_at is not None
    assert lax_at.t <= strict_at.t
    assert strict_at.statistical_confidence >= 0.999
    assert lax_at.statistical_confidence >= 0.8


def test_an_absolute_guardrail_adds_its_own_test() -> None:
    # The canary fails 3 % of requests, over error_rate<1%, with no baseline to compare it to.
    text = recording(seed=6, canary_error_rate=0.03, baseline_rps=0)
    assert all(r.recommendation != "rollback" for r in judged(text))
    results = judged(text, "error_rate<1%")
    rollback = first(results, "rollback")
    assert rollback is not None
    assert rollback.decided_by == ["error_rate<1%"]
    assert rollback.metrics.error_rate.verdict == "fail"
    assert any(d.startswith("error_rate<1%: canary error_rate") for d in rollback.details)


def test_a_bound_the_baseline_breaks_too_is_no_rollback() -> None:
    # Both cohorts fail 3 % of requests: no worse than the baseline, both over error_rate<1%.
    text = recording(seed=6, canary_error_rate=0.03, baseline_error_rate=0.03)
    results = judged(text, "error_rate<1%")
    assert all(r.recommendation != "rollback" for r in results)
    held = results[-1]
    assert held.decided_by == ["error_rate<1%"]
    assert any("the stable version breaks it too" in d for d in held.details)


def test_a_latency_guardrail_is_judged_on_the_buckets() -> None:
    # 2.6 % of requests are slower than 250 ms: within p95<250ms on every window.
    results = judged(recording(seed=8), "p95<250ms")
    assert all(r.recommendation != "rollback" for r in results)
    assert results[-1].recommendation == "promote"
    assert results[-1].metrics.latency_p95.canary < 250


def test_kpis_are_optional_and_a_kpi_guardrail_reads_them() -> None:
    results = judged(recording(seed=9, kpis=True, windows=80), "kpi:checkout_conversion>=-2%")
    assert all(r.recommendation != "rollback" for r in results)
    assert judged(recording(seed=9, windows=5))  # no kpis at all


# -- windows from lines ---------------------------------------------------------------------------


def test_a_line_parses_into_the_judges_samples() -> None:
    t, baseline, canary = parse_window_line(json.dumps(good_line()))
    assert t == T0 + timedelta(seconds=10)
    assert (baseline.requests, baseline.errors) == (1900, 9)
    assert baseline.latency_buckets["0.25"] == 1850
    assert baseline.kpis == {"checkout_conversion": 0.031}
    assert canary.kpis == {}


def test_a_time_with_an_offset_is_read_as_utc_and_printed_with_z() -> None:
    text = json.dumps(good_line(t="2026-11-24T12:00:10+02:00"))
    (window,) = parse_recording(text)
    assert window.sample.end == T0 + timedelta(seconds=10)
    (result,) = analyze([window.sample])
    assert window_record(result)["t"] == "2026-11-24T10:00:10Z"


def test_a_window_without_canary_traffic_is_valid() -> None:
    text = json.dumps(good_line(canary={"requests": 0, "errors": 0}))
    _, _, canary = parse_window_line(text)
    assert (canary.requests, canary.latency_buckets, canary.kpis) == (0, {}, {})
    (result,) = analyze([w.sample for w in parse_recording(text)])
    assert (result.recommendation, result.canary_requests) == ("extend_analysis", 0)


def test_each_window_starts_where_the_previous_one_ended() -> None:
    lines = [json.dumps(good_line(t=f"2026-11-24T10:0{m}:00Z")) for m in (1, 2, 4)]
    windows = parse_recording("\n\n".join(lines) + "\n  \n")  # blank lines are skipped
    assert [w.line for w in windows] == [1, 3, 5]
    spans = [(w.sample.start.minute, w.sample.end.minute) for w in windows]
    assert spans == [(0, 1), (1, 2), (2, 4)]  # the first as long as the gap to the second


def test_a_single_window_lasts_ten_seconds() -> None:
    (window,) = parse_recording(json.dumps(good_line()))
    assert window.sample.end - window.sample.start == timedelta(seconds=10)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at column 2"),
        ("[1, 2]", "a line must be one JSON object, not [1, 2]"),
        (json.dumps(good_line(foo=1)), "unknown key `foo` (expected `t`, `baseline`, `canary`)"),
        (json.dumps({"t": "2026-11-24T10:00:10Z", "canary": {}}), "missing `baseline`"),
        (with_canary(errors=12), "`canary.errors` (12) is more than `canary.requests` (10)"),
        (with_canary(requests=-1), "`canary.requests` must be a whole number ≥ 0, not -1"),
        (with_canary(requests="10"), '`canary.requests` must be a whole number ≥ 0, not "10"'),
        (with_canary(errors=True), "`canary.errors` must be a whole number ≥ 0, not true"),
        (with_canary(latency=1), "unknown key `canary.latency`"),
        (
            json.dumps(good_line(t="2026-11-24T10:00:10")),
            '`t` is not an ISO 8601 time with a timezone: "2026-11-24T10:00:10"',
        ),
        (json.dumps(good_line(t="yesterday")), "`t` is not an ISO 8601 time with a timezone"),
        (json.dumps(good_line(t=1764000000)), "`t` is not an ISO 8601 time with a timezone: 1764000000"),
        (
            with_canary(latency_buckets={"0.1": 8, "1": 10}),
            '`canary.latency_buckets` needs a "+Inf" bucket',
        ),
        (
            with_canary(latency_buckets={"0.1": 8, "0.05": 9, "+Inf": 10}),
            'bucket counts must not decrease with `le`, but "0.05" has 9 and "0.1" 8',
        ),
        (
            with_canary(latency_buckets={"0.1": 8, "+Inf": 9}),
            '`canary.latency_buckets` "+Inf" (9) must equal `canary.requests` (10)',
        ),
        (with_canary(latency_buckets={"fast": 8, "+Inf": 10}), 'has bound "fast"'),
        (with_canary(latency_buckets={"0.1": 8, "0.10": 9, "+Inf": 10}), "the same bound twice"),
        (with_canary(latency_buckets={"0.1": 8.5, "+Inf": 10}), 'count for "0.1" must be a whole number'),
        (with_canary(kpis={"conversion": "high"}), '`canary.kpis.conversion` must be a finite number, not "high"'),
        (with_canary(kpis={"conversion": float("nan")}), "`canary.kpis.conversion` must be a finite number, not NaN"),
        (with_canary(kpis=[0.03]), "`canary.kpis` must be a JSON object, not [0.03]"),
        (json.dumps(good_line(canary=None)), "`canary` must be a JSON object, not null"),
        ('{"t": "2026-11-24T10:00:10Z", "t": "2026-11-24T10:00:20Z"}', "key `t` appears twice"),
    ],
)  # fmt: skip
def test_a_malformed_line_says_precisely_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(WindowLineError) as caught:
        parse_window_line(line)
    assert problem in caught.value.problem
    assert "\n" not in caught.value.problem and "pydantic" not in caught.value.problem


def test_every_bad_line_of_a_recording_is_reported_with_its_number() -> None:
    lines = [
        json.dumps(good_line(t="2026-11-24T10:00:10Z")),
        json.dumps(good_line(t="2026-11-24T10:00:20Z")),
        with_canary(errors=12),
        "",
        json.dumps(good_line(t="2026-11-24T10:00:05Z")),
        json.dumps(good_line(t="2026-11-24T10:00:20Z")),
        with_canary(latency_buckets={"0.1": 8, "+Inf": 10}).replace("10:00:10", "10:00:30"),
    ]
    with pytest.raises(MalformedRecording) as caught:
        parse_recording("\n".join(lines))
    assert caught.value.errors == [
        LineError(3, "`canary.errors` (12) is more than `canary.requests` (10)"),
        LineError(
            5,
            "`t` goes backwards: 2026-11-24T10:00:05Z is before the previous window's "
            "2026-11-24T10:00:20Z (line 2)",
        ),
        LineError(
            6,
            "`t` does not advance: 2026-11-24T10:00:20Z is the same as the previous window's "
            "2026-11-24T10:00:20Z (line 2)",
        ),
        LineError(
            7,
            "`canary.latency_buckets` bounds (0.1, +Inf) differ from `baseline.latency_buckets`'s on line 1 "
            "(0.05, 0.1, 0.25, 0.5, 1, +Inf); every window must use the same buckets",
        ),
    ]


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_a_recording_without_windows_is_an_error(text: str) -> None:
    with pytest.raises(MalformedRecording) as caught:
        parse_recording(text)
    assert [e.describe("empty.jsonl") for e in caught.value.errors] == ["empty.jsonl: no windows"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("error_rate<1% bogus<3", "bogus is not a guardrail metric"),
        ("error_rate<1% error_rate<2%", "error_rate<2%: error_rate is given twice"),
    ],
)
def test_bad_guardrails_raise_the_parsers_message(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        parse_guardrails(text)


# -- output records -------------------------------------------------------------------------------


def test_a_window_record_carries_the_contracts_metrics() -> None:
    results = judged(recording(seed=1, windows=3))
    record = window_record(results[0])
    assert list(record) == [
        "t", "recommendation", "statistical_confidence", "metrics", "canary_requests", "decided_by",
    ]  # fmt: skip
    assert record["t"] == "2026-11-24T10:00:10Z"
    CanaryMetrics.model_validate(record["metrics"])
    assert next(iter(window_record(results[0], "a.jsonl"))) == "file"


def test_a_summary_says_when_the_final_recommendation_was_first_reached() -> None:
    windows = [w.sample for w in parse_recording(example())]
    summary = summary_record("x.jsonl", windows, analyze(windows))
    assert summary["recommendation"] == "rollback"
    assert 2 < summary["minute"] <= 5  # the errors jump at minute 2
    assert summary["windows"] == 40
    assert summary["breached"] and all("error rate" in d for d in summary["breached"])


def test_the_example_file_is_the_generators_output() -> None:
    assert EXAMPLE.read_text() == example()


# -- the command ----------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_analyze_prints_one_json_line_per_window(tmp_path: Path) -> None:
    proc = cli("analyze", write(tmp_path, "healthy.jsonl", recording(seed=1)))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 60
    assert all("file" not in line for line in lines)
    assert lines[-1]["recommendation"] == "promote"


def test_with_several_files_every_line_names_its_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.jsonl", recording(seed=1, windows=5))
    b = write(tmp_path, "b.jsonl", recording(seed=2, windows=7))
    proc = cli("analyze", a, b)
    assert proc.returncode == 0, proc.stderr
    files = [json.loads(line)["file"] for line in proc.stdout.splitlines()]
    assert files == [a] * 5 + [b] * 7


def test_a_malformed_file_is_reported_and_the_good_one_still_analysed(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "bad.jsonl",
        "\n".join(
            [json.dumps(good_line()), "{oops", with_canary(errors=12), json.dumps(good_line(t="x"))]
        ),
    )
    good = write(tmp_path, "good.jsonl", recording(seed=1, windows=4))
    empty = write(tmp_path, "empty.jsonl", "")
    proc = cli("analyze", bad, good, empty)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: {bad}:2: not JSON: Expecting property name enclosed in double quotes at column 2",
        f"error: {bad}:3: `canary.errors` (12) is more than `canary.requests` (10)",
        f'error: {bad}:4: `t` is not an ISO 8601 time with a timezone: "x" (e.g. 2026-11-24T10:00:10Z)',
        f"error: {empty}: no windows",
    ]
    assert [json.loads(line)["file"] for line in proc.stdout.splitlines()] == [good] * 4


def test_guardrails_on_the_command_line_decide(tmp_path: Path) -> None:
    text = recording(seed=6, windows=30, canary_error_rate=0.03, baseline_rps=0)
    proc = cli("analyze", "--guardrails", "error_rate<1%", write(tmp_path, "r.jsonl", text))
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["recommendation"] == "rollback"
    assert last["decided_by"] == ["error_rate<1%"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--guardrails", "p95<fast"], "error: --guardrails p95<fast: "),
        (["--alpha", "2"], "Invalid value for '--alpha'"),
        (["/nonexistent/r.jsonl"], "error: cannot read /nonexistent/r.jsonl: No such file or directory"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_without_a_traceback(args: list[str], message: str) -> None:
    files = [] if any(a.endswith(".jsonl") for a in args) else [str(EXAMPLE)]
    proc = cli("analyze", *args, *files)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_bad_guardrail_shows_the_parsers_own_message() -> None:
    proc = cli("analyze", "--guardrails", "error_rate<1% latency<3", str(EXAMPLE))
    with pytest.raises(ParseError) as caught:
        parse_guardrail("latency<3")
    assert proc.returncode == 2
    assert proc.stderr == f"error: --guardrails {caught.value}\n"


def test_summary_prints_one_line_per_file(tmp_path: Path) -> None:
    healthy = write(tmp_path, "healthy.jsonl", recording(seed=1))
    proc = cli("analyze", "--summary", str(EXAMPLE), healthy)
    assert proc.returncode == 0, proc.stderr
    rolled_back, promoted = (json.loads(line) for line in proc.stdout.splitlines())
    assert rolled_back["file"] == str(EXAMPLE)
    assert rolled_back["recommendation"] == "rollback"
    assert rolled_back["breached"]
    assert promoted["recommendation"] == "promote"
    assert promoted["minute"] >= 5
    assert promoted["breached"] == []


def test_line_numbers_count_newlines_only() -> None:
    # CRLF endings parse; a U+2028 inside a JSON string does not shift the numbering.
    odd = json.dumps({"t": "2026-11-24T10:00:20Z", "note\u2028": 1}, ensure_ascii=False)
    with pytest.raises(MalformedRecording) as caught:
        parse_recording(json.dumps(good_line()) + "\r\n" + odd + "\r\n")
    assert [e.line for e in caught.value.errors] == [2]
