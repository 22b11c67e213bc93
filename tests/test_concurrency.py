"""Several starts and several processes on one database: the database keeps one active release
per service, and units of work wait for each other instead of failing."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.sim.ci import SimulatedCI
from bot.adapters.sqlite import store as sqlite_store
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.store import SqliteReleaseStore
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import EMBEDDED_MIGRATIONS, Wiring, bootstrap
from bot.domain.release import CommandRejected, Release
from bot.ports.ci import AbstractCI, Build
from bot.ports.store import AlreadyActive, DatabaseBusy
from bot.service import start_release
from tests.conftest import ROOT, report_of

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
FIRST = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="fix refunds"'
SECOND = 'payments-api 2.4.2 risk=medium ticket=CHG-2 changes="fix refunds again"'


def wired(path: Path) -> Wiring:
    return bootstrap(path, clock_start=START, chat=TerminalChat(io.StringIO()))


class CIThatLetsAnotherStartIn(AbstractCI):
    """The embedded CI, with another start run while this one builds: between the check for
    an active release and the insert, as two commands sent together interleave."""

    def __init__(self, ci: AbstractCI, meanwhile: Callable[[], object]) -> None:
        self.ci, self.meanwhile = ci, meanwhile

    def build(self, service: str, version: str, artifact: object, at: datetime) -> Build:
        return self.ci.build(service, version, artifact, at)  # type: ignore[arg-type]

    def publish(self, service: str, version: str, artifact: object, at: datetime) -> Build:
        self.meanwhile()
        return self.ci.publish(service, version, artifact, at)  # type: ignore[arg-type]


def test_two_starts_of_one_service_sent_together_store_one_and_refuse_the_other(
    tmp_path: Path,
) -> None:
    """Repro: both were stored, and both rolled out on the same target."""
    first, second = wired(tmp_path / "bot.db"), wired(tmp_path / "bot.db")  # two processes
    won: list[Release] = []

    def second_start() -> None:
        started = start_release(second.services, SECOND, "erin")
        assert isinstance(started, Release)
        won.append(started)

    assert isinstance(first.services.ci, SimulatedCI)
    racing = dataclasses.replace(
        first.services, ci=CIThatLetsAnotherStartIn(first.services.ci, second_start)
    )
    with pytest.raises(CommandRejected) as refused:
        start_release(racing, FIRST, "dave")
    assert str(refused.value).startswith(
        f"payments-api already has an active release: {won[0].id} (2.4.2, "
    )
    assert str(refused.value).endswith("; wait for it or roll it back")
    assert first.services.store.active_for_service("payments-api") == [won[0].id]
    assert [r["version"] for r in first.services.store.listing()] == ["2.4.2"]
    first.close()
    second.close()


def _release(line: str, wiring: Wiring) -> Release:
    started = start_release(wiring.services, line, "dave")
    assert isinstance(started, Release)
    return started


def test_no_save_makes_a_second_release_of_a_service_active(tmp_path: Path) -> None:
    with_one = wired(tmp_path / "a.db")
    active = _release(FIRST, with_one)
    store = with_one.services.store
    ended = active.model_copy(update={"id": "rel-ended", "status": "completed"})
    ended.revision = 0
    store.add(ended)
    ended.status = "rolling_out"  # as no command can: the database refuses it all the same
    with pytest.raises(AlreadyActive, match="payments-api already has an active release"):
        store.save(ended)
    assert store.active_for_service("payments-api") == [active.id]
    with pytest.raises(AlreadyActive):
        store.add(active.model_copy(update={"id": "rel-another"}))
    with_one.close()


def test_a_database_already_holding_two_active_releases_of_a_service_still_opens(
    tmp_path: Path,
) -> None:
    """A file from before the constraint: both releases go on to their end; no third starts."""
    template = _release(FIRST, wired(tmp_path / "template.db"))
    path = tmp_path / "old.db"
    old = Database(path)
    for each in EMBEDDED_MIGRATIONS:
        each.apply(old.db, stop_before="one_active_per_service")
    for n, release_id in enumerate(("rel-old-a", "rel-old-b")):
        release = template.model_copy(update={"id": release_id})
        old.db.table("releases").insert(
            {
                "id": release_id,
                "service": "payments-api",
                "version": release.version,
                "status": release.status,
                "active": 1,
                "revision": release.revision,
                "created_at": f"2026-11-24T1{n}:00:00+00:00",
                "updated_at": f"2026-11-24T1{n}:00:00+00:00",
                "state": release.model_dump_json(),
                "narrate": 0,
            }
        )
    old.close()

    wiring = wired(path)
    store = wiring.services.store
    assert store.active_for_service("payments-api") == ["rel-old-a", "rel-old-b"]
    wiring.ticker.tick()  # both move on
    assert all(store.get(i).revision > template.revision for i in ("rel-old-a", "rel-old-b"))
    with pytest.raises(CommandRejected, match="already has an active release: rel-old-a"):
        start_release(wiring.services, SECOND, "dave")
    wiring.close()


def test_a_write_lock_held_past_the_busy_timeout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    Database(path).migrate(*EMBEDDED_MIGRATIONS)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a unit of work
    impatient = Database(path, busy_timeout=0.05)
    store = SqliteReleaseStore(impatient)
    with pytest.raises(DatabaseBusy) as busy:
        store.save_clock(START)
    assert str(busy.value) == (
        f"the database {path} stayed locked by another release-bot process for 0.05s; "
        "try again when its command has finished, or point --db at another file"
    )
    other.execute("COMMIT")
    store.save_clock(START)  # and once it is free, the same unit of work goes through
    assert store.load_clock() == START
    impatient.close()
    other.close()


def test_migrations_already_applied_take_no_write_lock(tmp_path: Path) -> None:
    """A CLI command beside a worker in the middle of a long tick opens without waiting."""
    path = tmp_path / "bot.db"
    Database(path).migrate(*EMBEDDED_MIGRATIONS, sqlite_store.migrations)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    opened = Database(path, busy_timeout=0.05)
    opened.migrate(*EMBEDDED_MIGRATIONS)
    assert SqliteReleaseStore(opened).active_ids() == []
    other.execute("COMMIT")
    opened.close()
    other.close()


def _run(line: str, db: Path, out: Path, approver: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", line, "--approve-as", approver, "--db", str(db),
         "--clock-start", "2026-11-24T14:00:00Z", "--json-out", str(out)],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "USER": "tester"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_three_runs_at_once_on_one_new_database(tmp_path: Path) -> None:
    """Repro: ``database is locked`` tracebacks, and two releases of one service stored.
    Three processes migrate one new file together, then two run releases of two services
    (one standing by while the other's ticks move both) and the third is refused."""
    db = tmp_path / "shared.db"
    lines = {
        "a": (FIRST, "alice"),
        "b": (SECOND, "alice"),
        "c": ('search-api 7.1.0 risk=low ticket=CHG-3 changes="faster"', "carol"),
    }
    procs = {k: _run(line, db, tmp_path / f"{k}.json", who) for k, (line, who) in lines.items()}
    done = {k: p.communicate(timeout=300) for k, p in procs.items()}
    codes = {k: p.returncode for k, p in procs.items()}
    for _, stderr in done.values():
        assert "Traceback" not in stderr, stderr
    refused = [k for k in ("a", "b") if codes[k] != 0]
    assert len(refused) == 1, done
    assert codes[refused[0]] == 1
    assert "payments-api already has an active release" in done[refused[0]][1]
    for k in {"a", "b", "c"} - set(refused):
        assert codes[k] == 0, done[k][1]
        assert report_of(tmp_path / f"{k}.json")["status"] == "completed"
    with sqlite3.connect(db) as conn:
        services = [r[0] for r in conn.execute("SELECT service FROM releases ORDER BY service")]
        delivered = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM deliveries")
        total, distinct = delivered.fetchone()
    assert services == ["payments-api", "search-api"]
    assert total == distinct
