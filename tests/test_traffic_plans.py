"""Issue 17: plans whose steps can reach a verdict at the service's traffic."""

from __future__ import annotations

import math

from bot.domain.plan import Plan
from bot.domain.plan_policy import (
    ASSESSMENT_FIELDS,
    PlanProposal,
    RiskAssessmentProposal,
    apply_proposal,
)
from bot.domain.planner import BAKE_MINUTES, MAX_BAKE_MINUTES, plan_release
from bot.domain.request import ReleaseRequest
from bot.domain.verdict_time import minutes_to_verdict
from bot.parsing import parse_guardrail
from tests.domain_helpers import INSTANCES, T0, TICK_SECONDS, make_request

RAILS = [parse_guardrail(t) for t in ["error_rate<1%", "p95<400ms", "availability>=99.5%"]]


def _request(rps: float | None, risk: str = "high", **kw: object) -> ReleaseRequest:
    request = make_request(risk=risk, regions=("us-east-1",), **kw)  # type: ignore[arg-type]
    context = request.operational_context.model_copy(update={"traffic_rps": rps})
    return request.model_copy(update={"operational_context": context})


def _plan(request: ReleaseRequest) -> Plan:
    return plan_release(request, T0, INSTANCES, TICK_SECONDS)


def test_less_traffic_needs_longer_and_too_little_never_decides() -> None:
    def slowest(rps: float) -> float:
        return max(t.minutes for t in minutes_to_verdict(RAILS, rps, rps * 99))

    assert slowest(20) < slowest(5) < slowest(1)
    assert math.isinf(max(t.minutes for t in minutes_to_verdict(RAILS, 0, 100)))


def test_at_2000_rps_each_step_says_why_its_bake_is_long_enough() -> None:
    plan = _plan(_request(2000))
    prod = plan.prod_steps()
    assert [s.percentage for s in prod] == [1, 5, 10, 25, 50, 100]
    assert all(s.bake_minutes == BAKE_MINUTES["high"] for s in prod)
    said = [n for n in plan.notes if "reaches a verdict on" in n]
    assert len(said) == len(prod)
    assert said[0].startswith("1 % of 2,000 rps reaches a verdict on availability>=99.5% in ~")
    assert all(n.endswith("the 15 min bake is long enough") for n in said)
    assert "a verdict in ~" in prod[0].description


def test_at_150_rps_the_first_step_is_raised_within_the_risk_policy() -> None:
    plan = _plan(_request(150))
    first = plan.prod_steps()[0]
    assert first.percentage == 2
    assert BAKE_MINUTES["high"] <= first.bake_minutes <= MAX_BAKE_MINUTES["high"]
    assert any(n.startswith("first step raised from 1 % to 2 % (high risk allows up to 2 %)")
               for n in plan.notes)  # fmt: skip
    assert "raised from 1 %" in first.description


def test_a_bake_too_short_is_lengthened_up_to_the_maximum() -> None:
    plan = _plan(_request(150, risk="medium"))
    first = plan.prod_steps()[0]
    assert first.percentage == 5
    assert BAKE_MINUTES["medium"] < first.bake_minutes <= MAX_BAKE_MINUTES["medium"]
    assert any(f"its bake lengthened from 10 to {first.bake_minutes:g} min" in n
               for n in plan.notes)  # fmt: skip


def test_when_no_plan_can_decide_it_says_so_with_the_options() -> None:
    plan = _plan(_request(20))
    warnings = [n for n in plan.notes if n.startswith("warning:")]
    assert warnings
    assert all(w in warnings[0] for w in ("more time", "a larger first step", "load test"))
    assert plan.prod_steps()[0].bake_minutes == MAX_BAKE_MINUTES["high"]
    assert "warning: no verdict" in plan.prod_steps()[0].description


def test_without_traffic_the_plan_is_the_risks() -> None:
    plan = _plan(_request(None))
    assert all(s.bake_minutes == BAKE_MINUTES["high"] for s in plan.prod_steps())
    [said] = [n for n in plan.notes if "traffic" in n]
    assert said.startswith("no traffic figure (none measured, no traffic= on the line)")
    assert "assumed the planned bakes (15, 15, 15, 15, 15, 15 min)" in said


def test_an_agents_plan_gets_the_same_check_and_more_time_never_more_exposure() -> None:
    request = _request(150)
    assessment = RiskAssessmentProposal.model_validate(
        {
            "deployment_risk": "critical",
            "blast_radius": "limited",
            "rollback_complexity": "simple",
            "data_risk": "none",
            "reasons": {f: "because" for f in ASSESSMENT_FIELDS},
        }
    )
    proposal = PlanProposal.model_validate(
        {"assessment": assessment, "rationale": "careful", "guardrails": ["availability>=99.9%"]}
    )
    _, plan = apply_proposal(request, proposal, T0, INSTANCES, TICK_SECONDS)
    first = plan.prod_steps()[0]
    assert first.percentage <= _plan(request).prod_steps()[0].percentage
    assert any("verdict" in n for n in plan.notes)
    assert first.bake_minutes >= _plan(request).prod_steps()[0].bake_minutes
