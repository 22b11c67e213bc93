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

    def post(self, release: Release, events: list[StoredEvent]) -> None:
        for event in events:
            text = event_text(release, event)
            self.posted.append((release.id, text))
            print(
                f"{event.at:%H:%M:%S} {release.request.service} {release.version} │ {text}",
                file=self.stream,
                flush=True,
            )
