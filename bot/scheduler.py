"""APScheduler runs the reconcile tick on an interval.

With the virtual clock each job first moves time by one tick; ``speed`` is virtual seconds
per real second (None: as fast as it can). Jobs run one at a time on the scheduler's worker
thread; the caller's thread waits until ``done`` says so and then stops the scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from bot.adapters.clock import VirtualClock
from bot.service import Services, narrate, reconcile, reconcile_and_narrate

FASTEST_INTERVAL = 0.0005  # seconds between jobs when running as fast as possible


def run_until(
    services: Services,
    done: Callable[[], bool],
    virtual_clock: VirtualClock | None,
    speed: float | None = None,
    on_tick: Callable[[int], None] | None = None,
) -> None:
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    tick = services.tick_seconds
    interval = tick / speed if speed else FASTEST_INTERVAL
    finished = threading.Event()
    failure: list[BaseException] = []
    ticks = [0]

    def job() -> None:
        try:
            if virtual_clock is not None:
                virtual_clock.advance(tick)
            reconcile_and_narrate(services)
            ticks[0] += 1
            if on_tick is not None:
                on_tick(ticks[0])
            if done():
                finished.set()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            failure.append(exc)
            finished.set()

    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=1)})
    scheduler.add_job(
        job, "interval", seconds=interval, max_instances=1, coalesce=True, misfire_grace_time=None
    )
    scheduler.start()
    try:
        finished.wait()
    finally:
        scheduler.shutdown(wait=True)
    if failure:
        raise failure[0]


def run_forever(services: Services) -> None:
    """The worker: reconcile every tick on the real clock until interrupted; the agent's
    narration runs beside it on its own thread, so no tick waits for the LLM."""
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1), "agent": ThreadPoolExecutor(1)}
    )
    for job, executor in ((reconcile, "default"), (narrate, "agent")):
        scheduler.add_job(
            job,
            "interval",
            args=[services],
            seconds=services.tick_seconds,
            max_instances=1,
            coalesce=True,
            executor=executor,
        )
    scheduler.start()
