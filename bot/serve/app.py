"""The Bolt app: the Web API client, the listeners from ``handlers/``, the global error handler.

Listeners ack first and hand the slow work to ``SlackServices.later`` (``bot/slack/context.py``).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import Settings, SettingsError
from bot.slack.context import SlackServices
from handlers import register_all

log = logging.getLogger(__name__)
LISTENER_THREADS = 16


def build_app(settings: Settings, slack: SlackServices, client: WebClient) -> App:
    """The app with every listener registered; checks the token with ``auth.test``."""
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
            # Every listener acks and hands its work over at once: the response leaves when
            # the listener returns, not at Bolt's next 10 ms poll for the ack.
            process_before_response=True,
        )
    except BoltError as exc:
        raise SettingsError(f"Slack refused SLACK_BOT_TOKEN at start-up: {exc}") from None
    except (OSError, SlackApiError) as exc:
        raise SettingsError(
            f"cannot reach the Slack Web API at {settings.slack_api_url} ({exc}); "
            "check the network or SLACK_API_URL"
        ) from None
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
