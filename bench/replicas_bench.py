"""Replicas against one process: N active simulated releases moved by 3 replicas
(``bench.replicas_node``, the Slack app) on one PostgreSQL and one fake Slack, then by one
process on a SQLite file, with the same load. A round is the time until every release has
been moved (saved) once more; after a SIGKILL of one replica, failover is the time until every
release it had claimed moves again. Run: ``make bench-replicas`` (``N=`` releases)."""

from __future__ import annotations

import argparse
import io
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import bootstrap
from bot.domain.release import Release
from bot.service import start_release
from tests.fake_slack import FakeSlack
from tests.postgres_server import PostgresServer
from tests.slack_app_harness import service_table
from tests.test_replicas import Replica

HANG_GUARD = 600.0
Revisions = Callable[[], dict[str, int]]


def config(services: int, scrape_interval: float = 0.0) -> str:
    """Long stages: every release stays active, in its first steps, for the whole run.
    ``scrape_interval``: the simulated metrics scraped as a Prometheus would be (a window
    needs two scrapes, so a release is due one tick in four at 15 s)."""
    head = '[defaults]\nenvironments = ["prod"]\nregions = ["us-east-1"]\nstrategy = "canary"\n'
    head += 'guardrails = ["error_rate<1%", "p95<300ms", "availability>=99.5%"]\n'
    head += 'approvers = ["alice"]\ninstances = 4\nbake_minutes = 600\n'
    scraped = f'metrics = {{ provider = "simulator", scrape_interval = {scrape_interval} }}'
    return head + "".join(
        service_table(f"svc-{i:05d}").replace('metrics = { provider = "simulator" }', scraped)
        for i in range(services)
    )


def start_all(db: str, config_path: Path, releases: int) -> None:
    wiring = bootstrap(db, chat=TerminalChat(io.StringIO()), config_path=config_path)
    try:
        for i in range(releases):
            line = f'svc-{i:05d} 1.1.0 risk=low ticket=CHG-1 changes="bench"'
            started = start_release(wiring.services, line, "bench")
            assert isinstance(started, Release), started
    finally:
        wiring.close()


def wait_round(revisions: Revisions, ids: set[str] | None = None) -> float:
    """Seconds until every release (of ``ids``) is saved once more."""
    began = time.monotonic()
    before = revisions()
    waiting = set(before) if ids is None else ids & set(before)
    while waiting:
        now = revisions()
        waiting = {i for i in waiting if now.get(i, 0) <= before[i]}
        if time.monotonic() - began > HANG_GUARD:
            raise RuntimeError(f"{len(waiting)} releases never moved")
        time.sleep(0.05)
    return time.monotonic() - began


def pg_revisions(url: str) -> Revisions:
    import psycopg

    def read() -> dict[str, int]:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT id, revision FROM releases WHERE active = 1").fetchall()
        return {str(i): int(r) for i, r in rows}

    return read


def sqlite_revisions(path: Path) -> Revisions:
    import sqlite3

    def read() -> dict[str, int]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            rows = conn.execute("SELECT id, revision FROM releases WHERE active = 1").fetchall()
        finally:
            conn.close()
        return {str(i): int(r) for i, r in rows}

    return read


def measure(
    name: str, db: str, revisions: Revisions, tmp: Path, replicas: int, n: int, rounds: int,
    kill: Callable[[list[Replica], FakeSlack], float] | None = None, scrape_interval: float = 0.0,
) -> dict[str, object]:  # fmt: skip
    config_path = tmp / f"{name.split()[-1]}.toml"
    config_path.write_text(config(n, scrape_interval))
    start_all(db, config_path, n)
    with FakeSlack() as fake:
        args = ["--db", db, "--config", str(config_path), "--slack-url", fake.url, "--pace", "0.2"]
        procs = [Replica(args) for _ in range(replicas)]
        try:
            for proc in procs:
                proc.ready()
            for _ in range(2):  # warm up: gates, the first cards
                wait_round(revisions)
            calls_before = len(fake.calls())
            times = [wait_round(revisions) for _ in range(rounds)]
            calls = len(fake.calls()) - calls_before
            failover = kill(procs, fake) if kill is not None else None
        finally:
            for proc in procs:
                proc.stop()
    round_time = statistics.median(times)
    print(f"{name}: rounds {', '.join(f'{t:.1f}' for t in times)} s", flush=True)  # as it goes
    return {
        "setup": name,
        "round": round_time,
        "per_release_ms": 1000 * round_time / n,
        "moved_per_s": n / round_time,
        "slack_calls_per_round": calls / rounds,
        "failover": failover,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=0.0,
        help="seconds; the simulated metrics scraped as a Prometheus's (0: every tick judged)",
    )
    args = parser.parse_args()
    n = args.releases
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir, PostgresServer() as server:
        tmp = Path(tmp_dir)
        url = server.create_database()

        def kill_one(procs: list[Replica], _fake: FakeSlack) -> float:
            import psycopg

            victim = procs[0]
            with psycopg.connect(url) as conn:  # what the victim holds as it dies
                held = conn.execute(
                    "SELECT substr(name, 9) FROM leases WHERE name LIKE 'release:%%'"
                    " AND holder LIKE %s",
                    [f"%:{victim.popen.pid}:%"],
                ).fetchall()
            victim.kill()
            ids = {str(r[0]) for r in held}
            return wait_round(pg_revisions(url), ids or None)

        results.append(measure("3 replicas, PostgreSQL", url, pg_revisions(url), tmp, 3, n,
                               args.rounds, kill_one, args.scrape_interval))  # fmt: skip
        path = tmp / "bot.db"
        results.append(measure("1 process, SQLite", str(path), sqlite_revisions(path), tmp, 1,
                               n, args.rounds, scrape_interval=args.scrape_interval))  # fmt: skip
    tick = 10.0  # seconds: the default tick, which the replicas' virtual clocks move by
    # A release is due once its window outlasts two scrapes: every tick, or one in this many.
    due_every = math.floor(2 * args.scrape_interval / tick) + 1 if args.scrape_interval else 1
    scraped = (
        f", metrics scraped every {args.scrape_interval:g} s: each release due one tick in "
        f"{due_every}"
        if args.scrape_interval
        else ", each release judged every tick"
    )
    print(f"\n{n} active simulated releases{scraped}; a round = every release moved once "
          f"(median of {args.rounds})\n")  # fmt: skip
    print("| setup | round (s) | per release (ms) | moved/s | active releases carried at a "
          "10 s tick | Slack calls/round | failover (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in results:
        failover = "—" if r["failover"] is None else f"{r['failover']:.1f}"
        carried = float(r["moved_per_s"]) * tick * due_every  # type: ignore[arg-type]
        print(f"| {r['setup']} | {r['round']:.1f} | {r['per_release_ms']:.1f} | "
              f"{r['moved_per_s']:.0f} | {carried:,.0f} | {r['slack_calls_per_round']:.0f} | "
              f"{failover} |")  # fmt: skip


if __name__ == "__main__":
    main()
