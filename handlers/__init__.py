"""Slack listeners, one package per feature, each with ``register(app, services)``.

The Slack app (the /release command, approve and rollback buttons, thread replies) arrives
with issue 4; the engine they will call is ``bot.service``.
"""
