"""Statuspage as a notification target: an incident per rollback (``notify``)."""
