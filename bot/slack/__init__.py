"""Slack adapter: Block Kit builders (pure) and, later, the Bolt handlers that send them."""
