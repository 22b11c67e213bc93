"""What the Slack listeners need: the engine's services, the Slack side of the threads, the App
Home, and the pool that runs slow work after the ack. Built by ``bot.bootstrap``.

Listeners ack first and hand the slow work (the engine, Slack posts paced per channel) to
``SlackServices.later``, so a burst of commands is acked in milliseconds. The replay check
(``Once``, built by ``handlers/replay.py``) runs there too, after the ack and before the
work: it writes to the database, which a tick's unit of work may hold for seconds, and
Slack wants its ack within three.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from bot.ports.seen import AbstractSeenRequests
from bot.service import Services
from bot.slack.chat import AbstractSlackThreads, SlackChat
from bot.slack.home import HomeTabs

log = logging.getLogger(__name__)
BACKGROUND_THREADS = 4
FORM_THREADS = 2  # views.open only: a trigger_id lasts 3 s, so never behind the slow work

Reply = Callable[[str], None]


@dataclass(frozen=True)
class Once:
    """What identifies one request from Slack (its signature, an event ID), each key with
    the time it is kept until: the request's work runs only if none was seen before."""

    keys: tuple[tuple[str, datetime], ...]
    now: datetime
    repeated: Callable[[list[str]], None]  # says so in the log

    def first(self, seen: AbstractSeenRequests) -> bool:
        # every key recorded, not only up to the first one seen before
        again = [key for key, until in self.keys if not seen.first(key, self.now, until)]
        if again:
            self.repeated(again)
        return not again


def background_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(BACKGROUND_THREADS, "release-bot-work")


@dataclass
class SlackServices:
    services: Services
    chat: SlackChat
    threads: AbstractSlackThreads
    home: HomeTabs
    background: ThreadPoolExecutor
    seen: AbstractSeenRequests  # requests already acted on (handlers/replay.py)
    forms: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(FORM_THREADS, "release-bot-forms")
    )

    def later(self, work: Callable[[], None], reply: Reply, once: Once | None) -> Future[None]:
        """Run ``work`` after the ack, unless ``once`` says the request was seen before (a
        replay, a retry). A failure the work did not turn into a message is logged with its
        traceback and the user is told, rather than left waiting."""

        def run() -> None:
            if once is None or once.first(self.seen):
                work()

        return self.background.submit(_reported, run, reply)

    def promptly(self, work: Callable[[], None], reply: Reply) -> Future[None]:
        """Run ``work`` (a ``views.open``) after the ack on a pool of its own: a trigger_id
        expires 3 s after the click, too soon to wait behind releases starting."""
        return self.forms.submit(_reported, work, reply)

    def close(self) -> None:
        """Stop publishing Home tabs and finish the work already handed over."""
        self.home.close()
        self.forms.shutdown(wait=True)
        self.background.shutdown(wait=True)


def _reported(work: Callable[[], object], reply: Reply) -> None:
    """Run ``work``; a failure it did not turn into a message is logged with its traceback
    and the user is told, rather than left waiting."""
    try:
        work()
    except Exception as exc:  # the last stop before a worker thread swallows it
        log.exception("background work failed")
        reply(f"Something went wrong on our side ({type(exc).__name__}); it is logged.")
