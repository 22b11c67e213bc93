"""The audit trail proves itself: each event carries the hash of the one before it (and an HMAC
with ``RELEASE_BOT_AUDIT_KEY``), a chain head catches a deleted tail, and ``audit verify``
names the first broken link of a forged insert, an edit, a delete, a reorder.

Trails are written by the real bootstrap on a file, tampered with through sqlite3 as an
attacker with the file would, and checked through the real command (``cli``)."""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.sqlite import store as sqlite_store
from bot.adapters.sqlite.database import Database
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import bootstrap
from bot.domain.release import Release
from bot.service import approve, reject, report, start_release
from tests.conftest import cli, migrated_db

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
PAYMENTS = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
SEARCH = 'search-api 1.2.0 risk=medium ticket=CHG-2 changes="new ranking"'
KEY = "a-long-secret-kept-out-of-the-database"


def written(path: Path, key: str | None = None) -> list[str]:
    """Two releases' trails in ``path``: payments-api rejected, then search-api approved.
    Returns their ids, in the order their events begin."""
    wiring = bootstrap(
        path,
        clock_start=START,
        chat=TerminalChat(io.StringIO()),
        **({"audit_key": key.encode()} if key else {}),
    )
    services = wiring.services
    try:
        first = start_release(services, PAYMENTS, "dave")
        assert isinstance(first, Release)
        reject(services, first.id, "alice", "not this week")
        second = start_release(services, SEARCH, "dave")
        assert isinstance(second, Release)
        if second.status == "awaiting_approval":
            approve(services, second.id, "carol")
        return [first.id, second.id]
    finally:
        wiring.close()


def tamper(path: Path, *sql: str, params: list[tuple[Any, ...]] | None = None) -> None:
    """What someone with the file can do: drop the triggers, then anything."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
        for i, statement in enumerate(sql):
            conn.execute(statement, (params or [])[i] if params else ())
    conn.close()


def rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    out = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    conn.close()
    return out


def verify(path: Path, *args: str, key: str | None = None) -> tuple[int, str]:
    env = {"RELEASE_BOT_AUDIT_KEY": key} if key else None
    done = cli("audit", "verify", "--db", str(path), *args, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, (done.stdout + done.stderr).strip()


def forge(path: Path, after: dict[str, Any], **fields: Any) -> None:
    """A forger who read the code: an event hashed and linked as release-bot would, the chain
    head moved to it; only the key is out of reach."""
    from bot.domain.audit import event_hash

    event = {"release_id": after["release_id"], "at": after["at"], "actor": "mallory",
             "action": "approved", "details": "approved by mallory", "data": "{}"} | fields  # fmt: skip
    hash_ = event_hash(after["hash"], event["release_id"], event["at"], event["actor"],
                       event["action"], event["details"], json.loads(event["data"]))  # fmt: skip
    tamper(
        path,
        "INSERT INTO events (id, release_id, at, actor, action, details, data, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "UPDATE audit_head SET last_id = ?, hash = ?",
        params=[
            (after["id"] + 1, *event.values(), after["hash"], hash_),
            (after["id"] + 1, hash_),
        ],
    )


# -- an honest trail ------------------------------------------------------------------------------


def test_an_intact_trail_verifies_with_its_count(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    _, second = written(path)
    total = len(rows(path))
    code, out = verify(path)
    assert code == 0 and out.startswith(f"OK: {total} events verified"), out
    mine = sum(1 for r in rows(path) if r["release_id"] == second)
    code, out = verify(path, "--release", second[:12])
    assert code == 0 and out.startswith(f"OK: {mine} events of {second} verified"), out
    code, out = verify(path, "--release", "rel-nothing")
    assert code == 1 and out == (
        "error: no audit events of release rel-nothing; `release-bot list` shows the releases"
    )


# -- the repro: forged inserts, edits, deletes -----------------------------------------------------


def test_a_forged_insert_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first, _ = written(path)
    tamper(
        path,
        "INSERT INTO events (release_id, at, actor, action, details, data) "
        "VALUES (?, '2026-11-24T14:05:00+00:00', 'mallory', 'approved', 'approved', '{}')",
        params=[(first,)],
    )
    forged = rows(path)[-1]["id"]
    code, out = verify(path)
    assert code == 1
    assert out == (
        f"error: BROKEN: event #{forged} ({first}): inserted: it carries no hash: "
        "it was not written by release-bot"
    )


def test_a_forger_who_recomputes_the_hashes_is_caught_only_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    written(path, key=KEY)
    last = rows(path)[-1]
    forge(path, last)
    # Without the key the forgery is a valid chain: the README says so.
    code, out = verify(path)
    assert code == 0 and "HMACs not checked: RELEASE_BOT_AUDIT_KEY is not set" in out, out
    code, out = verify(path, key=KEY)
    assert code == 1
    assert f"event #{last['id'] + 1} ({last['release_id']}): inserted: it carries no HMAC" in out
    # A wrong key is no key: every HMAC fails from the first signed event.
    code, out = verify(path, key="another-key-entirely")
    assert code == 1 and "event #1 " in out and "its HMAC does not match" in out, out


def test_an_edit_after_drop_trigger_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first, _ = written(path)
    rejected = next(r for r in rows(path) if r["action"] == "rejected")
    tamper(path, "UPDATE events SET actor = 'bob' WHERE id = ?", params=[(rejected["id"],)])
    code, out = verify(path)
    assert code == 1
    assert out == (
        f"error: BROKEN: event #{rejected['id']} ({first}): edited: its stored fields no "
        "longer match its hash"
    )


def test_an_edit_with_the_hashes_recomputed_is_caught_by_the_key(tmp_path: Path) -> None:
    from bot.domain.audit import event_hash

    path = tmp_path / "bot.db"
    written(path, key=KEY)
    events = rows(path)
    target = next(r for r in events if r["action"] == "rejected")
    # Rewrite the actor, then relink every later event, and move the head: a valid chain.
    prev = target["prev_hash"]
    statements, params = [], []
    for row in events[events.index(target) :]:
        actor = "bob" if row is target else row["actor"]
        hash_ = event_hash(prev, row["release_id"], row["at"], actor, row["action"],
                           row["details"], json.loads(row["data"]))  # fmt: skip
        statements.append("UPDATE events SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?")
        params.append((actor, prev, hash_, row["id"]))
        prev = hash_
    statements.append("UPDATE audit_head SET hash = ?")
    params.append((prev,))
    tamper(path, *statements, params=params)
    assert verify(path)[0] == 0  # hashes alone cannot tell
    code, out = verify(path, key=KEY)
    assert code == 1
    assert f"event #{target['id']} ({target['release_id']}): edited: its HMAC does not match" in out


def test_a_delete_in_the_middle_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    written(path)
    middle = rows(path)[3]["id"]
    tamper(path, "DELETE FROM events WHERE id = ?", params=[(middle,)])
    code, out = verify(path)
    assert code == 1
    assert out == (
        f"error: BROKEN: event #{middle + 1} (release unknown): deleted: event #{middle} "
        "before it is missing"
    )


def test_a_deleted_tail_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    written(path)
    events = rows(path)
    last = events[-1]["id"]
    tamper(path, "DELETE FROM events WHERE id >= ?", params=[(last - 1,)])
    code, out = verify(path)
    assert code == 1
    assert out == (
        f"error: BROKEN: event #{last - 1} (release unknown): deleted: events #{last - 1}–"
        f"#{last} at the end are missing (the chain head names #{last} as the last one written)"
    )


def test_a_deleted_release_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first, second = written(path)
    gone = [r["id"] for r in rows(path) if r["release_id"] == first]
    tamper(
        path,
        "DELETE FROM deliveries",
        "DELETE FROM events WHERE release_id = ?",
        "DELETE FROM releases WHERE id = ?",
        params=[(), (first,), (first,)],
    )
    code, out = verify(path)
    assert code == 1
    assert f"event #{gone[-1] + 1} (release unknown): deleted: event #1–#{gone[-1]}" in out
    # The surviving release's own check says so too: its first link points at nothing.
    code, out = verify(path, "--release", second)
    assert code == 1 and "deleted" in out


def test_events_out_of_order_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first, _ = written(path)
    a, b = rows(path)[1]["id"], rows(path)[2]["id"]
    tamper(
        path,
        "UPDATE events SET id = -1 WHERE id = ?",
        "UPDATE events SET id = ? WHERE id = ?",
        "UPDATE events SET id = ? WHERE id = -1",
        params=[(a,), (a, b), (b,)],
    )
    code, out = verify(path)
    assert code == 1
    assert out == (
        f"error: BROKEN: event #{a} ({first}): out of order: it follows event #{b} in the "
        f"chain, not #{a - 1}"
    )


def test_the_report_of_a_tampered_trail_says_it_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first, _ = written(path)
    tamper(
        path,
        "INSERT INTO events (release_id, at, actor, action, details, data) "
        "VALUES (?, '2026-11-24T14:05:00+00:00', 'mallory', 'approved', 'approved', '{}')",
        params=[(first,)],
    )
    wiring = bootstrap(path, clock_start=START, chat=TerminalChat(io.StringIO()))
    try:
        contract = report(wiring.services, first)
    finally:
        wiring.close()
    assert contract.summary.startswith("The audit trail is broken at event #")
    failed = [c for c in contract.pre_deployment.checks if c.status == "fail"]
    assert [c.check for c in failed] == ["audit_trail"]
    assert "inserted" in failed[0].details


# -- existing databases, export, long chains -------------------------------------------------------


def test_events_written_before_the_chain_are_hashed_by_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    database = Database(path)
    sqlite_store.migrations.apply(database.db)  # the version before the chain
    database.db.table("releases").insert(
        {
            "id": "rel-old",
            "service": "payments-api",
            "version": "1.0.0",
            "status": "completed",
            "active": 0,
            "revision": 3,
            "created_at": "2026-01-01T00:00:00+00:00",
            "updated_at": "2026-01-01T00:00:00+00:00",
            "state": "{}",
            "narrate": 0,
        }
    )
    database.db.table("events").insert_all(
        {
            "release_id": "rel-old",
            "at": f"2026-01-01T00:0{i}:00+00:00",
            "actor": "release-bot",
            "action": f"step_{i}",
            "details": f"step {i}",
            "data": json.dumps({"i": i}),
        }
        for i in range(5)
    )
    database.close()
    code, out = verify(path)
    assert code == 0 and out.startswith("OK: 5 events verified"), out
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE events SET actor = 'bob' WHERE id = 1")
        raise AssertionError("the append-only trigger is back")
    except sqlite3.IntegrityError as exc:
        assert "append-only" in str(exc)
    finally:
        conn.close()


def test_export_round_trips(tmp_path: Path) -> None:
    from bot.domain.audit import AuditRecord, ChainHead, verify_chain

    path = tmp_path / "bot.db"
    first, _ = written(path, key=KEY)
    out = tmp_path / "trail.jsonl"
    done = cli("audit", "export", "--db", str(path), "--out", str(out))
    assert done.returncode == 0 and done.stderr.strip() == (
        f"wrote {len(rows(path))} events to {out}"
    )
    records = [AuditRecord.model_validate_json(line) for line in out.read_text().splitlines()]
    assert [(r.id, r.action, r.actor, r.details) for r in records] == [
        (r["id"], r["action"], r["actor"], r["details"]) for r in rows(path)
    ]
    last = records[-1]
    assert last.hash is not None
    from bot.domain.audit import head_mac

    head = ChainHead(
        last_id=last.id, hash=last.hash, mac=head_mac(KEY.encode(), last.id, last.hash)
    )
    assert verify_chain(records, head, KEY.encode()).ok
    # To stdout by default, one release with --release.
    only = cli("audit", "export", "--db", str(path), "--release", first, check=True).stdout
    assert [json.loads(line)["release_id"] for line in only.splitlines()] == [
        r.release_id for r in records if r.release_id == first
    ]


events_strategy = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {
                "actor": st.text(max_size=8),
                "action": st.sampled_from(["approved", "paused", "alert", "step_started"]),
                "details": st.text(max_size=30),
                "data": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
            }
        ),
        min_size=1,
        max_size=5,
    ),
    min_size=1,
    max_size=40,
)


@settings(deadline=None, max_examples=25)
@given(batches=events_strategy, key=st.none() | st.binary(min_size=1, max_size=16), cut=st.data())
def test_a_long_chain_verifies_and_any_deleted_event_is_seen(
    batches: list[list[dict[str, Any]]], key: bytes | None, cut: st.DataObject
) -> None:
    from bot.adapters.sqlite.audit import SqliteAuditTrail, append_chained

    database = migrated_db()
    try:
        db = database.db
        db.table("releases").insert({"id": "rel-1", "service": "s", "version": "1", "status": "x",
                                     "active": 0, "revision": 0, "created_at": "", "updated_at": "",
                                     "state": "{}", "narrate": 0})  # fmt: skip
        for batch in batches:
            with database.lock, db.atomic():
                append_chained(
                    db,
                    [
                        {
                            "release_id": "rel-1",
                            "at": "2026-11-24T14:00:00+00:00",
                            **e,
                            "data": json.dumps(e["data"]),
                        }
                        for e in batch
                    ],
                    key,
                )
        trail = SqliteAuditTrail(database, key)
        verdict = trail.verify()
        total = sum(len(b) for b in batches)
        assert verdict.ok and verdict.count == total, verdict.line()
        victim = cut.draw(st.integers(min_value=1, max_value=total))
        db.execute("DROP TRIGGER events_append_only_delete")
        db.execute("DELETE FROM events WHERE id = ?", [victim])
        broken = trail.verify().broken
        assert broken is not None and broken.kind == "deleted"
    finally:
        database.close()


def test_a_release_whose_event_was_rewritten_with_its_hash_fails_its_own_check(
    tmp_path: Path,
) -> None:
    """The rewritten event's own hash matches: the break shows at the next link, which may
    belong to another release; the rewritten release's check (and its report) must fail."""
    from bot.domain.audit import event_hash

    path = tmp_path / "bot.db"
    first, second = written(path)
    events = rows(path)
    target = next(
        r for r, after in itertools.pairwise(events)
        if r["release_id"] == first and after["release_id"] == second
    )  # fmt: skip
    hash_ = event_hash(target["prev_hash"], first, target["at"], "bob", target["action"],
                       target["details"], json.loads(target["data"]))  # fmt: skip
    tamper(
        path,
        "UPDATE events SET actor = 'bob', hash = ? WHERE id = ?",
        params=[(hash_, target["id"])],
    )
    assert verify(path)[0] == 1
    code, out = verify(path, "--release", first)
    assert code == 1, out
    assert f"#{target['id']} was rewritten" in out
    wiring = bootstrap(path, clock_start=START, chat=TerminalChat(io.StringIO()))
    try:
        contract = report(wiring.services, first)
    finally:
        wiring.close()
    assert contract.summary.startswith("The audit trail is broken at event #")
