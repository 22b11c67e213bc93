"""One release-bot process for the chaos run: the real Slack app (``bot.serve.wiring.wire``:
waitress, Bolt, the engine on SQLite, the Slack chat) on a virtual clock that the tick moves
as fast as it can, so a release of an hour of virtual time ends in seconds.

``serve`` ticks every ``RELEASE_BOT_TICK_SECONDS`` of real time on the real clock; this is the
same app and the same tick, only faster. It prints ``port N`` once it listens and stops on
SIGTERM as ``serve`` does (the tick and the work handed over finish first). A job that raises
is logged with its traceback, as the scheduler's jobs do: the chaos run reads stderr for them.
With ``--kill-after-apply N`` it SIGKILLs itself the moment its Nth router change took effect,
before the tick records anything after it (a machine dying mid-tick, at the worst point).

    python -m bench.chaos.node --db X.db --config services.toml --slack-url URL
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.per_service import ServiceRouters
from bot.bootstrap import llm_from_env
from bot.domain.observations import Target, TrafficState
from bot.domain.request import Strategy
from bot.ports.traffic import AbstractTrafficRouter
from bot.serve.wiring import SlackWiring, wire
from bot.settings import Settings
from bot.stopping import StopSignals

CLOCK_START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
SIGNING_SECRET = "chaos-signing-secret"
log = logging.getLogger("bench.chaos.node")


class KillAfterApply(AbstractTrafficRouter):
    """A router that SIGKILLs this process right after its ``after``-th change (counted over
    every service's router) was applied: the change is made, nothing after it is."""

    def __init__(self, router: AbstractTrafficRouter, count: list[int], after: int) -> None:
        self.router, self.count, self.after = router, count, after

    def apply(self, target: Target, desired: TrafficState) -> TrafficState:
        applied = self.router.apply(target, desired)
        self.count[0] += 1
        if self.count[0] >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)
        return applied

    def state(self, target: Target) -> TrafficState:
        return self.router.state(target)

    def rehearse_rollback(self, target: Target, version: str) -> bool:
        return self.router.rehearse_rollback(target, version)

    def layout_refusal(
        self, service: str, environments: Sequence[str], regions: Sequence[str]
    ) -> str | None:
        return self.router.layout_refusal(service, environments, regions)

    def refusal(self, service: str, strategy: Strategy) -> str | None:
        return self.router.refusal(service, strategy)


def kill_after_apply(routers: AbstractTrafficRouter, after: int) -> None:
    assert isinstance(routers, ServiceRouters), routers
    count = [0]
    for service, router in routers.routers.items():
        routers.routers[service] = KillAfterApply(router, count, after)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=10.0,
        help="virtual seconds each tick moves (as run and worker)",
    )
    parser.add_argument("--pace", type=float, default=0.001, help="real seconds between ticks")
    parser.add_argument(
        "--kill-after-apply", type=int, help="SIGKILL itself after its Nth router change"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-chaos",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=args.slack_url,
        release_bot_db=Path(args.db),
        release_bot_config=Path(args.config),
        release_bot_post_interval=0.0,
        release_bot_home_interval=0.0,
        release_bot_tick_seconds=args.tick_seconds,
        host="127.0.0.1",
        port=0,
    )
    stop = StopSignals()
    wired = wire(settings, virtual_clock=True, clock_start=CLOCK_START, llm=llm_from_env(None))
    if args.kill_after_apply:
        kill_after_apply(wired.wiring.services.traffic, args.kill_after_apply)
    ticks = serve_until_stopped(wired, stop, args.pace)
    print(f"ticks {ticks}", flush=True)
    sys.exit(0)


def serve_until_stopped(wired: SlackWiring, stop: StopSignals, pace: float) -> int:
    """Serve HTTP (``port N`` printed once it listens) and tick every ``pace`` real seconds
    until SIGTERM, as ``serve``'s scheduler does; then stop and close. Returns the ticks."""
    wired.server.start_http()
    print(f"port {wired.server.port}", flush=True)
    ticker = wired.wiring.ticker
    ticks = 0
    while not stop.wait(pace):
        ticks += 1
        try:
            ticker.tick()
        except Exception:  # as the scheduler's job: logged, the next tick retries
            log.exception("reconcile tick failed")
        try:
            ticker.narrate()
        except Exception:
            log.exception("narration failed")
    wired.server.stop()
    wired.wiring.close()
    return ticks


if __name__ == "__main__":
    main()
