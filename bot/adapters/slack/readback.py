"""Reading Slack back to see whether something the bot set out to post is already there: the
one mechanism behind "at most once" for every post (a thread's card and replies, its charts
and report, an incident channel's notice).

The caller records its intent before the call; a later attempt that finds the intent without
its record (the process was killed, or the answer was lost, after Slack applied the call)
reads the channel or thread back and adopts the message Slack holds instead of posting again.
A message is recognised by the metadata that names it (``post_metadata``) or, for a shared
file, by the file's name (an upload carries no metadata)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
POST_EVENT_TYPE = "release_bot_post"  # the message metadata that names each post
READ_BACK_PAGES = 5  # of 200 messages: how far back a post is looked for
# Read-back errors that mean "cannot look here", with their fix: the post goes out, a possible
# double being better than a lost message. Any other error raises; the caller retries later.
UNREADABLE = {
    "missing_scope": "reinstall the app to grant it channels:history and groups:history",
    "channel_not_found": "give the channel by its ID (C…), not its name",
    "not_in_channel": "invite the bot to the channel",
}
Message = dict[str, Any]
CHANNEL_ID = re.compile(r"[A-Z][A-Z0-9]+")  # an ID: Slack allows no capitals in a name
LIST_PAGE = 999  # conversations.list's largest page (tier 2: as few calls as can be)
LIST_PAGES = 20  # about 20,000 channels: past them, a name is given up (give the ID)
# Why a channel's name was not resolved, with the fix (the post then goes out, as above).
UNRESOLVED = {
    "missing_scope": "reinstall the app to grant it channels:read and groups:read",
    "no such channel": "check the name, invite the bot if it is private, or give its ID (C…)",
}


def post_metadata(release_id: str, post: str, **more: object) -> dict[str, Any]:
    """The message metadata that names a post: what a later attempt looks for in Slack (a
    reply also says its first event: the events it shows are ``first_event`` to its post's)."""
    payload = {"release_id": release_id, "post": post, **more}
    return {"event_type": POST_EVENT_TYPE, "event_payload": payload}


def names_post(release_id: str, post: str) -> Callable[[Message], bool]:
    """Whether a message is ``post`` of ``release_id``, by its metadata."""

    def matches(message: Message) -> bool:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        return (
            metadata.get("event_type") == POST_EVENT_TYPE
            and payload.get("release_id") == release_id
            and payload.get("post") == post
        )

    return matches


def find_posted(
    client: WebClient,
    channel: str,
    matches: Callable[[Message], bool],
    what: str,
    thread_ts: str | None = None,
) -> Message | None:
    """The message of ``channel`` (of the thread ``thread_ts``) that ``matches``, if Slack
    holds one."""
    return next((m for m in readable(client, channel, what, thread_ts) if matches(m)), None)


def files_shared(client: WebClient, channel: str, thread_ts: str, what: str) -> set[str]:
    """The names of the files the thread shares (a ``file_share`` message carries them)."""
    return {
        str(f.get("name"))
        for message in readable(client, channel, what, thread_ts)
        for f in message.get("files") or []
        if isinstance(f, dict)
    }


def channel_id(client: WebClient, channel: str, what: str) -> str | None:
    """The ID of ``channel`` given by ID or by name (``#payments-incidents``), which
    ``conversations.history`` needs: a name is looked up with ``conversations.list``; None,
    after one warning naming the fix, when it cannot be (``what`` is then posted, and may
    appear twice)."""
    if CHANNEL_ID.fullmatch(channel):
        return channel
    name = channel.removeprefix("#")
    try:
        found = next((c for c in listed_channels(client) if c.get("name") == name), None)
    except SlackApiError as exc:  # any: the notice must not wait on a lookup
        error = str(exc.response.get("error", "") or "unknown error")
    else:
        if found is not None:
            return str(found["id"])
        error = "no such channel"
    log.warning(
        "cannot find the ID of %s to read it back and see whether %s is already there "
        "(%s: %s); posting it, so it may appear twice",
        channel,
        what,
        error,
        UNRESOLVED.get(error, "Slack's answer to conversations.list; give the channel's ID (C…)"),
    )
    return None


def listed_channels(client: WebClient) -> Iterator[Message]:
    """The workspace's public channels and the private ones the bot is in, archived ones left
    out, page after page."""
    args = {"types": "public_channel,private_channel", "exclude_archived": True}
    return paged(client.conversations_list, "channels", {**args, "limit": LIST_PAGE}, LIST_PAGES)


def readable(
    client: WebClient, channel: str, what: str, thread_ts: str | None = None
) -> Iterator[Message]:
    """``read_back``, or nothing when the channel cannot be read: one warning naming the fix
    (``what`` is then posted, and may appear twice)."""
    try:
        yield from read_back(client, channel, thread_ts)
    except SlackApiError as exc:
        error = str(exc.response.get("error", ""))
        if error not in UNREADABLE:
            raise
        log.warning(
            "cannot read %s back to see whether %s is already there (%s: %s); "
            "posting it, so it may appear twice",
            channel,
            what,
            error,
            UNREADABLE[error],
        )


def read_back(client: WebClient, channel: str, thread_ts: str | None) -> Iterator[Message]:
    """The channel's latest messages (the thread's replies with ``thread_ts``), with their
    metadata, a few pages at most."""
    args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
    if thread_ts is None:
        return paged(client.conversations_history, "messages", args, READ_BACK_PAGES)
    return paged(
        client.conversations_replies, "messages", {**args, "ts": thread_ts}, READ_BACK_PAGES
    )


def paged(
    method: Callable[..., Any], key: str, args: dict[str, Any], pages: int | None = None
) -> Iterator[Message]:
    """The ``key`` items of ``method``'s answers, page after page (Slack's cursor), ``pages``
    pages at most."""
    cursor = None
    for _ in range(pages) if pages is not None else count():
        page = method(**args, **({"cursor": cursor} if cursor else {}))
        yield from page.get(key) or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return
