"""The Slack app end to end: signed HTTP requests to the running app, the fake Slack Web API
recording what the app posts, the engine moving on a virtual clock."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jsonschema
import pytest

from bot.slack import blocks
from bot.slack.views import release_modal
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import (
    ALICE,
    BOB,
    CHANNEL,
    DAVE,
    EVE,
    SECRET,
    RunningApp,
    blocks_text,
    thread_messages,
    wait_until,
    write_config,
)
from tests.slack_signing import (
    TRIGGER_ID,
    block_action_body,
    event_body,
    post,
    signed_headers,
    slash_command_body,
    view_submission_body,
)

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
    status, _, _ = app.command(line, user)
    assert status == 200  # acked; how fast is bench-ack's to measure, not a test's
    wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    top = card(fake)
    # The card is on Slack before the bot has recorded its ts as the release's thread; a
    # mention in the thread before then is answered as one outside any release's thread.
    threads = app.wired.slack.threads
    wait_until(lambda: threads.find(CHANNEL, top["ts"]), what="the release's thread recorded")
    return top


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


def test_a_lines_traffic_is_served_by_the_simulated_fleet(app: RunningApp, fake: FakeSlack) -> None:
    # As from `release-bot run`: the plan is made for 2,000 rps, and the fleet serves them.
    start(app, fake, LINE + " traffic=2000rps")
    assert "traffic: 2,000 rps, from the line's traffic=" in app.release().plan.notes
    fleet = app.wired.wiring.fleet
    assert fleet.profile("shop").rps == 2000  # one region
    recent = fleet.recent_traffic("shop", ["us-east-1"], app.services.clock.now())
    assert recent is not None and recent.rps == pytest.approx(2000, rel=0.05)
    # A line refused while that release runs leaves its load alone.
    app.command('shop 1.3.0 risk=low ticket=CHG-2 changes="x" traffic=50rps', name="again")
    assert "active release" in ephemeral(fake, "again")
    assert fleet.profile("shop").rps == 2000


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
    # Both are acked at once and run on the app's pool: either may be the one that lands.
    refused = wait_until(
        lambda: [n for n in ("first", "second") if fake.responses(n)],
        what="an ephemeral reply on one of the clicks",
    )
    assert len(refused) == 1
    assert "not waiting for approval" in ephemeral(fake, refused[0])
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


@pytest.fixture
def app_of_many(fake: FakeSlack, tmp_path: Path) -> Iterator[RunningApp]:
    """The app with twenty more services, svc-00 to svc-19, and one named ``help``."""
    write_config(tmp_path, [f"svc-{i:02d}" for i in range(20)] + ["help"])
    running = RunningApp(fake, tmp_path).start()
    yield running
    running.stop()


def test_concurrent_commands_each_start_their_release(
    app_of_many: RunningApp, fake: FakeSlack
) -> None:
    """Twenty commands at once: every one acked and stored (threads sharing one SQLite
    connection used to undo each other's savepoints)."""
    app = app_of_many

    def line(i: int) -> str:
        return f"svc-{i:02d} 1.0.1 risk=low ticket=CHG-{i} artifact=r.local/svc-{i:02d}:1.0.1 changes=x"

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: app.command(line(i), name=f"c{i}"), range(20)))
    assert all(status == 200 for status, _, _ in results)
    app.wired.slack.background.shutdown(wait=True)
    assert len(app.services.store.listing(limit=100)) == 20
    assert not [r for i in range(20) for r in fake.responses(f"c{i}")]


# -- the form, end to end -----------------------------------------------------------------------

FIELD_OF = {**{b: k for k, b in blocks.FIELD_BLOCKS.items()}, blocks.CHANNEL_BLOCK: "channel"}


def form_state(view: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """``view.state.values`` as Slack sends them on submit: every input of the view the app
    opened, under its block_id and action_id, holding the answer or else what it was opened
    with (Slack sends the untouched inputs too, empty ones as null)."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element, answer = block["element"], answers.get(FIELD_OF[block["block_id"]])
        state: dict[str, Any] = {"type": element["type"]}
        if element["type"] == "static_select":
            chosen = [o for o in element["options"] if o["value"] == answer]
            assert answer is None or chosen, f"{answer!r} is not an option of {block['block_id']}"
            state["selected_option"] = chosen[0] if chosen else element.get("initial_option")
        elif element["type"] == "checkboxes":
            chosen = [o for o in element["options"] if o["value"] in (answer or [])]
            state["selected_options"] = chosen or element.get("initial_options", [])
        elif element["type"] == "conversations_select":
            state["selected_conversation"] = answer or element.get("initial_conversation")
        else:
            state["value"] = answer if answer is not None else element.get("initial_value")
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def submission(view: Mapping[str, Any], answers: Mapping[str, Any], user: str = DAVE) -> str:
    """The view_submission Slack posts for ``view`` filled with ``answers`` (form keys)."""
    body = view_submission_body(
        view["callback_id"], form_state(view, answers), user, view.get("private_metadata", "")
    )
    payload = json.loads(parse_qs(body)["payload"][0])
    payload["view"]["blocks"] = view["blocks"]  # Slack echoes the view's blocks
    return urlencode({"payload": json.dumps(payload)})


def initial(view: Mapping[str, Any], key: str) -> Any:
    """What the form shows in field ``key`` when it opens (None: empty)."""
    block = next(b for b in view["blocks"] if b.get("block_id") == blocks.FIELD_BLOCKS[key])
    element = block["element"]
    if "initial_option" in element:
        return element["initial_option"]["value"]
    if "initial_options" in element:
        return [o["value"] for o in element["initial_options"]]
    return element.get("initial_value")


def test_the_form_opens_and_a_valid_submission_starts_the_release(
    app: RunningApp, fake: FakeSlack
) -> None:
    status, answer, _ = app.command("", name="form")
    assert status == 200 and answer == ""  # acked empty: the form is the answer
    opened = fake.wait_for("views.open")[0].params
    assert opened["trigger_id"] == TRIGGER_ID
    view = opened["view"]
    assert view["callback_id"] == blocks.MODAL_CALLBACK
    assert json.loads(view["private_metadata"]) == {"channel_id": CHANNEL}
    assert blocks.CHANNEL_BLOCK not in blocks_text(view["blocks"])  # known: not asked

    answers = {
        "service": "shop",
        "version": "1.2.0",
        "risk": "medium",
        "ticket": "CHG-7",
        "changes": "- faster checkout\n- fix refund rounding",
        "guardrails": "p95 < 250ms, error_rate<0.5%",
    }
    status, reply = app.send(submission(view, answers))
    assert status == 200
    assert reply == "" or json.loads(reply) == {"response_action": "clear"}  # the form closes

    top = wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    assert len(top) == 1 and "shop" in blocks_text(top[0]["blocks"])
    release = app.release()
    package = release.request.release_package
    assert (release.request.service, package.version, package.risk) == ("shop", "1.2.0", "medium")
    assert package.change_ticket == "CHG-7"
    assert package.changes == "faster checkout; fix refund rounding"
    assert [g.value for g in release.request.guardrails.latency] == [250]
    assert release.request.guardrails.error_rate.value == 0.5
    assert release.channel == CHANNEL and release.requested_by == DAVE
    assert app.services.store.get(release.id).status == "awaiting_approval"
    assert not fake.calls("chat.postEphemeral")  # nothing went wrong to say


def test_a_form_service_named_like_a_subcommand_is_released_not_run(
    app_of_many: RunningApp, fake: FakeSlack
) -> None:
    """The form's line is a release: service ``help`` is released, not read as /release help."""
    app = app_of_many
    view = release_modal({"service": "help"}, CHANNEL, ["shop"])  # one not offered is typed
    answers = {"service": "help", "version": "1.0.0", "risk": "low", "changes": "x",
               "artifact": "registry.local/help:1.0.0"}  # fmt: skip
    assert app.send(submission(view, answers))[0] == 200
    wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    assert app.release().request.service == "help"
    assert not fake.calls("chat.postEphemeral")  # no help text


def test_a_form_opened_without_a_channel_asks_for_one(app: RunningApp, fake: FakeSlack) -> None:
    view = release_modal({}, "", ["shop"])  # as opened from outside a conversation
    answers = {"service": "shop", "version": "1.2.0", "risk": "low", "changes": "x"}
    status, reply = app.send(submission(view, answers))
    assert status == 200
    assert json.loads(reply) == {
        "response_action": "errors",
        "errors": {blocks.CHANNEL_BLOCK: "pick the channel the release posts in"},
    }
    legacy = {
        **view,
        "blocks": [b for b in view["blocks"] if b["block_id"] != blocks.CHANNEL_BLOCK],
    }
    status, reply = app.send(submission(legacy, answers))
    assert list(json.loads(reply)["errors"]) == [blocks.FIELD_BLOCKS["service"]]
    assert app.services.store.listing() == []

    status, reply = app.send(submission(view, {**answers, "channel": CHANNEL}))
    assert status == 200 and reply == ""
    wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    assert app.release().channel == CHANNEL


def test_an_incomplete_line_offers_the_form_prefilled(app: RunningApp, fake: FakeSlack) -> None:
    app.command("shop 1.2.0 risk=high ticket=CHG-9 p95<250ms", name="short")
    assert "Changes included" in ephemeral(fake, "short")
    reply = fake.responses("short")[0]
    assert reply["response_type"] == "ephemeral"
    form = next(
        e
        for b in reply["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == blocks.OPEN_MODAL
    )
    click = block_action_body(
        blocks.OPEN_MODAL,
        form["value"],
        DAVE,
        CHANNEL,
        "1900000000.000300",
        response_url=fake.response_url("click"),
        block_id=blocks.FORM_BLOCK,
    )
    assert app.send(click)[0] == 200
    opened = fake.wait_for("views.open")[0].params
    assert opened["trigger_id"] == TRIGGER_ID
    view = opened["view"]
    assert initial(view, "service") == "shop"
    assert initial(view, "version") == "1.2.0"
    assert initial(view, "risk") == "high"
    assert initial(view, "ticket") == "CHG-9"
    assert initial(view, "guardrails") == "p95<250ms"
    assert initial(view, "changes") is None  # what was missing is left to fill in
    assert json.loads(view["private_metadata"]) == {"channel_id": CHANNEL}

    assert app.send(submission(view, {"changes": "faster checkout"}))[0] == 200
    wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    package = app.release().request.release_package
    assert (package.risk, package.change_ticket, package.changes) == (
        "high",
        "CHG-9",
        "faster checkout",
    )
    assert [g.value for g in app.release().request.guardrails.latency] == [250]


# -- the App Home follows the releases ------------------------------------------------------------


def home_of(fake: FakeSlack, user: str) -> str:
    """The user's Home tab as last published ("" if never)."""
    published = [c for c in fake.calls("views.publish") if c.params.get("user_id") == user]
    return blocks_text(published[-1].params["view"]["blocks"]) if published else ""


def open_home(app: RunningApp, user: str) -> None:
    event = {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"}
    assert app.send(event_body(event))[0] == 200


def test_the_app_home_is_republished_as_the_release_moves(fake: FakeSlack, tmp_path: Path) -> None:
    app = RunningApp(fake, tmp_path, release_bot_home_interval=0).start()
    try:
        open_home(app, DAVE)
        wait_until(lambda: "Nothing is rolling out" in home_of(fake, DAVE), what="the home")
        top = start(app, fake)
        wait_until(lambda: "awaiting approval" in home_of(fake, DAVE), what="the new release")
        assert app.release().id in home_of(fake, DAVE)

        approval = approval_message(fake, top["ts"])
        app.click(blocks.APPROVE, app.release().id, ALICE, approval, "approve")
        moved = wait_until(
            lambda: (s := app.release().status) != "awaiting_approval" and s,
            what="the approval",
        )
        words = blocks.STATUS[moved][1]
        wait_until(
            lambda: words in home_of(fake, DAVE) and "awaiting approval" not in home_of(fake, DAVE),
            what=f"the home showing {words}",
        )
        # Only those who opened the tab get it: Alice clicked but never opened it.
        assert {c.params["user_id"] for c in fake.calls("views.publish")} == {DAVE}
    finally:
        app.stop()


def test_a_busy_tick_does_not_flood_views_publish(fake: FakeSlack, tmp_path: Path) -> None:
    """Within the interval after a publish, changes wait (a trailing publish, cancelled here
    by the stop): dozens of delivered batches, one views.publish."""
    app = RunningApp(fake, tmp_path, release_bot_home_interval=60).start()
    try:
        open_home(app, DAVE)
        fake.wait_for("views.publish")
        top = start(app, fake)
        app.click(blocks.APPROVE, app.release().id, ALICE, approval_message(fake, top["ts"]), "a")
        app.run_until(lambda r: r.status == "rolling_out" and r.step_index >= 2)
        app.wired.slack.background.shutdown(wait=True)  # every delivery and flush has run
        # several batches were delivered (how many of the ticks' events share one depends on
        # when the click's own delivery ran), and the Home tab was published once
        assert len(thread_messages(fake, top["ts"])) >= 3
        assert fake.count("views.publish") == 1
    finally:
        app.stop()


# -- Slack's retried deliveries -----------------------------------------------------------------


def test_a_retried_mention_is_answered_once(
    app: RunningApp, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="handlers.replay")
    top = start(app, fake)
    mention = {
        "type": "app_mention",
        "user": DAVE,
        "text": "<@U0BOT> why",
        "channel": CHANNEL,
        "ts": "1900000000.000100",
        "thread_ts": top["ts"],
    }
    body = event_body(mention, event_id="Ev0SLOWACK1")

    def answers() -> list[dict[str, Any]]:
        return [m for m in fake.messages(CHANNEL, top["ts"]) if "no metrics" in m["text"]]

    assert app.send(body)[0] == 200
    wait_until(answers, what="the answer to why")
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    status, _, _ = post(app.url, body, {**signed_headers(body, SECRET), **retry})
    assert status == 200  # acked, so Slack stops retrying
    wait_until(  # the replay check runs after the ack, with the work
        lambda: any(
            "Ev0SLOWACK1 delivered again (retry 1" in r.getMessage() for r in caplog.records
        ),
        what="the retry ignored",
    )

    # A retry of a delivery we never received is the first we hear of it: answered.
    status_mention = {**mention, "ts": "1900000000.000200", "text": "<@U0BOT> status"}
    first_heard = event_body(status_mention, event_id="Ev0MISSED01")
    status, _, _ = post(app.url, first_heard, {**signed_headers(first_heard, SECRET), **retry})
    assert status == 200
    status_line = f"{app.release().id}: awaiting approval"
    wait_until(
        lambda: any(m["text"].startswith(status_line) for m in fake.messages(CHANNEL, top["ts"])),
        what="the answer to the retried status",
    )
    app.wired.slack.background.shutdown(wait=True)  # anything still queued has run
    assert len(answers()) == 1
