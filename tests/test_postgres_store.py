"""A whole release on PostgreSQL: ``--db postgresql://…`` or ``RELEASE_BOT_DB`` picks the
PostgreSQL store, SQLite stays the default, and an address that does not answer is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest

from bot.adapters.postgres.database import PostgresDatabase
from bot.adapters.postgres.store import PostgresReleaseStore
from bot.bootstrap import Stores, postgres_migrations, postgres_stores
from bot.ports.store import DatabaseBusy
from tests.conftest import cli, report_of
from tests.domain_helpers import T0
from tests.test_store_contract import release, side_by_side

START = "2026-11-24T14:00:00Z"
LINE = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout; fix refund rounding"'


def test_a_whole_release_runs_on_postgresql_and_its_audit_chain_verifies(
    postgres_url: str, tmp_path: Path, contract_schema: dict[str, Any]
) -> None:
    out = tmp_path / "report.json"
    proc = cli("run", LINE, "--approve-as", "alice", "--db", postgres_url,
               "--clock-start", START, "--json-out", str(out))  # fmt: skip
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    report = report_of(out)
    jsonschema.validate(report, contract_schema)
    assert report["status"] == "completed"
    # Another process reads it from the database named by the environment alone.
    listed = cli("list", env={"RELEASE_BOT_DB": postgres_url})
    assert listed.returncode == 0, listed.stderr
    assert report["release_id"][:8] in listed.stdout and "completed" in listed.stdout
    verified = cli("audit", "verify", "--db", postgres_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = cli("audit", "export", "--db", postgres_url)
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == len(report["compliance"]["audit_trail"])


def test_a_postgresql_server_that_does_not_answer_is_one_line(postgres_server: Any) -> None:
    closed = "postgresql://postgres@127.0.0.1:1/release_bot"
    proc = cli("list", "--db", closed)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: cannot open the PostgreSQL database " + closed)
    assert "check the URL" in line


def test_a_database_that_does_not_exist_and_a_password_are_named_not_shown(
    postgres_server: Any,
) -> None:
    missing = postgres_server.url("no_such_db").replace("postgres@", "postgres:s3cret@")
    proc = cli("list", env={"RELEASE_BOT_DB": missing})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert "no_such_db" in line and "does not exist" in line
    assert "s3cret" not in line and "postgres:***@" in line


def test_serve_on_a_postgresql_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    closed = "postgresql://postgres@127.0.0.1:1/release_bot"
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "RELEASE_BOT_DB": closed,
           "PORT": "0"}  # fmt: skip
    proc = cli("serve", "--env-file", str(tmp_path / "none.env"), env=env, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: RELEASE_BOT_DB: cannot open the PostgreSQL database {closed}")


def test_a_row_lock_held_past_the_busy_timeout_is_one_clear_error(postgres_url: str) -> None:
    stores = postgres_stores(postgres_url, None)
    stores.store.add(release())
    impatient = PostgresDatabase(postgres_url, busy_timeout=0.5)
    moved = PostgresReleaseStore(impatient).get("rel-1")
    moved.approve("alice", T0)
    with psycopg.connect(postgres_url) as holder:  # another process, mid-transaction
        holder.execute("SELECT * FROM releases WHERE id = 'rel-1' FOR UPDATE")
        with pytest.raises(DatabaseBusy, match=r"stayed locked by another release-bot process"):
            PostgresReleaseStore(impatient).save(moved)
    assert moved.revision == 0  # nothing saved: the caller may retry
    assert stores.store.get("rel-1").status == "awaiting_approval"
    PostgresReleaseStore(impatient).save(moved)  # the lock gone, the same save goes through
    impatient.close()
    assert stores.shared is not None
    stores.shared.close()


def test_processes_starting_together_on_a_new_database_migrate_it_once(postgres_url: str) -> None:
    opened = side_by_side(*[lambda: postgres_stores(postgres_url, None)] * 3)
    assert all(isinstance(each, Stores) for each in opened), opened
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute("SELECT migration_set, name FROM _migrations").fetchall()
    expected = [(each.name, name) for each in postgres_migrations() for name, _ in each.steps]
    assert sorted(applied) == sorted(expected)
    for each in opened:
        assert isinstance(each, Stores) and each.shared is not None
        each.shared.close()
