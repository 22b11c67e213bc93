"""Traffic on HAProxy: two servers of one backend, weighted through the runtime API.

Blue-green under the hood: one server hosts the stable version, the other (idle) one the
version being released. A canary, a rolling batch, a blue-green switch and a feature flag's
dark launch are all the new server's share of the backend's weights (0-256); a rollback puts
the new server in ``maint``; a promotion swaps the roles, so the next release goes on the
server the previous stable version ran on. Which server hosts what, and the last state
applied, are kept in the table ``haproxy_targets`` of the store's database (shared by the
replicas on PostgreSQL): HAProxy itself only knows weights.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from string import Template
from typing import Literal
from urllib.parse import urlsplit

import sqlite_utils
from pydantic import Field, field_validator, model_validator
from sqlite_utils import Migrations

from bot.adapters.haproxy.runtime import RuntimeAPI, parse_address
from bot.adapters.schema import AdapterSettings, clashes
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.target_rows import SqliteTargetRows
from bot.domain.config import ServiceConfig
from bot.domain.observations import Target, TrafficState
from bot.domain.request import Strategy
from bot.ports.target_rows import AbstractTargetRows
from bot.ports.traffic import AbstractTrafficRouter, RouterUnavailable

FULL_WEIGHT = 256  # HAProxy's largest server weight: the finest split it offers
SHADOW_REASON = (
    "HAProxy 2.6 cannot mirror traffic (it needs SPOE and spoa-mirror); "
    "use strategy=canary, or the webhook router if your CD mirrors"
)
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # what HAProxy accepts as a proxy or server name
_PLACEHOLDERS = frozenset({"service", "env", "region"})
# ``srv_admin_state`` bits (HAProxy's SRV_ADMF_*): forced, inherited, resolver and hostname
# maintenance; forced and inherited drain. Not 0x04 (``disabled`` in the config file): it
# stays set after ``set server ... state ready`` although the server is then up and ready.
_MAINT_BITS = 0x01 | 0x02 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10

migrations = Migrations("release-bot.haproxy")
COLUMNS = ("stable_server", "versions", "applied")


@migrations()
def m001_haproxy_targets(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE haproxy_targets (
            service TEXT NOT NULL,
            env TEXT NOT NULL,
            region TEXT NOT NULL,
            stable_server TEXT NOT NULL,  -- the server hosting the stable version
            versions TEXT NOT NULL,  -- JSON {server: the version it hosts}
            applied TEXT NOT NULL,  -- the last TrafficState applied, as JSON
            PRIMARY KEY (service, env, region)
        )
        """
    )


class HAProxySettings(AdapterSettings):
    """A service whose traffic HAProxy moves between two servers of one backend.

    HAProxy moves traffic; it does not deploy. The version being released must already run
    on the idle server (the one not serving the stable version) before the release moves
    traffic to it, and the server keeps serving it after a promotion: the CD deploys, the bot
    only weighs. For a CD that deploys on the bot's request, use the webhook router.
    Shadow traffic is refused: HAProxy 2.6 cannot mirror.
    """

    router: Literal["haproxy"] = Field(
        default="haproxy", description="This router: HAProxy's runtime API."
    )
    socket: str = Field(
        description=(
            "HAProxy's stats socket at level admin: a unix socket path "
            "(stats socket /run/haproxy/admin.sock mode 600 level admin) or host:port "
            "(stats socket ipv4@127.0.0.1:9999 level admin)."
        )
    )
    backend: str = Field(
        default="$service",
        description="The backend's name; $service, $env and $region are replaced per target.",
    )
    servers: list[str] = Field(
        default_factory=lambda: ["blue", "green"],
        description="The backend's two servers the releases alternate between.",
    )
    initial_stable: str = Field(
        default="blue",
        description="The server that serves the stable version before the bot ever acted.",
    )
    stable_version: str | None = Field(
        default=None,
        description=(
            "The version initial_stable runs before the bot ever acted, so that the first "
            "release's gates know what a rollback returns to; later the bot knows."
        ),
    )
    timeout_seconds: float = Field(
        default=2.0, gt=0, le=60, description="Seconds per runtime API command (and GET)."
    )
    frontend_url: str | None = Field(
        default=None,
        description=(
            "A URL through HAProxy's frontend that must answer 2xx after the rollback "
            "rehearsal (e.g. http://10.0.0.5/healthz); none: the weights alone are checked."
        ),
    )

    @field_validator("socket")
    @classmethod
    def _socket(cls, value: str) -> str:
        try:
            parse_address(value)
        except ValueError as exc:
            raise ValueError(f"socket: {exc}") from None
        return value.strip()

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        template = Template(value)
        unknown = set(template.get_identifiers()) - _PLACEHOLDERS
        if not template.is_valid() or unknown:
            raise ValueError(
                f"backend {value!r}: use only $service, $env and $region as placeholders"
            )
        if not _NAME.match(template.substitute(service="s", env="e", region="r")):
            raise ValueError(
                f"backend {value!r}: a backend name holds only letters, digits and - _ . :"
            )
        return value

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        if len(value) != 2 or value[0] == value[1]:
            raise ValueError(
                f"servers {value!r}: name exactly two different servers of the backend, "
                'e.g. ["blue", "green"]'
            )
        for name in value:
            if not _NAME.match(name):
                raise ValueError(
                    f"servers: {name!r} is not an HAProxy server name "
                    "(letters, digits and - _ . : only)"
                )
        return value

    @field_validator("frontend_url")
    @classmethod
    def _frontend_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"frontend_url {value!r}: give an http:// or https:// URL through "
                    "HAProxy's frontend"
                )
        return value

    @model_validator(mode="after")
    def _initial_stable(self) -> HAProxySettings:
        if self.initial_stable not in self.servers:
            raise ValueError(
                f"initial_stable {self.initial_stable!r} is not one of servers "
                f"{self.servers!r}: name the server that serves the stable version now"
            )
        return self

    def problems(self, service: ServiceConfig) -> list[str]:
        """Several environments or regions on one backend would fight over its weights."""
        return clashes(self.backend, "backend", service.environments or [], service.regions or [])


@dataclass(frozen=True)
class _Live:
    """One server as HAProxy reports it."""

    weight: int
    maint: bool
    drain: bool

    @property
    def serving_weight(self) -> int:
        """The weight it takes new requests with: none in maintenance or drain."""
        return 0 if self.maint or self.drain else self.weight


@dataclass
class _Placement:
    """Which server serves the stable version, and the version each server hosts."""

    stable_server: str
    idle_server: str
    versions: dict[str, str] = field(default_factory=dict)
    applied: TrafficState | None = None


def _split(placement: _Placement, desired: TrafficState) -> dict[str, tuple[int, bool]]:
    """Each server's weight and whether it is ready (else in maint) for ``desired``."""
    if desired.new_version is None:
        return {placement.stable_server: (FULL_WEIGHT, True), placement.idle_server: (0, False)}
    new = round(FULL_WEIGHT * desired.new_weight / 100)
    return {placement.idle_server: (new, True), placement.stable_server: (FULL_WEIGHT - new, True)}


def _placed(current: _Placement, desired: TrafficState) -> _Placement:
    """Where ``desired`` puts each version: the server hosting the wanted stable version is
    the stable one (a promotion swaps the roles), the version being released goes on the
    other one."""
    stable, idle = current.stable_server, current.idle_server
    versions = dict(current.versions)
    wanted = desired.stable_version
    if wanted is not None and versions.get(stable) != wanted and versions.get(idle) == wanted:
        stable, idle = idle, stable
    if desired.new_version is not None:
        versions[idle] = desired.new_version
    if wanted is not None:
        versions[stable] = wanted
    return _Placement(stable, idle, versions, desired)


class HAProxyRouter(AbstractTrafficRouter):
    """The traffic port on HAProxy for one service (see ``HAProxySettings``).

    ``state`` reads the weights back from HAProxy; the versions, release and instances come
    from what the router last applied, since HAProxy does not know them. Before the router
    ever applied anything to a target it knows the stable version only from the
    ``stable_version`` setting; without it ``state`` says ``stable_version=None``.
    """

    def __init__(
        self, service: str, settings: HAProxySettings, rows: AbstractTargetRows | Database
    ) -> None:
        self.service = service
        self.settings = settings
        # the table ``haproxy_targets`` (a SQLite ``Database``: the table there)
        self.rows = (
            SqliteTargetRows(rows, "haproxy_targets", COLUMNS)
            if isinstance(rows, Database)
            else rows
        )
        self.api = RuntimeAPI(settings.socket, settings.timeout_seconds)
        # One change of HAProxy at a time in this process, under the rows' lock (on SQLite the
        # database's own, re-entrant), so no second lock can deadlock against a caller.
        # The tick and the commands call in outside their units of work; a slow socket call
        # still delays this process's other database work (HAProxy answers in milliseconds).

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        return SHADOW_REASON if strategy == "shadow" else None

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        found = self.settings.problems(ServiceConfig(environments=environments, regions=regions))
        return f"HAProxy for {service}: {'; '.join(found)}" if found else None

    def backend_for(self, target: Target) -> str:
        return Template(self.settings.backend).substitute(
            service=target.service, env=target.env, region=target.region
        )

    # -- the port -----------------------------------------------------------------------

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        self.apply_all({target: desired})
        return desired

    def apply_all(self, changes: Mapping[Target, TrafficState]) -> None:
        """The targets of a wave at once: what each server hosts is read and saved here (the
        database is this thread's), the runtime API commands go out side by side."""
        if not changes:
            return
        for target, desired in changes.items():
            self._check(target)
            if desired.mirror > 0:
                raise RouterUnavailable(f"{_where(target)}: {SHADOW_REASON}")
        with self.rows.lock:
            placements = {t: _placed(self._load(t), d) for t, d in changes.items()}
            failures: list[RouterUnavailable] = []
            if len(changes) == 1:
                sent = [self._sent(t, placements[t], d) for t, d in changes.items()]
            else:
                with ThreadPoolExecutor(max_workers=len(changes)) as pool:
                    futures = [
                        pool.submit(self._sent, t, placements[t], d) for t, d in changes.items()
                    ]
                sent = [future.result() for future in futures]
            for target, failure in zip(changes, sent, strict=True):
                if failure is None:
                    self._save(target, placements[target])
                else:
                    failures.append(failure)
        if failures:
            raise failures[0]

    def _sent(
        self, target: Target, placement: _Placement, desired: TrafficState
    ) -> RouterUnavailable | None:
        """Set the weights and states ``desired`` asks of HAProxy; the failure, if any."""
        backend = self.backend_for(target)
        try:
            with self._unavailable(target):
                self._live(backend)  # both servers exist before anything changes
                split = _split(placement, desired)
                # The heavier server first: traffic always has somewhere to go in between.
                for server, (weight, ready) in sorted(split.items(), key=lambda kv: -kv[1][0]):
                    self.api.run(f"set weight {backend}/{server} {weight}")
                    state = "ready" if ready else "maint"
                    self.api.run(f"set server {backend}/{server} state {state}")
        except RouterUnavailable as exc:
            return exc
        return None

    def state(self, target: Target) -> TrafficState:
        self._check(target)
        backend = self.backend_for(target)
        with self.rows.lock, self._unavailable(target):
            placement = self._load(target)
            live = self._live(backend)
        stable, idle = live[placement.stable_server], live[placement.idle_server]
        total = stable.serving_weight + idle.serving_weight
        share = round(100 * idle.serving_weight / total, 2) if total else 0.0
        applied = placement.applied
        if applied is None:
            known = placement.versions.get(placement.stable_server)
            return TrafficState(stable_version=known, new_weight=share)
        expected = _split(placement, applied)
        if all(
            live[server] == _Live(weight=weight, maint=not ready, drain=False)
            for server, (weight, ready) in expected.items()
        ):
            # Exactly what apply set: the weight asked for, not its 1/256 rounding.
            return applied
        return applied.model_copy(update={"new_weight": share})

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        """On the idle server: ready at weight 0 beside the stable one, then maint; True when
        the stable server then takes every request (and ``frontend_url`` answers 2xx).
        HAProxy's previous settings for the idle server are restored afterwards. The
        rehearsal moves weights only: ``version`` is whatever the idle server runs."""
        self._check(target)
        backend = self.backend_for(target)
        with self.rows.lock, self._unavailable(target):
            placement = self._load(target)
            stable, idle = placement.stable_server, placement.idle_server
            before = self._live(backend)[idle]
            if before.serving_weight > 0:
                raise RouterUnavailable(
                    f"cannot rehearse a rollback of {version}: the idle server "
                    f"{backend}/{idle} serves traffic (weight {before.weight}), a release is "
                    "moving traffic here; rehearse when it is done"
                )
            try:
                self.api.run(f"set weight {backend}/{idle} 0")
                self.api.run(f"set server {backend}/{idle} state ready")
                self.api.run(f"set server {backend}/{idle} state maint")
                after = self._live(backend)
                ok = after[idle].maint and after[stable].serving_weight > 0
                if ok and self.settings.frontend_url is not None:
                    ok = self._frontend_answers(self.settings.frontend_url)
            finally:
                again = "maint" if before.maint else "drain" if before.drain else "ready"
                self.api.run(f"set weight {backend}/{idle} {before.weight}")
                self.api.run(f"set server {backend}/{idle} state {again}")
        return ok

    # -- HAProxy --------------------------------------------------------------------------

    def _live(self, backend: str) -> dict[str, _Live]:
        """Both servers of ``backend``; RouterUnavailable when one is missing."""
        rows = {row.get("srv_name", ""): row for row in self.api.show_servers_state(backend)}
        live: dict[str, _Live] = {}
        for server in self.settings.servers:
            row = rows.get(server)
            if row is None:
                found = ", ".join(sorted(rows)) or "none"
                raise RouterUnavailable(
                    f"backend {backend} has no server {server} (its servers: {found}); "
                    "set servers to the backend's two servers"
                )
            try:
                admin = int(row["srv_admin_state"])
                weight = int(row["srv_uweight"])
            except (KeyError, ValueError):
                raise RouterUnavailable(
                    f"show servers state {backend}: unreadable line for {server}: {row!r}"
                ) from None
            live[server] = _Live(
                weight=weight, maint=bool(admin & _MAINT_BITS), drain=bool(admin & _DRAIN_BITS)
            )
        return live

    def _frontend_answers(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=self.settings.timeout_seconds) as answer:
                return 200 <= int(answer.status) < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _check(self, target: Target) -> None:
        if target.service != self.service:
            raise RouterUnavailable(
                f"{_where(target)}: this router is configured for {self.service} only"
            )

    @staticmethod
    @contextmanager
    def _unavailable(target: Target) -> Iterator[None]:
        """RouterUnavailable lines start with the router and the target, so they name them."""
        where = _where(target)
        try:
            yield
        except RouterUnavailable as exc:
            if str(exc).startswith(where):
                raise
            raise RouterUnavailable(f"{where}: {exc}") from exc

    # -- the table ------------------------------------------------------------------------

    def _load(self, target: Target) -> _Placement:
        row = self.rows.get(target)
        first, second = self.settings.servers
        if row is None or row["stable_server"] not in (first, second):
            # Never applied, or the servers were renamed since: the config file's roles.
            stable = self.settings.initial_stable
            known = self.settings.stable_version
            versions = {stable: known} if known is not None else {}
            return _Placement(stable, second if stable == first else first, versions)
        stable_server = row["stable_server"]
        return _Placement(
            stable_server,
            second if stable_server == first else first,
            _versions(row["versions"]),
            TrafficState.model_validate_json(row["applied"]),
        )

    def _save(self, target: Target, placement: _Placement) -> None:
        if placement.applied is None:
            return
        self.rows.put(
            target,
            {
                "stable_server": placement.stable_server,
                "versions": _dump_versions(placement.versions),
                "applied": placement.applied.model_dump_json(),
            },
        )


def _where(target: Target) -> str:
    return f"HAProxy for {target.describe()}"


def _versions(text: str) -> dict[str, str]:
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _dump_versions(versions: dict[str, str]) -> str:
    return json.dumps(versions, sort_keys=True)
