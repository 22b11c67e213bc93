"""Steady load through HAProxy for the live demo: ``rate`` GETs a second from a few threads,
counted by the version that answered and by status, so the demo can say what users saw."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    """Answers by (version, status); failures to connect count as version "-"."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, version: str, status: int) -> None:
        with self.lock:
            self.counts[(version, status)] += 1

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self.lock:
            return dict(self.counts)


class LoadGenerator:
    """``rate`` requests a second to ``host:port`` + ``path``, spread over ``threads``."""

    def __init__(
        self, host: str, port: int, rate: float, path: str = "/checkout", threads: int = 4
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.interval = threads / rate  # each thread's pace
        self.tally = Tally()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> LoadGenerator:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                self.tally.add(response.getheader("X-Version") or "?", response.status)
            except (OSError, http.client.HTTPException):
                self.tally.add("-", 0)
                if conn is not None:
                    conn.close()
                conn = None
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            conn.close()
