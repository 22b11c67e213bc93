"""Three replicas on one PostgreSQL and one (fake) Slack, SIGKILLed at random and restarted,
carry simulated releases (some faulty: they roll back) to their end: every
release final, no action done twice, no Slack thread opened twice, the audit chain verifying.

Nothing asserts on time: waits are on conditions, with hang guards."""

from __future__ import annotations

import io
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from bench.chaos.node import CLOCK_START
from bot.adapters.terminal import TerminalChat
from bot.bootstrap import bootstrap
from bot.domain.observations import Target, TrafficState
from bot.domain.release import Release
from bot.service import start_release
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import service_table

ROOT = Path(__file__).resolve().parents[1]
SERVICES = [f"svc-{i:02}" for i in range(9)]
FAULTY = {"svc-02", "svc-05", "svc-08"}  # they break: rolled back
REPLICAS = 3
KILLS = 3
HANG_GUARD = 120.0  # seconds: stops a run that would hang, never judges speed
FINAL = ("completed", "rolled_back", "failed")
CONFIG = """
[defaults]
environments = ["prod"]
regions = ["us-east-1"]
strategy = "canary"
guardrails = ["error_rate<1%", "p95<300ms", "availability>=99.5%"]
approvers = ["alice"]
instances = 4
bake_minutes = 2  # short stages: the run stays cheap
""" + "".join(service_table(s) for s in SERVICES)


VERSION = "1.1.0"


class Replica:
    """A ``bench.replicas_node`` process; ``ready`` waits until it listens."""

    def __init__(self, args: list[str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.replicas_node", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ready(self) -> None:
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], HANG_GUARD)
        line = self.popen.stdout.readline() if ready else ""
        assert line.startswith("port "), self.stop()

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.communicate(timeout=HANG_GUARD)

    def stop(self) -> str:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        _, err = self.popen.communicate(timeout=HANG_GUARD)
        return err


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


def start_releases(url: str, config: Path) -> list[str]:
    """Start one release of every service, as the CLI would (low risk: approved by the gates),
    the faulty ones' fault injected once, in the shared database: every replica sees it."""
    wiring = bootstrap(url, chat=TerminalChat(io.StringIO()), config_path=config)
    ids: list[str] = []
    try:
        for service in sorted(FAULTY):
            wiring.fleet.inject(service, VERSION, ["errors:8x"])
        for service in SERVICES:
            started = start_release(
                wiring.services,
                f'{service} {VERSION} risk=low ticket=CHG-1 changes="fix"',
                "alice",
            )
            assert isinstance(started, Release), started
            ids.append(started.id)
    finally:
        wiring.close()
    return ids


def test_three_replicas_killed_at_random_finish_every_release_once(
    tmp_path: Path, postgres_url: str, fake: FakeSlack
) -> None:
    config = tmp_path / "services.toml"
    config.write_text(CONFIG)
    args = ["--db", postgres_url, "--config", str(config), "--slack-url", fake.url]
    args += ["--pace", "0.02", "--tick-seconds", "30"]
    rng = random.Random(18)
    replicas = [Replica(args) for _ in range(REPLICAS)]
    try:
        for replica in replicas:
            replica.ready()
        start_releases(postgres_url, config)
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 1.5))  # a random moment of the work, not a bound
            victim = rng.randrange(REPLICAS)
            replicas[victim].kill()
            replicas[victim] = Replica(args)  # restarted, joining when it is up
        deadline = time.monotonic() + HANG_GUARD
        while rows(postgres_url, "SELECT id FROM releases WHERE active = 1"):
            assert time.monotonic() < deadline, "releases left unfinished"
            time.sleep(0.2)
        while rows(postgres_url, "SELECT id FROM events WHERE id NOT IN"
                   " (SELECT event_id FROM deliveries)"):  # fmt: skip
            assert time.monotonic() < deadline, "events left undelivered"
            time.sleep(0.2)
    finally:
        errors = [replica.stop() for replica in replicas]
    assert not [e for e in errors if "Traceback" in e], errors

    statuses = {
        str(name): str(status)
        for name, status in rows(
            postgres_url, "SELECT service || ' ' || version, status FROM releases"
        )
    }
    assert len(statuses) == len(SERVICES)
    assert all(status in FINAL for status in statuses.values()), statuses
    for service in SERVICES:
        expected = "rolled_back" if service in FAULTY else "completed"
        assert statuses[f"{service} {VERSION}"] == expected, service
    # no action twice: each release's actions once per step
    actions = Counter(rows(postgres_url, "SELECT release_id, action, details FROM events"))
    assert [a for a, n in actions.items() if n > 1] == []
    # one Slack thread per release, no message posted twice
    posts = fake.calls("chat.postMessage")
    roots = Counter(
        str(c.params.get("text", ""))[:60] for c in posts if not c.params.get("thread_ts")
    )
    assert [r for r, n in roots.items() if n > 1] == []
    replies = Counter(
        (c.params["thread_ts"], str(c.params.get("text")))
        for c in posts
        if c.params.get("thread_ts")
    )
    assert [r for r, n in replies.items() if n > 1] == []
    verified = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify", "--db", postgres_url],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_two_processes_on_one_postgresql_simulate_one_fleet(
    tmp_path: Path, postgres_url: str
) -> None:
    """A weight one replica applies and a fault injected through another are what a third
    draws its next window from: the fleet is the database's, not a process's."""
    config = tmp_path / "services.toml"
    config.write_text(CONFIG)
    chat = TerminalChat(io.StringIO())
    one, other = (bootstrap(postgres_url, chat=chat, config_path=config) for _ in range(2))
    try:
        target = Target(service="svc-00", env="prod", region="us-east-1")
        canary = TrafficState(stable_version="1.0.0", new_version=VERSION, new_weight=25)
        one.fleet.apply(target, canary)
        other.fleet.inject("svc-00", VERSION, ["errors:8x"])
        assert other.fleet.state(target) == canary
        assert [f.spec for f in one.fleet.faults("svc-00", VERSION)] == ["errors:8x"]
        other.fleet.set_load("svc-00", 50.0)
        start, end = CLOCK_START, CLOCK_START + timedelta(minutes=5)
        assert one.fleet.window(target, start, end) == other.fleet.window(target, start, end)
        assert one.fleet.profile("svc-00").rps == 50.0
    finally:
        one.close()
        other.close()


def test_a_routers_change_is_one_at_a_time_across_the_replicas(postgres_url: str) -> None:
    """Repro: the HAProxy router's "one change at a time" lock was a lock of one process, so
    two replicas could read a target's row, change HAProxy and write the row side by side."""
    from bot.adapters.postgres.database import PostgresDatabase
    from bot.adapters.postgres.target_rows import PostgresTargetRows

    one_db, other_db = PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)
    one = PostgresTargetRows(one_db, "haproxy_targets", ["applied"])
    other = PostgresTargetRows(other_db, "haproxy_targets", ["applied"])
    order: list[str] = []
    try:
        with one.lock:
            waiting = threading.Thread(target=lambda: _change(other, order))
            waiting.start()
            waiting.join(timeout=1.0)  # it may not run while the first replica holds the lock
            order.append("first done")
        waiting.join(timeout=60)
        assert order == ["first done", "second done"]
        with one.lock, one.lock:  # re-entrant within a thread, as the router nests it
            pass
    finally:
        one_db.close()
        other_db.close()


def _change(rows: object, order: list[str]) -> None:
    with rows.lock:  # type: ignore[attr-defined]
        order.append("second done")
