"""What the agent is given: its model, the config, the rule planner, and read-only lookups.

The service builds this from its ports (``Services.agent()`` in ``bot/service/services.py``) and
does every load and save around the agent: nothing here can change a release, a flag or the
store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.domain.config import Config
from bot.domain.flags import FlagState
from bot.domain.observations import ArtifactRecord, CheckEvidence, DependencyProbe
from bot.domain.plan import Plan
from bot.domain.release import Event, Release
from bot.domain.request import ReleaseRequest
from bot.domain.verdict_time import Measurement
from bot.ports.clock import AbstractClock
from bot.ports.llm import AbstractLLM
from bot.ports.planner import AbstractPlanner


class Lookups(Protocol):
    """The facts the agent's read tools answer from; each reads, none writes."""

    def artifact(self, image: str) -> ArtifactRecord | None: ...

    def evidence(self, service: str, version: str) -> list[CheckEvidence]: ...

    def flag(self, name: str) -> FlagState | None: ...

    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]: ...

    def past_releases(self, service: str, limit: int, excluding: str | None) -> list[Release]:
        """The service's releases, newest first, without ``excluding``."""

    def events(self, release_id: str) -> list[Event]: ...


@dataclass(frozen=True)
class AgentContext:
    llm: AbstractLLM
    config: Config
    planner: AbstractPlanner
    lookups: Lookups
    clock: AbstractClock
    tick_seconds: float


@dataclass(frozen=True)
class Context:
    """What a task is about: a request being planned, or a release under way."""

    agent: AgentContext
    request: ReleaseRequest
    release: Release | None = None
    rule_plan: Plan | None = None
    measured: Measurement | None = None  # the service's traffic the rules planned with
    # The service's own bake and maximum bake (its config's), which the rules planned with.
    bake_minutes: float | None = None
    max_bake_minutes: float | None = None
