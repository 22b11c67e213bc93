"""A service's incident channel in Slack: a rollback or a failure is posted there
(``chat.postMessage``), beside the release's own thread.

Posted at most once: each notice carries message metadata naming its release and moment, and
a retry (an earlier attempt whose outcome was never recorded) first reads the channel back and
adopts the notice Slack already holds (``readback.py``, as the thread's posts do). A channel
given by name (``#payments-incidents``) is read back by its ID: looked up once per notifier
(``conversations.list`` is rate-limited, tier 2) or taken from a post's answer, and kept."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.readback import (
    Message,
    channel_id,
    find_posted,
    names_post,
    post_metadata,
)
from bot.domain.notify import Moment
from bot.ports.notify import AbstractNotifier, Notice, NotificationFailed

log = logging.getLogger(__name__)


class SlackIncidentChannel(AbstractNotifier):
    moments: frozenset[Moment] = frozenset({"rolled_back", "failed"})

    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.target = channel
        self.channel_id: str | None = None  # to read the channel back: found once, then kept

    def send(self, notice: Notice) -> str:
        post = f"notice:{notice.moment}"
        try:
            if notice.retry:
                matches = names_post(notice.release_id, post)
                what = f"{notice.release_id}'s {post}"
                found = self._posted(matches, what)
                if found is not None:
                    log.info("%s is in %s already; not posted again", what, self.channel)
                    return str(found.get("ts", ""))
            answer = self.client.chat_postMessage(
                channel=self.channel,
                text=notice.text,
                unfurl_links=False,
                metadata=post_metadata(notice.release_id, post),
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown error") if exc.response else str(exc)
            raise NotificationFailed(f"Slack refused the post to {self.channel}: {error}") from None
        except OSError as exc:  # the network: unreachable, timed out
            raise NotificationFailed(f"Slack could not be reached: {exc}") from None
        if isinstance(answer.get("channel"), str):  # the ID, whichever way it was given
            self.channel_id = answer["channel"]
        return str(answer.get("ts", ""))

    def _posted(self, matches: Callable[[Message], bool], what: str) -> Message | None:
        """The notice in the channel, if Slack holds it (the channel's ID found first)."""
        if self.channel_id is None:
            self.channel_id = channel_id(self.client, self.channel, what)
            if self.channel_id is None:
                return None
        return find_posted(self.client, self.channel_id, matches, what)
