"""Slack as a notification target: a service's incident channel (``notify``)."""
