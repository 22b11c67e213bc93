"""Statuspage: a rollback or a failure opens an incident on the service's page (REST API v1,
``POST /v1/pages/{page_id}/incidents``), naming the affected components. The API key stays
in the environment.

Idempotent: a POST that timed out may have created the incident all the same, so each send
first looks for an unresolved incident of this release (``GET …/incidents/unresolved``, its
name ending with the release's marker, or its metadata naming the release) and updates it
(``PATCH …/incidents/{id}``) instead of opening a second one."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, field_validator

from bot.adapters.http.json_post import PostFailed, env_name, http_address, send_json
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
            "name": f"{notice.service}: release {notice.version} {what} {marker(notice.release_id)}",
            "status": "identified",
            "body": notice.text,
            "metadata": {"release_bot": {"release_id": notice.release_id}},
        }
        if self.settings.component_ids:
            incident["component_ids"] = self.settings.component_ids
            incident["components"] = {
                c: "degraded_performance" for c in self.settings.component_ids
            }
        headers = {"Authorization": f"OAuth {key}"}
        incidents = f"{self.settings.url}/v1/pages/{self.settings.page_id}/incidents"
        timeout = self.settings.timeout_seconds
        try:
            # An earlier attempt may have created it before its answer was lost.
            unresolved = send_json("GET", f"{incidents}/unresolved", None, headers, timeout)
            existing = _of_release(unresolved, notice.release_id)
            if existing is not None:
                answer = send_json(
                    "PATCH", f"{incidents}/{existing}", {"incident": incident}, headers, timeout
                )
            else:
                answer = send_json("POST", incidents, {"incident": incident}, headers, timeout)
        except PostFailed as exc:
            raise NotificationFailed(f"Statuspage: {exc}") from None
        incident_id = answer.get("id") if isinstance(answer, dict) else None
        return incident_id if isinstance(incident_id, str) else (existing or "created")


def marker(release_id: str) -> str:
    """What an incident's name carries so that a retry finds it: the release's id."""
    return f"[{release_id}]"


def _of_release(unresolved: object, release_id: str) -> str | None:
    """The id of the unresolved incident this release opened, if any."""
    if not isinstance(unresolved, list):
        return None
    for incident in unresolved:
        if not isinstance(incident, dict) or not isinstance(incident.get("id"), str):
            continue
        metadata = incident.get("metadata")
        ours = metadata.get("release_bot") if isinstance(metadata, dict) else None
        by_metadata = isinstance(ours, dict) and ours.get("release_id") == release_id
        if by_metadata or str(incident.get("name", "")).endswith(marker(release_id)):
            return str(incident["id"])
    return None
