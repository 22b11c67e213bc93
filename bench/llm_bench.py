"""LLM calls and tokens for one typical canary release, and whether the prefix is cacheable.

A medium-risk canary of payments-api runs end to end with the agent against the local fake
of the Messages API (tests/fake_anthropic.py), through the real SDK. The fake plays a
typical, well-behaved model: it reads three tools in parallel and proposes a plan, reads
the canary analysis before each explanation, and proposes the report. Token counts are the
fake's estimate (about 4 characters per token; the real tokenizer differs by some tens of
per cent), so read them as orders of magnitude. The prefix check uses a stricter estimate
too (one token per word or punctuation mark, usually an overcount for English) and takes the
smaller: the prefix must clear the model's minimum under both.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic

from bot.adapters.llm.anthropic import AnthropicLLM
from bot.adapters.llm.settings import DEFAULT_MODEL
from bot.adapters.terminal import TerminalChat
from bot.agent import prompts
from bot.bootstrap import bootstrap
from bot.domain.release import Release
from bot.service import approve, reconcile_and_narrate, start_release
from tests.fake_anthropic import FakeAnthropic, message, text, tool_use

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout; fix refund rounding"'
# Minimum cacheable prefix by model family, from Anthropic's prompt-caching docs (2026).
MIN_CACHEABLE = {
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-sonnet-4-5": 1024,
}
PROPOSAL = {
    "assessment": {
        "deployment_risk": "medium",
        "blast_radius": "limited",
        "rollback_complexity": "simple",
        "data_risk": "none",
        "reasons": {
            k: "from the checks"
            for k in ("deployment_risk", "blast_radius", "rollback_complexity", "data_risk")
        },
    },
    "changelog": {
        "features": ["faster checkout"],
        "fixes": ["fix refund rounding"],
        "breaking_changes": [],
        "deprecations": [],
    },
    "rationale": "The rules' plan fits a medium-risk checkout change.",
}


def model(request: dict[str, Any]) -> Any:
    task = request["messages"][0]["content"].splitlines()[0]
    turn = len(request["messages"])
    if task == "Task: plan":
        if turn == 1:
            return message(
                tool_use("get_rule_plan", {}),
                tool_use("get_checks", {}),
                tool_use("get_dependency_health", {}),
            )
        return message(tool_use("propose_plan", PROPOSAL))
    if task == "Task: explain":  # the analysis is in the task: one call
        return message(text("Errors 0.21 % against 0.20 % on the baseline; p95 held. Promoted."))
    if task == "Task: report":
        if turn == 1:
            return message(tool_use("get_audit_trail", {"last": 40}))
        actions = [
            {
                "action": "watch the dashboards for 24 hours",
                "trigger": "metric",
                "scheduled_for": None,
                "owner": "@payments-oncall",
            }
        ]
        return message(
            tool_use(
                "propose_report",
                {
                    "summary": "payments-api 2.4.1 completed: every guardrail held at each step.",
                    "next_actions": actions,
                },
            )
        )
    raise AssertionError(task)


def strict_tokens(text_: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text_))


def main() -> int:
    with FakeAnthropic(fallback=model) as fake, tempfile.TemporaryDirectory() as tmp:
        client = anthropic.Anthropic(api_key="bench", base_url=fake.url, max_retries=0)
        wiring = bootstrap(
            Path(tmp) / "bench.db",
            clock_start=START,
            chat=TerminalChat(io.StringIO()),
            llm=AnthropicLLM(client, DEFAULT_MODEL),
        )
        services = wiring.services
        release = start_release(services, LINE, "dave")
        assert isinstance(release, Release)
        approve(services, release.id, "alice")
        for _ in range(3000):
            if not services.store.get(release.id).is_active:
                break
            assert wiring.virtual_clock is not None
            wiring.virtual_clock.advance(services.tick_seconds)
            reconcile_and_narrate(services)
        reconcile_and_narrate(services)
        done = services.store.get(release.id)
        rows = services.store.llm_calls(release.id)
        first = fake.bodies()[0]

    print(
        f"one {done.plan.risk}-risk canary of payments-api ({len(done.plan.steps)} steps, "
        f"status {done.status}), model {DEFAULT_MODEL}, fake Messages API\n"
    )
    print(
        f"{'purpose':<10} {'calls':>5} {'input':>8} {'cache read':>11} {'cache write':>12} "
        f"{'output':>7}"
    )
    by: dict[str, Counter[str]] = {}
    for r in rows:
        c = by.setdefault(str(r["purpose"]), Counter())
        c["calls"] += 1
        for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"):
            c[k] += int(str(r[k]))
    total: Counter[str] = Counter()
    for purpose, c in [*by.items(), ("total", total)]:
        if purpose != "total":
            total.update(c)
        print(
            f"{purpose:<10} {c['calls']:>5} {c['input_tokens']:>8,} {c['cache_read_tokens']:>11,} "
            f"{c['cache_write_tokens']:>12,} {c['output_tokens']:>7,}"
        )

    prefix = prompts.static_prefix_text()
    rough, strict = -(-len(prefix) // 4), strict_tokens(prefix)
    low = min(rough, strict)
    needed = MIN_CACHEABLE.get(DEFAULT_MODEL, 4096)
    marked = first["tools"][-1].get("cache_control") == {"type": "ephemeral"} and first["system"][
        -1
    ].get("cache_control") == {"type": "ephemeral"}
    print(
        f"\nstatic prefix (tools + system): {len(prefix):,} chars, ~{rough:,} tokens at 4 "
        f"chars/token, ~{strict:,} counting words and marks"
    )
    print(f"marked cacheable (cache_control on the last tool and the last system block): {marked}")
    print(
        f"long enough for {DEFAULT_MODEL} (minimum {needed:,}): {low >= needed} "
        f"(lower estimate {low:,})"
    )
    calls_ok = done.narration is not None and done.narration.usage.calls == len(rows)
    print(f"usage on the release matches the call log: {calls_ok}")
    return 0 if marked and low >= needed and calls_ok and done.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
