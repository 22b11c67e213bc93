"""Which model the agent gets, read without importing the SDK: with no key, ``NoLLM`` and no
``anthropic`` import at all (it costs over a second at every CLI start)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from bot.adapters.llm.none import NoLLM
from bot.adapters.llm.settings import AnthropicSettings, LLMSettingsError
from bot.ports.llm import AbstractLLM


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
