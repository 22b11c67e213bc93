"""Leases: which process does the work only one may do at a time (the reconcile tick and the
chat's delivery), when several run on one database."""

from __future__ import annotations

import abc
from datetime import datetime

from bot.domain.base import Model


class Lease(Model):
    name: str
    holder: str
    expires_at: datetime


class AbstractLeases(abc.ABC):
    @abc.abstractmethod
    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take ``name`` for ``holder`` until ``until``, or renew it, in one conditional
        write: only if it is free, expired at ``now``, or already ``holder``'s. True when
        ``holder`` holds it now."""

    @abc.abstractmethod
    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` holds it (another holder's lease is left alone)."""

    @abc.abstractmethod
    def current(self, name: str) -> Lease | None:
        """Who holds ``name`` and until when (an expired lease included); None if nobody."""


__all__ = ["AbstractLeases", "Lease"]
