"""Plain HTTP probes, stdlib only: a dependency's health endpoint and the key transactions
run as synthetic checks. Neither raises: what cannot be reached failed."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from statistics import fmean
from string import Template

from bot.domain.config import SmokeCheck
from bot.domain.observations import Target, TransactionResult
from bot.domain.request import DependencyHealth


def _get(url: str, timeout: float) -> bool:
    """GET ``url`` and read its whole answer; True for a 2xx (redirects followed)."""
    status = _status(url, "GET", timeout)
    return status is not None and 200 <= status < 300


def _status(url: str, method: str, timeout: float) -> int | None:
    """The status ``url`` answers ``method`` with, its whole answer read; None when it
    cannot be reached or its answer is cut."""
    try:
        request = urllib.request.Request(
            url, method=method, headers={"User-Agent": "release-bot probe"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as answer:  # a 4xx or 5xx is an answer, not a failure
        with answer:
            return int(answer.code)
    except (OSError, http.client.HTTPException, ValueError):
        # HTTPError (4xx, 5xx, an unfollowed 3xx), URLError (refused, unknown host),
        # timeouts and resets are OSErrors; a cut answer is an HTTPException; a malformed
        # URL is a ValueError. Each is a failed probe.
        return None


def health(url: str, timeout: float) -> DependencyHealth:
    """``healthy`` when ``url`` answers 2xx within ``timeout`` seconds, else ``unhealthy``:
    a probe that cannot reach its dependency never says healthy."""
    return "healthy" if _get(url, timeout) else "unhealthy"


def transactions(
    checks: Sequence[SmokeCheck], names: list[str], target: Target, runs: int, timeout: float
) -> list[TransactionResult]:
    """Run each named check ``runs`` times against ``target``, one after the other.

    ``success_rate`` is the share of answers with the expected status in [0, 1]
    (unreachable counts as a failure); ``latency_ms`` the mean time of all runs, failed
    ones included, so a transaction that times out looks slow as well as failing. Names
    without a check are left out (nothing to measure; the verification names them)."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    by_name = {c.name: c for c in checks}
    results = []
    for name in names:
        check = by_name.get(name)
        if check is None:
            continue
        url = Template(check.url).safe_substitute(env=target.env, region=target.region)
        ok = 0
        elapsed: list[float] = []
        for _ in range(runs):
            began = time.perf_counter()
            ok += _status(url, check.method, timeout) == check.expect_status
            elapsed.append(time.perf_counter() - began)
        results.append(
            TransactionResult(
                name=name,
                success_rate=ok / runs,
                latency_ms=round(fmean(elapsed) * 1000, 1),
                budget_ms=check.latency_ms,
            )
        )
    return results
