"""Wiring for ``release-bot serve``: the engine with Slack as its chat (``bot.bootstrap``), the
Bolt app around it, and the HTTP server (or Socket Mode); ``serve_forever`` runs them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.bootstrap import SlackOptions, Wiring, bootstrap
from bot.ports.llm import AbstractLLM
from bot.serve.app import build_app
from bot.serve.web import Server, WebApp
from bot.settings import Settings, SettingsError
from bot.slack.context import SlackServices
from bot.stopping import StopSignals

log = logging.getLogger(__name__)


@dataclass
class SlackWiring:
    wiring: Wiring
    slack: SlackServices
    app: App
    server: Server


def wire(
    settings: Settings,
    *,
    virtual_clock: bool = False,
    clock_start: datetime | None = None,
    llm: AbstractLLM | None = None,
) -> SlackWiring:
    """Everything ``serve`` runs, not started yet. Raises ``SettingsError`` with one line.
    ``llm``: the agent's model (``llm_from_env``); none: the rules do every agent step."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    wiring = bootstrap(
        settings.release_bot_db,
        virtual_clock=virtual_clock,
        clock_start=clock_start,
        config_path=settings.release_bot_config,
        tick_seconds=settings.release_bot_tick_seconds,
        llm=llm,
        slack=SlackOptions(
            token=token,
            api_url=settings.slack_api_url,
            default_channel=settings.release_bot_channel,
            post_interval=settings.release_bot_post_interval,
            home_interval=settings.release_bot_home_interval,
        ),
    )
    slack = wiring.slack
    assert slack is not None
    try:
        app = build_app(settings, slack, slack.chat.client)
        secret = settings.release_bot_evidence_secret
        web = WebApp(
            app if settings.mode == "http" else None,
            wiring.ticker,
            secret.get_secret_value() if secret is not None else None,
        )
        socket_mode = _socket_mode(app, settings) if settings.mode == "socket" else None
    except BaseException:  # nothing is left running or open behind the error
        wiring.close()
        raise
    try:
        server = Server(web, settings.host, settings.port, socket_mode)
    except OSError as exc:  # waitress binds here: the port is taken or the host is not ours
        if socket_mode is not None:
            socket_mode.close()
        wiring.close()
        raise SettingsError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}): "
            "set PORT (or HOST) to a free address"
        ) from None
    return SlackWiring(wiring, slack, app, server)


def _socket_mode(app: App, settings: Settings) -> Any:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    assert settings.slack_app_token is not None
    return SocketModeHandler(app, settings.slack_app_token.get_secret_value())


def serve_forever(settings: Settings, llm: AbstractLLM | None = None) -> None:
    """Start, then wait for SIGINT or SIGTERM and stop cleanly (the tick finishes first)."""
    stop = StopSignals()
    wired = wire(settings, llm=llm)
    try:
        wired.server.start()
    except (SlackApiError, OSError) as exc:  # only Socket Mode calls Slack in start()
        _shut_down(wired)
        raise SettingsError(_socket_mode_refused(exc, settings)) from None
    log.info(
        "release-bot serving on %s:%d (%s mode)", settings.host, wired.server.port, settings.mode
    )
    stop.wait()
    _shut_down(wired)


def _shut_down(wired: SlackWiring) -> None:
    wired.server.stop()
    wired.wiring.close()


def _socket_mode_refused(exc: SlackApiError | OSError, settings: Settings) -> str:
    """One line for a Socket Mode start that failed: SlackApiError's own text spans lines."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if exc.response is not None else None
        return (
            f"Slack refused SLACK_APP_TOKEN at start-up ({error or exc.__class__.__name__}): "
            "use an app-level xapp- token with the connections:write scope, or unset "
            "SLACK_APP_TOKEN to serve over HTTP"
        )
    return (
        f"cannot reach the Slack Web API at {settings.slack_api_url} to open the Socket Mode "
        f"connection ({exc}); check the network or SLACK_API_URL"
    )
