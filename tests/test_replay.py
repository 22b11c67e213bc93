"""Replay protection: a signed Slack request posted again inside Slack's five-minute window
is answered 200 and acts on nothing, whichever process sharing the database receives it;
after the window Bolt's timestamp check refuses it. Real signed HTTP requests to the
running app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.adapters.sqlite import seen
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.seen import SqliteSeenRequests
from bot.serve.wiring import wire
from bot.slack import blocks
from tests.fake_slack import FakeSlack
from tests.fake_socket_mode import FakeSocketMode
from tests.slack_app_harness import (
    ALICE,
    BOB,
    CHANNEL,
    CLOCK_START,
    DAVE,
    SECRET,
    RunningApp,
    blocks_text,
    settings_for,
    wait_until,
)
from tests.slack_signing import post, signed_headers, slash_command_body

LINE = 'shop 1.2.0 risk=medium ticket=CHG-1 changes="faster checkout"'
Signed = tuple[str, dict[str, str]]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def app(fake: FakeSlack, tmp_path: Path) -> Iterator[RunningApp]:
    running = RunningApp(fake, tmp_path).start()
    yield running
    running.stop()


def signed(body: str, timestamp: int | None = None) -> Signed:
    """A request as Slack signed it: what an attacker who captured it can post again."""
    return body, signed_headers(body, SECRET, timestamp)


def deliver(app: RunningApp, request: Signed) -> int:
    body, headers = request
    return post(app.url, body, headers)[0]


def settled(app: RunningApp) -> None:
    """Every piece of work handed over behind an ack has run."""
    app.wired.slack.background.shutdown(wait=True)


def card(fake: FakeSlack) -> dict[str, Any]:
    tops = fake.messages(CHANNEL, thread_ts="")
    assert len(tops) == 1, f"{len(tops)} top-level messages"
    return tops[0]


def rolling_out(app: RunningApp, fake: FakeSlack) -> str:
    """A release approved and rolling out; its ID."""
    assert app.command(LINE, DAVE)[0] == 200
    top = wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the card")[0]

    def approval() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in fake.messages(CHANNEL, top["ts"])
                if blocks.APPROVAL_BLOCK in blocks_text(m.get("blocks", []))
            ),
            None,
        )

    request = wait_until(approval, what="the approval request")
    assert app.click(blocks.APPROVE, app.release().id, ALICE, request, "approve") == 200
    return app.run_until(lambda r: r.status == "rolling_out").id


def click(app: RunningApp, fake: FakeSlack, action_id: str, user: str, name: str) -> Signed:
    return signed(app.click_body(action_id, app.release().id, user, card(fake), name))


def status_is(app: RunningApp, status: str) -> None:
    wait_until(lambda: app.release().status == status, what=f"the release {status}")


def actions(app: RunningApp, release_id: str, action: str) -> int:
    return sum(1 for e in app.services.store.events(release_id) if e.action == action)


def test_a_replayed_resume_does_not_undo_a_later_pause(app: RunningApp, fake: FakeSlack) -> None:
    release_id = rolling_out(app, fake)
    assert deliver(app, click(app, fake, blocks.PAUSE, ALICE, "pause")) == 200
    status_is(app, "paused")
    resume = click(app, fake, blocks.RESUME, BOB, "resume")
    assert deliver(app, resume) == 200
    status_is(app, "rolling_out")
    assert deliver(app, click(app, fake, blocks.PAUSE, ALICE, "pause-again")) == 200
    status_is(app, "paused")

    assert deliver(app, resume) == 200  # the replay: acked, so nothing tells it apart
    settled(app)
    assert app.release().status == "paused"
    assert actions(app, release_id, "resumed") == 1


def test_a_replayed_pause_does_not_pause_again(app: RunningApp, fake: FakeSlack) -> None:
    release_id = rolling_out(app, fake)
    pause = click(app, fake, blocks.PAUSE, ALICE, "pause")
    assert deliver(app, pause) == 200
    status_is(app, "paused")
    assert deliver(app, click(app, fake, blocks.RESUME, BOB, "resume")) == 200
    status_is(app, "rolling_out")

    assert deliver(app, pause) == 200
    settled(app)
    assert app.release().status == "rolling_out"
    assert actions(app, release_id, "paused") == 1


def test_a_replayed_unlock_leaves_a_later_lock_alone(app: RunningApp, fake: FakeSlack) -> None:
    def command(text: str, user: str, name: str) -> Signed:
        return signed(slash_command_body(text, user, CHANNEL, response_url=fake.response_url(name)))

    locks = app.services.locks
    assert deliver(app, command("lock prod change freeze", ALICE, "lock")) == 200
    wait_until(lambda: locks.get("prod"), what="prod locked")
    unlock = command("unlock prod", BOB, "unlock")
    assert deliver(app, unlock) == 200
    wait_until(lambda: locks.get("prod") is None, what="prod unlocked")
    assert deliver(app, command("lock prod incident 42", ALICE, "lock-again")) == 200
    wait_until(lambda: locks.get("prod"), what="prod locked again")

    assert deliver(app, unlock) == 200
    settled(app)
    lock = locks.get("prod")
    assert lock is not None and lock.reason == "incident 42"
    assert [c.action for c in locks.history("prod")] == ["locked", "unlocked", "locked"]
    assert len(fake.responses("unlock")) == 1  # the replay was not even answered


def test_a_replay_after_the_window_is_refused_by_the_timestamp(
    app: RunningApp, fake: FakeSlack
) -> None:
    body = slash_command_body(
        "lock prod freeze", ALICE, CHANNEL, response_url=fake.response_url("x")
    )
    stale = int(time.time()) - 6 * 60
    assert deliver(app, signed(body, stale)) == 401
    settled(app)
    assert app.services.locks.get("prod") is None and fake.responses("x") == []


def test_a_timestamp_that_is_not_a_number_gets_401_and_one_line(
    app: RunningApp, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = signed(slash_command_body("status", DAVE, CHANNEL))
    for stamp in ("abc", "1e9", "9" * 5000):
        status, _, text = post(app.url, body, {**headers, "X-Slack-Request-Timestamp": stamp})
        assert status == 401
        assert text.count("\n") == 1 and "X-Slack-Request-Timestamp" in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_first_insert_wins_across_processes(tmp_path: Path) -> None:
    """Two connections to one file stand for two processes; eight threads race each key."""
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    until = now + timedelta(minutes=6)
    databases = [Database(tmp_path / "bot.db"), Database(tmp_path / "bot.db")]
    databases[0].migrate(seen.migrations)
    stores = [SqliteSeenRequests(d) for d in databases]
    winners: list[bool] = []
    start = threading.Barrier(8)

    def race(i: int) -> None:
        start.wait()
        winners.append(stores[i % 2].first("signature:v0=abc", now, until))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(winners) == [False] * 7 + [True]
    for d in databases:
        d.close()


def test_what_is_seen_is_forgotten_after_its_window() -> None:
    database = Database()
    database.migrate(seen.migrations)
    store = SqliteSeenRequests(database)
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    assert store.first("signature:a", now, now + timedelta(minutes=6))
    assert store.first("event:Ev1", now, now + timedelta(hours=1))
    later = now + timedelta(minutes=5)
    assert not store.first("signature:a", later, later + timedelta(minutes=6))
    after = now + timedelta(minutes=7)
    assert store.first("signature:b", after, after + timedelta(minutes=6))
    keys = [r["key"] for r in database.db.query("SELECT key FROM seen_requests ORDER BY key")]
    assert keys == ["event:Ev1", "signature:b"]  # "a" purged as it went
    assert store.first("signature:a", after, after + timedelta(minutes=6))


def test_an_envelope_delivered_again_over_socket_mode_acts_once(
    fake: FakeSlack, tmp_path: Path
) -> None:
    """No signatures over Socket Mode: the same payload in a new envelope is the same
    request, acked and ignored."""
    with FakeSocketMode() as socket_mode:
        fake.socket_url = socket_mode.url
        settings = settings_for(
            fake,
            tmp_path,
            slack_app_token="xapp-1-A0APP-1-fake",
            slack_signing_secret=None,
            release_bot_tick_seconds=300,  # no real tick fires during the test
        )
        wired = wire(settings, virtual_clock=True, clock_start=CLOCK_START)
        wired.server.start()
        try:
            socket_mode.wait_connected()
            body = slash_command_body(
                "lock prod freeze", BOB, CHANNEL, response_url=fake.response_url("lock")
            )
            payload = dict(parse_qsl(body, keep_blank_values=True))
            for _ in range(2):
                envelope = socket_mode.push("slash_commands", payload)
                assert socket_mode.wait_ack(envelope, timeout=30)["envelope_id"] == envelope
            other = slash_command_body(
                "status", BOB, CHANNEL, response_url=fake.response_url("status")
            )
            socket_mode.push("slash_commands", dict(parse_qsl(other, keep_blank_values=True)))
            wait_until(lambda: fake.responses("status"), what="the answer to another command")
            wired.slack.background.shutdown(wait=True)
            assert len(fake.responses("lock")) == 1
            assert [c.action for c in wired.wiring.services.locks.history()] == ["locked"]
        finally:
            wired.server.stop()
            wired.wiring.close()
