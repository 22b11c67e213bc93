"""The release form: validated on submit, errors shown on the fields, else the release starts.

A view submission carries no channel: the form keeps the one it was opened from in
``private_metadata`` (set by the app, so the user cannot change it), or asks for one with a
channel picker. Without either the release is refused on the form: a release with no
channel would post nowhere, and ``channel=None`` would skip the service's allowed_channels.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.domain.contract import InsufficientContext
from bot.parsing import ParseError, parse_release
from bot.slack.blocks import CHANNEL_BLOCK, FIELD_BLOCKS, MODAL_CALLBACK, field_errors, modal_line
from bot.slack.context import SlackServices
from handlers.commands import start
from handlers.replay import once_of

NO_CHANNEL = "this form does not know its channel: close it and run /release in the channel"


def register(app: App, slack: SlackServices) -> None:
    @app.view(MODAL_CALLBACK)
    def submit(
        ack: Ack,
        body: dict[str, Any],
        view: dict[str, Any],
        client: WebClient,
        context: BoltContext,
    ) -> None:
        line, channel = modal_line(view["state"]["values"], view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        if not channel:
            ack(response_action="errors", errors=_no_channel(view))
            return
        try:
            parsed = parse_release(line, slack.services.config)
        except ParseError as exc:
            ack(response_action="errors", errors=field_errors(str(exc)))
            return
        if isinstance(parsed, InsufficientContext):
            problems = "; ".join([*parsed.missing, *parsed.deployment_blockers])
            ack(response_action="errors", errors=field_errors(problems))
            return
        ack()  # closes the form; the release's thread appears in the channel

        def say(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)

        slack.later(lambda: start(slack, line, user, channel, say), say, once_of(context))


def _no_channel(view: dict[str, Any]) -> dict[str, str]:
    """The error on the channel picker when the form has one, else on the service."""
    if any(b.get("block_id") == CHANNEL_BLOCK for b in view.get("blocks") or []):
        return {CHANNEL_BLOCK: "pick the channel the release posts in"}
    return {FIELD_BLOCKS["service"]: NO_CHANNEL}
