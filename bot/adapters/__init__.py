"""Adapters: the real and embedded implementations of the ports in ``bot.ports``, grouped by
what they plug into (``sqlite/``, ``sim/``, ``llm/``); ARCHITECTURE.md has the map."""
