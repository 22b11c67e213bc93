"""Evidence files a team's CI uploads per service version: test reports, scans, SBOMs,
signatures, load tests."""

from __future__ import annotations

import abc

from bot.domain.evidence import EvidenceFile


class AbstractEvidence(abc.ABC):
    @abc.abstractmethod
    def add(self, file: EvidenceFile, content: bytes) -> EvidenceFile:
        """Store the file and what was read from it, whole or not at all; the same content
        for the same version twice is stored once. Returns it with its id."""

    @abc.abstractmethod
    def files(self, service: str, version: str) -> list[EvidenceFile]:
        """The version's files, oldest first."""
