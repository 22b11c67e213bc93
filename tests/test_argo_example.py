"""The Argo Rollouts example: examples/argo-rollouts/receiver.py runs as a subprocess with a
fake ``kubectl`` on its PATH that records its arguments and plays the Rollout's part; the
bot's calls come through the real WebhookRouter."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
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
from demo.servers import free_port
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "argo-rollouts"
SECRET = "argo-example-secret"
TARGET = Target(service="payments-api", env="prod", region="eu-west-1")
NS = "payments-api-prod"
IMAGE = "registry.example.com/payments-api:{version}"

# The fake plays the controller, one Rollout per file ``NAMESPACE.NAME.json``: set image
# starts the steps and stops at the first pause (or, back to the stable image, completes at
# once), promote goes on to the next pause, the end of the steps makes the image stable.
# Each spec change bumps metadata.generation; the status says it was observed at once,
# unless ``_blind`` > 0: then that many reads still show the generation before.
FAKE_KUBECTL = """#!{python}
import hashlib, json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
at = args.index("-n")
ns, rest = args[at + 1], args[:at] + args[at + 2 :]
verb = 2 if rest[:2] == ["get", "rollout"] else 4 if rest[2:4] == ["set", "image"] else 3
name = rest[verb]
path = os.path.join(os.environ["FAKE_KUBECTL_STATE"], f"{ns}.{name}.json")
if not os.path.exists(path):
    sys.exit(f'Error from server (NotFound): rollouts.argoproj.io "{name}" not found')
with open(path) as f:
    ro = json.load(f)


def save():
    with open(path, "w") as f:
        json.dump(ro, f)


if ro.get("_fail", 0) > 0:
    ro["_fail"] -= 1
    save()
    sys.exit("error: the server is currently unable to handle the request")
status, steps = ro["status"], ro["spec"]["strategy"]["canary"]["steps"]
if rest[:2] == ["get", "rollout"]:
    if ro.get("_blind", 0) > 0:
        ro["_blind"] -= 1
        save()
        status["observedGeneration"] = str(ro["metadata"]["generation"] - 1)
    print(json.dumps(ro))
    sys.exit(0)
container = ro["spec"]["template"]["spec"]["containers"][0]


def pod_hash(image):
    return hashlib.sha256(image.encode()).hexdigest()[:10]


def next_pause(i):
    while i < len(steps) and "pause" not in steps[i]:
        i += 1
    return i


def complete():
    status.update(currentStepIndex=len(steps), phase="Healthy", abort=False)
    ro["_stable_image"] = container["image"]


def set_image(image):
    ro["_previous_image"], container["image"] = container["image"], image
    ro["metadata"]["generation"] += 1
    if container["image"] == ro["_stable_image"]:
        complete()  # back to the stable ReplicaSet: no steps
    else:
        status.update(currentStepIndex=next_pause(0), phase="Paused", abort=False)


match rest[2:]:
    case ["set", "image", _, spec]:
        set_image(spec.split("=", 1)[1])
    case ["promote", _]:
        status["currentStepIndex"] = next_pause(status["currentStepIndex"] + 1)
        if status["currentStepIndex"] >= len(steps):
            complete()
    case ["promote", _, "--full"]:
        if status["currentPodHash"] != status["stableRS"]:  # the plugin's own condition
            complete()
    case ["abort", _]:
        status.update(abort=True, phase="Degraded")
    case ["undo", _]:
        set_image(ro["_previous_image"])
    case _:
        sys.exit("fake kubectl: unexpected " + " ".join(args))
status.update(
    currentPodHash=pod_hash(container["image"]),
    stableRS=pod_hash(ro["_stable_image"]),
    observedGeneration=str(ro["metadata"]["generation"]),
)
save()
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


@dataclass
class Cluster:
    """The fake kubectl's files: what it ran and the Rollouts it plays."""

    log: Path
    states: Path

    def commands(self) -> list[list[str]]:
        """The kubectl argo rollouts commands run, without the reads."""
        if not self.log.exists():
            return []
        lines = [json.loads(x) for x in self.log.read_text().splitlines()]
        return [a[2:] for a in lines if a[:2] == ["argo", "rollouts"]]

    def add(
        self,
        namespace: str,
        name: str = "payments-api",
        steps: list[dict[str, Any]] | None = None,
    ) -> None:
        """A Rollout that has completed on 2.4.0 (rollout.yaml's steps unless given)."""
        steps = rollout_steps() if steps is None else steps
        stable = IMAGE.format(version="2.4.0")
        settled = hashlib.sha256(stable.encode()).hexdigest()[:10]
        rollout = {
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {
                "strategy": {"canary": {"steps": steps}},
                "template": {"spec": {"containers": [{"name": "payments-api", "image": stable}]}},
            },
            "status": {
                "currentStepIndex": len(steps),
                "phase": "Healthy",
                "abort": False,
                "currentPodHash": settled,
                "stableRS": settled,
                "observedGeneration": "1",
            },
            "_stable_image": stable,
            "_previous_image": stable,
        }
        self._path(namespace, name).write_text(json.dumps(rollout))

    def _path(self, namespace: str, name: str) -> Path:
        return self.states / f"{namespace}.{name}.json"

    def rollout(self, namespace: str = NS, name: str = "payments-api") -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self._path(namespace, name).read_text())
        return doc

    def edit(self, namespace: str = NS, name: str = "payments-api", **status: Any) -> None:
        ro = self.rollout(namespace, name)
        for key, value in status.items():
            if key.startswith("_"):
                ro[key] = value
            else:
                ro["status"][key] = value
        self._path(namespace, name).write_text(json.dumps(ro))


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    states = tmp_path / "rollouts"
    states.mkdir()
    made = Cluster(tmp_path / "kubectl.log", states)
    made.add(NS)
    return made


@contextlib.contextmanager
def running_receiver(tmp_path: Path, cluster: Cluster, *options: str) -> Iterator[str]:
    """receiver.py with the fake kubectl first on its PATH; its URL for the bot."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.replace("{python}", sys.executable))
    kubectl.chmod(0o755)
    port = free_port()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "RELEASE_BOT_WEBHOOK_SECRET": SECRET,
        "FAKE_KUBECTL_LOG": str(cluster.log),
        "FAKE_KUBECTL_STATE": str(cluster.states),
    }
    command = [sys.executable, str(EXAMPLE / "receiver.py"), "--port", str(port), *options]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
def receiver(tmp_path: Path, cluster: Cluster) -> Iterator[str]:
    with running_receiver(
        tmp_path, cluster, "--image", "registry.example.com/{service}:{version}"
    ) as url:
        yield url


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
    status = cluster.rollout()["status"]
    assert (status["currentStepIndex"], status["phase"], status["abort"]) == (6, "Healthy", False)
    assert status["currentPodHash"] == status["stableRS"]  # back on the stable ReplicaSet


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


# -- pre-prod environments: the bot sends deploy, then set_weight 100 ----------------------

STAGING = Target(service="payments-api", env="staging", region="eu-west-1")
STAGING_NS = "payments-api-staging"


def _in(namespace: str, *commands: list[str]) -> list[list[str]]:
    return [[*c, "-n", namespace] for c in commands]


def test_staging_takes_the_new_version_whole_then_prod_runs_the_canary(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    cluster.add(STAGING_NS)  # the same steps as prod: they are skipped in staging
    r = router(receiver, database)
    r.apply(STAGING, canary(100))
    assert cluster.commands() == _in(
        STAGING_NS,
        ["set", "image", "payments-api", NEW_IMAGE],
        ["promote", "payments-api", "--full"],
    )
    staging = cluster.rollout(STAGING_NS)
    assert staging["status"]["phase"] == "Healthy"
    assert staging["_stable_image"].endswith(":2.4.1")
    for weight in (10, 50, 100):
        r.apply(TARGET, canary(weight))
    r.apply(STAGING, PROMOTED)  # promoted whole already: nothing to run
    r.apply(TARGET, PROMOTED)
    assert cluster.commands()[2:] == _in(
        NS,
        ["set", "image", "payments-api", NEW_IMAGE],
        ["promote", "payments-api"],
        ["promote", "payments-api"],
        ["promote", "payments-api", "--full"],
    )
    assert cluster.rollout()["_stable_image"].endswith(":2.4.1")


def test_a_rollback_after_a_whole_promotion_skips_the_steps(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    # Staging runs 2.4.1 as its stable version: going back to 2.4.0 is an update of its own,
    # which would stop at setWeight 10 without the full promotion.
    cluster.add(STAGING_NS)
    r = router(receiver, database)
    r.apply(STAGING, canary(100))
    r.apply(STAGING, STABLE)
    assert cluster.commands()[2:] == _in(
        STAGING_NS,
        ["abort", "payments-api"],
        ["set", "image", "payments-api", OLD_IMAGE],
        ["promote", "payments-api", "--full"],
    )
    staging = cluster.rollout(STAGING_NS)
    assert (staging["status"]["phase"], staging["_stable_image"]) == (
        "Healthy",
        IMAGE.format(version="2.4.0"),
    )


def test_a_prod_rollout_without_a_100_step_is_promoted_fully_at_100(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    # Argo's end of the steps is 100 %: set_weight 100 skips to it.
    cluster.add(NS, steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])
    r = router(receiver, database)
    for weight in (10, 50, 100):
        r.apply(TARGET, canary(weight))
    assert cluster.commands()[1:] == _in(
        NS, ["promote", "payments-api"], ["promote", "payments-api", "--full"]
    )
    r.apply(TARGET, STABLE)
    assert cluster.commands()[3:] == _in(
        NS,
        ["abort", "payments-api"],
        ["set", "image", "payments-api", OLD_IMAGE],
        ["promote", "payments-api", "--full"],
    )
    assert cluster.rollout()["status"]["phase"] == "Healthy"


def test_one_namespace_with_a_rollout_per_environment(
    tmp_path: Path, cluster: Cluster, database: Database
) -> None:
    for name in ("payments-api-staging", "payments-api-prod"):
        cluster.add("apps", name)
    options = ["--image", "registry.example.com/{service}:{version}", "--namespace", "apps"]
    with running_receiver(
        tmp_path, cluster, *options, "--rollout", "{service}-{environment}"
    ) as url:
        r = router(url, database)
        r.apply(STAGING, canary(100))
        r.apply(TARGET, canary(10))
    assert cluster.commands() == _in(
        "apps",
        ["set", "image", "payments-api-staging", NEW_IMAGE],
        ["promote", "payments-api-staging", "--full"],
        ["set", "image", "payments-api-prod", NEW_IMAGE],
    )


def test_the_full_promotion_waits_until_the_controller_saw_the_deploy(
    receiver: str, cluster: Cluster, database: Database
) -> None:
    # `promote --full` before the controller has seen the new template would do nothing.
    cluster.add(STAGING_NS)
    cluster.edit(STAGING_NS, _blind=2)  # two reads still show the generation before
    sleeps: list[float] = []
    router(receiver, database, sleeps).apply(STAGING, canary(100))
    assert cluster.commands()[1:] == _in(STAGING_NS, ["promote", "payments-api", "--full"])
    assert sleeps == []  # the receiver waited; the bot did not have to retry


def test_a_controller_slower_than_the_wait_is_503_and_nothing_runs_twice(
    tmp_path: Path, cluster: Cluster, database: Database
) -> None:
    cluster.add(STAGING_NS)
    sleeps: list[float] = []
    image = "registry.example.com/{service}:{version}"
    with running_receiver(tmp_path, cluster, "--image", image, "--observe-seconds", "0.2") as url:
        r = router(url, database, sleeps)
        cluster.edit(STAGING_NS, _blind=1000)
        with pytest.raises(RouterUnavailable, match=r"HTTP 503.*has not seen the change yet"):
            r.apply(STAGING, canary(100))
        assert sleeps == [0.5, 1.0, 2.0]
        cluster.edit(STAGING_NS, _blind=0)
        r.apply(STAGING, canary(100))  # the next tick: set_weight again, deploy acknowledged
        cluster.edit(STAGING_NS, _blind=1000)
        with pytest.raises(RouterUnavailable, match="HTTP 503"):
            r.apply(STAGING, STABLE)
        cluster.edit(STAGING_NS, _blind=0)
        r.apply(STAGING, STABLE)  # the template is on 2.4.0 already: only the promotion
    assert cluster.commands() == _in(
        STAGING_NS,
        ["set", "image", "payments-api", NEW_IMAGE],
        ["promote", "payments-api", "--full"],
        ["abort", "payments-api"],
        ["set", "image", "payments-api", OLD_IMAGE],
        ["promote", "payments-api", "--full"],
    )
    assert cluster.rollout(STAGING_NS)["_stable_image"] == IMAGE.format(version="2.4.0")


def test_without_an_image_template_a_retried_rollback_undoes_once(
    tmp_path: Path, cluster: Cluster, database: Database
) -> None:
    cluster.add(STAGING_NS)
    with running_receiver(tmp_path, cluster, "--observe-seconds", "0.2") as url:
        r = router(url, database)  # deploy carries the bot's image
        r.apply(STAGING, canary(100))
        cluster.edit(STAGING_NS, _blind=1000)
        with pytest.raises(RouterUnavailable, match="HTTP 503"):
            r.apply(STAGING, STABLE)
        cluster.edit(STAGING_NS, _blind=0)
        r.apply(STAGING, STABLE)
    assert cluster.commands()[2:] == _in(
        STAGING_NS,
        ["abort", "payments-api"],
        ["undo", "payments-api"],  # once: a second undo would go back to 2.4.1
        ["promote", "payments-api", "--full"],
    )
    assert cluster.rollout(STAGING_NS)["_stable_image"] == IMAGE.format(version="2.4.0")
