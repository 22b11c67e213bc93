"""A notification target: one way of telling a service's stakeholders what a release did (an
incident channel, PagerDuty, a status page)."""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.domain.notify import Moment


@dataclass(frozen=True, slots=True)
class Notice:
    """What one target is told: which release, at which moment, in one sentence."""

    release_id: str
    service: str
    version: str
    moment: Moment
    text: str
    # An earlier attempt was begun and its outcome never recorded (a kill, a lost answer):
    # the target may hold it already, so a target that can look first does.
    retry: bool = False


class NotificationFailed(Exception):
    """The target refused or could not be reached; the message is one line naming why."""


class AbstractNotifier(abc.ABC):
    target: str  # who is told, as the report names it: "#payments-incidents", "PagerDuty"
    moments: frozenset[Moment]  # the moments this target hears of

    @abc.abstractmethod
    def send(self, notice: Notice) -> str:
        """Tell the target; returns what it answered (a message ts, a dedup key, an incident
        id). Raises NotificationFailed. One attempt, within the adapter's short timeout: the
        caller retries later with backoff."""


@dataclass(frozen=True)
class Stakeholders:
    """Who hears of each service's releases: the release thread when the chat reaches people
    (``thread``: its name; None for the terminal), and each service's notifiers."""

    thread: str | None = None
    by_service: Mapping[str, Sequence[AbstractNotifier]] = field(default_factory=dict)
    sending: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def notifiers(self, service: str) -> Sequence[AbstractNotifier]:
        return self.by_service.get(service, ())
