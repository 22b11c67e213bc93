from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from bot.adapters.sqlite.database import Database
from bot.bootstrap import EMBEDDED_MIGRATIONS, Stores, postgres_stores
from bot.domain.contract import contract_json_schema
from tests.cli_runner import ROOT as ROOT  # re-exported: tests import them from here
from tests.cli_runner import cli as cli
from tests.cli_runner import stop_zygote
from tests.postgres_server import PostgresServer, PostgresUnavailable

# Properties are checked, never timed: a busy machine must not fail a test.
settings.register_profile("release-bot", deadline=None)
settings.load_profile("release-bot")


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_zygote()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real token or setting leaks into a test."""
    for key in list(os.environ):
        if key.startswith(("SLACK_", "ANTHROPIC_", "RELEASE_BOT_")):
            monkeypatch.delenv(key)
    yield


def migrated_db(path: str | Path = ":memory:") -> Database:
    """A database with every embedded table, migrated as ``bootstrap`` does it."""
    database = Database(path)
    database.migrate(*EMBEDDED_MIGRATIONS)
    return database


@pytest.fixture
def fresh_db() -> Iterator[Database]:
    database = migrated_db()
    yield database
    database.close()


@pytest.fixture(scope="session")
def contract_schema() -> dict[str, Any]:
    return contract_json_schema()


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL per test process (per xdist worker), stopped at the end; a test
    that asks for it fails in one line when it cannot start, it is never skipped."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the test server."""
    return postgres_server.create_database()


def postgres_stores_for(request: pytest.FixtureRequest) -> Stores:
    """The store's ports on a fresh PostgreSQL database, closed after the test: for a port's
    fixture parametrized over its adapters."""
    stores = postgres_stores(request.getfixturevalue("postgres_url"), None)
    assert stores.shared is not None
    request.addfinalizer(stores.shared.close)
    return stores
