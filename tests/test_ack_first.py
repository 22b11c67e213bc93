"""Every kind of request is acked before any of its work runs: with the database held by
the test (as a long tick's unit of work holds it), each is still acked 200, nothing has
been answered, and each answer arrives once the database is free. Real signed HTTP
requests to the running app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import blocks
from tests.fake_slack import BOT_USER_ID, FakeSlack
from tests.slack_app_harness import (
    ALICE,
    BOB,
    CHANNEL,
    DAVE,
    SECRET,
    RunningApp,
    blocks_text,
    wait_until,
    write_config,
)
from tests.slack_signing import event_body, post, signed_headers, slash_command_body

LINE = 'shop 1.2.0 risk=medium ticket=CHG-1 changes="faster checkout"'
DRY = 'dry-run cart 2.0.0 risk=low ticket=CHG-2 changes="bench"'
COMMANDS = {  # the reply's name: (user, /release text)
    "line": (DAVE, 'cart 2.0.0 risk=low ticket=CHG-3 changes="x"'),
    "dry-run": (DAVE, DRY),
    "status": (DAVE, "status"),
    "list": (DAVE, "list"),
    "help": (DAVE, "help"),
    "lock": (BOB, "lock staging freeze"),
    "unlock": (BOB, "unlock prod"),
}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def app(fake: FakeSlack, tmp_path: Path) -> Iterator[RunningApp]:
    write_config(tmp_path, ["cart"])
    running = RunningApp(fake, tmp_path).start()
    yield running
    running.stop()


def awaiting_approval(app: RunningApp, fake: FakeSlack) -> tuple[dict[str, Any], dict[str, Any]]:
    """A release's card and its approval request."""
    assert app.command(LINE, DAVE)[0] == 200
    top = wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the card")[0]

    def request() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in fake.messages(CHANNEL, top["ts"])
                if blocks.APPROVAL_BLOCK in blocks_text(m.get("blocks", []))
            ),
            None,
        )

    return top, wait_until(request, what="the approval request")


def test_every_kind_of_request_is_acked_before_its_work(app: RunningApp, fake: FakeSlack) -> None:
    top, approval = awaiting_approval(app, fake)
    app.services.locks.lock("prod", BOB, "for the unlock", app.services.clock.now())
    click = app.click_body(blocks.APPROVE, app.release().id, ALICE, approval, "click")
    mention = event_body(
        {
            "type": "app_mention",
            "user": DAVE,
            "text": f"<@{BOT_USER_ID}> status",
            "channel": CHANNEL,
            "ts": "1900000000.000100",
            "thread_ts": top["ts"],
        }
    )
    requests = [
        slash_command_body(text, user, CHANNEL, response_url=fake.response_url(name))
        for name, (user, text) in COMMANDS.items()
    ] + [click, mention]
    answered_before = len(fake.messages(CHANNEL, top["ts"]))

    with app.database_held():  # no work that touches the database can run
        for body in requests:
            # post's timeout is a hang guard: an ack that waited for the database never comes
            status, _, _ = post(app.url, body, signed_headers(body, SECRET), timeout=30)
            assert status == 200
        assert all(fake.responses(name) == [] for name in [*COMMANDS, "click"])
        assert app.release().status == "awaiting_approval"

    for name in COMMANDS:  # a click that works answers on the card: the approval below
        wait_until(lambda n=name: fake.responses(n), what=f"the answer to {name}")  # type: ignore[misc]
    wait_until(lambda: app.release().status != "awaiting_approval", what="the approval")
    wait_until(
        lambda: len(fake.messages(CHANNEL, top["ts"])) > answered_before,
        what="the answer to the mention",
    )
    assert "Dry run, nothing deployed" in fake.responses("dry-run")[0]["text"]
    assert app.services.locks.get("staging") is not None
    assert app.services.locks.get("prod") is None
