"""The Anthropic fake, driven by the real anthropic SDK so its wire format is what we test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from tests.fake_anthropic import (
    COUNT_TOKENS,
    MESSAGES,
    FakeAnthropic,
    delayed,
    error,
    estimate_input_tokens,
    max_tokens,
    message,
    rate_limited,
    raw,
    refusal,
    text,
    tool_results,
    tool_use,
)

MODEL = "claude-haiku-4-5"
USER = [{"role": "user", "content": "Is release r42 healthy?"}]
#: Well above the 4096-token minimum for a Haiku-class model at ~4 chars per token.
LONG_SYSTEM = "You are release-bot. Follow the runbook carefully. " * 400
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_status",
        "description": "Current state of a release.",
        "input_schema": {
            "type": "object",
            "properties": {"release": {"type": "string"}},
            "required": ["release"],
        },
    },
    {
        "name": "get_checks",
        "description": "Quality gate results of a release.",
        "input_schema": {
            "type": "object",
            "properties": {"release": {"type": "string"}},
            "required": ["release"],
        },
    },
]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAnthropic]:
    """No real key, profile or config dir can reach the SDK."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in list(os.environ):
        if key.startswith("ANTHROPIC_"):
            monkeypatch.delenv(key)
    with FakeAnthropic() as running:
        yield running


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        api_key="test-key", base_url=fake.url, max_retries=0, timeout=2.0
    ) as sdk:
        yield sdk


def create(client: anthropic.Anthropic, **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "messages": USER, **kwargs}
    reply: anthropic.types.Message = client.messages.create(**params)
    return reply


def test_text_reply_through_the_sdk(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(message(text("All gates are green.")))

    reply = create(client, system="You are release-bot.")

    assert reply.stop_reason == "end_turn"
    assert reply.role == "assistant"
    assert reply.model == MODEL
    assert reply.id.startswith("msg_")
    assert [b.type for b in reply.content] == ["text"]
    assert isinstance(reply.content[0], anthropic.types.TextBlock)
    assert reply.content[0].text == "All gates are green."
    assert reply.usage.input_tokens == estimate_input_tokens(fake.last().json or {})
    assert reply.usage.output_tokens == 5  # 20 characters
    assert reply.usage.cache_creation_input_tokens == 0
    assert reply.usage.cache_read_input_tokens == 0
    assert reply._request_id == fake.last().request_id
    request = fake.last()
    assert request.path == MESSAGES
    assert request.json == {
        "max_tokens": 256,
        "messages": USER,
        "model": MODEL,
        "system": "You are release-bot.",
    }
    # 2.13 sends the key as a bearer token, not x-api-key.
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.headers["anthropic-version"]
    fake.assert_done()


def test_parallel_tool_use_then_end_turn(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        results = {r["tool_use_id"]: r["content"] for r in tool_results(request)}
        return message(text(f"status={results['toolu_a']} checks={results['toolu_b']}"))

    fake.reply(
        message(
            text("Let me look."),
            tool_use("get_status", {"release": "r42"}, id="toolu_a"),
            tool_use("get_checks", {"release": "r42"}, id="toolu_b"),
        ),
        answer,
    )

    first = create(client, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if isinstance(b, anthropic.types.ToolUseBlock)]
    assert [(c.id, c.name, c.input) for c in calls] == [
        ("toolu_a", "get_status", {"release": "r42"}),
        ("toolu_b", "get_checks", {"release": "r42"}),
    ]
    outputs = {"get_status": "canary 10%", "get_checks": "3/3 passed"}
    history = [
        *USER,
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": c.id, "content": outputs[c.name]}
                for c in calls
            ],
        },
    ]
    second = create(client, tools=TOOLS, messages=history)

    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text == "status=canary 10% checks=3/3 passed"
    sent = fake.last().json or {}
    assert [(r["tool_use_id"], r["content"]) for r in tool_results(sent)] == [
        ("toolu_a", "canary 10%"),
        ("toolu_b", "3/3 passed"),
    ]
    # The SDK serialised the assistant turn's pydantic blocks back to wire JSON.
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_a",
        "name": "get_status",
        "input": {"release": "r42"},
    }
    assert fake.count() == 2
    fake.assert_done()


def test_tool_use_without_tool_result_is_a_400_that_keeps_the_script(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.reply(message(text("unused")))
    broken = [
        *USER,
        {"role": "assistant", "content": [tool_use("get_status", {"release": "r1"}, id="toolu_x")]},
        {"role": "user", "content": "well?"},
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(client, messages=broken)
    assert "toolu_x" in str(caught.value.api_message)
    assert fake.pending() == 1


def test_overloaded_then_success_is_retried_quickly(fake: FakeAnthropic) -> None:
    fake.reply(error(529, "overloaded_error"), message(text("ok")))
    with anthropic.Anthropic(
        api_key="test-key", base_url=fake.url, max_retries=1, timeout=2.0
    ) as sdk:
        reply = create(sdk)

    assert reply.content[0].type == "text"
    assert fake.count() == 2
    assert [r.headers["x-stainless-retry-count"] for r in fake.calls()] == ["0", "1"]


def test_overloaded_without_retries_raises(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.reply(error(529, "overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.OverloadedError) as caught:
        create(client)
    err = caught.value
    assert isinstance(err, anthropic.InternalServerError)
    assert err.status_code == 529
    assert err.type == "overloaded_error"
    assert err.api_message == "Overloaded"
    assert err.request_id == fake.last().request_id
    assert fake.count() == 1


def test_rate_limit_raises_rate_limit_error(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.reply(rate_limited())
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(client)
    assert caught.value.status_code == 429
    assert caught.value.type == "rate_limit_error"


def test_refusal(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(refusal(category="cyber"))
    reply = create(client)
    assert reply.stop_reason == "refusal"
    assert reply.content == []
    assert reply.stop_details is not None
    assert reply.stop_details.category == "cyber"


def test_max_tokens(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(max_tokens("Rolling back because"))
    reply = create(client, max_tokens=16)
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 16


def test_prompt_caching_usage(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    prefix = len(LONG_SYSTEM) // 4
    assert prefix >= 4096
    fake.reply(message(text("one")), message(text("two")), message(text("three")))

    first = create(client, system=system)
    second = create(client, system=system)
    other_question = create(
        client, system=system, messages=[{"role": "user", "content": "And r43?"}]
    )

    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == prefix
    assert second.usage.input_tokens == first.usage.input_tokens  # the uncached tail
    assert second.usage.input_tokens == estimate_input_tokens({"messages": USER})
    assert other_question.usage.cache_read_input_tokens == prefix
    sent = fake.last().json or {}
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_short_or_changed_prefix_is_not_read_from_cache(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    short = [
        {"type": "text", "text": "You are release-bot.", "cache_control": {"type": "ephemeral"}}
    ]
    tools = [*TOOLS[:-1], {**TOOLS[-1], "cache_control": {"type": "ephemeral"}}]
    long_system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    fake.reply(*(message(text(str(i))) for i in range(4)))

    for _ in range(2):
        usage = create(client, system=short).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    # Tools come before system in the prefix: a different tool list is a different prefix.
    with_tools = create(client, system=long_system, tools=tools).usage
    without = create(client, system=long_system).usage
    assert (with_tools.cache_creation_input_tokens or 0) > 0
    assert without.cache_read_input_tokens == 0
    assert (without.cache_creation_input_tokens or 0) > 0


def test_missing_credentials_or_version_are_rejected(fake: FakeAnthropic) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": USER}
    url = fake.url + MESSAGES
    no_key = httpx2.post(url, json=body, headers={"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["type"] == "error"
    assert no_key.json()["error"]["type"] == "authentication_error"
    assert no_key.headers["request-id"].startswith("req_")

    no_version = httpx2.post(url, json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["type"] == "invalid_request_error"
    assert fake.pending() == 0
    assert fake.unscripted == []


def test_count_tokens(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    params: dict[str, Any] = {
        "model": MODEL,
        "system": LONG_SYSTEM,
        "tools": TOOLS,
        "messages": USER,
    }
    counted = client.messages.count_tokens(**params)
    assert counted.input_tokens == estimate_input_tokens(fake.last(COUNT_TOKENS).json or {})
    assert counted.input_tokens > len(LONG_SYSTEM) // 4
    assert fake.count() == 0
    assert fake.count(COUNT_TOKENS) == 1


def test_empty_script_fails_loudly_without_retries(fake: FakeAnthropic) -> None:
    with (
        anthropic.Anthropic(
            api_key="test-key", base_url=fake.url, max_retries=2, timeout=2.0
        ) as sdk,
        pytest.raises(anthropic.InternalServerError, match="script is empty"),
    ):
        create(sdk)
    assert fake.count() == 1
    assert len(fake.unscripted) == 1
    with pytest.raises(AssertionError, match="no scripted reply"):
        fake.assert_done()


def test_malformed_replies(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply(
        raw("{not json"),
        raw("<html>bad gateway</html>", content_type="text/html"),
        message(tool_use("get_status", "r42")),
    )
    # A JSON content type with a body that is not JSON: the stdlib error, not an SDK one.
    with pytest.raises(json.JSONDecodeError):
        create(client)
    assert fake.count() == 1  # not retried
    # Not JSON at all: no error, the SDK hands back the text where a Message was promised.
    assert create(client) == "<html>bad gateway</html>"  # type: ignore[comparison-overlap]
    # A tool input that is not an object is not validated either.
    block = create(client).content[0]
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.input == "r42"  # type: ignore[comparison-overlap]


def test_slow_reply_times_out(fake: FakeAnthropic) -> None:
    fake.reply(delayed(message(text("late")), 5.0))
    with (
        anthropic.Anthropic(
            api_key="test-key", base_url=fake.url, max_retries=0, timeout=0.2
        ) as sdk,
        pytest.raises(anthropic.APITimeoutError) as caught,
    ):
        create(sdk)
    assert isinstance(caught.value, anthropic.APIConnectionError)


def test_client_from_environment(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake.env(api_key="env-key").items():
        monkeypatch.setenv(name, value)
    fake.reply(lambda request: message(text(f"model {request['model']}")))
    with anthropic.Anthropic(max_retries=0, timeout=2.0) as sdk:
        reply = create(sdk)
    assert reply.content[0].type == "text"
    assert reply.content[0].text == f"model {MODEL}"
    assert fake.last().headers["authorization"] == "Bearer env-key"
