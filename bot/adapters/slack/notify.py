"""A service's incident channel in Slack: a rollback or a failure is posted there
(``chat.postMessage``), beside the release's own thread."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.notify import Moment
from bot.ports.notify import AbstractNotifier, Notice, NotificationFailed


class SlackIncidentChannel(AbstractNotifier):
    moments: frozenset[Moment] = frozenset({"rolled_back", "failed"})

    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.target = channel

    def send(self, notice: Notice) -> str:
        try:
            answer = self.client.chat_postMessage(
                channel=self.channel, text=notice.text, unfurl_links=False
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown error") if exc.response else str(exc)
            raise NotificationFailed(f"Slack refused the post to {self.channel}: {error}") from None
        except OSError as exc:  # the network: unreachable, timed out
            raise NotificationFailed(f"Slack could not be reached: {exc}") from None
        return str(answer.get("ts", ""))
