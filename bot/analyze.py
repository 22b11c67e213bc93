"""Replay recorded metric windows through the canary judge (``release-bot analyze``).

A recording is JSON Lines, one window a line::

    {"t": "2026-11-24T10:00:10Z",
     "baseline": {"requests": 1900, "errors": 9,
                  "latency_buckets": {"0.05": 800, "0.1": 1500, ..., "+Inf": 1900},
                  "kpis": {"checkout_conversion": 0.031}},
     "canary": {...the same keys...}}

``t`` is the window's end (ISO 8601 with a timezone); the window starts at the previous
line's ``t`` (the first one as long before its ``t`` as the gap to the second line, or 10 s
when there is one line). Counts are per window, not cumulative. ``latency_buckets`` are
Prometheus-style cumulative counts per ``le`` bound in seconds, with "+Inf" equal to
``requests``; they and ``kpis`` may be left out.

Pure functions: text in, windows and judgements out; the command line does the I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.base import Model
from bot.domain.contract import CanaryMetrics
from bot.domain.judge import CanaryJudge, JudgeSettings, Recommendation
from bot.domain.judgement import judgement
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.planner import trigger_for
from bot.domain.request import Guardrail
from bot.parsing import ParseError, parse_guardrail

LINE_KEYS = ("t", "baseline", "canary")
COHORT_KEYS = ("requests", "errors", "latency_buckets", "kpis")
SINGLE_WINDOW = timedelta(seconds=10)  # the length of a recording's only window


class WindowLineError(ValueError):
    """One line is malformed; ``problem`` says how, in one sentence for the user."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LineError:
    line: int | None  # 1-based; None: the file as a whole ("no windows")
    problem: str

    def describe(self, file: str) -> str:
        return (
            f"{file}: {self.problem}"
            if self.line is None
            else f"{file}:{self.line}: {self.problem}"
        )


class MalformedRecording(ValueError):
    """A recording with bad lines: every one of them, in line order."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__("; ".join(e.describe("<recording>") for e in errors))
        self.errors = errors


# -- one line ---------------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise WindowLineError(f"key `{key}` appears twice in one object")
        obj[key] = value
    return obj


def _keys(obj: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in obj:
        if key not in allowed:
            listed = ", ".join(f"`{k}`" for k in allowed)
            raise WindowLineError(f"unknown key `{where}{key}` (expected {listed})")


def _count(obj: dict[str, Any], key: str, where: str) -> int:
    if key not in obj:
        raise WindowLineError(f"missing `{where}{key}`")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WindowLineError(f"`{where}{key}` must be a whole number ≥ 0, not {_show(value)}")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WindowLineError(f"`{where}` must be a JSON object, not {_show(value)}")
    return value


def _time(value: Any) -> datetime:
    problem = (
        f"`t` is not an ISO 8601 time with a timezone: {_show(value)} (e.g. 2026-11-24T10:00:10Z)"
    )
    if not isinstance(value, str):
        raise WindowLineError(problem)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WindowLineError(problem) from None
    if moment.tzinfo is None:
        raise WindowLineError(problem)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, or year 9999 west of it
        raise WindowLineError(
            f"`t` {_show(value)} is out of range in UTC; use a real time (e.g. 2026-11-24T10:00:10Z)"
        ) from None


def _buckets(value: Any, requests: int, where: str) -> dict[str, int]:
    buckets = _object(value, f"{where}latency_buckets")
    if not buckets:
        return {}
    bounds: dict[float, str] = {}
    for le, count in buckets.items():
        try:
            bound = math.inf if le == "+Inf" else float(le)
        except ValueError:
            bound = math.nan
        if math.isnan(bound) or bound < 0 or (math.isinf(bound) and le != "+Inf"):
            raise WindowLineError(
                f"`{where}latency_buckets` has bound {_show(le)}: a bound is seconds "
                'as a number ("0.25") or "+Inf"'
            )
        if bound in bounds:
            raise WindowLineError(
                f"`{where}latency_buckets` has {_show(bounds[bound])} and {_show(le)}: the same bound twice"
            )
        bounds[bound] = le
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise WindowLineError(
                f"`{where}latency_buckets` count for {_show(le)} must be a whole number ≥ 0, "
                f"not {_show(count)}"
            )
    if math.inf not in bounds:
        raise WindowLineError(f'`{where}latency_buckets` needs a "+Inf" bucket')
    previous: tuple[str, int] | None = None
    for bound in sorted(bounds):
        le = bounds[bound]
        if previous is not None and buckets[le] < previous[1]:
            raise WindowLineError(
                f"`{where}latency_buckets`: bucket counts must not decrease with `le`, "
                f"but {_show(previous[0])} has {previous[1]} and {_show(le)} {buckets[le]} "
                "(the counts are cumulative)"
            )
        previous = (le, buckets[le])
    if buckets["+Inf"] != requests:
        raise WindowLineError(
            f'`{where}latency_buckets` "+Inf" ({buckets["+Inf"]}) must equal '
            f"`{where}requests` ({requests})"
        )
    return dict(buckets)


def _kpis(value: Any, where: str) -> dict[str, float]:
    kpis = _object(value, f"{where}kpis")
    for name, level in kpis.items():
        if not name:
            raise WindowLineError(f"`{where}kpis` has a KPI without a name")
        number = isinstance(level, int | float) and not isinstance(level, bool)
        if not number or not math.isfinite(level):
            raise WindowLineError(
                f"`{where}kpis.{name}` must be a finite number, not {_show(level)}"
            )
    return {name: float(level) for name, level in kpis.items()}


def _cohort(value: Any, name: str) -> CohortSample:
    obj = _object(value, name)
    where = f"{name}."
    _keys(obj, COHORT_KEYS, where)
    requests = _count(obj, "requests", where)
    errors = _count(obj, "errors", where)
    if errors > requests:
        raise WindowLineError(
            f"`{where}errors` ({errors}) is more than `{where}requests` ({requests})"
        )
    return CohortSample(
        requests=requests,
        errors=errors,
        latency_buckets=_buckets(obj.get("latency_buckets", {}), requests, where),
        kpis=_kpis(obj.get("kpis", {}), where),
    )


def parse_window_line(text: str) -> tuple[datetime, CohortSample, CohortSample]:
    """One line: (its ``t`` in UTC, the baseline, the canary), or ``WindowLineError``."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise WindowLineError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise WindowLineError("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise WindowLineError(f"a line must be one JSON object, not {_show(data)}")
    _keys(data, LINE_KEYS, "")
    for key in LINE_KEYS:
        if key not in data:
            raise WindowLineError(f"missing `{key}`")
    return (
        _time(data["t"]),
        _cohort(data["baseline"], "baseline"),
        _cohort(data["canary"], "canary"),
    )


# -- a whole recording ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    line: int  # 1-based line number in the recording
    sample: WindowSample


@dataclass(frozen=True, slots=True)
class _Layout:
    """The bucket bounds a recording uses, and where they were first seen."""

    bounds: tuple[str, ...]
    line: int
    cohort: str


def _layout(
    line: int, layout: _Layout | None, cohorts: dict[str, CohortSample]
) -> tuple[_Layout | None, str | None]:
    """Every window must use the same bucket bounds: the judge compares them bound by bound."""
    for name, cohort in cohorts.items():
        if not cohort.latency_buckets:
            continue
        bounds = tuple(sorted(cohort.latency_buckets, key=float))
        if layout is None:
            layout = _Layout(bounds, line, name)
        elif bounds != layout.bounds:
            where = "" if layout.line == line else f" on line {layout.line}"
            return layout, (
                f"`{name}.latency_buckets` bounds ({', '.join(bounds)}) differ from "
                f"`{layout.cohort}.latency_buckets`'s{where} ({', '.join(layout.bounds)}); "
                "every window must use the same buckets"
            )
    return layout, None


def parse_recording(text: str) -> list[Window]:
    """Every window of a recording, or ``MalformedRecording`` naming every bad line.

    Blank lines are skipped. Besides each line's own shape, ``t`` must increase from line
    to line and the latency buckets keep the same bounds throughout.
    """
    errors: list[LineError] = []
    parsed: list[tuple[int, datetime, CohortSample, CohortSample]] = []
    layout: _Layout | None = None
    # Only "\n" ends a line (as editors count them): JSON strings may hold U+2028 and the like.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            t, baseline, canary = parse_window_line(line)
        except WindowLineError as exc:
            errors.append(LineError(number, exc.problem))
            continue
        if parsed and t <= parsed[-1][1]:
            before = parsed[-1][1]
            verb = "goes backwards" if t < before else "does not advance"
            relation = "is before" if t < before else "is the same as"
            errors.append(
                LineError(
                    number,
                    f"`t` {verb}: {_iso(t)} {relation} the previous window's {_iso(before)} "
                    f"(line {parsed[-1][0]})",
                )
            )
            continue
        layout, problem = _layout(number, layout, {"baseline": baseline, "canary": canary})
        if problem:
            errors.append(LineError(number, problem))
            continue
        parsed.append((number, t, baseline, canary))
    if not parsed and not errors:
        errors.append(LineError(None, "no windows"))
    if errors:
        raise MalformedRecording(errors)
    ends = [t for _, t, _, _ in parsed]
    first_length = ends[1] - ends[0] if len(ends) > 1 else SINGLE_WINDOW
    try:
        starts = [ends[0] - first_length, *ends[:-1]]
    except OverflowError:  # the first window starts one window length before its `t`
        raise MalformedRecording(
            [
                LineError(
                    parsed[0][0],
                    f"`t` {_iso(ends[0])}: the window would start {first_length} earlier, "
                    "before year 1; use real times (e.g. 2026-11-24T10:00:10Z)",
                )
            ]
        ) from None
    return [
        Window(number, WindowSample(start=start, end=t, baseline=baseline, canary=canary))
        for (number, t, baseline, canary), start in zip(parsed, starts, strict=True)
    ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- judging ----------------------------------------------------------------------------------


class WindowResult(Model):
    """What the judge says after one window: a line of ``release-bot analyze``."""

    t: datetime
    recommendation: Recommendation
    statistical_confidence: float
    metrics: CanaryMetrics  # the contract's canary_analysis.metrics, over all windows so far
    canary_requests: int  # in this window
    decided_by: list[str]  # the breached tests (those of the rollback, once there was one)
    details: list[str]  # what the breached tests say (likewise)


def analyze(
    windows: Sequence[WindowSample],
    guardrails: Sequence[Guardrail] = (),
    min_soak_minutes: float = 5.0,
    alpha: float = 0.01,
) -> list[WindowResult]:
    """The judge's running verdict after each window, as in one canary stage.

    The stage starts at the first window's start and soaks ``min_soak_minutes``. A rollback
    is final: later windows keep its recommendation, confidence and deciding tests, while
    the metrics stay current.
    """
    if not windows:
        return []
    judge = CanaryJudge.create(
        list(guardrails),
        [trigger_for(g, "medium") for g in guardrails],
        JudgeSettings(alpha=alpha),
    )
    judge.start_stage(windows[0].start, min_soak_minutes)
    results: list[WindowResult] = []
    rollback: WindowResult | None = None
    for window in windows:
        judge.observe(window)
        verdict = judgement(judge, window.end)
        breached = verdict.breached()
        result = WindowResult(
            t=window.end,
            recommendation=verdict.recommendation,
            statistical_confidence=verdict.statistical_confidence,
            metrics=verdict.metrics,
            canary_requests=window.canary.requests,
            decided_by=[r.test for r in breached],
            details=[r.detail for r in breached],
        )
        if rollback is not None:
            result = rollback.model_copy(
                update={
                    "t": result.t,
                    "metrics": result.metrics,
                    "canary_requests": result.canary_requests,
                }
            )
        elif result.recommendation == "rollback":
            rollback = result
        results.append(result)
    return results


def window_record(result: WindowResult, file: str | None = None) -> dict[str, Any]:
    """One per-window output line as JSON data; ``file`` first when several were given."""
    data = result.model_dump(mode="json", exclude={"details"})
    data["t"] = _iso(result.t)
    return data if file is None else {"file": file, **data}


def summary_record(
    file: str, windows: Sequence[WindowSample], results: Sequence[WindowResult]
) -> dict[str, Any]:
    """One line per recording: the final recommendation, when it was first reached, and why."""
    final = results[-1]
    first = next(r for r in results if r.recommendation == final.recommendation)
    minutes = (first.t - windows[0].start).total_seconds() / 60
    return {
        "file": file,
        "recommendation": final.recommendation,
        "t": _iso(first.t),
        "minute": round(minutes, 2),
        "statistical_confidence": first.statistical_confidence,
        "windows": len(results),
        "canary_requests": sum(w.canary.requests for w in windows),
        "breached": final.details,
    }


def parse_guardrails(text: str) -> list[Guardrail]:
    """``"error_rate<1% p95<300ms"``: space-separated tokens, or ``ParseError``."""
    guardrails: list[Guardrail] = []
    for token in text.split():
        guardrail = parse_guardrail(token)
        if any(g.name == guardrail.name for g in guardrails):
            raise ParseError(f"{token}: {guardrail.name} is given twice; keep one of them")
        guardrails.append(guardrail)
    return guardrails
