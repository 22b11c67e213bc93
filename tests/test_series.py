from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.adapters.sqlite import series as sqlite_series
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.series import SqliteSeries
from bot.domain.observations import CohortSample, WindowSample
from bot.ports.series import AbstractSeries, SeriesPoint
from tests.conftest import migrated_db, postgres_stores_for

T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)
TEN_S = timedelta(seconds=10)


def cohort(requests: int, errors: int = 0) -> CohortSample:
    """All requests between 0.1 s and 0.2 s, so p95 = 100 + 0.95 * 100 = 195 ms."""
    buckets = {"0.1": 0, "0.2": requests, "+Inf": requests} if requests else {}
    return CohortSample(requests=requests, errors=errors, latency_buckets=buckets)


def window(i: int, canary: CohortSample, baseline: CohortSample) -> WindowSample:
    start = T0 + i * TEN_S
    return WindowSample(start=start, end=start + TEN_S, baseline=baseline, canary=canary)


@pytest.fixture(params=["sqlite", "postgres"])
def series(request: pytest.FixtureRequest) -> AbstractSeries:
    if request.param == "postgres":
        return postgres_stores_for(request).series
    return SqliteSeries(migrated_db())


def test_add_then_points_round_trips_counts_times_and_p95(series: AbstractSeries) -> None:
    series.add("r1", 2, window(0, canary=cohort(40, 3), baseline=cohort(800, 4)))
    [point] = series.points("r1")
    assert replace(point, canary_p95_ms=None, baseline_p95_ms=None) == SeriesPoint(
        step=2,
        start=T0,
        end=T0 + TEN_S,
        canary_requests=40,
        canary_errors=3,
        baseline_requests=800,
        baseline_errors=4,
        canary_p95_ms=None,
        baseline_p95_ms=None,
    )
    assert point.canary_p95_ms == pytest.approx(195.0)
    assert point.baseline_p95_ms == pytest.approx(195.0)
    assert point.start.utcoffset() == timedelta(0)


def test_points_are_in_time_order_whatever_the_insert_order(series: AbstractSeries) -> None:
    for i in (3, 0, 2, 1):
        series.add("r1", 0, window(i, cohort(10), cohort(100)))
    assert [p.start for p in series.points("r1")] == [T0 + i * TEN_S for i in range(4)]


def test_a_window_recorded_twice_is_kept_once(series: AbstractSeries) -> None:
    sample = window(0, cohort(10, 1), cohort(100))
    series.add("r1", 0, sample)
    series.add("r1", 0, sample)  # the tick redone after a crash
    series.add("r2", 0, sample)  # the same window of another release is its own row
    assert len(series.points("r1")) == 1
    assert len(series.points("r2")) == 1


def test_same_instant_in_another_zone_is_the_same_window(series: AbstractSeries) -> None:
    sample = window(0, cohort(10), cohort(100))
    paris = timezone(timedelta(hours=1))
    moved = {"start": sample.start.astimezone(paris), "end": sample.end.astimezone(paris)}
    series.add("r1", 0, sample)
    series.add("r1", 0, sample.model_copy(update=moved))
    assert [p.start for p in series.points("r1")] == [T0]


def test_p95_is_none_for_a_cohort_without_requests(series: AbstractSeries) -> None:
    series.add("r1", 0, window(0, canary=cohort(0), baseline=cohort(100)))
    empty_buckets = CohortSample(requests=0, errors=0, latency_buckets={"0.1": 0, "+Inf": 0})
    series.add("r1", 0, window(1, canary=cohort(50), baseline=empty_buckets))
    # Buckets and the request counter are scraped apart and may disagree: requests decide.
    stale = CohortSample(requests=0, errors=0, latency_buckets={"0.2": 3, "+Inf": 3})
    series.add("r1", 0, window(2, canary=stale, baseline=cohort(100)))
    first, second, third = series.points("r1")
    assert (first.canary_requests, first.canary_p95_ms) == (0, None)
    assert third.canary_p95_ms is None
    assert first.baseline_p95_ms == pytest.approx(195.0)
    assert second.canary_p95_ms == pytest.approx(195.0)
    assert second.baseline_p95_ms is None


def test_points_filter_by_step_and_release(series: AbstractSeries) -> None:
    for i in range(6):
        series.add("r1", i // 2, window(i, cohort(10), cohort(100)))
    series.add("r2", 1, window(9, cohort(10), cohort(100)))
    assert [p.step for p in series.points("r1")] == [0, 0, 1, 1, 2, 2]
    step_one = series.points("r1", step=1)
    assert [p.start for p in step_one] == [T0 + 2 * TEN_S, T0 + 3 * TEN_S]
    assert series.points("r1", step=0)[0].start == T0  # step 0 is a filter, not "all"
    assert series.points("r1", step=7) == []
    assert series.points("nope") == []


def test_migrations_apply_once_and_create_the_indexes() -> None:
    database = Database(":memory:")
    database.migrate(sqlite_series.migrations)
    database.migrate(sqlite_series.migrations)
    indexes = {i.name: i.columns for i in database.db.table("series").indexes}
    assert indexes["series_release_step"] == ["release_id", "step"]
    assert indexes["series_release_end"] == ["release_id", "end"]
