"""One chaos round's world: a fresh SQLite file and config, the real processes on it
(``python -m bot …`` and the app node), the fake Slack they post to, and what the round saw.

Nothing here asserts on time: waits are on conditions, with generous hang guards.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.node import SIGNING_SECRET
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import service_table
from tests.slack_signing import post, signed_headers, slash_command_body

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "C0CHAOS"
ALICE, DAVE = "U0ALICE", "U0DAVE"
# Two services of the simulator's profiles (data/simulator.toml): enough traffic for the judge
# to decide every healthy canary, so a release left waiting is the fault's doing.
SERVICES = ("payments-api", "search-api")
HANG_GUARD = 60.0  # seconds: only stops a round that would hang, never judges speed
TERMINAL = ("completed", "rolled_back", "failed")


CONFIG = f"""
lock_admins = ["{ALICE}"]

[defaults]
environments = ["prod"]
regions = ["us-east-1"]
strategy = "canary"
guardrails = ["error_rate<1%", "p95<300ms", "availability>=99.5%"]
approvers = ["{ALICE}", "alice"]
instances = 4
""" + "".join(service_table(s) for s in SERVICES)


def release_line(service: str, version: str) -> str:
    return f'{service} {version} risk=low ticket=CHG-1 changes="chaos round"'


def wait_until(condition: Callable[[], Any], what: str, timeout: float = HANG_GUARD) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"hang guard: {what} not reached in {timeout:g}s")


@dataclass
class Outcome:
    """What a round found: problems counted as lost or doubled, and notes naming them."""

    lost: int = 0
    doubled: int = 0
    crashed: int = 0  # tracebacks in a process that was not killed
    notes: list[str] = field(default_factory=list)

    def lose(self, why: str) -> None:
        self.lost += 1
        self.notes.append(f"lost: {why}")

    def double(self, why: str) -> None:
        self.doubled += 1
        self.notes.append(f"doubled: {why}")

    def crash(self, why: str) -> None:
        self.crashed += 1
        self.notes.append(f"traceback: {why}")

    @property
    def survived(self) -> bool:
        return not (self.lost or self.doubled or self.crashed)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    killed: bool = False
    port: int | None = None
    stdout: str = ""
    stderr: str = ""


class World:
    """A round's directory, database and processes; ``close`` stops whatever still runs."""

    def __init__(self, tmp: Path, fake: FakeSlack, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.fake = fake
        self.db = tmp / "chaos.db"
        self.config = tmp / "services.toml"
        self.config.write_text(CONFIG)
        self.extra_env = env or {}
        self.procs: list[Proc] = []
        self.outcome = Outcome()
        self._request = 0

    # -- processes ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.tmp),
            "USER": "chaos",
            "RELEASE_BOT_CONFIG": str(self.config),
            **self.extra_env,
        }

    def spawn(self, name: str, *args: str, module: str = "bot") -> Proc:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = Proc(name, popen)
        self.procs.append(proc)
        return proc

    def cli(self, name: str, *args: str) -> Proc:
        """A ``release-bot`` command on the round's database, run to its end."""
        proc = self.spawn(name, *args, "--db", str(self.db))
        self.finish(proc)
        return proc

    def start_node(self, name: str = "node", *extra: str) -> Proc:
        """The app process (bench/chaos/node.py); returns once it listens."""
        proc = self.spawn(
            name,
            "--db", str(self.db),
            "--config", str(self.config),
            "--slack-url", self.fake.url,
            *extra,
            module="bench.chaos.node",
        )  # fmt: skip
        stdout = proc.popen.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], HANG_GUARD)
        line = stdout.readline() if ready else ""
        if not line.startswith("port "):
            self.finish(proc)
            raise RuntimeError(f"{name} did not start: {proc.stderr.strip()[-400:]}")
        proc.port = int(line.split()[1])
        return proc

    def kill(self, proc: Proc) -> None:
        """SIGKILL: nothing is flushed or closed, as when a machine dies."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGKILL)
            proc.killed = True
        self.finish(proc)

    def ended(self, proc: Proc) -> bool:
        return proc.popen.poll() is not None

    def stop(self, proc: Proc) -> None:
        """SIGTERM, as a deploy stops a process: it finishes its tick and its work first."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
        self.finish(proc)

    def finish(self, proc: Proc) -> None:
        out, err = proc.popen.communicate(timeout=HANG_GUARD)
        # a process that SIGKILLed itself (node.py --kill-after-apply) was killed too
        proc.killed = proc.killed or proc.popen.returncode == -signal.SIGKILL
        proc.stdout += out or ""
        proc.stderr += err or ""

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.killed = True
            self.finish(proc)

    # -- Slack's side ------------------------------------------------------------------------

    def slack_body(self, text: str, user: str = ALICE) -> tuple[str, str]:
        """A signed-to-be /release body with its own trigger id and response_url name."""
        self._request += 1
        name = f"r{self._request}"
        body = slash_command_body(
            text,
            user,
            CHANNEL,
            trigger_id=f"chaos.{self._request}",
            response_url=self.fake.response_url(name),
        )
        return body, name

    def send(self, node: Proc, body: str, headers: dict[str, str] | None = None) -> int:
        url = f"http://127.0.0.1:{node.port}/slack/events"
        status, _, _ = post(url, body, headers or signed_headers(body, SIGNING_SECRET))
        return status

    # -- the database ------------------------------------------------------------------------

    def rows(self, sql: str, *params: object) -> list[sqlite3.Row]:
        if not self.db.exists():
            return []
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=HANG_GUARD)
        connection.row_factory = sqlite3.Row
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            connection.close()

    def releases(self) -> list[sqlite3.Row]:
        return self.rows("SELECT id, service, version, status FROM releases ORDER BY created_at")

    def active(self) -> list[sqlite3.Row]:
        return [r for r in self.releases() if r["status"] not in TERMINAL]

    def undelivered(self) -> int:
        return len(
            self.rows("SELECT id FROM events WHERE id NOT IN (SELECT event_id FROM deliveries)")
        )

    # -- convergence ---------------------------------------------------------------------------

    def converge_cli(self) -> None:
        """Carry every unfinished release to its end with ``resume``, as an operator would."""
        if self.active():
            self.cli("resume", "resume", "--approve-as", "alice")

    def converge_node(self, node: Proc) -> None:
        """Let the node finish every release and deliver every event; approvals come from a
        CLI beside it (a second process on the database, as an approver at a terminal)."""

        def settled() -> bool:
            moving = False
            for release in self.active():
                if release["status"] == "awaiting_approval":
                    self.cli("approve", "approve", release["id"], "--as", ALICE)
                # a paused release waits for a human: the invariants judge it
                moving = moving or release["status"] != "paused"
            return not moving and self.undelivered() == 0

        try:
            wait_until(settled, "every release finished and delivered")
        except TimeoutError as exc:
            self.outcome.lose(str(exc))
