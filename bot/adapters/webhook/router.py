"""A traffic router that asks the service's CD to act, by signed webhooks (Flagger's hooks,
the other way round: the bot calls, the CD moves traffic).

Each change of a target's traffic becomes one or two POSTs (``deploy``, ``set_weight``,
``promote``, ``rollback``), JSON signed with HMAC-SHA256 (``signing``), each carrying an
idempotency key derived from what it asks, so a retried call and a call re-sent after a crash
are the same call to the receiver. The CD cannot be read back through a webhook: the router
remembers, per target, the last state the CD acknowledged (table ``webhook_state`` of the
store's database, shared by the replicas on PostgreSQL) and sends
only the difference. docs/webhooks.md is the receiver's side of the contract.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import sqlite_utils
from pydantic import Field, field_validator

from bot.adapters.http.connection import connect
from bot.adapters.schema import AdapterSettings
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.target_rows import SqliteTargetRows
from bot.adapters.webhook.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_header,
)
from bot.domain.config import ServiceConfig
from bot.domain.observations import Target, TrafficState
from bot.domain.request import Strategy
from bot.ports.target_rows import AbstractTargetRows
from bot.ports.traffic import AbstractTrafficRouter, RouterUnavailable

Action = Literal["deploy", "set_weight", "promote", "rollback", "rehearse_rollback"]

BACKOFF_CAP_SECONDS = 10.0  # the tick waits on these retries: never long
MAX_ANSWER_BYTES = 64 * 1024
# Besides every 5xx: "try again later" answers. Any other 4xx is a mistake a retry repeats.
RETRIED_STATUSES = frozenset({408, 429})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

migrations = sqlite_utils.Migrations("release-bot.webhook")
COLUMNS = ("state", "acknowledged_at")


@migrations()
def m001_webhook_state(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE webhook_state (
            service TEXT NOT NULL,
            env TEXT NOT NULL,
            region TEXT NOT NULL,
            state TEXT NOT NULL,  -- the last TrafficState the CD acknowledged, as JSON
            acknowledged_at TEXT NOT NULL,
            PRIMARY KEY (service, env, region)
        )
        """
    )


class WebhookSettings(AdapterSettings):
    """``[services.NAME.traffic]`` with ``router = "webhook"``: where the CD's receiver
    listens and how hard to try. The signing secret stays in the environment."""

    router: Literal["webhook"] = Field(
        description="Selects this router: the bot asks the service's CD to move traffic "
        "through signed webhooks (docs/webhooks.md)."
    )
    url: str = Field(
        description="The receiver's address, http:// or https://, e.g. "
        "https://cd.example.com/release-bot; every call is a POST to it."
    )
    secret_env: str = Field(
        default="RELEASE_BOT_WEBHOOK_SECRET",
        description="The environment variable holding the signing secret shared with the "
        "receiver; the secret itself is never written in the config.",
    )
    timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="How long one attempt may take (connect, then each read) before it "
        "counts as failed.",
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Attempts after the first on a 5xx, 408, 429, timeout or connection "
        "error; any other 4xx fails at once.",
    )
    backoff_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description=f"The wait before the first retry, doubled for each next one, at most "
        f"{BACKOFF_CAP_SECONDS:g} s.",
    )
    stable_version: str | None = Field(
        default=None,
        description="The version the CD runs before the bot first acts on a target, so "
        "that the first release's gates and metrics know the baseline and what a rollback "
        "returns to; later the bot knows from what the CD acknowledged.",
    )
    image: str | None = Field(
        default=None,
        description="The image of a version, with {version}, e.g. "
        "registry.example.com/payments-api:{version}; sent as `image` with deploy.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        split = urlsplit(value)
        try:
            usable = split.scheme in ("http", "https") and bool(split.hostname)
            usable = usable and (split.port is None or split.port > 0)
        except ValueError:  # a port that is not a number
            usable = False
        if not usable:
            raise ValueError(
                f"url must be an http:// or https:// address with a host, e.g. "
                f"https://cd.example.com/release-bot (got {value!r})"
            )
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(
                f"secret_env names an environment variable, e.g. RELEASE_BOT_WEBHOOK_SECRET "
                f"(got {value!r}); the secret itself goes in that variable"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            filled = value.format(version="\0")
        except (KeyError, IndexError, ValueError):
            filled = ""
        if "\0" not in filled:
            raise ValueError(
                f"image must be a template with {{version}} and no other placeholder, e.g. "
                f"registry.example.com/payments-api:{{version}} (got {value!r})"
            )
        return value

    def secret(self) -> str:
        """The signing secret, from the environment variable ``secret_env``; raises a
        one-line ValueError naming the variable when it is unset or empty."""
        value = os.environ.get(self.secret_env, "")
        if not value:
            raise ValueError(
                f"{self.secret_env} is not set: export the signing secret shared with the "
                f"webhook receiver at {self.url}"
            )
        return value

    def problems(self, service: ServiceConfig) -> list[str]:
        """The secret must be there at start-up, not at the first release's first call."""
        try:
            self.secret()
        except ValueError as exc:
            return [str(exc)]
        return []


def idempotency_key(
    release_id: str | None,
    action: str,
    target: Target,
    version: str | None,
    weight: float,
    mirror: float = 0.0,
    salt: str = "",
    since: TrafficState | None = None,
) -> str:
    """A stable key for one request: the same (release, action, target, version, weight,
    mirror) sent from the same acknowledged state (``since``) always gives the same key, in
    any process, so a receiver can tell a retry or a re-send after a crash from a new
    request. The state it starts from is part of it: a rollback sent again after another
    call moved the CD is a new request, not a repeat to ignore. ``salt`` separates requests
    that must not be merged (each rollback rehearsal)."""
    start = since or TrafficState()
    parts = [
        release_id or "",
        action,
        target.describe(),
        version or "",
        repr(float(weight)),
        repr(float(mirror)),
        salt,
        start.stable_version or "",
        start.new_version or "",
        repr(float(start.new_weight)),
        repr(float(start.mirror)),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Call:
    """One request, and what the CD runs once it acknowledged it (None: no change)."""

    action: Action
    version: str | None
    stable_version: str | None
    weight: float
    mirror: float = 0.0
    flag: str | None = None
    after: TrafficState | None = None


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


def calls_for(acknowledged: TrafficState | None, desired: TrafficState) -> list[_Call]:
    """The requests that take the CD from ``acknowledged`` to ``desired``, in order."""
    prev = acknowledged or TrafficState()
    new = desired.new_version
    out: list[_Call] = []
    if new is not None:
        if prev.new_version != new:
            # deploy leaves the new version beside the stable one at 0 %; set_weight moves it.
            deployed = desired.model_copy(update={"new_weight": 0.0, "mirror": 0.0})
            out.append(
                _Call("deploy", new, desired.stable_version, 0.0, 0.0, desired.flag, deployed)
            )
            prev = deployed
        if (prev.new_weight, prev.mirror) != (desired.new_weight, desired.mirror):
            out.append(
                _Call(
                    "set_weight",
                    new,
                    desired.stable_version,
                    desired.new_weight,
                    desired.mirror,
                    desired.flag,
                    desired,
                )
            )
    elif prev.new_version is not None:
        if desired.stable_version == prev.new_version:
            out.append(
                _Call("promote", prev.new_version, prev.stable_version, 100.0, after=desired)
            )
        else:
            out.append(
                _Call("rollback", prev.new_version, desired.stable_version, 0.0, after=desired)
            )
    return out


def _one_line(raw: bytes, limit: int = 200) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WebhookRouter(AbstractTrafficRouter):
    """The traffic port for one service, answered by its CD through signed webhooks.

    ``sleep`` waits between retries (tests pass a recorder). The router reads and records
    the acknowledged state (``rows``; a SQLite ``Database``: its table there) in units of
    work of their own, never across a call; the reconcile tick and the commands call it
    outside their units of work, so a slow receiver delays no other database work.
    """

    def __init__(
        self,
        service: str,
        settings: WebhookSettings,
        rows: AbstractTargetRows | Database,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.settings = settings
        self.rows = (
            SqliteTargetRows(rows, "webhook_state", COLUMNS) if isinstance(rows, Database) else rows
        )
        self.sleep = sleep

    # -- the port -------------------------------------------------------------------------

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        """Send what takes the CD from the last acknowledged state to ``desired``: a new
        version is ``deploy`` then ``set_weight``; a weight or mirror change ``set_weight``;
        the new version gone and made stable ``promote``; gone otherwise ``rollback``.
        Each acknowledged call is recorded before the next is sent, so after a crash the
        next apply resumes where this one stopped (re-sending at most the call that was in
        flight, with the same idempotency key). Raises RouterUnavailable."""
        self._check(target)
        acknowledged = self._stored(target)
        release_id = desired.release_id
        if release_id is None and acknowledged is not None:
            release_id = acknowledged.release_id  # a promote or rollback ends its release
        last = acknowledged
        for call in calls_for(acknowledged, desired):
            key = idempotency_key(
                release_id, call.action, target, call.version, call.weight, call.mirror,
                since=last,
            )  # fmt: skip
            self._send(target, call, release_id, key)  # without the lock: it may take seconds
            if call.after is not None:
                self._record(target, call.after)
                last = call.after
        if last != desired:  # no call needed, yet e.g. the instance counts changed
            self._record(target, desired)
        return desired

    def state(self, target: Target) -> TrafficState:
        """The last state the CD acknowledged for ``target``; before the first, only the
        ``stable_version`` setting (None without it). A webhook cannot read the CD back: a
        change made in the CD by hand, or a CD that lost its own state, is not seen here.
        Raises RouterUnavailable only for a target of another service."""
        self._check(target)
        return self._known(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """Ask the CD to rehearse rolling ``version`` back on ``target``: True when it
        answers 2xx with ``{"ok": true}``, False with ``{"ok": false}``. Each rehearsal has
        its own idempotency key (its retries share it). Raises RouterUnavailable, also for a
        2xx without that answer."""
        self._check(target)
        call = _Call("rehearse_rollback", version, self._known(target).stable_version, 0.0)
        salt = datetime.now(UTC).isoformat()
        key = idempotency_key(None, call.action, target, version, 0.0, salt=salt)
        answer = self._send(target, call, None, key)  # without the lock, as in apply
        try:
            ok = json.loads(answer.body).get("ok")
        except (ValueError, AttributeError):
            ok = None
        if not isinstance(ok, bool):
            raise RouterUnavailable(
                self._failure(
                    call,
                    target,
                    f'HTTP {answer.status} without a JSON {{"ok": true|false}}: '
                    f"{_one_line(answer.body) or 'empty body'}",
                    None,
                )
            )
        return ok

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        """None for every strategy: the CD decides what it can run, and answers a 4xx
        naming the reason to a call it cannot honour."""
        return None

    # -- sending --------------------------------------------------------------------------

    def body(
        self, target: Target, call: _Call, release_id: str | None, key: str
    ) -> dict[str, object]:
        """The JSON document of one call (docs/webhooks.md lists the fields)."""
        doc: dict[str, object] = {
            "action": call.action,
            "service": target.service,
            "version": call.version,
            "stable_version": call.stable_version,
            "environment": target.env,
            "region": target.region,
            "weight": call.weight,
            "mirror": call.mirror,
            "flag": call.flag,
            "release_id": release_id,
            "idempotency_key": key,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if call.action == "deploy" and self.settings.image and call.version is not None:
            doc["image"] = self.settings.image.format(version=call.version)
        return doc

    def _send(self, target: Target, call: _Call, release_id: str | None, key: str) -> _Answer:
        """POST one call, retrying what may pass; the 2xx answer, or RouterUnavailable."""
        try:
            secret = self.settings.secret()
        except ValueError as exc:
            raise RouterUnavailable(self._failure(call, target, str(exc), None)) from None
        body = json.dumps(self.body(target, call, release_id, key)).encode()
        attempts = 1 + self.settings.retries
        cause = "not sent"
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.sleep(self.backoff(attempt - 1))
            stamp = str(int(time.time()))  # signed afresh: a retry stays within tolerance
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature_header(secret, stamp, body),
                IDEMPOTENCY_HEADER: key,
                "User-Agent": "release-bot-webhook/1",
            }
            try:
                answer = self._post(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                cause = self._cause(exc)
                continue
            if 200 <= answer.status < 300:
                return answer
            said = _one_line(answer.body)
            cause = f"HTTP {answer.status}" + (f" {said}" if said else "")
            if 300 <= answer.status < 400:
                cause += " (redirects are not followed: set url to the final address)"
            if answer.status < 500 and answer.status not in RETRIED_STATUSES:
                raise RouterUnavailable(self._failure(call, target, cause, attempt, final=True))
        raise RouterUnavailable(self._failure(call, target, cause, attempts))

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1, 2, ...): exponential, capped."""
        return float(min(self.settings.backoff_seconds * 2 ** (retry - 1), BACKOFF_CAP_SECONDS))

    def _post(self, body: bytes, headers: dict[str, str]) -> _Answer:
        # http.client rather than urllib: no proxy from the environment, no redirects followed
        # (a 3xx fails and names itself), the timeout applies to connect and to each read.
        conn, path = connect(self.settings.url, self.settings.timeout_seconds)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return _Answer(response.status, response.read(MAX_ANSWER_BYTES))
        finally:
            conn.close()

    def _cause(self, exc: BaseException) -> str:
        match exc:
            case TimeoutError():
                return f"no answer within {self.settings.timeout_seconds:g} s"
            case ConnectionRefusedError():
                return "connection refused (is the receiver listening?)"
            case socket.gaierror():
                return f"cannot resolve {urlsplit(self.settings.url).hostname}"
            case ssl.SSLError():
                return f"TLS error: {exc.reason or exc}"
            case http.client.HTTPException():
                return f"malformed HTTP answer ({type(exc).__name__})"
            case OSError() if exc.strerror:
                return f"{type(exc).__name__}: {exc.strerror}"
        return f"{type(exc).__name__}: {exc}"

    def _failure(
        self,
        call: _Call,
        target: Target,
        cause: str,
        attempts: int | None,
        final: bool = False,
    ) -> str:
        what = call.action + (f" {call.version}" if call.version else "")
        if call.action == "set_weight":
            what += f" at {call.weight:g} %" + (
                f" (mirror {call.mirror:g} %)" if call.mirror else ""
            )
        tries = ""
        if attempts is not None:
            tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
            tries += " (not retried)" if final else ""
        return (
            f"webhook {self.settings.url}: {what} for {target.describe()} failed{tries}: "
            f"{' '.join(cause.split())}"
        )

    # -- the acknowledged state -----------------------------------------------------------

    def _check(self, target: Target) -> None:
        if target.service != self.service:
            raise RouterUnavailable(
                f"webhook {self.settings.url} routes {self.service}, not {target.describe()}"
            )

    def _known(self, target: Target) -> TrafficState:
        """What the CD acknowledged, or before that what the settings say it runs."""
        stored = self._stored(target)
        if stored is None:
            return TrafficState(stable_version=self.settings.stable_version)
        return stored

    def _stored(self, target: Target) -> TrafficState | None:
        row = self.rows.get(target)
        return None if row is None else TrafficState.model_validate_json(row["state"])

    def _record(self, target: Target, state: TrafficState) -> None:
        self.rows.put(
            target,
            {"state": state.model_dump_json(), "acknowledged_at": datetime.now(UTC).isoformat()},
        )
