"""The agent's tasks and the policy that disposes of its proposals.

Each builder returns an ``AgentTask``: the variable prompt (inputs and quoted data last),
the read tools, and the one propose tool the task may finish with. The propose handlers are
the deterministic checks: a proposal that fails them goes back to the model as a tool error
naming the problem; one that passes is the task's value. Nothing here approves, promotes or
deploys: the values are plans, texts and a parsed request, which the service applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.agent.checks import check_changelog, check_report
from bot.agent.prompts import escaped, inputs_block, tool_json, untrusted
from bot.agent.task import AgentTask, ToolError, ToolHandler, ToolOutcome
from bot.agent.tools import Context, canary_evidence, read_handlers
from bot.domain.contract import Changelog, InsufficientContext
from bot.domain.plan import Plan
from bot.domain.plan_policy import PlanProposal, ProposalRejected, apply_proposal, parse_proposal
from bot.domain.release import Release
from bot.domain.request import ReleaseRequest
from bot.parsing import ParseError, parse_release

if TYPE_CHECKING:
    from bot.service import Services

# -- plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentPlan:
    request: ReleaseRequest  # as the proposal amended it (stricter guardrails, stages)
    plan: Plan
    proposal: PlanProposal
    changelog: Changelog


def plan_task(ctx: Context, now: datetime, instances: int, tick_seconds: float) -> AgentTask:
    request = ctx.request

    def propose(args: dict[str, Any]) -> ToolOutcome:
        fields = dict(args)
        changelog = check_changelog(fields.pop("changelog", None), request.release_package.changes)
        try:
            proposal = parse_proposal(fields)
            amended, plan = apply_proposal(request, proposal, now, instances, tick_seconds)
        except ProposalRejected as exc:
            raise ToolError(f"rejected: {exc}") from None
        return ToolOutcome("accepted", accepted=AgentPlan(amended, plan, proposal, changelog))

    handlers: dict[str, ToolHandler] = {**read_handlers(ctx), "propose_plan": propose}
    prompt = "\n".join(
        [
            "Task: plan",
            "Propose the rollout plan for this release with propose_plan: at least as careful "
            "as the rules' plan (get_rule_plan), with the risk assessment and the sorted "
            "changelog. Read the checks, dependency health and this service's history first.",
            inputs_block(request),
        ]
    )
    return AgentTask("plan", prompt, handlers, frozenset({"propose_plan"}), max_tokens=2048)


# -- read a request written in plain words ----------------------------------------------------


@dataclass(frozen=True)
class AskHuman:
    question: str
    missing: list[str]

    def as_insufficient(self, blockers: Iterable[str] = ()) -> InsufficientContext:
        return InsufficientContext(
            missing=self.missing or ["the request"],
            deployment_blockers=list(blockers) or ["the request could not be read"],
            next_best_step=self.question,
        )


@dataclass(frozen=True)
class ReadRequest:
    line: str  # the /release line the agent's fields make: what the rules parsed
    result: ReleaseRequest | InsufficientContext


LINE_FIELDS = ("changes", "risk", "env", "regions", "strategy", "flags", "stages", "artifact",
               "ticket", "peak", "window")  # fmt: skip


def _quote(value: str) -> str:
    value = " ".join(value.replace('"', "'").split())
    return f'"{value}"' if " " in value or not value else value


def request_line(fields: dict[str, Any]) -> str:
    """The agent's fields as a /release line for the rule parser."""
    parts = [str(fields.get("service", "")).strip(), str(fields.get("version", "")).strip()]
    for key in LINE_FIELDS:
        value = fields.get(key)
        if value is not None and str(value).strip():
            parts.append(f"{key}={_quote(str(value))}")
    for rail in fields.get("guardrails") or []:
        parts.append(_quote(str(rail)))
    return " ".join(p for p in parts if p)


def read_request_task(services: Services, text: str) -> AgentTask:
    config = services.config
    known = sorted(config.services)

    def propose(args: dict[str, Any]) -> ToolOutcome:
        service, version = str(args.get("service", "")), str(args.get("version", ""))
        if known and service not in known:
            raise ToolError(f"service: {service!r} is not a known service; use one of {known}")
        if not version or version not in text:
            raise ToolError("version: copy the version exactly as the request writes it")
        line = request_line(args)
        try:
            result = parse_release(line, config)
        except ParseError as exc:
            raise ToolError(f"the line {line!r} does not parse: {exc}") from None
        return ToolOutcome("accepted", accepted=ReadRequest(line, result))

    def ask(args: dict[str, Any]) -> ToolOutcome:
        question = str(args.get("question", "")).strip()
        missing = [str(m) for m in args.get("missing") or []]
        if not question:
            raise ToolError("ask_human: the question is empty")
        return ToolOutcome("asked", accepted=AskHuman(question[:300], missing[:10]))

    prompt = "\n".join(
        [
            "Task: read_request",
            "Known services: " + (", ".join(known) or "any (none configured)"),
            "The request, as the user typed it:",
            untrusted("slack_message", text),
        ]
    )
    return AgentTask(
        "read_request",
        prompt,
        {"propose_request": propose, "ask_human": ask},
        frozenset({"propose_request", "ask_human"}),
    )


# -- explanations, answers, the report --------------------------------------------------------


def _facts(release: Release) -> str:
    step = release.current_step
    return (
        f"Release {escaped(release.id)}: {escaped(release.request.service)} "
        f"{escaped(release.version)}, status {release.status}, "
        f"{release.current_percentage():g} % of traffic on the new version"
        + (f", step {step.index + 1} of {len(release.plan.steps)}" if step else "")
        + "."
    )


def explain_task(ctx: Context, moments: list[str]) -> AgentTask:
    assert ctx.release is not None
    prompt = "\n".join(
        [
            "Task: explain",
            f"What just happened: {', '.join(moments)}.",
            _facts(ctx.release),
            "The canary analysis now (what get_canary_analysis answers):",
            tool_json(canary_evidence(ctx.release)),
            "Explain it for the release thread in two or three sentences from this evidence; "
            "call get_metrics or get_audit_trail only if it is not enough.",
        ]
    )
    return AgentTask("explain", prompt, read_handlers(ctx), text_ok=True, max_iterations=4)


def why_task(ctx: Context, question: str, asker: str) -> AgentTask:
    assert ctx.release is not None
    prompt = "\n".join(
        [
            "Task: why",
            _facts(ctx.release),
            f"{escaped(asker)} asked in the release thread:",
            untrusted("slack_message", question),
        ]
    )
    return AgentTask("why", prompt, read_handlers(ctx), text_ok=True, max_iterations=4)


def report_task(ctx: Context, rules_summary: str, people: set[str]) -> AgentTask:
    release = ctx.release
    assert release is not None

    def propose(args: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome("accepted", accepted=check_report(args, release, people))

    prompt = "\n".join(
        [
            "Task: report",
            _facts(release),
            "The facts as the rules summarise them (correct; rewrite them for a reader who "
            "was not watching, adding what the evidence explains):",
            f"<facts>{escaped(rules_summary)}</facts>",
            "People you may name as owners: " + ", ".join(sorted(escaped(p) for p in people)),
        ]
    )
    return AgentTask(
        "report", prompt, {**read_handlers(ctx), "propose_report": propose},
        frozenset({"propose_report"}), max_tokens=1536,
    )  # fmt: skip
