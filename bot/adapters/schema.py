"""The base of every adapter's settings schema: each adapter declares what it reads from its
table in ``data/services.toml`` (opsdroid-style), and ``bot.bootstrap`` checks every service's
tables against it at start-up, one line per mistake."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from bot.domain.config import ServiceConfig


class AdapterSettings(BaseModel):
    """Unknown keys are mistakes; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def problems(self, service: ServiceConfig) -> list[str]:
        """Mistakes that show only beside the rest of the service's config (its environments,
        regions, dependencies), one line each naming the fix."""
        return []


def clashes(
    template: str, what: str, environments: Iterable[str], regions: Iterable[str]
) -> list[str]:
    """Where ``template`` would name the same backend or series for two targets that must
    stay apart: one line for each of $env and $region it lacks while there are several."""
    out = []
    for key, values in (("env", sorted(set(environments))), ("region", sorted(set(regions)))):
        if len(values) > 1 and not re.search(rf"\$(\{{{key}\}}|{key}\b)", template):
            out.append(
                f"{what} {template!r} is the same for every {key} ({', '.join(values)}): "
                f"put ${key} in it"
            )
    return out
