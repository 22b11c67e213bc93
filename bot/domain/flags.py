from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.domain.base import Model


class FlagState(Model):
    name: str
    service: str
    type: Literal["release", "experiment", "operational"] = "release"
    percentage: float = Field(default=0.0, ge=0, le=100)
    kill_switch: bool = True
    killed: bool = False
    rules: list[str] = []
    segments: list[str] = []
    overrides: list[str] = []

    @property
    def status(self) -> Literal["off", "partial", "full"]:
        if self.killed or self.percentage == 0:
            return "off"
        return "full" if self.percentage >= 100 else "partial"

    @property
    def effective_percentage(self) -> float:
        return 0.0 if self.killed else self.percentage
