"""The access policy: who may do what, and where (table-driven), the effective approvers a
release starts with, and refused attempts audited on the release."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.access import Action, check
from bot.domain.config import Config, ServiceConfig
from bot.domain.locks import parse_scope, scope_parts, scopes_for
from bot.domain.release import CommandRejected, Release
from bot.service import approve, pause, promote_now, refused, resume, rollback, start_release
from tests.domain_helpers import make_request, new_release
from tests.test_locks import LINE, actions, started, tick_until, wired

CONFIG = Config(
    lock_admins=["root"],
    defaults=ServiceConfig(approvers=["release-managers"], allowed_channels=["C0RELEASES"]),
    services={
        "shop": ServiceConfig(approvers=["alice", "bob"]),
        "search": ServiceConfig(
            approvers=["carol"],
            environment_approvers={"prod": ["sre-lead"]},
            allowed_channels=["#search"],
        ),
    },
)


def release(risk: str = "medium", requested_by: str = "dave") -> Release:
    """A release of ``shop`` (approvers alice and bob) asked for by ``requested_by``."""
    return new_release(make_request(risk=risk), requested_by=requested_by)


ALLOWED = None

# (action, user, risk, requester, refusal fragment or ALLOWED)
RELEASE_CASES: list[tuple[Action, str, str, str, str | None]] = [
    ("approve", "alice", "medium", "dave", ALLOWED),
    ("approve", "mallory", "medium", "dave", "mallory cannot approve shop: its approvers are alice, bob"),
    ("approve", "dave", "medium", "dave", "dave cannot approve shop"),
    ("approve", "alice", "medium", "alice", ALLOWED),  # four eyes only from high risk
    ("approve", "alice", "high", "alice", "segregation of duties"),
    ("approve", "alice", "critical", "alice", "ask another approver (bob)"),
    ("approve", "bob", "high", "alice", ALLOWED),
    ("promote", "bob", "medium", "dave", ALLOWED),
    ("promote", "dave", "medium", "dave", "dave cannot promote shop"),
    ("promote", "alice", "high", "alice", "cannot also promote it (segregation of duties)"),
    ("reject", "alice", "high", "alice", ALLOWED),
    ("reject", "mallory", "medium", "dave", "mallory cannot reject shop"),
    ("resume", "bob", "medium", "dave", ALLOWED),
    ("resume", "dave", "medium", "dave", "dave cannot resume shop"),
    ("rollback", "dave", "medium", "dave", ALLOWED),  # the requester
    ("rollback", "alice", "medium", "dave", ALLOWED),
    ("rollback", "mallory", "medium", "dave", "only its requester (dave) or an approver (alice, bob)"),
    ("pause", "dave", "high", "dave", ALLOWED),
    ("pause", "bob", "medium", "dave", ALLOWED),
    ("pause", "mallory", "medium", "dave", "mallory cannot pause rel-1"),
    ("extend", "alice", "high", "alice", ALLOWED),  # more time is no more exposure
    ("extend", "dave", "medium", "dave", "dave cannot extend shop"),
    ("override", "bob", "high", "alice", ALLOWED),
    ("override", "alice", "medium", "alice", ALLOWED),
    ("override", "dave", "medium", "dave", "dave cannot promote on an override shop"),
    ("override", "alice", "high", "alice", "cannot also promote on an override it"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "user", "risk", "requester", "refusal"), RELEASE_CASES)
def test_release_actions(
    action: Action, user: str, risk: str, requester: str, refusal: str | None
) -> None:
    got = check(action, user, release(risk, requester), "C0ANY", CONFIG)
    if refusal is None:
        assert got is None
    else:
        assert got is not None and refusal in got, got
        assert "data/services.toml" in got or "segregation" in got


# (action, user, subject, channel, refusal fragment or ALLOWED)
SUBJECT_CASES: list[tuple[Action, str, str, str | None, str | None]] = [
    ("start", "anyone", "shop", "C0RELEASES", ALLOWED),  # the defaults' allowlist
    ("start", "anyone", "shop", "#C0RELEASES", ALLOWED),
    ("start", "anyone", "shop", "C0RANDOM", "shop releases are started only in C0RELEASES"),
    ("start", "anyone", "shop", None, ALLOWED),  # not from a chat: the CLI
    ("start", "anyone", "search", "search", ALLOWED),  # the service's own list wins
    ("start", "anyone", "search", "C0RELEASES", "`allowed_channels` under [services.search]"),
    ("start", "anyone", "unknown", "C0X", "`allowed_channels` under [defaults]"),
    ("lock", "root", "prod", None, ALLOWED),  # a lock admin
    ("lock", "carol", "prod", None, ALLOWED),  # an approver of some service
    ("lock", "sre-lead", "staging", None, ALLOWED),  # an environment approver counts
    ("lock", "release-managers", "prod", None, ALLOWED),  # the defaults' approvers count
    ("unlock", "mallory", "prod", None, "mallory cannot unlock prod: anyone who approves"),
    ("lock", "alice", "shop/prod", None, ALLOWED),
    ("unlock", "root", "shop/prod", None, ALLOWED),
    ("unlock", "carol", "shop/prod", None, "shop's approvers for prod (alice, bob)"),
    ("lock", "sre-lead", "search/prod", None, ALLOWED),  # prod's approvers of search
    ("lock", "carol", "search/prod", None, "`environment_approvers.prod` under [services.search]"),
    ("lock", "carol", "search/staging", None, ALLOWED),
    ("unlock", "mallory", "search/staging", None, "or the top-level `lock_admins`"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "user", "subject", "channel", "refusal"), SUBJECT_CASES)
def test_start_lock_and_unlock(
    action: Action, user: str, subject: str, channel: str | None, refusal: str | None
) -> None:
    got = check(action, user, subject, channel, CONFIG)
    if refusal is None:
        assert got is None
    else:
        assert got is not None and refusal in got, got


def test_an_empty_allowlist_allows_every_channel() -> None:
    config = Config(services={"shop": ServiceConfig(approvers=["alice"])})
    assert check("start", "anyone", "shop", "C0WHATEVER", config) is None


def test_a_release_action_needs_a_release() -> None:
    with pytest.raises(ValueError, match="approve needs a release"):
        check("approve", "alice", "shop", None, CONFIG)
    with pytest.raises(ValueError, match="lock does not act on a release"):
        check("lock", "alice", release(), None, CONFIG)


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        (["staging", "prod"], ["sre-lead"]),
        (["prod"], ["sre-lead"]),
        (["dev", "staging"], ["carol"]),
        ([], ["carol"]),
    ],
)
def test_the_effective_approvers_are_those_of_the_highest_environment(
    environments: list[str], expected: list[str]
) -> None:
    assert CONFIG.for_service("search").approvers_for(environments) == expected  # type: ignore[arg-type]


def test_a_defaults_environment_override_applies_to_every_service() -> None:
    config = Config(
        defaults=ServiceConfig(environment_approvers={"prod": ["cab"]}),
        services={"shop": ServiceConfig(approvers=["alice"])},
    )
    assert config.for_service("shop").approvers_for(["staging", "prod"]) == ["cab"]
    assert config.for_service("shop").approvers_for(["staging"]) == ["alice"]


def test_scopes() -> None:
    assert parse_scope(" Prod ") == "prod"
    assert parse_scope("payments-api/STAGING") == "payments-api/staging"
    assert scope_parts("payments-api/prod") == ("payments-api", "prod")
    assert scope_parts("dev") == (None, "dev")
    assert scopes_for("shop", ["staging", "prod", "prod"]) == [
        "staging",
        "shop/staging",
        "prod",
        "shop/prod",
    ]


# -- through the service: effective approvers, refusals audited ---------------------------------


def prod_approvers(text: str) -> str:
    return text.replace(
        'approvers = ["alice", "bob"]',
        'approvers = ["alice", "bob"]\nenvironment_approvers = { prod = ["sre"] }',
    )


def test_a_release_starts_with_its_effective_approvers(tmp_path: Path) -> None:
    wiring = wired(tmp_path, prod_approvers)
    services = wiring.services
    release = start_release(services, LINE, "dave")
    assert isinstance(release, Release)
    assert release.approvers == ["sre"]
    change = next(c for c in release.observed.checks if c.check == "change_approval")
    assert "approvers: sre" in change.details
    with pytest.raises(CommandRejected, match=r"alice cannot approve payments-api: .* sre"):
        approve(services, release.id, "alice")
    assert approve(services, release.id, "sre").status == "scheduled"


def test_a_refused_attempt_is_audited_on_the_release() -> None:
    wiring = wired()
    services = wiring.services
    release = start_release(services, LINE, "dave")
    assert isinstance(release, Release)
    with pytest.raises(CommandRejected, match="mallory cannot approve payments-api"):
        approve(services, release.id, "mallory")
    with pytest.raises(CommandRejected, match="mallory cannot rollback"):
        rollback(services, release.id, "mallory", "because")
    events = services.store.events(release.id)
    audit = [(e.action, e.actor, e.data) for e in events if e.action == "refused"]
    assert audit == [
        ("refused", "mallory", {"command": "approve"}),
        ("refused", "mallory", {"command": "rollback"}),
    ]
    assert services.store.get(release.id).status == "awaiting_approval"
    assert services.store.undelivered() == []  # the thread shows them too
    refused(services, release.id, "eve", "approve", "eve is not in this workspace")
    last = services.store.events(release.id)[-1]
    assert (last.action, last.actor) == ("refused", "eve")
    assert last.details == "approve refused: eve is not in this workspace"


def test_the_start_channel_allowlist(tmp_path: Path) -> None:
    def allow(text: str) -> str:
        return text.replace("allowed_channels = []", 'allowed_channels = ["C0REL"]')

    services = wired(tmp_path, allow).services
    with pytest.raises(CommandRejected, match="started only in C0REL, not here"):
        start_release(services, LINE, "dave", channel="C0OTHER")
    assert services.store.listing() == []
    assert isinstance(start_release(services, LINE, "dave", channel="C0REL"), Release)


def test_double_clicks_say_what_already_happened() -> None:
    wiring = wired()
    services = wiring.services
    release = started(wiring)  # approved by alice
    with pytest.raises(CommandRejected, match="alice approved it at 14:00:00 UTC"):
        approve(services, release.id, "bob")
    tick_until(wiring, release.id, lambda r: r.step_index == 2 and r.judged_step == 2)
    paused = pause(services, release.id, "dave", "checking")
    assert paused.status == "paused" and paused.paused is not None
    assert paused.paused.by == "dave"
    with pytest.raises(CommandRejected, match=r"already paused \(by dave at .*\): checking"):
        pause(services, release.id, "alice", "me too")
    with pytest.raises(CommandRejected, match="dave cannot resume payments-api"):
        resume(services, release.id, "dave")
    resume(services, release.id, "alice")
    with pytest.raises(CommandRejected, match="is not paused"):
        resume(services, release.id, "alice")
    assert actions(wiring, release.id).count("refused") == 1  # only the requester's resume


def test_promote_through_the_service() -> None:
    wiring = wired()
    services = wiring.services
    release = started(wiring)
    tick_until(wiring, release.id, lambda r: r.step_index == 2 and r.judged_step == 2)
    with pytest.raises(CommandRejected, match="dave cannot promote payments-api"):
        promote_now(services, release.id, "dave")
    promoted = promote_now(services, release.id, "bob")
    assert promoted.step_index == 3 and promoted.steps[2].status == "completed"
    with pytest.raises(CommandRejected, match=r"has not seen 25% .* yet"):
        promote_now(services, release.id, "bob")  # the double click
    events = services.store.events(release.id)
    manual = [e for e in events if e.action == "promoted_manually"]
    assert [(e.actor, e.data["step"]) for e in manual] == [("bob", 2)]
    assert [e.actor for e in events if e.action == "refused"] == ["dave"]
