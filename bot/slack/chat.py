"""Slack as the release's thread: a live status card on top, one reply per batch of events.

The card's ``ts`` (which is also the thread's) is stored in SQLite, so after a restart the
updates continue in the same thread. Messages to one channel are spaced by
``post_interval`` (Slack allows about one a second per channel); a burst of events for a
release arrives as one batch and becomes one reply and one card update. A 429 is retried
after its ``Retry-After`` by slack_sdk's ``RateLimitErrorRetryHandler`` (see ``web_client``).

At each stage's end and on rollback a chart of the stage goes into the thread; when the
release ends, the contract JSON is uploaded beside a short human summary.

A card, reply, chart or report is posted at most once even when the process dies (or the
answer is lost) after Slack accepted it but before it was recorded: the intent to post is
recorded first, each post carries message metadata naming it (a file, a name naming its
release and upload), and a later attempt that finds an intent without its record reads the
channel or thread back and adopts the message Slack already holds
(``bot/adapters/slack/readback.py``, shared with the incident channel's notices).
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlite_utils
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlite_utils import Migrations

from bot.adapters.slack.readback import files_shared, find_posted, names_post, post_metadata
from bot.adapters.sqlite.database import Database
from bot.charts import guardrail_limits, stage_chart
from bot.domain.plan import step_label
from bot.domain.release import Release
from bot.ports.chat import AbstractChat
from bot.ports.series import AbstractSeries
from bot.ports.store import StoredEvent
from bot.slack.blocks import event_reply, status_card

log = logging.getLogger(__name__)
migrations = Migrations("release-bot.slack")
CHART_ACTIONS = ("step_completed", "rollback_started")
RATE_LIMIT_RETRIES = 3
CARD = "card"
# Methods that add a message: a connection error may come after Slack applied them, so they are
# never retried blindly (the intent and the read-back decide).
POSTING_METHODS = ("chat.postMessage", "files.completeUploadExternal")


@migrations()
def create_threads(db: sqlite_utils.Database) -> None:
    db.table("slack_threads").create(
        {
            "release_id": str,
            "channel": str,
            "thread_ts": str,
            "card_hash": str,
            "report_uploaded": int,
        },
        pk="release_id",
    )
    db.table("slack_threads").create_index(["channel", "thread_ts"], unique=True)


@migrations()
def add_progress(db: sqlite_utils.Database) -> None:
    # The last event whose reply was posted and whose charts were uploaded: a batch retried
    # after a failed card update posts nothing twice.
    db.table("slack_threads").add_column("replied_through", int, not_null_default=0)
    db.table("slack_threads").add_column("charted_through", int, not_null_default=0)


@migrations()
def add_posting_intents(db: sqlite_utils.Database) -> None:
    # Recorded before a post and cleared with its record: an intent left behind means Slack
    # may hold a post this database does not know of (a SIGKILL, a lost answer).
    db.table("slack_cards_opening").create({"release_id": str, "channel": str}, pk="release_id")
    db.table("slack_threads").add_column("replying_through", int, not_null_default=0)


@migrations()
def add_upload_intents(db: sqlite_utils.Database) -> None:
    # The same for files: the last event whose charts are being uploaded, and the report.
    db.table("slack_threads").add_column("charting_through", int, not_null_default=0)
    db.table("slack_threads").add_column("report_uploading", int, not_null_default=0)


def web_client(token: str, base_url: str) -> WebClient:
    """The Web API client: the token goes on the client (Bolt ignores ``token=`` once a
    ``client=`` is given), and rate-limited calls are retried after ``Retry-After``."""
    client = WebClient(token=token, base_url=base_url, timeout=10, retry_handlers=[])
    client.retry_handlers.append(IdempotentConnectionRetry())
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


class IdempotentConnectionRetry(ConnectionErrorRetryHandler):
    """slack_sdk's default retry after a connection error, except for a call that posts:
    its answer may have been lost after Slack applied it, and a retry would post it twice."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if request.url.rstrip("/").endswith(POSTING_METHODS):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


@dataclass(frozen=True, slots=True)
class Thread:
    release_id: str
    channel: str
    thread_ts: str
    card_hash: str
    report_uploaded: bool
    replied_through: int = 0  # the last event id whose reply is in the thread
    replying_through: int = 0  # the last event id of the reply being posted
    charted_through: int = 0  # the last event id whose charts are in the thread
    charting_through: int = 0  # the last event id of the charts being uploaded
    report_uploading: bool = False  # the report's upload was begun


class AbstractSlackThreads(abc.ABC):
    """Where each release's thread is: (channel, ts), what the card last showed, and what an
    earlier attempt set out to post (the posting intents)."""

    @abc.abstractmethod
    def get(self, release_id: str) -> Thread | None: ...

    @abc.abstractmethod
    def find(self, channel: str, thread_ts: str) -> Thread | None: ...

    @abc.abstractmethod
    def opening(self, release_id: str) -> str | None:
        """The channel of a card an earlier attempt set out to post, if it was not recorded."""

    @abc.abstractmethod
    def open(self, release_id: str, channel: str) -> None:
        """Record the intent to post ``release_id``'s card, before posting it."""

    @abc.abstractmethod
    def add(self, release_id: str, channel: str, thread_ts: str, card_hash: str) -> Thread:
        """Record the card posted (or found in Slack), and clear its intent, in one write."""

    @abc.abstractmethod
    def update(self, release_id: str, **values: object) -> None:
        """Set some of the thread's progress columns (``THREAD_COLUMNS``)."""


THREAD_COLUMNS = frozenset(
    {
        "card_hash",
        "report_uploaded",
        "report_uploading",
        "replied_through",
        "replying_through",
        "charted_through",
        "charting_through",
    }
)


class SqliteSlackThreads(AbstractSlackThreads):
    """The threads in the SQLite database, beside the releases."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def table(self) -> sqlite_utils.db.Table:
        return self.database.db.table("slack_threads")

    def get(self, release_id: str) -> Thread | None:
        rows = list(self.table.rows_where("release_id = ?", [release_id]))
        return thread_from_row(rows[0]) if rows else None

    def find(self, channel: str, thread_ts: str) -> Thread | None:
        rows = list(self.table.rows_where("channel = ? AND thread_ts = ?", [channel, thread_ts]))
        return thread_from_row(rows[0]) if rows else None

    def opening(self, release_id: str) -> str | None:
        table = self.database.db.table("slack_cards_opening")
        rows = list(table.rows_where("release_id = ?", [release_id]))
        return str(rows[0]["channel"]) if rows else None

    def open(self, release_id: str, channel: str) -> None:
        with self.database.transaction() as db:
            db.table("slack_cards_opening").insert(
                {"release_id": release_id, "channel": channel}, replace=True
            )

    def add(self, release_id: str, channel: str, thread_ts: str, card_hash: str) -> Thread:
        thread = Thread(release_id, channel, thread_ts, card_hash, report_uploaded=False)
        with self.database.transaction() as db:
            db.table("slack_cards_opening").delete_where("release_id = ?", [release_id])
            self.table.insert(
                {
                    "release_id": release_id,
                    "channel": channel,
                    "thread_ts": thread_ts,
                    "card_hash": card_hash,
                    "report_uploaded": 0,
                },
                replace=True,
            )
        return thread

    def update(self, release_id: str, **values: object) -> None:
        if unknown := set(values) - THREAD_COLUMNS:
            raise ValueError(f"no thread column {sorted(unknown)}")
        with self.database.lock:
            self.table.update(release_id, values)


def thread_from_row(row: Mapping[str, object]) -> Thread:
    return Thread(
        release_id=str(row["release_id"]),
        channel=str(row["channel"]),
        thread_ts=str(row["thread_ts"]),
        card_hash=str(row["card_hash"] or ""),
        report_uploaded=bool(row["report_uploaded"]),
        replied_through=int(str(row.get("replied_through") or 0)),
        charted_through=int(str(row.get("charted_through") or 0)),
        replying_through=int(str(row.get("replying_through") or 0)),
        charting_through=int(str(row.get("charting_through") or 0)),
        report_uploading=bool(row.get("report_uploading")),
    )


class ChannelPacer:
    """At most one message per ``interval`` seconds per channel; callers wait their turn."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next.get(channel, now))
            self._next[channel] = turn + self.interval
        if turn > now:
            time.sleep(turn - now)


ReportFor = Callable[[str], tuple[str, str]]  # release id -> (contract JSON, human summary)


class SlackChat(AbstractChat):
    def __init__(
        self,
        client: WebClient,
        threads: AbstractSlackThreads,
        series: AbstractSeries,
        report_for: ReportFor,
        default_channel: str | None = None,
        post_interval: float = 1.0,
        observers: Sequence[Callable[[Release], None]] = (),
    ) -> None:
        self.client = client
        self.threads = threads
        self.series = series
        self.report_for = report_for
        self.default_channel = default_channel
        self.pacer = ChannelPacer(post_interval)
        # Called with the release after each batch, posted or not (the App Home follows).
        self.observers = list(observers)

    def post(self, release: Release, events: list[StoredEvent]) -> None:
        try:
            self._post(release, events)
        finally:  # the release moved even when Slack refused the reply
            for observer in self.observers:
                observer(release)

    def _post(self, release: Release, events: list[StoredEvent]) -> None:
        channel = release.channel or self.default_channel
        if channel is None:
            log.info("%s has no Slack channel (started outside Slack); not posted", release.id)
            return
        now = datetime.now(UTC)
        thread = self.threads.get(release.id) or self._open_thread(release, channel, now)
        # The outbox retries a batch until all of it went through: each part is recorded
        # as done when done, so a retry after a failed card update posts no reply twice.
        fresh = [e for e in events if e.id > thread.replied_through]
        if fresh and self._reply_went_through(release, thread):
            fresh = [e for e in fresh if e.id > thread.replying_through]
        if fresh:
            text, blocks = event_reply(release, fresh)
            last = fresh[-1].id
            self.threads.update(release.id, replying_through=last)
            self.pacer.wait(thread.channel)
            self.client.chat_postMessage(
                channel=thread.channel,
                text=text,
                blocks=blocks,
                thread_ts=thread.thread_ts,
                metadata=post_metadata(release.id, reply_post(last), first_event=fresh[0].id),
            )
            self.threads.update(release.id, replied_through=last)
        self.refresh_card(release, thread, now)
        if uncharted := [e for e in events if e.id > thread.charted_through]:
            self._upload_charts(release, thread, uncharted)
        # The report waits for the agent's summary, which is due until it has spoken.
        summary_due = release.narration is not None and bool(release.narration.due)
        if not release.is_active and not thread.report_uploaded and not summary_due:
            self._upload_report(release, thread)

    # -- the card ----------------------------------------------------------------------------

    def _open_thread(self, release: Release, channel: str, now: datetime) -> Thread:
        intended = self.threads.opening(release.id)
        if intended is not None:
            ts = self._posted_before(intended, release.id, CARD)
            if ts is not None:  # an empty hash: the next refresh brings the card up to date
                log.info("%s's card was posted before its record; adopted %s", release.id, ts)
                return self.threads.add(release.id, intended, ts, card_hash="")
        text, blocks = status_card(release, now)
        self.threads.open(release.id, channel)
        self.pacer.wait(channel)
        answer = self.client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, metadata=post_metadata(release.id, CARD)
        )
        return self.threads.add(
            release.id, str(answer["channel"]), str(answer["ts"]), _digest(blocks)
        )

    # -- reading back what an earlier attempt may have posted ---------------------------------

    def _reply_went_through(self, release: Release, thread: Thread) -> bool:
        """Whether the reply an earlier attempt set out to post is in the thread (recorded as
        posted if so)."""
        if thread.replying_through <= thread.replied_through:
            return False
        post = reply_post(thread.replying_through)
        if self._posted_before(thread.channel, release.id, post, thread.thread_ts) is None:
            return False
        log.info("%s's %s was posted before its record; not posted again", release.id, post)
        self.threads.update(release.id, replied_through=thread.replying_through)
        return True

    def _posted_before(
        self, channel: str, release_id: str, post: str, thread_ts: str | None = None
    ) -> str | None:
        """The ts of the message Slack holds for ``post`` of ``release_id``, if any."""
        matches = names_post(release_id, post)
        found = find_posted(self.client, channel, matches, f"{release_id}'s {post}", thread_ts)
        return str(found["ts"]) if found is not None else None

    def _files_in_thread(self, thread: Thread, what: str) -> set[str]:
        """The names of the files the thread already shares (an earlier attempt's uploads)."""
        return files_shared(self.client, thread.channel, thread.thread_ts, what)

    def refresh_card(self, release: Release, thread: Thread, now: datetime) -> None:
        """Update the status card when what it shows changed (saves the update's quota)."""
        text, blocks = status_card(release, now)
        digest = _digest(blocks)
        if digest == thread.card_hash:
            return
        self.client.chat_update(
            channel=thread.channel, ts=thread.thread_ts, text=text, blocks=blocks
        )
        self.threads.update(release.id, card_hash=digest)

    # -- replies and files -------------------------------------------------------------------

    @staticmethod
    def _chart_steps(release: Release, events: Sequence[StoredEvent]) -> dict[int, int]:
        """Each step to chart, with the first event that asks for its chart."""
        steps: dict[int, int] = {}
        for event in events:
            if event.action not in CHART_ACTIONS:
                continue
            step = event.data.get("step", release.step_index)
            if isinstance(step, int) and step >= 0 and step not in steps:
                steps[step] = event.id
        return steps

    def _upload_charts(self, release: Release, thread: Thread, events: list[StoredEvent]) -> None:
        """The charts the events ask for, each uploaded once: the intent (``charting_through``)
        is recorded first, and a later attempt skips the charts the thread already shares."""
        last = events[-1].id
        if steps := self._chart_steps(release, events):
            shared: set[str] = set()
            if thread.charting_through > thread.charted_through:  # begun, never recorded
                shared = self._files_in_thread(thread, f"{release.id}'s charts")
            self.threads.update(release.id, charting_through=last)
            for step, event_id in steps.items():
                name = chart_name(release.id, step, event_id)
                if name in shared:
                    log.info("%s was uploaded before its record; not uploaded again", name)
                else:
                    self._upload_chart(release, thread, step, name)
        self.threads.update(release.id, charted_through=last)

    def _upload_chart(self, release: Release, thread: Thread, step: int, name: str) -> None:
        points = self.series.points(release.id, step)
        if not points:
            return  # a verification step, or a rollback before the first window
        label = step_label(release.plan.steps[step])
        error_limit, p95_limit = guardrail_limits(release.request.guardrails.all())
        png = stage_chart(
            points,
            title=f"{release.request.service} {release.version} · {label}",
            error_limit_pct=error_limit,
            p95_limit_ms=p95_limit,
        )
        self.pacer.wait(thread.channel)
        self.client.files_upload_v2(
            channel=thread.channel,
            thread_ts=thread.thread_ts,
            content=png,
            filename=name,
            title=f"{label}: canary vs baseline",
        )

    def _upload_report(self, release: Release, thread: Thread) -> None:
        name = f"{release.id}.json"
        if thread.report_uploading and name in self._files_in_thread(thread, name):
            log.info("%s was uploaded before its record; not uploaded again", name)
            self.threads.update(release.id, report_uploaded=1)
            return
        contract, summary = self.report_for(release.id)
        self.threads.update(release.id, report_uploading=1)
        self.pacer.wait(thread.channel)
        self.client.files_upload_v2(
            channel=thread.channel,
            thread_ts=thread.thread_ts,
            content=contract.encode(),
            filename=name,
            title=f"release report {release.request.service} {release.version}",
            initial_comment=summary,
        )
        self.threads.update(release.id, report_uploaded=1)


def chart_name(release_id: str, step: int, event_id: int) -> str:
    """A chart's file name: its release, its step and the event that asked for it, so that a
    later attempt tells it from any other upload in the thread."""
    return f"{release_id}-step{step}-{event_id}.png"


def reply_post(last_event_id: int) -> str:
    return f"reply:{last_event_id}"


def _digest(blocks: object) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True, default=str).encode()).hexdigest()
