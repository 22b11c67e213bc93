"""PagerDuty Events API v2: a rollback or a failure triggers an alert, a completion resolves
it; the release id is the ``dedup_key``, so a retried send is the same alert to PagerDuty.
The routing key stays in the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator

from bot.adapters.http.json_post import PostFailed, env_name, http_address, post_json
from bot.adapters.schema import AdapterSettings
from bot.domain.config import ServiceConfig
from bot.domain.notify import PAGERDUTY, Moment
from bot.ports.notify import AbstractNotifier, Notice, NotificationFailed


class PagerDutySettings(AdapterSettings):
    """``[services.NAME.pagerduty]``: where the Events API is and which variable holds the
    integration's routing key."""

    url: str = Field(
        default="https://events.pagerduty.com",
        description="The Events API's base; alerts are POSTed to {url}/v2/enqueue.",
    )
    routing_key_env: str = Field(
        default="PAGERDUTY_ROUTING_KEY",
        description="The environment variable holding the integration's routing key.",
    )
    severity: Literal["critical", "error", "warning", "info"] = Field(
        default="critical", description="The alert's severity on a rollback or failure."
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=30, description="One attempt's limit.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_address(value)

    @field_validator("routing_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    def problems(self, service: ServiceConfig) -> list[str]:
        """The routing key must be there at start-up, not at the first rollback."""
        if not os.environ.get(self.routing_key_env):
            return [f"{self.routing_key_env} is not set: export the PagerDuty routing key"]
        return []


class PagerDutyNotifier(AbstractNotifier):
    target = PAGERDUTY
    moments: frozenset[Moment] = frozenset({"rolled_back", "failed", "completed"})

    def __init__(
        self, settings: PagerDutySettings, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.settings = settings
        self.environ = environ

    def send(self, notice: Notice) -> str:
        key = self.environ.get(self.settings.routing_key_env, "")
        if not key:
            raise NotificationFailed(
                f"{self.settings.routing_key_env} is not set: export the PagerDuty routing key"
            )
        action = "resolve" if notice.moment == "completed" else "trigger"
        body: dict[str, object] = {
            "routing_key": key,
            "event_action": action,
            "dedup_key": notice.release_id,
        }
        if action == "trigger":
            body["payload"] = {
                "summary": notice.text[:1024],
                "source": "release-bot",
                "severity": self.settings.severity,
                "component": notice.service,
                "custom_details": {"release": notice.release_id, "version": notice.version},
            }
        try:
            post_json(f"{self.settings.url}/v2/enqueue", body, {}, self.settings.timeout_seconds)
        except PostFailed as exc:
            raise NotificationFailed(f"PagerDuty: {exc}") from None
        return f"{action} {notice.release_id}"
