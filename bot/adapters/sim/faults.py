"""Fault specs for the simulated fleet: what goes wrong with a version, and from what exposure.

A spec is one short string, e.g. ``errors:3x@25`` or ``dep:ledger=degraded``. ``@N`` (percent
of exposure, default 0 = always) is accepted by the faults that depend on traffic: errors,
latency, kpi and metrics. The others describe the version or its surroundings and always hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["errors", "latency", "kpi", "dep", "check", "artifact", "metrics"]

CHECK_NAMES: tuple[str, ...] = (
    "staging_tests",
    "security_scan",
    "performance_benchmark",
    "smoke_tests",
    "contract_tests",
    "rollback_rehearsal",
)
ARTIFACT_PROBLEMS: tuple[str, ...] = ("unsigned", "no-sbom", "digest-mismatch")

EXAMPLES = (
    "errors:3x@25, latency:1.5x, kpi:-10%@50, kpi:checkout_conversion:-10%, "
    "dep:ledger=degraded, check:security_scan=fail, check:rollback_rehearsal=fail, "
    "artifact:unsigned, artifact:no-sbom, artifact:digest-mismatch, metrics:down@25"
)

_NUMBER = r"\d+(?:\.\d+)?"
_NAME = r"[A-Za-z0-9_.\-]+"
_AT = rf"(?:@(?P<at>{_NUMBER})%?)?"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "errors": re.compile(rf"(?P<factor>{_NUMBER})x{_AT}"),
    "latency": re.compile(rf"(?P<factor>{_NUMBER})x{_AT}"),
    "kpi": re.compile(rf"(?:(?P<name>{_NAME}):)?(?P<pct>[+\-]?{_NUMBER})%{_AT}"),
    "dep": re.compile(rf"(?P<name>{_NAME})=(?P<value>degraded|unhealthy)"),
    "check": re.compile(rf"(?P<name>{_NAME})=(?P<value>fail|warning)"),
    "artifact": re.compile(r"(?P<value>unsigned|no-sbom|digest-mismatch)"),
    "metrics": re.compile(rf"down{_AT}"),
}
_SYNTAX: dict[str, str] = {
    "errors": "errors:FACTORx[@EXPOSURE], e.g. errors:3x@25",
    "latency": "latency:FACTORx[@EXPOSURE], e.g. latency:1.5x@10",
    "kpi": "kpi:[NAME:]±PERCENT%[@EXPOSURE], e.g. kpi:-10%@50 or kpi:checkout_conversion:-10%",
    "dep": "dep:NAME=degraded|unhealthy, e.g. dep:ledger=degraded",
    "check": f"check:NAME=fail|warning with NAME one of {', '.join(CHECK_NAMES)}",
    "artifact": "artifact:unsigned, artifact:no-sbom or artifact:digest-mismatch",
    "metrics": "metrics:down[@EXPOSURE], e.g. metrics:down@25",
}


class FaultSpecError(ValueError):
    """A fault spec could not be parsed; the message says why and shows valid ones."""


@dataclass(frozen=True)
class Fault:
    """One parsed fault. ``factor`` is a multiplier (errors, latency) or, for kpi, the
    relative change (-0.10 for -10 %); ``at`` is the exposure in percent where it starts."""

    kind: FaultKind
    spec: str
    at: float = 0.0
    factor: float = 1.0
    name: str | None = None
    value: str | None = None

    def active(self, exposure: float) -> bool:
        return exposure >= self.at


def _error(spec: str, why: str) -> FaultSpecError:
    return FaultSpecError(f"bad fault spec {spec!r}: {why}. Valid examples: {EXAMPLES}")


def parse_fault(spec: str) -> Fault:
    """Parse one spec such as ``errors:3x@25``; raises FaultSpecError."""
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if not sep or kind not in _PATTERNS:
        raise _error(spec, f"it must start with one of {', '.join(f'{k}:' for k in _PATTERNS)}")
    found = _PATTERNS[kind].fullmatch(rest)
    if found is None:
        raise _error(spec, f"expected {_SYNTAX[kind]}")
    groups = found.groupdict()
    at = float(groups["at"]) if groups.get("at") else 0.0
    if at > 100:
        raise _error(spec, "the exposure after @ is a percentage between 0 and 100")
    canonical = f"{kind}:{rest}"
    match kind:
        case "errors" | "latency":
            factor = float(groups["factor"])
            if factor <= 0:
                raise _error(spec, "the factor must be greater than 0, e.g. 3x")
            return Fault(kind, canonical, at=at, factor=factor)
        case "kpi":
            change = float(groups["pct"]) / 100
            if change <= -1:
                raise _error(spec, "a KPI cannot drop by 100 % or more")
            return Fault("kpi", canonical, at=at, factor=change, name=groups["name"])
        case "dep":
            return Fault("dep", canonical, name=groups["name"], value=groups["value"])
        case "check":
            name, value = groups["name"], groups["value"]
            if name not in CHECK_NAMES:
                raise _error(spec, f"unknown check {name!r}; checks are {', '.join(CHECK_NAMES)}")
            if name == "rollback_rehearsal" and value != "fail":
                raise _error(spec, "a rollback rehearsal either works or fails: use =fail")
            return Fault("check", canonical, name=name, value=value)
        case "artifact":
            return Fault("artifact", canonical, value=groups["value"])
        case _:
            return Fault("metrics", canonical, at=at, value="down")


@dataclass(frozen=True)
class Effects:
    """What a version's active faults do to its traffic, combined (factors multiply)."""

    error_factor: float = 1.0
    latency_factor: float = 1.0
    kpi_all: float = 1.0
    kpi_named: dict[str, float] = field(default_factory=dict)
    metrics_down: bool = False

    def kpi_factor(self, name: str) -> float:
        return self.kpi_all * self.kpi_named.get(name, 1.0)

    @property
    def errors_regressed(self) -> bool:
        return self.error_factor > 1.0


NO_EFFECTS = Effects()


def effects(faults: list[Fault], exposure: float) -> Effects:
    """Combine the traffic faults active at ``exposure`` (in percent)."""
    active = [f for f in faults if f.active(exposure)]
    if not active:
        return NO_EFFECTS
    error_factor = latency_factor = kpi_all = 1.0
    kpi_named: dict[str, float] = {}
    for f in active:
        if f.kind == "errors":
            error_factor *= f.factor
        elif f.kind == "latency":
            latency_factor *= f.factor
        elif f.kind == "kpi" and f.name is None:
            kpi_all *= 1 + f.factor
        elif f.kind == "kpi" and f.name is not None:
            kpi_named[f.name] = kpi_named.get(f.name, 1.0) * (1 + f.factor)
    return Effects(
        error_factor=error_factor,
        latency_factor=latency_factor,
        kpi_all=kpi_all,
        kpi_named=kpi_named,
        metrics_down=any(f.kind == "metrics" for f in active),
    )
