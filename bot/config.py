"""Reading the per-service config, ``data/services.toml``, into ``bot.domain.config.Config``.

The models are pure and live in the domain; this module only reads files.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from bot.domain.base import Model
from bot.domain.config import Config

M = TypeVar("M", bound=Model)

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "data" / "services.toml"


class ConfigError(Exception):
    """The config file is missing or wrong; the message says where and how to fix it."""


def read_toml_model(path: Path, model: type[M], error: type[Exception], missing: str) -> M:
    """Read a TOML file into ``model``; every problem is one ``error`` naming file and field."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise error(f"{path} not found; {missing}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise error(f"{path}: {problems}") from exc


def load_config(path: Path | None = None) -> Config:
    return read_toml_model(
        path or DEFAULT_CONFIG, Config, ConfigError, "copy data/services.toml from the repository"
    )
