"""Where the service asks the agent, and what it does when the agent cannot answer.

Each flow runs one task through the context's LLM and returns its validated value; any
fallback (no key, an API error, a refusal, a proposal rejected too often) leaves the rules'
result in place and is audited as "<step>: rules, because …". Facts never come from here,
and nothing here loads or saves: the service does that around each flow. The LLM is called
before a release exists (reading a request, planning), and afterwards only at stage
boundaries, anomalies and the end (``speak``, after the tick has already acted) or when
someone asks "why?" (``answer``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bot.agent.checks import AgentReport, clean_text
from bot.agent.context import AgentContext, Context
from bot.agent.reading import AskHuman, ReadRequest, read_request_task
from bot.agent.tasks import (
    AgentPlan,
    explain_task,
    plan_task,
    report_task,
    why_task,
)
from bot.domain.contract import InsufficientContext
from bot.domain.narration import FINAL, Narration
from bot.domain.plan import Plan
from bot.domain.release import ENGINE, Event, Release
from bot.domain.request import ReleaseRequest
from bot.domain.summary import summarise
from bot.domain.verdict_time import Measurement
from bot.parsing import ParseError, parse_release
from bot.ports.llm import AgentRun, LlmCall, ToolError

log = logging.getLogger(__name__)


@dataclass
class Reading:
    """The agent's reading of a plain-words request: its audit line. A request read this way
    always waits for a human approval."""

    audit: list[tuple[str, str]] = field(default_factory=list)

    @staticmethod
    def by_agent(reading: Reading | None) -> bool:
        """Whether the agent's reading became the request (its audit line says so)."""
        return reading is not None and bool(reading.audit)


@dataclass
class Planned:
    """A plan and where it came from; ``audit`` lines go into the release's trail."""

    request: ReleaseRequest
    plan: Plan
    narration: Narration | None = None
    audit: list[tuple[str, str]] = field(default_factory=list)  # (action, details)


def add_usage(narration: Narration | None, calls: list[LlmCall]) -> None:
    if narration is None:
        return
    for c in calls:
        narration.usage = narration.usage.plus(
            c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens
        )


# -- before a release exists ------------------------------------------------------------------


def read_request(
    agent: AgentContext, text: str, spent: list[LlmCall]
) -> tuple[ReleaseRequest | InsufficientContext, Reading | None]:
    """The rules' parse; when they cannot read the text and an LLM is configured, the agent
    turns the plain words into a /release line that the rules then parse. ParseError
    propagates when neither can read it. The agent's calls are appended to ``spent``."""
    try:
        parsed: ReleaseRequest | InsufficientContext | None = parse_release(text, agent.config)
        error: ParseError | None = None
    except ParseError as exc:
        parsed, error = None, exc
    if isinstance(parsed, ReleaseRequest) or not agent.llm.enabled:
        if parsed is None:
            assert error is not None
            raise error
        return parsed, None
    run = agent.llm.run(read_request_task(agent, text))
    spent += run.calls
    note = Reading()
    value = run.value
    if isinstance(value, ReadRequest):
        note.audit.append(
            (
                "request_read",
                f"read from plain words by the agent as: {value.line} (a person approves it "
                "before anything deploys)",
            )
        )
        return value.result, note
    if isinstance(value, AskHuman):
        return value.as_insufficient(parsed.deployment_blockers if parsed else []), note
    if parsed is None:
        assert error is not None
        raise error
    return parsed, note


def plan_context(
    agent: AgentContext,
    request: ReleaseRequest,
    rule_plan: Plan | None = None,
    measured: Measurement | None = None,
) -> Context:
    """What the plan task is given: the rules' plan and what it was made from (the measured
    traffic, the service's bake and maximum bake), so the agent's plan is fitted alike."""
    svc = agent.config.for_service(request.service)
    return Context(
        agent,
        request,
        rule_plan=rule_plan,
        measured=measured,
        bake_minutes=svc.bake_minutes,
        max_bake_minutes=svc.max_bake_minutes,
    )


def plan(
    agent: AgentContext,
    request: ReleaseRequest,
    now: datetime,
    instances: int,
    spent: list[LlmCall],
    measured: Measurement | None = None,
) -> Planned:
    """The rules' plan, or the agent's when it is valid (at least as careful as the rules).
    The agent's calls are appended to ``spent``; ``measured``: the service's traffic."""
    rule_plan = agent.planner.plan(request, now, instances, measured)
    if not agent.llm.enabled:
        return Planned(request, rule_plan)
    ctx = plan_context(agent, request, rule_plan, measured)
    run = agent.llm.run(plan_task(ctx, now, instances, agent.tick_seconds))
    spent += run.calls
    narration = Narration(model=agent.llm.model)
    out = Planned(request, rule_plan, narration)
    for reason in run.rejected:
        out.audit.append(("agent_proposal_rejected", f"plan proposal rejected: {reason}"))
    value = run.value
    if not isinstance(value, AgentPlan):
        out.audit.append(("planner", f"planner: rules, because {run.fallback or 'no proposal'}"))
        return out
    narration.planner = "agent"
    narration.assessment = value.proposal.assessment
    narration.changelog = value.changelog
    out.request, out.plan = value.request, value.plan
    a = value.proposal.assessment
    out.audit.append(
        (
            "planner",
            f"planner: agent ({agent.llm.model}): {value.proposal.rationale}"
            f" Risk {a.deployment_risk}, blast radius {a.blast_radius}, rollback "
            f"{a.rollback_complexity}, data risk {a.data_risk}: "
            + "; ".join(f"{k}: {v}" for k, v in a.reasons.items()),
        )
    )
    return out


# -- while it runs: explanations and the final report -----------------------------------------


def _people(agent: AgentContext, release: Release) -> set[str]:
    owner = agent.config.for_service(release.request.service).owner
    return {ENGINE, release.requested_by, *release.approvers, *([owner] if owner else [])} | {
        a.approver for a in release.approvals
    }


def speak(
    agent: AgentContext, release: Release, due: list[str], events: list[Event]
) -> tuple[str, str, AgentRun]:
    """The words these due moments call for: (event action, text, run). The end (or a
    release no longer active) gets the summary; anything else an explanation."""
    ctx = Context(agent, release.request, release)
    if any(m in FINAL for m in due) or not release.is_active:
        rules = summarise(release, events)
        run = agent.llm.run(report_task(ctx, rules, _people(agent, release)))
        if isinstance(run.value, AgentReport):
            return "summary_written", run.value.summary, run
        return "agent_fallback", f"summary: rules, because {run.fallback or 'no report'}", run
    run = agent.llm.run(explain_task(ctx, due))
    if isinstance(run.value, str):
        try:
            return "agent_note", clean_text(run.value), run
        except ToolError as exc:
            run.fallback = str(exc)
    return "agent_fallback", f"explanation: rules, because {run.fallback}", run


def answer(
    agent: AgentContext, release: Release, question: str, asker: str
) -> tuple[str | None, AgentRun]:
    """The agent's answer to a question in the thread, or None (the rules answer), and the
    run (its calls, and the fallback when there is no answer)."""
    run = agent.llm.run(why_task(Context(agent, release.request, release), question, asker))
    if isinstance(run.value, str):
        try:
            return clean_text(run.value), run
        except ToolError as exc:
            run.fallback = str(exc)
    return None, run
