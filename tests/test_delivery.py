"""Messages exactly once: each release's thread is delivered on its own (a channel Slack
refuses waits with backoff, the others are delivered), a reply is posted once even when the
card update after it fails, a post, an upload or an incident notice that Slack applied but the
process never recorded is not made again, and a command that was applied is not an error when
Slack fails.

The real bootstrap with Slack as the chat: the real slack_sdk client against the local fake
(``tests/fake_slack.py``), whose messages are counted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.slack.notify import SlackIncidentChannel
from bot.adapters.slack.readback import LIST_PAGE, UNREADABLE, UNRESOLVED
from bot.bootstrap import SlackOptions, Wiring, bootstrap
from bot.domain.release import Release
from bot.ports.chat import AbstractChat
from bot.ports.leases import this_host
from bot.ports.notify import Notice
from bot.ports.store import StoredEvent
from bot.service import approve, deliver, pause, reconcile, reject, rollback, start_release
from bot.service.notifications import deliveries
from bot.slack.chat import web_client
from tests.fake_slack import FakeSlack

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # outside payments-api's peak hours
PAYMENTS = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
SEARCH = 'search-api 3.1.0 risk=low ticket=CHG-2 changes="better ranking"'
GONE, OK = "C0GONE", "C0OK"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def wiring(fake: FakeSlack) -> Iterator[Wiring]:
    wired = on_slack(":memory:", fake)
    yield wired
    wired.close()


def on_slack(db: str | Path, fake: FakeSlack) -> Wiring:
    """The real bootstrap with the fake as Slack (a file ``db`` outlives a process)."""
    return bootstrap(
        db,
        clock_start=START,
        slack=SlackOptions(
            token="xoxb-test",
            api_url=fake.url,
            default_channel=None,
            post_interval=0.0,
            home_interval=60.0,
        ),
    )


def started(wiring: Wiring, line: str, channel: str, approver: str) -> Release:
    release = start_release(wiring.services, line, "dave", channel=channel)
    assert isinstance(release, Release), release
    if release.status == "awaiting_approval":
        release = approve(wiring.services, release.id, approver)
    return release


def ticks(wiring: Wiring, n: int) -> None:
    assert wiring.virtual_clock is not None
    for _ in range(n):
        wiring.virtual_clock.advance(wiring.services.tick_seconds)
        reconcile(wiring.services)


def replies(fake: FakeSlack, channel: str) -> list[str]:
    """The thread replies in ``channel`` (every message but the cards and the files)."""
    return [m["text"] for m in fake.messages(channel) if m.get("thread_ts") and "files" not in m]


def cards(fake: FakeSlack, channel: str) -> list[dict[str, object]]:
    return fake.messages(channel, thread_ts="")


def undelivered(wiring: Wiring, release_id: str) -> int:
    return sum(e.release_id == release_id for e in wiring.services.store.undelivered())


def test_a_refused_channel_stops_no_other_thread(wiring: Wiring, fake: FakeSlack) -> None:
    fake.refuse_channel(GONE)
    refused = started(wiring, PAYMENTS, GONE, "alice")  # delivered first, and refused
    healthy = started(wiring, SEARCH, OK, "carol")
    ticks(wiring, 30)

    assert len(cards(fake, OK)) == 1 and replies(fake, OK)
    assert undelivered(wiring, healthy.id) == 0
    assert fake.messages(GONE) == [] and undelivered(wiring, refused.id) > 0
    failure = wiring.services.store.delivery_failures()[refused.id]
    assert "channel_not_found" in failure.error
    # Retried with backoff (10 s, 20 s, 40 s… over five minutes), not at every tick.
    tries = [c for c in fake.calls("chat.postMessage") if c.params.get("channel") == GONE]
    assert 3 <= len(tries) <= 8

    fake.accept_channel(GONE)
    ticks(wiring, 40)  # past the longest backoff so far
    assert len(cards(fake, GONE)) == 1 and replies(fake, GONE)
    assert undelivered(wiring, refused.id) == 0
    assert refused.id not in wiring.services.store.delivery_failures()


def test_a_failed_card_update_posts_each_reply_once(wiring: Wiring, fake: FakeSlack) -> None:
    release = started(wiring, PAYMENTS, OK, "alice")
    fake.fail_next("chat.update", times=5, status=200, error="internal_error")
    ticks(wiring, 60)

    said = replies(fake, OK)
    assert said, "nothing was posted"
    doubled = {text: n for text, n in Counter(said).items() if n > 1}
    assert doubled == {}
    assert len(cards(fake, OK)) == 1
    assert undelivered(wiring, release.id) == 0
    # The card caught up once Slack took the updates again.
    card = cards(fake, OK)[0]
    assert "edited" in card


def test_an_unchanged_card_is_not_updated_again(wiring: Wiring, fake: FakeSlack) -> None:
    started(wiring, PAYMENTS, OK, "alice")
    ticks(wiring, 30)
    updates = [c.params.get("blocks") for c in fake.calls("chat.update")]
    repeated = [i for i in range(1, len(updates)) if updates[i] == updates[i - 1]]
    assert repeated == []


def test_a_pause_applied_is_not_an_error_when_slack_fails(wiring: Wiring, fake: FakeSlack) -> None:
    release = started(wiring, PAYMENTS, OK, "alice")
    ticks(wiring, 3)
    fake.refuse_channel(OK, error="internal_error")

    paused = pause(wiring.services, release.id, "alice", "the dashboard looks odd")

    assert paused.status == "paused"
    assert wiring.services.store.get(release.id).status == "paused"
    assert not any("the dashboard looks odd" in text for text in replies(fake, OK))
    fake.accept_channel(OK)
    ticks(wiring, 10)  # the tick retries the thread
    assert sum("the dashboard looks odd" in text for text in replies(fake, OK)) == 1
    assert undelivered(wiring, release.id) == 0


class Recorded(AbstractChat):
    """One chat that two processes post to, as one Slack workspace is: it counts each event
    it is shown, and waits a little inside ``post`` so that the two overlap."""

    def __init__(self) -> None:
        self.shown: Counter[int] = Counter()
        self.guard = threading.Lock()

    def post(self, release: Release, events: list[StoredEvent]) -> None:
        time.sleep(0.005)  # a Web API call takes a while: widens the window for a race
        with self.guard:
            self.shown.update(e.id for e in events)


def test_two_processes_deliver_a_thread_once(tmp_path: Path) -> None:
    """A ``serve`` beside a ``worker`` (or two replicas) both run commands and so both deliver:
    each event reaches the thread once, whichever process posts it."""
    chat = Recorded()
    path = tmp_path / "bot.db"
    one = bootstrap(path, clock_start=START, chat=chat)
    two = bootstrap(path, clock_start=START, chat=chat)
    for text in (PAYMENTS, SEARCH):
        assert one.services.store.get(_started(one, text)).is_active
    rounds = 20
    barrier = threading.Barrier(2)

    def deliver_often(wiring: Wiring) -> None:
        for _ in range(rounds):
            barrier.wait(timeout=30)
            reconcile(wiring.services)  # moves the releases and delivers what they recorded

    threads = [threading.Thread(target=deliver_often, args=(w,)) for w in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    deliver(one.services)
    events = [
        e.id for r in one.services.store.listing() for e in one.services.store.events(str(r["id"]))
    ]
    shown = set(chat.shown)
    assert shown and shown <= set(events)
    assert [i for i, n in chat.shown.items() if n > 1] == []  # none posted twice
    one.close()
    two.close()


def _started(wiring: Wiring, text: str) -> str:
    started = start_release(wiring.services, text, "dave")
    assert isinstance(started, Release)
    return started.id


def test_a_thread_held_by_a_killed_process_is_delivered_at_once(tmp_path: Path) -> None:
    """A process killed while posting a thread leaves its lease behind: one restarted on the
    same host takes it over at once instead of waiting it out (a live holder is waited for)."""
    chat = Recorded()
    wiring = bootstrap(tmp_path / "bot.db", clock_start=START, chat=chat)
    services = wiring.services
    assert services.leases is not None
    started = start_release(services, PAYMENTS, "dave")
    assert isinstance(started, Release)
    dead = f"{this_host()}:{_pid_of_finished_child()}:x"
    alive = f"{this_host()}:{os.getpid()}:other"
    year = datetime.now(UTC) + timedelta(days=365)
    name = f"deliver:{started.id}"
    assert services.leases.acquire(name, alive, datetime.now(UTC), year)
    shown_before = sum(chat.shown.values())
    approve(services, started.id, "alice")  # its events wait: another process holds the thread
    reconcile(services)
    assert sum(chat.shown.values()) == shown_before  # a live holder is waited for
    services.leases.release(name, alive)
    assert services.leases.acquire(name, dead, datetime.now(UTC), year)
    deliver(services)
    assert sum(chat.shown.values()) > shown_before and services.store.undelivered() == []
    wiring.close()


def _pid_of_finished_child() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def posts(fake: FakeSlack, channel: str) -> Counter[tuple[str, str]]:
    """How many messages Slack holds for each post the bot named in its metadata."""
    named = (m.get("metadata", {}).get("event_payload", {}) for m in fake.messages(channel))
    return Counter((p["release_id"], p["post"]) for p in named if p)


def test_a_card_posted_but_not_recorded_is_not_posted_again(
    wiring: Wiring, fake: FakeSlack
) -> None:
    """Slack applied the card but the process never recorded it (killed, or the answer lost):
    the next attempt finds it in the channel and opens the thread there."""
    fake.lose_next_answer("chat.postMessage")
    release = started(wiring, PAYMENTS, OK, "alice")
    ticks(wiring, 30)

    assert len(cards(fake, OK)) == 1
    card = cards(fake, OK)[0]
    assert {m.get("thread_ts") for m in fake.messages(OK) if m["ts"] != card["ts"]} == {card["ts"]}
    assert [n for n in posts(fake, OK).values() if n > 1] == []
    assert undelivered(wiring, release.id) == 0
    assert "edited" in card  # the adopted card is brought up to date


def test_a_reply_posted_but_not_recorded_is_not_posted_again(
    wiring: Wiring, fake: FakeSlack
) -> None:
    release = started(wiring, PAYMENTS, OK, "alice")
    ticks(wiring, 3)
    fake.lose_next_answer("chat.postMessage")
    ticks(wiring, 60)

    said = replies(fake, OK)
    assert {text: n for text, n in Counter(said).items() if n > 1} == {}
    assert [n for n in posts(fake, OK).values() if n > 1] == []
    assert len(cards(fake, OK)) == 1
    assert undelivered(wiring, release.id) == 0


def test_without_the_history_scope_a_lost_card_is_posted_again(
    wiring: Wiring, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """A workspace that has not reinstalled the app cannot read the channel back: one warning,
    and the card is posted (a possible double is better than a lost message)."""
    fake.lose_next_answer("chat.postMessage")
    fake.fail_next("conversations.history", times=1, status=200, error="missing_scope")
    release = started(wiring, PAYMENTS, OK, "alice")
    ticks(wiring, 30)

    assert len(cards(fake, OK)) == 2
    assert undelivered(wiring, release.id) == 0
    warned = [r.getMessage() for r in caplog.records if "missing_scope" in r.getMessage()]
    assert len(warned) == 1 and "channels:history" in warned[0]


def test_the_client_retries_a_lost_update_but_never_a_lost_post(fake: FakeSlack) -> None:
    """slack_sdk retries a call whose connection dropped: harmless for an update, a double for
    a post Slack applied before the answer was lost (the intent and the read-back decide)."""
    client = web_client("xoxb-test", fake.url)
    ts = client.chat_postMessage(channel=OK, text="card")["ts"]
    fake.lose_next_answer("chat.update")
    assert client.chat_update(channel=OK, ts=ts, text="card, updated")["ok"]
    assert fake.count("chat.update") == 2

    fake.lose_next_answer("chat.postMessage")
    with pytest.raises(OSError):
        client.chat_postMessage(channel=OK, text="reply", thread_ts=ts)
    assert replies(fake, OK) == ["reply"]


def shared(fake: FakeSlack, channel: str) -> Counter[str]:
    """How many times the channel shares each file, by name (Slack's file_share messages)."""
    return Counter(f["name"] for m in fake.messages(channel) for f in m.get("files") or [])


def test_a_chart_uploaded_but_not_recorded_is_not_uploaded_again(
    wiring: Wiring, fake: FakeSlack
) -> None:
    """Slack shared the chart into the thread but its answer was lost (as for a process
    killed in the call): the next attempt finds the file in the thread instead of uploading it."""
    release = started(wiring, PAYMENTS, OK, "alice")
    applied = fake.lose_next_answer("files.completeUploadExternal")
    ticks(wiring, 60)

    assert applied.is_set()
    files = shared(fake, OK)
    assert files and {name: n for name, n in files.items() if n > 1} == {}
    assert fake.count("files.completeUploadExternal") == len(files)
    assert undelivered(wiring, release.id) == 0
    assert [n for n in posts(fake, OK).values() if n > 1] == []


def test_a_report_uploaded_before_a_restart_is_not_uploaded_again(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """The process that uploaded the final report died before recording it; the one started
    after it on the same database finds the report in the thread."""
    first = on_slack(tmp_path / "bot.db", fake)
    release = start_release(first.services, PAYMENTS, "dave", channel=OK)
    assert isinstance(release, Release) and release.status == "awaiting_approval"
    applied = fake.lose_next_answer("files.completeUploadExternal")
    reject(first.services, release.id, "alice", "not this week")
    assert applied.is_set()
    first.close()

    again = on_slack(tmp_path / "bot.db", fake)
    ticks(again, 40)  # past the outbox's backoff
    assert shared(fake, OK) == {f"{release.id}.json": 1}
    assert undelivered(again, release.id) == 0
    assert again.services.store.delivery_failures() == {}
    again.close()


INCIDENTS = "#payments-incidents"  # payments-api's incident channel in data/services.toml


def notice_lost_before_restart(tmp_path: Path, fake: FakeSlack) -> tuple[Wiring, Release]:
    """The rollback's notice reached the incident channel, given by name, but the answer never
    came back and the process stopped; the process started next has retried it."""
    first = on_slack(tmp_path / "bot.db", fake)
    release = started(first, PAYMENTS, OK, "alice")
    ticks(first, 3)
    applied = fake.lose_next_answer("chat.postMessage", channel=INCIDENTS)
    rollback(first.services, release.id, "alice", "checkout errors")
    ticks(first, 1)
    assert applied.is_set()
    first.close()

    again = on_slack(tmp_path / "bot.db", fake)
    ticks(again, 60)
    notices = fake.messages(INCIDENTS)
    told = [d for d in deliveries(again.services, release.id) if d.target == INCIDENTS]
    assert [(d.status, d.reference) for d in told] == [("delivered", notices[-1]["ts"])]
    return again, release


def test_an_incident_notice_posted_before_a_restart_is_not_posted_again(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """The next process finds the channel's ID by its name (conversations.history takes only
    an ID), reads the channel back and records the notice there."""
    again, _ = notice_lost_before_restart(tmp_path, fake)
    notices = fake.messages(INCIDENTS)
    assert [m["text"].split(" (")[0] for m in notices] == ["payments-api 2.4.1 is rolling back"]
    assert [n for n in posts(fake, INCIDENTS).values() if n > 1] == []
    history = fake.last("conversations.history").params["channel"]
    assert history == fake.channel_id(INCIDENTS) != INCIDENTS
    again.close()


def test_an_incident_channel_on_the_second_page_is_found(tmp_path: Path, fake: FakeSlack) -> None:
    for n in range(LIST_PAGE):  # a large workspace: the channel is on the second page
        fake.add_channel(f"C{n:06d}", f"team-{n}")
    fake.add_channel("C0INCIDENTS", INCIDENTS.removeprefix("#"))

    again, _ = notice_lost_before_restart(tmp_path, fake)
    assert len(fake.messages("C0INCIDENTS")) == 1
    listed = fake.calls("conversations.list")
    assert len(listed) == 2 and listed[0].params["types"] == "public_channel,private_channel"
    assert fake.last("conversations.history").params["channel"] == "C0INCIDENTS"
    again.close()


@pytest.mark.parametrize(
    ("refusal", "problem", "fix"),
    [
        ("missing_scope", "missing_scope", "channels:read and groups:read"),
        ("not listed", "no such channel", "give its ID"),
        # any other refusal of the lookup: the notice does not wait on it (review)
        ("ratelimited", "ratelimited", "give the channel's ID"),
    ],
)
def test_an_incident_channel_whose_id_cannot_be_found_is_posted_to(
    tmp_path: Path,
    fake: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
    problem: str,
    fix: str,
) -> None:
    """Without the channels:read scope, or with no channel of that name in sight: one warning
    naming the problem and the fix, and the notice is posted (it may appear twice)."""
    if refusal in ("missing_scope", "ratelimited"):
        fake.fail_next("conversations.list", status=200, error=refusal)
    else:
        fake.set_response("conversations.list", {"channels": []})
    again, _ = notice_lost_before_restart(tmp_path, fake)
    assert len(fake.messages(INCIDENTS)) == 2
    warned = [r.getMessage() for r in caplog.records if r.name.endswith("readback")]
    assert len(warned) == 1 and problem in warned[0] and fix in warned[0]
    assert INCIDENTS in warned[0]
    again.close()


def notice(retry: bool) -> Notice:
    return Notice("rel-1", "payments-api", "2.4.1", "rolled_back", "rolling back", retry)


def test_an_incident_channel_id_is_found_once(fake: FakeSlack) -> None:
    """conversations.list is rate-limited (tier 2): a notifier looks the name up once, or not
    at all once a post's answer gave it the ID; a channel given by its ID is never looked up."""
    client = web_client("xoxb-test", fake.url)
    named = SlackIncidentChannel(client, INCIDENTS)
    assert named.send(notice(retry=True)) == named.send(notice(retry=True))
    assert fake.count("conversations.list") == 1 and len(fake.messages(INCIDENTS)) == 1

    fake.reset()
    seeded = SlackIncidentChannel(client, INCIDENTS)
    ts = seeded.send(notice(retry=False))
    assert seeded.send(notice(retry=True)) == ts
    assert fake.count("conversations.list") == 0

    by_id = SlackIncidentChannel(client, "C0INCIDENTS")
    by_id.send(notice(retry=True))
    assert fake.count("conversations.list") == 0
    assert fake.last("conversations.history").params["channel"] == "C0INCIDENTS"


def test_the_manifest_grants_the_scopes_the_read_back_needs() -> None:
    """Each scope a read-back warning tells to grant is asked for by the app's manifest."""
    manifest = json.loads((Path(__file__).parent.parent / "manifest.json").read_text())
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    fixes = " ".join([*UNREADABLE.values(), *UNRESOLVED.values()])
    named = set(re.findall(r"\b[a-z]+:[a-z]+\b", fixes))
    assert named >= {"channels:read", "groups:read", "channels:history", "groups:history"}
    assert named <= granted
