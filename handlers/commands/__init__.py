"""``/release``: a release line, a subcommand, or nothing (the form).

Acked at once, whatever the text; the answer comes after: the release's thread for a good
line, an ephemeral reply for everything else (errors name the problem and the fix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot import commands as cmd
from bot.domain.contract import InsufficientContext
from bot.domain.release import CommandRejected, Release
from bot.parsing import ParseError
from bot.ports.store import ReleaseNotFound, StaleRelease
from bot.presenters import status_lines
from bot.service import (
    Services,
    dry_run,
    extend_bake,
    find,
    lock_env,
    pause,
    promote_now,
    promote_on_override,
    report_issue,
    resume,
    rollback,
    start_release,
    unlock_env,
)
from bot.slack.blocks import help_blocks, missing_fields
from bot.slack.context import SlackServices
from bot.slack.views import release_modal
from handlers.replay import once_of

Say = Callable[..., None]  # (text, blocks=None): an ephemeral reply
EXPECTED = (CommandRejected, ReleaseNotFound, StaleRelease, ParseError, cmd.CommandError)


def register(app: App, slack: SlackServices) -> None:
    @app.command("/release")
    def release_command(
        ack: Ack,
        command: dict[str, Any],
        respond: Respond,
        client: WebClient,
        context: BoltContext,
    ) -> None:
        ack()
        user, channel = command["user_id"], command["channel_id"]
        text = (command.get("text") or "").strip()

        def say(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)

        if not text:  # the form: views.open needs the trigger_id within 3 s, so not later
            trigger = command["trigger_id"]
            slack.promptly(lambda: open_form(slack, client, trigger, {}, channel), say)
            return
        slack.later(lambda: run(slack, text, user, channel, say), say, once_of(context))


def open_form(
    slack: SlackServices, client: WebClient, trigger_id: str, prefill: dict[str, str], channel: str
) -> None:
    services = slack.services
    known = sorted(services.config.services)
    client.views_open(trigger_id=trigger_id, view=release_modal(prefill, channel, known))


def run(slack: SlackServices, text: str, user: str, channel: str, say: Say) -> None:
    """One /release text, parsed and carried out; every expected failure becomes a reply."""
    try:
        _run(slack, cmd.parse_command(text), user, channel, say)
    except EXPECTED as exc:
        say(f":warning: {exc}")


def start(slack: SlackServices, line: str, user: str, channel: str, say: Say) -> None:
    """A release line from the form: started as is, never read as a subcommand (a service
    may be named ``lock``)."""
    try:
        _run(slack, cmd.Start(line=line), user, channel, say)
    except EXPECTED as exc:
        say(f":warning: {exc}")


def _run(slack: SlackServices, command: cmd.Command, user: str, channel: str, say: Say) -> None:
    services = slack.services
    match command:
        case cmd.Help():
            say(*help_blocks())
        case cmd.Start(line=line):
            started = start_release(services, line, user, channel)
            if isinstance(started, InsufficientContext):
                say(*missing_fields(started, line))
        case cmd.DryRun(line=line):
            result = dry_run(services, line)
            if isinstance(result, InsufficientContext):
                say(*missing_fields(result, line))
            else:
                say("Dry run, nothing deployed:\n```" + "\n".join(result.lines()) + "```")
        case cmd.OpenModal():
            pass  # opened by the listener itself: views.open cannot wait for the work queue
        case cmd.Status(release_id=None):
            active = [services.store.get(i) for i in services.store.active_ids()]
            lines = [line for r in active for line in status_lines(r)]
            say("```" + "\n".join(lines) + "```" if lines else "No active releases.")
        case cmd.Status(release_id=str(release_id)):
            say("```" + "\n".join(status_lines(find(services, release_id))) + "```")
        case cmd.ListReleases():
            say(
                _rows(
                    services.store.listing(limit=20),
                    "No releases yet: `/release SERVICE VERSION …` starts one.",
                )
            )
        case cmd.History(service=service):
            say(_rows(services.store.listing(service, 20), f"No releases of {service} yet."))
        case cmd.Rollback(release_id=release_id, reason=reason):
            why = reason or f"manual rollback by {user}"
            _act(services, release_id, say, lambda r: rollback(services, r, user, why))
        case cmd.Pause(release_id=release_id, reason=reason):
            why = reason or "paused from Slack"
            _act(services, release_id, say, lambda r: pause(services, r, user, why))
        case cmd.Resume(release_id=release_id):
            _act(services, release_id, say, lambda r: resume(services, r, user))
        case cmd.Promote(release_id=release_id):
            _act(services, release_id, say, lambda r: promote_now(services, r, user))
        case cmd.Extend(release_id=release_id, minutes=minutes, reason=reason):
            why = reason or f"extended from Slack by {user}"
            _act(services, release_id, say, lambda r: extend_bake(services, r, user, minutes, why))
        case cmd.Override(release_id=release_id, reason=because):
            _act(
                services, release_id, say, lambda r: promote_on_override(services, r, user, because)
            )
        case cmd.Issue(release_id=release_id, text=issue):
            reported = report_issue(services, find(services, release_id).id, user, issue)
            say(f"Thanks: your problem with {reported.id} is recorded in its audit trail.")
        case cmd.Lock(scope=scope, reason=reason):
            lock_env(services, scope, user, reason or "")
            say(
                f":lock: {scope} is locked: releases to it are refused until `/release unlock {scope}`."
            )
        case cmd.Unlock(scope=scope):
            unlock_env(services, scope, user)
            say(f":unlock: {scope} is unlocked.")


def _rows(rows: list[dict[str, object]], empty: str) -> str:
    return "\n".join(f"`{r['id']}` {r['status']} ({r['created_at']!s:.16})" for r in rows) or empty


def _act(services: Services, release_id: str, say: Say, action: Callable[[str], Release]) -> None:
    """A command on a release named by its ID or a prefix of it; says where it stands after."""
    after = action(find(services, release_id).id)
    say(f"{after.id}: {after.status.replace('_', ' ')}.")
