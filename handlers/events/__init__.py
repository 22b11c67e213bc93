"""Events: a mention in a release's thread (status, why, pause, rollback) and the App Home.

Slack delivers an event again when it thinks the first delivery was not received, and Bolt
does not deduplicate: ``handlers/replay.py`` acks a delivery whose ``event_id`` was already
seen and runs nothing, so a mention is answered once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.domain.release import Release
from bot.presenters import status_lines
from bot.service import answer_why, pause, rollback
from bot.slack.context import SlackServices
from bot.slack.kit import esc
from handlers.commands import EXPECTED
from handlers.replay import once_of

MENTION = re.compile(r"<@[A-Z0-9]+>")
HELP = (
    "In a release thread I answer `status`, `why`, `pause [reason]` and `rollback [reason]`. "
    "Everything else goes through `/release` (try `/release help`)."
)

Say = Callable[[str], None]


def register(app: App, slack: SlackServices) -> None:
    @app.event("app_mention")
    def mention(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        channel, user = event["channel"], event.get("user", "")
        thread_ts = event.get("thread_ts")

        def say(text: str) -> None:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts or event["ts"], text=text)

        slack.later(
            lambda: answer(slack, channel, thread_ts, user, event.get("text", ""), say),
            say,
            once_of(context),
        )

    @app.event("app_home_opened")
    def home(event: dict[str, Any], context: BoltContext) -> None:
        """Published now, and again as releases move while the user is remembered."""
        if event.get("tab", "home") == "home":
            user = event["user"]
            slack.later(lambda: slack.home.opened(user), _nobody, once_of(context))

    @app.event("message")
    def ignore_messages() -> None:
        """Plain channel messages are not for us; acknowledged so Slack does not retry."""


def _nobody(text: str) -> None:
    """No one to tell: an App Home that fails to publish is in the log."""


def answer(
    slack: SlackServices, channel: str, thread_ts: str | None, user: str, text: str, say: Say
) -> None:
    words = MENTION.sub("", text).strip().split(maxsplit=1)
    verb = words[0].lower() if words else "help"
    rest = words[1] if len(words) > 1 else ""
    thread = slack.threads.find(channel, thread_ts) if thread_ts else None
    if thread is None:
        say("I only act inside a release's thread. " + HELP)
        return
    services = slack.services
    release = services.store.get(thread.release_id)
    try:
        match verb:
            case "status":
                say(esc("\n".join(status_lines(release))))
            case "why":
                question = MENTION.sub("", text).strip()
                # Escaped: the agent's words and typed reasons are text, never markup.
                say(esc(answer_why(services, release.id, question, user) or _why(release)))
            case "pause":
                pause(services, release.id, user, rest or f"paused in the thread by {user}")
            case "rollback":
                rollback(
                    services, release.id, user, rest or f"rollback asked in the thread by {user}"
                )
            case _:
                say(f"I cannot do `{verb}` here. " + HELP)
    except EXPECTED as exc:
        say(f":no_entry: {exc}")


def _why(release: Release) -> str:
    if release.rollback is not None:
        return f"Rolled back ({release.rollback.triggered_by}): {release.rollback.reason}"
    if release.pause_reason:
        return f"Paused: {release.pause_reason}"
    if release.blockers:
        return "Blocked: " + "; ".join(release.blockers)
    verdict = release.judgement
    if verdict is None:
        return f"{release.id} is {release.status.replace('_', ' ')}; no metrics judged yet."
    unproven = [r.detail for r in verdict.results if r.state != "holds"]
    return (
        f"The judge says {verdict.recommendation} (confidence {verdict.statistical_confidence:.3f})"
        + (": " + "; ".join(unproven) if unproven else ": every test holds.")
    )
