"""Plan policy: an agent's proposal may make the rule plan more careful, never less."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.plan import Plan
from bot.domain.plan_policy import (
    ASSESSMENT_FIELDS,
    PlanProposal,
    ProposalRejected,
    RiskAssessmentProposal,
    apply_proposal,
    less_careful,
    parse_proposal,
)
from bot.domain.planner import BAKE_MINUTES, STAGES_BY_RISK, derive_triggers
from bot.domain.request import RISKS, STRATEGIES, ReleaseRequest
from tests.domain_helpers import (
    INSTANCES,
    P95,
    T0,
    TICK_SECONDS,
    kpi_rail,
    make_plan,
    make_request,
    tr,
)

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
PEAK = [tr("09:00", "12:00")]


def request_for(
    risk: str = "medium", strategy: str = "canary", flag_pct: float = 100.0, **kw: Any
) -> ReleaseRequest:
    flags = [("new_checkout", flag_pct)] if strategy == "feature_flag" else None
    return make_request(risk=risk, strategy=strategy, flags=flags, **kw)


def assessment(risk: str = "critical", **reasons: str) -> RiskAssessmentProposal:
    return RiskAssessmentProposal.model_validate(
        {
            "deployment_risk": risk,
            "blast_radius": "limited",
            "rollback_complexity": "simple",
            "data_risk": "none",
            "reasons": reasons or {f: "because" for f in ASSESSMENT_FIELDS},
        }
    )


def proposal(**fields: Any) -> PlanProposal:
    fields.setdefault("assessment", assessment())
    fields.setdefault("rationale", "more careful than the rules")
    return PlanProposal.model_validate(fields)


def apply(request: ReleaseRequest, **fields: Any) -> tuple[ReleaseRequest, Plan]:
    return apply_proposal(request, proposal(**fields), T0, INSTANCES, TICK_SECONDS)


def rejected(request: ReleaseRequest, **fields: Any) -> list[str]:
    with pytest.raises(ProposalRejected) as exc:
        apply(request, **fields)
    assert str(exc.value) == "; ".join(exc.value.reasons)
    return exc.value.reasons


def has(reasons: list[str], *words: str) -> bool:
    return any(all(w in r for w in words) for r in reasons)


def check(request: ReleaseRequest, plan: Plan, mine: ReleaseRequest | None = None) -> list[str]:
    """``plan`` (for ``mine``, default the same request) against the rules' plan."""
    return less_careful(request, make_plan(request), mine or request, plan)


def with_step(plan: Plan, pos: int, **update: Any) -> Plan:
    steps = list(plan.steps)
    steps[pos] = steps[pos].model_copy(update=update)
    return plan.model_copy(update={"steps": steps})


def prod_pcts(plan: Plan) -> list[float]:
    return [s.percentage for s in plan.prod_steps() if s.percentage > 0]


# -- the rules' own plan -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("risk", RISKS)
def test_the_rules_plan_is_as_careful_as_itself(risk: str, strategy: str) -> None:
    request = request_for(risk, strategy, regions=REGIONS, peak_hours=PEAK)
    assert check(request, make_plan(request)) == []
    amended, plan = apply(request)  # an empty proposal is the rules' plan
    assert amended == request
    assert plan == make_plan(request)


# -- loosening is rejected -----------------------------------------------------------------------


def test_a_bigger_first_step_is_rejected() -> None:
    reasons = rejected(request_for("medium"), stages=[10, 50, 100])
    assert has(reasons, "stages", "first prod step is 10 %", "start at 5 %")


def test_fewer_steps_are_rejected_where_evidence_is_missing() -> None:
    reasons = rejected(request_for("medium"), stages=[5, 100])
    assert has(reasons, "up to 25 %", "10 min in all", "20 min")
    assert has(reasons, "up to 50 %")


def test_shorter_bakes_are_rejected_and_a_short_bake_proposal_changes_nothing() -> None:
    request = request_for("high")
    plan = make_plan(request)
    first = plan.prod_steps()[0].index
    reasons = check(request, with_step(plan, first, bake_minutes=5))
    assert has(reasons, "bake_minutes", "1 % prod step bakes 5 min", "at least 15 min")
    assert has(reasons, "up to 1 %")
    _, same = apply(request, bake_minutes=1)  # max with the rules: never shortens
    assert [s.bake_minutes for s in same.steps] == [s.bake_minutes for s in plan.steps]
    staging = with_step(plan, 0, bake_minutes=1)
    assert has(check(request, staging), "env_deploy step in staging bakes 1 min", "10 min")


def test_a_looser_error_rate_is_rejected() -> None:
    reasons = rejected(request_for(), guardrails=["error_rate<2%"])
    assert reasons == [
        "guardrails: error_rate<2% is looser than the request's error_rate<1%; keep the "
        "direction and unit, and the threshold or tighter"
    ]


def test_a_non_strict_comparator_at_the_same_threshold_is_looser() -> None:
    assert has(rejected(request_for(), guardrails=["error_rate<=1%"]), "error_rate<=1%")


def test_a_looser_relative_kpi_or_a_flipped_direction_is_rejected() -> None:
    request = request_for(kpis=[kpi_rail("conversion", -2)])
    assert has(rejected(request, guardrails=["kpi:conversion>=-3%"]), "kpi:conversion>=-3%")
    assert has(rejected(request, guardrails=["kpi:conversion>=-2"]), "looser")  # not relative
    assert has(rejected(request, guardrails=["availability<99.9%"]), "availability<99.9%")


def test_a_dropped_guardrail_is_rejected() -> None:
    request = request_for()
    fewer = request_for(latency=[P95])
    reasons = less_careful(request, make_plan(request), fewer, make_plan(fewer))
    assert has(reasons, "guardrails: p99<800ms was dropped")
    assert has(reasons, "triggers: latency_p99", "no trigger")


def test_a_trigger_downgraded_to_alert_is_rejected() -> None:
    request = request_for()
    plan = make_plan(request)
    triggers = [t.model_copy(update={"action": "alert"}) for t in plan.triggers]
    reasons = check(request, plan.model_copy(update={"triggers": triggers}))
    assert has(reasons, "triggers: error_rate must auto_rollback", "weaker")
    assert has(reasons, "triggers: metrics_provider must auto_rollback", "weaker")


def metrics_loss_action(plan: Plan) -> str:
    return next(t.action for t in plan.triggers if t.guardrail == "metrics_provider")


def test_the_metrics_loss_trigger_follows_the_services_policy() -> None:
    request = request_for()
    for policy, action in (("rollback", "auto_rollback"), ("pause", "pause")):
        _, plan = apply_proposal(request, proposal(), T0, INSTANCES, TICK_SECONDS, policy)  # type: ignore[arg-type]
        assert metrics_loss_action(plan) == action


def test_a_plan_that_only_pauses_when_the_service_rolls_back_is_rejected() -> None:
    request = request_for()
    paused = make_plan(request).model_copy(
        update={"triggers": derive_triggers(request, TICK_SECONDS, "pause")}
    )
    assert has(check(request, paused), "triggers: metrics_provider must auto_rollback", "weaker")
    # A service set to pause: a plan that rolls back is more careful, and accepted.
    rule = paused
    assert less_careful(request, rule, request, make_plan(request)) == []


def test_removing_the_high_risk_gate_is_rejected() -> None:
    request = request_for("high")
    plan = make_plan(request)
    ungated = with_step(plan, plan.prod_steps()[0].index, manual_gate=False)
    reasons = check(request, ungated)
    assert has(reasons, "manual_gate: the plan has 0 human approvals; the rules 1")
    assert has(reasons, "before the first prod step to 1 %")
    # A gate moved to a later, bigger step does not replace it.
    later = with_step(ungated, plan.prod_steps()[1].index, manual_gate=True)
    assert has(check(request, later), "before the first prod step")


def test_the_critical_gate_before_100_cannot_move_early() -> None:
    request = request_for("critical")
    plan = make_plan(request)
    prod = plan.prod_steps()
    early = with_step(with_step(plan, prod[-1].index, manual_gate=False), prod[1].index,
                      manual_gate=True)  # fmt: skip
    assert has(check(request, early), "going from 75 % to 100 %")


def test_a_lower_risk_is_rejected() -> None:
    high = request_for("high")
    assert has(rejected(high, risk="low"), "risk: low is below the request's high")
    low = request_for("low")
    reasons = less_careful(high, make_plan(high), low, make_plan(low))
    assert has(reasons, "risk: below the rules' high")
    assert has(reasons, "velocity: fast")


def test_turning_the_peak_hold_off_is_rejected() -> None:
    request = request_for("high", peak_hours=PEAK)
    assert has(rejected(request, hold_in_peak_hours=False), "hold_in_peak_hours", "keep it on")
    # Raising the risk to high brings the hold too: it cannot be refused.
    medium = request_for("medium", peak_hours=PEAK)
    assert has(rejected(medium, risk="high", hold_in_peak_hours=False), "hold_in_peak_hours")


def test_an_earlier_start_other_peaks_strategy_or_environments_are_rejected() -> None:
    request = request_for(maintenance_windows=[tr("02:00", "04:00", ["sat"])])
    plan = make_plan(request)
    assert has(check(request, plan.model_copy(update={"start": T0})), "start:")
    other = request_for("medium", "rolling", regions=("us-east-1",), peak_hours=PEAK)
    reasons = less_careful(request, plan, other, make_plan(other))
    assert has(reasons, "strategy: rolling instead of the request's canary")
    assert has(reasons, "environments:")
    assert has(reasons, "peak hours")


def test_a_verification_step_cannot_be_dropped_or_moved_after_traffic() -> None:
    request = request_for("medium", "shadow")
    plan = make_plan(request)
    no_shadow = plan.model_copy(update={"steps": [s for s in plan.steps if s.kind != "shadow"]})
    assert has(check(request, no_shadow), "steps: the shadow step in prod must stay")
    staging_last = [*plan.steps[1:], plan.steps[0]]  # staging verified after prod traffic
    late = plan.model_copy(update={"steps": staging_last})
    assert has(check(request, late), "env_deploy step in staging must stay")


def test_going_above_the_flag_cap_is_rejected() -> None:
    request = request_for("medium", "feature_flag", flag_pct=30)
    uncapped = request_for("medium", "feature_flag", flag_pct=100)
    assert has(check(request, make_plan(uncapped)), "above the rules' final 30 %")


# -- tightening is accepted ----------------------------------------------------------------------


def test_smaller_and_more_steps_are_accepted_and_noted() -> None:
    _, plan = apply(request_for("medium"), stages=[1, 2, 5, 10, 25, 50, 100])
    assert prod_pcts(plan) == [1, 2, 5, 10, 25, 50, 100]
    assert "agent: 1,2,5,10,25,50,100 % instead of 5,25,50,100 %" in plan.notes
    assert not any(n.startswith("rollout percentages") for n in plan.notes)
    _, plan = apply(request_for("low"), stages=[2, 10, 20, 50, 75, 100])
    assert prod_pcts(plan) == [2, 10, 20, 50, 75, 100]


def test_longer_bakes_are_accepted() -> None:
    _, plan = apply(request_for("medium"), bake_minutes=45)
    assert all(s.bake_minutes == 45 for s in plan.prod_steps())
    assert plan.steps[0].bake_minutes == make_plan(request_for("medium")).steps[0].bake_minutes
    assert "agent: every prod step bakes at least 45 min" in plan.notes


def test_stricter_thresholds_and_an_added_kpi_are_accepted() -> None:
    rails = ["error_rate<0.5%", "p95<250ms", "availability>=99.95%", "kpi:checkout_conversion>=-1%"]
    amended, plan = apply(request_for(kpis=[kpi_rail("conversion", -2)]),
                          guardrails=[*rails, "kpi:conversion>=-1%"])  # fmt: skip
    described = [g.describe() for g in amended.guardrails.all()]
    assert described == [
        "error_rate<0.5%", "p95<250ms", "p99<800ms", "availability>=99.95%",
        "kpi:conversion>=-1%", "kpi:checkout_conversion>=-1%",
    ]  # fmt: skip
    triggers = {t.guardrail: t for t in plan.triggers}
    assert triggers["kpi:checkout_conversion"].action == "auto_rollback"
    assert triggers["error_rate"].threshold.startswith("error_rate<0.5% or errors")
    assert "agent: error_rate<0.5% instead of error_rate<1%" in plan.notes
    assert "agent: added kpi:checkout_conversion>=-1%" in plan.notes


def test_a_raised_risk_brings_the_rules_for_that_risk() -> None:
    amended, plan = apply(request_for("medium", peak_hours=PEAK), risk="high")
    assert amended.release_package.risk == plan.risk == "high"
    assert prod_pcts(plan) == STAGES_BY_RISK["high"]
    # at least the risk's bake; longer where 1,200 rps needs longer for a verdict
    assert all(s.bake_minutes >= BAKE_MINUTES["high"] for s in plan.prod_steps())
    assert plan.prod_steps()[0].manual_gate
    assert plan.hold_in_peak_hours
    assert "agent: risk high instead of medium" in plan.notes


def test_a_manual_gate_and_a_peak_hold_are_accepted() -> None:
    _, plan = apply(request_for("medium", peak_hours=PEAK), manual_gate_before_prod=True,
                    hold_in_peak_hours=True)  # fmt: skip
    assert plan.prod_steps()[0].manual_gate
    assert plan.hold_in_peak_hours
    assert "agent: a human approves before the first prod step" in plan.notes
    assert "agent: no prod step advances during peak hours" in plan.notes


def test_an_extra_quality_check_is_accepted_and_noted() -> None:
    _, plan = apply(request_for("medium"), extra_checks=["contract_tests", "contract_tests"])
    assert plan.extra_checks == ["contract_tests"]
    assert "agent: consumer contract tests must pass before anything deploys" in plan.notes
    with pytest.raises(ProposalRejected, match=r"extra_checks\.0"):
        parse_proposal({"extra_checks": ["vibe_check"], "rationale": "x"})


def test_a_check_the_rules_require_cannot_be_dropped() -> None:
    request = request_for("medium")
    rules = make_plan(request).model_copy(update={"extra_checks": ["contract_tests"]})
    dropped = rules.model_copy(update={"extra_checks": []})
    assert has(less_careful(request, rules, request, dropped), "contract tests", "keep")
    assert less_careful(request, rules, request, rules) == []


def test_explicit_request_stages_are_the_baseline() -> None:
    request = request_for("medium", stages=[2, 20, 60, 100])
    assert has(rejected(request, stages=[5, 25, 50, 100]), "start at 2 %")
    _, plan = apply(request, stages=[1, 2, 10, 20, 40, 60, 100])
    assert "agent: 1,2,10,20,40,60,100 % instead of 2,20,60,100 %" in plan.notes


# -- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"stages": [5, 25, 50]}, "end at 100"),
        ({"stages": [25, 5, 100]}, "must increase"),
        ({"stages": [0, 50, 100]}, "above 0"),
        ({"stages": [5, 150]}, "at most 100"),
        ({"stages": []}, "give 1 to 20"),
        ({"stages": [*range(1, 21), 100]}, "give 1 to 20"),
        ({"bake_minutes": 0}, "bake_minutes: 0 is not above 0"),
        ({"bake_minutes": 1441}, "bake_minutes: 1441"),
        ({"bake_minutes": float("nan")}, "bake_minutes: nan"),
        ({"guardrails": ["error_rate<<1%"]}, "guardrails: error_rate<<1%: is not a guardrail"),
        ({"guardrails": ["cpu<80%"]}, "cpu is not a guardrail metric"),
        ({"guardrails": ["p95<250ms", "p95<200ms"]}, "latency_p95 is given twice"),
        ({"assessment": assessment("low")}, "assessment.deployment_risk: low is below"),
        ({"assessment": assessment(why="x")}, "assessment.reasons: one short reason for each"),
    ],
)
def test_bad_inputs_are_rejected_with_a_reason(fields: dict[str, Any], words: str) -> None:
    assert has(rejected(request_for("medium"), **fields), words)


def test_stages_for_blue_green_are_rejected() -> None:
    assert has(rejected(request_for("medium", "blue_green"), stages=[50, 100]), "blue_green")


def test_every_reason_is_reported_at_once() -> None:
    reasons = rejected(request_for("high", peak_hours=PEAK), stages=[5, 100], risk="low",
                       guardrails=["error_rate<5%", "nope"], hold_in_peak_hours=False)  # fmt: skip
    for words in ("risk: low", "stages", "error_rate<5%", "nope", "hold_in_peak_hours"):
        assert has(reasons, words), words


def test_a_malformed_tool_input_is_rejected() -> None:
    with pytest.raises(ProposalRejected) as exc:
        parse_proposal({"stages": "lots", "rationale": "x" * 801, "surprise": 1})
    assert has(exc.value.reasons, "assessment: Field required")
    assert has(exc.value.reasons, "rationale:")
    assert has(exc.value.reasons, "surprise:")
    with pytest.raises(ProposalRejected):
        parse_proposal(None)
    ok = proposal().model_dump()
    assert parse_proposal(ok) == proposal()


# -- properties ----------------------------------------------------------------------------------

requests = st.builds(
    request_for,
    risk=st.sampled_from(RISKS),
    strategy=st.sampled_from(STRATEGIES),
    regions=st.sampled_from([("us-east-1",), REGIONS]),
    peak_hours=st.sampled_from([None, PEAK]),
    kpis=st.sampled_from([None, [kpi_rail("conversion", -2)]]),
    flag_pct=st.sampled_from([100.0, 30.0]),
)
stage_lists = st.lists(st.integers(1, 99), unique=True, max_size=9).map(
    lambda xs: [float(x) for x in sorted(xs)] + [100.0]
)
RAILS = ["error_rate<0.5%", "error_rate<2%", "p95<250ms", "p95<400ms", "p99<700ms",
         "p50<80ms", "availability>=99.9%", "availability>=99%", "success_rate>=99%",
         "kpi:conversion>=-1%", "kpi:conversion>=-3%", "kpi:aov>=-1%", "bogus"]  # fmt: skip
proposals = st.builds(
    proposal,
    risk=st.sampled_from([None, *RISKS]),
    stages=st.one_of(st.none(), stage_lists),
    bake_minutes=st.one_of(st.none(), st.floats(1, 120)),
    guardrails=st.lists(st.sampled_from(RAILS), max_size=3, unique=True),
    hold_in_peak_hours=st.sampled_from([None, True, False]),
    manual_gate_before_prod=st.booleans(),
    assessment=st.sampled_from(["critical", "critical", *RISKS]).map(assessment),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(request=requests, prop=proposals)
def test_an_accepted_proposal_is_never_less_careful(
    request: ReleaseRequest, prop: PlanProposal
) -> None:
    try:
        amended, plan = apply_proposal(request, prop, T0, INSTANCES, TICK_SECONDS)
    except ProposalRejected as exc:
        assert exc.reasons
        return
    assert less_careful(request, make_plan(request), amended, plan) == []
    assert [s.index for s in plan.steps] == list(range(len(plan.steps)))


@SETTINGS
@given(
    request=requests.filter(lambda r: r.deployment_config.strategy != "blue_green"),
    extra=st.sets(st.integers(1, 99), max_size=10),
)
def test_adding_intermediate_stages_is_always_accepted(
    request: ReleaseRequest, extra: set[int]
) -> None:
    base = STAGES_BY_RISK[request.release_package.risk]
    stages = sorted({*base, *map(float, extra)})
    _, plan = apply(request, stages=stages)
    cap = request.deployment_config.flags[0].percentage if request.deployment_config.flags else 100
    assert prod_pcts(plan) == [s for s in stages if s < cap] + [cap]


junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.lists(st.floats(), max_size=25), st.lists(st.text(max_size=12), max_size=4),
    st.dictionaries(st.text(max_size=10), st.text(max_size=5), max_size=5),
)  # fmt: skip
raw_assessment = st.fixed_dictionaries(
    {"deployment_risk": st.sampled_from(RISKS), "blast_radius": st.just("global"),
     "rollback_complexity": st.just("complex"), "data_risk": st.just("high"),
     "reasons": st.one_of(st.just({f: "x" for f in ASSESSMENT_FIELDS}),
                          st.dictionaries(st.text(max_size=20), st.text(max_size=5)))},
)  # fmt: skip
raw_proposals = st.fixed_dictionaries(
    {"assessment": st.one_of(raw_assessment, junk), "rationale": st.text(max_size=900)},
    optional={
        "risk": st.one_of(st.sampled_from(RISKS), junk),
        "stages": st.one_of(st.lists(st.floats(), max_size=25), junk),
        "bake_minutes": st.one_of(st.floats(), junk),
        "guardrails": st.lists(st.one_of(st.sampled_from(RAILS), st.text(max_size=30)), max_size=4),
        "hold_in_peak_hours": junk,
        "manual_gate_before_prod": junk,
        "extra": junk,
    },
)


@SETTINGS
@given(request=requests, data=st.one_of(raw_proposals, junk))
def test_bad_inputs_only_ever_raise_proposal_rejected(request: ReleaseRequest, data: Any) -> None:
    try:
        amended, plan = apply_proposal(request, parse_proposal(data), T0, INSTANCES, TICK_SECONDS)
    except ProposalRejected as exc:
        assert exc.reasons and all(isinstance(r, str) and r for r in exc.reasons)
        return
    assert less_careful(request, make_plan(request), amended, plan) == []


def test_start_in_a_window_is_kept() -> None:
    request = request_for(maintenance_windows=[tr("02:00", "04:00", ["sat"])])
    _, plan = apply(request, stages=[1, 5, 25, 50, 100])
    assert plan.start == make_plan(request).start > T0 + timedelta(days=1)
