"""SIGINT and SIGTERM as a request to stop, read from a wake-up pipe.

A Python handler that sets a ``threading.Event`` can hang the process for good: the handler
runs in the main thread between two bytecodes, possibly while that thread is inside the same
event's ``wait`` and holds its (non-reentrant) lock; ``set`` then waits for itself. About one
SIGTERM in 300 did so against a loop of short waits (the chaos run's slow-to-stop app).
Blocking the signals and ``sigwait`` is no cure either: threads that native libraries start
at import time keep an open mask, and the kernel hands them the signal's default action.

Here the handler does nothing; Python's C-level handler writes the signal's number to a pipe
(``signal.set_wakeup_fd``, as asyncio does), whatever thread the kernel picked, and ``wait``
reads the pipe. No lock is taken in a handler.
"""

from __future__ import annotations

import os
import select
import signal
import time
from types import FrameType

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def _noted(signum: int, frame: FrameType | None) -> None:
    """The pipe has it already: nothing to do in the main thread."""


class StopSignals:
    """Install from the main thread; ``wait`` there too."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the C handler must never block
        self._handlers = {sig: signal.signal(sig, _noted) for sig in STOP_SIGNALS}
        self._wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self.received: int | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """True once SIGINT or SIGTERM has come (then always); False when ``timeout`` ends."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while self.received is None:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([self._read], [], [], left)
            if not ready:
                return False
            # Other signals with Python handlers write here too: only ours stop.
            numbers = [n for n in os.read(self._read, 256) if n in STOP_SIGNALS]
            if numbers:
                self.received = numbers[0]
        return True

    def restore(self) -> None:
        """The handlers and wake-up descriptor as they were (a process that goes on)."""
        signal.set_wakeup_fd(self._wakeup)
        for sig, handler in self._handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        os.close(self._read)
        os.close(self._write)
