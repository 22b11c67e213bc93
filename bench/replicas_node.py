"""One replica for the replica test and bench: the real Slack app (``bot.serve.wiring.wire``)
on a shared PostgreSQL store and a virtual clock, ticking every ``--pace`` real seconds, as
``serve`` does every ``RELEASE_BOT_TICK_SECONDS``. Prints ``port N`` once it listens; stops on
SIGTERM. The simulated fleet is in the shared database: a fault injected once (``fleet.inject``
through any process on it) acts on every replica.

    python -m bench.replicas_node --db postgresql://… --config services.toml --slack-url URL
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.chaos.node import CLOCK_START, SIGNING_SECRET, serve_until_stopped
from bot.serve.wiring import wire
from bot.settings import Settings
from bot.stopping import StopSignals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--slack-url", required=True)
    parser.add_argument("--channel", default="C0REPLICAS")
    parser.add_argument("--tick-seconds", type=float, default=10.0)
    parser.add_argument("--pace", type=float, default=0.05, help="real seconds between ticks")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-replicas",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=args.slack_url,
        release_bot_db=args.db,
        release_bot_config=Path(args.config),
        release_bot_channel=args.channel,
        release_bot_post_interval=0.0,
        release_bot_home_interval=0.0,
        release_bot_tick_seconds=args.tick_seconds,
        host="127.0.0.1",
        port=0,
    )
    stop = StopSignals()
    wired = wire(settings, virtual_clock=True, clock_start=CLOCK_START)
    wired.wiring.ticker.interval = args.pace
    serve_until_stopped(wired, stop, args.pace)


if __name__ == "__main__":
    main()
