"""The audit trail's proof: verify its hash chain, export it with its hashes."""

from __future__ import annotations

import abc

from bot.domain.audit import AuditRecord, AuditVerdict


class AbstractAuditTrail(abc.ABC):
    @abc.abstractmethod
    def verify(self, release_id: str | None = None) -> AuditVerdict:
        """The whole chain checked; the first broken link (of ``release_id``'s, when given)."""

    @abc.abstractmethod
    def export(self, release_id: str | None = None) -> list[AuditRecord]:
        """The events as stored, in id order, with their hashes."""


__all__ = ["AbstractAuditTrail", "AuditRecord", "AuditVerdict"]
