"""A CI that builds on request: the embedded environment's. A real CI pushes its evidence
into the checks port instead, so a deployment with one wires no ``AbstractCI`` at all."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime

from bot.domain.observations import ArtifactRecord, CheckEvidence
from bot.domain.request import Artifact


@dataclass(frozen=True)
class Build:
    """What one build produced: the artifact as the registry holds it, and CI's evidence."""

    artifact: ArtifactRecord
    evidence: list[CheckEvidence]


class AbstractCI(abc.ABC):
    @abc.abstractmethod
    def build(self, service: str, version: str, artifact: Artifact, at: datetime) -> Build:
        """What building ``version`` would publish; records nothing (the dry run's view)."""

    @abc.abstractmethod
    def publish(self, service: str, version: str, artifact: Artifact, at: datetime) -> Build:
        """Build ``version`` and record its artifact and evidence through the checks port."""
