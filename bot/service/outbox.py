"""The outbox: events the store appended, posted to the chat and then marked delivered.

Each release's thread is delivered on its own: one the chat refuses (a channel Slack does
not know, an outage) keeps its events undelivered and is retried with backoff, while the
others are delivered. Delivery never raises for the chat: a command that was applied stays
applied, and its thread catches up on a later tick."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.domain.backoff import retry_delay
from bot.domain.release import shown_in_thread
from bot.ports.store import DeliveryFailure, StoredEvent
from bot.service.services import Services

log = logging.getLogger(__name__)


def deliver(services: Services) -> int:
    """Post undelivered events to the chat, then mark them; at-least-once after a crash (the
    chat posts each reply once: ``AbstractChat.post``). Returns how many were delivered."""
    with services.delivery_lock:  # the tick and a Slack handler may deliver at once
        now = services.clock.now()
        failing = services.store.delivery_failures()
        waiting = {r for r, failure in failing.items() if now < failure.retry_at}
        by_release: dict[str, list[StoredEvent]] = {}
        for event in services.store.undelivered(excluding=waiting):  # backing off: they wait
            by_release.setdefault(event.release_id, []).append(event)
        delivered = 0
        for release_id, batch in by_release.items():
            if _deliver_one(services, release_id, batch, failing.get(release_id), now):
                delivered += len(batch)
        return delivered


def _deliver_one(
    services: Services,
    release_id: str,
    batch: list[StoredEvent],
    failure: DeliveryFailure | None,
    now: datetime,
) -> bool:
    shown = [e for e in batch if shown_in_thread(e)]
    try:
        if shown:
            services.chat.post(services.store.get(release_id), shown)
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
