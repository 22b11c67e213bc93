"""How fast `/release` is acked: 50 commands sent at once to the running app on loopback.

The app is the real one (waitress, Bolt, signature check, the engine on SQLite); Slack's Web
API is the local fake from the tests. Each command is a signed HTTP POST; the figure is the
time from sending it to the ack's response, while the other 49 are in flight and the
releases start behind the acks. Target: p99 under 100 ms. Run: ``make bench-ack``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fake_slack import FakeSlack
from tests.slack_app_harness import CHANNEL, DAVE, RunningApp, write_config
from tests.slack_signing import post, signed_headers, slash_command_body

SECRET = "test-signing-secret"


def _service(i: int) -> str:
    return f"svc-{i:03d}"


def _line(i: int) -> str:
    return (
        f"{_service(i)} 1.0.1 risk=low ticket=CHG-{i} "
        f'artifact=registry.local/{_service(i)}:1.0.1 changes="bench"'
    )


def measure(commands: int, rounds: int) -> tuple[list[float], int, int]:
    """Ack latencies in seconds, how many answered 200, and how many releases were stored."""
    latencies: list[float] = []
    ok = 0
    with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
        # every service a command names is in the config, on the simulator
        write_config(Path(tmp), [_service(i) for i in range(commands * rounds)])
        app = RunningApp(fake, Path(tmp)).start()
        try:

            def send(i: int) -> tuple[int, float]:
                body = slash_command_body(
                    _line(i), DAVE, CHANNEL, response_url=fake.response_url(f"c{i}")
                )
                headers = signed_headers(body, SECRET)
                began = time.perf_counter()
                status, _, _ = post(app.url, body, headers, timeout=10)
                return status, time.perf_counter() - began

            for r in range(rounds):
                with ThreadPoolExecutor(commands) as pool:
                    results = list(pool.map(send, range(r * commands, (r + 1) * commands)))
                ok += sum(1 for status, _ in results if status == 200)
                latencies += [seconds for _, seconds in results]
            app.wired.slack.background.shutdown(wait=True)
            stored = len(app.services.store.listing(limit=10_000))
        finally:
            app.stop()
    return latencies, ok, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    latencies, ok, stored = measure(args.commands, args.rounds)
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print("| what | measured |")
    print("|---|--:|")
    print(f"| commands ({args.rounds} bursts of {args.commands} at once) | {len(ms)} |")
    print(f"| acked 200 | {ok} |")
    print(f"| ack latency p50 | {statistics.median(ms):.1f} ms |")
    print(f"| ack latency p99 | {p99:.1f} ms |")
    print(f"| ack latency max | {ms[-1]:.1f} ms |")
    print(f"| releases stored once the work behind the acks finished | {stored} |")
    print(f"| target p99 < 100 ms | {'met' if p99 < 100 else 'NOT met'} |")


if __name__ == "__main__":
    main()
