"""Where a release's thread lives: Slack, or the terminal."""

from __future__ import annotations

import abc

from bot.domain.release import Release
from bot.ports.store import StoredEvent


class AbstractChat(abc.ABC):
    @abc.abstractmethod
    def post(self, release: Release, events: list[StoredEvent]) -> None:
        """Show a release's new events (oldest first) in its thread. One call per release per
        delivery, so a chat with rate limits can coalesce a burst into one update.

        Raises whatever the chat raised when the thread could not be brought up to date; the
        outbox then calls again later with the same events (and newer ones), so an event
        already shown (its ``id`` tells) is not shown again."""
