"""What a traffic router keeps per target because the router itself cannot say it (HAProxy's
server roles and the state last applied, a webhook CD's last acknowledged state): one row of
text columns per (service, env, region) in the router's own table, in the store's database,
so every replica reads what any of them applied."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from contextlib import AbstractContextManager

from bot.domain.observations import Target


class AbstractTargetRows(abc.ABC):
    # One change of the router at a time: on SQLite the database's own lock (this process);
    # on PostgreSQL an advisory lock, across the replicas.
    lock: AbstractContextManager[object]

    @abc.abstractmethod
    def get(self, target: Target) -> dict[str, str] | None:
        """The target's row (its columns by name, without the key), or None."""

    @abc.abstractmethod
    def put(self, target: Target, values: Mapping[str, str]) -> None:
        """Insert or replace the target's row."""
