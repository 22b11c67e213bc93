"""The deployment plan: environments in order, rollout steps, triggers and timing."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.domain.base import Model
from bot.domain.request import EnvName, Risk, Strategy

StepKind = Literal[
    "env_deploy",  # dev/staging: the new version takes the whole environment, then is verified
    "shadow",  # traffic mirrored to the new version, responses discarded: no user impact
    "green_verify",  # green stands beside blue at 0 % and is checked with synthetic traffic
    "switch",  # blue-green: all traffic to green at once; blue kept for the rollback window
    "traffic",  # canary: a share of user traffic
    "batch",  # rolling: a batch of instances replaced
    "dark_launch",  # feature flag: code deployed everywhere with the flag off
    "flag",  # feature flag: the flag's percentage raised
]
TriggerAction = Literal["auto_rollback", "alert", "pause"]
Velocity = Literal["slow", "normal", "fast"]
ReportedStrategy = Literal["blue_green", "canary", "rolling", "feature_flag"]
# Quality checks beyond the brief's gates that a plan may also require (the agent adds them,
# e.g. consumer contract tests for a breaking API change), with their words for people.
ExtraCheck = Literal["contract_tests"]
EXTRA_CHECK_LABELS: dict[str, str] = {"contract_tests": "consumer contract tests"}


class Step(Model):
    """One step of the rollout, run in order. ``percentage`` is the user traffic on the new
    version (or the flag's percentage, or the share of instances replaced)."""

    index: int
    env: EnvName
    kind: StepKind
    percentage: float
    mirror: float = 0.0
    regions: list[str]
    bake_minutes: float
    manual_gate: bool = False  # a human approves before this step starts
    phase: Literal["preprod", "canary", "rollout", "validation"]
    description: str


class Trigger(Model):
    """A rollback trigger derived from a guardrail (or the metrics provider itself)."""

    guardrail: str  # the guardrail's name: error_rate, latency_p95, kpi:x, metrics_provider
    metric: str
    threshold: str
    window_minutes: float
    action: TriggerAction


class EnvTarget(Model):
    name: EnvName
    region: str
    order: int


class Plan(Model):
    strategy: Strategy
    reported_strategy: ReportedStrategy
    risk: Risk
    environments: list[EnvTarget]
    steps: list[Step]
    triggers: list[Trigger]
    velocity: Velocity
    start: datetime  # the earliest start: now, or when the next maintenance window opens
    hold_in_peak_hours: bool
    instances: int
    notes: list[str]
    extra_checks: list[ExtraCheck] = []  # gated like the brief's, before anything deploys
    # The longest a step may bake (the service's ``max_bake_minutes``, else the risk's); a
    # step without a verdict stops at ``bot.domain.judge.maximum_bake`` of its own bake.
    max_bake_minutes: float | None = None

    def prod_steps(self) -> list[Step]:
        return [s for s in self.steps if s.env == "prod"]

    def minutes(self, phase: str) -> float:
        return sum(s.bake_minutes for s in self.steps if s.phase == phase)


def step_label(step: Step) -> str:
    """How a step is named in the thread and the audit trail."""
    where = ",".join(step.regions)
    match step.kind:
        case "shadow":
            return f"shadow {step.mirror:g}% mirrored ({where})"
        case "green_verify":
            return f"green verify ({where})"
        case "switch":
            return f"blue-green switch ({where})"
        case "dark_launch":
            return "dark launch"
        case "flag":
            return f"flag {step.percentage:g}%"
        case "batch":
            return f"{step.percentage:g}% of instances ({where})"
        case "env_deploy":
            return f"{step.env} ({where})"
        case _:
            return f"{step.percentage:g}% ({where})"
