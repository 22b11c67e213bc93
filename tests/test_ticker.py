"""The one ticker behind ``run``, ``worker`` and ``serve``: every tick moves a virtual clock by
one tick, whichever way it runs."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.domain.observations import Target, TrafficState
from bot.domain.release import Release
from bot.domain.rollout import desired_traffic
from bot.ports.traffic import AbstractTrafficRouter, RouterUnavailable
from bot.service import approve, converge_ended, report_issue, start_release
from bot.service.tick import ENDED_RETRY
from tests.fakes import WrappedRouter

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="fix refunds"'


def wired(path: Path | str, tick_seconds: float = 10.0) -> tuple[Wiring, Release]:
    wiring = bootstrap(
        path, clock_start=START, chat=TerminalChat(io.StringIO()), tick_seconds=tick_seconds
    )
    started = start_release(wiring.services, LINE, "dave")
    assert isinstance(started, Release)
    approve(wiring.services, started.id, "alice")
    return wiring, started


def test_each_tick_moves_the_virtual_clock_by_one_tick() -> None:
    wiring, release = wired(":memory:")
    clock = wiring.virtual_clock
    assert clock is not None
    wiring.ticker.tick()
    wiring.ticker.tick()
    assert clock.now() == START + timedelta(seconds=20)
    assert wiring.services.store.get(release.id).status == "rolling_out"


def test_run_until_ticks_in_turn_until_done_and_counts_its_own_ticks() -> None:
    wiring, release = wired(":memory:")
    seen: list[int] = []
    store = wiring.services.store
    wiring.ticker.run_until(lambda: store.get(release.id).step_index >= 1, on_tick=seen.append)
    assert seen == list(range(1, len(seen) + 1))
    assert wiring.virtual_clock is not None
    assert wiring.virtual_clock.now() == START + timedelta(seconds=10 * len(seen))


def test_run_until_raises_what_a_tick_raised_in_the_callers_thread() -> None:
    wiring, _ = wired(":memory:")

    def broken() -> bool:
        raise RuntimeError("the done check broke")

    with pytest.raises(RuntimeError, match="the done check broke"):
        wiring.ticker.run_until(broken)


def test_the_background_ticker_of_worker_and_serve_moves_a_virtual_clock(tmp_path: Path) -> None:
    """``release-bot worker --virtual-clock`` used to tick without ever moving time."""
    wiring, release = wired(tmp_path / "bot.db", tick_seconds=0.02)
    clock = wiring.virtual_clock
    assert clock is not None
    five_ticks = START + timedelta(seconds=0.1)
    wiring.ticker.start()
    try:
        deadline = time.monotonic() + 60  # a stuck ticker fails; a slow machine does not
        while clock.now() < five_ticks and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        wiring.ticker.stop()
    assert clock.now() >= five_ticks, "the ticker never moved the virtual clock"
    ticks = wiring.ticker.telemetry.registry.get_sample_value("release_bot_ticks_total")
    assert ticks is not None and ticks >= 5
    assert wiring.services.store.get(release.id).status == "rolling_out"
    wiring.close()


def killed_before_its_converge(wiring: Wiring, release: Release) -> None:
    """Leave ``release`` as a process killed between the save that ended it and its converge
    would: ended, still marked unconverged (as that save marks it)."""
    with wiring.database.transaction() as db:
        db.execute("UPDATE releases SET unconverged = 1 WHERE id = ?", [release.id])


def test_the_next_leader_finishes_the_router_change_of_a_release_that_ended(
    tmp_path: Path,
) -> None:
    """A process killed between the save that ended a release and its router change leaves the
    router sending traffic to the new version, and no tick moves an ended release again: the
    next process to lead converges it, once."""
    wiring, release = wired(tmp_path / "bot.db")
    store = wiring.services.store
    wiring.ticker.run_until(lambda: not store.get(release.id).is_active)
    ended = store.get(release.id)
    assert ended.status == "completed"
    assert store.unconverged(START + timedelta(days=1)) == {}  # its own tick converged it
    final = desired_traffic(ended)
    stuck = {"stable_version": ended.previous_version, "new_version": ended.version}
    left = {t: s.model_copy(update={**stuck, "new_weight": 100.0}) for t, s in final.items()}
    wiring.services.traffic.apply_all(left)  # where the killed process left the router
    killed_before_its_converge(wiring, ended)
    wiring.close()

    again = bootstrap(tmp_path / "bot.db", clock_start=START, chat=TerminalChat(io.StringIO()))
    traffic = again.services.traffic
    assert {t: traffic.state(t) for t in final} == left
    again.ticker.tick()
    assert {t: traffic.state(t) for t in final} == final
    assert again.services.store.unconverged(START + timedelta(days=1)) == {}
    assert converge_ended(again.services) == []  # nothing left to finish
    again.close()


def test_a_leader_that_stays_up_finishes_at_its_next_tick_what_a_follower_left(
    tmp_path: Path,
) -> None:
    """Repro: a follower killed between the save that ended its release and the router change
    left the router on the new version for 30 ticks (the leader looked now and then), past
    the one lease period failover allows; flags were never finished at all."""
    wiring, release = wired(tmp_path / "bot.db")
    store = wiring.services.store
    wiring.ticker.run_until(lambda: not store.get(release.id).is_active)
    ended = store.get(release.id)
    final = desired_traffic(ended)
    stuck = {"stable_version": ended.previous_version, "new_version": ended.version}
    left = {t: s.model_copy(update={**stuck, "new_weight": 100.0}) for t, s in final.items()}
    wiring.services.traffic.apply_all(left)  # where the killed follower left the router
    killed_before_its_converge(wiring, ended)
    traffic = wiring.services.traffic
    wiring.ticker.tick()
    assert {t: traffic.state(t) for t in final} == final
    wiring.close()


def test_the_leader_finishes_the_flags_of_a_feature_flag_release_that_ended(
    tmp_path: Path,
) -> None:
    """A feature-flag release killed between the save that completed it and its converge
    leaves its flag at the last step's share: the leader's next tick sets the full share."""
    wiring = bootstrap(tmp_path / "bot.db", clock_start=START, chat=TerminalChat(io.StringIO()))
    line = f"{LINE} strategy=feature_flag flags=new_checkout:50"
    started = start_release(wiring.services, line, "dave")
    assert isinstance(started, Release), started
    approve(wiring.services, started.id, "alice")
    store, flags = wiring.services.store, wiring.services.flags
    wiring.ticker.run_until(lambda: not store.get(started.id).is_active)
    ended = store.get(started.id)
    assert ended.status == "completed"
    flag = flags.get("new_checkout")
    assert flag is not None and flag.percentage == 50
    flags.put(flag.model_copy(update={"percentage": 5.0}))  # where the killed process left it
    killed_before_its_converge(wiring, ended)
    wiring.ticker.tick()
    after = flags.get("new_checkout")
    assert after is not None and after.percentage == 50
    assert store.unconverged(START + timedelta(days=1)) == {}
    wiring.close()


class DownRouter(WrappedRouter):
    """The simulated router, its changes refused while ``down`` (reads still answer)."""

    def __init__(self, inner: AbstractTrafficRouter) -> None:
        super().__init__(inner)
        self.down, self.tried = True, 0

    def apply_all(self, changes: Mapping[Target, TrafficState]) -> None:
        self.tried += 1
        if self.down and changes:
            raise RouterUnavailable("the router did not answer")
        self.inner.apply_all(changes)


def test_a_flag_killed_by_hand_after_the_end_stays_killed_while_the_router_is_retried(
    tmp_path: Path,
) -> None:
    """Repro (review): while a completed release's router did not answer, the leader wrote
    its flags again at every tick, turning back a kill switch on-call had pulled."""
    wiring = bootstrap(tmp_path / "bot.db", clock_start=START, chat=TerminalChat(io.StringIO()))
    started = start_release(
        wiring.services, f"{LINE} strategy=feature_flag flags=new_checkout:50", "dave"
    )
    assert isinstance(started, Release), started
    approve(wiring.services, started.id, "alice")
    store, flags = wiring.services.store, wiring.services.flags
    wiring.ticker.run_until(lambda: not store.get(started.id).is_active)
    ended = store.get(started.id)
    final = desired_traffic(ended)
    stuck = {"stable_version": ended.previous_version, "new_version": ended.version}
    wiring.services.traffic.apply_all(
        {t: s.model_copy(update={**stuck, "new_weight": 100.0}) for t, s in final.items()}
    )
    killed_before_its_converge(wiring, ended)
    router = DownRouter(wiring.services.traffic)
    down = dataclasses.replace(wiring.services, traffic=router)
    assert converge_ended(down) == []  # the flags written, the router refused
    flag = flags.get("new_checkout")
    assert flag is not None and flag.percentage == 50 and not flag.killed
    flags.put(flag.model_copy(update={"killed": True}))  # on-call pulls the kill switch
    assert wiring.virtual_clock is not None
    tried = router.tried
    assert converge_ended(down) == [] and router.tried == tried  # not before ENDED_RETRY
    wiring.virtual_clock.advance(ENDED_RETRY.total_seconds())
    assert converge_ended(down) == [] and router.tried == tried + 1  # the router again
    router.down = False
    wiring.virtual_clock.advance(ENDED_RETRY.total_seconds())
    assert converge_ended(down) == [ended.id]
    assert {t: router.state(t) for t in final} == final
    still = flags.get("new_checkout")
    assert still is not None and still.killed  # the human's, untouched
    wiring.close()


def test_a_command_on_an_old_release_leaves_the_newer_ones_router_alone(tmp_path: Path) -> None:
    """Repro (review): a report on a completed release moved the router back to its end,
    over the canary of the service's newer release."""
    wiring, first = wired(tmp_path / "bot.db")
    store, traffic = wiring.services.store, wiring.services.traffic
    wiring.ticker.run_until(lambda: not store.get(first.id).is_active)
    line = LINE.replace("2.4.1", "2.4.2")
    second = start_release(wiring.services, line, "dave")
    assert isinstance(second, Release), second
    approve(wiring.services, second.id, "alice")
    wiring.ticker.run_until(
        lambda: any(
            s.new_version == "2.4.2"
            for s in map(traffic.state, desired_traffic(store.get(second.id)))
        )
    )
    targets = desired_traffic(store.get(second.id))
    before = {t: traffic.state(t) for t in targets}
    report_issue(wiring.services, first.id, "erin", "refunds were slow yesterday")
    assert {t: traffic.state(t) for t in targets} == before
    wiring.close()
