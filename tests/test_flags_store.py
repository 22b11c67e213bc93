from pathlib import Path

import pytest

from bot.adapters.sqlite import flags as sqlite_flags
from bot.adapters.sqlite.database import Database
from bot.adapters.sqlite.flags import SqliteFlags
from bot.domain.flags import FlagState
from bot.ports.flags import AbstractFlags
from tests.conftest import migrated_db, postgres_stores_for
from tests.fakes import FakeFlags

FLAG = FlagState(
    name="new_checkout",
    service="payments-api",
    type="release",
    percentage=12.5,
    kill_switch=True,
    killed=False,
    rules=["country in [US, CA]"],
    segments=["beta-testers"],
    overrides=["qa@acme.test=on"],
)


@pytest.fixture(params=["sqlite", "postgres", "fake"])
def flags(request: pytest.FixtureRequest) -> AbstractFlags:
    if request.param == "postgres":
        return postgres_stores_for(request).flags
    return SqliteFlags(migrated_db()) if request.param == "sqlite" else FakeFlags()


def test_put_then_get_round_trips_every_field(flags: AbstractFlags) -> None:
    flags.put(FLAG)
    assert flags.get("new_checkout") == FLAG


def test_unknown_flag_is_none(flags: AbstractFlags) -> None:
    assert flags.get("nope") is None


def test_put_replaces_the_flag(flags: AbstractFlags) -> None:
    flags.put(FLAG)
    flags.put(FLAG.model_copy(update={"percentage": 50.0, "killed": True, "rules": []}))
    got = flags.get("new_checkout")
    assert got is not None
    assert (got.percentage, got.killed, got.rules, got.effective_percentage) == (50, True, [], 0)


def test_flags_survive_a_new_adapter_and_connection(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    first = migrated_db(path)
    SqliteFlags(first).put(FLAG)
    first.close()
    again = Database(path)
    assert SqliteFlags(again).get("new_checkout") == FLAG


def test_migrations_apply_once() -> None:
    database = Database()
    database.migrate(sqlite_flags.migrations)
    database.migrate(sqlite_flags.migrations)
    SqliteFlags(database).put(FLAG)
    applied = [
        row["name"]
        for row in database.db["_sqlite_migrations"].rows_where(
            "migration_set = ?", ["release-bot.flags"]
        )
    ]
    assert applied == ["m001_flags"]
    assert database.db["flags"].count == 1
