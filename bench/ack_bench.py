"""How fast Slack's requests are acked: bursts of 50 at once, of each kind, to the running
app on loopback.

The app is the real one (waitress, Bolt, signature check, replay check, the engine on
SQLite), in a process of its own as ``serve`` runs; Slack's Web API is the local fake from
the tests, in the bench's process with the clients. Each request is a signed HTTP
POST; the figure is the time from sending it to the ack's response, while the other 49 are
in flight and the work of the earlier ones runs behind the acks. Kinds: a release line,
``dry-run``, ``status``, ``lock`` then ``unlock``, ``help``, and an Approve click. Target:
p99 under 100 ms for each. Run: ``make bench-ack``.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.chaos.node import SIGNING_SECRET as SECRET
from bot.slack import blocks
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import (
    ALICE,
    BOB,
    CHANNEL,
    DAVE,
    click_body,
    wait_until,
    write_config,
)
from tests.slack_signing import post, signed_headers, slash_command_body

TARGET_MS = 100.0

Body = Callable[[int], str]  # the i-th request's body


def _service(i: int) -> str:
    return f"svc-{i:03d}"


def _line(i: int) -> str:
    return (
        f"{_service(i)} 1.0.1 risk=low ticket=CHG-{i} "
        f'artifact=registry.local/{_service(i)}:1.0.1 changes="bench"'
    )


def measure(commands: int, rounds: int) -> list[tuple[str, list[float], int]]:
    """Per kind: the ack latencies in seconds and how many answered 200."""
    results: list[tuple[str, list[float], int]] = []
    with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
        # every service a release line or dry run names is in the config, on the simulator
        write_config(Path(tmp), [_service(i) for i in range(commands * rounds)])
        app, port = _start_app(Path(tmp), fake)
        try:
            url = f"http://127.0.0.1:{port}/slack/events"

            def command(text: Callable[[int], str], user: str = DAVE) -> Body:
                return lambda i: slash_command_body(
                    text(i), user, CHANNEL, response_url=fake.response_url(f"r{i}")
                )

            approval = _awaiting_approval(url, Path(tmp), fake)
            kinds: list[tuple[str, Body]] = [
                ("`/release` a release line", command(_line)),
                ("`/release dry-run` a line", command(lambda i: f"dry-run {_line(i)}")),
                ("`/release status`", command(lambda i: "status")),
                ("`/release lock` a scope", command(lambda i: f"lock {_service(i)}/prod b", BOB)),
                ("`/release unlock` it", command(lambda i: f"unlock {_service(i)}/prod", BOB)),
                ("`/release help`", command(lambda i: "help")),
                ("an Approve click", lambda i: click_body(fake, *approval, f"click{i}")),
            ]
            for name, body in kinds:
                latencies, ok = _bursts(url, body, commands, rounds)
                results.append((name, latencies, ok))
        finally:
            app.send_signal(signal.SIGTERM)  # as a deploy stops serve: the work finishes first
            app.communicate(timeout=120)
    return results


def _start_app(tmp: Path, fake: FakeSlack) -> tuple[subprocess.Popen[str], int]:
    """The app in a process of its own, as ``serve`` runs: the bench's 50 client threads and
    the fake Web API do not share its interpreter. It ticks every 10 s, as ``serve`` does."""
    app = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos.node", "--db", str(tmp / "release-bot.db"),
         "--config", str(tmp / "services.toml"), "--slack-url", fake.url, "--pace", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert app.stdout is not None
    line = app.stdout.readline()
    if not line.startswith("port "):
        app.kill()
        raise SystemExit(f"the app did not start: {line!r}")
    return app, int(line.split()[1])


def _awaiting_approval(
    url: str, tmp: Path, fake: FakeSlack
) -> tuple[str, str, str, dict[str, Any]]:
    """A release waiting for approval, and what a click on its Approve button needs."""
    line = 'shop 1.2.0 risk=medium ticket=CHG-1 changes="bench"'
    body = slash_command_body(line, DAVE, CHANNEL, response_url=fake.response_url("start"))
    assert post(url, body, signed_headers(body, SECRET))[0] == 200
    top = wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the card")[0]

    def request() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in fake.messages(CHANNEL, top["ts"])
                if blocks.APPROVAL_BLOCK in str(m.get("blocks"))
            ),
            None,
        )

    message = wait_until(request, what="the approval request")
    with sqlite3.connect(tmp / "release-bot.db") as db:
        (release_id,) = db.execute("SELECT id FROM releases WHERE service = 'shop'").fetchone()
    return blocks.APPROVE, str(release_id), ALICE, message


def _bursts(url: str, body: Body, commands: int, rounds: int) -> tuple[list[float], int]:
    def send(i: int) -> tuple[int, float]:
        text = body(i)
        headers = signed_headers(text, SECRET)
        began = time.perf_counter()
        status, _, _ = post(url, text, headers, timeout=10)
        return status, time.perf_counter() - began

    latencies: list[float] = []
    ok = 0
    for r in range(rounds):
        with ThreadPoolExecutor(commands) as pool:
            answers = list(pool.map(send, range(r * commands, (r + 1) * commands)))
        ok += sum(1 for status, _ in answers if status == 200)
        latencies += [seconds for _, seconds in answers]
    return latencies, ok


def p99(ms: list[float]) -> float:
    ordered = sorted(ms)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = measure(args.commands, args.rounds)
    print(f"{args.rounds} bursts of {args.commands} requests at once, per kind:\n")
    print("| kind | requests | acked 200 | p50 | p99 | max | p99 < 100 ms |")
    print("|---|--:|--:|--:|--:|--:|---|")
    for name, latencies, ok in results:
        ms = [x * 1000 for x in latencies]
        worst = p99(ms)
        print(
            f"| {name} | {len(ms)} | {ok} | {statistics.median(ms):.1f} ms | {worst:.1f} ms "
            f"| {max(ms):.1f} ms | {'met' if worst < TARGET_MS else 'NOT met'} |"
        )


if __name__ == "__main__":
    main()
