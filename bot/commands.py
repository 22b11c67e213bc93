"""The ``/release`` text, parsed into one command (pure: no I/O, no config).

``parse_command`` reads the first word: a subcommand (``help``, ``status``, ``list``,
``history``, ``rollback``, ``pause``, ``resume``, ``promote``, ``extend``, ``override``,
``issue``, ``lock``, ``unlock``, ``dry-run``, case-insensitive), nothing at all (open the form), or anything else, which is a
release line (``Start``) for ``bot.parsing`` to read. A service named like a subcommand
(say ``lock``) therefore cannot be released from a one-line ``/release``: use the form, whose
service field is never read as a subcommand. No such service exists today.

A subcommand missing its arguments raises ``CommandError`` with that subcommand's usage.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.locks import SCOPE_HELP, ScopeError, parse_scope


class CommandError(ValueError):
    """A subcommand written wrong; the message gives its usage."""


@dataclass(frozen=True)
class OpenModal:
    """``/release`` alone: open the release form."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Status:
    release_id: str | None = None  # None: every active release


@dataclass(frozen=True)
class ListReleases:
    pass


@dataclass(frozen=True)
class History:
    service: str


@dataclass(frozen=True)
class Rollback:
    release_id: str
    reason: str | None = None


@dataclass(frozen=True)
class Pause:
    release_id: str
    reason: str | None = None


@dataclass(frozen=True)
class Resume:
    release_id: str


@dataclass(frozen=True)
class Promote:
    release_id: str


@dataclass(frozen=True)
class Extend:
    """A held step bakes on for ``minutes``."""

    release_id: str
    minutes: float
    reason: str | None = None


@dataclass(frozen=True)
class Override:
    """A held step promoted without the judge's verdict; the reason is recorded."""

    release_id: str
    reason: str


@dataclass(frozen=True)
class Lock:
    scope: str  # normalised: "prod" or "payments-api/prod"
    reason: str | None = None


@dataclass(frozen=True)
class Unlock:
    scope: str


@dataclass(frozen=True)
class DryRun:
    line: str


@dataclass(frozen=True)
class Issue:
    release_id: str
    text: str  # what the user sees wrong


@dataclass(frozen=True)
class Start:
    line: str


Command = (
    OpenModal
    | Help
    | Status
    | ListReleases
    | History
    | Rollback
    | Pause
    | Resume
    | Promote
    | Extend
    | Override
    | Lock
    | Unlock
    | DryRun
    | Issue
    | Start
)

USAGE: dict[str, tuple[str, str]] = {
    "help": ("/release help", "what /release can do"),
    "status": ("/release status [RELEASE_ID]", "where a release, or every active one, stands"),
    "list": ("/release list", "the latest releases"),
    "history": ("/release history SERVICE", "a service's releases"),
    "rollback": ("/release rollback RELEASE_ID [reason…]", "roll a release back now"),
    "pause": ("/release pause RELEASE_ID [reason…]", "hold a rollout at its current step"),
    "resume": ("/release resume RELEASE_ID", "continue a paused release; the step restarts"),
    "promote": ("/release promote RELEASE_ID", "end the current step's bake early"),
    "extend": (
        "/release extend RELEASE_ID MINUTES [reason…]",
        "a step held without a verdict bakes on (an approver)",
    ),
    "override": (
        "/release override RELEASE_ID reason…",
        "promote a held step without a verdict; who and why are recorded",
    ),
    "lock": ("/release lock ENV|SERVICE/ENV [reason…]", "refuse releases reaching it"),
    "unlock": ("/release unlock ENV|SERVICE/ENV", "lift a lock"),
    "dry-run": ("/release dry-run LINE", "plan and check a release line; deploy nothing"),
    "issue": ("/release issue RELEASE_ID what you see…", "report a problem with a release"),
}
# How each subcommand names its first argument in an error.
_NEEDS = {
    "history": "a service name",
    "rollback": "a release ID",
    "pause": "a release ID",
    "resume": "a release ID",
    "promote": "a release ID",
    "extend": "a release ID and minutes",
    "override": "a release ID and a reason",
    "lock": SCOPE_HELP,
    "unlock": SCOPE_HELP,
    "dry-run": "a release line",
    "issue": "a release ID",
}
# Subcommands taking at most this many words (the others take a free-text reason, or ignore).
_AT_MOST = {"status": 1, "list": 0, "history": 1, "resume": 1, "promote": 1, "unlock": 1}
_QUOTES = {'"': '"', "'": "'", "“": "”"}


def usage(name: str) -> str:
    return f"usage: `{USAGE[name][0]}` ({USAGE[name][1]})"


def help_text() -> str:
    lines = ["`/release SERVICE VERSION key=value…` starts a release; `/release` alone opens "
             "the form."]  # fmt: skip
    return "\n".join([*lines, *(f"`{u}`: {what}" for u, what in USAGE.values())])


def _rest(text: str) -> str | None:
    """Free text after the arguments (a reason), without one pair of enclosing quotes."""
    rest = text.strip()
    if len(rest) >= 2 and _QUOTES.get(rest[0]) == rest[-1]:
        rest = rest[1:-1].strip()
    return rest or None


def _extend(name: str, release_id: str, rest: str | None) -> Extend:
    minutes, _, reason = (rest or "").partition(" ")
    try:
        value = float(minutes.strip().removesuffix("m").removesuffix("min"))
    except ValueError:
        raise CommandError(f"`extend` needs minutes, e.g. 30: {usage(name)}") from None
    return Extend(release_id, value, _rest(reason))


def parse_command(text: str) -> Command:
    """One ``/release`` text as a command; CommandError names the usage when it is wrong."""
    stripped = text.strip()
    if not stripped:
        return OpenModal()
    first, *more = stripped.split(None, 1)
    name = first.lower()
    if name not in USAGE:
        return Start(stripped)
    tail = more[0].strip() if more else ""
    if name == "dry-run":
        if not tail:
            raise CommandError(f"`dry-run` needs {_NEEDS[name]}: {usage(name)}")
        return DryRun(tail)
    words = tail.split()
    if name in _NEEDS and not words:
        raise CommandError(f"`{name}` needs {_NEEDS[name]}: {usage(name)}")
    most = _AT_MOST.get(name)
    if most is not None and len(words) > most:
        extra = " ".join(words[most:])
        raise CommandError(f"`{name}` does not take {extra!r}: {usage(name)}")
    if name == "help":
        return Help()
    if name == "list":
        return ListReleases()
    if name == "status":
        return Status(words[0] if words else None)
    arg = words[0]  # every other subcommand needs one: checked above
    reason = _rest(tail[len(arg) :])
    match name:
        case "history":
            return History(arg)
        case "rollback":
            return Rollback(arg, reason)
        case "pause":
            return Pause(arg, reason)
        case "resume":
            return Resume(arg)
        case "promote":
            return Promote(arg)
        case "issue":
            if reason is None:
                raise CommandError(f"`issue` needs what is wrong after the ID: {usage(name)}")
            return Issue(arg, reason)
        case "extend":
            return _extend(name, arg, reason)
        case "override":
            if reason is None:
                raise CommandError(f"`override` needs a reason: {usage(name)}")
            return Override(arg, reason)
    try:
        scope = parse_scope(arg)
    except ScopeError as exc:
        raise CommandError(f"{exc}: {usage(name)}") from exc
    return Lock(scope, reason) if name == "lock" else Unlock(scope)


__all__ = [
    "USAGE",
    "Command",
    "CommandError",
    "DryRun",
    "Extend",
    "Help",
    "History",
    "Issue",
    "ListReleases",
    "Lock",
    "OpenModal",
    "Override",
    "Pause",
    "Promote",
    "Resume",
    "Rollback",
    "Start",
    "Status",
    "Unlock",
    "help_text",
    "parse_command",
    "usage",
]
