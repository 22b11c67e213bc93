"""Slack as the chat: the thread adapter (``chat``), Block Kit builders, the release form, the
App Home, and the context the listeners in ``handlers/`` work with. The entry point that
serves them is ``bot.serve``."""
