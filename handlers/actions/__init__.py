"""The thread's buttons: Approve, Reject, Rollback (confirmed in Slack), Pause, Resume,
Promote now, and "Open the form" on an incomplete line.

A click changes state at most once: the domain refuses a second approval or rollback with a
message saying who did it first, which the clicker sees as an ephemeral reply. After a
successful click the buttons of that message give way to an audit line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.domain.release import CommandRejected, Release
from bot.service import approve, pause, promote_now, reject, resume, rollback
from bot.slack import blocks
from bot.slack.context import SlackServices
from handlers.commands import EXPECTED, open_form
from handlers.replay import once_of

Action = Callable[[SlackServices, str, str], Release]

ACTIONS: dict[str, tuple[str, Action]] = {
    blocks.APPROVE: ("approved", lambda s, r, u: approve(s.services, r, u)),
    blocks.REJECT: (
        "rejected",
        lambda s, r, u: reject(s.services, r, u, f"rejected in Slack by {u}"),
    ),
    blocks.ROLLBACK: (
        "rollback requested",
        lambda s, r, u: rollback(s.services, r, u, f"manual rollback by {u}"),
    ),
    blocks.PAUSE: ("paused", lambda s, r, u: pause(s.services, r, u, f"paused in Slack by {u}")),
    blocks.RESUME: ("resumed", lambda s, r, u: resume(s.services, r, u)),
    blocks.PROMOTE: ("promoted", lambda s, r, u: promote_now(s.services, r, u)),
}


def register(app: App, slack: SlackServices) -> None:
    for action_id, (verb, action) in ACTIONS.items():
        app.action(action_id)(_button(slack, verb, action))

    @app.action(blocks.OPEN_MODAL)
    def open_modal(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        value = body["actions"][0].get("value") or "{}"
        prefill = json.loads(value) if value.startswith("{") else {"line": value}
        channel = (body.get("channel") or {}).get("id") or ""
        trigger = body["trigger_id"]

        def say(text: str) -> None:
            respond(text=text, response_type="ephemeral", replace_original=False)

        slack.promptly(lambda: open_form(slack, client, trigger, prefill, channel), say)


def _button(slack: SlackServices, verb: str, action: Action) -> Callable[..., None]:
    def handle(
        ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext
    ) -> None:
        ack()
        user = body["user"]["id"]
        release_id = body["actions"][0]["value"]
        channel = (body.get("channel") or {}).get("id")
        message = body.get("message") or {}

        def say(text: str) -> None:
            respond(text=text, response_type="ephemeral", replace_original=False)

        def work() -> None:
            try:
                _same_gate(slack, release_id, body)
                action(slack, release_id, user)
            except EXPECTED as exc:  # refusals by policy are audited by the service itself
                say(f":no_entry: {exc}")
                return
            if channel and message.get("ts"):
                _replace_buttons(client, channel, message, verb, user)

        slack.later(work, say, once_of(context))

    return handle


def _same_gate(slack: SlackServices, release_id: str, body: dict[str, Any]) -> None:
    """An Approve or Reject button answers the gate it was posted for, not a later one."""
    gate = blocks.gate_of(body["actions"][0].get("block_id", ""))
    if gate is None:
        return
    pending = slack.services.store.get(release_id).pending_approval
    if pending is not None and pending != gate:  # none pending: the domain says who answered
        raise CommandRejected(
            f"that button was for the {gate} approval; {pending} is waiting now: "
            "use the latest request in the thread"
        )


def _replace_buttons(
    client: WebClient, channel: str, message: dict[str, Any], verb: str, user: str
) -> None:
    """The clicked message keeps its text; its buttons become "approved by @x at 14:02 UTC"."""
    kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    audit = blocks.audit_line(verb, user, datetime.now(UTC))
    text = message.get("text") or f"{verb} by <@{user}>"
    client.chat_update(channel=channel, ts=message["ts"], text=text, blocks=kept + audit)
