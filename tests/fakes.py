"""In-memory doubles of the ports, for tests: each behaves like its SQLite adapter (the
contract tests run both)."""

from __future__ import annotations

from bot.domain.flags import FlagState
from bot.domain.observations import ArtifactRecord, CheckEvidence, latest_by_name
from bot.ports.checks import AbstractChecks
from bot.ports.flags import AbstractFlags


class FakeFlags(AbstractFlags):
    """In-memory flags for unit tests."""

    def __init__(self, flags: list[FlagState] | None = None) -> None:
        self.flags: dict[str, FlagState] = {f.name: f for f in flags or []}

    def get(self, name: str) -> FlagState | None:
        return self.flags.get(name)

    def put(self, flag: FlagState) -> None:
        self.flags[flag.name] = flag


class FakeChecks(AbstractChecks):
    """In-memory evidence for unit tests."""

    def __init__(self) -> None:
        self.artifacts: dict[str, ArtifactRecord] = {}
        self.evidence: dict[tuple[str, str], list[CheckEvidence]] = {}

    def artifact(self, image: str) -> ArtifactRecord | None:
        return self.artifacts.get(image)

    def record_artifact(self, record: ArtifactRecord) -> None:
        self.artifacts[record.image] = record

    def results(self, service: str, version: str) -> list[CheckEvidence]:
        return latest_by_name(self.evidence.get((service, version), []))

    def record(self, service: str, version: str, evidence: CheckEvidence) -> None:
        self.evidence.setdefault((service, version), []).append(evidence)
