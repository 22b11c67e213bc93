"""The demo service's unit tests: what its CI runs before a release (``demo/ci.py``)."""

from __future__ import annotations

from demo.service import Knobs


def test_an_error_rate_of_a_fifth_fails_every_fifth_request() -> None:
    knobs = Knobs(error_rate=0.2, latency_ms=0.0, seed="2.0.0")
    fails = [knobs.next_fails() for _ in range(20)]
    assert fails == [False, False, False, False, True] * 4


def test_a_healthy_version_fails_nothing() -> None:
    knobs = Knobs(error_rate=0.0, latency_ms=0.0, seed="2.0.1")
    assert not any(knobs.next_fails() for _ in range(100))


def test_latency_is_drawn_the_same_way_on_every_run() -> None:
    first = [Knobs(0.0, 40.0, seed="1.0.0").latency_seconds() for _ in range(3)]
    again = [Knobs(0.0, 40.0, seed="1.0.0").latency_seconds() for _ in range(3)]
    assert first == again and all(0 < s < 1 for s in first)
