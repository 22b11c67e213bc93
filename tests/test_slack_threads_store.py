"""Where each release's Slack thread is, on SQLite (one process) and on PostgreSQL (shared by
the replicas): the same answers from both."""

from __future__ import annotations

import pytest

from bot.adapters.sqlite.database import Database
from bot.slack import chat
from bot.slack.chat import AbstractSlackThreads, SqliteSlackThreads, Thread
from bot.slack.pg_threads import PostgresSlackThreads, migrations
from tests.conftest import postgres_stores_for


@pytest.fixture(params=["sqlite", "postgres"])
def threads(request: pytest.FixtureRequest) -> AbstractSlackThreads:
    if request.param == "postgres":
        shared = postgres_stores_for(request).shared
        assert shared is not None
        shared.migrate(migrations)
        return PostgresSlackThreads(shared)
    database = Database(":memory:")
    database.migrate(chat.migrations)
    request.addfinalizer(database.close)
    return SqliteSlackThreads(database)


def test_a_thread_is_found_by_release_and_by_place_and_keeps_its_progress(
    threads: AbstractSlackThreads,
) -> None:
    assert threads.get("rel-1") is None and threads.opening("rel-1") is None
    threads.open("rel-1", "C1")  # the intent, before the post
    assert threads.opening("rel-1") == "C1"
    added = threads.add("rel-1", "C1", "111.1", "hash-a")
    assert threads.opening("rel-1") is None
    assert threads.get("rel-1") == added
    threads.update("rel-1", card_hash="hash-b", report_uploaded=True, replied_through=7)
    threads.update("rel-1", replying_through=9)
    found = threads.find("C1", "111.1")
    assert found is not None and found.release_id == "rel-1"
    assert (found.card_hash, found.report_uploaded, found.replied_through) == ("hash-b", True, 7)
    assert (found.charted_through, found.replying_through) == (0, 9)
    assert (found.charting_through, found.report_uploading) == (0, False)
    threads.update("rel-1", charting_through=12, report_uploading=True)  # the uploads' intents
    assert threads.get("rel-1") == Thread(
        "rel-1", "C1", "111.1", "hash-b", True, 7, 9, charting_through=12, report_uploading=True
    )
    assert threads.find("C1", "222.2") is None
