"""What time it is: the real clock, or a virtual one the demo and tests move."""

from __future__ import annotations

import abc
from datetime import datetime


class AbstractClock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> datetime:
        """An aware UTC datetime."""


class AbstractVirtualClock(AbstractClock):
    """A clock that moves only when told to: the ticker advances it by one tick each time."""

    @abc.abstractmethod
    def advance(self, seconds: float) -> datetime: ...

    @abc.abstractmethod
    def catch_up(self) -> datetime:
        """Read the time another process (the leader) moved it to; never moves it back."""
