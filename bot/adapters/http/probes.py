"""Plain HTTP probes, stdlib only: a dependency's health endpoint and the key transactions
run as synthetic checks. Neither raises: what cannot be reached failed."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from statistics import fmean

from bot.domain.observations import TransactionResult
from bot.domain.request import DependencyHealth


def _get(url: str, timeout: float) -> bool:
    """GET ``url`` and read its whole answer; True for a 2xx (redirects followed)."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "release-bot probe"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return 200 <= int(response.status) < 300
    except (OSError, http.client.HTTPException, ValueError):
        # HTTPError (4xx, 5xx, an unfollowed 3xx), URLError (refused, unknown host),
        # timeouts and resets are OSErrors; a cut answer is an HTTPException; a malformed
        # URL is a ValueError. Each is a failed probe.
        return False


def health(url: str, timeout: float) -> DependencyHealth:
    """``healthy`` when ``url`` answers 2xx within ``timeout`` seconds, else ``unhealthy``:
    a probe that cannot reach its dependency never says healthy."""
    return "healthy" if _get(url, timeout) else "unhealthy"


def transactions(
    urls: dict[str, str], names: list[str], runs: int, timeout: float
) -> list[TransactionResult]:
    """GET each named transaction's URL ``runs`` times, one after the other.

    ``success_rate`` is the share of 2xx answers in [0, 1] (unreachable counts as a
    failure); ``latency_ms`` the mean time of all runs, failed ones included, so a
    transaction that times out looks slow as well as failing. Names without a URL are
    left out (nothing to measure)."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    results = []
    for name in names:
        url = urls.get(name)
        if url is None:
            continue
        ok = 0
        elapsed: list[float] = []
        for _ in range(runs):
            began = time.perf_counter()
            ok += _get(url, timeout)
            elapsed.append(time.perf_counter() - began)
        results.append(
            TransactionResult(
                name=name, success_rate=ok / runs, latency_ms=round(fmean(elapsed) * 1000, 1)
            )
        )
    return results
