"""LLM proposes, policy disposes: the checks an agent's release plan must pass.

The agent may only make the rule planner's plan *more* careful (more or smaller steps, longer
bakes, stricter or extra guardrails, extra human gates, extra quality checks, a peak-hours
hold, a higher risk). The proposal amends the request, the rules plan it, and
``less_careful`` compares the result with the rules' plan of the original request without
trusting how it was built. Every problem is reported at once, worded so the model can fix its
next proposal.
"""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Literal

from pydantic import Field, ValidationError

from bot.domain.base import Model
from bot.domain.config import MetricsLossPolicy
from bot.domain.guardrails import ParseError, parse_guardrail
from bot.domain.plan import EXTRA_CHECK_LABELS, ExtraCheck, Plan, Step
from bot.domain.planner import STAGES_BY_RISK, plan_release
from bot.domain.request import RISKS, Guardrail, Guardrails, ReleaseRequest, Risk
from bot.domain.verdict_time import Measurement

RISK_ORDER: dict[str, int] = {r: i for i, r in enumerate(RISKS)}
ACTION_STRENGTH: dict[str, int] = {"alert": 0, "pause": 1, "auto_rollback": 2}
SPEED: dict[str, int] = {"slow": 0, "normal": 1, "fast": 2}
MAX_STAGES = 20
MAX_BAKE_MINUTES = 24 * 60.0
ASSESSMENT_FIELDS = ("deployment_risk", "blast_radius", "rollback_complexity", "data_risk")
_EPS = 1e-9  # bake totals are float sums: equal plans must not fail on rounding


class RiskAssessmentProposal(Model):
    deployment_risk: Risk
    blast_radius: Literal["minimal", "limited", "significant", "global"]
    rollback_complexity: Literal["simple", "moderate", "complex"]
    data_risk: Literal["none", "low", "medium", "high"]
    reasons: dict[str, str]  # one short reason per field above, keyed by its name


class PlanProposal(Model):
    """What the agent's propose_plan tool carries. Every field but the assessment and the
    rationale is optional: omitted means 'as the rules'."""

    risk: Risk | None = None  # may raise the request's risk, never lower it
    stages: list[float] | None = None  # prod rollout percentages, increasing, ending at 100
    bake_minutes: float | None = None  # every prod step bakes at least this long
    guardrails: list[str] = []  # stricter versions of the request's, or new ones
    hold_in_peak_hours: bool | None = None
    manual_gate_before_prod: bool = False  # a human approves before the first prod step
    extra_checks: list[ExtraCheck] = []  # quality checks required beyond the brief's gates
    assessment: RiskAssessmentProposal
    rationale: str = Field(max_length=800)


class ProposalRejected(Exception):
    """The proposal is malformed or less careful than the rules; ``reasons`` says how, each
    naming the field and what the rules require."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def parse_proposal(data: object) -> PlanProposal:
    """The tool call's input as a proposal: a malformed one is rejected, never a traceback."""
    try:
        return PlanProposal.model_validate(data)
    except ValidationError as exc:
        raise ProposalRejected(
            [f"{'.'.join(map(str, e['loc'])) or 'proposal'}: {e['msg']}" for e in exc.errors()]
        ) from None


def apply_proposal(
    request: ReleaseRequest,
    proposal: PlanProposal,
    now: datetime,
    instances: int,
    tick_seconds: float,
    on_metrics_loss: MetricsLossPolicy = "rollback",
    measured: Measurement | None = None,
    bake_minutes: float | None = None,
    max_bake_minutes: float | None = None,
) -> tuple[ReleaseRequest, Plan]:
    """The request as the proposal amends it, planned by the rules, then lengthened, gated and
    held as proposed; raises ``ProposalRejected`` with every reason it is not acceptable.
    ``on_metrics_loss``: the service's, which both plans' metrics-provider trigger follows;
    ``measured``: the service's traffic, which both plans are fitted to; ``bake_minutes``,
    ``max_bake_minutes``: the service's own (its config's), which both plans start from.

    Invalid parts are reported and left out, so the other reasons are real loosenings rather
    than echoes of a typo.
    """
    pkg, cfg = request.release_package, request.deployment_config
    reasons = _input_problems(request, proposal)
    notes: list[str] = []
    risk = max(pkg.risk, proposal.risk or pkg.risk, key=RISK_ORDER.__getitem__)
    if risk != pkg.risk:
        notes.append(f"agent: risk {risk} instead of {pkg.risk}")
    agent_stages = None if _about(reasons, "stages") else proposal.stages
    if agent_stages:
        was = cfg.stages or STAGES_BY_RISK[pkg.risk]
        notes.append(f"agent: {_pcts(agent_stages)} instead of {_pcts(was)}")
    bake = None if _about(reasons, "bake_minutes") else proposal.bake_minutes
    if bake is not None:
        notes.append(f"agent: every prod step bakes at least {bake:g} min")
    rails = _merged_guardrails(request.guardrails, proposal.guardrails, reasons, notes)
    if RISK_ORDER[proposal.assessment.deployment_risk] < RISK_ORDER[risk]:
        reasons.append(f"assessment.deployment_risk: {proposal.assessment.deployment_risk} is "
                       f"below the plan's risk {risk}")  # fmt: skip
    amended = request.model_copy(
        update={
            "release_package": pkg.model_copy(update={"risk": risk}),
            "deployment_config": cfg.model_copy(update={"stages": agent_stages or cfg.stages}),
            "guardrails": rails,
        }
    )
    # The agent's stricter guardrails may need more evidence: more time, never more exposure.
    ruled = plan_release(
        amended, now, instances, tick_seconds, bake_minutes, on_metrics_loss, measured, False,
        max_bake_minutes,
    )  # fmt: skip
    first = next((s for s in ruled.steps if s.env == "prod"), None)
    gate = first.index if first and proposal.manual_gate_before_prod else None
    if first and gate is not None and not first.manual_gate:
        notes.append("agent: a human approves before the first prod step")
    hold = ruled.hold_in_peak_hours
    if proposal.hold_in_peak_hours is not None:
        hold = proposal.hold_in_peak_hours
        if hold and not ruled.hold_in_peak_hours:
            notes.append("agent: no prod step advances during peak hours")
    extra = list(dict.fromkeys([*ruled.extra_checks, *proposal.extra_checks]))
    notes += [f"agent: {EXTRA_CHECK_LABELS[c]} must pass before anything deploys"
              for c in extra if c not in ruled.extra_checks]  # fmt: skip
    kept = [n for n in ruled.notes if not (agent_stages and n.startswith("rollout percentages"))]
    steps = [_amended(s, bake, s.index == gate) for s in ruled.steps]
    plan = ruled.model_copy(
        update={
            "steps": steps,
            "hold_in_peak_hours": hold,
            "notes": kept + notes,
            "extra_checks": extra,
        }
    )
    rule_plan = plan_release(
        request, now, instances, tick_seconds, bake_minutes, on_metrics_loss, measured,
        max_bake_minutes=max_bake_minutes,
    )  # fmt: skip
    reasons += less_careful(request, rule_plan, amended, plan)
    # Also against the rules for the amended request: a raised risk brings its duties (a hold).
    reasons += [r for r in less_careful(amended, ruled, amended, plan) if r not in reasons]
    if reasons:
        raise ProposalRejected(reasons)
    return amended, plan


def less_careful(
    rule_request: ReleaseRequest, rule_plan: Plan, request: ReleaseRequest, plan: Plan
) -> list[str]:
    """Every way ``plan`` (for ``request``) is less careful than ``rule_plan`` (for
    ``rule_request``); [] when it is at least as careful. It looks only at the two plans and
    requests, so it holds whatever built them."""
    return [
        *_shape(rule_plan, request, plan),
        *_exposure(rule_plan, plan),
        *_gates(rule_plan, plan),
        *_checks(rule_plan, plan),
        *_guardrails(rule_request, request),
        *_triggers(rule_plan, plan),
        *_timing(rule_request, rule_plan, request, plan),
    ]


# -- proposal inputs -----------------------------------------------------------------------------


def _input_problems(request: ReleaseRequest, proposal: PlanProposal) -> list[str]:
    """What is wrong with the proposal's own values, before any comparison of plans."""
    reasons: list[str] = []
    was, risk = request.release_package.risk, proposal.risk
    if risk is not None and RISK_ORDER[risk] < RISK_ORDER[was]:
        reasons.append(f"risk: {risk} is below the request's {was}; risk may only be raised")
    stages, eg = proposal.stages, "e.g. 1,5,10,25,50,100"
    if stages is None:
        pass
    elif request.deployment_config.strategy == "blue_green":
        reasons.append("stages: blue_green switches all traffic at once; leave stages out")
    elif not stages or len(stages) > MAX_STAGES:
        reasons.append(f"stages: give 1 to {MAX_STAGES} percentages ending at 100, {eg}")
    elif any(not 0 < s <= 100 for s in stages):
        reasons.append(f"stages: every percentage is above 0 and at most 100, {eg}")
    elif any(b <= a for a, b in pairwise(stages)) or stages[-1] != 100:
        reasons.append(f"stages: percentages must increase and end at 100, {eg}")
    bake = proposal.bake_minutes
    if bake is not None and not 0 < bake <= MAX_BAKE_MINUTES:
        reasons.append(f"bake_minutes: {bake:g} is not above 0 and at most 1440 (24 h)")
    given = proposal.assessment.reasons
    if set(given) != set(ASSESSMENT_FIELDS) or not all(v.strip() for v in given.values()):
        reasons.append(f"assessment.reasons: one short reason for each of "
                       f"{', '.join(ASSESSMENT_FIELDS)} and nothing else "
                       f"(got {', '.join(sorted(given)) or 'none'})")  # fmt: skip
    return reasons


def _merged_guardrails(
    current: Guardrails, expressions: list[str], reasons: list[str], notes: list[str]
) -> Guardrails:
    """The request's guardrails, those the proposal names replaced in place and new ones added
    in their slot (order matters: the first latency guardrail also answers for slow requests)."""
    given: dict[str, Guardrail] = {}
    for text in expressions:
        try:
            rail = parse_guardrail(text)
        except (ParseError, ValueError) as exc:
            reasons.append(f"guardrails: {exc}")
            continue
        if rail.name in given:
            reasons.append(f"guardrails: {rail.name} is given twice; give one threshold each")
        given[rail.name] = rail
    known = {g.name for g in current.all()}
    added = [g for g in given.values() if g.name not in known]
    notes += [f"agent: {given[g.name].describe()} instead of {g.describe()}"
              for g in current.all() if given.get(g.name, g) != g]  # fmt: skip
    notes += [f"agent: added {g.describe()}" for g in added]

    def kept(rails: list[Guardrail]) -> list[Guardrail]:
        return [given.get(g.name, g) for g in rails]

    return Guardrails(
        error_rate=given.get("error_rate", current.error_rate),
        latency=kept(current.latency) + [g for g in added if g.metric.startswith("latency")],
        availability=given.get("availability", current.availability),
        kpis=kept(current.kpis) + [g for g in added if g.metric == "kpi"],
        others=kept(current.others) + [g for g in added if g.metric == "success_rate"],
    )


def _amended(step: Step, bake: float | None, gate: bool) -> Step:
    longer = step.env == "prod" and bake is not None and bake > step.bake_minutes
    return step.model_copy(
        update={
            "bake_minutes": bake if longer else step.bake_minutes,
            "manual_gate": step.manual_gate or gate,
        }
    )


def _about(reasons: list[str], field: str) -> bool:
    return any(r.startswith(f"{field}:") for r in reasons)


def _pcts(values: list[float]) -> str:
    return ",".join(f"{v:g}" for v in values) + " %"


# -- the checks ----------------------------------------------------------------------------------


def _shape(rule: Plan, request: ReleaseRequest, plan: Plan) -> list[str]:
    reasons: list[str] = []
    if plan.strategy != rule.strategy:
        reasons.append(f"strategy: {plan.strategy} instead of the request's {rule.strategy}")
    if [(e.name, e.region) for e in plan.environments] != [
        (e.name, e.region) for e in rule.environments
    ]:
        reasons.append("environments: keep the request's environments and regions, in order")
    if min(RISK_ORDER[plan.risk], RISK_ORDER[request.release_package.risk]) < RISK_ORDER[rule.risk]:
        reasons.append(f"risk: below the rules' {rule.risk}; risk may be raised, never lowered")
    if SPEED[plan.velocity] > SPEED[rule.velocity]:
        reasons.append(f"velocity: {plan.velocity} is faster than the rules' {rule.velocity}")
    return reasons


def _baked_up_to(steps: list[Step], pct: float) -> float:
    """Minutes baked at prod steps at or below ``pct`` before the plan first goes above it."""
    total = 0.0
    for step in steps:
        if step.percentage > pct:
            break
        total += step.bake_minutes
    return total


def _exposure(rule: Plan, plan: Plan) -> list[str]:
    """Prod exposure dominance: at every share of traffic the rules reach, the plan has
    gathered at least as much evidence (bake minutes) before going further."""
    reasons: list[str] = []
    theirs, mine = rule.prod_steps(), plan.prod_steps()
    for pct in sorted({s.percentage for s in theirs if s.percentage > 0}):
        need, have = _baked_up_to(theirs, pct), _baked_up_to(mine, pct)
        if have + _EPS < need:
            reasons.append(f"stages/bake_minutes: up to {pct:g} % the plan bakes {have:g} min in "
                           f"all, the rules {need:g} min; add stages at or below {pct:g} % or "
                           "bake longer")  # fmt: skip
    firsts = [next((s.percentage for s in p if s.percentage > 0), 0.0) for p in (theirs, mine)]
    if 0 < firsts[0] < firsts[1]:
        reasons.append(f"stages: the first prod step is {firsts[1]:g} %; the rules start at "
                       f"{firsts[0]:g} %, so start there or lower")  # fmt: skip
    top = max((s.percentage for s in theirs), default=0.0)
    if any(s.percentage > top for s in mine):
        reasons.append(f"stages: the plan goes above the rules' final {top:g} %")
    shortest = min((s.bake_minutes for s in theirs), default=0.0)
    reasons += [f"bake_minutes: the {s.percentage:g} % prod step bakes {s.bake_minutes:g} min; "
                f"every prod step bakes at least {shortest:g} min"
                for s in mine if s.bake_minutes + _EPS < shortest]  # fmt: skip
    # Verification steps (pre-prod environments; shadow, green and dark steps at 0 %) stay,
    # before any user traffic, and bake at least as long.
    steps = plan.steps
    exposed = next(
        (i for i, s in enumerate(steps) if s.env == "prod" and s.percentage > 0), len(steps)
    )
    for step in rule.steps:
        if step.kind == "env_deploy" or (step.env == "prod" and step.percentage == 0):
            at = [i for i, s in enumerate(steps) if (s.env, s.kind) == (step.env, step.kind)]
            what = f"the {step.kind} step in {step.env}"
            if not at or at[0] > exposed:
                reasons.append(f"steps: {what} must stay, before any prod traffic")
            elif steps[at[0]].bake_minutes + _EPS < step.bake_minutes:
                reasons.append(f"bake_minutes: {what} bakes {steps[at[0]].bake_minutes:g} min; "
                               f"the rules {step.bake_minutes:g} min")  # fmt: skip
    return reasons


def _checks(rule: Plan, plan: Plan) -> list[str]:
    """Every quality check the rules require beyond the brief's gates is still required."""
    return [f"extra_checks: {EXTRA_CHECK_LABELS[c]} are required by the rules; keep {c}"
            for c in rule.extra_checks if c not in plan.extra_checks]  # fmt: skip


def _gates(rule: Plan, plan: Plan) -> list[str]:
    """Each human gate of the rules is matched, in order, by one of the plan's that comes no
    later in exposure (before going above the gated share) and no earlier in evidence (once
    the plan has reached the share the rules had reached before their gate)."""
    reasons: list[str] = []
    count_rule, count = (sum(s.manual_gate for s in p.steps) for p in (rule, plan))
    if count < count_rule:
        reasons.append(f"manual_gate: the plan has {count} human approvals; the rules {count_rule}")
    theirs, mine = rule.prod_steps(), plan.prod_steps()
    used = -1
    for k, step in enumerate(theirs):
        if not step.manual_gate:
            continue
        floor, pct = max((s.percentage for s in theirs[:k]), default=0.0), step.percentage
        match = next(
            (
                j
                for j, s in enumerate(mine)
                if j > used
                and s.manual_gate
                and all(x.percentage <= pct for x in mine[: j + 1])
                and max((x.percentage for x in mine[:j]), default=0.0) >= floor
            ),
            None,
        )
        if match is None:
            when = "the first prod step" if k == 0 else f"going from {floor:g} %"
            reasons.append(f"manual_gate: the rules have a human approve before {when} to "
                           f"{pct:g} %; the plan has no such approval")  # fmt: skip
        used = used if match is None else match
    return reasons


def _at_least_as_strict(new: Guardrail, old: Guardrail) -> bool:
    if (new.upper_bound, new.unit, new.relative) != (old.upper_bound, old.unit, old.relative):
        return False
    if new.value != old.value:
        return new.value < old.value if old.upper_bound else new.value > old.value
    return not (new.comparator in ("<=", ">=") and old.comparator in ("<", ">"))


def _guardrails(rule_request: ReleaseRequest, request: ReleaseRequest) -> list[str]:
    """Every guardrail of the rules is kept, at least as strict (same direction and unit; for
    a relative KPI ``>=-1%`` is stricter than ``>=-2%``)."""
    reasons: list[str] = []
    for old in rule_request.guardrails.all():
        same = [g for g in request.guardrails.all() if g.name == old.name]
        if not same:
            reasons.append(f"guardrails: {old.describe()} was dropped; keep it or tighten it")
        elif not any(_at_least_as_strict(g, old) for g in same):
            reasons.append(f"guardrails: {same[0].describe()} is looser than the request's "
                           f"{old.describe()}; keep the direction and unit, and the threshold "
                           "or tighter")  # fmt: skip
    return reasons


def _triggers(rule: Plan, plan: Plan) -> list[str]:
    strength: dict[str, int] = {}
    for t in plan.triggers:
        strength[t.guardrail] = max(strength.get(t.guardrail, -1), ACTION_STRENGTH[t.action])
    return [
        f"triggers: {t.guardrail} must {t.action} as in the rules; the plan "
        + ("has no trigger for it" if t.guardrail not in strength else "only acts weaker")
        for t in rule.triggers
        if strength.get(t.guardrail, -1) < ACTION_STRENGTH[t.action]
    ]


def _timing(
    rule_request: ReleaseRequest, rule: Plan, request: ReleaseRequest, plan: Plan
) -> list[str]:
    reasons: list[str] = []
    if rule.hold_in_peak_hours and not plan.hold_in_peak_hours:
        reasons.append(f"hold_in_peak_hours: the rules hold prod steps in peak hours at "
                       f"{rule.risk} risk; keep it on")  # fmt: skip
    if request.operational_context.peak_hours != rule_request.operational_context.peak_hours:
        reasons.append("peak hours: keep the request's peak hours")
    if plan.start < rule.start:
        reasons.append(f"start: {plan.start:%a %H:%M} is before the rules' {rule.start:%a %H:%M}")
    return reasons
