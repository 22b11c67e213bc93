"""Slack as the release's thread: a live status card on top, one reply per batch of events.

The card's ``ts`` (which is also the thread's) is stored in SQLite, so after a restart the
updates continue in the same thread. Messages to one channel are spaced by
``post_interval`` (Slack allows about one a second per channel); a burst of events for a
release arrives as one batch and becomes one reply and one card update. A 429 is retried
after its ``Retry-After`` by slack_sdk's ``RateLimitErrorRetryHandler`` (see ``web_client``).

At each stage's end and on rollback a chart of the stage goes into the thread; when the
release ends, the contract JSON is uploaded beside a short human summary.
"""

from __future__ import annotations

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
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlite_utils import Migrations

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


def web_client(token: str, base_url: str) -> WebClient:
    """The Web API client: the token goes on the client (Bolt ignores ``token=`` once a
    ``client=`` is given), and rate-limited calls are retried after ``Retry-After``."""
    client = WebClient(token=token, base_url=base_url, timeout=10)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


@dataclass(frozen=True, slots=True)
class Thread:
    release_id: str
    channel: str
    thread_ts: str
    card_hash: str
    report_uploaded: bool
    replied_through: int = 0  # the last event id whose reply is in the thread
    charted_through: int = 0  # the last event id whose charts are in the thread


class SlackThreads:
    """Where each release's thread is: (channel, ts), and what the card last showed."""

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

    def add(self, release_id: str, channel: str, thread_ts: str, card_hash: str) -> Thread:
        thread = Thread(release_id, channel, thread_ts, card_hash, report_uploaded=False)
        with self.database.lock:
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
        threads: SlackThreads,
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
        if fresh := [e for e in events if e.id > thread.replied_through]:
            text, blocks = event_reply(release, fresh)
            self.pacer.wait(thread.channel)
            self.client.chat_postMessage(
                channel=thread.channel, text=text, blocks=blocks, thread_ts=thread.thread_ts
            )
            self.threads.update(release.id, replied_through=fresh[-1].id)
        self.refresh_card(release, thread, now)
        if uncharted := [e for e in events if e.id > thread.charted_through]:
            for step in self._chart_steps(release, uncharted):
                self._upload_chart(release, thread, step)
            self.threads.update(release.id, charted_through=uncharted[-1].id)
        # The report waits for the agent's summary, which is due until it has spoken.
        summary_due = release.narration is not None and bool(release.narration.due)
        if not release.is_active and not thread.report_uploaded and not summary_due:
            self._upload_report(release, thread)

    # -- the card ----------------------------------------------------------------------------

    def _open_thread(self, release: Release, channel: str, now: datetime) -> Thread:
        text, blocks = status_card(release, now)
        self.pacer.wait(channel)
        answer = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        return self.threads.add(
            release.id, str(answer["channel"]), str(answer["ts"]), _digest(blocks)
        )

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
    def _chart_steps(release: Release, events: Sequence[StoredEvent]) -> list[int]:
        steps: list[int] = []
        for event in events:
            if event.action not in CHART_ACTIONS:
                continue
            step = event.data.get("step", release.step_index)
            if isinstance(step, int) and step >= 0 and step not in steps:
                steps.append(step)
        return steps

    def _upload_chart(self, release: Release, thread: Thread, step: int) -> None:
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
            filename=f"{release.id}-step{step}.png",
            title=f"{label}: canary vs baseline",
        )

    def _upload_report(self, release: Release, thread: Thread) -> None:
        contract, summary = self.report_for(release.id)
        self.pacer.wait(thread.channel)
        self.client.files_upload_v2(
            channel=thread.channel,
            thread_ts=thread.thread_ts,
            content=contract.encode(),
            filename=f"{release.id}.json",
            title=f"release report {release.request.service} {release.version}",
            initial_comment=summary,
        )
        self.threads.update(release.id, report_uploaded=1)


def _digest(blocks: object) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True, default=str).encode()).hexdigest()
