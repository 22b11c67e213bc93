"""Moving traffic between the stable and the new version of a service."""

from __future__ import annotations

import abc

from bot.domain.observations import Target, TrafficState


class AbstractTrafficRouter(abc.ABC):
    @abc.abstractmethod
    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        """Make the router's state for ``target`` equal ``desired``; idempotent. Returns it."""

    @abc.abstractmethod
    def state(self, target: Target) -> TrafficState: ...

    @abc.abstractmethod
    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """Deploy ``version`` beside the stable one and roll it back; True when the
        stable version serves all traffic afterwards."""
