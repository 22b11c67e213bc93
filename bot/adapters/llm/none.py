"""The embedded default: no language model. Every agent step falls back to the rules."""

from __future__ import annotations

from bot.ports.llm import AbstractLLM, AgentRun, AgentTask

NO_KEY = "no ANTHROPIC_API_KEY is set"


class NoLLM(AbstractLLM):
    model = "rules"

    def __init__(self, reason: str = NO_KEY) -> None:
        self.reason = reason

    @property
    def enabled(self) -> bool:
        return False

    def run(self, task: AgentTask) -> AgentRun:
        return AgentRun(fallback=self.reason)
