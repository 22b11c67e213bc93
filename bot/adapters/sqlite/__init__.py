"""The embedded store on SQLite: releases and their audit trail, flags, CI evidence, locks and
the judged windows, all in one database file (``database.Database``)."""
