"""Who may do what, and where: the access policy and environment locks, pure (no I/O).

The effective approvers of a release are ``Release.approvers``, fixed when it starts: the
service's ``environment_approvers`` for the highest environment the release reaches (dev <
staging < prod), else its ``approvers`` (``ServiceConfig.approvers_for``). Users are Slack
user IDs (``U0ABC…``) in a Slack deployment and plain names in the CLI.

=====================================  ================================================
action                                 who may
=====================================  ================================================
start                                  anyone, in one of the service's ``allowed_channels``
                                       when that list is set (``channel=None``, the CLI,
                                       is not a chat channel and is not restricted)
approve, reject, promote, resume       the release's approvers; approve and promote are
                                       also refused to the requester of a high or
                                       critical risk release (four eyes)
rollback, pause                        the release's approvers, or its requester
lock, unlock ``service/env``           the service's approvers for ``env``, or a
                                       ``lock_admins`` member
lock, unlock ``env``                   anyone listed as an approver anywhere in the config
                                       (defaults, any service, any environment), or a
                                       ``lock_admins`` member
=====================================  ================================================

Every refusal names who may do it and where that is configured (``data/services.toml``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.config import Config
from bot.domain.base import Model
from bot.domain.request import ENV_ORDER, EnvName

if TYPE_CHECKING:  # release.py imports this module
    from bot.domain.release import Release

Action = Literal[
    "start", "approve", "reject", "promote", "resume", "rollback", "pause", "lock", "unlock"
]
CONFIG_FILE = "data/services.toml"
_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9._\-]*")


# -- rules shared with the release aggregate ------------------------------------------------------


def _highest(environments: Iterable[str]) -> EnvName | None:
    reached = set(environments)
    return next((e for e in reversed(ENV_ORDER) if e in reached), None)


def _where(service: str, env: str | None) -> str:
    keys = "`approvers`" + (f" or `environment_approvers.{env}`" if env else "")
    return f"{keys} under [services.{service}] in {CONFIG_FILE}"


def approver_refusal(user: str, verb: str, release: Release) -> str | None:
    """Why ``user`` may not ``verb`` the release as an approver, or None when they may."""
    if user in release.approvers:
        return None
    service = release.request.service
    env = _highest(e.name for e in release.plan.environments)
    who = ", ".join(release.approvers) or "nobody (no approvers are set)"
    return f"{user} cannot {verb} {service}: its approvers are {who} (set {_where(service, env)})"


def four_eyes_refusal(user: str, verb: str, release: Release) -> str | None:
    """Segregation of duties: the requester of a high or critical risk release cannot also
    approve it (or promote it)."""
    if user != release.requested_by or release.plan.risk not in ("high", "critical"):
        return None
    others = [a for a in release.approvers if a != user]
    return (
        f"{user} requested this {release.plan.risk}-risk release and cannot also {verb} it "
        f"(segregation of duties): ask another approver ({', '.join(others) or 'none set'})"
    )


def not_rolling_out(release: Release, verb: str) -> str:
    """Why a command that needs a rollout in progress does not apply now."""
    if release.status in ("pending_gates", "awaiting_approval", "scheduled"):
        hint = f"nothing is deployed yet (`/release rollback {release.id}` cancels it)"
    else:
        hint = f"it is {release.status.replace('_', ' ')}"
    return f"cannot {verb} {release.id}: {hint}"


def promotion_refusal(actor: str, release: Release, label: str, verifying: bool) -> str | None:
    """Why ``actor`` may not end the current step's bake early, or None. Never past a failed
    check: refused on a verification step (it moves on only by passing), before the judge
    has seen the step (this also stops a double click from skipping two steps), and while
    any rollback or pause guardrail is breached or the judge says roll back."""
    if refusal := approver_refusal(actor, "promote", release) or four_eyes_refusal(
        actor, "promote", release
    ):
        return refusal
    step = release.current_step
    started = release.steps[step.index].started_at if step is not None else None
    if release.status != "rolling_out" or step is None:
        return not_rolling_out(release, "promote")
    if release.holding_until is not None:
        return (
            f"{label} waits for peak hours to end ({release.holding_until:%H:%M} UTC); "
            "promote cannot skip that hold"
        )
    if verifying:
        return (
            f"{label} is a verification step: it moves on only when its smoke tests and "
            "synthetic transactions pass"
        )
    verdict, judged = release.judgement, release.judged_at
    if (
        verdict is None
        or release.judged_step != step.index
        or started is None
        or judged is None
        or judged <= started
    ):
        return f"the judge has not seen {label} yet: wait for its first metrics window"
    broken = verdict.breached("auto_rollback") + verdict.breached("pause")
    if broken or verdict.recommendation == "rollback" or verdict.no_data:
        why = "; ".join(r.detail for r in broken) or (
            "no canary traffic to judge" if verdict.no_data else "the judge says roll back"
        )
        return f"cannot promote {release.id} past {label}: {why}"
    return None


# -- the policy -------------------------------------------------------------------------------


def check(
    action: Action, user: str, subject: Release | str, channel: str | None, config: Config
) -> str | None:
    """The refusal message when ``user`` may not do ``action``, or None when they may.

    ``subject`` is the release for release actions, the service name for ``start``, and the
    scope (``prod``, ``payments-api/prod``) for ``lock`` and ``unlock``. ``channel`` is where
    the command came from (None: not from a chat, e.g. the CLI)."""
    if isinstance(subject, str):
        if action == "start":
            return _start(user, subject, channel, config)
        if action in ("lock", "unlock"):
            return _lock(action, user, subject, config)
        raise ValueError(f"{action} needs a release, not {subject!r}")
    release = subject
    match action:
        case "approve" | "promote":
            return approver_refusal(user, action, release) or four_eyes_refusal(
                user, action, release
            )
        case "reject" | "resume":
            return approver_refusal(user, action, release)
        case "rollback" | "pause":
            if user == release.requested_by or user in release.approvers:
                return None
            return (
                f"{user} cannot {action} {release.id}: only its requester "
                f"({release.requested_by}) or an approver ({', '.join(release.approvers)}) can "
                f"(set {_where(release.request.service, None)})"
            )
    raise ValueError(f"{action} does not act on a release")


def _start(user: str, service: str, channel: str | None, config: Config) -> str | None:
    allowed = config.for_service(service).allowed_channels
    if not allowed or channel is None:
        return None
    if channel.lstrip("#") in {c.lstrip("#") for c in allowed}:
        return None
    table = f"[services.{service}]" if config.knows(service) else "[defaults]"
    return (
        f"{service} releases are started only in {', '.join(allowed)}, not here "
        f"(`allowed_channels` under {table} in {CONFIG_FILE})"
    )


def _lock(action: str, user: str, scope: str, config: Config) -> str | None:
    service, env = scope_parts(scope)
    if user in config.lock_admins:
        return None
    if service is not None:
        approvers = config.for_service(service).approvers_for([env])
        if user in approvers:
            return None
        who = f"{service}'s approvers for {env} ({', '.join(approvers) or 'none set'})"
        where = _where(service, env)
    else:
        if user in config.all_approvers():
            return None
        who = "anyone who approves releases of some service"
        where = f"`approvers` or `environment_approvers` of any table in {CONFIG_FILE}"
    return (
        f"{user} cannot {action} {scope}: {who} or a lock admin can "
        f"(set {where}, or the top-level `lock_admins`)"
    )


# -- environment locks ----------------------------------------------------------------------

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


__all__ = [
    "SCOPE_HELP",
    "Action",
    "EnvLock",
    "ScopeError",
    "approver_refusal",
    "check",
    "four_eyes_refusal",
    "lock_note",
    "lock_refusal",
    "not_rolling_out",
    "parse_scope",
    "promotion_refusal",
    "scope_parts",
    "scopes_for",
]
