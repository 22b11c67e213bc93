"""The base of every adapter's settings schema: each adapter declares what it reads from its
table in ``data/services.toml`` (opsdroid-style), and ``bot.bootstrap`` checks every service's
tables against it at start-up, one line per mistake."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bot.domain.config import ServiceConfig


class AdapterSettings(BaseModel):
    """Unknown keys are mistakes; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def problems(self, service: ServiceConfig) -> list[str]:
        """Mistakes that show only beside the rest of the service's config (its environments,
        regions, dependencies), one line each naming the fix."""
        return []
