"""Deterministic checks on the agent's text and judgement: what it writes is grounded in
the facts or goes back to it as a tool error with the reason.

The model may word things; it may not invent changes, contradict the outcome, make up
numbers or people, or post links, broadcasts and commands into the thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.agent.task import ToolError
from bot.domain.contract import Changelog, NextAction
from bot.domain.release import Release

SUMMARY_WORDS = 200
EXPLANATION_CHARS = 900
# Words that must appear in a final summary, by outcome: the text may not contradict the facts.
OUTCOME_WORDS = {
    "completed": ("complete",),
    "rolled_back": ("rolled back", "rollback", "roll back"),
    "failed": ("fail", "block", "stopped", "rejected", "cancel"),
}
FORBIDDEN = re.compile(
    r"```|<!(?:channel|here|everyone)|@(?:channel|here|everyone)\b|\bkubectl\b|\bhelm\s|^\s*\$ ",
    re.IGNORECASE | re.MULTILINE,
)
URL = re.compile(r"https?://\S+")
WORD = re.compile(r"[a-z0-9]{3,}")


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _grounded(item: str, source_words: set[str]) -> bool:
    """Most of an item's words come from the changes: sorting, not inventing."""
    words = WORD.findall(item.lower())
    return bool(words) and sum(w in source_words for w in words) >= max(1, len(words) // 2)


def check_changelog(raw: Any, changes: str) -> Changelog:
    try:
        log = Changelog.model_validate(raw)
    except ValidationError as exc:
        raise ToolError(f"changelog: {_reason(exc)}") from None
    items = [*log.features, *log.fixes, *log.breaking_changes, *log.deprecations]
    source = set(WORD.findall(changes.lower()))
    if not items:
        raise ToolError("changelog: every change must be sorted into one of the four lists")
    if len(items) > 50 or any(not i.strip() or len(i) > 300 for i in items):
        raise ToolError("changelog: at most 50 items, each 1 to 300 characters")
    invented = [i for i in items if not _grounded(i, source)]
    if invented:
        raise ToolError(
            "changelog: items must use the words of the changes; not found: "
            + "; ".join(invented[:3])
        )
    return log


def clean_text(text: str, limit: int = EXPLANATION_CHARS) -> str:
    """A model's free text made safe to post: no broadcasts or code, bounded length."""
    if FORBIDDEN.search(text):
        raise ToolError("the text has a broadcast mention, a command or code; write plain prose")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class AgentReport:
    summary: str
    next_actions: list[NextAction]


def check_report(args: dict[str, Any], release: Release, people: set[str]) -> AgentReport:
    summary = str(args.get("summary", "")).strip()
    if not summary:
        raise ToolError("summary: empty")
    if len(summary.split()) > SUMMARY_WORDS:
        raise ToolError(f"summary: {len(summary.split())} words; the limit is {SUMMARY_WORDS}")
    summary = clean_text(summary, limit=2000)
    if URL.search(summary):
        raise ToolError("summary: no links; the report carries the runbook and dashboards")
    words = OUTCOME_WORDS.get(release.status)
    if words and not any(w in summary.lower() for w in words):
        raise ToolError(
            f"summary: the release is {release.status.replace('_', ' ')}; say so "
            f"(use one of: {', '.join(words)})"
        )
    raw = args.get("next_actions")
    if not isinstance(raw, list) or not 1 <= len(raw) <= 5:
        raise ToolError("next_actions: give one to five actions")
    actions = []
    for i, item in enumerate(raw):
        try:
            action = NextAction.model_validate(item)
        except ValidationError as exc:
            raise ToolError(f"next_actions[{i}]: {_reason(exc)}") from None
        if action.owner not in people:
            raise ToolError(
                f"next_actions[{i}].owner: {action.owner!r} is not named in the facts; "
                f"use one of {sorted(people)}"
            )
        actions.append(action.model_copy(update={"action": clean_text(action.action, 300)}))
    return AgentReport(summary, actions)
