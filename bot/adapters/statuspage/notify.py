"""Statuspage: a rollback or a failure opens an incident on the service's page (REST API v1,
``POST /v1/pages/{page_id}/incidents``), naming the affected components. The API key stays
in the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, field_validator

from bot.adapters.http.json_post import PostFailed, env_name, http_address, post_json
from bot.adapters.schema import AdapterSettings
from bot.domain.config import ServiceConfig
from bot.domain.notify import STATUS_PAGE, Moment
from bot.ports.notify import AbstractNotifier, Notice, NotificationFailed


class StatuspageSettings(AdapterSettings):
    """``[services.NAME.statuspage]``: the page, its components, and which variable holds
    the API key."""

    page_id: str = Field(description="The page's id, as in its API address.")
    url: str = Field(default="https://api.statuspage.io", description="The API's base.")
    api_key_env: str = Field(
        default="STATUSPAGE_API_KEY",
        description="The environment variable holding the API key (header Authorization: "
        "OAuth KEY).",
    )
    component_ids: list[str] = Field(
        default=[], description="The page's components the service is, marked degraded."
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=30, description="One attempt's limit.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_address(value)

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        return env_name(value)

    def problems(self, service: ServiceConfig) -> list[str]:
        """The API key must be there at start-up, not at the first rollback."""
        if not os.environ.get(self.api_key_env):
            return [f"{self.api_key_env} is not set: export the Statuspage API key"]
        return []


class StatuspageNotifier(AbstractNotifier):
    target = STATUS_PAGE
    moments: frozenset[Moment] = frozenset({"rolled_back", "failed"})

    def __init__(
        self, settings: StatuspageSettings, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.settings = settings
        self.environ = environ

    def send(self, notice: Notice) -> str:
        key = self.environ.get(self.settings.api_key_env, "")
        if not key:
            raise NotificationFailed(
                f"{self.settings.api_key_env} is not set: export the Statuspage API key"
            )
        what = "rolled back" if notice.moment == "rolled_back" else "failed"
        incident: dict[str, object] = {
            "name": f"{notice.service}: release {notice.version} {what}",
            "status": "identified",
            "body": notice.text,
        }
        if self.settings.component_ids:
            incident["component_ids"] = self.settings.component_ids
            incident["components"] = {
                c: "degraded_performance" for c in self.settings.component_ids
            }
        url = f"{self.settings.url}/v1/pages/{self.settings.page_id}/incidents"
        try:
            answer = post_json(
                url,
                {"incident": incident},
                {"Authorization": f"OAuth {key}"},
                self.settings.timeout_seconds,
            )
        except PostFailed as exc:
            raise NotificationFailed(f"Statuspage: {exc}") from None
        incident_id = answer.get("id") if isinstance(answer, dict) else None
        # Created all the same: a retry would open a second incident.
        return incident_id if isinstance(incident_id, str) else "created"
