"""The ticker's leases: of several processes on one database, each moves the releases it
claims (each once a tick); only the leader moves the virtual clock, delivers and narrates, and
a follower takes the lead when it stops or its lease runs out."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.adapters.sqlite.leases import SqliteLeases
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.domain.release import Release
from bot.ports.leases import holder_gone, this_host
from bot.scheduler import LEASE, Ticker
from bot.service import approve, start_release
from tests.conftest import migrated_db

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="fix refunds"'
T0 = datetime(2030, 1, 1, tzinfo=UTC)  # the lease's real time, moved by hand here


class WallClock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def process(path: Path, wall: Callable[[], datetime]) -> tuple[Wiring, Ticker, io.StringIO]:
    """One process on the database at ``path``: its wiring and its ticker on ``wall``."""
    out = io.StringIO()
    wiring = bootstrap(path, clock_start=START, chat=TerminalChat(out))
    leases = wiring.ticker.leases
    ticker = Ticker(wiring.services, wiring.virtual_clock, leases=leases, now=wall)
    return wiring, ticker, out


def test_one_conditional_write_takes_renews_and_hands_over_the_lease() -> None:
    leases = SqliteLeases(migrated_db())
    later = T0 + timedelta(seconds=30)
    assert leases.acquire(LEASE, "a", T0, later)
    assert not leases.acquire(LEASE, "b", T0 + timedelta(seconds=29), later)
    assert leases.acquire(LEASE, "a", T0 + timedelta(seconds=29), later + timedelta(seconds=29))
    current = leases.current(LEASE)
    assert current is not None and current.holder == "a"
    assert not leases.acquire(LEASE, "b", later, later)  # renewed: not expired yet
    assert leases.acquire(LEASE, "b", later + timedelta(seconds=30), later + timedelta(60))
    leases.release(LEASE, "a")  # not a's any more: left alone
    assert (held := leases.current(LEASE)) is not None and held.holder == "b"
    leases.release(LEASE, "b")
    assert leases.current(LEASE) is None
    assert leases.acquire(LEASE, "a", T0, later)


def test_two_processes_ticking_in_turn_move_each_release_once_and_deliver_once(
    tmp_path: Path,
) -> None:
    """Repro: two ``serve``s both ticked (129 failed ticks) and posted 11 cards for 6."""
    wall = WallClock()
    path = tmp_path / "bot.db"
    (one, one_ticker, one_out), (two, two_ticker, two_out) = (
        process(path, wall),
        process(path, wall),
    )
    started = start_release(one.services, LINE, "dave")
    assert isinstance(started, Release)
    approve(one.services, started.id, "alice")
    store = one.services.store
    revisions = [store.get(started.id).revision]
    first_output = one_out.getvalue()
    for _ in range(6):
        assert one_ticker.tick() == [started.id]
        revisions.append(store.get(started.id).revision)
        assert two_ticker.tick() == []  # claimed this tick by one
        assert store.get(started.id).revision == revisions[-1]
        wall.at += timedelta(seconds=one.services.tick_seconds)
    assert revisions == sorted(set(revisions))  # one move per round, by one replica only
    assert two_out.getvalue() == ""  # nothing delivered by the follower
    assert len(one_out.getvalue()) > len(first_output)
    assert store.undelivered() == []
    _, facts = two_ticker.healthy()
    assert (facts["leading"], facts["leader"]) == (False, one_ticker.holder)
    assert one_ticker.healthy()[1]["leading"] is True
    assert two_ticker.narrate() == 0
    one.close()
    two.close()


def test_followers_move_releases_and_take_the_lead_when_the_leader_stops_or_its_lease_runs_out(
    tmp_path: Path,
) -> None:
    wall = WallClock()
    path = tmp_path / "bot.db"
    (one, one_ticker, _), (two, two_ticker, _) = process(path, wall), process(path, wall)
    (three, three_ticker, _) = process(path, wall)
    started = start_release(one.services, LINE, "dave")
    assert isinstance(started, Release)
    approve(one.services, started.id, "alice")
    store = one.services.store
    assert one_ticker.tick() == [started.id]
    assert two_ticker.tick() == [] and three_ticker.tick() == []

    one_ticker.stop()  # gives its leases up: the next to tick leads and moves at once
    assert two_ticker.tick() == [started.id]
    assert two_ticker.holding and three_ticker.tick() == []

    # two dies without a word: its release is claimed again on the next tick, by a
    # follower; the lead passes once its lease runs out
    lease = SqliteLeases(three.database).current(LEASE)
    assert lease is not None and lease.holder == two_ticker.holder
    wall.at = lease.expires_at - timedelta(milliseconds=1)
    before = store.get(started.id).revision
    assert three_ticker.tick() == [started.id]
    assert not three_ticker.holding and store.get(started.id).revision > before
    wall.at = lease.expires_at + timedelta(milliseconds=1)
    assert three_ticker.tick() == [started.id] and three_ticker.holding
    # virtual time goes on from where the leaders left it, never back
    assert three.virtual_clock is not None and two.virtual_clock is not None
    assert three.virtual_clock.now() == two.virtual_clock.now() + timedelta(seconds=10)
    for each in (one, two, three):
        each.close()


def test_run_until_beside_a_leader_finishes_its_release_and_takes_over(tmp_path: Path) -> None:
    """``release-bot run`` beside a running worker: the worker leads; when it goes, the run
    leads and ticks itself to the end."""
    path = tmp_path / "bot.db"
    (worker, worker_ticker, _), (run, run_ticker, _) = (
        process(path, lambda: datetime.now(UTC)),
        process(path, lambda: datetime.now(UTC)),
    )
    started = start_release(run.services, LINE, "dave")
    assert isinstance(started, Release)
    approve(run.services, started.id, "alice")
    assert worker_ticker.tick() == [started.id]  # the worker leads
    store = run.services.store

    def done() -> bool:
        release = store.get(started.id)
        return release.step_index >= 1 or not release.is_active

    runner = threading.Thread(target=run_ticker.run_until, args=(done,))
    runner.start()
    try:
        for _ in range(3):
            worker_ticker.tick()
        assert run_ticker.holding is False
        worker_ticker.stop()
        runner.join(timeout=120)  # a hang guard: the run takes over and reaches step 1
    finally:
        if runner.is_alive():
            worker_ticker.release_lease()
            runner.join(timeout=120)
    assert not runner.is_alive()
    assert done()
    assert run_ticker.holding is False  # given up when it returned
    worker.close()
    run.close()


def test_a_holder_killed_on_this_host_is_taken_over_without_waiting_out_its_lease(
    tmp_path: Path,
) -> None:
    """``release-bot resume`` right after a ``run`` was killed: its lease is not waited out."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    wall = WallClock()
    wiring, ticker, _ = process(tmp_path / "bot.db", wall)
    leases = SqliteLeases(wiring.database)
    dead = f"{this_host()}:{gone.stdout.strip()}:0000"
    assert leases.acquire(LEASE, dead, T0, T0 + timedelta(seconds=30))
    assert ticker.take_lease()
    remote = "elsewhere:1:0000"  # a holder on another host keeps its lease until it expires
    ticker.release_lease()
    assert leases.acquire(LEASE, remote, T0, T0 + timedelta(seconds=30))
    assert not ticker.take_lease()
    wiring.close()


def test_a_holder_in_another_pid_namespace_of_this_host_name_is_never_taken_as_gone() -> None:
    """Two containers with host networking share the host name but number their processes
    each on its own: a pid missing here says nothing about the other container's holder,
    which must be waited out, not taken over (two tickers would run)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = gone.stdout.strip()
    assert holder_gone(f"{this_host()}:{pid}:0000")
    assert not holder_gone(f"{socket.gethostname()}/4026000000:{pid}:0000")
    if this_host() != socket.gethostname():  # a PID namespace was read
        assert not holder_gone(f"{socket.gethostname()}:{pid}:0000")


def test_one_process_ticking_faster_than_its_interval_moves_its_releases_every_tick(
    tmp_path: Path,
) -> None:
    """A claim lasts until the claimer's next tick: ticks by hand (tests) or ``run`` at full
    speed are not held back to one move per interval of real time."""
    wall = WallClock()
    wiring, ticker, _ = process(tmp_path / "bot.db", wall)
    started = start_release(wiring.services, LINE, "dave")
    assert isinstance(started, Release)
    approve(wiring.services, started.id, "alice")
    store = wiring.services.store
    revisions = []
    for _ in range(3):
        assert ticker.tick() == [started.id]
        revisions.append(store.get(started.id).revision)
    assert revisions == sorted(set(revisions))
    wiring.close()


class SlowBatchWall(WallClock):
    """Real time for a replica whose batch outlasts its claims: from the ``late``-th reading
    on, ``slow`` seconds have passed, and at that moment ``meanwhile`` runs (another
    replica's tick)."""

    def __init__(self, late: int, slow: float, meanwhile: Callable[[datetime], None]) -> None:
        super().__init__()
        self.readings, self.late, self.slow, self.meanwhile = 0, late, slow, meanwhile

    def __call__(self) -> datetime:
        self.readings += 1
        if self.readings == self.late:
            self.at += timedelta(seconds=self.slow)
            self.meanwhile(self.at)
        return self.at


def test_a_release_whose_claim_ran_out_in_a_slow_batch_is_left_to_the_replica_that_took_it(
    tmp_path: Path,
) -> None:
    """Repro: a batch moved slower than its claims last was claimed again by another replica,
    and both moved its later releases (the router step ran twice)."""
    path = tmp_path / "bot.db"
    wiring, _, _ = process(path, WallClock())
    ids = []
    for service, approver in (("payments-api", "alice"), ("search-api", "carol")):
        started = start_release(wiring.services, LINE.replace("payments-api", service), "dave")
        assert isinstance(started, Release)
        approve(wiring.services, started.id, approver)
        ids.append(started.id)
    first, second = sorted(ids)
    leases = SqliteLeases(wiring.database)
    taken: list[str] = []

    def other_replica_ticks(at: datetime) -> None:  # the first claims ran out: it takes them
        taken.extend(leases.claim_releases("other", at, at + timedelta(seconds=9), 25, due=at))

    # readings: the lease, the tick's start, the claim, the first release's check, then 20 s
    # later the second's (its claim, 9 s, ran out and the other replica took both)
    wall = SlowBatchWall(late=5, slow=20, meanwhile=other_replica_ticks)
    ticker = Ticker(wiring.services, wiring.virtual_clock, leases=wiring.ticker.leases, now=wall)
    revision = wiring.services.store.get(second).revision
    assert ticker.tick() == [first]
    assert taken == [first, second]
    assert wiring.services.store.get(second).revision == revision  # left to "other"
    wiring.close()
