"""k6 load-test summaries: ``k6 run --summary-export`` JSON, and the JSON ``handleSummary``
receives (each metric's figures under ``values``)."""

from __future__ import annotations

from bot.evidence.errors import HOW
from bot.evidence.models import LoadTest
from bot.evidence.reading import Fields

FIX = HOW["k6"]


def read(doc: object, name: str) -> LoadTest:
    f = Fields(name, FIX)
    metrics = f.obj(f.get(f.obj(doc, ""), "metrics", ""), "metrics")

    def metric(key: str) -> tuple[str, dict[str, object]]:
        path = f"metrics.{key}"
        found = f.obj(f.get(metrics, key, "metrics"), path)
        values = found.get("values")
        if isinstance(values, dict):
            return f"{path}.values", values
        return path, found

    def figure(key: str, stat: str) -> float:
        path, found = metric(key)
        return f.number(f.get(found, stat, path), f"{path}.{stat}")

    path, failed = metric("http_req_failed")
    # A rate: "value" in --summary-export, "rate" in newer k6's handleSummary data.
    stat = "value" if "value" in failed or "rate" not in failed else "rate"
    error_rate = f.number(f.get(failed, stat, path), f"{path}.{stat}")
    if not 0.0 <= error_rate <= 1.0:
        raise f.fail(f"{path}.{stat}", f"{error_rate} is not a fraction from 0 to 1")
    requests_path, requests = metric("http_reqs")
    count = f.count(f.get(requests, "count", requests_path), f"{requests_path}.count")
    p95, avg = figure("http_req_duration", "p(95)"), figure("http_req_duration", "avg")
    if p95 < 0 or avg < 0:
        raise f.fail("metrics.http_req_duration", "a duration is negative")
    return LoadTest(requests=count, error_rate=error_rate, p95_ms=p95, avg_ms=avg)
