"""Traffic profiles of the simulated fleet, read from ``data/simulator.toml``.

``[default]`` serves every service; ``[services.NAME]`` overrides the fields it sets (a table
such as ``kpis`` replaces the default's whole table, it is not merged key by key).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

from pydantic import Field, field_validator

from bot.config import data_file, read_toml_model
from bot.domain.base import Model
from bot.domain.request import DependencyHealth

DEFAULT_PROFILES = data_file("simulator.toml")


class SimulatorConfigError(Exception):
    """The simulator profile file is missing or wrong; the message says where."""


class Profile(Model):
    """How one service behaves in one region when nothing is wrong."""

    stable_version: str = Field(default="1.0.0", min_length=1)
    rps: float = Field(default=200.0, gt=0, description="per region, at the daily mean")
    diurnal_amplitude: float = Field(default=0.3, ge=0, le=1)
    error_rate: float = Field(default=0.002, ge=0, le=1, description="probability per request")
    latency_median_ms: float = Field(default=50.0, gt=0)
    latency_sigma: float = Field(default=0.5, gt=0, description="lognormal shape")
    kpis: dict[str, float] = {}
    requests_per_session: float = Field(default=5.0, ge=1)
    dependencies: dict[str, DependencyHealth] = {}
    error_types: dict[str, float] = {"InternalServerError": 1.0}
    regression_error_type: str = Field(default="UnhandledException in new code path")
    instances: int = Field(default=10, ge=1)

    @field_validator("kpis")
    @classmethod
    def _probabilities(cls, kpis: dict[str, float]) -> dict[str, float]:
        bad = [name for name, value in kpis.items() if not 0 <= value <= 1]
        if bad:
            raise ValueError(f"KPI base values are per-session probabilities in [0, 1]: {bad}")
        return kpis

    @field_validator("error_types")
    @classmethod
    def _weights(cls, types: dict[str, float]) -> dict[str, float]:
        if not types or any(w <= 0 for w in types.values()):
            raise ValueError("error_types needs at least one signature, each with a weight > 0")
        return types

    def latency_quantile_ms(self, q: float, factor: float = 1.0) -> float:
        """The q-quantile of the lognormal latency, scaled by a latency fault factor."""
        z = NormalDist().inv_cdf(q)
        return self.latency_median_ms * factor * math.exp(self.latency_sigma * z)


class Profiles(Model):
    default: Profile = Profile()
    services: dict[str, Profile] = {}

    def for_service(self, service: str) -> Profile:
        """The default profile overlaid with the service's own table (fields it sets win)."""
        own = self.services.get(service)
        if own is None:
            return self.default
        merged = self.default.model_dump() | own.model_dump(exclude_unset=True)
        return Profile.model_validate(merged)


def load_profiles(path: Path | None = None) -> Profiles:
    return read_toml_model(
        path or DEFAULT_PROFILES, Profiles, SimulatorConfigError, "the simulator needs its profiles"
    )
