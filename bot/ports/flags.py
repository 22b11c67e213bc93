"""Feature flags: read and written by the release (ramps, kill switches)."""

from __future__ import annotations

import abc

from bot.domain.flags import FlagState


class AbstractFlags(abc.ABC):
    @abc.abstractmethod
    def get(self, name: str) -> FlagState | None: ...

    @abc.abstractmethod
    def put(self, flag: FlagState) -> None: ...
