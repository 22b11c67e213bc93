"""Slack threads on PostgreSQL: where each release's thread is, shared by the replicas, so
the one that delivers next (a new leader after a kill) replies in the thread the last one
opened instead of opening a second."""

from __future__ import annotations

from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
from bot.slack.chat import THREAD_COLUMNS, AbstractSlackThreads, Thread, thread_from_row

migrations = PgMigrations("release-bot.slack-threads")
migrations.step(
    "create_threads",
    "CREATE TABLE slack_threads (release_id TEXT PRIMARY KEY, channel TEXT, thread_ts TEXT,"
    " card_hash TEXT, report_uploaded INTEGER, replied_through INTEGER NOT NULL DEFAULT 0,"
    " charted_through INTEGER NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX idx_slack_threads_channel_ts ON slack_threads (channel, thread_ts)",
)
migrations.step(
    "add_posting_intents",
    "CREATE TABLE slack_cards_opening (release_id TEXT PRIMARY KEY, channel TEXT)",
    "ALTER TABLE slack_threads ADD COLUMN replying_through INTEGER NOT NULL DEFAULT 0",
)
migrations.step(
    "add_upload_intents",
    "ALTER TABLE slack_threads ADD COLUMN charting_through INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE slack_threads ADD COLUMN report_uploading INTEGER NOT NULL DEFAULT 0",
)


class PostgresSlackThreads(AbstractSlackThreads):
    def __init__(self, database: PostgresDatabase) -> None:
        self.shared = database

    def get(self, release_id: str) -> Thread | None:
        rows = self.shared.rows("SELECT * FROM slack_threads WHERE release_id = %s", [release_id])
        return thread_from_row(rows[0]) if rows else None

    def find(self, channel: str, thread_ts: str) -> Thread | None:
        rows = self.shared.rows(
            "SELECT * FROM slack_threads WHERE channel = %s AND thread_ts = %s",
            [channel, thread_ts],
        )
        return thread_from_row(rows[0]) if rows else None

    def opening(self, release_id: str) -> str | None:
        rows = self.shared.rows(
            "SELECT channel FROM slack_cards_opening WHERE release_id = %s", [release_id]
        )
        return str(rows[0]["channel"]) if rows else None

    def open(self, release_id: str, channel: str) -> None:
        self.shared.execute(
            "INSERT INTO slack_cards_opening (release_id, channel) VALUES (%s, %s)"
            " ON CONFLICT (release_id) DO UPDATE SET channel = excluded.channel",
            [release_id, channel],
        )

    def add(self, release_id: str, channel: str, thread_ts: str, card_hash: str) -> Thread:
        with self.shared.transaction() as conn:  # the record and the intent cleared at once
            conn.execute("DELETE FROM slack_cards_opening WHERE release_id = %s", [release_id])
            conn.execute(
                "INSERT INTO slack_threads (release_id, channel, thread_ts, card_hash,"
                " report_uploaded) VALUES (%s, %s, %s, %s, 0) ON CONFLICT (release_id) DO UPDATE"
                " SET channel = excluded.channel, thread_ts = excluded.thread_ts,"
                " card_hash = excluded.card_hash, report_uploaded = 0, replied_through = 0,"
                " replying_through = 0, charted_through = 0, charting_through = 0,"
                " report_uploading = 0",
                [release_id, channel, thread_ts, card_hash],
            )
        return Thread(release_id, channel, thread_ts, card_hash, report_uploaded=False)

    def update(self, release_id: str, **values: object) -> None:
        if unknown := set(values) - THREAD_COLUMNS:
            raise ValueError(f"no thread column {sorted(unknown)}")
        assignments = ", ".join(f"{name} = %({name})s" for name in values)
        self.shared.execute(
            f"UPDATE slack_threads SET {assignments} WHERE release_id = %(release_id)s",
            {
                **{k: int(v) if isinstance(v, bool) else v for k, v in values.items()},
                "release_id": release_id,
            },
        )
