"""A held step asks its approvers (issue 17; issue 16's stable-breaks hold): past its maximum
bake without a verdict, or on a bound the stable version breaks too, the step waits in the
thread with the evidence and three options: extend the bake (bounded), promote on a recorded
override, roll back. The engine never decides it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.judge import MAXIMUM_BAKE_FACTOR, maximum_bake
from bot.domain.observations import WindowSample
from bot.domain.release import (
    MAX_EXTENSION_MINUTES,
    MAX_EXTENSIONS,
    CommandRejected,
    Release,
)
from bot.slack import blocks
from tests.domain_helpers import (
    ERROR_RATE,
    MINUTE,
    T0,
    cohort,
    make_request,
    rail,
    run,
    started_release,
    tick,
)

SLA = rail("availability", ">=", 99.9, "percent")


def trickle(start: datetime, end: datetime) -> WindowSample:
    """A low-traffic canary: three requests a minute, never enough for a verdict."""
    return WindowSample(start=start, end=end, baseline=cohort(20_000), canary=cohort(3, 0))


def both_under_the_sla(start: datetime, end: datetime) -> WindowSample:
    """Baseline and canary both serve 99.7 %: the stable version breaks the SLA too."""
    return WindowSample(
        start=start, end=end, canary=cohort(5_000, 0.30), baseline=cohort(20_000, 0.32)
    )


def actions(release: Release) -> list[str]:
    return [e.action for e in release.collect_events()]


def until_step(release: Release, now: datetime, index: int) -> datetime:
    return run(release, now, stop=lambda r: r.step_index >= index)


def held_low_traffic(max_bake: float | None = None) -> tuple[Release, datetime]:
    """A medium-risk canary whose first prod step gets three requests a minute, ticked past
    its maximum bake (``maximum_bake``: 3× its bake, at most the plan's maximum)."""
    release = started_release(make_request(risk="medium"))
    if max_bake is not None:
        release.plan = release.plan.model_copy(update={"max_bake_minutes": max_bake})
    now = until_step(release, T0, 1)
    bake = release.plan.steps[1].bake_minutes
    for _ in range(int(maximum_bake(bake, release.plan.max_bake_minutes))):
        now += MINUTE
        tick(release, now, trickle)
    return release, now


def test_one_rule_for_the_maximum_bake_the_plan_the_judge_and_the_held_step_agree() -> None:
    assert maximum_bake(10, None) == 10 * MAXIMUM_BAKE_FACTOR
    assert maximum_bake(10, 25) == 25  # the service's maximum caps it
    assert maximum_bake(30, 20) == 30  # never shorter than the bake itself
    release, now = held_low_traffic(max_bake=25)
    held = release.held
    assert held is not None and held.cause == "no_verdict"
    assert held.baked_minutes == pytest.approx(25, abs=1)
    # not a minute earlier: the judge says the same
    assert release.canary_judge.past_maximum_bake(now, 25)
    started = release.steps[1].started_at
    assert started is not None
    assert not release.canary_judge.past_maximum_bake(started + 24 * MINUTE, 25)


def held_on_the_sla(risk: str = "low") -> tuple[Release, datetime]:
    request = make_request(risk=risk)
    rails = request.guardrails.model_copy(update={"error_rate": ERROR_RATE, "availability": SLA})
    release = started_release(request.model_copy(update={"guardrails": rails}))
    now = run(release, T0, both_under_the_sla, stop=lambda r: r.status != "rolling_out")
    return release, now


# -- the repro: a low-traffic canary past its maximum bake ------------------------------


def test_a_low_traffic_canary_past_its_maximum_bake_asks_its_approvers() -> None:
    release, now = held_low_traffic()
    assert release.status == "paused" and release.step_index == 1
    held = release.held
    assert held is not None and held.cause == "no_verdict" and held.step == 1
    assert held.canary_requests > 0 and held.baked_minutes >= release.plan.steps[1].bake_minutes
    assert any(line.startswith("error rate: canary 0% vs baseline") for line in held.evidence)
    [asked] = [e for e in release.collect_events() if e.action == "decision_requested"]
    assert "alice, bob: extend the bake" in asked.details
    assert "promote on a recorded override, or roll back" in asked.details
    assert asked.data["evidence"] == held.evidence
    # Nothing moves by itself while it waits.
    for _ in range(30):
        now += MINUTE
        tick(release, now, trickle)
    assert release.status == "paused" and release.step_index == 1


def test_the_held_step_is_promoted_on_a_recorded_override() -> None:
    release, now = held_low_traffic()
    release.promote_on_override("alice", "low traffic; the 1 % canary served 0 errors", now)
    assert release.held is None and release.status == "rolling_out"
    assert release.steps[1].status == "completed" and release.step_index == 2
    [decision] = release.decisions
    assert decision.outcome == "promoted_on_override" and decision.by == "alice"
    assert decision.describe() == (
        "promoted on override by alice: low traffic; the 1 % canary served 0 errors"
    )
    assert "promoted_on_override" in actions(release)


def test_an_override_needs_a_reason() -> None:
    release, now = held_low_traffic()
    with pytest.raises(CommandRejected, match="needs a reason"):
        release.promote_on_override("alice", "  ", now)
    assert release.held is not None and release.status == "paused"


def test_an_extension_judges_on_then_asks_again() -> None:
    release, now = held_low_traffic()
    release.extend_bake("bob", 20, "traffic picks up after lunch", now)
    assert release.status == "rolling_out" and release.held is None
    assert release.steps[1].status == "active"  # the same step, its evidence kept
    for _ in range(19):
        now += MINUTE
        tick(release, now, trickle)
        assert release.status == "rolling_out"
    now += MINUTE
    tick(release, now, trickle)
    assert release.status == "paused" and release.held is not None
    assert [d.describe() for d in release.decisions] == [
        "bake extended by bob by 20 min: traffic picks up after lunch"
    ]


def test_an_extension_that_brings_a_verdict_promotes_on_its_own() -> None:
    release, now = held_low_traffic()
    release.extend_bake("bob", 60, "", now)
    run(release, now, stop=lambda r: r.step_index > 1)
    assert release.steps[1].status == "completed" and release.status == "rolling_out"
    assert not any(d.outcome == "promoted_on_override" for d in release.decisions)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_an_extension_is_bounded(minutes: float) -> None:
    release, now = held_low_traffic()
    if 0 < minutes <= MAX_EXTENSION_MINUTES:
        release.extend_bake("bob", minutes, "", now)
        assert release.extended_until == now + timedelta(minutes=minutes)
    else:
        with pytest.raises(CommandRejected, match=f"by 1 to {MAX_EXTENSION_MINUTES:g} minutes"):
            release.extend_bake("bob", minutes, "", now)
        assert release.held is not None


def test_a_step_is_extended_a_bounded_number_of_times() -> None:
    release, now = held_low_traffic()
    for _ in range(MAX_EXTENSIONS):
        release.extend_bake("bob", 5, "", now)
        now = run(release, now, trickle, stop=lambda r: r.status == "paused")
        assert release.held is not None
    with pytest.raises(CommandRejected, match="promote it on an override or roll it back"):
        release.extend_bake("bob", 5, "", now)
    release.request_rollback("alice", "still no traffic", now)
    assert release.status == "rolling_back"
    assert release.decisions[-1].describe() == "rolled back by alice: still no traffic"


def test_resume_does_not_bypass_the_decision() -> None:
    release, now = held_low_traffic()
    with pytest.raises(CommandRejected, match="extend the bake, promote on an override"):
        release.resume("alice", now)


def test_no_decision_is_taken_on_a_step_that_is_not_held() -> None:
    release = started_release(make_request(risk="medium"))
    with pytest.raises(CommandRejected, match="no step waits for a decision"):
        release.promote_on_override("alice", "why not", T0)
    release.pause("alice", "a look", T0)
    with pytest.raises(CommandRejected, match=r"no step waits .*resume it or roll back"):
        release.extend_bake("alice", 10, "", T0)


# -- issue 16's leftover: the stable version breaks the SLA too ---------------------------------


def test_a_stable_breaks_hold_asks_its_approvers_too() -> None:
    release, _ = held_on_the_sla()
    assert release.status == "paused" and release.held is not None
    assert release.held.cause == "stable_breaks"
    assert "both under the 99.9 % SLA" in release.held.reason


def test_the_stable_breaks_release_can_be_promoted_on_override() -> None:
    release, now = held_on_the_sla()
    step = release.step_index
    release.promote_on_override("alice", "the SLA breach is the stable's; INC-42", now)
    assert release.steps[step].status == "completed"
    assert release.steps[step].health == "degraded"  # a bound broke; not called healthy
    run(release, now, both_under_the_sla, stop=lambda r: r.status == "paused")
    assert release.status in ("paused", "completed")


def test_the_stable_breaks_release_can_be_rolled_back() -> None:
    release, now = held_on_the_sla()
    release.request_rollback("bob", "wait for the stable fix", now)
    assert release.status == "rolling_back" and release.held is None
    assert release.decisions[-1].outcome == "rolled_back"


def test_an_extension_waits_for_the_stable_version_to_recover() -> None:
    release, now = held_on_the_sla()
    release.extend_bake("alice", 10, "the stable fix deploys now", now)
    for _ in range(9):  # the canary keeps its share; no new ask while the extension lasts
        now += MINUTE
        tick(release, now, both_under_the_sla)
        assert release.status == "rolling_out"
    now += MINUTE
    tick(release, now, both_under_the_sla)
    assert release.status == "paused" and release.held is not None


def test_an_override_of_a_high_risk_release_is_the_domain_s_to_record_not_to_police() -> None:
    # Who may override (approvers, four eyes) is the service's access check; the domain
    # records whoever it was given.
    release, now = held_on_the_sla(risk="low")
    release.promote_on_override("dave", "reason", now)
    assert release.decisions[-1].by == "dave"


# -- what the thread shows --------------------------------------------------------------------


def test_the_card_offers_the_decision_instead_of_resume() -> None:

    release, now = held_low_traffic()
    _, card = blocks.status_card(release, now)
    ids = list(blocks.iter_action_ids(card))
    assert ids == [blocks.EXTEND, blocks.OVERRIDE, blocks.ROLLBACK]
    assert "Held for a decision:* not enough evidence to promote" in str(card)
    text, asked = blocks.decision_request(release)
    assert text.startswith("✋ Decision needed") and len(asked) <= 50
    assert "no verdict past its maximum bake" in str(asked)
    release.extend_bake("bob", 5, "", now)
    _, card = blocks.status_card(release, now)
    assert blocks.EXTEND not in list(blocks.iter_action_ids(card))
