"""The reconcile tick never holds the database's write lock across a network call: the router
and the metrics are asked outside its transaction, so another writer on the same database
file (a command, another process) goes on meanwhile; a command saved while the tick waited
on the network is kept, and the tick's step is dropped and redone at the next tick, its
judged window written once.

The real bootstrap on a database file (simulator, virtual clock); the doubles wrap the
simulated router and metrics and, at each call, try the write lock from a second connection."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.domain.observations import (
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TrafficState,
    TransactionResult,
    WindowSample,
)
from bot.domain.release import VERIFY_KINDS, Release
from bot.ports.metrics import AbstractMetrics
from bot.ports.traffic import AbstractTrafficRouter
from bot.service import Services, approve, reconcile, refused, start_release
from tests.fakes import WrappedRouter

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
SEARCH = 'search-api 3.1.0 risk=low ticket=CHG-2 changes="better ranking"'


def another_writer_can_write(path: Path) -> bool:
    """Whether a second connection gets the write lock at once (as another process would)."""
    conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    else:
        conn.execute("ROLLBACK")
        return True
    finally:
        conn.close()


class WriteCheckingRouter(WrappedRouter):
    """The simulated router, noting at each call whether another writer could write."""

    def __init__(self, inner: AbstractTrafficRouter, path: Path) -> None:
        super().__init__(inner)
        self.path = path
        self.writable: list[bool] = []

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        self.writable.append(another_writer_can_write(self.path))
        return self.inner.apply(target, desired)

    def apply_all(self, changes: Mapping[Target, TrafficState]) -> None:
        self.writable.append(another_writer_can_write(self.path))
        self.inner.apply_all(changes)

    def state(self, target: Target) -> TrafficState:
        self.writable.append(another_writer_can_write(self.path))
        return self.inner.state(target)


class WriteCheckingMetrics(AbstractMetrics):
    """The simulated metrics, noting at each window read whether another writer could write;
    ``while_reading`` runs once, during the next window read (a command sent meanwhile)."""

    def __init__(self, inner: AbstractMetrics, path: Path) -> None:
        self.inner, self.path = inner, path
        self.writable: list[bool] = []
        self.while_reading: Callable[[], None] | None = None

    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        return self.inner.window(target, start, end)

    def windows(self, targets: list[Target], start: datetime, end: datetime) -> list[WindowSample]:
        self.writable.append(another_writer_can_write(self.path))
        if self.while_reading is not None:
            run, self.while_reading = self.while_reading, None
            run()
        return self.inner.windows(targets, start, end)

    def shortest_window(self, service: str) -> float:
        return self.inner.shortest_window(service)

    def probe(self, service: str) -> list[str]:
        return self.inner.probe(service)

    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        return self.inner.dependencies(service, names)

    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary | None:
        return self.inner.logs(target, start, end)

    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary | None:
        return self.inner.traces(target, start, end)

    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        return self.inner.synthetic(target, transactions, at)


def wired(path: Path) -> tuple[Wiring, Services, WriteCheckingRouter, WriteCheckingMetrics]:
    wiring = bootstrap(path, clock_start=START, chat=TerminalChat(io.StringIO()))
    router = WriteCheckingRouter(wiring.services.traffic, path)
    metrics = WriteCheckingMetrics(wiring.services.metrics, path)
    services = dataclasses.replace(wiring.services, traffic=router, metrics=metrics)
    return wiring, services, router, metrics


def started(services: Services) -> Release:
    release = start_release(services, SEARCH, "dave")
    assert isinstance(release, Release), release
    if release.status == "awaiting_approval":
        release = approve(services, release.id, "carol")
    return release


def tick(wiring: Wiring, services: Services) -> None:
    assert wiring.virtual_clock is not None
    wiring.virtual_clock.advance(services.tick_seconds)
    reconcile(services)


def judged_in_a_traffic_step(wiring: Wiring, services: Services, release_id: str) -> int:
    """Tick until a window of a traffic step (not a deploy's verification) is judged; its
    step's index. Through staging's deploy to prod's first batch: about 20 ticks."""
    for _ in range(200):  # a hang guard, far above what it takes
        step = services.store.get(release_id).current_step
        traffic = step is not None and step.kind not in VERIFY_KINDS
        if step is not None and traffic and services.series.points(release_id, step.index):
            return step.index
        tick(wiring, services)
    raise AssertionError(f"{release_id} judged no traffic step's window in 200 ticks")


def test_another_writer_can_write_while_the_tick_converges_the_router(tmp_path: Path) -> None:
    wiring, services, router, _ = wired(tmp_path / "bot.db")
    try:
        release = started(services)
        judged_in_a_traffic_step(wiring, services, release.id)  # converged at every tick
        assert router.writable and all(router.writable), router.writable
    finally:
        wiring.close()


def test_another_writer_can_write_while_the_tick_reads_metrics(tmp_path: Path) -> None:
    wiring, services, _, metrics = wired(tmp_path / "bot.db")
    try:
        release = started(services)
        judged_in_a_traffic_step(wiring, services, release.id)
        assert metrics.writable and all(metrics.writable), metrics.writable
    finally:
        wiring.close()


def test_a_command_saved_while_the_tick_reads_metrics_is_kept_and_the_step_redone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    wiring, services, _, metrics = wired(path)
    # Another process on the same file, e.g. a Slack command answered by `serve`.
    other = bootstrap(path, clock_start=START, chat=TerminalChat(io.StringIO()))
    other.database.db.execute("PRAGMA busy_timeout = 300")  # fail fast, not after 30 s
    try:
        release = started(services)
        step = judged_in_a_traffic_step(wiring, services, release.id)
        before = services.store.get(release.id)
        windows_before = services.series.points(release.id, step)

        def command() -> None:
            refused(other.services, release.id, "mallory", "approve", "not an approver")

        metrics.while_reading = command
        tick(wiring, services)  # the command lands while the tick reads the window

        assert metrics.while_reading is None  # the command ran during the read
        kept = services.store.get(release.id)
        assert [e.actor for e in services.store.events(release.id) if e.action == "refused"] == [
            "mallory"
        ]
        assert kept.revision == before.revision + 1  # the command's save, not the tick's
        assert services.series.points(release.id, step) == windows_before  # step dropped

        tick(wiring, services)  # redoes the dropped step on the command's state

        after = services.series.points(release.id, step)
        assert len(after) == len(windows_before) + 1
        assert after[-1].start == windows_before[-1].end  # the dropped window, judged once
        assert len({p.start for p in after}) == len(after)  # no window recorded twice
        assert services.store.get(release.id).revision > kept.revision
    finally:
        other.close()
        wiring.close()
