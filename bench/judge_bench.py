"""The canary-judge benchmark (issue 3): every judge on the same seeded synthetic canaries.

    python -m bench.judge_bench [--runs N] [--scenarios a,b] [--judges a,b] [--seed S]
                                [--markdown FILE]

For each scenario (``bench.scenarios``) and run i (0-based), one hour of 10-second windows is
drawn once, from generator seed ``seed * 1_000_003 + i`` (the same seeds in every scenario), and
every judge reads exactly those windows. Each judge gets a fresh instance per
run and consumes the windows in order until it returns "rollback" or "promote", or the hour
ends (undecided).

Judges, in table order: ``release-bot`` (``bench.ours.make_judge``, ours), ``flagger-style``
and ``kayenta-style`` (``bench.reference_judges``). ``flagger``, ``kayenta`` and ``ours`` are
accepted as short names.

The table gives, per scenario and judge: runs, % rolled back, % promoted, % undecided at 60 min;
for healthy scenarios the false-rollback rate and the minutes to promote (median / p90 over
promoted runs); for bad ones the detection rate, the minutes and the canary requests until
rollback (median / p90 over rolled-back runs; requests summed from the start to the deciding
window) and the misses (promoted + undecided). Then the targets for release-bot (PASS/FAIL
lines); the exit status is 1 when one fails.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from bench.plan import planned_bake
from bench.reference_judges import make_flagger_judge, make_kayenta_judge
from bench.scenarios import (
    BenchJudge,
    Decision,
    JudgeFactory,
    Scenario,
    Window,
    all_scenarios,
)

__all__ = [
    "JUDGE_NAMES",
    "RunOutcome",
    "Summary",
    "build_registry",
    "main",
    "markdown_table",
    "run_judge",
    "run_scenario",
    "run_seed",
    "summarise",
    "target_checks",
]

OURS = "release-bot"
FLAGGER = "flagger-style"
KAYENTA = "kayenta-style"
JUDGE_NAMES: tuple[str, ...] = (OURS, FLAGGER, KAYENTA)
ALIASES = {"ours": OURS, "flagger": FLAGGER, "kayenta": KAYENTA}
SEED_STRIDE = 1_000_003
MISSING_OURS = (
    "error: judge release-bot needs bench/ours.py (make_judge), which does not exist yet; "
    "run with --judges flagger-style,kayenta-style"
)


def run_seed(seed: int, run: int) -> int:
    """The generator seed of run ``run`` (0-based) under the bench seed ``seed``."""
    return seed * SEED_STRIDE + run


def build_registry() -> dict[str, JudgeFactory]:
    """The judges that can run, in table order; release-bot only once bench/ours.py exists."""
    registry: dict[str, JudgeFactory] = {}
    try:
        ours = importlib.import_module("bench.ours")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.ours":
            raise
    else:
        registry[OURS] = cast(JudgeFactory, ours.make_judge)
    registry[FLAGGER] = make_flagger_judge
    registry[KAYENTA] = make_kayenta_judge
    return registry


# -- running ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunOutcome:
    decision: Decision | None  # None: undecided at the end of the hour
    minutes: float | None  # when it decided (end of the deciding window), None if undecided
    canary_requests: int  # canary requests from the start to the deciding window (or the hour)


def run_judge(
    judge: BenchJudge, windows: Sequence[Window], canary_cumulative: Sequence[int]
) -> RunOutcome:
    """Feed ``windows`` in order until ``judge`` decides."""
    for i, window in enumerate(windows):
        decision = judge.observe(window)
        if decision is None:
            continue
        if decision not in ("rollback", "promote"):
            raise ValueError(f"a judge answered {decision!r}; expected rollback, promote or None")
        return RunOutcome(decision, window.end_seconds / 60, canary_cumulative[i])
    return RunOutcome(None, None, canary_cumulative[-1] if canary_cumulative else 0)


def run_scenario(
    scenario: Scenario, judges: dict[str, JudgeFactory], runs: int, seed: int
) -> dict[str, list[RunOutcome]]:
    """``runs`` seeded runs of ``scenario``, each judged by every judge on the same windows."""
    outcomes: dict[str, list[RunOutcome]] = {name: [] for name in judges}
    for run in range(runs):
        windows = scenario.windows(run_seed(seed, run))
        cumulative = list(itertools.accumulate(w.canary.requests for w in windows))
        for name, factory in judges.items():
            outcomes[name].append(run_judge(factory(scenario), windows, cumulative))
    return outcomes


# -- summarising --------------------------------------------------------------------------------


def _p50_p90(values: Sequence[float]) -> tuple[float, float] | None:
    if not values:
        return None
    p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50.0, 90.0])
    return float(p50), float(p90)


@dataclass(frozen=True, slots=True)
class Summary:
    scenario: Scenario
    judge: str
    runs: int
    rolled_back: float  # fractions of runs
    promoted: float
    undecided: float
    promote_minutes: tuple[float, float] | None  # (median, p90) over promoted runs
    rollback_minutes: tuple[float, float] | None  # (median, p90) over rolled-back runs
    rollback_requests: tuple[float, float] | None  # canary requests until rollback
    planned_bake: float | None = None  # the planner's bake for this step (None: no verdict)
    promoted_in_bake: float | None = None  # fraction promoted within it (healthy only)

    @property
    def false_rollbacks(self) -> float | None:
        return None if self.scenario.bad else self.rolled_back

    @property
    def detection(self) -> float | None:
        return self.rolled_back if self.scenario.bad else None

    @property
    def misses(self) -> float | None:
        return self.promoted + self.undecided if self.scenario.bad else None


def summarise(scenario: Scenario, judge: str, outcomes: Sequence[RunOutcome]) -> Summary:
    runs = len(outcomes)
    rolled = [o for o in outcomes if o.decision == "rollback"]
    promoted = [o for o in outcomes if o.decision == "promote"]
    bake = planned_bake(scenario)
    in_bake = [
        o for o in promoted if o.minutes is not None and bake is not None and o.minutes <= bake
    ]
    return Summary(
        scenario=scenario,
        judge=judge,
        runs=runs,
        rolled_back=len(rolled) / runs if runs else 0.0,
        promoted=len(promoted) / runs if runs else 0.0,
        undecided=(runs - len(rolled) - len(promoted)) / runs if runs else 0.0,
        promote_minutes=_p50_p90([o.minutes for o in promoted if o.minutes is not None]),
        rollback_minutes=_p50_p90([o.minutes for o in rolled if o.minutes is not None]),
        rollback_requests=_p50_p90([float(o.canary_requests) for o in rolled]),
        planned_bake=bake,
        promoted_in_bake=None if scenario.bad or bake is None or not runs else len(in_bake) / runs,
    )


# -- the table ----------------------------------------------------------------------------------

DASH = "—"
_HEADER = (
    "scenario",
    "what",
    "expected",
    "judge",
    "runs",
    "rolled back",
    "promoted",
    "undecided",
    "false rollbacks",
    "min to promote p50 / p90",
    "planned bake",
    "promoted within it",
    "detection",
    "min to rollback p50 / p90",
    "canary req to rollback p50 / p90",
    "misses",
)
_NUMERIC = frozenset(range(4, len(_HEADER)))


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{100 * x:.1f}%"


def _pair(p: tuple[float, float] | None, fmt: str) -> str:
    return DASH if p is None else f"{p[0]:{fmt}} / {p[1]:{fmt}}"


def _row(s: Summary, first_of_scenario: bool) -> tuple[str, ...]:
    bad = s.scenario.bad
    return (
        s.scenario.name,
        s.scenario.description if first_of_scenario else "",
        "roll back" if bad else "promote",
        s.judge,
        str(s.runs),
        _pct(s.rolled_back),
        _pct(s.promoted),
        _pct(s.undecided),
        _pct(s.false_rollbacks),
        DASH if bad else _pair(s.promote_minutes, ".1f"),
        DASH if bad else "no verdict" if s.planned_bake is None else f"{s.planned_bake:g} min",
        _pct(s.promoted_in_bake),
        _pct(s.detection),
        _pair(s.rollback_minutes, ".1f") if bad else DASH,
        _pair(s.rollback_requests, ",.0f") if bad else DASH,
        _pct(s.misses),
    )


def markdown_table(summaries: Sequence[Summary]) -> str:
    """One GitHub-style table, columns padded to line up; numbers right-aligned."""
    rows = [
        _row(s, i == 0 or summaries[i - 1].scenario.name != s.scenario.name)
        for i, s in enumerate(summaries)
    ]
    widths = [max(len(r[c]) for r in [_HEADER, *rows]) for c in range(len(_HEADER))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if c in _NUMERIC else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if c in _NUMERIC else "-" * w for c, w in enumerate(widths)]
    return "\n".join([line(_HEADER), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])


# -- targets ------------------------------------------------------------------------------------


def target_checks(summaries: Sequence[Summary]) -> list[tuple[str, str]]:
    """(status, text) lines for release-bot's targets: status PASS, FAIL or SKIP."""
    by = {(s.scenario.name, s.judge): s for s in summaries}
    healthy = list(dict.fromkeys(s.scenario.name for s in summaries if not s.scenario.bad))
    lines: list[tuple[str, str]] = []
    ours = {name: by[(name, OURS)] for name in healthy if (name, OURS) in by}

    for name, s in ours.items():
        fr = s.rolled_back
        status = "PASS" if fr <= 0.01 else "FAIL"
        lines.append((status, f"{name}: release-bot false rollbacks {_pct(fr)} ≤ 1.0%"))

    for name, s in ours.items():
        if s.planned_bake is None:
            lines.append(("INFO", f"{name}: too little traffic for a verdict; the plan warns"))
            continue
        share = s.promoted_in_bake or 0.0
        lines.append(
            (
                "PASS" if share >= 0.99 else "FAIL",
                f"{name}: release-bot promoted within the planned {s.planned_bake:g} min bake "
                f"in {_pct(share)} ≥ 99%",
            )
        )
    fast = by.get(("errors_2.5x", OURS))
    if fast is not None:
        median = fast.rollback_minutes[0] if fast.rollback_minutes else None
        ok = median is not None and median <= 5.0
        shown = DASH if median is None else f"{median:.1f} min"
        lines.append(("PASS" if ok else "FAIL", f"errors_2.5x: release-bot median {shown} ≤ 5 min"))
    slow = by.get(("latency_+40%", OURS))
    if slow is not None:
        ok = slow.rolled_back >= 0.90
        lines.append(
            (
                "PASS" if ok else "FAIL",
                f"latency_+40%: release-bot caught {_pct(slow.rolled_back)} ≥ 90%",
            )
        )

    e2x = by.get(("errors_2x", OURS))
    if e2x is None:
        lines.append(("SKIP", "errors_2x: not run"))
    else:
        median = e2x.rollback_minutes[0] if e2x.rollback_minutes else None
        shown = DASH if median is None else f"{median:.1f} min"
        ok = median is not None and median <= 5.0
        lines.append(("PASS" if ok else "FAIL", f"errors_2x: release-bot median {shown} ≤ 5 min"))
        kay = by.get(("errors_2x", KAYENTA))
        if kay is None:
            lines.append(("SKIP", "errors_2x: kayenta-style not run, no half-time comparison"))
        else:
            k_median = kay.rollback_minutes[0] if kay.rollback_minutes else None
            if k_median is None:
                ok, limit = median is not None, "kayenta-style never rolled back"
            else:
                ok, limit = median is not None and median <= k_median / 2, f"{k_median / 2:.1f} min"
            lines.append(
                (
                    "PASS" if ok else "FAIL",
                    f"errors_2x: release-bot median {shown} ≤ half kayenta-style's ({limit})",
                )
            )

    # Against the references, the false-rollback rate over all healthy canaries (the three
    # healthy scenarios pooled); per scenario it is printed for information.
    refs = [j for j in (FLAGGER, KAYENTA) if all((name, j) in by for name in ours)]
    if not ours or not refs:
        lines.append(("SKIP", "false rollbacks against the references: not run"))
        return lines

    def pooled(judge: str) -> float:
        return sum(by[(name, judge)].rolled_back for name in ours) / len(ours)

    shown = " and ".join(f"{j} {_pct(pooled(j))}" for j in refs)
    status = "PASS" if pooled(OURS) <= min(pooled(j) for j in refs) else "FAIL"
    lines.append(
        (
            status,
            f"healthy canaries pooled: release-bot false rollbacks {_pct(pooled(OURS))} ≤ {shown}",
        )
    )
    for name in ours:
        each = ", ".join(f"{j} {_pct(by[(name, j)].rolled_back)}" for j in (OURS, *refs))
        lines.append(("INFO", f"{name}: false rollbacks {each}"))
    return lines


# -- command line -------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.judge_bench",
        description="Canary judges on seeded synthetic scenarios (issue 3).",
    )
    p.add_argument("--runs", type=int, default=1000, help="seeded runs per scenario (1000)")
    p.add_argument("--scenarios", type=_split, default=None, help="comma-separated (all)")
    p.add_argument(
        "--judges",
        type=_split,
        default=None,
        help=f"comma-separated from {', '.join(JUDGE_NAMES)} (all)",
    )
    p.add_argument("--seed", type=int, default=1, help=f"run i uses seed·{SEED_STRIDE:_} + i (1)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table to FILE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    if args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2

    known = {s.name: s for s in all_scenarios()}
    names: list[str] = args.scenarios or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print(
            f"error: unknown scenario {', '.join(unknown)} (known: {', '.join(known)})",
            file=sys.stderr,
        )
        return 2

    wanted = [ALIASES.get(j, j) for j in (args.judges or JUDGE_NAMES)]
    bad_judges = [j for j in wanted if j not in JUDGE_NAMES]
    if bad_judges:
        print(
            f"error: unknown judge {', '.join(bad_judges)} (known: {', '.join(JUDGE_NAMES)})",
            file=sys.stderr,
        )
        return 2
    registry = build_registry()
    if any(j not in registry for j in wanted):
        print(MISSING_OURS, file=sys.stderr)
        return 2
    judges = {j: registry[j] for j in JUDGE_NAMES if j in wanted}

    summaries: list[Summary] = []
    for name in names:
        t0 = time.perf_counter()
        outcomes = run_scenario(known[name], judges, args.runs, args.seed)
        summaries.extend(summarise(known[name], j, outcomes[j]) for j in judges)
        print(
            f"{name}: {args.runs} runs × {len(judges)} judges in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )

    table = markdown_table(summaries)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n", encoding="utf-8")

    failed = False
    print()
    if OURS in judges:
        print("targets (release-bot):")
        for status, text in target_checks(summaries):
            failed |= status == "FAIL"
            print(f"{status} {text}")
    else:
        print("targets: skipped (release-bot not run)")
    print()
    print(
        f"runs per scenario: {args.runs} (seed {args.seed}); "
        f"wall time: {time.perf_counter() - started:.1f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
