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
approve, reject, promote, resume,      the release's approvers; approve, promote and
extend, override (a held step)         override are also refused to the requester of a
                                       high or critical risk release (four eyes)
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

from collections.abc import Iterable
from typing import Literal

from bot.domain.config import DEFAULT_SOURCE, Config
from bot.domain.locks import scope_parts
from bot.domain.release import Release
from bot.domain.request import ENV_ORDER, EnvName

Action = Literal[
    "start",
    "approve",
    "reject",
    "promote",
    "resume",
    "rollback",
    "pause",
    "extend",
    "override",
    "lock",
    "unlock",
]
CONFIG_FILE = DEFAULT_SOURCE  # the config's own ``source`` names the file actually read


# -- who may act on a release -------------------------------------------------------------------


def _highest(environments: Iterable[str]) -> EnvName | None:
    reached = set(environments)
    return next((e for e in reversed(ENV_ORDER) if e in reached), None)


def _where(service: str, env: str | None, config_file: str = CONFIG_FILE) -> str:
    keys = "`approvers`" + (f" or `environment_approvers.{env}`" if env else "")
    return f"{keys} under [services.{service}] in {config_file}"


def approver_refusal(
    user: str, verb: str, release: Release, config_file: str = CONFIG_FILE
) -> str | None:
    """Why ``user`` may not ``verb`` the release as an approver, or None when they may."""
    if user in release.approvers:
        return None
    service = release.request.service
    env = _highest(e.name for e in release.plan.environments)
    who = ", ".join(release.approvers) or "nobody (no approvers are set)"
    where = _where(service, env, config_file)
    return f"{user} cannot {verb} {service}: its approvers are {who} (set {where})"


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
            return approver_refusal(user, action, release, config.source) or four_eyes_refusal(
                user, action, release
            )
        case "override":  # promote a held step without the judge's verdict
            verb = "promote on an override"
            return approver_refusal(user, verb, release, config.source) or four_eyes_refusal(
                user, verb, release
            )
        case "reject" | "resume" | "extend":
            return approver_refusal(user, action, release, config.source)
        case "rollback" | "pause":
            if user == release.requested_by or user in release.approvers:
                return None
            return (
                f"{user} cannot {action} {release.id}: only its requester "
                f"({release.requested_by}) or an approver ({', '.join(release.approvers)}) can "
                f"(set {_where(release.request.service, None, config.source)})"
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
        f"(`allowed_channels` under {table} in {config.source})"
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
        where = _where(service, env, config.source)
    else:
        if user in config.all_approvers():
            return None
        who = "anyone who approves releases of some service"
        where = f"`approvers` or `environment_approvers` of any table in {config.source}"
    return (
        f"{user} cannot {action} {scope}: {who} or a lock admin can "
        f"(set {where}, or the top-level `lock_admins`)"
    )


__all__ = ["Action", "check", "four_eyes_refusal"]
