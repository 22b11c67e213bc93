"""Each request from Slack is acted on once.

Over HTTP, a signed request posted again inside Slack's five-minute window passes Bolt's
signature check: its signature is recorded in the database (``AbstractSeenRequests``, so
every process sharing it agrees), and the work of a signature seen before does not run.
After the window, Bolt refuses the old timestamp (401) as before.

Slack delivers an event again when it thinks the first delivery was not received (over HTTP
with ``X-Slack-Retry-Num`` and a fresh signature; over Socket Mode with ``retry_attempt``):
the ``event_id`` is recorded too. Socket Mode has no signatures: a request is recorded by a
digest of its payload (each carries a ``trigger_id`` or an ``action_ts`` of its own), so an
envelope delivered again is acted on once.

The middleware only names the request (``Once``, in the listener's ``context``); the check
runs in ``SlackServices.later``, after the ack, so a replay is acked 200 like any request
and nothing tells the sender it was ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import BoltContext, BoltRequest

from bot.slack.context import Once

log = logging.getLogger(__name__)

# Bolt accepts a timestamp up to five minutes from now, either way; a minute more for the
# clocks of other processes sharing the database.
SIGNED_WINDOW = timedelta(minutes=6)
# Slack retries an event three times within about five minutes; an hour is ample.
EVENT_RETRIES_WITHIN = timedelta(hours=1)
UNSIGNED = ("url_verification", "ssl_check")  # no action: Bolt lets them through unsigned
ONCE = "once"  # the context key listeners read: ``once_of(context)``

Next = Callable[[], None]


def name_each_request(clock: Callable[[], float] = time.time) -> Callable[..., None]:
    """A global middleware, after Bolt's signature check: puts the request's ``Once`` in
    the context, for ``SlackServices.later``."""

    def middleware(req: BoltRequest, body: dict[str, Any], next: Next) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        keys = _keys(req, body, now)
        if keys:
            req.context[ONCE] = Once(tuple(keys), now, _repeated(req, body))
        next()

    return middleware


def once_of(context: BoltContext) -> Once | None:
    once = context.get(ONCE)
    return once if isinstance(once, Once) else None


def _keys(req: BoltRequest, body: dict[str, Any], now: datetime) -> list[tuple[str, datetime]]:
    """What identifies this request, each with how long it is kept."""
    keys: list[tuple[str, datetime]] = []
    if body.get("type") in UNSIGNED:
        return keys
    signature = _header(req, "x-slack-signature")
    if signature:
        keys.append((f"signature:{signature}", _signed_until(req, now)))
    elif body:  # Socket Mode: a redelivered envelope carries the very same payload
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        keys.append((f"payload:{digest}", now + EVENT_RETRIES_WITHIN))
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    if isinstance(event_id, str) and event_id:
        keys.append((f"event:{event_id}", now + EVENT_RETRIES_WITHIN))
    return keys


def _signed_until(req: BoltRequest, now: datetime) -> datetime:
    """Until Bolt refuses the request's timestamp (checked already: it is a number)."""
    try:
        stamped = datetime.fromtimestamp(int(_header(req, "x-slack-request-timestamp")), UTC)
    except (ValueError, OverflowError, OSError):
        stamped = now
    return max(now, stamped) + SIGNED_WINDOW


def _header(req: BoltRequest, name: str) -> str:
    values = req.headers.get(name) or [""]
    return values[0]


def _repeated(req: BoltRequest, body: dict[str, Any]) -> Callable[[list[str]], None]:
    retry = _header(req, "x-slack-retry-num") or "?"
    reason = _header(req, "x-slack-retry-reason") or "?"
    kind = body.get("type") or "command"

    def say(keys: list[str]) -> None:
        if any(key.startswith("event:") for key in keys):
            event_id = body.get("event_id")
            log.info("event %s delivered again (retry %s, %s): ignored", event_id, retry, reason)
        else:
            log.warning("a %s request seen before (a replay): ignored", kind)

    return say
