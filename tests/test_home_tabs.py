"""``HomeTabs``: who gets the App Home republished, and how often (the end-to-end side is in
test_slack_app.py)."""

from __future__ import annotations

import threading
from typing import Any

from bot.slack.home import HomeTabs
from tests.slack_app_harness import wait_until


class Recorder:
    """A stand-in for views.publish, and a view whose version counts the changes."""

    def __init__(self, fail_for: frozenset[str] = frozenset()) -> None:
        self.version = 0
        self.published: list[tuple[str, int]] = []
        self.fail_for = fail_for
        self._lock = threading.Lock()

    def view(self) -> dict[str, Any]:
        return {"type": "home", "blocks": [], "version": self.version}

    def publish(self, user: str, view: dict[str, Any]) -> None:
        if user in self.fail_for:
            raise RuntimeError("user_not_found")
        with self._lock:
            self.published.append((user, view["version"]))


def test_changes_within_the_interval_make_one_trailing_publish_of_the_last_state() -> None:
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=0.2)
    tabs.opened("U1")
    assert seen.published == [("U1", 0)]  # opened: at once
    for _ in range(50):  # a busy tick's batches
        seen.version += 1
        tabs.changed()
    assert seen.published == [("U1", 0)]  # too soon after the last publish
    wait_until(lambda: len(seen.published) == 2, what="the trailing publish")
    assert seen.published[-1] == ("U1", 50)  # the last change is in it
    assert not tabs.pending
    tabs.close()


def test_a_change_long_after_the_last_publish_goes_out_at_once() -> None:
    now = [0.0]
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=10, clock=lambda: now[0])
    tabs.opened("U1")
    now[0] = 10.0
    seen.version = 1
    tabs.changed()  # the default submit runs the flush here and now
    assert seen.published == [("U1", 0), ("U1", 1)]
    assert not tabs.pending


def test_users_are_bounded_forgotten_when_stale_or_unreachable() -> None:
    now = [0.0]
    seen = Recorder(fail_for=frozenset({"U0GONE"}))
    tabs = HomeTabs(
        seen.publish, seen.view, interval=0, max_users=2, forget_after=100, clock=lambda: now[0]
    )
    for user in ("U1", "U2", "U3"):
        tabs.opened(user)
    assert tabs.users == ["U2", "U3"]  # the least recently opened gives way
    tabs.opened("U0GONE")  # its publish fails: it is not kept
    assert "U0GONE" not in tabs.users
    now[0] = 50.0
    tabs.opened("U2")
    seen.published.clear()
    now[0] = 120.0  # U3 opened 120 s ago, U2 70 s ago
    tabs.changed()
    assert tabs.users == ["U2"] and seen.published == [("U2", 0)]


def test_nothing_is_published_after_close() -> None:
    seen = Recorder()
    tabs = HomeTabs(seen.publish, seen.view, interval=0)
    tabs.opened("U1")
    tabs.close()
    tabs.changed()
    tabs.opened("U2")
    assert seen.published == [("U1", 0)]
