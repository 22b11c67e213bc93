"""Environment locks: a locked scope (``prod``, ``payments-api/prod``) refuses every release
reaching it until someone unlocks it. Pure: the scopes, their grammar and their messages.
Who may lock and unlock is the access policy's (``bot/domain/access.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from bot.domain.base import Model
from bot.domain.request import ENV_ORDER, EnvName

_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9._\-]*")


SCOPE_HELP = "an environment (dev, staging, prod) or SERVICE/ENV, e.g. prod or payments-api/prod"


class ScopeError(ValueError):
    """Not a lock scope; the message says what one looks like."""


class EnvLock(Model):
    """A locked scope: no release reaching it may start until someone unlocks it."""

    scope: str  # "prod", or "payments-api/prod"
    by: str
    reason: str
    at: datetime

    def describe(self) -> str:
        return f"{self.scope} locked by {self.by} at {self.at:%Y-%m-%d %H:%M} UTC: {self.reason}"


def parse_scope(text: str) -> str:
    """The scope written as ``prod`` or ``payments-api/prod``, normalised; ScopeError else."""
    raw = text.strip()
    service, _, env = raw.rpartition("/")
    env = env.lower()
    if env not in ENV_ORDER or ("/" in raw and not _SERVICE_RE.fullmatch(service)):
        raise ScopeError(f"{raw!r} is not a lock scope: use {SCOPE_HELP}")
    return f"{service}/{env}" if service else env


def scope_parts(scope: str) -> tuple[str | None, EnvName]:
    """(service or None, environment) of a scope ``parse_scope`` accepts."""
    service, _, env = parse_scope(scope).rpartition("/")
    return (service or None), next(e for e in ENV_ORDER if e == env)


def scopes_for(service: str, environments: Iterable[str]) -> list[str]:
    """The scopes that lock a release of ``service`` reaching ``environments``."""
    return [s for env in dict.fromkeys(environments) for s in (env, f"{service}/{env}")]


def lock_note(lock: EnvLock, new: bool) -> str:
    """The release thread's line for the lock its automatic rollback took (or found)."""
    if not new:
        return f"{lock.scope} stays locked ({lock.describe()})"
    return (
        f"{lock.scope} locked after the automatic rollback: no release reaching it starts "
        f"until someone runs `/release unlock {lock.scope}`"
    )


def lock_refusal(service: str, lock: EnvLock) -> str:
    """Why a release of ``service`` may not start while ``lock`` holds, and how to unlock."""
    _, env = scope_parts(lock.scope)
    return (
        f"{service} cannot be released to {env}: {lock.scope} is locked by {lock.by} since "
        f"{lock.at:%Y-%m-%d %H:%M} UTC ({lock.reason}). Once it is safe, unlock it with "
        f"`/release unlock {lock.scope}` (CLI: `release-bot unlock {lock.scope} --as USER`)"
    )
