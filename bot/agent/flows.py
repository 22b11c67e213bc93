"""Where the service asks the agent, and what it does when the agent cannot answer.

Each flow runs one task through ``services.llm`` and applies its validated value; any
fallback (no key, an API error, a refusal, a proposal rejected too often) leaves the rules'
result in place and is audited as "<step>: rules, because …". Facts never come from here.
The LLM is called before a release exists (reading a request, planning), and afterwards only
at stage boundaries, anomalies and the end (``narrate``, after the tick has already acted)
or when someone asks "why?".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.agent.checks import AgentReport, clean_text
from bot.agent.reading import AskHuman, ReadRequest, read_request_task
from bot.agent.tasks import (
    AgentPlan,
    explain_task,
    plan_task,
    report_task,
    why_task,
)
from bot.agent.tools import Context
from bot.domain.contract import InsufficientContext
from bot.domain.narration import FINAL, Narration
from bot.domain.plan import Plan
from bot.domain.release import ENGINE, Release
from bot.domain.request import ReleaseRequest
from bot.domain.summary import summarise
from bot.parsing import ParseError, parse_release
from bot.ports.llm import AgentRun, LlmCall, ToolError

if TYPE_CHECKING:
    from bot.service import Services

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
    services: Services, text: str, spent: list[LlmCall]
) -> tuple[ReleaseRequest | InsufficientContext, Reading | None]:
    """The rules' parse; when they cannot read the text and an LLM is configured, the agent
    turns the plain words into a /release line that the rules then parse. ParseError
    propagates when neither can read it. The agent's calls are appended to ``spent``."""
    try:
        parsed: ReleaseRequest | InsufficientContext | None = parse_release(text, services.config)
        error: ParseError | None = None
    except ParseError as exc:
        parsed, error = None, exc
    if isinstance(parsed, ReleaseRequest) or not services.llm.enabled:
        if parsed is None:
            assert error is not None
            raise error
        return parsed, None
    run = services.llm.run(read_request_task(services, text))
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


def plan(
    services: Services,
    request: ReleaseRequest,
    now: datetime,
    instances: int,
    spent: list[LlmCall],
) -> Planned:
    """The rules' plan, or the agent's when it is valid (at least as careful as the rules).
    The agent's calls are appended to ``spent``."""
    rule_plan = services.planner.plan(request, now, instances)
    if not services.llm.enabled:
        return Planned(request, rule_plan)
    ctx = Context(services, request, rule_plan=rule_plan)
    run = services.llm.run(plan_task(ctx, now, instances, services.tick_seconds))
    spent += run.calls
    narration = Narration(model=services.llm.model)
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
            f"planner: agent ({services.llm.model}): {value.proposal.rationale}"
            f" Risk {a.deployment_risk}, blast radius {a.blast_radius}, rollback "
            f"{a.rollback_complexity}, data risk {a.data_risk}: "
            + "; ".join(f"{k}: {v}" for k, v in a.reasons.items()),
        )
    )
    return out


# -- while it runs: explanations and the final report -----------------------------------------


def _people(services: Services, release: Release) -> set[str]:
    owner = services.config.for_service(release.request.service).owner
    return {ENGINE, release.requested_by, *release.approvers, *([owner] if owner else [])} | {
        a.approver for a in release.approvals
    }


def _speak(services: Services, release: Release, due: list[str]) -> tuple[str, str, AgentRun]:
    """Run the task these moments call for: (event action, text, run)."""
    ctx = Context(services, release.request, release)
    if any(m in FINAL for m in due) or not release.is_active:
        rules = summarise(release, services.store.events(release.id))
        run = services.llm.run(report_task(ctx, rules, _people(services, release)))
        if isinstance(run.value, AgentReport):
            return "summary_written", run.value.summary, run
        return "agent_fallback", f"summary: rules, because {run.fallback or 'no report'}", run
    run = services.llm.run(explain_task(ctx, due))
    if isinstance(run.value, str):
        try:
            return "agent_note", clean_text(run.value), run
        except ToolError as exc:
            run.fallback = str(exc)
    return "agent_fallback", f"explanation: rules, because {run.fallback}", run


def narrate(services: Services) -> int:
    """Explain each release's due moments once; runs after the tick has acted."""
    done = 0
    for release_id in services.store.narration_due_ids():
        release = services.store.get(release_id)
        if release.narration is None or not release.narration.due:
            continue
        due = list(release.narration.due)
        action, text, run = _speak(services, release, due)
        services.store.record_llm_calls(release_id, run.calls)
        with services.store.unit_of_work():
            fresh = services.store.get(release_id)
            narration = fresh.narration
            assert narration is not None
            del narration.due[: len(due)]
            add_usage(narration, run.calls)
            if isinstance(run.value, AgentReport):
                narration.summary, narration.next_actions = (
                    run.value.summary,
                    run.value.next_actions,
                )
                narration.summary_status = fresh.status
            fresh.record_agent(action, text, services.clock.now(), moments=due)
            services.store.save(fresh)
        done += 1
    return done


def answer_why(services: Services, release_id: str, question: str, asker: str) -> str | None:
    """The agent's answer to a question in the thread, or None (the rules answer)."""
    release = services.store.get(release_id)
    if not services.llm.enabled or release.narration is None:
        return None
    run = services.llm.run(why_task(Context(services, release.request, release), question, asker))
    answer: str | None = None
    if isinstance(run.value, str):
        try:
            answer = clean_text(run.value)
        except ToolError as exc:
            run.fallback = str(exc)
    services.store.record_llm_calls(release_id, run.calls)
    with services.store.unit_of_work():
        fresh = services.store.get(release_id)
        add_usage(fresh.narration, run.calls)
        if answer is None:
            why = run.fallback or "no answer"
            fresh.record_agent("agent_fallback", f"why: rules, because {why}", services.clock.now())
        services.store.save(fresh)
    return answer
