from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for every domain model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MutableModel(BaseModel):
    """Base for aggregates whose state changes as the release moves."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
