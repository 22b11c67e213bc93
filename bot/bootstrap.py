"""The one place that wires adapters to ports: the store, the fleet, the CI, the LLM, the chat
(the terminal, or Slack with its threads and App Home) and the ticker. Entry points (the CLI,
``serve``, the benchmarks, the tests) call ``bootstrap`` and use what it returns as is.

Every table is migrated here, once, before any adapter touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.adapters.clock import RealClock, VirtualClock
from bot.adapters.haproxy import router as haproxy_router
from bot.adapters.haproxy.router import HAProxyRouter, HAProxySettings
from bot.adapters.llm.none import NoLLM
from bot.adapters.llm.rules import RulePlanner
from bot.adapters.llm.settings import read_settings
from bot.adapters.pagerduty.notify import PagerDutyNotifier, PagerDutySettings
from bot.adapters.per_service import ServiceMetrics, ServiceRouters
from bot.adapters.postgres import is_postgres_url
from bot.adapters.prometheus.metrics import PrometheusMetrics, PrometheusSettings
from bot.adapters.schema import AdapterSettings
from bot.adapters.sim.ci import SimulatedCI
from bot.adapters.sim.fleet import (
    SimulatedFleet,
    SimulatorMetricsSettings,
    SimulatorRouterSettings,
)
from bot.adapters.sim.profiles import Profiles, load_profiles
from bot.adapters.sqlite import audit as sqlite_audit
from bot.adapters.sqlite import checks as sqlite_checks
from bot.adapters.sqlite import evidence as sqlite_evidence
from bot.adapters.sqlite import flags as sqlite_flags
from bot.adapters.sqlite import fleet_state as sqlite_fleet_state
from bot.adapters.sqlite import leases as sqlite_leases
from bot.adapters.sqlite import locks as sqlite_locks
from bot.adapters.sqlite import notifications as sqlite_notifications
from bot.adapters.sqlite import seen as sqlite_seen
from bot.adapters.sqlite import series as sqlite_series
from bot.adapters.sqlite import store as sqlite_store
from bot.adapters.sqlite.audit import SqliteAuditTrail
from bot.adapters.sqlite.checks import SqliteChecks
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.evidence import SqliteEvidence
from bot.adapters.sqlite.flags import SqliteFlags
from bot.adapters.sqlite.fleet_state import SqliteFleetState
from bot.adapters.sqlite.leases import SqliteLeases
from bot.adapters.sqlite.locks import SqliteLocks
from bot.adapters.sqlite.notifications import SqliteNotificationLog
from bot.adapters.sqlite.seen import SqliteSeenRequests
from bot.adapters.sqlite.series import SqliteSeries
from bot.adapters.sqlite.store import SqliteReleaseStore
from bot.adapters.sqlite.target_rows import SqliteTargetRows
from bot.adapters.statuspage.notify import StatuspageNotifier, StatuspageSettings
from bot.adapters.terminal import TerminalChat
from bot.adapters.webhook import router as webhook_router
from bot.adapters.webhook.router import WebhookRouter, WebhookSettings
from bot.config import DEFAULT_CONFIG, ConfigError, load_config
from bot.domain.config import AdapterTable, Config, ServiceConfig
from bot.domain.evidence import is_pem_text
from bot.domain.notify import THREAD, told_line
from bot.ports.audit import AbstractAuditTrail
from bot.ports.chat import AbstractChat
from bot.ports.checks import AbstractChecks
from bot.ports.evidence import AbstractEvidence
from bot.ports.flags import AbstractFlags
from bot.ports.fleet_state import AbstractFleetState
from bot.ports.leases import AbstractLeases, holder_id
from bot.ports.llm import AbstractLLM
from bot.ports.locks import AbstractLocks
from bot.ports.metrics import AbstractMetrics
from bot.ports.notifications import AbstractNotificationLog
from bot.ports.notify import AbstractNotifier, Stakeholders
from bot.ports.seen import AbstractSeenRequests
from bot.ports.series import AbstractSeries
from bot.ports.store import AbstractReleaseStore
from bot.ports.target_rows import AbstractTargetRows
from bot.ports.traffic import AbstractTrafficRouter
from bot.presenters import agent_line
from bot.scheduler import Ticker
from bot.service import Services, report
from bot.service.notifications import deliveries
from bot.settings import audit_key_from_env
from bot.telemetry import Telemetry

if TYPE_CHECKING:  # imported when Slack is wired: slack_sdk costs every CLI start a quarter second
    from slack_sdk import WebClient

    from bot.adapters.postgres.database import PgMigrations, PostgresDatabase
    from bot.slack.chat import SlackChat
    from bot.slack.context import SlackServices

DEFAULT_DB = Path("data/release-bot.db")
TICK_SECONDS = 10.0
# The embedded tables, each migrated once at start-up (Slack's threads when Slack is wired).
EMBEDDED_MIGRATIONS = (
    sqlite_store.migrations,
    sqlite_audit.migrations,  # after the store's: it chains its events
    sqlite_flags.migrations,
    sqlite_checks.migrations,
    sqlite_evidence.migrations,
    sqlite_locks.migrations,
    sqlite_leases.migrations,
    sqlite_series.migrations,
    sqlite_fleet_state.migrations,
    haproxy_router.migrations,
    webhook_router.migrations,
    sqlite_seen.migrations,
    sqlite_notifications.migrations,
)
# Each port's adapters by the name a service's table gives them, with their settings schema.
METRICS_PROVIDERS: dict[str, type[AdapterSettings]] = {
    "prometheus": PrometheusSettings,
    "simulator": SimulatorMetricsSettings,
}
TRAFFIC_ROUTERS: dict[str, type[AdapterSettings]] = {
    "haproxy": HAProxySettings,
    "webhook": WebhookSettings,
    "simulator": SimulatorRouterSettings,
}
_ADAPTERS = {"metrics": ("provider", METRICS_PROVIDERS), "traffic": ("router", TRAFFIC_ROUTERS)}
# The notification targets a service may name, each a table with its adapter's settings.
NOTIFY_TARGETS: dict[str, type[AdapterSettings]] = {
    "pagerduty": PagerDutySettings,
    "statuspage": StatuspageSettings,
}


@dataclass(frozen=True)
class SlackOptions:
    """Slack as the chat: the Web API client's token and URL, where releases started outside
    Slack are posted, and the pacing of posts and App Home refreshes."""

    token: str
    api_url: str
    default_channel: str | None
    post_interval: float
    home_interval: float


@dataclass(frozen=True)
class Stores:
    """The store's ports on one database: the embedded SQLite file, or PostgreSQL; with the
    simulated fleet's state and what the HAProxy and webhook routers applied per target."""

    store: AbstractReleaseStore
    audit: AbstractAuditTrail
    flags: AbstractFlags
    checks: AbstractChecks
    evidence: AbstractEvidence
    locks: AbstractLocks
    leases: AbstractLeases
    series: AbstractSeries
    seen: AbstractSeenRequests
    notifications: AbstractNotificationLog
    fleet: AbstractFleetState
    haproxy_targets: AbstractTargetRows
    webhook_state: AbstractTargetRows
    shared: PostgresDatabase | None = None  # the PostgreSQL database, when it holds them


def sqlite_stores(database: Database, audit_key: bytes | None) -> Stores:
    """The store's ports on a SQLite database ``bootstrap`` migrated."""
    return Stores(
        store=SqliteReleaseStore(database, audit_key),
        audit=SqliteAuditTrail(database, audit_key),
        flags=SqliteFlags(database),
        checks=SqliteChecks(database),
        evidence=SqliteEvidence(database),
        locks=SqliteLocks(database),
        leases=SqliteLeases(database),
        series=SqliteSeries(database),
        seen=SqliteSeenRequests(database),
        notifications=SqliteNotificationLog(database),
        fleet=SqliteFleetState(database),
        haproxy_targets=SqliteTargetRows(database, "haproxy_targets", haproxy_router.COLUMNS),
        webhook_state=SqliteTargetRows(database, "webhook_state", webhook_router.COLUMNS),
    )


def postgres_migrations() -> tuple[PgMigrations, ...]:
    """The store's tables on PostgreSQL (RELEASE_BOT_DB=postgresql://…): the same named steps
    as their SQLite sets, the simulator's and the routers' included (Slack's threads and App
    Home users when Slack is wired). Imported here, when chosen: psycopg costs every other
    start a quarter second."""
    from bot.adapters.postgres import (
        audit,
        checks,
        evidence,
        flags,
        fleet_state,
        leases,
        locks,
        notifications,
        seen,
        series,
        store,
        target_rows,
    )

    return (
        store.migrations,
        audit.migrations,  # after the store's: it adds the chain's columns to its events
        flags.migrations,
        checks.migrations,
        evidence.migrations,
        locks.migrations,
        leases.migrations,
        series.migrations,
        fleet_state.migrations,
        target_rows.haproxy_migrations,
        target_rows.webhook_migrations,
        seen.migrations,
        notifications.migrations,
    )


def postgres_stores(url: str, audit_key: bytes | None) -> Stores:
    """The store's ports on the PostgreSQL database at ``url``, migrated; StoreUnavailable
    (one line) when it cannot be reached."""
    from bot.adapters.postgres import audit as pg_audit
    from bot.adapters.postgres import checks as pg_checks
    from bot.adapters.postgres import evidence as pg_evidence
    from bot.adapters.postgres import flags as pg_flags
    from bot.adapters.postgres import fleet_state as pg_fleet_state
    from bot.adapters.postgres import leases as pg_leases
    from bot.adapters.postgres import locks as pg_locks
    from bot.adapters.postgres import notifications as pg_notifications
    from bot.adapters.postgres import seen as pg_seen
    from bot.adapters.postgres import series as pg_series
    from bot.adapters.postgres import store as pg_store
    from bot.adapters.postgres import target_rows as pg_target_rows
    from bot.adapters.postgres.database import PostgresDatabase

    database = PostgresDatabase(url)
    try:
        database.migrate(*postgres_migrations())
    except BaseException:
        database.close()
        raise
    return Stores(
        store=pg_store.PostgresReleaseStore(database, audit_key),
        audit=pg_audit.PostgresAuditTrail(database, audit_key),
        flags=pg_flags.PostgresFlags(database),
        checks=pg_checks.PostgresChecks(database),
        evidence=pg_evidence.PostgresEvidence(database),
        locks=pg_locks.PostgresLocks(database),
        leases=pg_leases.PostgresLeases(database),
        series=pg_series.PostgresSeries(database),
        seen=pg_seen.PostgresSeenRequests(database),
        notifications=pg_notifications.PostgresNotificationLog(database),
        fleet=pg_fleet_state.PostgresFleetState(database),
        haproxy_targets=pg_target_rows.PostgresTargetRows(
            database, "haproxy_targets", haproxy_router.COLUMNS
        ),
        webhook_state=pg_target_rows.PostgresTargetRows(
            database, "webhook_state", webhook_router.COLUMNS
        ),
        shared=database,
    )


@dataclass(frozen=True)
class Wiring:
    services: Services
    database: Database  # SQLite: everything; with PostgreSQL, an empty one in memory
    fleet: SimulatedFleet
    virtual_clock: VirtualClock | None
    ticker: Ticker
    slack: SlackServices | None = None  # the listeners' context, when Slack is the chat
    shared: PostgresDatabase | None = None  # the store, when RELEASE_BOT_DB is PostgreSQL

    def close(self) -> None:
        """Stop the ticker, finish Slack's pending work, close the databases."""
        try:
            self.ticker.stop()
            if self.slack is not None:
                self.slack.close()
        finally:
            self.database.close()
            if self.shared is not None:
                self.shared.close()


def llm_from_env(env_file: str | Path | None = ".env") -> AbstractLLM:
    """The agent's model: Anthropic when ``ANTHROPIC_API_KEY`` is set, else ``NoLLM`` (the rules
    do every agent step and no API call is ever made). Without a key the SDK is not even
    imported: it costs over a second at every CLI start."""
    settings = read_settings(env_file)
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        return NoLLM()
    from bot.adapters.llm.anthropic import AnthropicLLM

    return AnthropicLLM.from_settings(settings)


@dataclass(frozen=True)
class Targets:
    """One service's adapters as the config chose them, their settings checked."""

    metrics: AdapterSettings | None
    traffic: AdapterSettings | None
    notify: tuple[AdapterSettings, ...] = ()  # PagerDuty, Statuspage: as the service names them


def read_targets(config: Config, where: Path | str = "data/services.toml") -> dict[str, Targets]:
    """Every service's metrics provider and traffic router, each table checked against its
    adapter's own schema, and the settings that go with them (the simulated CI only on the
    simulator, a signing key that is there). Raises ConfigError with one line per mistake."""
    problems: list[str] = []
    out: dict[str, Targets] = {}
    for service in sorted(config.services):
        svc, own = config.for_service(service), config.services[service]
        chosen: dict[str, AdapterSettings | None] = {}
        for table in ("metrics", "traffic"):
            # where the table was written: the service's own, or the defaults it inherits
            place = f"services.{service}" if table in own.model_fields_set else "defaults"
            chosen[table] = _settings(svc, table, place, problems)
        out[service] = Targets(
            metrics=chosen["metrics"],
            traffic=chosen["traffic"],
            notify=_notify_settings(svc, service, own, problems),
        )
        if (
            svc.ci == "simulator"
            and svc.metrics is not None
            and svc.metrics.provider != "simulator"
        ):
            problems.append(
                f"services.{service}.ci: the simulated CI serves only services on the "
                f"simulator, and {service}'s metrics come from {svc.metrics.provider}: remove "
                "ci and upload its evidence (`release-bot evidence add`)"
            )
        key = svc.signing_key
        if key and not is_pem_text(key) and not Path(key).is_file():
            problems.append(
                f"services.{service}.signing_key: {key} is not a file; give the path of the "
                "PEM public key signatures verify against, or the PEM text itself"
            )
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in dict.fromkeys(problems)))
    return out


def _settings(
    service: ServiceConfig, table: str, place: str, problems: list[str]
) -> AdapterSettings | None:
    """``service``'s ``table`` ("metrics" or "traffic") checked against its adapter's schema
    and the rest of its config; each mistake appended to ``problems``."""
    key, registry = _ADAPTERS[table]
    given: AdapterTable | None = getattr(service, table)
    if given is None:
        return None  # the release is refused with what to add (Config.refusal)
    name = str(getattr(given, key))
    where = f"{place}.{table}"
    schema = registry.get(name)
    if schema is None:
        problems.append(f"{where}.{key}: {name!r} is unknown; use one of {', '.join(registry)}")
        return None
    try:
        settings = schema.model_validate({key: name, **given.settings()})
    except ValidationError as exc:
        problems += [
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']} ({name})"
            for err in exc.errors()
        ]
        return None
    problems += [f"{where}: {problem}" for problem in settings.problems(service)]
    return settings


def _notify_settings(
    service: ServiceConfig, name: str, own: ServiceConfig, problems: list[str]
) -> tuple[AdapterSettings, ...]:
    """The service's notification targets, each checked against its adapter's schema."""
    out: list[AdapterSettings] = []
    for table, schema in NOTIFY_TARGETS.items():
        given: AdapterTable | None = getattr(service, table)
        if given is None:
            continue
        where = f"services.{name}.{table}" if table in own.model_fields_set else f"defaults.{table}"
        try:
            settings = schema.model_validate(given.settings())
        except ValidationError as exc:
            problems += [
                f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            ]
            continue
        problems += [f"{where}: {problem}" for problem in settings.problems(service)]
        out.append(settings)
    return tuple(out)


def _stakeholders(
    config: Config, chosen: dict[str, Targets], slack: WebClient | None
) -> Stakeholders:
    """Who hears of each service's releases: the thread and the incident channel when Slack
    is the chat (the terminal reaches no one), PagerDuty and Statuspage where configured."""
    by_service: dict[str, list[AbstractNotifier]] = {}
    for service, targets in chosen.items():
        notifiers: list[AbstractNotifier] = []
        channel = config.for_service(service).incident_channel
        if slack is not None and channel:
            from bot.adapters.slack.notify import SlackIncidentChannel

            notifiers.append(SlackIncidentChannel(slack, channel))
        for settings in targets.notify:
            match settings:
                case PagerDutySettings():
                    notifiers.append(PagerDutyNotifier(settings))
                case StatuspageSettings():
                    notifiers.append(StatuspageNotifier(settings))
        by_service[service] = notifiers
    return Stakeholders(thread=THREAD if slack is not None else None, by_service=by_service)


def _adapters(
    config: Config, chosen: dict[str, Targets], stores: Stores, fleet: SimulatedFleet
) -> tuple[ServiceMetrics, ServiceRouters]:
    """The per-service metrics providers and routers; the simulated fleet only where the
    config names it."""
    routers: dict[str, AbstractTrafficRouter] = {}
    for service, targets in chosen.items():
        match targets.traffic:
            case SimulatorRouterSettings():
                routers[service] = fleet
            case HAProxySettings() as haproxy:
                routers[service] = HAProxyRouter(service, haproxy, stores.haproxy_targets)
            case WebhookSettings() as webhook:
                routers[service] = WebhookRouter(service, webhook, stores.webhook_state)
    router = ServiceRouters(routers, config.source)
    providers: dict[str, AbstractMetrics] = {}
    for service, targets in chosen.items():
        match targets.metrics:
            case SimulatorMetricsSettings() as simulated:
                providers[service] = fleet
                fleet.scrape_intervals[service] = simulated.scrape_interval
            case PrometheusSettings() as prometheus:
                providers[service] = PrometheusMetrics(
                    service, prometheus, config.for_service(service), router.state
                )
    return ServiceMetrics(providers, config.source), router


def bootstrap(
    db_path: str | Path = DEFAULT_DB,
    *,
    virtual_clock: bool = True,
    clock_start: datetime | None = None,
    seed: int = 0,
    chat: AbstractChat | None = None,
    slack: SlackOptions | None = None,
    config_path: Path | None = None,
    tick_seconds: float = TICK_SECONDS,
    llm: AbstractLLM | None = None,
    audit_key: bytes | None = None,
) -> Wiring:
    """The embedded defaults: SQLite store, flags, locks and CI evidence, each service's
    metrics provider and traffic router as the config names them (the simulated fleet where
    it says ``simulator``), the rule planner, and the terminal as the chat (``chat``
    replaces it; ``slack`` puts Slack there). ``llm``: the agent's model (``llm_from_env``);
    none means the rules do every agent step. ``audit_key``: signs the audit chain; none reads
    ``RELEASE_BOT_AUDIT_KEY`` (unset: hashes only). ``db_path`` a ``postgresql://`` URL: the
    store's ports on PostgreSQL, the simulated fleet's and the routers' state included."""
    key = audit_key if audit_key is not None else audit_key_from_env()
    config = load_config(config_path)
    targets = read_targets(config, config_path or DEFAULT_CONFIG)  # before anything opens
    profiles = load_profiles()
    on_postgres = is_postgres_url(str(db_path))
    stores = postgres_stores(str(db_path), key) if on_postgres else None
    database = Database(":memory:" if on_postgres else db_path)
    try:
        if not on_postgres:  # on PostgreSQL nothing lives in it: no table to make
            database.migrate(*EMBEDDED_MIGRATIONS)
        return _wire(database, stores or sqlite_stores(database, key), config, targets, profiles,
                     virtual_clock, clock_start, seed, chat, slack, tick_seconds, llm)  # fmt: skip
    except BaseException:
        database.close()
        if stores is not None and stores.shared is not None:
            stores.shared.close()
        raise


def _wire(
    database: Database,
    stores: Stores,
    config: Config,
    targets: dict[str, Targets],
    profiles: Profiles,
    virtual_clock: bool,
    clock_start: datetime | None,
    seed: int,
    chat: AbstractChat | None,
    slack: SlackOptions | None,
    tick_seconds: float,
    llm: AbstractLLM | None,
) -> Wiring:
    store, flags, checks, series = stores.store, stores.flags, stores.checks, stores.series
    clock = VirtualClock(store, clock_start) if virtual_clock else RealClock()
    fleet = SimulatedFleet(stores.fleet, profiles, flags, seed=seed)
    metrics, traffic = _adapters(config, targets, stores, fleet)
    slack_parts = (
        _slack_parts(slack, database, stores, lambda release_id: _report(services, release_id))
        if slack is not None
        else None
    )  # the chat reports through ``services``, which it is a part of: bound once built
    services = Services(
        config=config,
        store=store,
        clock=clock,
        metrics=metrics,
        traffic=traffic,
        flags=flags,
        checks=checks,
        evidence=stores.evidence,
        chat=slack_parts.chat if slack_parts else chat or TerminalChat(),
        planner=RulePlanner(
            tick_seconds,
            {
                name: bake
                for name in config.services
                if (bake := config.for_service(name).bake_minutes) is not None
            },
            {name: config.for_service(name).on_metrics_loss for name in config.services},
            {
                name: longest
                for name in config.services
                if (longest := config.for_service(name).max_bake_minutes) is not None
            },
        ),
        locks=stores.locks,
        series=series,
        llm=llm or NoLLM(),
        tick_seconds=tick_seconds,
        ci=SimulatedCI(checks, fleet),
        leases=stores.leases,
        process_id=holder_id(),
        audit=stores.audit,
        stakeholders=_stakeholders(config, targets, slack_parts.client if slack_parts else None),
        notification_log=stores.notifications,
    )
    virtual = clock if isinstance(clock, VirtualClock) else None
    return Wiring(
        services=services,
        database=database,
        fleet=fleet,
        virtual_clock=virtual,
        ticker=Ticker(services, virtual, Telemetry(), services.leases),
        slack=slack_parts.context(services) if slack_parts else None,
        shared=stores.shared,
    )


def _report(services: Services, release_id: str) -> tuple[str, str]:
    """The release's report for its Slack thread: (contract JSON, summary)."""
    contract = report(services, release_id)
    release = services.store.get(release_id)
    summary = contract.summary  # the agent's when it wrote one for this outcome
    if release.narration is not None:
        summary += f"\n_{agent_line(release.narration)}_"
    summary += f"\n{told_line(deliveries(services, release_id))}"
    return contract.model_dump_json(indent=2), summary


@dataclass
class _SlackParts:
    chat: SlackChat
    client: WebClient  # the incident channels are posted to with it
    context: Callable[[Services], SlackServices]


def _slack_parts(
    options: SlackOptions,
    database: Database,
    stores: Stores,
    report_for: Callable[[str], tuple[str, str]],
) -> _SlackParts:
    """Slack as the chat: its threads table, the Web API client, the App Home that follows
    every delivered batch (its users in the database), and the pool for the work the
    listeners do after their ack."""
    from bot.slack import chat as slack_chat
    from bot.slack import home as slack_home
    from bot.slack.context import SlackServices, background_pool
    from bot.slack.home import HomeTabs, current_home

    client = slack_chat.web_client(options.token, options.api_url)
    threads: slack_chat.AbstractSlackThreads
    users: slack_home.AbstractHomeUsers
    if stores.shared is not None:  # on PostgreSQL: the replicas share threads and users
        from bot.slack import pg_home, pg_threads

        stores.shared.migrate(pg_threads.migrations, pg_home.migrations)
        threads = pg_threads.PostgresSlackThreads(stores.shared)
        users = pg_home.PostgresHomeUsers(stores.shared)
    else:
        database.migrate(slack_chat.migrations, slack_home.migrations)
        threads = slack_chat.SqliteSlackThreads(database)
        users = slack_home.SqliteHomeUsers(database)
    background = background_pool()
    home = HomeTabs(
        lambda user, view: client.views_publish(user_id=user, view=view),
        lambda: current_home(stores.store),
        options.home_interval,
        users=users,
        submit=background.submit,
    )
    chat = slack_chat.SlackChat(
        client,
        threads,
        stores.series,
        report_for,
        default_channel=options.default_channel,
        post_interval=options.post_interval,
        observers=[lambda _release: home.changed()],
    )
    return _SlackParts(
        chat,
        client,
        lambda services: SlackServices(services, chat, threads, home, background, stores.seen),
    )
