"""Stakeholders told what a release did: at its start, completion, rollback and failure, each
of the service's targets (the release thread, its incident channel, PagerDuty, Statuspage) gets
a recorded delivery, sent with backoff until it gets through or is given up.

The outbox calls ``plan_notifications`` before it posts the new events (the thread's own
delivery is the outbox's), then ``send_notifications`` once it let go of the thread: each send
is one short attempt made outside every transaction, and a refusal is recorded, never raised,
so no target holds up the tick, a rollback or the other releases."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.domain.backoff import retry_delay
from bot.domain.notify import MAX_ATTEMPTS, MOMENT_OF_ACTION, Delivery, Moment
from bot.domain.release import Release
from bot.ports.leases import take
from bot.ports.notifications import AbstractNotificationLog, PlannedDelivery
from bot.ports.notify import Notice, NotificationFailed, Stakeholders
from bot.ports.store import StoredEvent
from bot.service.services import Services

log = logging.getLogger(__name__)
SEND_LEASE_SECONDS = 120  # real seconds one process may hold the sending of notifications
SENDS_PER_CALL = 20  # a tick sends at most this many; the rest wait for the next
BEGUN = "sent; no answer recorded yet"  # a delivery's error while its attempt is under way
_SAYS: dict[Moment, str] = {
    "started": "started rolling out",
    "completed": "completed",
    "rolled_back": "is rolling back",
    "failed": "failed",
}


def plan_notifications(services: Services) -> None:
    """Record a pending delivery for each target of each new moment among the undelivered
    events (recorded once per event and target, however often this runs)."""
    stakeholders, record = services.stakeholders, services.notification_log
    if stakeholders is None or record is None:
        return
    planned: list[PlannedDelivery] = []
    releases: dict[str, Release] = {}
    for event in services.store.undelivered():
        moment = MOMENT_OF_ACTION.get(event.action)
        if moment is None:
            continue
        if event.release_id not in releases:
            releases[event.release_id] = services.store.get(event.release_id)
        service = releases[event.release_id].request.service
        targets = [stakeholders.thread] if stakeholders.thread else []
        targets += [n.target for n in stakeholders.notifiers(service) if moment in n.moments]
        planned += [PlannedDelivery(event.release_id, event.id, moment, t) for t in targets]
    record.plan(planned, services.clock.now())


def send_notifications(services: Services) -> int:
    """Try each delivery that is due; returns how many got through. Never raises for a
    target: its refusal is recorded and retried with backoff, up to MAX_ATTEMPTS."""
    stakeholders, record = services.stakeholders, services.notification_log
    if stakeholders is None or record is None:
        return 0
    with stakeholders.sending:  # one sender per process; the lease: one per database
        leases, name = services.leases, "notify"
        if leases is not None:
            held_at = datetime.now(UTC)
            until = held_at + timedelta(seconds=SEND_LEASE_SECONDS)
            if not take(leases, name, services.process_id, held_at, until):
                return 0
        try:
            now = services.clock.now()
            due = record.due(now, SENDS_PER_CALL)
            return sum(_send(services, stakeholders, record, d, now) for d in due)
        finally:
            if leases is not None:
                leases.release(name, services.process_id)


def send_final_notifications(services: Services, release_id: str) -> int:
    """Try the release's due notifications now, before the post that carries its final
    report, so that report says whether the completion, rollback or failure got through.
    The thread's own is that post: it stays pending until the outbox marks it."""
    stakeholders, record = services.stakeholders, services.notification_log
    if stakeholders is None or record is None:
        return 0
    with stakeholders.sending:
        leases, name = services.leases, "notify"
        if leases is not None:
            held_at = datetime.now(UTC)
            until = held_at + timedelta(seconds=SEND_LEASE_SECONDS)
            if not take(leases, name, services.process_id, held_at, until):
                return 0  # another process is sending them: the report says pending
        try:
            now = services.clock.now()
            due = [
                d
                for d in record.for_release(release_id)
                if d.status == "pending"
                and d.target != stakeholders.thread
                and (d.next_attempt_at is None or d.next_attempt_at <= now)
            ]
            return sum(_send(services, stakeholders, record, d, now) for d in due)
        finally:
            if leases is not None:
                leases.release(name, services.process_id)


def _send(
    services: Services,
    stakeholders: Stakeholders,
    record: AbstractNotificationLog,
    delivery: Delivery,
    now: datetime,
) -> bool:
    if delivery.target == stakeholders.thread:
        return _thread_outcome(services, record, delivery, now)
    release = services.store.get(delivery.release_id)
    service = release.request.service
    notifier = next(
        (n for n in stakeholders.notifiers(service) if n.target == delivery.target), None
    )
    if notifier is None:  # the config no longer names it
        record.record(delivery.id, "failed", delivery.attempts,
                      f"{delivery.target} is no longer configured for {service}", None, None,
                      None)  # fmt: skip
        return False
    event = _event(services, delivery)
    notice = _notice(services, release, delivery.moment, event, retry=delivery.attempts > 0)
    # The attempt is counted before it is made: a process killed during the send leaves it
    # counted, and the next attempt is a retry that looks for what this one may have told.
    record.record(delivery.id, "pending", delivery.attempts + 1, BEGUN, now, None, None)
    try:
        reference = notifier.send(notice)
    except NotificationFailed as exc:
        error = str(exc)
    except Exception as exc:  # an adapter's bug must not stop the tick: recorded, retried
        error = f"{type(exc).__name__}: {exc}"
    else:
        record.record(delivery.id, "delivered", delivery.attempts + 1, None, None, now,
                      reference)  # fmt: skip
        return True
    attempts = delivery.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        record.record(delivery.id, "failed", attempts, error, None, None, None)
        log.warning("%s was not told of %s (%s); given up after %d attempts",
                    delivery.target, delivery.release_id, error, attempts)  # fmt: skip
        return False
    retry_at = now + retry_delay(attempts, timedelta(seconds=services.tick_seconds))
    record.record(delivery.id, "pending", attempts, error, retry_at, None, None)
    log.warning("%s refused %s's notification (%s); retrying at %s",
                delivery.target, delivery.release_id, error, f"{retry_at:%H:%M:%S}")  # fmt: skip
    return False


def _thread_outcome(
    services: Services, record: AbstractNotificationLog, delivery: Delivery, now: datetime
) -> bool:
    """The thread is told by the outbox: delivered once the outbox marked the event, else
    pending with the chat's last refusal (the outbox retries the thread on its own)."""
    waiting = {e.id for e in services.store.undelivered(release_id=delivery.release_id)}
    if delivery.event_id not in waiting:
        record.record(delivery.id, "delivered", delivery.attempts + 1, None, None, now, None)
        return True
    failure = services.store.delivery_failures().get(delivery.release_id)
    if failure is not None:
        record.record(delivery.id, "pending", failure.failures, failure.error, failure.retry_at,
                      None, None)  # fmt: skip
    return False


def _event(services: Services, delivery: Delivery) -> StoredEvent | None:
    events = services.store.events(delivery.release_id)
    return next((e for e in events if e.id == delivery.event_id), None)


def _notice(
    services: Services,
    release: Release,
    moment: Moment,
    event: StoredEvent | None,
    retry: bool = False,
) -> Notice:
    """One sentence: what happened, why, and where to look."""
    service = release.request.service
    config = services.config.for_service(service)
    text = f"{service} {release.version} {_SAYS[moment]} (release {release.id})"
    if event is not None and event.details:
        text += f": {event.details}"
    where = config.rollback_procedure if moment == "rolled_back" else config.runbook
    if where:
        text += f". Runbook: {where}"
    return Notice(release.id, service, release.version, moment, text, retry)


def deliveries(services: Services, release_id: str) -> list[Delivery]:
    """Who was told of the release, and whether it got through."""
    record = services.notification_log
    return record.for_release(release_id) if record is not None else []
