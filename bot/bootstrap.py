"""One place that wires the adapters to the ports. Entry points call ``bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.adapters import checks as checks_adapter
from bot.adapters import flags as flags_adapter
from bot.adapters import locks as locks_adapter
from bot.adapters import store as store_adapter
from bot.adapters.checks import SqliteChecks
from bot.adapters.clock import RealClock, VirtualClock
from bot.adapters.db import Database
from bot.adapters.flags import SqliteFlags
from bot.adapters.locks import SqliteLocks
from bot.adapters.no_llm import NoLLM
from bot.adapters.rule_planner import RulePlanner
from bot.adapters.series import SqliteSeries
from bot.adapters.sim_ci import SimulatedCI
from bot.adapters.sim_profiles import load_profiles
from bot.adapters.simulator import SimulatedFleet
from bot.adapters.store import SqliteReleaseStore
from bot.adapters.terminal_chat import TerminalChat
from bot.config import load_config
from bot.ports import AbstractChat, AbstractLLM
from bot.service import Services

DEFAULT_DB = Path("data/release-bot.db")
TICK_SECONDS = 10.0


@dataclass
class Wiring:
    services: Services
    database: Database
    fleet: SimulatedFleet
    virtual_clock: VirtualClock | None


def bootstrap(
    db_path: str | Path = DEFAULT_DB,
    *,
    virtual_clock: bool = True,
    clock_start: datetime | None = None,
    seed: int = 0,
    chat: AbstractChat | None = None,
    config_path: Path | None = None,
    tick_seconds: float = TICK_SECONDS,
    llm: AbstractLLM | None = None,
) -> Wiring:
    """The embedded defaults: SQLite store, flags, locks and CI evidence, the simulated
    fleet for metrics and traffic, the rule planner, and the terminal as the chat. ``llm``:
    the agent's model (``llm_from_env``); none means the rules do every agent step."""
    database = Database(db_path)
    for migrate in (
        store_adapter.apply_migrations,
        flags_adapter.apply_migrations,
        checks_adapter.apply_migrations,
        locks_adapter.apply_migrations,
    ):
        migrate(database)
    store = SqliteReleaseStore(database)
    clock = VirtualClock(store, clock_start) if virtual_clock else RealClock()
    flags = SqliteFlags(database)
    checks = SqliteChecks(database)
    fleet = SimulatedFleet(database, load_profiles(), flags, seed=seed)
    services = Services(
        config=load_config(config_path),
        store=store,
        clock=clock,
        metrics=fleet,
        traffic=fleet,
        flags=flags,
        checks=checks,
        chat=chat or TerminalChat(),
        planner=RulePlanner(tick_seconds),
        locks=SqliteLocks(database),
        series=SqliteSeries(database),
        tick_seconds=tick_seconds,
        ci=SimulatedCI(checks, fleet),
        llm=llm or NoLLM(),
    )
    return Wiring(
        services=services,
        database=database,
        fleet=fleet,
        virtual_clock=clock if isinstance(clock, VirtualClock) else None,
    )
