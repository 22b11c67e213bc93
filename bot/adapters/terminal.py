"""The terminal as the release's thread: one line per update."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.domain.release import Release
from bot.ports.chat import AbstractChat
from bot.ports.store import StoredEvent
from bot.presenters import event_text


class TerminalChat(AbstractChat):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.posted: list[tuple[str, str]] = []
        self._shown_through: dict[str, int] = {}  # release id -> the last event id printed

    def post(self, release: Release, events: list[StoredEvent]) -> None:
        for event in events:
            if event.id <= self._shown_through.get(release.id, 0):
                continue  # redelivered after a failure elsewhere: printed once
            self._shown_through[release.id] = event.id
            text = event_text(release, event)
            self.posted.append((release.id, text))
            print(
                f"{event.at:%H:%M:%S} {release.request.service} {release.version} │ {text}",
                file=self.stream,
                flush=True,
            )
