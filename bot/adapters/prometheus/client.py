"""A small client of Prometheus's instant-query API (``GET /api/v1/query``), stdlib only.

Every failure is one ``MetricsUnavailable`` line naming the server, the query and the cause:
the tick records it and tries the window again on its next pass, so nothing here retries.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.ports.metrics import MetricsUnavailable

# Enough of an error body to say why; Prometheus's own messages are short.
_MAX_REASON = 300


class PrometheusUnreachable(MetricsUnavailable):
    """The server did not answer at all (refused, timed out, cut): asking it something else
    right away is pointless."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value (NaN and ±Inf kept)."""

    labels: dict[str, str]
    value: float


def one_line(text: str) -> str:
    """``text`` with every run of whitespace made one space (queries may span lines)."""
    return " ".join(text.split())


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class PrometheusClient:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def fail(self, query: str, cause: str) -> MetricsUnavailable:
        """The one-line MetricsUnavailable for ``query`` failing because of ``cause``."""
        return MetricsUnavailable(self._line(query, cause))

    def _unreachable(self, query: str, cause: str) -> PrometheusUnreachable:
        return PrometheusUnreachable(self._line(query, cause))

    def _line(self, query: str, cause: str) -> str:
        return f"prometheus {self.url}: query {one_line(query)!r}: {one_line(cause)}"

    def query(self, query: str, at: datetime | None = None) -> list[Sample]:
        """The instant vector ``query`` gives at ``at`` (the server's now when None).

        A scalar result comes back as one sample without labels. Raises MetricsUnavailable
        when the server is unreachable, slow, answers an HTTP error or ``status: error``, or
        says something that is not a vector or a scalar."""
        params = {"query": query}
        if at is not None:
            params["time"] = f"{_utc(at).timestamp():.3f}"
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(address, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            # 400 (bad_data), 422 (execution) and 503 (timeout, overloaded) carry the reason
            # in the JSON body: say it rather than the bare status.
            raise self.fail(query, f"HTTP {exc.code}: {_error_reason(exc)}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._unreachable(query, f"no answer within {self.timeout:g}s") from None
            raise self._unreachable(query, f"unreachable: {_describe(exc.reason)}") from None
        except TimeoutError:
            raise self._unreachable(query, f"no answer within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as exc:  # reset or cut mid-answer
            raise self._unreachable(query, f"connection failed: {_describe(exc)}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise self.fail(query, f"answer is not JSON: {body[:80]!r}") from None
        return self._samples(query, answer)

    def _samples(self, query: str, answer: Any) -> list[Sample]:
        if not isinstance(answer, dict):
            raise self.fail(query, "answer is not a JSON object")
        if answer.get("status") != "success":
            kind = answer.get("errorType", "error")
            raise self.fail(query, f"{kind}: {answer.get('error', 'no reason given')}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise self.fail(query, "answer has no data")
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector" and isinstance(result, list):
                return [
                    Sample(
                        labels={str(k): str(v) for k, v in item.get("metric", {}).items()},
                        value=float(item["value"][1]),
                    )
                    for item in result
                ]
            if kind == "scalar" and isinstance(result, list):
                return [Sample(labels={}, value=float(result[1]))]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise self.fail(query, f"malformed {kind} result") from None
        raise self.fail(query, f"expected an instant vector, got {kind}")

    def count(self, query: str, at: datetime | None = None) -> float:
        """The sum of the vector's values, for a query that counts something (a query that
        forgot its ``sum`` still counts every series once).

        An empty vector means the series do not exist (no data), which is not zero; NaN,
        an infinity or a negative value is no count either. Each raises MetricsUnavailable."""
        samples = self.counts(query, at)
        if not samples:
            raise self.fail(query, "no series (no data is not zero)")
        return sum(s.value for s in samples)

    def counts(self, query: str, at: datetime | None = None) -> list[Sample]:
        """The vector, each value a count: finite and not negative (else MetricsUnavailable).
        May be empty."""
        samples = self.query(query, at)
        for s in samples:
            if not math.isfinite(s.value) or s.value < 0:
                where = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                raise self.fail(query, f"value {s.value:g} at {{{where}}} is not a count")
        return samples


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _error_reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
    except OSError:
        body = b""
    try:
        answer = json.loads(body)
        if isinstance(answer, dict) and "error" in answer:
            return f"{answer.get('errorType', 'error')}: {answer['error']}"
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return (text or str(exc.reason))[:_MAX_REASON]
