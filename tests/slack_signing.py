"""Signed Slack requests for tests that talk to a running app over real HTTP.

Bodies are built exactly as Slack sends them (form-urlencoded commands, `payload=<json>`
interactions, JSON events) because the signature covers the raw body: re-encoding it
would break verification, so tests must sign and send the very same string.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.fake_slack import APP_ID, BOT_ID, BOT_USER_ID

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
VERIFICATION_TOKEN = "legacy-verification-token"  # deprecated, but Slack still sends it
TRIGGER_ID = "13345224609.738474920.8088930838d88f008e0"
COMMAND_RESPONSE_URL = "https://hooks.slack.com/commands/T1/1234567890/abcdefABCDEF"
ACTION_RESPONSE_URL = "https://hooks.slack.com/actions/T1/1234567890/abcdefABCDEF"


def signed_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack would send with `body`; pass an old `timestamp` to test replay rejection."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    if signature is None:
        raise ValueError("slack_sdk produced no signature")
    content_type = JSON if body.lstrip().startswith("{") else FORM
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def slash_command_body(
    text: str,
    user_id: str,
    channel_id: str,
    command: str = "/release",
    trigger_id: str = TRIGGER_ID,
    response_url: str = COMMAND_RESPONSE_URL,
    team_id: str = "T1",
) -> str:
    """A slash command as Slack POSTs it: form fields in Slack's order."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "release-bot-test",
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields)


def _user(user_id: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def _interaction(payload: dict[str, Any]) -> str:
    """Interactions arrive as a single form field holding the JSON payload."""
    return urlencode({"payload": json.dumps(payload)})


def block_action_body(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    container_ts: str | None = None,
    trigger_id: str = TRIGGER_ID,
    response_url: str = ACTION_RESPONSE_URL,
    block_id: str = "release_actions",
    *,
    thread_ts: str | None = None,
    team_id: str = "T1",
    message_blocks: list[dict[str, Any]] | None = None,
) -> str:
    """A button click on a bot message.

    `container_ts` is `container.message_ts` (defaults to `message_ts`); `thread_ts` marks a
    message inside a thread.
    """
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": container_ts or message_ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "ts": message_ts,
        "text": "",
        "blocks": message_blocks or [],
    }
    if thread_ts:
        container["thread_ts"] = thread_ts
        message["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": "release-bot-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    return _interaction(payload)


def _state_value(value: Mapping[str, Any] | str) -> dict[str, Any]:
    """A bare string is shorthand for a plain_text_input value."""
    if isinstance(value, str):
        return {"type": "plain_text_input", "value": value}
    return dict(value)


def view_submission_body(
    callback_id: str,
    values: Mapping[str, Mapping[str, Mapping[str, Any] | str]],
    user_id: str,
    private_metadata: str = "",
    *,
    team_id: str = "T1",
    view_id: str = "V0SUBMIT",
    trigger_id: str = TRIGGER_ID,
) -> str:
    """A modal submission: `values[block_id][action_id]` is the state value object."""
    state = {
        block_id: {action_id: _state_value(v) for action_id, v in actions.items()}
        for block_id, actions in values.items()
    }
    view = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": state},
        "hash": "1732456800.abcdef12",
        "title": {"type": "plain_text", "text": "Release", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": BOT_ID,
    }
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "release-bot-test"},
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interaction(payload)


def event_body(
    event: dict[str, Any],
    *,
    team_id: str = "T1",
    api_app_id: str = APP_ID,
    event_id: str | None = None,
    event_time: int | None = None,
) -> str:
    """An Events API `event_callback`; pass `event_id` to replay the same delivery."""
    envelope = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    return json.dumps(envelope)


def url_verification_body(challenge: str) -> str:
    """The handshake Slack sends when the Request URL is saved."""
    return json.dumps(
        {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    )


def post(
    url: str, body: str, headers: Mapping[str, str], timeout: float = 5, method: str = "POST"
) -> tuple[int, dict[str, str], str]:
    """POST `body` as is (or GET without one); an HTTP error status is returned, not raised,
    so tests can assert 401."""
    data = body.encode() if method == "POST" else None
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers.items()), error.read().decode()
