"""The agent in a Slack thread: both fakes (Slack's Web API, Anthropic's Messages API) over
real HTTP, the real SDKs, signed requests to the running app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from bot.adapters.llm.anthropic import AnthropicLLM
from bot.slack import blocks
from tests.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import ALICE, CHANNEL, DAVE, RunningApp, wait_until
from tests.slack_signing import event_body
from tests.test_agent import CAREFUL, narrator
from tests.test_slack_app import approval_message, start

SUMMARY = "shop 1.2.0 completed: every guardrail held from 5 % to 100 %."
PROPOSAL = {  # for the harness's release: shop 1.2.0, "faster checkout"
    **CAREFUL,
    "stages": [5, 25, 50, 100],  # 1 % of this small service would not gather evidence
    "guardrails": ["error_rate<0.8%"],
    "changelog": {**CAREFUL["changelog"], "fixes": []},
}


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def app(fake: FakeSlack, model: FakeAnthropic, tmp_path: Path) -> Iterator[RunningApp]:
    client = anthropic.Anthropic(api_key="test-key", base_url=model.url, max_retries=0, timeout=5)
    running = RunningApp(fake, tmp_path, llm=AnthropicLLM(client)).start()
    yield running
    running.stop()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def thread_text(fake: FakeSlack, thread_ts: str) -> str:
    return "\n".join(
        m.get("text", "") + str(m.get("blocks", "")) for m in fake.messages(CHANNEL, thread_ts)
    )


def test_the_agent_plans_explains_answers_and_summarises_in_the_thread(
    app: RunningApp, fake: FakeSlack, model: FakeAnthropic
) -> None:
    model.reply(message(tool_use("propose_plan", PROPOSAL)))
    top = start(app, fake)
    thread = top["ts"]
    wait_until(lambda: "planner: agent" in thread_text(fake, thread), what="the plan's audit")
    release_id = app.release().id

    model.reply(message(text("It waits for alice or bob to approve; the checks all passed.")))
    mention = {
        "type": "app_mention",
        "user": DAVE,
        "text": "<@U0BOT> why is it waiting?",
        "channel": CHANNEL,
        "ts": "1900000000.000100",
        "thread_ts": thread,
    }
    assert app.send(event_body(mention))[0] == 200
    wait_until(lambda: "waits for alice or bob" in thread_text(fake, thread), what="the answer")
    asked: Any = model.bodies()[-1]["messages"][0]["content"]
    assert 'source="slack_message"' in asked and "why is it waiting?" in asked

    model.fallback = narrator(SUMMARY, owner=ALICE)
    approval = approval_message(fake, thread)
    assert app.click(blocks.APPROVE, release_id, ALICE, approval, "approve") == 200
    final = app.run_until(lambda r: not r.is_active and not (r.narration and r.narration.due))
    assert final.status == "completed"
    upload = wait_until(
        lambda: [
            c for c in fake.calls("files.completeUploadExternal") if c.params.get("initial_comment")
        ],
        what="the report upload",
    )
    comment = upload[-1].params["initial_comment"]
    assert SUMMARY in comment and "LLM calls" in comment and "read from the cache" in comment
    assert "promoted" in thread_text(fake, thread)  # the explanations reached the thread
