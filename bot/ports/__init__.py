"""Ports: the small abstract classes the service layer talks through, one module each.

Every port has a real adapter and an embedded default under ``bot/adapters`` (the table is
in ARCHITECTURE.md); ``bot.bootstrap`` picks. Ports import only the domain.
"""
