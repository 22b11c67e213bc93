"""How long the judge takes: a 60-minute run of 10-second windows, and one tick over 1,000
active releases.

The tick figure is the judge's share of a reconcile tick for each release: its stored state
read back from JSON, the new window added, the full judgement (every test, the contract's
``canary_analysis.metrics``) built, and the state written back to JSON, as the store does.
Windows come from the benchmark's healthy scenario. Run: ``make bench-tick``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

from bench.ours import START, cohort_sample
from bench.scenarios import WINDOW_SECONDS, Window, scenario_named
from bot.domain.judge import CanaryJudge
from bot.domain.judgement import judgement
from bot.domain.observations import WindowSample
from bot.domain.planner import trigger_for
from bot.parsing import parse_guardrail

GUARDRAILS = "error_rate<1% p95<300ms p99<800ms availability>=99.5% kpi:conversion>=-5%"


def _sample(window: Window) -> WindowSample:
    end = START + timedelta(seconds=window.end_seconds)
    return WindowSample(
        start=end - timedelta(seconds=WINDOW_SECONDS),
        end=end,
        baseline=cohort_sample(window.baseline, "conversion"),
        canary=cohort_sample(window.canary, "conversion"),
    )


def _new_judge() -> CanaryJudge:
    guardrails = [parse_guardrail(token) for token in GUARDRAILS.split()]
    judge = CanaryJudge.create(guardrails, [trigger_for(g, "medium") for g in guardrails], stages=5)
    judge.start_stage(START, 10.0)
    return judge


def run_judged(samples: list[WindowSample]) -> tuple[float, float]:
    """Seconds to judge a whole run: (decisions only, full judgement every window)."""
    judge = _new_judge()
    began = time.perf_counter()
    for sample in samples:
        judge.observe(sample)
        judge.decide(sample.end)
    decide_only = time.perf_counter() - began
    judge = _new_judge()
    began = time.perf_counter()
    for sample in samples:
        judge.observe(sample)
        judgement(judge, sample.end)
    return decide_only, time.perf_counter() - began


def tick(states: list[str], sample: WindowSample) -> tuple[float, list[str]]:
    """One tick over every release's stored judge state; returns (seconds, new states)."""
    began = time.perf_counter()
    out = []
    for state in states:
        judge = CanaryJudge.model_validate_json(state)
        judge.observe(sample)
        judgement(judge, sample.end)
        out.append(judge.model_dump_json())
    return time.perf_counter() - began, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    samples = [_sample(w) for w in scenario_named("healthy").windows(1)]

    runs = [run_judged(samples) for _ in range(args.repeat)]
    decide = statistics.median(r[0] for r in runs)
    full = statistics.median(r[1] for r in runs)

    warm = _new_judge()
    for sample in samples[:60]:  # ten minutes into a stage: a typical state
        warm.observe(sample)
    states = [warm.model_dump_json()] * args.releases
    ticks = []
    for sample in samples[60 : 60 + args.repeat]:
        seconds, states = tick(states, sample)
        ticks.append(seconds)
    per_tick = statistics.median(ticks)

    print("| what | measured |")
    print("|---|--:|")
    print(f"| 60-minute run, {len(samples)} windows, decisions only | {decide * 1000:.1f} ms |")
    print(f"| 60-minute run, full judgement every window | {full * 1000:.1f} ms |")
    print(
        f"| one tick over {args.releases} active releases (state from JSON, judge, "
        f"back to JSON) | {per_tick * 1000:.0f} ms |"
    )
    print(f"| judge state stored per release | {len(states[0]) / 1024:.1f} KiB |")


if __name__ == "__main__":
    main()
