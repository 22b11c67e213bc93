"""One SQLite database holds the store, flags, CI evidence and the simulator's state."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlite_utils


class Database:
    """A sqlite-utils database shared by the adapters, with one lock for units of work.

    The connection is used from the scheduler's thread and from command handlers, never at
    the same time: every unit of work holds ``lock`` (re-entrant) while it runs.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL: a commit survives a crash of the process (what the reconcile
            # loop needs); only a power cut may lose the last ticks, which the next redoes.
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()
