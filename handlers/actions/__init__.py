"""The thread's buttons: Approve, Reject, Rollback (confirmed in Slack), Pause, Resume,
Promote now, "Open the form" on an incomplete line, and a held step's decision: Extend
(confirmed), "Promote on override…" (a form asks why) and Roll back.

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
from bot.service import (
    approve,
    extend_bake,
    pause,
    promote_now,
    promote_on_override,
    reject,
    resume,
    rollback,
)
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
    blocks.EXTEND: ("bake extended", lambda s, r, u: _extend(s, r, u)),
}


def _extend(slack: SlackServices, release_id: str, user: str) -> Release:
    """Extend by what the button said: the held step's planned bake, within the bound."""
    minutes = blocks.extension_minutes(slack.services.store.get(release_id))
    return extend_bake(slack.services, release_id, user, minutes, f"extended in Slack by {user}")


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

    @app.action(blocks.OVERRIDE)
    def override_form(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        release_id = body["actions"][0]["value"]
        channel = (body.get("channel") or {}).get("id") or ""
        trigger = body["trigger_id"]
        hold = blocks.hold_of(body["actions"][0].get("block_id", ""))
        # Only the decision request gives way to an audit line; the card rebuilds itself.
        clicked = str((body.get("message") or {}).get("ts") or "")
        ts = clicked if hold is not None else ""

        def say(text: str) -> None:
            respond(text=text, response_type="ephemeral", replace_original=False)

        def open_it() -> None:
            release = slack.services.store.get(release_id)
            if release.held is None:  # decided since the buttons were posted: say by whom
                say(f":no_entry: {_decided(release)}")
                return
            try:
                _same_hold(slack, release_id, hold)
            except CommandRejected as exc:
                say(f":no_entry: {exc}")
                return
            client.views_open(trigger_id=trigger, view=blocks.override_form(release, channel, ts))

        slack.promptly(open_it, say)

    @app.view(blocks.OVERRIDE_CALLBACK)
    def override_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient,
        context: BoltContext,
    ) -> None:  # fmt: skip
        release_id, channel, ts, hold, held, reason = blocks.override_submission(view)
        if len(reason) < 3:
            errors = {blocks.OVERRIDE_REASON_BLOCK: "say why it is safe to promote"}
            ack(response_action="errors", errors=errors)
            return
        ack()  # closes the form; the thread shows the override
        user = body["user"]["id"]

        def say(text: str) -> None:
            if channel:
                client.chat_postEphemeral(channel=channel, user=user, text=text)

        def work() -> None:
            try:
                _same_hold(slack, release_id, hold)
                promote_on_override(slack.services, release_id, user, reason)
            except EXPECTED as exc:  # refusals by policy are audited by the service itself
                say(f":no_entry: {exc}")
                return
            if channel and ts:
                _replace_decision_buttons(client, channel, ts, held, user, reason)

        slack.later(work, say, once_of(context))


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


def _same_hold(slack: SlackServices, release_id: str, hold: str | None) -> None:
    """A decision answers the hold it was posted for, not a later hold of the same step."""
    release = slack.services.store.get(release_id)
    current = blocks.hold_key(release)
    if hold and current is not None and current != hold:
        raise CommandRejected(
            f"that request was for an earlier hold of {release.id}; it is held again: "
            "use the latest request in the thread"
        )


def _same_gate(slack: SlackServices, release_id: str, body: dict[str, Any]) -> None:
    """An Approve or Reject button answers the gate it was posted for, not a later one; a
    decision's buttons the hold they were posted for."""
    block_id = body["actions"][0].get("block_id", "")
    _same_hold(slack, release_id, blocks.hold_of(block_id))
    gate = blocks.gate_of(block_id)
    if gate is None:
        return
    pending = slack.services.store.get(release_id).pending_approval
    if pending is not None and pending != gate:  # none pending: the domain says who answered
        raise CommandRejected(
            f"that button was for the {gate} approval; {pending} is waiting now: "
            "use the latest request in the thread"
        )


def _replace_buttons(
    client: WebClient,
    channel: str,
    message: dict[str, Any],
    verb: str,
    user: str,
    note: str = "",
) -> None:
    """The clicked message keeps its text; its buttons become "approved by @x at 14:02 UTC"."""
    kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
    audit = blocks.audit_line(verb, user, datetime.now(UTC), note)
    text = message.get("text") or f"{verb} by <@{user}>"
    client.chat_update(channel=channel, ts=message["ts"], text=text, blocks=kept + audit)


def _decided(release: Release) -> str:
    last = release.decisions[-1] if release.decisions else None
    if last is None:
        return f"{release.id} has no step waiting for a decision"
    return f"{release.id}'s step {last.step + 1} was already decided: {last.describe()}"


def _replace_decision_buttons(
    client: WebClient, channel: str, ts: str, held: str, user: str, reason: str
) -> None:
    """The decision message gives way to what was held and the override's audit line (a
    form's submission does not carry the message; the evidence stays in the audit trail)."""
    message = {"ts": ts, "text": f"held: {held}", "blocks": blocks.held_summary(held)}
    _replace_buttons(client, channel, message, "promoted on override", user, reason)
