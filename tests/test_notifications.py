"""Stakeholders really notified: PagerDuty and Statuspage through their HTTP APIs (local
fakes on 127.0.0.1:0), the incident channel in Slack, each delivery recorded with its outcome
and retried with backoff, and the report's two communication fields read from them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from bot.adapters.pagerduty.notify import PagerDutyNotifier, PagerDutySettings
from bot.adapters.statuspage.notify import StatuspageNotifier, StatuspageSettings
from bot.bootstrap import Wiring, bootstrap
from bot.config import ConfigError
from bot.domain.notify import THREAD
from bot.domain.release import Release
from bot.ports.notify import AbstractNotifier, Notice, NotificationFailed, Stakeholders
from bot.service import Services, approve, reconcile, report, rollback, start_release
from bot.service.notifications import BEGUN, deliveries
from tests.fake_notify_apis import FakePagerDuty, FakeStatuspage
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import (
    ALICE,
    CONFIG,
    DAVE,
    RunningApp,
    thread_messages,
    wait_until,
)

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # outside payments-api's peak hours
PAYMENTS = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'
ENV = {"PAGERDUTY_ROUTING_KEY": "R0UTINGKEY", "STATUSPAGE_API_KEY": "SP-KEY"}
NOTICE = Notice("rel-1", "payments-api", "2.4.1", "rolled_back", "payments-api 2.4.1 rolls back")


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


@pytest.fixture
def statuspage() -> Iterator[FakeStatuspage]:
    with FakeStatuspage() as server:
        yield server


@pytest.fixture
def wiring() -> Iterator[Wiring]:
    wired = bootstrap(":memory:", clock_start=START)  # the terminal as the chat
    yield wired
    wired.close()


def _pagerduty(url: str, env: dict[str, str] = ENV) -> PagerDutyNotifier:
    return PagerDutyNotifier(PagerDutySettings(url=url), env)


def _statuspage(
    url: str, env: dict[str, str] = ENV, timeout_seconds: float = 5.0
) -> StatuspageNotifier:
    settings = StatuspageSettings(
        page_id="PAGE1", url=url, component_ids=["cmp1"], timeout_seconds=timeout_seconds
    )
    return StatuspageNotifier(settings, env)


def _told(wiring: Wiring, *notifiers: AbstractNotifier, thread: str | None = None) -> Services:
    """The wired services, payments-api's stakeholders being ``notifiers``."""
    stakeholders = Stakeholders(thread=thread, by_service={"payments-api": list(notifiers)})
    return dataclasses.replace(wiring.services, stakeholders=stakeholders)


def _ticks(wiring: Wiring, services: Services, n: int) -> None:
    assert wiring.virtual_clock is not None
    for _ in range(n):
        wiring.virtual_clock.advance(services.tick_seconds)
        reconcile(services)  # raises nothing, whatever the targets answer


def _rolled_back(wiring: Wiring, services: Services) -> Release:
    """payments-api started, approved, rolling out, then rolled back by hand."""
    release = start_release(services, PAYMENTS, "dave", channel="C0REL")
    assert isinstance(release, Release), release
    approve(services, release.id, "alice")
    for _ in range(200):
        if services.store.get(release.id).status == "rolling_out":
            break
        _ticks(wiring, services, 1)
    rollback(services, release.id, "alice", "checkout errors")
    _ticks(wiring, services, 5)
    return services.store.get(release.id)


# -- the adapters against the APIs ------------------------------------------------------------


def test_pagerduty_alert_is_triggered_then_resolved_with_the_release_as_dedup_key(
    pagerduty: FakePagerDuty,
) -> None:
    notifier = _pagerduty(pagerduty.root)
    notifier.send(NOTICE)
    assert pagerduty.alerts == {"rel-1": "triggered"}
    trigger = pagerduty.requests[0].body
    assert trigger["payload"]["summary"] == NOTICE.text
    assert trigger["payload"]["component"] == "payments-api"
    notifier.send(dataclasses.replace(NOTICE, moment="completed"))
    assert pagerduty.alerts == {"rel-1": "resolved"}


def test_statuspage_incident_is_opened_on_the_page_with_its_components(
    statuspage: FakeStatuspage,
) -> None:
    assert _statuspage(statuspage.root).send(NOTICE) == "inc1"
    (incident,) = statuspage.incidents
    assert incident["name"] == "payments-api: release 2.4.1 rolled back [rel-1]"
    assert incident["components"] == {"cmp1": "degraded_performance"}
    assert incident["body"] == NOTICE.text


def test_a_statuspage_call_that_timed_out_after_creating_is_not_created_twice(
    statuspage: FakeStatuspage,
) -> None:
    # The issue: a retry after a timeout opened a second incident for the same release.
    notifier = _statuspage(statuspage.root, timeout_seconds=0.2)
    statuspage.time_out_after_create(1.0)
    with pytest.raises(NotificationFailed, match=r"did not answer within 0\.2 s"):
        notifier.send(NOTICE)
    assert len(statuspage.incidents) == 1  # created all the same

    assert notifier.send(NOTICE) == "inc1"  # the retry finds it and updates it
    (incident,) = statuspage.incidents
    assert incident["body"] == NOTICE.text and incident["status"] == "identified"
    assert [r.method for r in statuspage.requests] == ["GET", "POST", "GET", "PATCH"]
    # Another release's rollback is another incident.
    notifier.send(dataclasses.replace(NOTICE, release_id="rel-2"))
    assert [i["id"] for i in statuspage.incidents] == ["inc1", "inc2"]


def test_a_rollback_retried_after_a_statuspage_timeout_leaves_one_incident(
    wiring: Wiring, statuspage: FakeStatuspage
) -> None:
    statuspage.time_out_after_create(1.0)
    services = _told(wiring, _statuspage(statuspage.root, timeout_seconds=0.2))
    release = _rolled_back(wiring, services)
    _ticks(wiring, services, 5)  # the retry, after its backoff
    (delivery,) = deliveries(services, release.id)
    assert delivery.status == "delivered" and delivery.attempts == 2
    assert len(statuspage.incidents) == 1 and delivery.reference == "inc1"


def test_a_refusal_or_a_missing_key_is_one_line_naming_it(
    pagerduty: FakePagerDuty, statuspage: FakeStatuspage
) -> None:
    with pytest.raises(NotificationFailed, match=r"answered HTTP 400: .*routing_key"):
        _pagerduty(pagerduty.root, {"PAGERDUTY_ROUTING_KEY": "wrong"}).send(NOTICE)
    with pytest.raises(NotificationFailed, match=r"answered HTTP 401"):
        _statuspage(statuspage.root, {"STATUSPAGE_API_KEY": "wrong"}).send(NOTICE)
    with pytest.raises(NotificationFailed, match="STATUSPAGE_API_KEY is not set"):
        _statuspage(statuspage.root, {}).send(NOTICE)
    assert statuspage.incidents == []


# -- deliveries, recorded and retried ----------------------------------------------------------


def test_a_rollback_alerts_pagerduty_and_opens_a_statuspage_incident(
    wiring: Wiring, pagerduty: FakePagerDuty, statuspage: FakeStatuspage
) -> None:
    services = _told(wiring, _pagerduty(pagerduty.root), _statuspage(statuspage.root))
    release = _rolled_back(wiring, services)

    assert pagerduty.alerts == {release.id: "triggered"}
    assert len(statuspage.incidents) == 1 and "checkout errors" in statuspage.incidents[0]["body"]
    told = {(d.target, d.moment): d.status for d in deliveries(services, release.id)}
    assert told == {
        ("PagerDuty", "rolled_back"): "delivered",
        ("Statuspage", "rolled_back"): "delivered",
    }
    communication = report(services, release.id).deployment_artifacts.communication
    assert communication.stakeholders_notified and communication.status_page_updated


def test_a_refused_target_is_recorded_and_retried_with_backoff(
    wiring: Wiring, pagerduty: FakePagerDuty
) -> None:
    pagerduty.refuse(503, times=3)
    services = _told(wiring, _pagerduty(pagerduty.root))
    release = _rolled_back(wiring, services)
    assert release.status == "rolled_back"  # the refusals held nothing up

    (delivery,) = deliveries(services, release.id)
    assert delivery.status == "pending" and "HTTP 503" in (delivery.error or "")
    assert not report(services, release.id).deployment_artifacts.communication.stakeholders_notified
    _ticks(wiring, services, 30)  # the backoff: 10 s, 20 s, 40 s, then the fourth try passes
    (delivery,) = deliveries(services, release.id)
    assert delivery.status == "delivered" and delivery.attempts == 4
    assert len(pagerduty.requests) == 4 and pagerduty.alerts == {release.id: "triggered"}
    assert report(services, release.id).deployment_artifacts.communication.stakeholders_notified


class Watching(AbstractNotifier):
    """A target that refuses its first notice and notes, at each send, what the log already
    says of the delivery being sent (what a process killed in the send would leave)."""

    moments = frozenset({"rolled_back"})
    target = "#watching"

    def __init__(self) -> None:
        self.services: Services | None = None
        self.seen: list[tuple[bool, int, str | None]] = []

    def send(self, notice: Notice) -> str:
        assert self.services is not None
        (delivery,) = deliveries(self.services, notice.release_id)
        self.seen.append((notice.retry, delivery.attempts, delivery.error))
        if len(self.seen) == 1:
            raise NotificationFailed("refused once")
        return "ts-1"


def test_an_attempt_is_recorded_before_it_is_made(wiring: Wiring) -> None:
    """A process killed during a send leaves the attempt counted: the next one is a retry,
    which a target that can look (the Slack incident channel) checks against what it holds."""
    watching = Watching()
    services = watching.services = _told(wiring, watching)
    release = _rolled_back(wiring, services)
    _ticks(wiring, services, 10)

    assert watching.seen == [(False, 1, BEGUN), (True, 2, BEGUN)]
    (delivery,) = deliveries(services, release.id)
    assert (delivery.status, delivery.attempts, delivery.reference) == ("delivered", 2, "ts-1")


def test_an_unreachable_target_never_raises_into_the_tick(wiring: Wiring) -> None:
    with FakeStatuspage() as gone:
        url = gone.root  # a port nothing listens on once the fake is stopped
    services = _told(wiring, _statuspage(url))
    release = _rolled_back(wiring, services)
    assert release.status == "rolled_back"
    (delivery,) = deliveries(services, release.id)
    assert delivery.status == "pending" and "refused the connection" in (delivery.error or "")
    assert not report(services, release.id).deployment_artifacts.communication.status_page_updated


def test_the_terminal_alone_notifies_no_stakeholder(wiring: Wiring) -> None:
    # The issue: stakeholders_notified was true when the only chat was the terminal.
    release = _rolled_back(wiring, wiring.services)
    assert deliveries(wiring.services, release.id) == []
    communication = report(wiring.services, release.id).deployment_artifacts.communication
    assert not communication.stakeholders_notified and not communication.status_page_updated


def test_the_thread_counts_once_the_outbox_posted_each_moment(wiring: Wiring) -> None:
    services = _told(wiring, thread=THREAD)
    release = _rolled_back(wiring, services)
    told = [(d.target, d.moment, d.status) for d in deliveries(services, release.id)]
    assert told == [(THREAD, "started", "delivered"), (THREAD, "rolled_back", "delivered")]


# -- the config, checked at start-up -------------------------------------------------------------


def test_a_notification_target_without_its_secret_or_with_a_mistake_is_refused_at_start(
    tmp_path: Path,
) -> None:
    config = tmp_path / "services.toml"
    config.write_text(
        CONFIG
        + '[services.shop.pagerduty]\nrouting_key = "in-the-file"\n'
        + '[services.shop.statuspage]\npage_id = "PAGE1"\n'
    )
    with pytest.raises(ConfigError) as refused:
        bootstrap(":memory:", config_path=config)
    lines = str(refused.value).splitlines()
    assert any("services.shop.pagerduty.routing_key: Extra inputs" in line for line in lines)
    assert any("STATUSPAGE_API_KEY is not set" in line for line in lines)


# -- Slack end to end: a rollback posts to the incident channel -----------------------------------


def test_a_rollback_posts_to_the_incident_channel(tmp_path: Path) -> None:
    (tmp_path / "services.toml").write_text(
        CONFIG.replace("[defaults]\n", '[defaults]\nincident_channel = "C0INCIDENTS"\n')
    )
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path).start()
        try:
            status, _, _ = app.command('shop 1.2.0 risk=medium ticket=CHG-1 changes="x"', DAVE)
            assert status == 200
            release_id = wait_until(  # stored, then its gates run: approved once they have
                lambda: [
                    r["id"]
                    for r in app.services.store.listing(limit=1)
                    if r["status"] == "awaiting_approval"
                ],
                what="a release awaiting approval",
            )[0]
            approve(app.services, str(release_id), ALICE)
            app.run_until(lambda r: r.status == "rolling_out")
            assert fake.messages("C0INCIDENTS") == []  # a start is not an incident
            rollback(app.services, str(release_id), ALICE, "checkout errors")
            app.run_until(lambda r: not r.is_active)

            (posted,) = fake.messages("C0INCIDENTS")
            assert "shop 1.2.0 is rolling back" in posted["text"]
            assert "checkout errors" in posted["text"]
            assert thread_messages(fake, posted["ts"]) == []  # its own message, not a thread
            told = {d.target: d.status for d in deliveries(app.services, release_id)}
            assert told == {THREAD: "delivered", "C0INCIDENTS": "delivered"}
            contract = report(app.services, release_id)
            assert contract.deployment_artifacts.communication.stakeholders_notified

            # The final report in the thread was built once the rollback was told.
            final = _uploaded_report(fake, str(release_id))
            assert final["status"] == "rolled_back"
            told = final["deployment_artifacts"]["communication"]["notifications"]
            assert {
                "where": "incident_channel",
                "target": "C0INCIDENTS",
                "moment": "rolled_back",
                "status": "delivered",
            }.items() <= next(n for n in told if n["where"] == "incident_channel").items()
            assert [(n["where"], n["moment"]) for n in told] == [
                ("thread", "started"),
                ("thread", "rolled_back"),
                ("incident_channel", "rolled_back"),
            ]
        finally:
            app.stop()


def _uploaded_report(fake: FakeSlack, release_id: str) -> dict[str, Any]:
    """The report JSON the bot uploaded to the release's thread."""
    for call in fake.calls("files.completeUploadExternal"):
        for entry in call.params["files"]:
            body = json.loads(fake.uploaded(entry["id"]))
            if body.get("release_id") == release_id:
                return cast(dict[str, Any], body)
    raise AssertionError(f"no report of {release_id} was uploaded")


def test_the_final_report_in_the_thread_says_the_failure_was_told(tmp_path: Path) -> None:
    # The issue: the final report was built before the final moment's notifications went out,
    # so the failure it describes was missing from who was told.
    (tmp_path / "services.toml").write_text(
        CONFIG.replace("[defaults]\n", '[defaults]\nincident_channel = "C0INCIDENTS"\n')
    )
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path)
        app.wired.wiring.fleet.inject("shop", "1.2.0", ["check:security_scan=fail"])
        app.start()
        try:
            status, _, _ = app.command('shop 1.2.0 risk=medium ticket=CHG-1 changes="x"', DAVE)
            assert status == 200
            release_id = wait_until(
                lambda: [r["id"] for r in app.services.store.listing(limit=1)],
                what="a release",
            )[0]
            final = wait_until(
                lambda: _maybe_uploaded_report(fake, str(release_id)), what="the final report"
            )
            assert final["status"] == "failed"
            told = final["deployment_artifacts"]["communication"]["notifications"]
            incident = [n for n in told if n["where"] == "incident_channel"]
            assert [(n["moment"], n["status"]) for n in incident] == [("failed", "delivered")]
            assert len(fake.messages("C0INCIDENTS")) == 1
        finally:
            app.stop()


def _maybe_uploaded_report(fake: FakeSlack, release_id: str) -> dict[str, Any] | None:
    try:
        return _uploaded_report(fake, release_id)
    except AssertionError:
        return None
