"""The outbox: events the store appended, posted to the chat and then marked delivered.

Each release's thread is delivered on its own: one the chat refuses (a channel Slack does
not know, an outage) keeps its events undelivered and is retried with backoff, while the
others are delivered. Delivery never raises for the chat: a command that was applied stays
applied, and its thread catches up on a later tick.

Several processes on one database (a ``serve`` beside a ``worker``, replicas) deliver a thread
one at a time: each takes the thread's lease first, then reads what is still undelivered."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.domain.backoff import retry_delay
from bot.domain.release import shown_in_thread
from bot.ports.leases import take
from bot.ports.store import DeliveryFailure, StoredEvent
from bot.service.notifications import (
    plan_notifications,
    send_final_notifications,
    send_notifications,
)
from bot.service.services import Services

log = logging.getLogger(__name__)
# Real seconds a process may hold a thread while posting to it (the Slack client's own timeout
# and retries fit in it); one killed meanwhile holds the thread up for at most this long.
DELIVERY_LEASE_SECONDS = 60


def deliver(services: Services) -> int:
    """Post undelivered events to the chat, then mark them; at-least-once after a crash (the
    chat posts each reply once: ``AbstractChat.post``). Returns how many were delivered."""
    with services.delivery_lock:  # the tick and a Slack handler may deliver at once
        plan_notifications(services)  # before the outbox marks the moments delivered
        now = services.clock.now()
        failing = services.store.delivery_failures()
        waiting = {r for r, failure in failing.items() if now < failure.retry_at}
        by_release: dict[str, list[StoredEvent]] = {}
        for event in services.store.undelivered(excluding=waiting):  # backing off: they wait
            by_release.setdefault(event.release_id, []).append(event)
        delivered = 0
        for release_id in by_release:
            delivered += _deliver_claimed(services, release_id, failing.get(release_id), now)
    send_notifications(services)  # outside the lock: a slow target holds up no thread
    return delivered


def _deliver_claimed(
    services: Services, release_id: str, failure: DeliveryFailure | None, now: datetime
) -> int:
    """One thread, delivered by this process alone: another that holds it goes on without
    it. What is undelivered is read again once held (another process may have just posted
    it)."""
    leases, name = services.leases, f"deliver:{release_id}"
    if leases is not None:
        held_at = datetime.now(UTC)  # a lease runs on real time, never on a virtual clock
        until = held_at + timedelta(seconds=DELIVERY_LEASE_SECONDS)
        if not take(leases, name, services.process_id, held_at, until):
            return 0
    try:
        batch = services.store.undelivered(release_id=release_id)
        if batch and _deliver_one(services, release_id, batch, failure, now):
            return len(batch)
        return 0
    finally:
        if leases is not None:
            leases.release(name, services.process_id)


def _deliver_one(
    services: Services,
    release_id: str,
    batch: list[StoredEvent],
    failure: DeliveryFailure | None,
    now: datetime,
) -> bool:
    shown = [e for e in batch if shown_in_thread(e)]
    release = services.store.get(release_id)
    if not release.is_active:
        # This post carries the final report (Slack): its notifications go out first.
        send_final_notifications(services, release_id)
    try:
        if shown:
            services.chat.post(release, shown)
    except Exception as exc:  # whatever the chat raised, the other threads go on
        failures = (failure.failures if failure is not None else 0) + 1
        retry_at = now + retry_delay(failures, timedelta(seconds=services.tick_seconds))
        error = f"{type(exc).__name__}: {exc}"
        services.store.record_delivery_failure(
            DeliveryFailure(release_id, failures, error, retry_at)
        )
        log.warning(
            "the chat refused %s's thread (%s, %d in a row); retrying at %s",
            release_id,
            error,
            failures,
            f"{retry_at:%H:%M:%S}",
        )
        return False
    services.store.mark_delivered([e.id for e in batch], now)
    if failure is not None:
        services.store.clear_delivery_failure(release_id)
        log.info("%s's thread is delivered again after %d failures", release_id, failure.failures)
    return True
