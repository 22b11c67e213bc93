import io
import math
from datetime import UTC, datetime, timedelta

import pytest
from matplotlib.image import imread

from bot.charts import bin_points, guardrail_limits, stage_chart, stage_figure
from bot.parsing import parse_guardrail
from bot.ports.series import SeriesPoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = datetime(2025, 3, 4, 14, 0, tzinfo=UTC)
TEN_S = timedelta(seconds=10)


def point(
    start: datetime,
    canary: tuple[int, int] = (10, 0),
    baseline: tuple[int, int] = (100, 0),
    canary_p95: float | None = 200.0,
    baseline_p95: float | None = 180.0,
) -> SeriesPoint:
    return SeriesPoint(
        step=1,
        start=start,
        end=start + TEN_S,
        canary_requests=canary[0],
        canary_errors=canary[1],
        baseline_requests=baseline[0],
        baseline_errors=baseline[1],
        canary_p95_ms=canary_p95,
        baseline_p95_ms=baseline_p95,
    )


def thirty_minutes() -> list[SeriesPoint]:
    """180 ten-second windows; the canary degrades in the second half."""
    return [
        point(
            T0 + i * TEN_S,
            canary=(20 + i % 7, (i % 3) + (2 if i >= 90 else 0)),
            baseline=(500 + i % 11, i % 4),
            canary_p95=180.0 + (i % 5) * 10 + (120 if i >= 90 else 0),
            baseline_p95=170.0 + (i % 5) * 8,
        )
        for i in range(180)
    ]


def chart(points: list[SeriesPoint], **limits: float | None) -> bytes:
    return stage_chart(
        points,
        title="shop 1.2.0 prod/eu-west stage 2",
        error_limit_pct=limits.get("error", 1.0),
        p95_limit_ms=limits.get("p95", 300.0),
    )


def test_a_thirty_minute_stage_renders_as_a_png() -> None:
    png = chart(thirty_minutes())
    assert png.startswith(PNG_SIGNATURE)
    height, width, _ = imread(io.BytesIO(png)).shape
    assert (width, height) == (800, 550)


@pytest.mark.parametrize("limits", [{}, {"error": None, "p95": None}])
def test_an_empty_series_says_no_data_yet(limits: dict[str, float | None]) -> None:
    assert chart([], **limits).startswith(PNG_SIGNATURE)
    figure = stage_figure(
        [], title="t", error_limit_pct=limits.get("error", 1.0), p95_limit_ms=None
    )
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts == ["no data yet", "no data yet"]


def test_the_limits_are_dashed_lines_labelled_like_the_guardrails() -> None:
    figure = stage_figure(thirty_minutes(), title="t", error_limit_pct=1.0, p95_limit_ms=300.0)
    errors_ax, p95_ax = figure.axes
    limits = {
        ax.get_ylabel(): [(ln.get_label(), ln.get_ydata()[0], ln.get_linestyle()) for ln in ax.lines
                          if ln.get_label().startswith(("error_rate", "p95"))]
        for ax in (errors_ax, p95_ax)
    }  # fmt: skip
    assert limits == {
        "error rate (%)": [("error_rate<1%", 1.0, "--")],
        "p95 latency (ms)": [("p95<300ms", 300.0, "--")],
    }
    assert errors_ax.get_shared_x_axes().joined(errors_ax, p95_ax)


def test_the_plotted_lines_are_the_binned_rates_with_a_gap_where_windows_are_missing() -> None:
    points = [point(T0 + i * TEN_S, canary=(10, 1 if i < 6 else 0)) for i in range(12)]
    points += [point(T0 + timedelta(minutes=5), canary=(50, 5))]
    figure = stage_figure(points, title="t", error_limit_pct=None, p95_limit_ms=None)
    canary = next(ln for ln in figure.axes[0].lines if ln.get_label() == "canary")
    ys = [float(y) for y in canary.get_ydata()]
    assert ys[0] == pytest.approx(10.0) and ys[1] == 0.0 and ys[3] == pytest.approx(10.0)
    assert math.isnan(ys[2])  # minutes 2-4 had no windows: the line breaks
    assert len(ys) == 4


def test_the_limits_are_picked_from_the_guardrails() -> None:
    guardrails = [
        parse_guardrail("availability>=99.9%"),
        parse_guardrail("error_rate<1%"),
        parse_guardrail("p99<800ms"),
        parse_guardrail("p95<300ms"),
    ]
    assert guardrail_limits(guardrails) == (1.0, 300.0)


def test_limits_in_seconds_are_milliseconds_and_the_tightest_cap_wins() -> None:
    guardrails = [
        parse_guardrail("error_rate<1%"),
        parse_guardrail("error_rate<=0.5%"),
        parse_guardrail("p95<0.25s"),
        parse_guardrail("p95<300ms"),
    ]
    assert guardrail_limits(guardrails) == (0.5, 250.0)


def test_no_upper_bound_means_no_limit_line() -> None:
    assert guardrail_limits([parse_guardrail("error_rate>1%"), parse_guardrail("p50<90ms")]) == (
        None,
        None,
    )
    assert guardrail_limits([]) == (None, None)


def test_binning_sums_counts_per_clock_minute() -> None:
    # Six windows per minute from 13:59:30; the canary errs once a window in 14:00 only.
    points = [
        point(
            T0 - 3 * TEN_S + i * TEN_S,
            canary=(10, 1 if 3 <= i < 9 else 0),
            baseline=(100 + i, 2 if i == 0 else 0),
        )
        for i in range(12)
    ]
    bins = bin_points(points)
    assert [b.start for b in bins] == [T0 - timedelta(minutes=1), T0, T0 + timedelta(minutes=1)]
    assert [b.canary_requests for b in bins] == [30, 60, 30]
    assert [b.canary_error_pct for b in bins] == [0.0, pytest.approx(10.0), 0.0]
    # 2 errors over 100 + 101 + 102 requests: a rate of the sums, not a mean of rates.
    assert bins[0].baseline_error_pct == pytest.approx(100 * 2 / 303)


def test_binning_weights_p95_by_requests_and_skips_windows_without_one() -> None:
    points = [
        point(T0, canary=(10, 0), canary_p95=100.0),
        point(T0 + TEN_S, canary=(30, 0), canary_p95=400.0),
        point(T0 + 2 * TEN_S, canary=(0, 0), canary_p95=None),
        point(T0 + 3 * TEN_S, canary=(0, 0), canary_p95=None, baseline=(0, 0), baseline_p95=None),
    ]
    [only] = bin_points(points)
    assert only.canary_p95_ms == pytest.approx((100 * 10 + 400 * 30) / 40)
    assert only.baseline_p95_ms == pytest.approx(180.0)
    empty = bin_points([point(T0, canary=(0, 0), canary_p95=None)])[0]
    assert (empty.canary_p95_ms, empty.canary_error_pct) == (None, None)


def test_binning_to_wider_buckets_and_edge_cases() -> None:
    bins = bin_points(thirty_minutes(), bucket_minutes=5)
    assert len(bins) == 6
    assert sum(b.canary_requests for b in bins) == sum(p.canary_requests for p in thirty_minutes())
    assert all(b.start.minute % 5 == 0 and b.start.second == 0 for b in bins)
    assert bin_points([]) == []
    with pytest.raises(ValueError):
        bin_points(thirty_minutes(), bucket_minutes=0)


def test_a_single_window_renders() -> None:
    assert chart([point(T0)]).startswith(PNG_SIGNATURE)
