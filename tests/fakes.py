"""In-memory doubles of the ports, for tests: each behaves like its SQLite adapter (the
contract tests run both)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.flags import FlagState
from bot.domain.observations import (
    ArtifactRecord,
    CheckEvidence,
    Target,
    TrafficState,
    latest_by_name,
)
from bot.domain.request import Strategy
from bot.ports.checks import AbstractChecks
from bot.ports.flags import AbstractFlags
from bot.ports.traffic import AbstractTrafficRouter


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


class WrappedRouter(AbstractTrafficRouter):
    """A router that hands every call to ``inner``: a double overrides what it changes
    (``apply_all`` stays the port's, one ``apply`` per target, unless overridden)."""

    def __init__(self, inner: AbstractTrafficRouter) -> None:
        self.inner = inner

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        return self.inner.apply(target, desired)

    def state(self, target: Target) -> TrafficState:
        return self.inner.state(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        return self.inner.rehearse_rollback(target, version)

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        return self.inner.layout_refusal(service, environments, regions)

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        return self.inner.refusal(service, strategy)


class BrokenForServices(WrappedRouter):
    """A router that raises a bug's error (not ``RouterUnavailable``) for the services in
    ``broken``, as a service with ``instances = -3`` did, and hands the others to ``inner``."""

    def __init__(self, inner: AbstractTrafficRouter) -> None:
        super().__init__(inner)
        self.broken: set[str] = set()

    def _check(self, target: Target) -> None:
        if target.service in self.broken:
            raise ValueError(f"{target.service}: instances must be positive, not -3")

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        self._check(target)
        return self.inner.apply(target, desired)

    def state(self, target: Target) -> TrafficState:
        self._check(target)
        return self.inner.state(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        self._check(target)
        return self.inner.rehearse_rollback(target, version)
