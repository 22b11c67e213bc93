"""Slack listeners, one package per feature, each with ``register(app, slack)``.

Every listener acks first and hands the slow work to ``slack.later``; the work itself is a
call into ``bot.service``, the same functions the CLI and the scheduler use.
"""

from __future__ import annotations

from slack_bolt import App

from bot.slack.context import SlackServices
from handlers import actions, commands, events, views
from handlers.replay import name_each_request


def register_all(app: App, slack: SlackServices) -> None:
    app.middleware(name_each_request())  # its work runs once: see handlers/replay.py
    commands.register(app, slack)
    actions.register(app, slack)
    views.register(app, slack)
    events.register(app, slack)
