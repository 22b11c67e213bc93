"""The language model behind the agent (``AbstractLLM``), and the plain data it speaks: what
one agent task is, and what running it gave.

A task carries the variable prompt and the handlers of the tools it may use. Tool
*definitions* are static (``prompts/tools.json``) and sent whole with every call so that the
cached prefix is the same for every task; a tool this task has no handler for answers with an
error. A propose tool "finishes" the task when its handler accepts the proposal.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ToolError(Exception):
    """A tool call the model can correct: its message goes back as an ``is_error`` result."""


@dataclass(frozen=True)
class ToolOutcome:
    content: str  # what the model reads: JSON for read tools, the verdict for proposals
    error: bool = False  # sent with ``is_error``: a rejected proposal or a bad input
    accepted: Any = None  # a finishing tool's validated value: ends the task


ToolHandler = Callable[[dict[str, Any]], ToolOutcome]


@dataclass(frozen=True)
class AgentTask:
    purpose: str  # plan, read_request, explain, why, report: named in audits and usage
    prompt: str  # the variable part: inputs, quoted untrusted data, the ask
    handlers: dict[str, ToolHandler]
    finish: frozenset[str] = frozenset()  # tools whose accepted call ends the task
    text_ok: bool = False  # a plain text answer (end_turn) is the result
    max_iterations: int = 6
    max_rejections: int = 2  # rejected proposals before the rules take over
    max_tokens: int = 1024
    # The static prefix, the same for every task so that it is cached: every tool definition
    # (a tool this task has no handler for answers with an error) and the system prompt.
    tools: tuple[dict[str, Any], ...] = ()
    system: tuple[str, ...] = ()


@dataclass(frozen=True)
class LlmCall:
    """One Messages API call: what it cost and how it ended. ``at`` is the real time."""

    purpose: str
    model: str
    request_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    stop_reason: str
    milliseconds: int
    at: datetime


@dataclass
class AgentRun:
    """A task's outcome: the accepted value (or answer text), or why the rules must do it."""

    value: Any = None
    fallback: str | None = None  # e.g. "no ANTHROPIC_API_KEY is set", "overloaded (529)"
    calls: list[LlmCall] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # each rejected proposal's reason
    tools_used: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fallback is None


class AbstractLLM(abc.ABC):
    """The language model behind the agent: Anthropic, or none (the rules do every step).

    ``run`` never raises for the model's or the API's failures: it returns an ``AgentRun``
    whose ``fallback`` says why the rules must do this step."""

    model: str = "rules"

    @property
    def enabled(self) -> bool:
        return True

    @abc.abstractmethod
    def run(self, task: AgentTask) -> AgentRun: ...
