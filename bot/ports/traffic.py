"""Moving traffic between the stable and the new version of a service."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from bot.domain.observations import Target, TrafficState
from bot.domain.request import Strategy


class RouterUnavailable(Exception):
    """The router did not do what was asked: down, refused or timed out after its retries.
    The message names the router, the target and the cause."""


class AbstractTrafficRouter(abc.ABC):
    @abc.abstractmethod
    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        """Make the router's state for ``target`` equal ``desired``; idempotent. Returns it.
        Raises RouterUnavailable."""

    def apply_all(self, changes: Mapping[Target, TrafficState]) -> None:
        """Apply every target of a wave; a router that can does them side by side. Raises
        RouterUnavailable (the first failure) once each has been tried."""
        failures = []
        for target, desired in changes.items():
            try:
                self.apply(target, desired)
            except RouterUnavailable as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    @abc.abstractmethod
    def state(self, target: Target) -> TrafficState:
        """What the router serves now, read back from it where it can tell (so the reconcile
        tick re-applies what a restart or an operator changed). Raises RouterUnavailable."""

    @abc.abstractmethod
    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """Deploy ``version`` beside the stable one and roll it back; True when the
        stable version serves all traffic afterwards. Raises RouterUnavailable."""

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        """Why this adapter cannot keep a release's targets apart (a backend or a selector
        that would be the same for two of them); None: it can."""
        return None

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        """Why this router cannot run ``strategy`` for ``service`` (None: it can)."""
        return None
