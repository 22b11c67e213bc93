"""The release form: validated on submit, errors shown on the fields, else the release starts.

A view submission carries no channel, so the form keeps it in ``private_metadata``.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain.contract import InsufficientContext
from bot.parsing import ParseError, parse_release
from bot.slack.app import SlackServices
from bot.slack.blocks import field_errors, modal_line
from handlers.commands import run


def register(app: App, slack: SlackServices) -> None:
    @app.view(_callback_id())
    def submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        line, channel = modal_line(view["state"]["values"], view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        try:
            parsed = parse_release(line, slack.services.config)
        except ParseError as exc:
            ack(response_action="errors", errors=field_errors(str(exc)))
            return
        if isinstance(parsed, InsufficientContext):
            problems = "; ".join([*parsed.missing, *parsed.deployment_blockers])
            ack(response_action="errors", errors=field_errors(problems))
            return
        ack()

        def say(text: str, blocks: list[dict[str, Any]] | None = None) -> None:
            client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)

        slack.later(lambda: run(slack, line, user, channel, say), say)


def _callback_id() -> str:
    from bot.slack.blocks import MODAL_CALLBACK

    return MODAL_CALLBACK
