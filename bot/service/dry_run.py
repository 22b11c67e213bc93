"""What ``/release LINE`` would do, found without storing, deploying, publishing a build or
rehearsing a rollback."""

from __future__ import annotations

from typing import Literal

from bot.agent import flows
from bot.domain.base import Model
from bot.domain.contract import Artifacts, Check, InsufficientContext
from bot.domain.gates import run_gates
from bot.domain.plan import Plan
from bot.domain.request import ReleaseRequest
from bot.ports.llm import LlmCall
from bot.service.commands import plan_release, refuse_unreleasable, start_refusals
from bot.service.gates import auto_approves, gate_evidence
from bot.service.services import Services

Outcome = Literal["auto_approved", "needs_approval", "blocked", "refused"]
NOT_REHEARSED = "rollback rehearsal not run in a dry run"


class DryRun(Model):
    """What ``/release LINE`` would do, found without storing, deploying, publishing a
    build or rehearsing a rollback."""

    request: ReleaseRequest
    plan: Plan
    approvers: list[str]
    checks: list[Check]
    artifacts: Artifacts
    stable_version: str | None
    outcome: Outcome
    refusals: list[str]  # why it would not even start: an active release, a lock
    blockers: list[str]  # failing checks: it would stop with nothing deployed
    notes: list[str]

    def lines(self) -> list[str]:
        pkg = self.request.release_package
        head = {
            "auto_approved": "would start at once: low risk and every check passes",
            "needs_approval": f"would wait for approval from {', '.join(self.approvers)}",
            "blocked": "would stop at the gates with nothing deployed",
            "refused": "would be refused",
        }[self.outcome]
        out = [f"dry run of {self.request.service} {pkg.version} ({pkg.risk} risk): {head}"]
        out += [f"  refused: {r}" for r in self.refusals]
        out += [f"  blocker: {b}" for b in self.blockers]
        out.append(f"  plan: {self.plan.strategy}, {len(self.plan.steps)} steps")
        out += [f"    {s.index + 1}. {s.description}" for s in self.plan.steps]
        out += [f"  {c.check}: {c.status}: {c.details}" for c in self.checks]
        out += [f"  note: {n}" for n in self.notes]
        return out


def dry_run(services: Services, text: str) -> DryRun | InsufficientContext:
    """Parse, plan and judge the gates of a /release line; store, deploy and publish nothing."""
    spent: list[LlmCall] = []
    try:
        return _dry_run(services, text, spent)
    finally:
        services.store.record_llm_calls(None, spent)  # no release: counted, not attributed


def _dry_run(services: Services, text: str, spent: list[LlmCall]) -> DryRun | InsufficientContext:
    parsed, reading = flows.read_request(services.agent(), text, spent)
    refuse_unreleasable(services, text, parsed)
    if isinstance(parsed, InsufficientContext):
        return parsed
    now = services.clock.now()
    planned, approvers = plan_release(services, parsed, now, spent)
    request, plan = planned.request, planned.plan
    evidence = gate_evidence(services, request, plan, approvers, now, dry=True)
    checks, artifacts = run_gates(request, plan, evidence)
    checks = [
        c.model_copy(update={"details": c.details.replace("rollback not rehearsed", NOT_REHEARSED)})
        if c.check == "rollback_plan"
        else c
        for c in checks
    ]
    refusals = start_refusals(services, request, plan)
    blockers = [f"{c.check}: {c.details}" for c in checks if c.status == "fail"]
    auto = auto_approves(plan, checks, flows.Reading.by_agent(reading))
    outcome: Outcome = (
        "refused"
        if refusals
        else "blocked"
        if blockers
        else "auto_approved"
        if auto
        else "needs_approval"
    )
    notes = [f"{NOT_REHEARSED}: a real start rehearses it first, in staging when there is one"]
    notes += [details for _, details in planned.audit]
    if services.ci_for(request.service) is not None:
        notes.append("build evidence is what the embedded CI would publish at the start")
    return DryRun(
        request=request,
        plan=plan,
        approvers=approvers,
        checks=checks,
        artifacts=artifacts,
        stable_version=evidence.stable_version,
        outcome=outcome,
        refusals=refusals,
        blockers=blockers,
        notes=notes,
    )
