"""release-bot's judge behind the benchmark's judge protocol: the engine's code, unchanged.

Each window becomes the engine's ``WindowSample``; the judge decides after every window.
The stage soaks the bake the bot's planner gives the scenario's canary step
(``bench.plan``), as the engine does: it promotes no earlier than that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.plan import soak_minutes
from bench.scenarios import WINDOW_SECONDS, Cohort, Decision, Scenario, Window
from bot.adapters.sim.fleet import BUCKET_LABELS
from bot.domain.judge import CanaryJudge
from bot.domain.observations import CohortSample, WindowSample
from bot.domain.planner import trigger_for
from bot.parsing import parse_guardrail

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def cohort_sample(cohort: Cohort, kpi_name: str) -> CohortSample:
    return CohortSample(
        requests=cohort.requests,
        errors=cohort.errors,
        latency_buckets=dict(zip(BUCKET_LABELS, cohort.buckets, strict=True)),
        kpis={} if cohort.kpi is None else {kpi_name: cohort.kpi},
    )


class ReleaseBotJudge:
    def __init__(self, scenario: Scenario) -> None:
        guardrails = [parse_guardrail(token) for token in scenario.guardrails.split()]
        triggers = [trigger_for(g, "medium") for g in guardrails]
        self.kpi = next((g.kpi for g in guardrails if g.kpi), "kpi")
        self.judge = CanaryJudge.create(guardrails, triggers)
        self.judge.start_stage(START, soak_minutes(scenario))

    def observe(self, window: Window) -> Decision | None:
        end = START + timedelta(seconds=window.end_seconds)
        self.judge.observe(
            WindowSample(
                start=end - timedelta(seconds=WINDOW_SECONDS),
                end=end,
                baseline=cohort_sample(window.baseline, self.kpi),
                canary=cohort_sample(window.canary, self.kpi),
            )
        )
        verdict = self.judge.decide(end)
        return None if verdict == "extend_analysis" else verdict


def make_judge(scenario: Scenario) -> ReleaseBotJudge:
    return ReleaseBotJudge(scenario)
