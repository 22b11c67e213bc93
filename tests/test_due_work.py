"""A tick reads only the releases it has work on: one whose metrics provider cannot measure
its window yet (Prometheus needs two scrapes: 30 s at a 15 s scrape) is left unread and
unsaved until then, one waiting for a human is read once a minute, and a command makes a
release due at once.

The real bootstrap on a database file (simulator, virtual clock), the simulated metrics
scraped every 15 s as a Prometheus would be."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.config import DEFAULT_CONFIG
from bot.domain.release import VERIFY_KINDS, Release
from bot.scheduler import Ticker
from bot.service import Services, approve, reconcile, rollback, start_release

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
LEASES_NOW = START - timedelta(days=1)  # the leases' real time, behind the virtual clock
LINE = 'search-api 3.1.0 risk=low ticket=CHG-2 changes="better ranking" env=prod'
SCRAPE_SECONDS = 15.0


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[Wiring, Services]]:
    config = tmp_path / "services.toml"
    search = DEFAULT_CONFIG.read_text().split("[services.search-api]")
    config.write_text(
        search[0]
        + "[services.search-api]"
        + search[1].replace(
            'metrics = { provider = "simulator" }',
            f'metrics = {{ provider = "simulator", scrape_interval = {SCRAPE_SECONDS} }}',
            1,
        )
    )
    wiring = bootstrap(
        tmp_path / "bot.db",
        clock_start=START,
        chat=TerminalChat(io.StringIO()),
        config_path=config,
    )
    assert wiring.services.metrics.shortest_window("search-api") == 2 * SCRAPE_SECONDS
    yield wiring, wiring.services
    wiring.close()


def tick(wiring: Wiring, services: Services) -> None:
    assert wiring.virtual_clock is not None
    wiring.virtual_clock.advance(services.tick_seconds)
    reconcile(services)


def judging(wiring: Wiring, services: Services) -> Release:
    """A release of search-api right after a tick judged a window of its canary step."""
    release = start_release(services, LINE, "dave")
    assert isinstance(release, Release), release
    if release.status == "awaiting_approval":
        release = approve(services, release.id, "carol")
    for _ in range(100):  # a hang guard, far above what it takes
        tick(wiring, services)
        release = services.store.get(release.id)
        step = release.current_step
        traffic = step is not None and step.kind not in VERIFY_KINDS
        if traffic and step and services.series.points(release.id, step.index):
            assert release.window_cursor == services.clock.now()  # judged this tick
            return release
    raise AssertionError("no window of the canary step judged in 100 ticks")


def test_a_release_is_not_read_until_its_window_can_be_measured(
    wired: tuple[Wiring, Services],
) -> None:
    wiring, services = wired
    judged = judging(wiring, services)
    step = judged.step_index
    windows = len(services.series.points(judged.id, step))
    for _ in range(3):  # 10, 20, 30 s into the window: not longer than two scrapes yet
        tick(wiring, services)
        assert services.store.revision(judged.id) == judged.revision  # unread, so unsaved
    tick(wiring, services)  # 40 s: measured and judged
    assert len(services.series.points(judged.id, step)) == windows + 1
    assert services.store.get(judged.id).window_cursor == services.clock.now()


def test_a_command_makes_a_release_due_at_once(wired: tuple[Wiring, Services]) -> None:
    wiring, services = wired
    judged = judging(wiring, services)
    rollback(services, judged.id, "carol", "the graphs look wrong")
    assert services.store.get(judged.id).status == "rolling_back"
    tick(wiring, services)  # 10 s into the window: read all the same, the rollback confirmed
    assert services.store.get(judged.id).status == "rolled_back"


def test_a_release_waiting_for_its_approvers_is_read_once_a_minute(
    wired: tuple[Wiring, Services],
) -> None:
    wiring, services = wired
    line = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="fix refunds"'
    waiting = start_release(services, line, "dave")
    assert isinstance(waiting, Release) and waiting.status == "awaiting_approval", waiting
    for _ in range(5):  # 10 to 50 s: nothing to do but wait, so unread
        tick(wiring, services)
        assert services.store.revision(waiting.id) == waiting.revision
    tick(wiring, services)  # a minute: read, only to put back a router changed by hand
    assert services.store.revision(waiting.id) == waiting.revision + 1


def test_a_replica_claims_what_is_due_on_the_releases_clock_not_the_leases(
    wired: tuple[Wiring, Services],
) -> None:
    """Repro: a replica's claims compared each release's due time, on the releases' clock
    (virtual here, ahead of real time), with the leases' real time: a release whose window
    needs two scrapes was never claimed again (``make bench-replicas SCRAPE=15`` hung)."""
    wiring, services = wired
    assert wiring.ticker.leases is not None
    replica = Ticker(
        services, wiring.virtual_clock, leases=wiring.ticker.leases, now=lambda: LEASES_NOW
    )
    judged = judging(wiring, services)
    windows = len(services.series.points(judged.id, judged.step_index))
    for _ in range(8):  # two windows of 40 s, as a replica ticks
        replica.tick()
    assert len(services.series.points(judged.id, judged.step_index)) == windows + 2
