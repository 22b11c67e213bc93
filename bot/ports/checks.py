"""Gate evidence: what CI and the registry recorded for a service version."""

from __future__ import annotations

import abc

from bot.domain.observations import ArtifactRecord, CheckEvidence


class AbstractChecks(abc.ABC):
    """Evidence from CI and the registry, recorded per service version."""

    @abc.abstractmethod
    def artifact(self, image: str) -> ArtifactRecord | None: ...

    @abc.abstractmethod
    def results(self, service: str, version: str) -> list[CheckEvidence]: ...

    @abc.abstractmethod
    def record_artifact(self, record: ArtifactRecord) -> None: ...

    @abc.abstractmethod
    def record(self, service: str, version: str, evidence: CheckEvidence) -> None: ...
