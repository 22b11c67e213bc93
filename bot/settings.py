"""What ``release-bot serve`` reads from the environment or a ``.env`` file.

Every problem is reported as one line naming the variable and how to fix it (``SettingsError``),
never a traceback: a team installing the app should see what to set, not a stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_API_URL = "https://slack.com/api/"
Mode = Literal["http", "socket"]


class SettingsError(Exception):
    """The settings are missing or wrong; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, description="the bot token (xoxb-…) from OAuth & Permissions"
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Basic Information → App Credentials → Signing Secret"
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="an app-level token (xapp-…) with connections:write: Socket Mode"
    )
    slack_api_url: str = Field(default=SLACK_API_URL, description="the Web API's base URL")
    release_bot_db: Path | str = Path("data/release-bot.db")  # a file, or a postgresql:// URL
    release_bot_config: Path | None = None
    release_bot_channel: str | None = Field(
        default=None, description="channel ID for releases started outside Slack (the CLI)"
    )
    release_bot_tick_seconds: float = Field(default=10.0, gt=0, le=300)
    release_bot_post_interval: float = Field(
        default=1.0, ge=0, description="seconds between messages to one channel (Slack: ~1/s)"
    )
    release_bot_home_interval: float = Field(
        default=10.0,
        ge=0,
        description="seconds between two refreshes of one user's App Home (views.publish)",
    )
    release_bot_evidence_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret CI jobs sign POST /evidence with; unset: uploads are off",
    )
    release_bot_audit_key: SecretStr | None = Field(
        default=None,
        description="HMAC key signing the audit chain; unset: hashes only (see README)",
    )
    port: int = Field(default=3000, ge=0, le=65535)
    host: str = "0.0.0.0"

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"{url!r} is not an http(s) URL; leave it unset to use {SLACK_API_URL}"
            )
        return url if url.endswith("/") else url + "/"

    @property
    def mode(self) -> Mode:
        return "socket" if self.slack_app_token is not None else "http"

    def check(self) -> None:
        """Raise ``SettingsError`` unless the app can start in its mode."""
        bot = _secret(self.slack_bot_token)
        if not bot:
            raise SettingsError(
                "SLACK_BOT_TOKEN is not set: install the app (manifest.json) and copy the "
                "xoxb- token from OAuth & Permissions into the environment or .env"
            )
        if not bot.startswith("xoxb-"):
            raise SettingsError(
                "SLACK_BOT_TOKEN should start with xoxb- (a bot token); "
                f"the one given starts with {bot[:5]!r}"
            )
        app = _secret(self.slack_app_token)
        if self.mode == "socket":
            if not app.startswith("xapp-"):
                raise SettingsError(
                    "SLACK_APP_TOKEN should start with xapp- (an app-level token with "
                    "connections:write); unset it to serve over HTTP instead"
                )
        elif not _secret(self.slack_signing_secret):
            raise SettingsError(
                "SLACK_SIGNING_SECRET is not set: copy it from Basic Information → App "
                "Credentials (needed to verify Slack's requests over HTTP), or set "
                "SLACK_APP_TOKEN to use Socket Mode"
            )


def _secret(value: SecretStr | None) -> str:
    return "" if value is None else value.get_secret_value().strip()


def load_settings(env_file: str | Path | None = ".env") -> Settings:
    """Settings from the environment (and ``env_file`` when it exists), checked."""
    try:
        settings = Settings(_env_file=env_file)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from None
    settings.check()
    return settings


class AuditSettings(BaseSettings):
    """The audit chain's key alone: every command reads it (not only ``serve``)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    release_bot_audit_key: SecretStr | None = None


def audit_key_from_env(env_file: str | Path | None = ".env") -> bytes | None:
    """``RELEASE_BOT_AUDIT_KEY`` from the environment (or ``env_file``); None when unset."""
    key = _secret(AuditSettings(_env_file=env_file).release_bot_audit_key)
    return key.encode() if key else None
