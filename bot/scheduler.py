"""The ticker: the reconcile tick and the agent's narration as APScheduler jobs, the same for
``run``, ``worker`` and ``serve``.

Each tick first moves a virtual clock (when one is wired) by one tick, so virtual time passes
wherever the ticker runs. Two ways to run it:

- ``start``/``stop`` (``serve``, ``worker``): the tick every ``tick_seconds`` of real time,
  and the narration on a thread of its own, so no tick (and no rollback) waits for the LLM.
  A job that raises is logged and counted; the next run retries. ``healthy`` says whether
  the tick is keeping up (for /healthz).
- ``run_until`` (``run``, ``resume``): tick, then narrate, in turn, until ``done`` says so,
  ``speed`` virtual seconds per real second (None: as fast as it can). A failure is raised
  in the caller's thread.

Several processes (replicas) may run on one database. Each tick every one of them claims
the releases it moves, a batch at a time (``reconcile_claimed``: a lease per release, until
its next tick or for a little under one tick interval, so each release moves once a tick, by
one replica, and a killed replica's releases are claimed by the others on the next tick; each
claim is renewed as its release starts moving, so a batch slower than its claims leaves a
release another replica took meanwhile). The duties that must
be single (moving the virtual clock, delivering the outbox, narrating) are the leader's: the
holder of the ``ticker`` lease, taken or renewed before each tick for ``LEASE_TICKS`` ticks of
real time (the wall clock, never the virtual one). The followers read the virtual time the
leader set, and one takes the lease over once the leader stops (``stop`` gives it up) or its
lease runs out. Without leases (one process) the tick moves every release and does it all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.ports.clock import AbstractVirtualClock
from bot.ports.leases import RELEASE_PREFIX, AbstractLeases, holder_id, take
from bot.service import (
    Services,
    converge_ended,
    deliver,
    narrate,
    reconcile,
    reconcile_claimed,
)
from bot.telemetry import Telemetry

log = logging.getLogger(__name__)
FASTEST_INTERVAL = 0.0005  # seconds between jobs when running as fast as possible
STALE_TICKS = 6  # ``healthy`` fails when the tick has not run for this many intervals
LEASE = "ticker"
LEASE_TICKS = 3  # the lease outlives a few ticks: one slow tick does not hand it over
CLAIM_SHARE = 0.9  # of a tick interval, a claimed release's lease: free again by the next tick
STANDBY_WAIT = 0.05  # real seconds ``run_until`` waits between a standby's turns


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Ticker:
    def __init__(
        self,
        services: Services,
        virtual_clock: AbstractVirtualClock | None,
        telemetry: Telemetry | None = None,
        leases: AbstractLeases | None = None,
        now: Callable[[], datetime] = wall_clock,
    ) -> None:
        """``leases``: shared with the other processes on the database (none: this one
        always ticks). ``now``: the real time the lease runs on."""
        self.services = services
        self.virtual_clock = virtual_clock
        self.telemetry = telemetry or Telemetry()
        self.leases = leases
        self.now = now
        self.holder = holder_id()
        self.holding = leases is None
        self.interval = services.tick_seconds  # real seconds between ticks
        self.last_ok: float | None = None
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1), "agent": ThreadPoolExecutor(1)}
        )

    # -- one tick -------------------------------------------------------------------------------

    def take_lease(self) -> bool:
        """Take or renew the ticker's lease; True while this process holds it."""
        if self.leases is not None:
            now = self.now()
            until = now + timedelta(seconds=LEASE_TICKS * self.services.tick_seconds)
            self.holding = take(self.leases, LEASE, self.holder, now, until)
        return self.holding

    def release_lease(self) -> None:
        """Give up the lead and the releases claimed: the others take them at once."""
        if self.leases is not None:
            self.leases.release_held(self.holder)
            self.holding = False

    def tick(self) -> list[str]:
        """One tick: the leader moves the virtual clock (when there is one) and delivers the
        outbox; every replica moves the releases it claims. Raises what the reconcile
        raises. Returns the releases this process moved."""
        leading = self.take_lease()
        began = time.perf_counter()
        try:
            if self.virtual_clock is not None:
                if leading:
                    self.virtual_clock.advance(self.services.tick_seconds)
                else:
                    self.virtual_clock.catch_up()
            ids = self._move()
            if leading:
                # What a process killed between the save that ended a release and its
                # converge left behind (any replica's: the save marks it until converged),
                # after the moves: a router that does not answer holds up no release.
                converge_ended(self.services)
            if leading and self.leases is not None:
                deliver(self.services)
        except Exception:
            self.telemetry.tick_errors.inc()
            raise
        finally:
            self.telemetry.ticks.inc()
            self.telemetry.tick_seconds.observe(time.perf_counter() - began)
        self.last_ok = time.time()
        self.telemetry.last_tick.set(self.last_ok)
        return ids

    def _move(self) -> list[str]:
        leases = self.leases
        if leases is None:
            return reconcile(self.services)

        # Last tick's claims go first: a process ticking faster than its interval (by hand,
        # ``run``) moves every release each time. Every claim of the tick judges leases at
        # the tick's start: what this tick claimed is never claimed again in it.
        began = self.now()
        leases.release_claims(self.holder, began)
        share = timedelta(seconds=CLAIM_SHARE * self.interval)

        def claim(limit: int) -> list[str]:
            # due by the releases' clock (virtual under ``--virtual-clock``), leased on real time
            due = self.services.clock.now()
            return leases.claim_releases(self.holder, began, self.now() + share, limit, due=due)

        def still_ours(release_id: str) -> bool:
            # Renewed for a whole share as the release starts moving: one whose claim ran out
            # in a slow batch and that another replica took is left to it (never moved twice).
            now = self.now()
            return leases.acquire(RELEASE_PREFIX + release_id, self.holder, now, now + share)

        return reconcile_claimed(self.services, claim, still_ours)

    def narrate(self) -> int:
        if not self.holding:
            return 0  # the holder narrates
        try:
            return narrate(self.services)
        except Exception:
            self.telemetry.narration_errors.inc()
            raise

    # -- as background jobs (serve, worker) -----------------------------------------------------

    def start(self, paused: bool = False) -> None:
        """``paused``: the scheduler runs but fires no job (tests tick by hand)."""
        for job, job_id, executor in ((self._tick_job, "reconcile", "default"),
                                      (self._narrate_job, "narrate", "agent")):  # fmt: skip
            self.scheduler.add_job(
                job,
                "interval",
                seconds=self.services.tick_seconds,
                max_instances=1,
                coalesce=True,
                id=job_id,
                executor=executor,
            )
        self.scheduler.start(paused=paused)

    def stop(self) -> None:
        """Stop the jobs, then give the leases up: another process takes over at once."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.release_lease()

    def _tick_job(self) -> None:
        try:
            self.tick()
        except Exception:  # a scheduler job: the next tick retries; /healthz shows staleness
            log.exception("reconcile tick failed")

    def _narrate_job(self) -> None:
        try:
            self.narrate()
        except Exception:  # a scheduler job: the next run retries what is still due
            log.exception("narration failed")

    def healthy(self) -> tuple[bool, dict[str, object]]:
        stale_after = self.services.tick_seconds * STALE_TICKS
        age = None if self.last_ok is None else time.time() - self.last_ok
        ok = self.scheduler.running and (age is None or age < stale_after)
        return ok, {
            "status": "ok" if ok else "degraded",
            "scheduler": "running" if self.scheduler.running else "stopped",
            "leading": self.holding,
            "leader": "this process" if self.holding else self._leader(),
            "last_tick_seconds_ago": None if age is None else round(age, 1),
            "active_releases": len(self.services.store.active_ids()),
        }

    def _leader(self) -> str | None:
        lease = self.leases.current(LEASE) if self.leases is not None else None
        return lease.holder if lease is not None else None

    # -- in turn, until done (run, resume) ------------------------------------------------------

    def run_until(
        self,
        done: Callable[[], bool],
        speed: float | None = None,
        on_tick: Callable[[int], None] | None = None,
    ) -> None:
        """Tick and narrate in turn until ``done``; the same order on every run."""
        # Jobs skipped while the previous one runs are the point of "as fast as it can".
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        interval = self.services.tick_seconds / speed if speed else FASTEST_INTERVAL
        self.interval = interval
        finished = threading.Event()
        failure: list[BaseException] = []
        ticks = [0]  # of this run

        def job() -> None:
            try:
                self.tick()
                if not self.holding:
                    # Another process leads (and moves the virtual clock): tick at its
                    # pace, ready to take over when it goes.
                    time.sleep(STANDBY_WAIT)
                self.narrate()
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
            job,
            "interval",
            seconds=interval,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        try:
            finished.wait()
        finally:
            scheduler.shutdown(wait=True)
            self.release_lease()
        if failure:
            raise failure[0]
