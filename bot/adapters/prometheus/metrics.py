"""The metrics port on a real Prometheus: baseline and canary windows from PromQL.

Each cohort is a label selector (by default the ``version`` label: the stable version for the
baseline, the new one for the canary, as the traffic router's state says). Counts come from
``increase()`` over the window, evaluated at the window's end and summed across instances;
latency from the histogram's buckets summed by ``le`` (never averaged quantiles), so the
judge computes quantiles from merged counts. No data is never read as zero: an empty
answer, a NaN or a failure raises ``MetricsUnavailable`` and the tick tries the window again.

Queries are ``string.Template`` texts: ``$service``, ``$env``, ``$region``, ``$version`` (the
cohort's), ``$stable_version``, ``$new_version``, and in queries also ``$selector`` (the
cohort's selector, filled in) and ``$window`` (a PromQL duration such as ``30s``). ``$$`` is a
literal dollar (e.g. in a regular expression).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from string import Template
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from bot.adapters.http import probes
from bot.adapters.prometheus.client import PrometheusClient, PrometheusUnreachable
from bot.adapters.schema import AdapterSettings, clashes
from bot.domain.config import DependencyConfig, ServiceConfig
from bot.domain.observations import (
    CohortSample,
    DependencyProbe,
    LogSummary,
    Target,
    TraceSummary,
    TrafficState,
    TransactionResult,
    WindowSample,
)
from bot.domain.request import DependencyHealth
from bot.domain.verdict_time import RecentTraffic
from bot.ports.metrics import TRAFFIC_MINUTES, AbstractMetrics, MetricsUnavailable
from bot.ports.traffic import RouterUnavailable

SELECTOR_PLACEHOLDERS: tuple[str, ...] = (
    "service",
    "env",
    "region",
    "version",
    "stable_version",
    "new_version",
)
QUERY_PLACEHOLDERS: tuple[str, ...] = (*SELECTOR_PLACEHOLDERS, "selector", "window")
# A query that names no cohort would read the same series for the baseline and the canary.
_COHORT_PLACEHOLDERS = frozenset({"selector", "version"})
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_HEALTH_ORDER: tuple[DependencyHealth, ...] = ("healthy", "degraded", "unhealthy")
# The env and region ``probe`` asks about: see PrometheusMetrics.probe.
PROBE_ENV: Literal["prod"] = "prod"

Cohort = Literal["baseline", "canary"]


def placeholders(text: str) -> set[str]:
    """The ``$name`` placeholders in ``text``; ValueError on a ``$`` that starts none."""
    found: set[str] = set()
    for match in Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            at = match.start("invalid")
            raise ValueError(
                f"a '$' that starts no placeholder at {text[at : at + 12]!r}: write '$$' "
                "for a literal dollar"
            )
        name = match.group("named") or match.group("braced")
        if name is not None:
            found.add(name)
    return found


def _check_template(key: str, text: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(placeholders(text) - set(allowed))
    if unknown:
        raise ValueError(
            f"{key} uses unknown placeholder {', '.join('$' + u for u in unknown)}; "
            f"allowed: {', '.join('$' + a for a in allowed)}"
        )


def _check_query(key: str, text: str, *, windowed: bool) -> None:
    _check_template(key, text, QUERY_PLACEHOLDERS)
    used = placeholders(text)
    if not used & _COHORT_PLACEHOLDERS:
        raise ValueError(
            f"{key} uses neither $selector nor $version: the baseline and the canary would "
            "read the same series"
        )
    if windowed and "window" not in used:
        raise ValueError(
            f"{key} does not use $window: counts must be over the window, e.g. "
            "increase(x_total{$selector}[$window])"
        )


def promql_duration(length: timedelta) -> str:
    """``length`` as a PromQL duration: whole seconds as ``30s``, otherwise milliseconds."""
    ms = round(length.total_seconds() * 1000)
    if ms <= 0:
        raise ValueError(f"a window must be longer than 0 ms, not {length}")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def le_label(le: str) -> str:
    """A bucket bound as the domain writes it: ``0.05``, ``1`` (for ``1.0``), ``+Inf``."""
    bound = float(le)
    if math.isinf(bound) and bound > 0:
        return "+Inf"
    if not math.isfinite(bound):
        raise ValueError(f"bad bucket bound le={le!r}")
    return f"{bound:g}"


class PrometheusSettings(AdapterSettings):
    """``[services.NAME.metrics]`` with ``provider = "prometheus"``."""

    provider: Literal["prometheus"] = Field(
        default="prometheus", description="Selects this adapter."
    )
    url: str = Field(
        description="The Prometheus server, e.g. http://prometheus:9090 (no /api path)."
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to wait for each query's answer."
    )
    baseline: str = Field(
        default='service="$service",version="$stable_version"',
        description=(
            "Label matchers of the baseline cohort (no braces). Add region or env matchers "
            "when one Prometheus sees several: the tick adds up the windows of the targets."
        ),
    )
    canary: str = Field(
        default='service="$service",version="$new_version"',
        description="Label matchers of the canary cohort (no braces).",
    )
    requests: str = Field(
        default="sum(increase(http_requests_total{$selector}[$window]))",
        description="Requests the cohort served in the window.",
    )
    errors: str = Field(
        default='sum(increase(http_requests_total{$selector,code=~"5.."}[$window]))',
        description=(
            "Failed requests in the window. No series is no data, not zero: the services "
            "must create their 5xx series at start (a counter child at 0), or the query must "
            "say how to read their absence."
        ),
    )
    latency: str = Field(
        default="sum by (le) (increase(http_request_duration_seconds_bucket{$selector}[$window]))",
        description="The latency histogram's buckets in seconds, summed by le over instances.",
    )
    kpis: dict[str, str] = Field(
        default={},
        description=(
            "KPI name -> a query giving its value over the window (one series), e.g. a "
            "conversion rate; NaN (0/0: no sessions) leaves the KPI out of that window."
        ),
    )
    log_errors: str | None = Field(
        default=None,
        description=(
            "Error counts in the window by the label log_error_label, e.g. "
            "sum by (error_type) (increase(app_errors_total{$selector}[$window])); "
            "unset: logs are not measured."
        ),
    )
    log_error_label: str = Field(
        default="error_type", description="The label of log_errors that names the error type."
    )
    log_lines: str | None = Field(
        default=None,
        description=(
            "Log lines the cohort wrote in the window, the denominator of its log error "
            "rate; unset: the requests query stands for it."
        ),
    )
    scrape_interval: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description=(
            "Seconds between Prometheus's scrapes of the service; increase() needs two "
            "samples, so no window shorter than twice this is asked for."
        ),
    )
    probe_window: str = Field(
        default="5m", description="How far back the pre-flight probe looks (a PromQL duration)."
    )
    synthetic_runs: int = Field(
        default=20, ge=1, le=1000, description="GETs per key transaction in a synthetic check."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"url must be the http(s) URL of the Prometheus server, e.g. "
                f"http://prometheus:9090, not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("baseline", "canary")
    @classmethod
    def _selector(cls, value: str, info: ValidationInfo) -> str:
        _check_template(str(info.field_name), value, SELECTOR_PLACEHOLDERS)
        if value.strip().startswith("{"):
            raise ValueError(f"{info.field_name} is label matchers without braces: {value!r}")
        return value

    @field_validator("requests", "errors", "latency", "log_errors", "log_lines")
    @classmethod
    def _query(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _check_query(str(info.field_name), value, windowed=True)
        return value

    @field_validator("kpis")
    @classmethod
    def _kpis(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not name.strip() or name != name.strip():
                raise ValueError(f"kpis has a blank or padded name {name!r}")
            _check_query(f"kpis.{name}", query, windowed=False)
        return value

    @field_validator("log_error_label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _LABEL_NAME.match(value):
            raise ValueError(f"log_error_label must be a Prometheus label name, not {value!r}")
        return value

    @field_validator("probe_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError(f"probe_window must be a PromQL duration such as 5m, not {value!r}")
        return value

    def problems(self, service: ServiceConfig) -> list[str]:
        """Environments or regions the selectors cannot tell apart, and dependencies without a
        live probe (a dependency is never assumed healthy) or with a bound it cannot read."""
        out = self.clashes(service.environments or [], service.regions or [])
        for dep in service.dependencies:
            if dep.health_url is None and dep.health_query is None:
                out.append(
                    f"dependency {dep.name} has no live probe: give it health_url (2xx is "
                    'healthy) or health_query (e.g. up{job="..."}) in its '
                    "[[services.NAME.dependencies]] table"
                )
            for key, bound in (("healthy", dep.healthy), ("degraded", dep.degraded)):
                if bound is not None and _COMPARISON.match(bound) is None:
                    out.append(
                        f"dependency {dep.name}: {key} {bound!r} is not a comparison such as "
                        "'>= 1' or '< 0.05'"
                    )
        return out

    def clashes(self, environments: Sequence[str], regions: Sequence[str]) -> list[str]:
        """Each target's window must read its own series: with several environments or
        regions, a selector without them would count the others' requests too."""
        return [
            line + ' (a matcher such as env="$env" or region="$region")'
            for cohort, selector in (("baseline", self.baseline), ("canary", self.canary))
            for line in clashes(selector, cohort, environments, regions)
        ]


class _Comparison:
    """``>= 1``, ``< 0.05``: a bound a dependency's value is held to."""

    def __init__(self, text: str) -> None:
        match = _COMPARISON.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a comparison such as '>= 1' or '< 0.05'")
        self.op, self.bound = match.group(1), float(match.group(2))

    def holds(self, value: float) -> bool:
        match self.op:
            case "<":
                return value < self.bound
            case "<=":
                return value <= self.bound
            case ">":
                return value > self.bound
            case ">=":
                return value >= self.bound
            case "==":
                return value == self.bound
            case _:
                return value != self.bound


def _worst(healths: list[DependencyHealth]) -> DependencyHealth:
    return max(healths, key=_HEALTH_ORDER.index)


class PrometheusMetrics(AbstractMetrics):
    """One service's metrics from Prometheus; ``versions`` is the traffic router's ``state``,
    which says which version each cohort's selector names."""

    def __init__(
        self,
        service: str,
        settings: PrometheusSettings,
        service_config: ServiceConfig,
        versions: Callable[[Target], TrafficState],
    ) -> None:
        self.service = service
        self.settings = settings
        self.service_config = service_config
        self.versions = versions
        self.client = PrometheusClient(settings.url, settings.timeout_seconds)
        # Read the dependencies' bounds now, so a typo stops start-up, not a gate.
        self._bounds: dict[str, tuple[_Comparison, _Comparison | None]] = {}
        for dep in service_config.dependencies:
            if dep.health_query is not None:
                self._bounds[dep.name] = self._comparisons(dep)

    def _comparisons(self, dep: DependencyConfig) -> tuple[_Comparison, _Comparison | None]:
        try:
            return (
                _Comparison(dep.healthy),
                None if dep.degraded is None else _Comparison(dep.degraded),
            )
        except ValueError as exc:
            raise ValueError(f"{self.service}: dependency {dep.name}: {exc}") from None

    # -- rendering ------------------------------------------------------------------------

    def _variables(
        self, target: Target, state: TrafficState, cohort: Cohort, window: str
    ) -> dict[str, str]:
        version = state.stable_version if cohort == "baseline" else state.new_version
        values = {
            "service": target.service,
            "env": target.env,
            "region": target.region,
            "version": version or "",
            "stable_version": state.stable_version or "",
            "new_version": state.new_version or "",
        }
        selector = self.settings.baseline if cohort == "baseline" else self.settings.canary
        return values | {
            "selector": Template(selector).substitute(values),
            "window": window,
        }

    @staticmethod
    def _length(target: Target, start: datetime, end: datetime) -> str:
        try:
            return promql_duration(end - start)
        except ValueError as exc:
            # Too short to read yet: the tick keeps its cursor and asks again, longer.
            raise MetricsUnavailable(f"{target.describe()}: {exc}") from None

    def _state(self, target: Target) -> TrafficState:
        try:
            return self.versions(target)
        except RouterUnavailable as exc:
            raise MetricsUnavailable(
                f"{target.describe()}: the router cannot say which versions to read: {exc}"
            ) from None

    # -- windows --------------------------------------------------------------------------

    def shortest_window(self, service: str) -> float:
        return 2 * self.settings.scrape_interval

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        found = self.settings.clashes(environments, regions)
        return f"Prometheus for {service}: {'; '.join(found)}" if found else None

    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        """Both cohorts' counts over (start, end], evaluated at ``end``."""
        return self._window(target, self._state(target), start, end)

    def windows(self, targets: list[Target], start: datetime, end: datetime) -> list[WindowSample]:
        """A wave's regions side by side: the versions are asked of the router here (it may
        read the database, which is this thread's), the queries go out in parallel."""
        states = [self._state(target) for target in targets]
        if len(targets) == 1:
            return [self._window(targets[0], states[0], start, end)]
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            read = pool.map(
                lambda ts: self._window(ts[0], ts[1], start, end),
                zip(targets, states, strict=True),
            )
            return list(read)

    def _window(
        self, target: Target, state: TrafficState, start: datetime, end: datetime
    ) -> WindowSample:
        length = self._length(target, start, end)
        baseline = self._cohort(target, state, "baseline", length, end)
        if state.new_version is None:
            # Structural, not measured: with no new version deployed nothing can serve the
            # canary cohort, so its zero is known without asking (and an empty canary
            # selector would otherwise read as "no data").
            canary = CohortSample(requests=0, errors=0)
        else:
            canary = self._cohort(target, state, "canary", length, end)
        return WindowSample(start=start, end=end, baseline=baseline, canary=canary)

    def _cohort(
        self, target: Target, state: TrafficState, cohort: Cohort, window: str, at: datetime
    ) -> CohortSample:
        try:
            return self._measure(self._variables(target, state, cohort, window), at)
        except MetricsUnavailable as exc:
            raise MetricsUnavailable(f"{target.describe()} {cohort}: {exc}") from None

    def _measure(self, values: dict[str, str], at: datetime) -> CohortSample:
        s = self.settings
        requests = round(self.client.count(Template(s.requests).substitute(values), at))
        errors = round(self.client.count(Template(s.errors).substitute(values), at))
        buckets = self._buckets(Template(s.latency).substitute(values), at)
        kpis: dict[str, float] = {}
        for name in sorted(s.kpis):
            value = self._kpi(Template(s.kpis[name]).substitute(values), at)
            if value is not None:
                kpis[name] = value
        # increase() extrapolates each series on its own: the errors can come out a hair
        # above the requests, which no real window has.
        return CohortSample(
            requests=requests,
            errors=min(errors, requests),
            latency_buckets=buckets,
            kpis=kpis,
        )

    def _buckets(self, query: str, at: datetime | None) -> dict[str, int]:
        samples = self.client.counts(query, at)
        if not samples:
            raise self.client.fail(query, "no series (no data is not zero)")
        summed: dict[str, float] = {}
        for sample in samples:
            le = sample.labels.get("le")
            if le is None:
                raise self.client.fail(query, "a series without le: sum the buckets by (le)")
            try:
                label = le_label(le)
            except ValueError as exc:
                raise self.client.fail(query, str(exc)) from None
            # "1" and "1.0" are one bucket written by two client libraries.
            summed[label] = summed.get(label, 0.0) + sample.value
        if "+Inf" not in summed:
            raise self.client.fail(query, 'no le="+Inf" bucket: the histogram is incomplete')
        buckets: dict[str, int] = {}
        running = 0
        for label in sorted(summed, key=float):
            # Cumulative counts never fall; per-series extrapolation and rounding can make
            # a bucket a hair smaller than the one below it.
            running = max(running, round(summed[label]))
            buckets[label] = running
        return buckets

    def _kpi(self, query: str, at: datetime | None) -> float | None:
        """The KPI's value; None for NaN (0/0: no sessions in the window, which the domain
        reads as "no value this window")."""
        samples = self.client.query(query, at)
        if not samples:
            raise self.client.fail(query, "no series (no data is not zero)")
        if len(samples) > 1:
            raise self.client.fail(
                query, f"{len(samples)} series for one KPI: aggregate them to one value"
            )
        value = samples[0].value
        if math.isnan(value):
            return None
        if not math.isfinite(value):
            raise self.client.fail(query, f"value is {value:g}, not a KPI")
        return value

    # -- traffic, for the plan ------------------------------------------------------------

    def recent_traffic(
        self, service: str, regions: Sequence[str], now: datetime, minutes: float = TRAFFIC_MINUTES
    ) -> RecentTraffic | None:
        """Both cohorts of each region over the last ``minutes`` in production, read with the
        window queries (requests, errors, latency buckets), each cohort's rate over the span
        its series cover (``_covered``). A cohort whose queries are another's (no region
        matcher) counts once."""
        window = promql_duration(timedelta(minutes=minutes))
        seen: set[str] = set()
        parts: list[RecentTraffic] = []
        for region in regions or [""]:
            target = Target(service=service, env=PROBE_ENV, region=region)
            state = self._state(target)
            cohorts: list[Cohort] = ["baseline", "canary"] if state.new_version else ["baseline"]
            for cohort in cohorts:
                values = self._variables(target, state, cohort, window)
                if (query := Template(self.settings.requests).substitute(values)) in seen:
                    continue
                seen.add(query)
                parts.append(self._covered(values, self._measure(values, now), now, minutes))
        return RecentTraffic.total(parts)

    def _covered(
        self, values: dict[str, str], sample: CohortSample, now: datetime, minutes: float
    ) -> RecentTraffic:
        """``sample``'s rate over the part of the look-back its requests series cover.

        increase() over the look-back counts a series born inside it (a Prometheus started a
        minute ago, a newly exposed service) from about its first sample only, so dividing
        by the whole look-back would read a minute of 300 rps as 30. So the requests query is
        also asked over tiles of ``shortest_window`` (two scrapes) across the look-back and
        one tile before it: after the end of each series' first answering tile, its data
        covers every moment. A tile answering before the look-back: the whole of it is
        covered, and its counts give the rate. Otherwise the requests over (the latest such
        end, now] do. No tile answering: nothing is covered, and the plan says so."""
        look_back, tile_seconds = minutes * 60, self.shortest_window(self.service)
        tile = promql_duration(timedelta(seconds=tile_seconds))
        inner = Template(self.settings.requests).substitute(values | {"window": tile})
        before = promql_duration(timedelta(seconds=look_back + tile_seconds))
        answered = self.client.query(f"min_over_time(timestamp({inner})[{before}:{tile}])", now)
        starts = [s.value for s in answered if math.isfinite(s.value)]
        if not starts:
            return RecentTraffic.over(sample, 0, 0, minutes)
        covered_ms = round((now.timestamp() - max(starts)) * 1000)
        if covered_ms >= look_back * 1000:
            return RecentTraffic.over(sample, sample.requests, look_back, minutes)
        if covered_ms <= 0:
            return RecentTraffic.over(sample, 0, 0, minutes)
        since = promql_duration(timedelta(milliseconds=covered_ms))
        query = Template(self.settings.requests).substitute(values | {"window": since})
        return RecentTraffic.over(sample, self.client.count(query, now), covered_ms / 1000, minutes)

    # -- pre-flight probe -----------------------------------------------------------------

    def probe(self, service: str) -> list[str]:
        """The metrics that answer for the baseline over ``probe_window`` up to now.

        It asks about production (where a canary is judged against a live baseline) in the
        service's first configured region, with the stable version the router reports
        there; with no stable version there is no baseline to read, and nothing answers.
        A KPI answers when its series exist, even at NaN (no sessions in the window)."""
        regions = self.service_config.regions or []
        target = Target(service=service, env=PROBE_ENV, region=regions[0] if regions else "")
        try:
            state = self.versions(target)
        except RouterUnavailable:
            return []
        if state.stable_version is None:
            return []
        values = self._variables(target, state, "baseline", self.settings.probe_window)
        s = self.settings
        checks = [
            ("requests", "count", s.requests),
            ("errors", "count", s.errors),
            ("latency", "buckets", s.latency),
            *((f"kpi:{name}", "kpi", s.kpis[name]) for name in sorted(s.kpis)),
        ]
        answering = []
        for name, kind, template in checks:
            query = Template(template).substitute(values)
            try:
                # at=None: evaluated at the server's own now, whatever our clock says.
                if kind == "count":
                    self.client.count(query)
                elif kind == "buckets":
                    self._buckets(query, None)
                else:
                    self._kpi(query, None)
            except PrometheusUnreachable:
                return []  # the server is down: the rest would only wait for it too
            except MetricsUnavailable:
                continue
            answering.append(name)
        return answering

    # -- dependencies ---------------------------------------------------------------------

    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        """Each named dependency that has a probe (``health_url`` and/or ``health_query``;
        both: the worse counts); names without one are left out."""
        configured = {d.name: d for d in self.service_config.dependencies}
        found = []
        for name in names:
            dep = configured.get(name)
            if dep is None:
                continue
            verdicts: list[DependencyHealth] = []
            if dep.health_url is not None:
                verdicts.append(probes.health(dep.health_url, self.settings.timeout_seconds))
            if dep.health_query is not None:
                verdicts.append(self._query_health(dep))
            if verdicts:
                found.append(DependencyProbe(name=name, health=_worst(verdicts)))
        return found

    def _query_health(self, dep: DependencyConfig) -> DependencyHealth:
        """The query's value held to ``healthy``, then ``degraded``; several series: the
        worst; no answer or no series: unhealthy (never assumed healthy)."""
        assert dep.health_query is not None
        healthy, degraded = self._bounds[dep.name]
        try:
            samples = self.client.query(dep.health_query)
        except MetricsUnavailable:
            return "unhealthy"
        if not samples:
            return "unhealthy"
        verdicts: list[DependencyHealth] = []
        for sample in samples:
            if healthy.holds(sample.value):
                verdicts.append("healthy")
            elif degraded is not None and degraded.holds(sample.value):
                verdicts.append("degraded")
            else:
                verdicts.append("unhealthy")  # NaN holds to no bound and lands here
        return _worst(verdicts)

    # -- logs, traces, synthetic checks ---------------------------------------------------

    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary | None:
        """Error counts by type per cohort from ``log_errors``; None when it is not set."""
        if self.settings.log_errors is None:
            return None
        length = self._length(target, start, end)
        state = self._state(target)
        b_errors, b_lines = self._log_cohort(
            self._variables(target, state, "baseline", length), end
        )
        c_errors: dict[str, int] = {}
        c_lines = 0
        if state.new_version is not None:  # else structurally empty, as in window()
            c_errors, c_lines = self._log_cohort(
                self._variables(target, state, "canary", length), end
            )
        return LogSummary(
            baseline_errors_by_type=b_errors,
            canary_errors_by_type=c_errors,
            baseline_lines=b_lines,
            canary_lines=c_lines,
        )

    def _log_cohort(self, values: dict[str, str], at: datetime) -> tuple[dict[str, int], int]:
        s = self.settings
        assert s.log_errors is not None
        lines_query = Template(s.log_lines or s.requests).substitute(values)
        lines = round(self.client.count(lines_query, at))
        # The lines answered, so this cohort's series exist: an error type's series appears
        # with its first error, and no series here means no error of any type.
        by_type: dict[str, float] = {}
        for sample in self.client.counts(Template(s.log_errors).substitute(values), at):
            kind = sample.labels.get(s.log_error_label, "unknown")
            by_type[kind] = by_type.get(kind, 0.0) + sample.value
        counts = {kind: round(n) for kind, n in sorted(by_type.items())}
        return {kind: n for kind, n in counts.items() if n > 0}, lines

    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary | None:
        """No trace source is supported yet: None, so the report says traces were not
        measured rather than showing an empty critical path."""
        return None

    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        """The service's ``smoke`` checks over HTTP against ``target``'s new version, run
        now (``at`` is when the tick asked)."""
        return probes.transactions(
            self.service_config.smoke,
            transactions,
            target,
            self.settings.synthetic_runs,
            self.settings.timeout_seconds,
        )
