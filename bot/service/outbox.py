"""The outbox: events the store appended, posted to the chat and then marked delivered."""

from __future__ import annotations

from bot.ports.store import StoredEvent
from bot.service.services import Services


def deliver(services: Services) -> int:
    """Post undelivered events to the chat, then mark them; at-least-once after a crash."""
    with services.delivery_lock:  # the tick and a Slack handler may deliver at once
        events = services.store.undelivered()
        by_release: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_release.setdefault(event.release_id, []).append(event)
        for release_id, batch in by_release.items():
            services.chat.post(services.store.get(release_id), batch)
            services.store.mark_delivered([e.id for e in batch], services.clock.now())
        return len(events)
