"""Users report problems with a release (`/release issue`, `release-bot issue`): audited as
``issue_reported`` (who, what, when), allowed while it runs and for days after it ended, and
counted by the report's ``user_feedback``, which says "not measured" where nobody could report."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import commands as cmd
from bot.bootstrap import Wiring, bootstrap
from bot.domain.feedback import REPORT_WINDOW
from bot.domain.notify import THREAD
from bot.domain.release import CommandRejected, Release
from bot.ports.notify import Stakeholders
from bot.service import Services, approve, reconcile, report, report_issue, rollback, start_release
from tests.conftest import cli
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import ALICE, DAVE, EVE, RunningApp, wait_until

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
PAYMENTS = 'payments-api 2.4.1 risk=medium ticket=CHG-1 changes="faster checkout"'


@pytest.fixture
def wiring() -> Iterator[Wiring]:
    wired = bootstrap(":memory:", clock_start=START)  # the terminal as the chat
    yield wired
    wired.close()


def _in_a_thread(wiring: Wiring) -> Services:
    """The services as when a chat thread tells people of the release."""
    stakeholders = Stakeholders(thread=THREAD, by_service={})
    return dataclasses.replace(wiring.services, stakeholders=stakeholders)


def _ticks(wiring: Wiring, services: Services, n: int, seconds: float | None = None) -> None:
    assert wiring.virtual_clock is not None
    for _ in range(n):
        wiring.virtual_clock.advance(seconds or services.tick_seconds)
        reconcile(services)


def _rolling_out(wiring: Wiring, services: Services) -> Release:
    release = start_release(services, PAYMENTS, "dave", channel="C0REL")
    assert isinstance(release, Release), release
    approve(services, release.id, "alice")
    for _ in range(200):
        if services.store.get(release.id).status == "rolling_out":
            break
        _ticks(wiring, services, 1)
    return services.store.get(release.id)


def test_a_reported_problem_is_audited_and_counted(wiring: Wiring) -> None:
    services = _in_a_thread(wiring)
    release = _rolling_out(wiring, services)
    before = report(services, release.id).post_deployment.user_feedback
    assert (before.measured, before.sentiment, before.issues_reported) == (True, "neutral", 0)

    report_issue(services, release.id, "erin", "  checkout   spins forever\non Safari ")
    (event,) = [e for e in services.store.events(release.id) if e.action == "issue_reported"]
    assert (event.actor, event.details) == ("erin", "checkout spins forever on Safari")
    assert event.at == wiring.services.clock.now()
    report_issue(services, release.id, "frank", "refunds fail")

    contract = report(services, release.id)
    feedback = contract.post_deployment.user_feedback
    assert (feedback.measured, feedback.sentiment, feedback.issues_reported) == (
        True,
        "negative",
        2,
    )
    audited = [(a.action, a.actor) for a in contract.compliance.audit_trail]
    assert ("issue_reported", "erin") in audited and ("issue_reported", "frank") in audited


def test_nobody_could_report_in_a_terminal_so_feedback_is_not_measured(wiring: Wiring) -> None:
    # The issue: user_feedback was always neutral/0, even where nobody could report.
    release = _rolling_out(wiring, wiring.services)
    rollback(wiring.services, release.id, "alice", "checkout errors")
    _ticks(wiring, wiring.services, 5)
    feedback = report(wiring.services, release.id).post_deployment.user_feedback
    assert (feedback.measured, feedback.sentiment, feedback.issues_reported) == (False, None, None)
    report_issue(wiring.services, release.id, "erin", "checkout broke for me")  # yet one did
    feedback = report(wiring.services, release.id).post_deployment.user_feedback
    assert (feedback.measured, feedback.sentiment, feedback.issues_reported) == (
        True,
        "negative",
        1,
    )


def test_a_problem_may_be_reported_for_days_after_the_end_then_is_refused(
    wiring: Wiring,
) -> None:
    services = _in_a_thread(wiring)
    release = _rolling_out(wiring, services)
    rollback(services, release.id, "alice", "checkout errors")
    _ticks(wiring, services, 5)
    assert services.store.get(release.id).status == "rolled_back"
    _ticks(wiring, services, 1, seconds=3 * 86_400)
    report_issue(services, release.id, "erin", "a charge went through twice")
    _ticks(wiring, services, 1, seconds=REPORT_WINDOW.total_seconds())
    with pytest.raises(CommandRejected, match=r"ended on .* more than 7 days ago: report"):
        report_issue(services, release.id, "erin", "still broken")
    with pytest.raises(CommandRejected, match="is empty; say what is wrong: /release issue"):
        report_issue(services, release.id, "erin", "   ")
    with pytest.raises(CommandRejected, match="at most 1000"):
        report_issue(services, release.id, "erin", "x" * 1001)
    reported = [e for e in services.store.events(release.id) if e.action == "issue_reported"]
    assert len(reported) == 1


def test_the_subcommand_needs_an_id_and_what_is_wrong() -> None:
    assert cmd.parse_command("issue rel-1 checkout fails") == cmd.Issue("rel-1", "checkout fails")
    assert cmd.parse_command('ISSUE rel-1 "it fails"') == cmd.Issue("rel-1", "it fails")
    with pytest.raises(cmd.CommandError, match="`issue` needs a release ID"):
        cmd.parse_command("issue")
    with pytest.raises(cmd.CommandError, match="needs what is wrong after the ID"):
        cmd.parse_command("issue rel-1")


def test_release_issue_in_slack_records_who_reported_it(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path).start()
        try:
            status, _, _ = app.command('shop 1.2.0 risk=medium ticket=CHG-1 changes="x"', DAVE)
            assert status == 200
            release_id = str(
                wait_until(
                    lambda: [
                        r["id"]
                        for r in app.services.store.listing(limit=1)
                        if r["status"] == "awaiting_approval"
                    ],
                    what="a release awaiting approval",
                )[0]
            )
            approve(app.services, release_id, ALICE)
            status, _, _ = app.command(f"issue {release_id[:12]} search returns nothing", EVE, "i")
            assert status == 200
            (answer,) = wait_until(lambda: fake.responses("i"), what="the answer")
            assert "recorded in its audit trail" in answer["text"]
            events = app.services.store.events(release_id)
            (event,) = [e for e in events if e.action == "issue_reported"]
            assert (event.actor, event.details) == (EVE, "search returns nothing")
            feedback = report(app.services, release_id).post_deployment.user_feedback
            assert (feedback.sentiment, feedback.issues_reported) == ("negative", 1)
        finally:
            app.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout=120)


def test_release_bot_issue_records_it_and_refuses_a_bad_id(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    wired = bootstrap(str(db), clock_start=START)
    try:
        started = start_release(wired.services, PAYMENTS, "dave")
        assert isinstance(started, Release), started
    finally:
        wired.close()
    done = _cli("issue", started.id[:16], "refunds", "are", "late", "--as", "erin", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"{started.id}: problem recorded in its audit trail"
    assert "issue reported [erin]: refunds are late" in done.stdout  # told in the thread
    contract = _cli("report", started.id, "--db", str(db))
    assert '"issues_reported": 1' in contract.stdout
    for bad in (("rel-nope", "broken"), (started.id, " ")):
        refused = _cli("issue", *bad, "--db", str(db))
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
