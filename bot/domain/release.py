"""The release aggregate: its state machine, and the events it records as it moves.

Every method takes ``now`` and the facts the service gathered; none does I/O. New events
collect in ``pending_events`` until the store appends them with the new state, atomically.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from bot.domain.backoff import retry_delay
from bot.domain.base import Model, MutableModel
from bot.domain.contract import Artifacts, Check
from bot.domain.feedback import ISSUE_REPORTED, issue_refusal, issue_text
from bot.domain.judge import CanaryJudge
from bot.domain.judgement import Judgement, judgement
from bot.domain.locks import EnvLock, lock_note
from bot.domain.narration import NARRATED, Narration
from bot.domain.observations import DependencyProbe, WindowSample
from bot.domain.observed import Observed, VerificationResult
from bot.domain.plan import Plan, Step, step_label
from bot.domain.planner import CONSECUTIVE_ERROR_LIMIT, in_ranges, peak_ends
from bot.domain.request import ReleaseRequest

Status = Literal[
    "pending_gates",
    "awaiting_approval",
    "scheduled",
    "rolling_out",
    "paused",
    "rolling_back",
    "completed",
    "rolled_back",
    "failed",
]
ACTIVE: tuple[Status, ...] = (
    "pending_gates", "awaiting_approval", "scheduled", "rolling_out", "paused", "rolling_back"
)  # fmt: skip
ENGINE = "release-bot"
AGENT = "release-bot agent"
VERIFY_KINDS = ("env_deploy", "green_verify", "dark_launch")
# A release waiting for a human (approval, a pause) is read this often, only to converge a
# router changed by hand meanwhile; the human's command makes it due at once.
WAITING_RESYNC = timedelta(minutes=1)
# The action of an alert on a bound the stable version breaks too: no rollback, a hold.
STABLE_BREAKS = "rollout held: the stable version breaks it too"
# A held step's approvers may extend its bake by at most this much at a time, this many times:
# each extension ends in another look, never in an open-ended wait.
MAX_EXTENSION_MINUTES = 240.0
MAX_EXTENSIONS = 3
HoldCause = Literal["no_verdict", "stable_breaks"]


class CommandRejected(Exception):
    """A command that does not apply to the release as it stands; the message says why."""


class Event(Model):
    action: str
    actor: str
    at: datetime
    details: str
    data: dict[str, Any] = {}


class StepRecord(MutableModel):
    status: Literal["pending", "active", "completed", "rolled_back"] = "pending"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    health: Literal["healthy", "degraded", "unhealthy"] | None = None
    requests: int = 0  # canary requests observed in this step


class ApprovalRecord(Model):
    gate: str  # "release", or "step:N" for a manual gate before step N
    type: Literal["manual", "automated"]
    approver: str
    at: datetime
    conditions: list[str]


class AlertRecord(Model):
    guardrail: str
    severity: Literal["critical", "warning", "info"]
    at: datetime
    action_taken: str
    step: int


class RollbackRecord(MutableModel):
    triggered_by: Literal["automated", "manual"]
    reason: str
    guardrail: str | None
    actor: str
    started_at: datetime
    completed_at: datetime | None = None
    success: bool | None = None


class PauseRecord(Model):
    reason: str
    by: str
    at: datetime


class HeldStep(Model):
    """A step its approvers must decide on: past its maximum bake without a verdict
    (``no_verdict``), or on a bound the stable version breaks too (``stable_breaks``). The
    release is paused meanwhile; extend, promote on an override, or roll back answer it."""

    step: int
    cause: HoldCause
    reason: str
    evidence: list[str]  # each test's standing, as the judge said it
    baked_minutes: float
    canary_requests: int  # in this step
    asked_at: datetime


class StepDecision(Model):
    """How a held step was decided, by whom and why (the report says it)."""

    step: int
    cause: HoldCause
    outcome: Literal["extended", "promoted_on_override", "rolled_back"]
    by: str
    reason: str
    at: datetime
    minutes: float | None = None  # an extension's length

    def describe(self) -> str:
        match self.outcome:
            case "extended":
                return f"bake extended by {self.by} by {self.minutes:g} min: {self.reason}"
            case "promoted_on_override":
                return f"promoted on override by {self.by}: {self.reason}"
        return f"rolled back by {self.by}: {self.reason}"


class Release(MutableModel):
    """The state machine: what decides the release's next step. What it saw on the way is
    kept apart in ``observed``; the outside world it wants is derived (``bot.domain.rollout``)."""

    id: str
    request: ReleaseRequest
    plan: Plan
    requested_by: str
    approvers: list[str]
    created_at: datetime
    channel: str | None = None  # where it was asked for (a Slack channel ID); the thread's home
    status: Status = "pending_gates"
    previous_version: str | None = None
    blockers: list[str] = []
    approvals: list[ApprovalRecord] = []
    pending_approval: str | None = None
    step_index: int = -1
    steps: list[StepRecord] = []
    window_cursor: datetime | None = None
    canary_judge: CanaryJudge
    judgement: Judgement | None = None
    judged_step: int | None = None
    judged_at: datetime | None = None
    consecutive_metric_errors: int = 0
    consecutive_router_errors: int = 0
    # Ticks in a row that raised for this release; it waits until ``retry_at`` (backoff).
    failed_ticks: int = 0
    retry_at: datetime | None = None
    tick_error: str | None = None  # the last failed tick's error, while it backs off
    alerts: list[AlertRecord] = []
    rollback: RollbackRecord | None = None
    paused: PauseRecord | None = None
    held: HeldStep | None = None  # a held step waiting for its approvers' decision
    decisions: list[StepDecision] = []
    extended_until: datetime | None = None  # the current step's bake, as an extension set it
    locked_scope: str | None = None  # the scope its automatic rollback locked, once
    holding_until: datetime | None = None
    finished_at: datetime | None = None
    narration: Narration | None = None  # set when an LLM agent speaks for this release
    read_by_agent: bool = False  # the agent read it from plain words: a person must approve
    observed: Observed = Field(default_factory=Observed)
    revision: int = 0
    _events: list[Event] = PrivateAttr(default_factory=list)

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        release_id: str,
        request: ReleaseRequest,
        plan: Plan,
        approvers: list[str],
        requested_by: str,
        now: datetime,
    ) -> Release:
        judged = [s for s in plan.steps if s.kind not in VERIFY_KINDS]
        release = cls(
            id=release_id,
            request=request,
            plan=plan,
            requested_by=requested_by,
            approvers=approvers,
            created_at=now,
            steps=[StepRecord() for _ in plan.steps],
            # One more stage than planned leaves room for a step restarted after a pause.
            canary_judge=CanaryJudge.create(
                request.guardrails.all(), plan.triggers, stages=len(judged) + 1
            ),
        )
        pkg = request.release_package
        release._record(
            "release_requested",
            requested_by,
            now,
            f"{request.service} {pkg.version} ({pkg.risk} risk, {plan.strategy})",
        )
        release._record(
            "plan_created",
            ENGINE,
            now,
            f"{len(plan.steps)} steps: "
            + ", ".join(step_label(s) for s in plan.steps)
            + (f"; {'; '.join(plan.notes)}" if plan.notes else ""),
        )
        return release

    # -- events -------------------------------------------------------------------------------

    def _record(self, action: str, actor: str, at: datetime, details: str, **data: Any) -> None:
        self._events.append(Event(action=action, actor=actor, at=at, details=details, data=data))
        if self.narration is not None and action in NARRATED:
            self.narration.due.append(action)

    def record_agent(self, action: str, details: str, now: datetime, **data: Any) -> None:
        """An agent's contribution (or the rules' fallback) in the audit trail and thread."""
        self._record(action, AGENT, now, details, **data)

    def collect_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- properties ---------------------------------------------------------------------------

    @property
    def pause_reason(self) -> str | None:
        return self.paused.reason if self.paused is not None else None

    @property
    def version(self) -> str:
        return self.request.release_package.version

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def current_step(self) -> Step | None:
        if 0 <= self.step_index < len(self.plan.steps):
            return self.plan.steps[self.step_index]
        return None

    def current_percentage(self) -> float:
        """User traffic on the new version now (in prod; flags count as traffic)."""
        if self.status in ("rolled_back", "failed") or self.rollback is not None:
            return 0.0
        if self.status == "completed":
            return 100.0
        # The last prod step that started is live, even while the next waits for a gate or
        # for peak hours to end.
        started = [s for s in self.plan.prod_steps() if self.steps[s.index].status != "pending"]
        return started[-1].percentage if started else 0.0

    # -- gates and approval -------------------------------------------------------------------

    def record_gates(
        self,
        checks: list[Check],
        artifacts: Artifacts,
        previous_version: str | None,
        auto_approve: bool,
        now: datetime,
    ) -> None:
        self._require("pending_gates")
        self.observed.checks, self.observed.artifacts = checks, artifacts
        self.previous_version = previous_version
        for check in checks:
            self._record(
                "gate_checked", ENGINE, now, f"{check.check}: {check.status}: {check.details}"
            )
        failed = [c for c in checks if c.status == "fail"]
        if failed:
            self.blockers = [f"{c.check}: {c.details}" for c in failed]
            self._finish("failed", now)
            self._record(
                "release_failed",
                ENGINE,
                now,
                "critical checks failed, nothing deployed: " + "; ".join(self.blockers),
            )
            return
        if auto_approve:
            passed = len(checks)
            self._add_approval(
                "release",
                "automated",
                "release-bot policy",
                now,
                [f"risk is {self.plan.risk}", f"all {passed} pre-deployment checks pass"],
            )
            self._schedule(now)
        else:
            self._ask_approval("release", now)

    def _ask_approval(self, gate: str, now: datetime) -> None:
        self.status = "awaiting_approval"
        self.pending_approval = gate
        what = "the release" if gate == "release" else step_label(self.plan.steps[int(gate[5:])])
        self._record(
            "approval_requested",
            ENGINE,
            now,
            f"approval needed for {what} from one of: {', '.join(self.approvers)}",
            gate=gate,
        )

    def _add_approval(
        self,
        gate: str,
        kind: Literal["manual", "automated"],
        who: str,
        now: datetime,
        conditions: list[str],
    ) -> None:
        self.approvals.append(
            ApprovalRecord(gate=gate, type=kind, approver=who, at=now, conditions=conditions)
        )
        self._record("approved", who, now, f"{gate}: {kind} approval ({'; '.join(conditions)})")

    def approve(self, approver: str, now: datetime) -> None:
        """The pending gate approved. Whether ``approver`` may (an approver, four eyes) is the
        access policy's decision, made before this is called (``bot.service.commands``)."""
        if self.status == "paused":
            raise CommandRejected(f"{self.id} is paused ({self.pause_reason}): resume it first")
        if self.status != "awaiting_approval" or self.pending_approval is None:
            prior = next((a for a in reversed(self.approvals) if a.type == "manual"), None)
            if prior is not None and self.status != "failed":
                raise CommandRejected(
                    f"{self.id} is not waiting for approval: {prior.approver} approved it at "
                    f"{prior.at:%H:%M:%S} UTC"
                )
            raise CommandRejected(f"{self.id} is not waiting for approval (status: {self.status})")
        gate = self.pending_approval
        warned = sum(c.status == "warning" for c in self.observed.checks)
        checked = (
            f"no pre-deployment check fails ({warned} warn)"
            if warned
            else "pre-deployment checks pass"
        )
        conditions = [checked] if gate == "release" else ["previous steps healthy"]
        self._add_approval(gate, "manual", approver, now, conditions)
        self.pending_approval = None
        if gate == "release":
            self._schedule(now)
        else:
            self.status = "rolling_out"
            self._start_step(int(gate[5:]), now)

    def reject(self, approver: str, reason: str, now: datetime) -> None:
        """The pending gate rejected; who may is the access policy's to say, as for approve."""
        if self.status != "awaiting_approval" or self.pending_approval is None:
            raise CommandRejected(f"{self.id} is not waiting for approval (status: {self.status})")
        gate, self.pending_approval = self.pending_approval, None
        self._record("rejected", approver, now, f"{gate}: {reason}")
        if gate == "release":
            self.blockers = [f"change approval rejected by {approver}: {reason}"]
            self._finish("failed", now)
            self._record("release_failed", ENGINE, now, "approval rejected, nothing deployed")
        else:
            self._start_rollback(
                "manual", f"approval rejected by {approver}: {reason}", None, approver, now
            )

    def _schedule(self, now: datetime) -> None:
        self.status = "scheduled"
        if self.plan.start > now:
            self._record(
                "scheduled", ENGINE, now, f"start delayed to {self.plan.start:%Y-%m-%d %H:%M} UTC"
            )

    # -- the reconcile step ---------------------------------------------------------------------

    def begin_if_due(self, now: datetime) -> None:
        if self.status == "scheduled" and now >= self.plan.start:
            self.status = "rolling_out"
            self._record("rollout_started", ENGINE, now, f"rolling out {self.version}")
            self._start_step(0, now)

    def _start_step(self, index: int, now: datetime) -> None:
        step = self.plan.steps[index]
        approved = any(a.gate == f"step:{index}" for a in self.approvals)
        self.step_index = index
        if step.manual_gate and not approved:
            self._ask_approval(f"step:{index}", now)
            return
        record = self.steps[index]
        record.status, record.started_at = "active", now
        record.requests, self.window_cursor = 0, now
        self.consecutive_metric_errors = 0
        self.extended_until = None
        self.observed.start_step()
        if step.kind not in VERIFY_KINDS:
            self.canary_judge.start_stage(now, step.bake_minutes)
        self._record(
            "step_started",
            ENGINE,
            now,
            f"step {index + 1}/{len(self.plan.steps)}: {step.description}",
            step=index,
            percentage=step.percentage,
        )

    def step_due(self, now: datetime) -> bool:
        """Whether the current step has baked for its planned time."""
        step, record = self.current_step, self._record_of_current()
        if step is None or record is None or record.started_at is None:
            return False
        return now - record.started_at >= timedelta(minutes=step.bake_minutes)

    def _extension_over(self, now: datetime) -> bool:
        """Whether the current step is past its maximum bake (``CanaryJudge.past_maximum_bake``,
        the plan's rule) without promotion, or past the bake its approvers extended it to."""
        step, record = self.current_step, self._record_of_current()
        if step is None or record is None or record.started_at is None:
            return False
        if self._extended(now):
            return False
        return self.canary_judge.past_maximum_bake(now, self.plan.max_bake_minutes)

    def _extended(self, now: datetime) -> bool:
        """Whether the current step bakes on within an extension its approvers granted."""
        return self.extended_until is not None and now < self.extended_until

    def _record_of_current(self) -> StepRecord | None:
        return self.steps[self.step_index] if 0 <= self.step_index < len(self.steps) else None

    def next_work(
        self, now: datetime
    ) -> Literal["gates", "begin", "release_hold", "verify", "observe", "confirm_rollback"] | None:
        """What the reconcile tick must do for this release now (None: wait for a human)."""
        step = self.current_step
        match self.status:
            case "pending_gates":
                return "gates"
            case "scheduled":
                return "begin"
            case "rolling_out" if self.holding_until is not None:
                return "release_hold"
            case "rolling_out" if self.needs_verification(now):
                return "verify"
            case "rolling_out" if step is not None and self.window_cursor is not None:
                return "observe"
            case "rolling_back":
                return "confirm_rollback"
        return None

    def next_work_at(self, now: datetime, shortest_window: timedelta) -> datetime | None:
        """When the tick next has work on this release, if not at every tick: the end of its
        backoff; while it observes, when its window lasts longer than the metrics
        provider's ``shortest_window`` (or its step's verification is due, if sooner); while
        it waits for a human, ``WAITING_RESYNC`` on (only to put back a router changed by
        hand). None: at every tick."""
        if not self.is_active:
            return None  # ended: no tick reads it (the leader finishes its converge)
        if self.backing_off(now):
            return self.retry_at
        work = self.next_work(now)
        if work is None:  # waiting for a human, whose command makes it due at once
            return now + WAITING_RESYNC
        if work != "observe" or not shortest_window or self.window_cursor is None:
            return None
        due = self.window_cursor + shortest_window + timedelta(microseconds=1)  # "longer than"
        step, record = self.current_step, self._record_of_current()
        if step is not None and step.kind in VERIFY_KINDS and record and record.started_at:
            due = min(due, record.started_at + timedelta(minutes=step.bake_minutes))
        return due

    def needs_verification(self, now: datetime) -> bool:
        step = self.current_step
        return (
            self.status == "rolling_out"
            and step is not None
            and step.kind in VERIFY_KINDS
            and self.step_due(now)
        )

    def record_verification(self, result: VerificationResult, now: datetime) -> None:
        step = self.current_step
        if step is None or not self.needs_verification(now):
            return
        self.observed.verifications.append(result)
        self._record("verified", ENGINE, now, f"{step_label(step)}: {result.details}", ok=result.ok)
        if not result.ok:
            self.steps[step.index].health = "unhealthy"
            self._start_rollback(
                "automated", f"verification failed: {result.details}", "smoke_tests", ENGINE, now
            )
            return
        self.steps[step.index].health = "healthy"
        self._advance(now)

    def record_metrics_error(self, error: str, now: datetime) -> None:
        """The metrics provider did not answer. The thread is alerted at the first failure;
        after ``CONSECUTIVE_ERROR_LIMIT`` in a row, no data means no proof of safety: the
        release does what its plan's metrics-provider trigger says."""
        if self.status != "rolling_out":
            return
        self.consecutive_metric_errors += 1
        count = self.consecutive_metric_errors
        self._record("metrics_unavailable", ENGINE, now, error, count=count)
        if count == 1:
            self._alert(
                "metrics_provider",
                "warning",
                now,
                f"alerted; after {CONSECUTIVE_ERROR_LIMIT} failed checks in a row the release "
                + ("rolls back" if self._rolls_back_without_metrics() else "pauses"),
                f"metrics unavailable: {error}",
            )
        if count >= CONSECUTIVE_ERROR_LIMIT:
            self._without_metrics(f"metrics unavailable for {count} checks: {error}", now)

    def _rolls_back_without_metrics(self) -> bool:
        """As the plan's metrics-provider trigger says (the service's ``on_metrics_loss`` when
        planned): "auto_rollback" rolls back while the canary serves production users, and
        pauses when none is on it; "pause" always pauses."""
        action = next(
            (t.action for t in self.plan.triggers if t.guardrail == "metrics_provider"), "pause"
        )
        return action == "auto_rollback" and self.current_percentage() > 0

    # -- a tick that raised ---------------------------------------------------------------------

    @property
    def errored(self) -> bool:
        """Whether its last tick raised (it is retried with backoff, the others go on)."""
        return self.failed_ticks > 0

    def backing_off(self, now: datetime) -> bool:
        return self.retry_at is not None and now < self.retry_at

    def record_tick_error(
        self, error_type: str, message: str, now: datetime, base_delay: timedelta
    ) -> None:
        """The tick raised for this release (its transaction rolled back): count it, wait
        longer each time (capped), and audit it. The thread hears of the first failure only
        (``shown_in_thread``), and of the recovery."""
        self.failed_ticks += 1
        self.retry_at = now + retry_delay(self.failed_ticks, base_delay)
        self.tick_error = f"{error_type}: {message}"
        first = self.failed_ticks == 1
        self._record(
            "tick_failed",
            ENGINE,
            now,
            (
                f"this release could not move ({error_type}: {message}); retrying with "
                f"backoff, next at {self.retry_at:%H:%M:%S} UTC; the other releases go on"
                if first
                else f"failed {self.failed_ticks} ticks in a row ({error_type}: {message}); "
                f"next try at {self.retry_at:%H:%M:%S} UTC"
            ),
            error_type=error_type,
            message=message,
            count=self.failed_ticks,
            retry_at=self.retry_at.isoformat(),
        )

    def tick_recovered(self, now: datetime) -> None:
        """A tick went through after failed ones: the thread hears it moves again."""
        if not self.errored:
            return
        failed, self.failed_ticks, self.retry_at = self.failed_ticks, 0, None
        self.tick_error = None
        self._record(
            "tick_recovered",
            ENGINE,
            now,
            f"moving again after {failed} failed tick{'s' if failed > 1 else ''}",
            count=failed,
        )

    def record_router_error(self, error: str, now: datetime) -> None:
        """The traffic router did not do what the release wants (after its own retries).
        Rolling out, it pauses after ``CONSECUTIVE_ERROR_LIMIT`` failures in a row: traffic
        may not be what the plan says, and rolling back needs the same router, so a person
        decides. Rolling back, every tick tries again until the router restores the stable."""
        self.consecutive_router_errors += 1
        if self.consecutive_router_errors <= CONSECUTIVE_ERROR_LIMIT:  # then the thread knows
            count = self.consecutive_router_errors
            self._record("router_unavailable", ENGINE, now, error, count=count)
        if self.status == "rolling_out" and self.consecutive_router_errors >= (
            CONSECUTIVE_ERROR_LIMIT
        ):
            self._pause(
                f"traffic router failed {self.consecutive_router_errors} times in a row: {error}",
                now,
            )

    def check_dependencies(self, probes: list[DependencyProbe], now: datetime) -> None:
        """A dependency that turns unhealthy during the rollout pauses it: the canary cannot
        be judged fairly while it is down, and the trouble may not be the new version's."""
        down = [p.name for p in probes if p.health == "unhealthy"]
        if self.status == "rolling_out" and down:
            self._pause(f"dependency {', '.join(down)} unhealthy during the rollout", now)

    def router_answered(self) -> None:
        self.consecutive_router_errors = 0

    def observe(self, sample: WindowSample, now: datetime) -> None:
        """Take one metrics window for the current traffic step and act on the judgement."""
        step = self.current_step
        if self.status != "rolling_out" or step is None or step.kind in VERIFY_KINDS:
            return
        self.consecutive_metric_errors = 0
        self.window_cursor = sample.end
        self.steps[step.index].requests += sample.canary.requests
        self.observed.add_window(sample, now, served_users=step.kind != "shadow")
        self.canary_judge.observe(sample)
        verdict = self._judge(step.index, now)
        for result in verdict.breached("alert"):
            self._alert(
                result.guardrail, "warning", now, "alerted; rollout continues", result.detail
            )
        if verdict.recommendation == "rollback":
            first = verdict.blaming_the_canary("auto_rollback")[0]
            self.steps[step.index].health = "unhealthy"
            self._alert(first.guardrail, "critical", now, "automatic rollback", first.detail)
            self._start_rollback(
                "automated",
                f"guardrail {first.guardrail} broke: {first.detail}",
                first.guardrail,
                ENGINE,
                now,
            )
            return
        if held := verdict.stable_breaks_too():
            # The stable version breaks the bound too: rolling back cannot restore it, so a
            # human decides, told both figures.
            for result in held:
                self._alert(result.guardrail, "critical", now, STABLE_BREAKS, result.detail)
            if not self._extended(now):  # an extension waits for the stable to recover
                self._hold("stable_breaks", "; ".join(r.detail for r in held), verdict, now)
            return
        for result in verdict.breached("pause"):
            self._alert(result.guardrail, "critical", now, "rollout paused")
            self._pause(f"guardrail {result.guardrail} broke: {result.detail}", now)
            return
        if verdict.no_data:
            limit = self.canary_judge.settings.no_data_limit
            self._without_metrics(
                f"no canary requests for {limit} windows: nothing to judge the canary on", now
            )
            return
        if not self.step_due(now):
            return
        record = self.steps[step.index]
        if verdict.recommendation == "promote":
            record.health = (
                "degraded" if any(a.step == step.index for a in self.alerts) else "healthy"
            )
            self._record(
                "analysis_passed",
                ENGINE,
                now,
                f"{step_label(step)}: every gating test within bounds over "
                f"{verdict.canary_requests} canary requests "
                f"(confidence {verdict.statistical_confidence:.3f})",
            )
            self._advance(now)
            return
        if self._extension_over(now):
            unproven = [
                r.detail
                for r in verdict.results
                if (r.gating or r.guardrail.startswith("kpi:")) and r.state != "holds"
            ]
            why = "; ".join(unproven) or f"the judge still says {verdict.recommendation}"
            self._hold("no_verdict", f"not enough evidence to promote: {why}", verdict, now)

    def _judge(self, step_index: int, now: datetime) -> Judgement:
        """The judgement for this tick. The full one (every test's figures, the contract's
        metrics) costs twice the decision alone, so it is rebuilt only when the judge has
        something to say, the step's extended analysis ran out, or a new minute began (for
        the live card)."""
        judge = self.canary_judge
        soaked = judge.soaked(now)
        verdicts = judge.verdicts(with_bounds=soaked)
        quiet = (
            judge.decide(now, verdicts) == "extend_analysis"
            and not any(v.breached for v in verdicts)
            and judge.no_data_streak < judge.settings.no_data_limit
            and not self._extension_over(now)
        )
        last = self.judged_at
        if (
            quiet
            and self.judgement is not None
            and not self.judgement.breached()
            and self.judged_step == step_index
            and last is not None
            and last.replace(second=0, microsecond=0) == now.replace(second=0, microsecond=0)
        ):
            return self.judgement
        # The full judgement takes the verdicts with bounds: these, once the stage has soaked.
        full = judgement(judge, now, verdicts if soaked else None)
        self.judgement, self.judged_step, self.judged_at = full, step_index, now
        return self.judgement

    def _without_metrics(self, reason: str, now: datetime) -> None:
        """Nothing to judge on for too long: roll back or pause, as the plan's trigger says."""
        rollback = self._rolls_back_without_metrics()
        taken = "automatic rollback" if rollback else "rollout paused"
        self._alert("metrics_provider", "critical", now, taken)
        if rollback:
            self._start_rollback("automated", reason, "metrics_provider", ENGINE, now)
        else:
            self._pause(reason, now)

    def _advance(self, now: datetime) -> None:
        step = self.current_step
        assert step is not None
        record = self.steps[step.index]
        record.status, record.completed_at = "completed", now
        self._record(
            "step_completed", ENGINE, now, f"{step_label(step)} completed", step=step.index
        )
        if step.index + 1 >= len(self.plan.steps):
            self._finish("completed", now)
            self._record("release_completed", ENGINE, now, f"{self.version} serves all traffic")
            return
        nxt = self.plan.steps[step.index + 1]
        peaks = self.request.operational_context.peak_hours
        if self.plan.hold_in_peak_hours and nxt.env == "prod" and in_ranges(peaks, now):
            self.holding_until = peak_ends(peaks, now)
            self.step_index = nxt.index
            self._record(
                "holding",
                ENGINE,
                now,
                f"peak hours: {step_label(nxt)} waits until {self.holding_until:%H:%M} UTC",
            )
            return
        self._start_step(nxt.index, now)

    def release_hold(self, now: datetime) -> None:
        """Start the step that waited for peak hours to end."""
        if (
            self.holding_until is not None
            and now >= self.holding_until
            and self.status == "rolling_out"
        ):
            self.holding_until = None
            self._start_step(self.step_index, now)

    # -- alerts, pause, rollback ----------------------------------------------------------------

    def _alert(
        self,
        guardrail: str,
        severity: Literal["critical", "warning", "info"],
        now: datetime,
        action: str,
        detail: str = "",
    ) -> None:
        if any(
            a.guardrail == guardrail and a.step == self.step_index and a.severity == severity
            for a in self.alerts
        ):
            return  # one alert per guardrail and severity per step (a warning may escalate)
        self.alerts.append(
            AlertRecord(
                guardrail=guardrail,
                severity=severity,
                at=now,
                action_taken=action,
                step=self.step_index,
            )
        )
        self._record(
            "alert", ENGINE, now, f"{guardrail}: {detail or action}; {action}", severity=severity
        )

    def _pause(self, reason: str, now: datetime, actor: str = ENGINE) -> None:
        self.status, self.pending_approval = "paused", None
        self.paused = PauseRecord(reason=reason, by=actor, at=now)
        self._record("paused", actor, now, reason)

    def pause(self, actor: str, reason: str, now: datetime) -> None:
        """A human stops the rollout where it stands: traffic stays as it is, nothing is
        judged or promoted until someone resumes (the step restarts) or rolls back."""
        if self.status == "paused" and self.paused is not None:
            raise CommandRejected(
                f"{self.id} is already paused (by {self.paused.by} at "
                f"{self.paused.at:%H:%M:%S} UTC): {self.paused.reason}"
            )
        if self.status != "rolling_out" and not (
            self.status == "awaiting_approval" and self.step_index >= 0
        ):
            raise CommandRejected(self._not_rolling_out("pause"))
        self._pause(reason or f"paused by {actor}", now, actor)

    def resume(self, actor: str, now: datetime) -> None:
        if self.status != "paused":
            raise CommandRejected(f"{self.id} is not paused (status: {self.status})")
        if self.held is not None:
            raise CommandRejected(
                f"{self.id} is held for its approvers' decision ({self.held.reason}): "
                "extend the bake, promote on an override, or roll back"
            )
        self._record("resumed", actor, now, f"resumed after: {self.pause_reason}")
        self.paused = None
        self.status = "rolling_out"
        if self.holding_until is None:  # a step held for peak hours starts when they end
            self._start_step(self.step_index, now)  # again, with fresh evidence

    def promote_now(self, actor: str, now: datetime) -> None:
        """An approver ends the current step's bake early and the next step starts (its own
        gates, holds and checks still apply); ``_promotion_refusal`` says when it may not,
        the access policy who may."""
        step = self.current_step
        label = step_label(step) if step is not None else ""
        verifying = step is not None and step.kind in VERIFY_KINDS
        if refusal := self._promotion_refusal(label, verifying):
            raise CommandRejected(refusal)
        assert step is not None and self.judgement is not None
        record, verdict = self.steps[step.index], self.judgement
        record.health = "degraded" if any(a.step == step.index for a in self.alerts) else "healthy"
        baked = (now - (record.started_at or now)).total_seconds() / 60
        self._record(
            "promoted_manually",
            actor,
            now,
            f"{label}: bake ended early by {actor} after {baked:.1f} of {step.bake_minutes:g} "
            f"min; the judge said {verdict.recommendation} over {verdict.canary_requests} "
            "canary requests",
            step=step.index,
            recommendation=verdict.recommendation,
            canary_requests=verdict.canary_requests,
        )
        self._advance(now)

    # -- a held step: its approvers decide --------------------------------------------------

    def _hold(self, cause: HoldCause, reason: str, verdict: Judgement, now: datetime) -> None:
        """Pause the step and ask its approvers, with the evidence, to decide: extend the
        bake, promote on a recorded override, or roll back. Never decided by the engine."""
        step, record = self.current_step, self._record_of_current()
        assert step is not None and record is not None
        baked = (now - (record.started_at or now)).total_seconds() / 60
        self.held = HeldStep(
            step=step.index,
            cause=cause,
            reason=reason,
            evidence=[r.detail for r in verdict.results],
            baked_minutes=round(baked, 1),
            canary_requests=record.requests,
            asked_at=now,
        )
        self.extended_until = None
        self._pause(reason, now)
        rate = record.requests / (baked * 60) if baked > 0 else 0.0
        self._record(
            "decision_requested",
            ENGINE,
            now,
            f"{step_label(step)} baked {baked:.0f} min over {record.requests:,} canary requests "
            f"(~{rate:.2g} rps) without a verdict; {', '.join(self.approvers) or 'an approver'}: "
            f"extend the bake (at most {MAX_EXTENSION_MINUTES:g} min), promote on a recorded "
            "override, or roll back",
            step=step.index,
            cause=cause,
            baked_minutes=round(baked, 1),
            canary_requests=record.requests,
            evidence=self.held.evidence,
        )

    def _held_step(self, verb: str) -> HeldStep:
        """The held step a decision answers; refused when none waits."""
        if self.held is None or self.status != "paused":
            why = (
                f"paused ({self.pause_reason}): resume it or roll back"
                if self.status == "paused"
                else self.status.replace("_", " ")
            )
            last = f"; {self.decisions[-1].describe()}" if self.decisions else ""
            raise CommandRejected(
                f"cannot {verb} {self.id}: no step waits for a decision (it is {why}){last}"
            )
        return self.held

    def _decide(self, held: HeldStep, decision: StepDecision, action: str, now: datetime) -> None:
        self.decisions.append(decision)
        self.held = None
        self._record(
            action,
            decision.by,
            now,
            f"{step_label(self.plan.steps[held.step])}: {decision.describe()}",
            step=held.step,
            cause=held.cause,
            reason=decision.reason,
            minutes=decision.minutes,
        )

    def extend_bake(self, actor: str, minutes: float, reason: str, now: datetime) -> None:
        """Judge the held step on for ``minutes`` more (bounded; at most ``MAX_EXTENSIONS``
        times a step), with the evidence it has; asked again if still without a verdict."""
        held = self._held_step("extend")
        if not 0 < minutes <= MAX_EXTENSION_MINUTES:
            raise CommandRejected(
                f"extend {self.id} by 1 to {MAX_EXTENSION_MINUTES:g} minutes, not {minutes:g}"
            )
        done = sum(1 for d in self.decisions if d.step == held.step and d.outcome == "extended")
        if done >= MAX_EXTENSIONS:
            raise CommandRejected(
                f"{self.id}'s step {held.step + 1} was extended {done} times already: promote "
                "it on an override or roll it back"
            )
        why = reason.strip() or f"extended by {actor}"
        decision = StepDecision(
            step=held.step, cause=held.cause, outcome="extended", by=actor, reason=why, at=now,
            minutes=minutes,
        )  # fmt: skip
        self._decide(held, decision, "bake_extended", now)
        self.status, self.paused = "rolling_out", None
        self.extended_until = now + timedelta(minutes=minutes)
        self.window_cursor = now  # the judge saw nothing while paused: no window spans it

    def promote_on_override(self, actor: str, reason: str, now: datetime) -> None:
        """Promote the held step although the judge reached no verdict: who and why are
        recorded and audited, and the report says the step was promoted on an override."""
        held = self._held_step("promote on an override")
        if not reason.strip():
            raise CommandRejected(
                f"an override of {self.id} needs a reason: say why it is safe to promote"
            )
        decision = StepDecision(
            step=held.step, cause=held.cause, outcome="promoted_on_override", by=actor,
            reason=reason.strip(), at=now,
        )  # fmt: skip
        self._decide(held, decision, "promoted_on_override", now)
        if any(a.step == held.step for a in self.alerts):
            self.steps[held.step].health = "degraded"  # a bound broke; the judge never said
        self.status, self.paused = "rolling_out", None
        self._advance(now)

    def _not_rolling_out(self, verb: str) -> str:
        """Why a command that needs a rollout in progress does not apply now."""
        if self.status in ("pending_gates", "awaiting_approval", "scheduled"):
            hint = f"nothing is deployed yet (`/release rollback {self.id}` cancels it)"
        else:
            hint = f"it is {self.status.replace('_', ' ')}"
        return f"cannot {verb} {self.id}: {hint}"

    def _promotion_refusal(self, label: str, verifying: bool) -> str | None:
        """Why the current step's bake may not end early, or None. Never past a failed
        check: refused on a verification step (it moves on only by passing), before the
        judge has seen the step (this also stops a double click from skipping two steps),
        and while any rollback or pause guardrail is breached or the judge says roll back.
        Who may promote is the access policy's to say (``bot/domain/access.py``)."""
        step = self.current_step
        started = self.steps[step.index].started_at if step is not None else None
        if self.status != "rolling_out" or step is None:
            return self._not_rolling_out("promote")
        if self.holding_until is not None:
            return (
                f"{label} waits for peak hours to end ({self.holding_until:%H:%M} UTC); "
                "promote cannot skip that hold"
            )
        if verifying:
            return (
                f"{label} is a verification step: it moves on only when its smoke tests and "
                "synthetic transactions pass"
            )
        verdict, judged = self.judgement, self.judged_at
        if (
            verdict is None
            or self.judged_step != step.index
            or started is None
            or judged is None
            or judged <= started
        ):
            return f"the judge has not seen {label} yet: wait for its first metrics window"
        broken = verdict.breached("auto_rollback") + verdict.breached("pause")
        if broken or verdict.recommendation == "rollback" or verdict.no_data:
            why = "; ".join(r.detail for r in broken) or (
                "no canary traffic to judge" if verdict.no_data else "the judge says roll back"
            )
            return f"cannot promote {self.id} past {label}: {why}"
        return None

    def record_refused(self, actor: str, command: str, why: str, now: datetime) -> None:
        """Audit an attempt the access policy refused; nothing else changes."""
        self._record("refused", actor, now, f"{command} refused: {why}", command=command)

    def report_issue(self, reporter: str, text: str, now: datetime) -> None:
        """A user reports a problem they see with the release (``bot/domain/feedback.py``
        says until when); audited, counted by the report's user feedback."""
        if why := issue_refusal(self.id, self.is_active, self.finished_at, text, now):
            raise CommandRejected(why)
        self._record(ISSUE_REPORTED, reporter, now, issue_text(text))

    def record_lock(self, lock: EnvLock, new: bool, now: datetime) -> None:
        """The scope its automatic rollback locked (``new``), or found locked already."""
        self.locked_scope = lock.scope
        self._record("environment_locked", ENGINE, now, lock_note(lock, new), scope=lock.scope)

    def request_rollback(self, actor: str, reason: str, now: datetime) -> None:
        if self.status in ("rolling_back", "rolled_back"):
            raise CommandRejected(f"{self.id} is already {self.status.replace('_', ' ')}")
        if not self.is_active:
            raise CommandRejected(f"{self.id} has finished ({self.status}); nothing to roll back")
        if (
            self.status in ("pending_gates", "awaiting_approval", "scheduled")
            and self.step_index < 0
        ):
            self._record("cancelled", actor, now, reason)
            self.blockers = [f"cancelled by {actor}: {reason}"]
            self._finish("failed", now)
            return
        if (held := self.held) is not None and self.status == "paused":
            decision = StepDecision(
                step=held.step, cause=held.cause, outcome="rolled_back", by=actor,
                reason=reason, at=now,
            )  # fmt: skip
            self._decide(held, decision, "held_step_rolled_back", now)
        self._start_rollback("manual", reason, None, actor, now)

    def _start_rollback(
        self,
        by: Literal["automated", "manual"],
        reason: str,
        guardrail: str | None,
        actor: str,
        now: datetime,
    ) -> None:
        self.status, self.pending_approval, self.holding_until = "rolling_back", None, None
        self.rollback = RollbackRecord(
            triggered_by=by, reason=reason, guardrail=guardrail, actor=actor, started_at=now
        )
        for record in self.steps:
            if record.status in ("active", "completed"):
                record.status = "rolled_back"
        self._record("rollback_started", actor, now, reason, triggered_by=by)

    def confirm_rollback(self, restored: bool, now: datetime) -> None:
        """The router reports the stable version serving everything again."""
        if self.status != "rolling_back" or self.rollback is None:
            return
        if not restored:
            self._record(
                "rollback_waiting", ENGINE, now, "traffic not yet back on the stable version"
            )
            return
        self.rollback.completed_at, self.rollback.success = now, True
        self._finish("rolled_back", now)
        secs = (now - self.rollback.started_at).total_seconds()
        self._record(
            "rollback_completed",
            ENGINE,
            now,
            f"{self.previous_version or 'the stable version'} serves all traffic again "
            f"({secs:.0f}s)",
        )

    def _finish(self, status: Status, now: datetime) -> None:
        self.status, self.finished_at, self.pending_approval = status, now, None

    def _require(self, *statuses: Status) -> None:
        if self.status not in statuses:
            raise CommandRejected(f"{self.id} is {self.status}, expected {' or '.join(statuses)}")


def shown_in_thread(event: Event) -> bool:
    """Whether the thread shows an event: all but the repeats of a failing tick, which the
    audit trail keeps (the thread was alerted at the first, and hears of the recovery)."""
    return not (event.action == "tick_failed" and event.data.get("count", 1) > 1)


__all__ = [
    "ACTIVE",
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_MINUTES",
    "CommandRejected",
    "Event",
    "HeldStep",
    "PauseRecord",
    "Release",
    "StepDecision",
    "shown_in_thread",
]  # fmt: skip
