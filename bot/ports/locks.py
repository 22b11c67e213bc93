"""Environment locks: set by people, or by an automatic rollback; read before every start."""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Literal

from bot.domain.base import Model
from bot.domain.locks import EnvLock


class LockError(Exception):
    """A lock or unlock that does not apply; the message says why."""


class AlreadyLocked(LockError):
    def __init__(self, lock: EnvLock) -> None:
        super().__init__(f"{lock.scope} is already locked: {lock.describe()}")
        self.lock = lock


class NotLocked(LockError):
    pass


class LockChange(Model):
    scope: str
    action: Literal["locked", "unlocked"]
    actor: str
    reason: str
    at: datetime


class AbstractLocks(abc.ABC):
    @abc.abstractmethod
    def lock(self, scope: str, by: str, reason: str, at: datetime) -> EnvLock:
        """Lock ``scope``; AlreadyLocked (naming who, why, when) if it is locked already."""

    @abc.abstractmethod
    def unlock(self, scope: str, by: str, at: datetime) -> EnvLock:
        """Remove the lock on ``scope`` and return it; NotLocked if there is none."""

    @abc.abstractmethod
    def get(self, scope: str) -> EnvLock | None: ...

    @abc.abstractmethod
    def all(self) -> list[EnvLock]:
        """Every locked scope, oldest lock first."""

    @abc.abstractmethod
    def history(self, scope: str | None = None) -> list[LockChange]: ...
