"""The release store: state with a revision, the append-only audit trail, the chat outbox,
the LLM calls, and the virtual clock's saved time."""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from bot.domain.release import Event, Release
from bot.ports.llm import LlmCall


class StaleRelease(Exception):
    """The release moved since it was loaded; reload and try again."""


class ReleaseNotFound(Exception):
    pass


class AlreadyActive(Exception):
    """The service already has an active release: the store holds at most one per service."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} already has an active release")
        self.service = service


class DatabaseBusy(Exception):
    """Another process held the database's write lock for longer than the busy timeout."""


class StoreUnavailable(Exception):
    """The store cannot be opened (a bad address, a server that does not answer); the
    message names it and what to do, in one line."""


class StoredEvent(Event):
    """An event of the audit trail as stored: with its id (the outbox's key) and release."""

    id: int
    release_id: str


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A release's thread the chat refused: how many times in a row, why, and when the
    outbox tries it again (its events stay undelivered until then)."""

    release_id: str
    failures: int
    error: str
    retry_at: datetime


class AbstractReleaseStore(abc.ABC):
    @abc.abstractmethod
    def unit_of_work(self) -> AbstractContextManager[None]:
        """One transaction: everything saved inside commits together, or not at all."""

    # -- releases -------------------------------------------------------------------------------

    @abc.abstractmethod
    def add(self, release: Release) -> None:
        """AlreadyActive if ``release`` is active and its service has an active release."""

    @abc.abstractmethod
    def get(self, release_id: str) -> Release:
        """Raises ReleaseNotFound."""

    def revision(self, release_id: str) -> int:
        """The stored release's revision, without reading its state (the tick's check that
        nothing saved it since it did). Raises ReleaseNotFound."""
        return self.get(release_id).revision

    @abc.abstractmethod
    def save(self, release: Release, due_at: datetime | None = None) -> None:
        """Write the new state and its events; StaleRelease if someone saved in between,
        AlreadyActive if it would make a second release of its service active. ``due_at``:
        the tick has no work on it before then (``Release.next_work_at``); None, as any
        save by a command: due at once, and at every tick."""

    @abc.abstractmethod
    def active_ids(self) -> list[str]: ...

    @abc.abstractmethod
    def due_ids(self, now: datetime) -> list[str]:
        """The active releases the tick has work on at ``now``, oldest first."""

    @abc.abstractmethod
    def unconverged(self, now: datetime) -> dict[str, bool]:
        """Releases ended by a save whose converge is not marked done (the process that
        ended one was killed before its router and flags followed, or the router did not
        answer) and whose next attempt is due at ``now``, oldest first: each with whether
        its flags are still to follow (False: only its router)."""

    @abc.abstractmethod
    def mark_converged(self, release_id: str, *, flags_only: bool = False) -> None:
        """The ended release's flags (``flags_only``), or its router and flags, follow it."""

    @abc.abstractmethod
    def defer_converge(self, release_id: str, until: datetime) -> None:
        """The ended release's router did not answer: its converge is next tried at ``until``."""

    @abc.abstractmethod
    def active_for_service(self, service: str) -> list[str]: ...

    @abc.abstractmethod
    def active_by_status(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def narration_due_ids(self) -> list[str]: ...

    @abc.abstractmethod
    def listing(self, service: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        """id, service, version, status, created_at, updated_at; newest first."""

    # -- the audit trail and the chat outbox ----------------------------------------------------

    @abc.abstractmethod
    def events(self, release_id: str) -> list[StoredEvent]: ...

    @abc.abstractmethod
    def undelivered(
        self, limit: int = 500, excluding: Collection[str] = (), release_id: str | None = None
    ) -> list[StoredEvent]:
        """Events not yet delivered, oldest first, but those of the releases ``excluding``
        names (threads backing off must not crowd the others out of ``limit``); only
        ``release_id``'s when given."""

    @abc.abstractmethod
    def mark_delivered(self, event_ids: list[int], at: datetime) -> None: ...

    @abc.abstractmethod
    def delivered_count(self, release_id: str) -> int: ...

    @abc.abstractmethod
    def delivery_failures(self) -> dict[str, DeliveryFailure]:
        """The threads the chat refused last time, by release id."""

    @abc.abstractmethod
    def record_delivery_failure(self, failure: DeliveryFailure) -> None:
        """Replace the release's failure record."""

    @abc.abstractmethod
    def clear_delivery_failure(self, release_id: str) -> None:
        """The chat took the release's events again."""

    # -- what the LLM cost ----------------------------------------------------------------------

    @abc.abstractmethod
    def record_llm_calls(self, release_id: str | None, calls: Iterable[LlmCall]) -> None:
        """``release_id`` None: calls that made no release, counted all the same."""

    @abc.abstractmethod
    def llm_calls(self, release_id: str | None = None) -> list[dict[str, object]]: ...

    # -- the virtual clock's persisted time -----------------------------------------------------

    @abc.abstractmethod
    def load_clock(self) -> datetime | None: ...

    @abc.abstractmethod
    def save_clock(self, now: datetime) -> None: ...


__all__ = [
    "AbstractReleaseStore",
    "AlreadyActive",
    "DatabaseBusy",
    "DeliveryFailure",
    "ReleaseNotFound",
    "StaleRelease",
    "StoredEvent",
]
