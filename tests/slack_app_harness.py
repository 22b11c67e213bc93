"""A running release-bot Slack app on 127.0.0.1 against the fake Slack Web API.

The app is the real one (``bot.serve.wiring.wire``: waitress, Bolt, the engine on SQLite,
the simulated fleet); only the clock is virtual, moved by ``tick`` so a release that takes
an hour of virtual time runs in seconds. Requests are real HTTP, signed like Slack's.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain.release import Release
from bot.ports.llm import AbstractLLM
from bot.serve.wiring import SlackWiring, wire
from bot.service import Services
from bot.settings import Settings
from tests.fake_slack import FakeSlack
from tests.slack_signing import block_action_body, post, signed_headers, slash_command_body

SECRET = "test-signing-secret"
CHANNEL = "C0RELEASES"
ALICE, BOB, DAVE, EVE = "U0ALICE", "U0BOB", "U0DAVE", "U0EVE"
CLOCK_START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


def service_table(name: str) -> str:
    """A service of the tests' config: released on the simulator."""
    return f"""
[services.{name}]
artifact = "registry.local/{name}:{{version}}"
metrics = {{ provider = "simulator" }}
traffic = {{ router = "simulator" }}
ci = "simulator"
"""


CONFIG = f"""
[defaults]
environments = ["staging", "prod"]
regions = ["us-east-1"]
strategy = "canary"
guardrails = ["error_rate<1%", "p95<300ms", "availability>=99.5%"]
approvers = ["{ALICE}", "{BOB}"]
{service_table("shop")}"""


def write_config(tmp: Path, services: list[str]) -> None:
    """The tests' config with more services than shop, before the app starts."""
    (tmp / "services.toml").write_text(CONFIG + "".join(service_table(s) for s in services))


def settings_for(fake: FakeSlack, tmp: Path, **overrides: Any) -> Settings:
    config = tmp / "services.toml"
    if not config.exists():
        config.write_text(CONFIG)
    values: dict[str, Any] = {
        "slack_bot_token": "xoxb-test",
        "slack_signing_secret": SECRET,
        "slack_api_url": fake.url,
        "release_bot_db": tmp / "release-bot.db",
        "release_bot_config": config,
        "release_bot_post_interval": 0.0,
        "host": "127.0.0.1",
        "port": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def click_body(
    fake: FakeSlack, action_id: str, release_id: str, user: str, message: dict[str, Any], name: str
) -> str:
    """The body Slack posts for a click on ``message``'s button ``action_id``."""
    block_id = next(
        (
            b.get("block_id", "")
            for b in message.get("blocks", [])
            if b.get("type") == "actions"
            and any(e.get("action_id") == action_id for e in b.get("elements", []))
        ),
        "",
    )
    return block_action_body(
        action_id,
        release_id,
        user,
        CHANNEL,
        message["ts"],
        response_url=fake.response_url(name),
        message_blocks=message.get("blocks", []),
        block_id=block_id,
    )


class RunningApp:
    def __init__(
        self, fake: FakeSlack, tmp: Path, llm: AbstractLLM | None = None, **overrides: Any
    ) -> None:
        self.fake = fake
        self.wired: SlackWiring = wire(
            settings_for(fake, tmp, **overrides),
            virtual_clock=True,
            clock_start=CLOCK_START,
            llm=llm,
        )
        self.server = self.wired.server

    def start(self) -> RunningApp:
        # The scheduler runs paused: the test moves the virtual clock and ticks by hand.
        self.wired.wiring.ticker.start(paused=True)
        self.server.start_http()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.wired.wiring.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/slack/events"

    @property
    def services(self) -> Services:
        return self.wired.wiring.services

    # -- Slack's side ----------------------------------------------------------------------

    def send(
        self, body: str, *, timestamp: int | None = None, secret: str = SECRET
    ) -> tuple[int, str]:
        status, _, text = post(self.url, body, signed_headers(body, secret, timestamp))
        return status, text

    def command(self, text: str, user: str = DAVE, name: str = "cmd") -> tuple[int, str, float]:
        body = slash_command_body(text, user, CHANNEL, response_url=self.fake.response_url(name))
        began = time.perf_counter()
        status, answer = self.send(body)
        return status, answer, time.perf_counter() - began

    def click(
        self, action_id: str, release_id: str, user: str, message: dict[str, Any], name: str
    ) -> int:
        status, _ = self.send(self.click_body(action_id, release_id, user, message, name))
        return status

    def click_body(
        self, action_id: str, release_id: str, user: str, message: dict[str, Any], name: str
    ) -> str:
        """The body Slack posts for a click on ``message``'s button ``action_id``."""
        return click_body(self.fake, action_id, release_id, user, message, name)

    # -- the engine's side -----------------------------------------------------------------

    @contextlib.contextmanager
    def database_held(self) -> Iterator[None]:
        """The database held, as a tick's long unit of work holds it: no work of the app
        that goes through it runs meanwhile (this thread's own reads do)."""
        with self.wired.wiring.database.lock:
            yield

    def tick(self, n: int = 1) -> None:
        """The ticker's jobs, in turn (the narration has its own thread in production); each
        tick moves the virtual clock by one tick."""
        ticker = self.wired.wiring.ticker
        assert ticker.virtual_clock is not None
        for _ in range(n):
            ticker.tick()
            ticker.narrate()

    def release(self) -> Release:
        ids = [str(r["id"]) for r in self.services.store.listing(limit=1)]
        assert ids, "no release was stored"
        return self.services.store.get(ids[0])

    def run_until(self, done: Callable[[Release], bool], max_ticks: int = 2000) -> Release:
        for _ in range(max_ticks):
            release = self.release()
            if done(release):
                return release
            self.tick()
        raise AssertionError(f"still {self.release().status} after {max_ticks} ticks")


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Wait for ``condition`` to hold. ``timeout`` only stops a test that would hang: the
    work runs on other threads, and a busy machine may take seconds to get to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or condition}")


def thread_messages(fake: FakeSlack, thread_ts: str) -> list[dict[str, Any]]:
    return [
        c.params for c in fake.calls("chat.postMessage") if c.params.get("thread_ts") == thread_ts
    ]


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)
