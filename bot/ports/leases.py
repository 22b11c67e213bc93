"""Leases: which process does the work only one may do at a time (moving the virtual clock,
the chat's delivery, narration: the leader's), and which replica moves which release now (a
lease per release, ``release:<id>``, claimed a batch at a time), when several run on one
database."""

from __future__ import annotations

import abc
import os
import secrets
import socket
from datetime import datetime, timedelta

from bot.domain.base import Model


class Lease(Model):
    name: str
    holder: str
    expires_at: datetime


class AbstractLeases(abc.ABC):
    @abc.abstractmethod
    def acquire(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take ``name`` for ``holder`` until ``until``, or renew it, in one conditional
        write: only if it is free, expired at ``now``, or already ``holder``'s. True when
        ``holder`` holds it now."""

    @abc.abstractmethod
    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` holds it (another holder's lease is left alone)."""

    @abc.abstractmethod
    def claim_releases(
        self, holder: str, now: datetime, until: datetime, limit: int, *, due: datetime
    ) -> list[str]:
        """Take up to ``limit`` active releases due by ``due`` (the releases' own clock,
        which may be virtual: their ``due_at`` is on it) whose lease (``release:<id>``) is
        free or expired at ``now`` (the leases' real time), for ``holder`` until ``until``,
        in one transaction; the ids taken. A release another replica holds (or that
        ``holder`` itself moved this tick, its lease still running) is left out, so two
        concurrent claims never share one."""

    @abc.abstractmethod
    def release_claims(self, holder: str, now: datetime) -> None:
        """Give up the releases ``holder`` claimed (a new tick of its own: it claims afresh),
        and drop every release claim run out at ``now`` (a killed replica's, or one of a
        release that ended meanwhile): the table holds only the claims that still count."""

    @abc.abstractmethod
    def release_held(self, holder: str) -> None:
        """Give up every lease ``holder`` holds (a replica stopping: the others take its
        releases and its lead on their next tick, without waiting them out)."""

    @abc.abstractmethod
    def current(self, name: str) -> Lease | None:
        """Who holds ``name`` and until when (an expired lease included); None if nobody."""


RELEASE_PREFIX = "release:"  # a release's lease: ``release:<id>``


def this_host() -> str:
    """The host name, with the PID namespace where it can be read: containers may share a
    host name (host networking) while each numbers its processes on its own, so a pid is
    only meaningful within its namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace.removeprefix('pid:[').removesuffix(']')}"


def holder_id() -> str:
    """This process, unique even across hosts and reused pids."""
    return f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_gone(holder: str) -> bool:
    """True when ``holder`` was a process of this host (and PID namespace) that no longer
    runs (a remote or unknown holder is never known to be gone)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != this_host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def take(leases: AbstractLeases, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take or renew ``name``; one whose holder was killed on this host (a restart after a
    crash) is taken at once instead of waited out."""
    if leases.acquire(name, holder, now, until):
        return True
    current = leases.current(name)
    if current is None or not holder_gone(current.holder):
        return False
    return leases.acquire(name, holder, current.expires_at + timedelta(microseconds=1), until)


__all__ = [
    "RELEASE_PREFIX",
    "AbstractLeases",
    "Lease",
    "holder_gone",
    "holder_id",
    "take",
    "this_host",
]
