"""The Argo Rollouts example: examples/argo-rollouts/receiver.py runs as a subprocess with a
fake ``kubectl`` on its PATH that records its arguments and plays the Rollout's part; the
bot's calls come through the real WebhookRouter."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.sqlite.database import Database
from bot.adapters.webhook.router import WebhookRouter, WebhookSettings
from bot.adapters.webhook.router import migrations as webhook_migrations
from bot.domain.observations import Target, TrafficState
from bot.domain.planner import STAGES_BY_RISK
from bot.ports.traffic import RouterUnavailable
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "argo-rollouts"
SECRET = "argo-example-secret"
TARGET = Target(service="payments-api", env="prod", region="eu-west-1")
NS = "payments-api-prod"
IMAGE = "registry.example.com/payments-api:{version}"

# The fake plays the controller: set image starts the steps and stops at the first pause,
# promote goes on to the next pause, the end of the steps makes the image stable.
FAKE_KUBECTL = """#!{python}
import json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
path = os.environ["FAKE_KUBECTL_STATE"]
with open(path) as f:
    ro = json.load(f)
if ro.get("_fail", 0) > 0:
    ro["_fail"] -= 1
    with open(path, "w") as f:
        json.dump(ro, f)
    sys.exit("error: the server is currently unable to handle the request")
if args[:2] == ["get", "rollout"]:
    print(json.dumps(ro))
    sys.exit(0)
status, steps = ro["status"], ro["spec"]["strategy"]["canary"]["steps"]
container = ro["spec"]["template"]["spec"]["containers"][0]


def next_pause(i):
    while i < len(steps) and "pause" not in steps[i]:
        i += 1
    return i


def complete():
    status.update(currentStepIndex=len(steps), phase="Healthy", abort=False)
    ro["_stable_image"] = container["image"]


cmd = [a for a in args[2:] if a not in ("-n", os.environ["FAKE_KUBECTL_NS"])]
match cmd:
    case ["set", "image", _, spec]:
        container["image"] = spec.split("=", 1)[1]
        if container["image"] == ro["_stable_image"]:
            complete()  # back to the stable ReplicaSet: no steps
        else:
            status.update(currentStepIndex=next_pause(0), phase="Paused", abort=False)
    case ["promote", _]:
        status["currentStepIndex"] = next_pause(status["currentStepIndex"] + 1)
        if status["currentStepIndex"] >= len(steps):
            complete()
    case ["promote", _, "--full"]:
        complete()
    case ["abort", _]:
        status.update(abort=True, phase="Degraded")
    case ["undo", _]:
        container["image"] = ro["_stable_image"]
        complete()
    case _:
        sys.exit("fake kubectl: unexpected " + " ".join(args))
with open(path, "w") as f:
    json.dump(ro, f)
"""


def rollout_steps() -> list[dict[str, Any]]:
    """The steps of rollout.yaml, read with a regex (no YAML parser in the project)."""
    text = (EXAMPLE / "rollout.yaml").read_text()
    steps: list[dict[str, Any]] = []
    for line in text.split("steps:", 1)[1].splitlines():
        if m := re.match(r"\s*- setWeight: (\d+)\s*$", line):
            steps.append({"setWeight": int(m.group(1))})
        elif re.match(r"\s*- pause: \{\}\s*$", line):
            steps.append({"pause": {}})
    return steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Cluster:
    """The fake kubectl's files: what it ran and the Rollout it plays."""

    log: Path
    state: Path

    def commands(self) -> list[list[str]]:
        """The kubectl argo rollouts commands run, without the reads."""
        if not self.log.exists():
            return []
        lines = [json.loads(x) for x in self.log.read_text().splitlines()]
        return [a[2:] for a in lines if a[:2] == ["argo", "rollouts"]]

    def rollout(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.state.read_text())
        return doc

    def edit(self, **status: Any) -> None:
        ro = self.rollout()
        for key, value in status.items():
            if key.startswith("_"):
                ro[key] = value
            else:
                ro["status"][key] = value
        self.state.write_text(json.dumps(ro))


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    steps = rollout_steps()
    stable = IMAGE.format(version="2.4.0")
    rollout = {
        "metadata": {"name": "payments-api", "namespace": NS},
        "spec": {
            "strategy": {"canary": {"steps": steps}},
            "template": {"spec": {"containers": [{"name": "payments-api", "image": stable}]}},
        },
        "status": {"currentStepIndex": len(steps), "phase": "Healthy", "abort": False},
        "_stable_image": stable,
    }
    state = tmp_path / "rollout.json"
    state.write_text(json.dumps(rollout))
    return Cluster(tmp_path / "kubectl.log", state)


@pytest.fixture
def receiver(tmp_path: Path, cluster: Cluster) -> Iterator[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("{python}", sys.executable))
    kubectl.chmod(0o755)
    port = free_port()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "RELEASE_BOT_WEBHOOK_SECRET": SECRET,
        "FAKE_KUBECTL_LOG": str(cluster.log),
        "FAKE_KUBECTL_STATE": str(cluster.state),
        "FAKE_KUBECTL_NS": NS,
    }
    command = [sys.executable, str(EXAMPLE / "receiver.py"), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--image", "registry.example.com/{service}:{version}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"receiver.py did not start: {err}")
                time.sleep(0.05)
        yield f"{url}/release-bot"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def database(fresh_db: Database) -> Database:
    fresh_db.migrate(webhook_migrations)
    return fresh_db


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASE_BOT_WEBHOOK_SECRET", SECRET)


def router(url: str, database: Database, sleeps: list[float] | None = None) -> WebhookRouter:
    settings = WebhookSettings(router="webhook", url=url, image=IMAGE)
    record = sleeps if sleeps is not None else []
    return WebhookRouter("payments-api", settings, database, sleep=record.append)


def canary(weight: float) -> TrafficState:
    return TrafficState(
        stable_version="2.4.0",
        new_version="2.4.1",
        new_weight=weight,
        instances_total=10,
        release_id="rel-7",
    )


STABLE = TrafficState(stable_version="2.4.0", instances_total=10, release_id="rel-7")
PROMOTED = TrafficState(stable_version="2.4.1", instances_total=10, release_id="rel-7")
NEW_IMAGE = "payments-api=registry.example.com/payments-api:2.4.1"
OLD_IMAGE = "payments-api=registry.example.com/payments-api:2.4.0"


def test_the_rollout_steps_mirror_the_low_risk_plan() -> None:
    steps = rollout_steps()
    weights = [s["setWeight"] for s in steps if "setWeight" in s]
    assert weights == STAGES_BY_RISK["low"]
    pairs: list[dict[str, Any]] = [
        {"setWeight": w} if i % 2 == 0 else {"pause": {}} for w in weights for i in (0, 1)
    ]
    assert steps == pairs


def test_a_canary_lifecycle_drives_the_rollout(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    r = router(receiver, database)
    r.apply(TARGET, canary(10))
    # deploy sets the image; Argo's first step is setWeight 10, so set_weight 10 runs nothing.
    assert cluster.commands() == [["set", "image", "payments-api", NEW_IMAGE, "-n", NS]]
    r.apply(TARGET, canary(50))
    r.apply(TARGET, canary(100))
    assert cluster.rollout()["status"]["currentStepIndex"] == 5  # held at 100 %, not stable
    r.apply(TARGET, PROMOTED)
    assert cluster.commands()[1:] == [
        ["promote", "payments-api", "-n", NS],
        ["promote", "payments-api", "-n", NS],
        ["promote", "payments-api", "--full", "-n", NS],
    ]
    assert cluster.rollout()["status"]["phase"] == "Healthy"
    assert cluster.rollout()["_stable_image"].endswith(":2.4.1")


def test_a_rollback_aborts_then_puts_the_stable_image_back(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    r = router(receiver, database)
    r.apply(TARGET, canary(10))
    r.apply(TARGET, canary(50))
    r.apply(TARGET, STABLE)
    assert cluster.commands()[2:] == [
        ["abort", "payments-api", "-n", NS],
        ["set", "image", "payments-api", OLD_IMAGE, "-n", NS],
    ]
    assert cluster.rollout()["status"] == {
        "currentStepIndex": 6,
        "phase": "Healthy",
        "abort": False,
    }


def test_a_repeated_idempotency_key_runs_nothing_twice(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    router(receiver, database).apply(TARGET, canary(10))
    ran = cluster.commands()
    # The bot lost its table (a crash before its commit): the same calls, the same keys.
    other = Database()
    try:
        other.migrate(webhook_migrations)
        router(receiver, other).apply(TARGET, canary(10))
    finally:
        other.close()
    assert cluster.commands() == ran


def test_the_rehearsal_checks_the_rollout_is_healthy(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    r = router(receiver, database)
    assert r.rehearse_rollback(TARGET, "2.4.1") is True
    cluster.edit(phase="Degraded", abort=True, message="RolloutAborted")
    assert r.rehearse_rollback(TARGET, "2.4.1") is False
    assert cluster.commands() == []  # a rehearsal changes nothing


def test_a_weight_the_steps_lack_is_refused_at_once(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    sleeps: list[float] = []
    r = router(receiver, database, sleeps)
    r.apply(TARGET, canary(10))
    with pytest.raises(RouterUnavailable) as exc:
        r.apply(TARGET, canary(25))
    assert "HTTP 422" in str(exc.value) and "no setWeight 25 step" in str(exc.value)
    assert "its weights: 10, 50, 100" in str(exc.value) and sleeps == []
    with pytest.raises(RouterUnavailable, match="does not mirror traffic"):
        r.apply(TARGET, canary(10).model_copy(update={"mirror": 100.0}))


def test_a_failing_kubectl_is_retried(receiver: str, cluster: Cluster, database: Database) -> None:
    sleeps: list[float] = []
    cluster.edit(_fail=1)
    router(receiver, database, sleeps).apply(TARGET, canary(10))
    assert sleeps == [0.5]  # the receiver answered 502, the bot tried again
    set_image = ["set", "image", "payments-api", NEW_IMAGE, "-n", NS]
    assert cluster.commands() == [set_image, set_image]  # the first one failed
    assert cluster.rollout()["status"]["phase"] == "Paused"


def test_a_wrong_secret_is_refused(
    receiver: str, cluster: Cluster, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_BOT_WEBHOOK_SECRET", "guessed")
    with pytest.raises(RouterUnavailable, match="HTTP 401"):
        router(receiver, database).apply(TARGET, canary(10))
    assert cluster.commands() == []
