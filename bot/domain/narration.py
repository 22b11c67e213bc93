"""What the LLM agent contributed to a release, and what it cost.

Only judgement and text live here: the risk assessment with its reasons, the sorted
changelog, the report's summary and next actions. Facts stay with the release. ``due``
lists the moments (stage boundaries, anomalies, the end) still waiting for an explanation;
the service clears it after the agent (or the rules, on a fallback) has spoken, so a crash
in between only means the explanation is written on the next tick.
"""

from __future__ import annotations

from typing import Literal

from bot.domain.base import Model, MutableModel
from bot.domain.contract import Changelog, NextAction
from bot.domain.plan_policy import RiskAssessmentProposal

# Events worth an explanation in the thread: a stage boundary, an anomaly, the end.
NARRATED = frozenset(
    {
        "step_completed",
        "alert",
        "rollback_started",
        "release_completed",
        "rollback_completed",
        "release_failed",
        "rejected",
        "cancelled",
    }
)
FINAL = frozenset(
    {"release_completed", "rollback_completed", "release_failed", "rejected", "cancelled"}
)


class TokenUsage(Model):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def plus(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> TokenUsage:
        return TokenUsage(
            calls=self.calls + 1,
            input_tokens=self.input_tokens + input_tokens,
            output_tokens=self.output_tokens + output_tokens,
            cache_read_tokens=self.cache_read_tokens + cache_read,
            cache_write_tokens=self.cache_write_tokens + cache_write,
        )

    def describe(self) -> str:
        if not self.calls:
            return "no LLM calls"
        return (
            f"{self.calls} LLM call{'s' if self.calls != 1 else ''}: "
            f"{self.input_tokens:,} input tokens + {self.cache_read_tokens:,} read from the "
            f"cache + {self.cache_write_tokens:,} written to it, {self.output_tokens:,} output"
        )


class Narration(MutableModel):
    model: str  # the model that speaks for this release
    planner: Literal["agent", "rules"] = "rules"
    assessment: RiskAssessmentProposal | None = None
    changelog: Changelog | None = None
    summary: str | None = None
    summary_status: str | None = None  # the status the summary was written for
    next_actions: list[NextAction] = []
    due: list[str] = []
    usage: TokenUsage = TokenUsage()
