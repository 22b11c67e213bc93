"""The Slack app end to end: signed HTTP requests to the running app, the fake Slack Web API
recording what the app posts, the engine moving on a virtual clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.slack import blocks
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import (
    ALICE,
    BOB,
    CHANNEL,
    DAVE,
    EVE,
    RunningApp,
    blocks_text,
    thread_messages,
    wait_until,
)
from tests.slack_signing import event_body, post, slash_command_body, view_submission_body

LINE = 'shop 1.2.0 risk=medium ticket=CHG-1 changes="faster checkout"'


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def app(fake: FakeSlack, tmp_path: Path) -> Iterator[RunningApp]:
    running = RunningApp(fake, tmp_path).start()
    yield running
    running.stop()


def card(fake: FakeSlack) -> dict[str, Any]:
    """The release's top message (its ts is the thread's), as it stands after updates."""
    tops = fake.messages(CHANNEL, thread_ts="")
    assert len(tops) == 1, f"{len(tops)} top-level messages"
    return tops[0]


def approval_message(fake: FakeSlack, thread_ts: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in fake.messages(CHANNEL, thread_ts)
                if blocks.APPROVAL_BLOCK in blocks_text(m.get("blocks", []))
            ),
            None,
        )

    found = wait_until(find, what="an approval request in the thread")
    assert isinstance(found, dict)
    return found


def start(app: RunningApp, fake: FakeSlack, line: str = LINE, user: str = DAVE) -> dict[str, Any]:
    status, _, seconds = app.command(line, user)
    assert status == 200 and seconds < 3
    wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    return card(fake)


def ephemeral(fake: FakeSlack, name: str) -> str:
    wait_until(lambda: fake.responses(name), what=f"an ephemeral reply on {name}")
    return " ".join(
        str(r.get("text", "")) + blocks_text(r.get("blocks") or []) for r in fake.responses(name)
    )


# -- signatures ---------------------------------------------------------------------------------


def test_a_bad_signature_or_a_stale_timestamp_gets_401(app: RunningApp, fake: FakeSlack) -> None:
    body = slash_command_body(LINE, DAVE, CHANNEL, response_url=fake.response_url("x"))
    assert app.send(body, secret="not-the-secret")[0] == 401
    assert app.send(body, timestamp=int(time.time()) - 600)[0] == 401
    assert fake.count("chat.postMessage") == 0
    assert app.services.store.listing() == []


# -- the whole flow -----------------------------------------------------------------------------


def test_a_release_runs_from_the_command_to_the_report_in_its_thread(
    app: RunningApp, fake: FakeSlack, contract_schema: dict[str, Any]
) -> None:
    top = start(app, fake)
    thread = top["ts"]
    approval = approval_message(fake, thread)
    assert ALICE in blocks_text(approval["blocks"])

    assert app.click(blocks.APPROVE, app.release().id, ALICE, approval, "approve") == 200
    wait_until(lambda: app.release().status != "awaiting_approval", what="the approval")
    updated = wait_until(
        lambda: blocks.AUDIT_BLOCK in blocks_text(fake.message(CHANNEL, approval["ts"])["blocks"]),
        what="the audit line",
    )
    assert updated
    after = fake.message(CHANNEL, approval["ts"])
    assert "actions" not in [b["type"] for b in after["blocks"]]
    assert ALICE in blocks_text(after["blocks"])

    final = app.run_until(lambda r: not r.is_active)
    assert final.status == "completed"
    upload = wait_until(
        lambda: [
            c
            for c in fake.calls("files.completeUploadExternal")
            if str(c.params.get("files", "")).find(".json") >= 0 or c.params.get("initial_comment")
        ],
        what="the report upload",
    )
    done = upload[-1].params
    assert done["channel_id"] == CHANNEL and done["thread_ts"] == thread
    assert done["initial_comment"]
    reports = [
        json.loads(c.body)
        for c in fake.calls("upload")
        if c.body.startswith(b"{") and b'"release_id"' in c.body
    ]
    assert len(reports) == 1
    jsonschema.validate(reports[0], contract_schema)
    assert reports[0]["release_id"] == final.id
    charts = [c for c in fake.calls("upload") if c.body.startswith(b"\x89PNG")]
    assert charts, "no stage chart was posted"
    replies = thread_messages(fake, thread)
    assert len(replies) >= 5
    assert all(c.params.get("channel") == CHANNEL for c in fake.calls("chat.update"))
    assert "completed" in blocks_text(card(fake)["blocks"]).lower()


def test_an_unauthorized_approval_is_refused_and_audited(app: RunningApp, fake: FakeSlack) -> None:
    top = start(app, fake)
    approval = approval_message(fake, top["ts"])
    release_id = app.release().id
    assert app.click(blocks.APPROVE, release_id, EVE, approval, "eve") == 200
    assert "cannot approve" in ephemeral(fake, "eve")
    assert app.release().status == "awaiting_approval"
    audit = [e for e in app.services.store.events(release_id) if e.action == "refused"]
    assert audit and audit[0].actor == EVE


def test_four_eyes_on_a_high_risk_release(app: RunningApp, fake: FakeSlack) -> None:
    top = start(app, fake, LINE.replace("risk=medium", "risk=high"), user=ALICE)
    approval = approval_message(fake, top["ts"])
    release_id = app.release().id
    app.click(blocks.APPROVE, release_id, ALICE, approval, "self")
    assert "segregation of duties" in ephemeral(fake, "self")
    assert app.release().status == "awaiting_approval"
    app.click(blocks.APPROVE, release_id, BOB, approval, "bob")
    wait_until(lambda: app.release().status != "awaiting_approval", what="Bob's approval")


def test_a_double_click_changes_state_once(app: RunningApp, fake: FakeSlack) -> None:
    top = start(app, fake)
    approval = approval_message(fake, top["ts"])
    release_id = app.release().id
    app.click(blocks.APPROVE, release_id, ALICE, approval, "first")
    app.click(blocks.APPROVE, release_id, ALICE, approval, "second")
    assert "not waiting for approval" in ephemeral(fake, "second")
    approvals = [e for e in app.services.store.events(release_id) if e.action == "approved"]
    assert len(approvals) == 1


def test_rollback_is_confirmed_then_rolls_back(app: RunningApp, fake: FakeSlack) -> None:
    top = start(app, fake)
    approval = approval_message(fake, top["ts"])
    app.click(blocks.APPROVE, app.release().id, ALICE, approval, "approve")
    app.run_until(lambda r: r.status == "rolling_out" and r.step_index >= 1)
    app.tick()
    rollback = next(
        e
        for b in card(fake)["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == blocks.ROLLBACK
    )
    assert rollback["style"] == "danger" and rollback["confirm"]["confirm"]["text"]
    app.click(blocks.ROLLBACK, app.release().id, DAVE, card(fake), "rollback")
    wait_until(lambda: app.release().status in ("rolling_back", "rolled_back"), what="rollback")
    final = app.run_until(lambda r: not r.is_active)
    assert final.status == "rolled_back" and final.rollback is not None
    assert final.rollback.actor == DAVE


def test_a_modal_submitted_with_errors_shows_them_on_the_fields(
    app: RunningApp, fake: FakeSlack
) -> None:
    values = {blocks.FIELD_BLOCKS["service"]: {blocks.FIELD_ACTIONS["service"]: "shop"}}
    body = view_submission_body(
        blocks.MODAL_CALLBACK, values, DAVE, json.dumps({"channel_id": CHANNEL})
    )
    status, answer = app.send(body)
    assert status == 200
    reply = json.loads(answer)
    assert reply["response_action"] == "errors"
    assert set(reply["errors"]) <= set(blocks.FIELD_BLOCKS.values())
    assert app.services.store.listing() == []


def test_a_restart_mid_release_continues_in_the_same_thread(
    fake: FakeSlack, tmp_path: Path
) -> None:
    first = RunningApp(fake, tmp_path).start()
    top = start(first, fake)
    approval = approval_message(fake, top["ts"])
    first.click(blocks.APPROVE, first.release().id, ALICE, approval, "approve")
    first.run_until(lambda r: r.status == "rolling_out" and r.step_index >= 1)
    first.stop()
    tops_before = [c for c in fake.calls("chat.postMessage") if not c.params.get("thread_ts")]

    second = RunningApp(fake, tmp_path).start()
    try:
        fake.reset()
        final = second.run_until(lambda r: not r.is_active)
        assert final.status == "completed"
        posts = fake.calls("chat.postMessage")
        assert posts and all(c.params.get("thread_ts") == top["ts"] for c in posts)
        assert {c.params["ts"] for c in fake.calls("chat.update")} == {top["ts"]}
        assert len(tops_before) == 1
    finally:
        second.stop()


# -- events, subcommands, health ----------------------------------------------------------------


def test_a_mention_in_the_thread_is_answered_there(app: RunningApp, fake: FakeSlack) -> None:
    top = start(app, fake)
    mention = {
        "type": "app_mention",
        "user": DAVE,
        "text": "<@U0BOT> why",
        "channel": CHANNEL,
        "ts": "1900000000.000100",
        "thread_ts": top["ts"],
    }
    assert app.send(event_body(mention))[0] == 200
    wait_until(
        lambda: any(
            "no metrics judged yet" in m["text"] for m in fake.messages(CHANNEL, top["ts"])
        ),
        what="the answer to why, in the thread",
    )
    outside = {**mention, "thread_ts": None, "ts": "1900000000.000200", "text": "<@U0BOT> status"}
    app.send(event_body(outside))
    wait_until(
        lambda: any("only act inside a release" in m["text"] for m in fake.messages(CHANNEL)),
        what="the refusal outside a thread",
    )


def test_the_app_home_lists_releases(app: RunningApp, fake: FakeSlack) -> None:
    start(app, fake)
    event = {"type": "app_home_opened", "user": DAVE, "channel": "D0DAVE", "tab": "home"}
    assert app.send(event_body(event))[0] == 200
    view = fake.wait_for("views.publish")[0].params
    assert view["user_id"] == DAVE
    assert app.release().id in blocks_text(view["view"]["blocks"]) or "shop" in blocks_text(
        view["view"]["blocks"]
    )


def test_subcommands_answer_ephemerally(app: RunningApp, fake: FakeSlack) -> None:
    app.command("help", name="help")
    assert "dry-run" in ephemeral(fake, "help")
    app.command("lock prod change freeze", user=ALICE, name="lock")
    assert "locked" in ephemeral(fake, "lock")
    app.command(LINE, name="refused")
    assert "prod" in ephemeral(fake, "refused") and "U0ALICE" in ephemeral(fake, "refused")
    assert app.services.store.listing() == []
    app.command("frobnicate", name="bad")
    assert ephemeral(fake, "bad")


def test_health_and_metrics(app: RunningApp, fake: FakeSlack) -> None:
    start(app, fake)
    app.tick(3)
    status, _, body = post(app.url.replace("/slack/events", "/healthz"), "", {}, method="GET")
    assert status == 200 and json.loads(body)["active_releases"] == 1
    status, _, text = post(app.url.replace("/slack/events", "/metrics"), "", {}, method="GET")
    assert status == 200
    assert "release_bot_ticks_total 3.0" in text
    assert 'release_bot_active_releases{status="awaiting_approval"} 1.0' in text
    assert 'release_bot_http_requests_total{path="/slack/events",status="200"}' in text


def test_a_rate_limited_post_is_retried_after_retry_after(app: RunningApp, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", times=1, status=429, retry_after=0)
    top = start(app, fake)
    assert top["ts"]
    assert fake.count("chat.postMessage") >= 2  # the 429 and its retry


def test_concurrent_commands_each_start_their_release(app: RunningApp, fake: FakeSlack) -> None:
    """Twenty commands at once: every one acked and stored (threads sharing one SQLite
    connection used to undo each other's savepoints)."""

    def line(i: int) -> str:
        return f"svc-{i:02d} 1.0.1 risk=low ticket=CHG-{i} artifact=r.local/svc-{i:02d}:1.0.1 changes=x"

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: app.command(line(i), name=f"c{i}"), range(20)))
    assert all(status == 200 for status, _, _ in results)
    app.wired.slack.background.shutdown(wait=True)
    assert len(app.services.store.listing(limit=100)) == 20
    assert not [r for i in range(20) for r in fake.responses(f"c{i}")]
