"""The agent's settings: the key, the model, timeouts and retries, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# A small, cheap model is enough to plan within the rules and to write short texts.
DEFAULT_MODEL = "claude-haiku-4-5"


class AnthropicSettings(BaseSettings):
    """The agent's configuration, from the environment (or ``.env``)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    anthropic_api_key: SecretStr | None = Field(default=None)
    anthropic_base_url: str | None = Field(default=None)
    release_bot_model: str = Field(default=DEFAULT_MODEL)
    release_bot_llm_timeout: float = Field(default=20.0, gt=0, le=600)  # seconds per call
    release_bot_llm_retries: int = Field(default=2, ge=0, le=10)
    release_bot_llm_deadline: float = Field(default=60.0, gt=0, le=3600)  # seconds per task


class LLMSettingsError(ValueError):
    """A malformed agent setting; the message is one line naming it."""


def read_settings(env_file: str | Path | None = ".env") -> AnthropicSettings:
    """The settings from the environment (and ``env_file`` when it exists); a malformed one
    is one ``LLMSettingsError`` line naming it."""
    try:
        return AnthropicSettings(_env_file=env_file)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        raise LLMSettingsError(f"{name}: {first['msg']}") from None
