"""The agent's settings, read without importing the SDK: with no key, ``NoLLM`` and no
``anthropic`` import at all (it costs over a second at every CLI start)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.adapters.llm.none import NoLLM
from bot.ports.llm import AbstractLLM

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


def llm_from_env(env_file: str | Path | None = ".env") -> AbstractLLM:
    """The agent's model from ``ANTHROPIC_API_KEY`` and friends; ``NoLLM`` without a key, so
    no API call is ever made."""
    try:
        settings = AnthropicSettings(_env_file=env_file)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        raise LLMSettingsError(f"{name}: {first['msg']}") from None
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return NoLLM()
    from bot.adapters.llm.anthropic import AnthropicLLM

    return AnthropicLLM.from_settings(settings)
