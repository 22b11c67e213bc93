"""The Bolt app: the Web API client, the listeners from ``handlers/``, the global error handler.

Listeners ack first and hand the slow work (the engine, Slack posts paced per channel) to
``SlackServices.background``, so a burst of commands is acked in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack_chat import SlackChat, SlackThreads
from bot.service import Services
from bot.settings import Settings, SettingsError
from bot.slack.home import HomeTabs, current_home

log = logging.getLogger(__name__)
LISTENER_THREADS = 16
BACKGROUND_THREADS = 4

Reply = Callable[[str], None]


@dataclass
class SlackServices:
    """What the listeners need: the engine's services and the Slack side of the threads."""

    services: Services
    chat: SlackChat
    threads: SlackThreads
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(BACKGROUND_THREADS, "release-bot-work")
    )
    home: HomeTabs = field(init=False)

    def __post_init__(self) -> None:
        """The App Home follows every delivered batch of events (``SlackChat.post``)."""
        client = self.chat.client
        self.home = HomeTabs(
            lambda user, view: client.views_publish(user_id=user, view=view),
            lambda: current_home(self.services.store),
            submit=self.background.submit,
        )
        self.chat.observers.append(lambda _release: self.home.changed())

    def later(self, work: Callable[[], None], reply: Reply) -> Future[None]:
        """Run ``work`` after the ack. A failure the work did not turn into a message is
        logged with its traceback and the user is told, rather than left waiting."""

        def run() -> None:
            try:
                work()
            except Exception as exc:  # the last stop before a worker thread swallows it
                log.exception("background work failed")
                reply(f"Something went wrong on our side ({type(exc).__name__}); it is logged.")

        return self.background.submit(run)


def build_app(settings: Settings, slack: SlackServices, client: WebClient) -> App:
    """The app with every listener registered; checks the token with ``auth.test``."""
    from handlers import register_all  # the listeners import Bolt types; only the app needs them

    try:
        app = App(
            client=client,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret
                else ""
            ),
            request_verification_enabled=settings.mode == "http",
            listener_executor=ThreadPoolExecutor(LISTENER_THREADS, "release-bot-listener"),
            raise_error_for_unhandled_request=False,
        )
    except BoltError as exc:
        raise SettingsError(f"Slack refused SLACK_BOT_TOKEN at start-up: {exc}") from None
    except (OSError, SlackApiError) as exc:
        raise SettingsError(
            f"cannot reach the Slack Web API at {settings.slack_api_url} ({exc}); "
            "check the network or SLACK_API_URL"
        ) from None
    slack.home.interval = settings.release_bot_home_interval
    register_all(app, slack)
    app.error(_on_error)
    return app


def _on_error(error: Exception, body: dict[str, Any], respond: Any = None) -> None:
    """Bolt's global error handler: log with the traceback; tell the user when we can."""
    log.error("unhandled error in a Slack listener", exc_info=error)
    if respond is not None and body.get("response_url"):
        respond(
            text=f"Something went wrong on our side ({type(error).__name__}); it is logged.",
            response_type="ephemeral",
            replace_original=False,
        )
