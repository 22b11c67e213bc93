"""The chaos run's invariants (bench/chaos/invariants.py) catch what they claim to: a round's
database and fake Slack laid out by hand, clean and then with each kind of damage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from slack_sdk import WebClient

from bench.chaos.invariants import check
from bench.chaos.world import CHANNEL, World
from tests.fake_slack import FakeSlack

TABLES = """
CREATE TABLE releases (id TEXT PRIMARY KEY, service TEXT, version TEXT, status TEXT,
                       created_at TEXT, state TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, release_id TEXT, action TEXT, details TEXT);
CREATE TABLE deliveries (event_id INTEGER PRIMARY KEY);
CREATE TABLE sim_traffic (service TEXT, env TEXT, region TEXT, state TEXT);
CREATE TABLE slack_threads (release_id TEXT PRIMARY KEY, channel TEXT, thread_ts TEXT);
"""


def _world(tmp: Path, fake: FakeSlack, second_begins_at: int = 6) -> World:
    """Two releases of one service, the second begun at event ``second_begins_at``, each
    with a thread of one reply; the router serves the second's version."""
    world = World(tmp, fake)
    db = sqlite3.connect(world.db)
    db.executescript(TABLES)
    state = json.dumps({"channel": CHANNEL})
    for n, (release, version) in enumerate((("rel-a", "1.0.1"), ("rel-b", "1.0.2"))):
        db.execute("INSERT INTO releases VALUES (?, 'svc', ?, 'completed', ?, ?)",
                   (release, version, f"2026-01-0{n + 1}", state))  # fmt: skip
        card = fake_post(fake, text=f"card {release}")
        db.execute("INSERT INTO slack_threads VALUES (?, ?, ?)", (release, CHANNEL, card))
        fake_post(fake, text=f"{release} completed", thread_ts=card)
    events = [(1, "rel-a", "rollout_started"), (3, "rel-a", "step_started"),
              (5, "rel-a", "release_completed"), (second_begins_at, "rel-b", "rollout_started"),
              (9, "rel-b", "release_completed")]  # fmt: skip
    db.executemany("INSERT INTO events VALUES (?, ?, ?, '')", events)
    db.executemany("INSERT INTO deliveries VALUES (?)", [(e[0],) for e in events])
    served = {"stable_version": "1.0.2", "new_version": None, "new_weight": 0.0}
    db.execute("INSERT INTO sim_traffic VALUES ('svc', 'prod', 'r1', ?)", (json.dumps(served),))
    db.commit()
    db.close()
    return world


def fake_post(fake: FakeSlack, text: str, thread_ts: str | None = None) -> str:
    client = WebClient(token="xoxb-test", base_url=fake.url)
    extra = {"thread_ts": thread_ts} if thread_ts else {}
    return str(client.chat_postMessage(channel=CHANNEL, text=text, **extra)["ts"])


def test_a_clean_round_survives(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        world = _world(tmp_path, fake)
        check(world, {"rel-a", "rel-b"}, slack=True)
    assert world.outcome.survived, world.outcome.notes


def test_each_kind_of_damage_is_counted(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        world = _world(tmp_path, fake, second_begins_at=2)  # rel-b began before rel-a ended
        threads = world.rows("SELECT thread_ts FROM slack_threads WHERE release_id = 'rel-a'")
        fake_post(fake, text="rel-a completed", thread_ts=threads[0]["thread_ts"])  # again
        db = sqlite3.connect(world.db)
        db.execute("DELETE FROM deliveries WHERE event_id = 9")
        db.execute("UPDATE releases SET status = 'paused' WHERE id = 'rel-a'")
        db.execute("UPDATE sim_traffic SET state = json_set(state, '$.new_weight', 0.5)")
        db.commit()
        db.close()
        check(world, {"rel-a", "rel-b", "rel-gone"}, slack=True)
    outcome = world.outcome
    notes = "\n".join(outcome.notes)
    assert "rel-gone was started but is not in the database" in notes
    assert "rel-a is left paused" in notes
    assert "rel-a and rel-b of svc were active together" in notes
    assert "still sends 0.5" in notes
    assert "1 events never delivered" in notes
    assert "'rel-a completed' posted 2 times" in notes
    assert (outcome.lost, outcome.doubled) == (4, 2) and not outcome.survived


def test_a_post_named_twice_is_counted_even_when_its_text_changed(tmp_path: Path) -> None:
    """A card posted again, and a reply posted again with more events (other text): the
    metadata the bot puts on each post tells."""
    with FakeSlack() as fake:
        world = _world(tmp_path, fake)
        client = WebClient(token="xoxb-test", base_url=fake.url)
        card = str(client.chat_postMessage(channel=CHANNEL, text="card")["ts"])

        def named(text: str, post: str, thread_ts: str | None = None, **more: int) -> None:
            payload = {"release_id": "rel-a", "post": post, **more}
            extra = {"thread_ts": thread_ts} if thread_ts else {}
            metadata = {"event_type": "release_bot_post", "event_payload": payload}
            client.chat_postMessage(channel=CHANNEL, text=text, metadata=metadata, **extra)

        named("card", "card")
        named("card", "card")
        named("events 1 to 3", "reply:3", card, first_event=1)
        named("events 1 to 5", "reply:5", card, first_event=1)
        named("event 6", "reply:6", card, first_event=6)
        check(world, {"rel-a", "rel-b"}, slack=True)
    notes = "\n".join(world.outcome.notes)
    assert "rel-a: its status card is in Slack 2 times" in notes
    assert "rel-a: events 1-3 are in two replies" in notes
    assert "event 6" not in notes and "6-" not in notes


def test_a_file_shared_twice_in_a_thread_is_counted(tmp_path: Path) -> None:
    """An upload made again after a kill: the same file name twice in one thread (another
    release's file of another name is not a double)."""
    with FakeSlack() as fake:
        world = _world(tmp_path, fake)
        client = WebClient(token="xoxb-test", base_url=fake.url)
        threads = {
            r["release_id"]: r["thread_ts"] for r in world.rows("SELECT * FROM slack_threads")
        }
        for release, name in (
            ("rel-a", "rel-a.json"),
            ("rel-a", "rel-a.json"),
            ("rel-b", "rel-b.json"),
            ("rel-a", "rel-a-step0-4.png"),
        ):
            client.files_upload_v2(
                channel=CHANNEL, thread_ts=threads[release], content=b"{}", filename=name
            )
        check(world, {"rel-a", "rel-b"}, slack=True)
    notes = "\n".join(world.outcome.notes)
    assert world.outcome.doubled == 1, notes
    assert "rel-a: file rel-a.json is in its thread 2 times" in notes
