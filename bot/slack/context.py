"""What the Slack listeners need: the engine's services, the Slack side of the threads, the App
Home, and the pool that runs slow work after the ack. Built by ``bot.bootstrap``.

Listeners ack first and hand the slow work (the engine, Slack posts paced per channel) to
``SlackServices.later``, so a burst of commands is acked in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bot.ports.seen import AbstractSeenRequests
from bot.service import Services
from bot.slack.chat import SlackChat, SlackThreads
from bot.slack.home import HomeTabs

log = logging.getLogger(__name__)
BACKGROUND_THREADS = 4

Reply = Callable[[str], None]


def background_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(BACKGROUND_THREADS, "release-bot-work")


@dataclass
class SlackServices:
    services: Services
    chat: SlackChat
    threads: SlackThreads
    home: HomeTabs
    background: ThreadPoolExecutor
    seen: AbstractSeenRequests  # requests already acted on (handlers/replay.py)

    def later(self, work: Callable[[], None], reply: Reply) -> Future[None]:
        """Run ``work`` after the ack. A failure the work did not turn into a message is
        logged with its traceback and the user is told, rather than left waiting."""

        def run() -> None:
            try:
                work()
            except Exception as exc:  # the last stop before a worker thread swallows it
                log.exception("background work failed")
                reply(f"Something went wrong on our side ({type(exc).__name__}); it is logged.")

        return self.background.submit(run)

    def close(self) -> None:
        """Stop publishing Home tabs and finish the work already handed over."""
        self.home.close()
        self.background.shutdown(wait=True)
