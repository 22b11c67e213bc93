"""The webhook router against a real HTTP receiver on 127.0.0.1 that checks every signature,
records every call and can be told to fail, refuse or hang."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.adapters.sqlite.database import Database
from bot.adapters.webhook import signing
from bot.adapters.webhook.router import (
    WebhookRouter,
    WebhookSettings,
    calls_for,
    idempotency_key,
)
from bot.adapters.webhook.router import migrations as webhook_migrations
from bot.domain.observations import Target, TrafficState
from bot.domain.request import STRATEGIES
from bot.ports.traffic import RouterUnavailable
from tests.loopback import LoopbackServer

SECRET = "s3cr3t-shared-with-the-cd"
TARGET = Target(service="payments-api", env="prod", region="eu-west-1")
RELEASE = "rel-0042"


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    raw: bytes
    verified: bool

    @property
    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.raw)
        return doc

    @property
    def action(self) -> str:
        return str(self.body["action"])


class Receiver(LoopbackServer):
    """A CD's receiver: verifies the signature (401 when wrong), records the call, then
    answers the next scripted status, or ``status`` with ``answer`` as JSON; ``hang`` makes
    it wait (until stopped) without answering; ``gate``, when given, holds each answer until
    it is set. ``received`` is set at each call."""

    name = "webhook-receiver"

    def __init__(self, secret: str = SECRET) -> None:
        super().__init__()
        self.secret = secret
        self.calls: list[Call] = []
        self.script: deque[int] = deque()
        self.status = 200
        self.answer: dict[str, Any] | str = {"ok": True}
        self.hang = False
        self.gate: threading.Event | None = None
        self.received = threading.Event()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def fail(self, times: int, status: int = 500) -> None:
        self.script.extend([status] * times)

    def actions(self) -> list[str]:
        return [c.action for c in self.calls]

    def _before_start(self) -> None:
        self._stopping.clear()

    def _before_stop(self) -> None:
        self._stopping.set()

    def _make_server(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        raw = req.rfile.read(int(req.headers.get("Content-Length", "0")))
        verified = signing.verify(
            self.secret,
            req.headers.get(signing.TIMESTAMP_HEADER, ""),
            raw,
            req.headers.get(signing.SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        with self._lock:
            self.calls.append(Call(dict(req.headers.items()), raw, verified))
            status = self.script.popleft() if self.script else self.status
            answer = self.answer
        self.received.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.hang:
            self._stopping.wait(30)
            return
        if not verified:
            status, answer = 401, {"error": "bad signature"}
        elif status >= 300:
            answer = {"error": f"told to answer {status}"}
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RELEASE_BOT_WEBHOOK_SECRET", SECRET)
    return SECRET


@pytest.fixture
def database(fresh_db: Database) -> Database:
    fresh_db.migrate(webhook_migrations)  # a no-op when bootstrap's set has it already
    return fresh_db


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_router(
    url: str, database: Database, sleeps: Sleeps | None = None, **overrides: Any
) -> WebhookRouter:
    settings = WebhookSettings.model_validate({"router": "webhook", "url": url, **overrides})
    return WebhookRouter(
        "payments-api", settings, database, sleep=sleeps if sleeps is not None else Sleeps()
    )


def canary(weight: float, mirror: float = 0.0) -> TrafficState:
    return TrafficState(
        stable_version="2.4.0",
        new_version="2.4.1",
        new_weight=weight,
        mirror=mirror,
        instances_total=10,
        instances_updated=max(1, int(weight / 10)),
        release_id=RELEASE,
    )


STABLE = TrafficState(stable_version="2.4.0", instances_total=10, release_id=RELEASE)
PROMOTED = TrafficState(stable_version="2.4.1", instances_total=10, release_id=RELEASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- signatures ---------------------------------------------------------------------------


def test_a_signature_verifies_with_its_secret_only() -> None:
    body, now = b'{"action":"deploy"}', 1_800_000_000
    sig = signing.signature_header(SECRET, now, body)
    assert sig.startswith("v1=")
    assert signing.verify(SECRET, str(now), body, sig, now=now)
    assert signing.verify(SECRET, now, body, sig.removeprefix("v1="), now=now)
    assert not signing.verify("another-secret", now, body, sig, now=now)
    assert not signing.verify(SECRET, now, body + b" ", sig, now=now)  # tampered body
    assert not signing.verify(SECRET, now + 1, body, sig, now=now)  # tampered timestamp
    assert not signing.verify(SECRET, "soon", body, sig, now=now)
    assert not signing.verify(SECRET, now, body, "v1=", now=now)


def test_stale_and_future_timestamps_are_refused() -> None:
    body, sent = b"{}", 1_800_000_000
    sig = signing.signature_header(SECRET, sent, body)
    assert signing.verify(SECRET, sent, body, sig, now=sent + 300)
    assert not signing.verify(SECRET, sent, body, sig, now=sent + 301)
    assert not signing.verify(SECRET, sent, body, sig, now=sent - 301)
    assert signing.verify(SECRET, sent, body, sig, now=sent + 1000, tolerance=1000)


@settings(deadline=None, max_examples=50)
@given(secret=st.text(min_size=1), body=st.binary(min_size=1), flip=st.integers(0, 10_000))
def test_any_changed_byte_breaks_the_signature(secret: str, body: bytes, flip: int) -> None:
    sig = signing.signature_header(secret, 1000, body)
    assert signing.verify(secret, 1000, body, sig, now=1000)
    i = flip % len(body)
    tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    assert not signing.verify(secret, 1000, tampered, sig, now=1000)


# -- settings -----------------------------------------------------------------------------


def test_settings_defaults_and_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = WebhookSettings.model_validate({"router": "webhook", "url": "https://cd.example/hook"})
    assert (
        s.secret_env,
        s.timeout_seconds,
        s.retries,
        s.backoff_seconds,
        s.stable_version,
        s.image,
    ) == ("RELEASE_BOT_WEBHOOK_SECRET", 5.0, 3, 0.5, None, None)
    with pytest.raises(ValueError) as unset:
        s.secret()
    message = str(unset.value)
    assert "RELEASE_BOT_WEBHOOK_SECRET is not set" in message and "\n" not in message
    monkeypatch.setenv("RELEASE_BOT_WEBHOOK_SECRET", "x")
    assert s.secret() == "x"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"url": "cd.example/hook"}, "url must be an http:// or https:// address"),
        ({"url": "http://:80/x"}, "url must be"),
        ({"url": "http://cd.example:port/x"}, "url must be"),
        ({"secret_env": "my secret"}, "secret_env names an environment variable"),
        ({"image": "registry/payments-api:latest"}, "image must be a template with {version}"),
        ({"image": "registry/{service}:{version}"}, "no other placeholder"),
        ({"retries": -1}, "greater than or equal to 0"),
        ({"secret": "inline"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_mistakes_name_the_fix(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        WebhookSettings.model_validate(
            {"router": "webhook", "url": "http://cd.example/hook", **overrides}
        )
    assert fragment in str(exc.value)


# -- what apply sends ---------------------------------------------------------------------


def test_a_canary_lifecycle_sends_deploy_weights_then_promote(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(
        receiver.root + "/hooks/release-bot",
        database,
        image="registry.example.com/payments-api:{version}",
    )
    assert router.apply(TARGET, canary(10)) == canary(10)
    router.apply(TARGET, canary(50))
    router.apply(TARGET, PROMOTED)
    assert receiver.actions() == ["deploy", "set_weight", "set_weight", "promote"]
    assert all(c.verified for c in receiver.calls)

    expected = [
        ("deploy", "2.4.1", "2.4.0", 0.0),
        ("set_weight", "2.4.1", "2.4.0", 10.0),
        ("set_weight", "2.4.1", "2.4.0", 50.0),
        ("promote", "2.4.1", "2.4.0", 100.0),
    ]
    states = [None, canary(0), canary(10), canary(50)]  # what the CD ran before each call
    for call, (action, version, stable, weight), since in zip(
        receiver.calls, expected, states, strict=True
    ):
        body = call.body
        key = idempotency_key(RELEASE, action, TARGET, version, weight, since=since)
        assert body["action"] == action
        assert (body["version"], body["stable_version"], body["weight"]) == (
            version,
            stable,
            weight,
        )
        assert (body["service"], body["environment"], body["region"]) == (
            "payments-api",
            "prod",
            "eu-west-1",
        )
        assert body["release_id"] == RELEASE
        assert body["mirror"] == 0.0 and body["flag"] is None
        assert body["idempotency_key"] == key == call.headers["Idempotency-Key"]
        assert call.headers["Content-Type"] == "application/json"
        assert call.headers["X-Release-Bot-Signature"].startswith("v1=")
        assert datetime.fromisoformat(body["sent_at"]).tzinfo is not None
    assert receiver.calls[0].body["image"] == "registry.example.com/payments-api:2.4.1"
    assert all("image" not in c.body for c in receiver.calls[1:])
    assert len({c.body["idempotency_key"] for c in receiver.calls}) == 4

    router.apply(TARGET, PROMOTED)  # converged: nothing more to say
    assert len(receiver.calls) == 4
    assert router.state(TARGET) == PROMOTED


def test_reapplying_the_same_state_sends_nothing(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database)
    router.apply(TARGET, canary(10))
    router.apply(TARGET, canary(10))
    # A new router on the same database (a restart) remembers what was acknowledged.
    make_router(receiver.root, database).apply(TARGET, canary(10))
    assert receiver.actions() == ["deploy", "set_weight"]


def test_a_rollback_sends_rollback(receiver: Receiver, database: Database, secret: str) -> None:
    router = make_router(receiver.root, database)
    router.apply(TARGET, canary(10))
    router.apply(TARGET, STABLE)
    assert receiver.actions() == ["deploy", "set_weight", "rollback"]
    body = receiver.calls[-1].body
    assert (body["version"], body["stable_version"], body["weight"]) == ("2.4.1", "2.4.0", 0.0)
    assert router.state(TARGET) == STABLE


def test_mirroring_is_set_weight_with_a_mirror_field(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database)
    router.apply(TARGET, canary(0, mirror=100))
    router.apply(TARGET, canary(10))
    assert receiver.actions() == ["deploy", "set_weight", "set_weight"]
    shadow, first = receiver.calls[1].body, receiver.calls[2].body
    assert (shadow["weight"], shadow["mirror"]) == (0.0, 100.0)
    assert (first["weight"], first["mirror"]) == (10.0, 0.0)
    assert shadow["idempotency_key"] != idempotency_key(RELEASE, "set_weight", TARGET, "2.4.1", 0)


@pytest.mark.parametrize(
    ("before", "after", "actions"),
    [
        (None, STABLE, []),  # the CD runs the stable version already
        (None, canary(0).model_copy(update={"instances_updated": 10}), ["deploy"]),  # green
        (canary(0), canary(100), ["set_weight"]),  # blue-green switch
        (canary(100), PROMOTED, ["promote"]),
        (canary(100), STABLE, ["rollback"]),
        (PROMOTED, PROMOTED.model_copy(update={"instances_total": 12}), []),
        (None, canary(100).model_copy(update={"flag": "new-ledger"}), ["deploy", "set_weight"]),
    ],
)
def test_calls_for_each_change(
    before: TrafficState | None, after: TrafficState, actions: list[str]
) -> None:
    assert [c.action for c in calls_for(before, after)] == actions


def test_a_crash_between_calls_resumes_where_it_stopped(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database, retries=0)
    receiver.script.extend([200, 503])  # deploy acknowledged, then the CD falls over
    with pytest.raises(RouterUnavailable):
        router.apply(TARGET, canary(10))
    assert router.state(TARGET) == canary(10).model_copy(update={"new_weight": 0.0})
    router.apply(TARGET, canary(10))
    assert receiver.actions() == ["deploy", "set_weight", "set_weight"]
    keys = [c.headers["Idempotency-Key"] for c in receiver.calls]
    assert keys[1] == keys[2] != keys[0]
    assert router.state(TARGET) == canary(10)


def test_the_configured_stable_version_is_known_until_the_cd_acknowledges(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database, stable_version="2.4.0")
    other = Target(service="payments-api", env="staging", region="eu-west-1")
    assert router.state(TARGET) == TrafficState(stable_version="2.4.0")
    assert router.state(other) == TrafficState(stable_version="2.4.0")
    assert router.rehearse_rollback(other, "2.4.1") is True
    assert receiver.calls[-1].body["stable_version"] == "2.4.0"

    router.apply(TARGET, canary(10))
    assert router.state(TARGET) == canary(10)
    router.apply(TARGET, PROMOTED)
    # From now on what the CD acknowledged wins over the setting.
    assert router.state(TARGET).stable_version == "2.4.1"
    assert router.state(other) == TrafficState(stable_version="2.4.0")  # still untouched
    assert router.rehearse_rollback(TARGET, "2.4.2") is True
    assert receiver.calls[-1].body["stable_version"] == "2.4.1"
    # Without the setting the first release starts from nothing known.
    assert make_router(receiver.root, database).state(other) == TrafficState()


@pytest.mark.parametrize(
    ("act", "actions"),
    [
        pytest.param(lambda r: r.apply(TARGET, canary(10)), ["deploy", "set_weight"], id="apply"),
        pytest.param(
            lambda r: r.rehearse_rollback(TARGET, "2.4.1"),
            ["rehearse_rollback"],
            id="rehearse_rollback",
        ),
    ],
)
def test_the_database_lock_is_free_while_the_receiver_answers(
    receiver: Receiver,
    database: Database,
    secret: str,
    act: Callable[[WebhookRouter], object],
    actions: list[str],
) -> None:
    router = make_router(receiver.root, database, timeout_seconds=60)
    receiver.gate = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            act(router)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    worker = threading.Thread(target=run, name="webhook-apply", daemon=True)
    worker.start()
    try:
        assert receiver.received.wait(30), "the receiver never got the call"
        # This thread is not the one sending: it gets the lock while the receiver holds
        # its answer back.
        took = database.lock.acquire(timeout=30)
        assert took, "database.lock was held across the HTTP call"
        database.lock.release()
    finally:
        receiver.gate.set()
        worker.join(30)
    assert not worker.is_alive() and failures == []
    assert receiver.actions() == actions
    if actions[0] == "deploy":
        assert router.state(TARGET) == canary(10)  # each call recorded once acknowledged


# -- retries and failures -----------------------------------------------------------------


def test_500_twice_then_200_succeeds_on_the_third_attempt(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database)
    router.apply(TARGET, canary(0))  # deployed: the next apply is one call
    receiver.calls.clear()
    receiver.fail(2)
    sleeps = Sleeps()
    router.sleep = sleeps
    router.apply(TARGET, canary(10))
    assert receiver.actions() == ["set_weight"] * 3
    assert len({c.headers["Idempotency-Key"] for c in receiver.calls}) == 1
    assert all(c.verified for c in receiver.calls)
    assert sleeps == [0.5, 1.0]
    assert router.state(TARGET) == canary(10)


def test_backoff_grows_and_is_capped(database: Database) -> None:
    router = make_router("http://127.0.0.1:9/", database, backoff_seconds=0.5)
    assert [router.backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_a_400_is_not_retried(receiver: Receiver, database: Database, secret: str) -> None:
    sleeps = Sleeps()
    router = make_router(receiver.root, database, sleeps)
    receiver.status = 400
    with pytest.raises(RouterUnavailable) as exc:
        router.apply(TARGET, canary(10))
    message = str(exc.value)
    assert receiver.actions() == ["deploy"] and sleeps == []
    assert "HTTP 400" in message and "told to answer 400" in message
    assert receiver.root in message and "deploy 2.4.1" in message
    assert TARGET.describe() in message and "after 1 attempt (not retried)" in message
    assert "\n" not in message
    assert router.state(TARGET) == TrafficState()  # nothing was acknowledged


def test_a_wrong_secret_is_refused_by_the_receiver(
    receiver: Receiver, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASE_BOT_WEBHOOK_SECRET", "not-the-receivers")
    with pytest.raises(RouterUnavailable, match="HTTP 401"):
        make_router(receiver.root, database).apply(TARGET, canary(10))
    assert [c.verified for c in receiver.calls] == [False]


def test_a_hanging_receiver_times_out_after_the_retries(
    receiver: Receiver, database: Database, secret: str
) -> None:
    sleeps = Sleeps()
    router = make_router(receiver.root, database, sleeps, timeout_seconds=0.2, retries=2)
    receiver.hang = True
    with pytest.raises(RouterUnavailable) as exc:
        router.apply(TARGET, canary(10))
    assert "no answer within 0.2 s" in str(exc.value)
    assert "after 3 attempts" in str(exc.value)
    assert receiver.actions() == ["deploy"] * 3 and sleeps == [0.5, 1.0]


def test_nothing_listening_is_unavailable(database: Database, secret: str) -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(RouterUnavailable) as exc:
        make_router(url, database, sleeps).apply(TARGET, canary(10))
    message = str(exc.value)
    assert url in message and "connection refused" in message and "after 4 attempts" in message
    assert sleeps == [0.5, 1.0, 2.0]


def test_an_unset_secret_fails_before_sending(receiver: Receiver, database: Database) -> None:
    with pytest.raises(RouterUnavailable, match="RELEASE_BOT_WEBHOOK_SECRET is not set"):
        make_router(receiver.root, database).apply(TARGET, canary(10))
    assert receiver.calls == []


# -- the rehearsal and refusals -----------------------------------------------------------


def test_rehearse_rollback_reads_ok_from_the_answer(
    receiver: Receiver, database: Database, secret: str
) -> None:
    router = make_router(receiver.root, database)
    router.apply(TARGET, PROMOTED)
    assert router.rehearse_rollback(TARGET, "2.4.2") is True
    receiver.answer = {"ok": False, "reason": "rollout is Degraded"}
    assert router.rehearse_rollback(TARGET, "2.4.2") is False
    body = receiver.calls[-1].body
    assert (body["action"], body["version"], body["stable_version"]) == (
        "rehearse_rollback",
        "2.4.2",
        "2.4.1",
    )
    keys = {c.headers["Idempotency-Key"] for c in receiver.calls}
    assert len(keys) == 2  # each rehearsal is a new request
    receiver.answer = "rehearsed, probably"
    with pytest.raises(RouterUnavailable, match=r'without a JSON \{"ok": true\|false\}'):
        router.rehearse_rollback(TARGET, "2.4.2")
    receiver.status = 500
    with pytest.raises(RouterUnavailable, match="HTTP 500"):
        router.rehearse_rollback(TARGET, "2.4.2")


def test_every_strategy_is_left_to_the_cd(database: Database) -> None:
    router = make_router("http://127.0.0.1:9/", database)
    assert all(router.refusal("payments-api", s) is None for s in STRATEGIES)


def test_the_router_answers_for_its_own_service_only(database: Database) -> None:
    with pytest.raises(RouterUnavailable, match="routes payments-api"):
        make_router("http://127.0.0.1:9/", database).state(
            Target(service="search", env="prod", region="eu-west-1")
        )
