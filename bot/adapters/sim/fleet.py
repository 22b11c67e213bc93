"""The embedded default environment: a simulated fleet and CI that behave like real ones.

``SimulatedFleet`` is both the traffic router and the metrics provider. It keeps each target's
traffic state and the injected faults in the store's database (``AbstractFleetState``: SQLite,
or PostgreSQL shared by the replicas), reads a service's whole state once per call (or per
observation, ``reading``), and draws every window's counts from the service's profile
(``data/simulator.toml``) with numpy: requests ~ Poisson, errors ~ Binomial, latencies as a
multinomial over Prometheus buckets, KPIs as Binomial conversions per session.
Numbers are seeded from the window itself, so asking twice for a window gives the same answer
(the engine relies on it to resume after a crash).

Faults belong to a version: they act on whichever cohort serves that version (normally the
canary; after a promotion, the baseline) once the new version's exposure reaches ``@N``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from statistics import NormalDist
from typing import Concatenate, Literal, NamedTuple, ParamSpec, TypeVar

import numpy as np
from pydantic import Field

from bot.adapters.schema import AdapterSettings
from bot.adapters.sim.faults import NO_EFFECTS, Effects, Fault, FaultSpecError, effects, parse_fault
from bot.adapters.sim.profiles import Profile, Profiles
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.fleet_state import SqliteFleetState
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
from bot.ports.flags import AbstractFlags
from bot.ports.fleet_state import AbstractFleetState, FleetState
from bot.ports.metrics import TRAFFIC_MINUTES, AbstractMetrics, MetricsUnavailable
from bot.ports.traffic import AbstractTrafficRouter

# Prometheus client default histogram buckets, in seconds.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKET_LABELS: tuple[str, ...] = (*(f"{b:g}" for b in BUCKETS), "+Inf")
_BUCKET_INDEX = np.arange(len(BUCKETS) + 1)
# Bucket edges in ms, the +Inf bucket's traces placed at 10 s.
_EDGES_MS = np.array([0.0, *(b * 1000 for b in BUCKETS), BUCKETS[-1] * 1000])
_WIDTHS_MS = np.diff(_EDGES_MS)
_EDGE: list[float] = _EDGES_MS.tolist()  # the same, as Python floats
_WIDTH: list[float] = _WIDTHS_MS.tolist()
LOG_LINES_PER_REQUEST = 3
SYNTHETIC_RUNS = 200  # runs per key transaction: one failure moves the rate by 0.5 %
_HEALTH_ORDER: tuple[DependencyHealth, ...] = ("healthy", "degraded", "unhealthy")
_OMEGA = 2 * math.pi / 86_400  # the diurnal cycle, in radians per second
# Traces: at most this many spans sampled per window; the critical path is their p95, as the
# judge's latency guardrail is; without a fault the handler takes this share of a request's
# time, the dependencies the rest, and a component taking more than half of the slowest 5 %
# of traces is their bottleneck.
TRACE_SPANS = 500
TRACE_QUANTILE = 0.95
HANDLER_SHARE = 0.4
SPLIT_CONCENTRATION = 20.0
BOTTLENECK_SHARE = 0.5
_P = ParamSpec("_P")
_R = TypeVar("_R")


class SimulatorMetricsSettings(AdapterSettings):
    """``metrics = { provider = "simulator" }``: windows drawn from the service's profile in
    data/simulator.toml (the demo and the tests)."""

    provider: Literal["simulator"]
    # Seconds, as Prometheus's: a window then needs two scrapes (0: any window is measured).
    scrape_interval: float = Field(default=0.0, ge=0)


class SimulatorRouterSettings(AdapterSettings):
    """``traffic = { router = "simulator" }``: the simulated fleet keeps the traffic state."""

    router: Literal["simulator"]


_parse = lru_cache(maxsize=4096)(parse_fault)  # specs come back from the db on every call


_local = threading.local()
_blake2b, _int = hashlib.blake2b, int.from_bytes  # looked up once: _rng runs twice a window


def _rng(*parts: object) -> np.random.Generator:
    """This thread's generator, seeded from a stable hash of ``parts`` (``hash()`` is salted
    per process); draw from it before the next call.

    A new seeded generator costs ~10 µs (numpy's SeedSequence), and a tick over 1,000
    releases seeds thousands: setting one PCG64's 128-bit state and stream from the hash
    costs ~1 µs. One generator per thread: Slack listeners and the tick draw side by side."""
    digest = _blake2b("|".join(map(str, parts)).encode(), digest_size=32).digest()
    try:
        rng: np.random.Generator = _local.rng
    except AttributeError:
        rng = _local.rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": _int(digest[:16]), "inc": _int(digest[16:]) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return rng


def _where(target: Target) -> tuple[str, str, str]:
    return target.service, target.env, target.region


def _instant(dt: datetime) -> float:
    """A window bound as seeds name it: UTC seconds (cheaper than isoformat, as exact); an
    aware time's timestamp is the same in any zone, so only a naive one is made UTC."""
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def expected_requests(profile: Profile, start: datetime, end: datetime) -> float:
    """Requests one region serves in (start, end]: the integral of the diurnal rate
    rps·(1 + a·sin(2π(hour_utc − 9)/24)) over the window."""
    return _expected(profile, _instant(start), _instant(end))


def _expected(profile: Profile, t0: float, t1: float) -> float:
    """``expected_requests`` between two instants (UTC seconds)."""
    if t1 <= t0:
        return 0.0
    phase = 9 * 3600
    wave = (math.cos(_OMEGA * (t0 - phase)) - math.cos(_OMEGA * (t1 - phase))) / _OMEGA
    return profile.rps * ((t1 - t0) + profile.diurnal_amplitude * wave)


@lru_cache(maxsize=1024)
def _bucket_probabilities(median_ms: float, sigma: float) -> np.ndarray:
    """Probability of each bucket (the last is (10 s, +Inf)) under the lognormal latency
    (an array: numpy would convert a tuple on every draw)."""
    normal = NormalDist()
    cdf = [normal.cdf((math.log(b * 1000) - math.log(median_ms)) / sigma) for b in BUCKETS]
    edges = [0.0, *cdf, 1.0]
    return np.array([max(hi - lo, 0.0) for lo, hi in itertools.pairwise(edges)])


@lru_cache(maxsize=1024)
def _stable_only(stable_version: str, instances: int) -> TrafficState:
    return TrafficState(stable_version=stable_version, instances_total=instances)


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by weights with largest remainders, so the parts sum to ``total``
    (a new dict: the caller may add to it)."""
    if total <= 0:
        return {}
    return dict(_split_items(total, tuple(weights.items())))


@lru_cache(maxsize=4096)
def _split_items(total: int, items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, int], ...]:
    """``_split``, cached: a window's error count is small, and so is the set of profiles."""
    weights = dict(items)
    norm = sum(weights.values())
    shares = {name: total * w / norm for name, w in weights.items()}
    parts = {name: int(s) for name, s in shares.items()}
    left = total - sum(parts.values())
    for name in sorted(shares, key=lambda n: parts[n] - shares[n])[:left]:
        parts[name] += 1
    return tuple((name, n) for name, n in parts.items() if n > 0)


class _Situation(NamedTuple):
    """What serves a target right now: shares of traffic and the faults acting on each cohort
    (a named tuple: made for every observation, and a frozen dataclass costs ~5x to make)."""

    state: TrafficState
    profile: Profile
    exposure: float
    baseline_share: float
    canary_share: float
    baseline: Effects
    canary: Effects


_DrawKey = tuple[datetime, datetime, _Situation]


_Traced = tuple[tuple[str, ...], list[str]]  # see ``SimulatedFleet._traced``


class _Cohort(NamedTuple):
    """A cohort's drawn window, with its count in each latency bucket (not cumulative, as
    the traces draw from them)."""

    sample: CohortSample
    counts: np.ndarray | None  # None: no request


def _reads_state(
    method: Callable[Concatenate[SimulatedFleet, _P], _R],
) -> Callable[Concatenate[SimulatedFleet, _P], _R]:
    """One call reads each service's stored state once, however many helpers consult it, and
    never keeps it past the call: another process may change it (a replica applying a
    weight, a user injecting a fault) between two calls. (No context manager: this wraps
    every call, and a generator-based one costs more than the call's own bookkeeping.)"""

    @functools.wraps(method)
    def in_scope(self: SimulatedFleet, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        reading = self._reading
        if reading.services is not None:
            return method(self, *args, **kwargs)  # inside another call or observation
        reading.services = {}
        try:
            return method(self, *args, **kwargs)
        finally:
            reading.services = None

    return in_scope


@dataclass(slots=True)
class _Read:
    """One service's stored state as one call or observation reads it, and what derives from
    it alone: its profile, its parsed faults, each target's situation (window, logs and
    traces of an observation share one)."""

    stored: FleetState
    profile: Profile
    faults: list[tuple[str, Fault]]  # (version, fault), in injection order
    situations: dict[tuple[str, str], _Situation] = field(default_factory=dict)  # (env, region)


def _of_version(read: _Read, version: str) -> list[Fault]:
    return [f for of, f in read.faults if of == version]


class _Reading(threading.local):
    services: dict[str, _Read] | None = None  # per service, during one call or observation


class _Scope(AbstractContextManager[None]):
    """``reading``'s scope (a class: a generator-based one costs more than it saves)."""

    __slots__ = ("owner", "reading")

    def __init__(self, reading: _Reading) -> None:
        self.reading, self.owner = reading, False

    def __enter__(self) -> None:
        if self.reading.services is None:  # else inside another call or observation: its reads
            self.reading.services, self.owner = {}, True

    def __exit__(self, *exc: object) -> None:
        if self.owner:
            self.reading.services = None


class SimulatedFleet(AbstractMetrics, AbstractTrafficRouter):
    """A deterministic fleet: router state and injected faults in the store's database (a
    SQLite ``Database`` is its tables there), metric windows drawn from them."""

    def __init__(
        self,
        stored: AbstractFleetState | Database,
        profiles: Profiles,
        flags: AbstractFlags,
        seed: int = 0,
    ) -> None:
        self.stored = SqliteFleetState(stored) if isinstance(stored, Database) else stored
        self._reading = _Reading()
        self.profiles = profiles
        self.flags = flags
        self.seed = seed
        # Per service and load: the merge of the default and its own table, made once.
        self._profiles: dict[tuple[str, float | None], Profile] = {}
        self._traced_by: dict[tuple[str, tuple[tuple[str, str], ...]], _Traced] = {}
        # The last draw per target: window, logs and traces of one observation read the same
        # requests, drawn once (the draw is a pure function of the key, so reuse is exact).
        self._drawn: dict[tuple[str, str, str], tuple[_DrawKey, tuple[_Cohort, _Cohort]]] = {}
        self.scrape_intervals: dict[str, float] = {}  # per service, from its settings

    def shortest_window(self, service: str) -> float:
        return 2 * self.scrape_intervals.get(service, 0.0)

    # -- the stored state ------------------------------------------------------------------

    def reading(self, service: str) -> AbstractContextManager[None]:
        """One observation (window, logs, traces of a wave): the state read once for all."""
        return _Scope(self._reading)

    def _snapshot(self, service: str) -> _Read:
        """The service's stored state: read once per call (see ``_reads_state``)."""
        services = self._reading.services
        read = None if services is None else services.get(service)
        if read is None:
            stored = self.stored.snapshot(service)
            profile = self._base_profile(service, stored.rps)
            faults = [(version, _parse(spec)) for version, spec in stored.faults]
            read = _Read(stored, profile, faults)
            if services is not None:
                services[service] = read
        return read

    def _changed(self, service: str) -> None:
        """This call wrote the service's state: its next read goes to the database."""
        if self._reading.services is not None:
            self._reading.services.pop(service, None)

    def _base_profile(self, service: str, rps: float | None = None) -> Profile:
        """The service's profile as data/simulator.toml gives it, flat at ``rps`` when a
        run's line set the load (immutable: made once, shared)."""
        profile = self._profiles.get((service, rps))
        if profile is None:
            profile = self.profiles.for_service(service)
            if rps is not None:
                profile = profile.model_copy(update={"rps": rps, "diurnal_amplitude": 0.0})
            if len(self._profiles) >= 4096:
                self._profiles.clear()  # many loads over a long run: keep it bounded
            self._profiles[service, rps] = profile
        return profile

    @_reads_state
    def profile(self, service: str) -> Profile:
        """The service's profile, driving the load ``set_load`` gave it, if any."""
        return self._snapshot(service).profile

    def set_load(self, service: str, rps_per_region: float | None) -> float | None:
        """Drive ``rps_per_region`` in each region of ``service``, flat (a line's
        ``traffic=``, split over its regions), so the plan's estimate and the run agree;
        None: the profile's traffic again. Returns the load it replaced."""
        replaced = self.stored.set_load(service, rps_per_region)
        self._changed(service)
        return replaced

    @_reads_state
    def recent_traffic(
        self, service: str, regions: Sequence[str], now: datetime, minutes: float = TRAFFIC_MINUTES
    ) -> RecentTraffic | None:
        """Both cohorts of each region's production over the last ``minutes``, as the
        windows draw them. The simulated fleet has always served: its data covers the whole
        look-back."""
        start = now - timedelta(minutes=minutes)
        parts = []
        for region in regions or ["-"]:
            target = Target(service=service, env="prod", region=region)
            for sample, _ in self._samples(target, self._situation_of(target), start, now):
                parts.append(RecentTraffic.over(sample, sample.requests, minutes * 60, minutes))
        return RecentTraffic.total(parts)

    # -- faults ---------------------------------------------------------------------------

    @_reads_state
    def inject(self, service: str, version: str, specs: list[str]) -> list[Fault]:
        """Validate every spec, then store them all for ``version`` (the one being released).

        Raises FaultSpecError and stores nothing when any spec is wrong. Injecting the same
        spec twice keeps one copy (so ``errors:3x`` never silently becomes 9x)."""
        faults = [parse_fault(spec) for spec in specs]
        kpis = self._snapshot(service).profile.kpis
        for f in faults:
            if f.kind == "kpi" and f.name is not None and f.name not in kpis:
                known = ", ".join(sorted(kpis)) or "none"
                raise FaultSpecError(
                    f"bad fault spec {f.spec!r}: {service} has no KPI {f.name!r} "
                    f"(its KPIs: {known}); use kpi:-10% for every KPI"
                )
        self.stored.add_faults(service, version, [f.spec for f in faults])
        self._changed(service)
        return faults

    @_reads_state
    def faults(self, service: str, version: str) -> list[Fault]:
        return self._faults(service, version)

    def _faults(self, service: str, version: str) -> list[Fault]:
        return _of_version(self._snapshot(service), version)

    def clear_faults(self, service: str, version: str | None = None) -> None:
        """Forget the faults of one version of the service, or of all its versions."""
        self.stored.clear_faults(service, version)
        self._changed(service)

    def _service_faults(self, service: str) -> list[Fault]:
        return [f for _, f in self._snapshot(service).faults]

    # -- router ---------------------------------------------------------------------------

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        self.stored.put_traffic(target, desired)
        self._changed(target.service)
        return desired

    def state(self, target: Target) -> TrafficState:
        if self._reading.services is None:
            stored = self.stored.traffic(target)  # converge: the one row, not the service's
        else:
            stored = self._stored_state(target)
        return stored if stored is not None else self._unrouted(target.service)

    def _unrouted(self, service: str) -> TrafficState:
        """A target the router never changed: the stable version on every instance (which
        the load a run set does not change)."""
        profile = self._base_profile(service)
        return _stable_only(profile.stable_version, profile.instances)

    def _stored_state(self, target: Target) -> TrafficState | None:
        return self._snapshot(target.service).stored.traffic.get((target.env, target.region))

    def _forget_state(self, target: Target) -> None:
        self.stored.forget_traffic(target)
        self._changed(target.service)

    @_reads_state
    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """Deploy ``version`` beside the stable one at 0 %, roll back, read the state back.

        ``check:rollback_rehearsal=fail`` on the version makes the rollback leave it behind.
        The target's state is restored afterwards, whatever happened."""
        broken = any(
            f.kind == "check" and f.name == "rollback_rehearsal"
            for f in self._faults(target.service, version)
        )
        with self.stored.lock:
            self._changed(target.service)  # read under the lock, not what the fault read saw
            before = self._stored_state(target)
            current = before or self.state(target)
            beside = TrafficState(
                stable_version=current.stable_version,
                new_version=version,
                instances_total=current.instances_total,
                instances_updated=1 if current.instances_total else 0,
            )
            rolled_back = TrafficState(
                stable_version=current.stable_version,
                instances_total=current.instances_total,
            )
            try:
                self.apply(target, beside)
                self.apply(target, beside if broken else rolled_back)
                after = self.state(target)
            finally:
                if before is None:
                    self._forget_state(target)
                else:
                    self.apply(target, before)
        return (
            after.stable_version == current.stable_version
            and after.new_version is None
            and after.new_weight == 0
            and after.mirror == 0
        )

    # -- metrics --------------------------------------------------------------------------

    def _flag_percentage(self, name: str) -> float:
        flag = self.flags.get(name)
        return 0.0 if flag is None else flag.effective_percentage

    def _situation_of(self, target: Target) -> _Situation:
        """The target's situation as this call or observation reads it, derived once."""
        read = self._snapshot(target.service)
        where = (target.env, target.region)
        sit = read.situations.get(where)
        if sit is None:
            state = read.stored.traffic.get(where) or self._unrouted(target.service)
            sit = read.situations[where] = self._situation(target, state)
        return sit

    def _situation(self, target: Target, state: TrafficState) -> _Situation:
        read = self._snapshot(target.service)
        profile = read.profile
        flag_pct = self._flag_percentage(state.flag) if state.flag is not None else 0.0
        exposure = flag_pct if state.flag is not None else max(state.new_weight, state.mirror)
        if target.env != "prod":
            # Exposure is a share of production traffic: dev and staging carry none, so a
            # fault ``@N`` with N > 0 shows only in prod, while ``@0`` shows everywhere.
            exposure = 0.0
        if state.new_version is None:
            baseline_share, canary_share = 1.0, 0.0
        elif state.flag is not None:
            canary_share = flag_pct / 100
            baseline_share = 1.0 - canary_share
        elif state.mirror > 0:
            # Mirrored copies: extra load on the new version, users all served by the stable.
            baseline_share, canary_share = 1.0, state.mirror / 100
        else:
            canary_share = state.new_weight / 100
            baseline_share = 1.0 - canary_share
        baseline = canary = NO_EFFECTS
        if state.stable_version is not None and state.stable_version != state.new_version:
            # A stable version only carries faults after it was promoted: it serves everyone.
            baseline = effects(_of_version(read, state.stable_version), 100.0)
        if state.new_version is not None:
            canary = effects(_of_version(read, state.new_version), exposure)
        return _Situation(state, profile, exposure, baseline_share, canary_share, baseline, canary)

    @staticmethod
    def _cohort(
        rng: np.random.Generator, profile: Profile, expected: float, fx: Effects
    ) -> _Cohort:
        requests = int(rng.poisson(expected)) if expected > 0 else 0
        if requests == 0:
            zero = dict.fromkeys(BUCKET_LABELS, 0)
            return _Cohort(CohortSample(requests=0, errors=0, latency_buckets=zero), None)
        errors = int(rng.binomial(requests, min(1.0, profile.error_rate * fx.error_factor)))
        probs = _bucket_probabilities(
            profile.latency_median_ms * fx.latency_factor, profile.latency_sigma
        )
        counts = rng.multinomial(requests, probs)
        # Twelve counts: plain Python sums them faster than numpy would.
        cumulative = itertools.accumulate(counts.tolist())
        buckets = dict(zip(BUCKET_LABELS, cumulative, strict=True))
        kpis: dict[str, float] = {}
        sessions = round(requests / profile.requests_per_session) if profile.kpis else 0
        if sessions > 0:
            for name in sorted(profile.kpis):
                p = min(1.0, max(0.0, profile.kpis[name] * fx.kpi_factor(name)))
                kpis[name] = int(rng.binomial(sessions, p)) / sessions
        sample = CohortSample(requests=requests, errors=errors, latency_buckets=buckets, kpis=kpis)
        return _Cohort(sample, counts)

    def _samples(
        self, target: Target, sit: _Situation, start: datetime, end: datetime
    ) -> tuple[_Cohort, _Cohort]:
        where, key = _where(target), (start, end, sit)
        drawn = self._drawn.get(where)
        if drawn is not None and drawn[0] == key:
            baseline, canary = drawn[1]
            return baseline, canary
        baseline, canary = self._draw(target, sit, start, end)
        self._drawn[where] = (key, (baseline, canary))
        return baseline, canary

    def _draw(
        self, target: Target, sit: _Situation, start: datetime, end: datetime
    ) -> tuple[_Cohort, _Cohort]:
        t0, t1 = _instant(start), _instant(end)
        total = _expected(sit.profile, t0, t1)
        # One generator for the window, the baseline drawn first: its numbers do not depend
        # on how much traffic the canary takes (a mirror leaves the users' cohort as it was).
        rng = _rng(self.seed, target.service, target.env, target.region, "window", t0, t1)
        baseline = self._cohort(rng, sit.profile, total * sit.baseline_share, sit.baseline)
        canary = self._cohort(rng, sit.profile, total * sit.canary_share, sit.canary)
        return baseline, canary

    @_reads_state
    def window(self, target: Target, start: datetime, end: datetime) -> WindowSample:
        sit = self._situation_of(target)
        if sit.baseline.metrics_down or sit.canary.metrics_down:
            raise MetricsUnavailable(
                f"no metrics for {target.describe()} at {sit.exposure:g}% exposure "
                "(simulated fault metrics:down)"
            )
        baseline, canary = self._samples(target, sit, start, end)
        return WindowSample(start=start, end=end, baseline=baseline.sample, canary=canary.sample)

    def _states(self, service: str) -> list[tuple[Target, TrafficState]]:
        stored = self._snapshot(service).stored.traffic
        states = [
            (Target(service=service, env=env, region=region), stored[env, region])
            for (env, region) in sorted(stored)
        ]
        if not states:
            profile = self._snapshot(service).profile
            # Nothing deployed yet: the stable version, as prod would report it.
            nowhere = Target(service=service, env="prod", region="-")
            states = [(nowhere, TrafficState(stable_version=profile.stable_version))]
        return states

    @_reads_state
    def probe(self, service: str) -> list[str]:
        for target, state in self._states(service):
            sit = self._situation(target, state)
            if sit.baseline.metrics_down or sit.canary.metrics_down:
                return []
        kpis = [f"kpi:{name}" for name in sorted(self._snapshot(service).profile.kpis)]
        return ["requests", "errors", "latency", *kpis]

    @_reads_state
    def dependencies(self, service: str, names: list[str]) -> list[DependencyProbe]:
        """Profile health, made worse by ``dep:`` faults injected for ANY version of the service.

        A dependency's trouble is not the version's doing, so it stays until the faults are
        cleared; this also lets the pre-flight gate see it before anything is deployed."""
        return [
            DependencyProbe(name=name, health=health)
            for name, health in self._dependency_health(service, names).items()
        ]

    def _dependency_health(self, service: str, names: list[str]) -> dict[str, DependencyHealth]:
        known = self._snapshot(service).profile.dependencies
        health: dict[str, DependencyHealth] = {name: known.get(name, "healthy") for name in names}
        for f in self._service_faults(service):
            if f.kind == "dep" and f.name in health and f.value in _HEALTH_ORDER:
                worse = _HEALTH_ORDER[
                    max(_HEALTH_ORDER.index(health[f.name]), _HEALTH_ORDER.index(f.value))
                ]
                health[f.name] = worse
        return health

    @_reads_state
    def logs(self, target: Target, start: datetime, end: datetime) -> LogSummary:
        """Error signatures per cohort, from the same draws as ``window`` (logs keep flowing
        when metrics are down). An errors fault's extra errors carry the regression type."""
        sit = self._situation_of(target)
        baseline, canary = (cohort.sample for cohort in self._samples(target, sit, start, end))
        return LogSummary(
            baseline_errors_by_type=self._errors_by_type(sit.profile, baseline, sit.baseline),
            canary_errors_by_type=self._errors_by_type(sit.profile, canary, sit.canary),
            baseline_lines=LOG_LINES_PER_REQUEST * baseline.requests,
            canary_lines=LOG_LINES_PER_REQUEST * canary.requests,
        )

    @staticmethod
    def _errors_by_type(profile: Profile, sample: CohortSample, fx: Effects) -> dict[str, int]:
        regression = 0
        if fx.errors_regressed:
            regression = round(sample.errors * (fx.error_factor - 1) / fx.error_factor)
        counts = _split(sample.errors - regression, profile.error_types)
        if regression:
            counts[profile.regression_error_type] = (
                counts.get(profile.regression_error_type, 0) + regression
            )
        return counts

    @_reads_state
    def traces(self, target: Target, start: datetime, end: datetime) -> TraceSummary | None:
        """Traces sampled from the requests simulated in (start, end] (the same draws as
        ``window``): the new version's, or the stable one's when nothing new serves. None when
        no request was served, so no span was traced."""
        sit = self._situation_of(target)
        baseline, canary = self._samples(target, sit, start, end)
        traced, fx = (canary, sit.canary) if canary.sample.requests else (baseline, sit.baseline)
        if not traced.sample.requests:
            return None
        failing, components = self._traced(target.service)
        rng = _rng(self.seed, *_where(target), "traces", _instant(start), _instant(end))
        critical_ms, bottlenecks = _sampled_traces(rng, traced, fx.latency_factor, components)
        return TraceSummary(
            critical_path_ms=round(critical_ms, 1),
            dependency_failures=list(failing),
            bottlenecks=bottlenecks,
        )

    def _traced(self, service: str) -> _Traced:
        """The dependencies the service's traces show failing, and the components a trace
        is split among (the handler, then each dependency): derived once per service and
        faults (the profile's dependencies do not change with the load)."""
        read = self._snapshot(service)
        key = service, read.stored.faults
        traced = self._traced_by.get(key)
        if traced is None:
            names = sorted({*read.profile.dependencies, *self._dep_fault_names(service)})
            health = self._dependency_health(service, names)
            failing = tuple(name for name, h in health.items() if h != "healthy")
            traced = failing, [f"{service} handler", *read.profile.dependencies]
            if len(self._traced_by) >= 4096:
                self._traced_by.clear()  # faults come and go over a long run: keep it bounded
            self._traced_by[key] = traced
        return traced

    def _dep_fault_names(self, service: str) -> list[str]:
        return [f.name for f in self._service_faults(service) if f.kind == "dep" and f.name]

    @_reads_state
    def synthetic(
        self, target: Target, transactions: list[str], at: datetime
    ) -> list[TransactionResult]:
        """``SYNTHETIC_RUNS`` runs of each transaction against the new version (the stable one
        when nothing new is deployed). success_rate is a fraction in [0, 1]; latency_ms is
        the mean of the runs."""
        sit = self._situation_of(target)
        fx = sit.canary if sit.state.new_version is not None else sit.baseline
        p_error = min(1.0, sit.profile.error_rate * fx.error_factor)
        mu = math.log(sit.profile.latency_median_ms * fx.latency_factor)
        results = []
        for name in transactions:
            rng = _rng(self.seed, *_where(target), "synthetic", name, _instant(at))
            failures = int(rng.binomial(SYNTHETIC_RUNS, p_error))
            latency = float(rng.lognormal(mu, sit.profile.latency_sigma, SYNTHETIC_RUNS).mean())
            results.append(
                TransactionResult(
                    name=name,
                    success_rate=(SYNTHETIC_RUNS - failures) / SYNTHETIC_RUNS,
                    latency_ms=round(latency, 1),
                )
            )
        return results


def _sampled_traces(
    rng: np.random.Generator, cohort: _Cohort, latency_factor: float, components: list[str]
) -> tuple[float, list[str]]:
    """Up to ``TRACE_SPANS`` traces of requests the window served: their critical path (the
    p95 of their durations, numpy's linear quantile) and the component that dominates the
    slowest of them (those at or above the critical path), named with its share of their time;
    none when no one component takes most of it.

    Each trace's duration is one of the window's requests, drawn from its latency histogram
    (the judge's) and placed evenly within its bucket, as ``histogram_quantile`` reads it; it
    is split among the components (the handler, then each dependency), and a latency fault's
    extra time is the new code's, so it lands on the handler. Only the slowest traces' split
    is drawn: the others' durations are all the critical path needs."""
    requests = cohort.sample.requests
    n = min(requests, TRACE_SPANS)
    assert cohort.counts is not None  # it served requests
    per_bucket = rng.multinomial(n, cohort.counts / requests).tolist()
    position = TRACE_QUANTILE * (n - 1)
    lo = int(position)
    hi, frac = min(lo + 1, n - 1), position - lo
    # Only the traces from the bucket holding the quantile up are placed within their
    # buckets: the faster ones' durations cannot move the critical path or the slowest.
    first, below = 0, 0
    while below + per_bucket[first] <= lo:
        below += per_bucket[first]
        first += 1
    placed = rng.random(n - below)  # where each trace lies in its bucket, in bucket order
    lo, hi = lo - below, hi - below
    if len(components) < 2:
        # one component: nothing to single out, and the critical path needs two traces
        return _critical_path(placed, per_bucket, first, lo, hi, frac), []
    bucket = np.repeat(_BUCKET_INDEX[first:], per_bucket[first:])
    totals = np.sort(_EDGES_MS[bucket] + _WIDTHS_MS[bucket] * placed)
    critical = float(totals[lo] + (totals[hi] - totals[lo]) * frac)
    slow = totals[hi if frac else lo :]  # sorted: those at or above the critical path
    deps = len(components) - 1
    weights = np.array([HANDLER_SHARE, *[(1 - HANDLER_SHARE) / deps] * deps])
    usual = slow / latency_factor
    spans = rng.dirichlet(weights * SPLIT_CONCENTRATION, len(slow)) * usual[:, None]
    spans[:, 0] += slow - usual
    shares = spans.sum(axis=0) / slow.sum()
    top = int(np.argmax(shares))
    if shares[top] <= BOTTLENECK_SHARE:
        return critical, []
    return critical, [f"{components[top]}: {shares[top]:.0%} of the slowest 5% of traces"]


def _critical_path(
    placed: np.ndarray, per_bucket: list[int], first: int, lo: int, hi: int, frac: float
) -> float:
    """``_sampled_traces``' critical path without placing and sorting every trace: a bucket's
    traces all lie within it, and placing is monotonic, so the lo-th and hi-th slowest are
    the first bucket's sorted draws placed (hi may be the next occupied bucket's fastest).
    The same floating-point operations on the same draws: the same figure."""
    count = per_bucket[first]
    mine: list[float] = np.sort(placed[:count]).tolist()
    low = _EDGE[first] + _WIDTH[first] * mine[lo]
    if hi < count:
        high = _EDGE[first] + _WIDTH[first] * mine[hi]
    else:
        after = first + 1
        while not per_bucket[after]:
            after += 1
        fastest = float(placed[count : count + per_bucket[after]].min())
        high = _EDGE[after] + _WIDTH[after] * fastest
    return low + (high - low) * frac


__all__ = [
    "BUCKET_LABELS",
    "SimulatedFleet",
    "SimulatorMetricsSettings",
    "SimulatorRouterSettings",
    "expected_requests",
]
