"""Block Kit builders: buttons by status, Slack's limits, routing ids, and the form's round trip
back into a /release line the parser reads."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from bot.config import load_config
from bot.domain.contract import InsufficientContext
from bot.domain.judgement import TestResult as GuardrailTest
from bot.domain.release import PauseRecord, Release
from bot.domain.request import ReleaseRequest
from bot.parsing import LINE_KEYS, ParseError, parse_release
from bot.ports.store import StoredEvent
from bot.presenters import event_text
from bot.slack import blocks
from bot.slack.blocks import (
    ACTION_IDS,
    APPROVE,
    FIELD_BLOCKS,
    MODAL_CALLBACK,
    OPEN_MODAL,
    PAUSE,
    PROMOTE,
    REJECT,
    RESUME,
    ROLLBACK,
    approval_request,
    audit_line,
    event_reply,
    field_errors,
    gate_of,
    help_blocks,
    missing_fields,
    modal_line,
    status_card,
)
from bot.slack.form import FIELD_KEYS, context_errors, prefill_from_line
from bot.slack.kit import iter_action_ids
from bot.slack.views import home_view, release_modal
from tests.domain_helpers import (
    MINUTE,
    T0,
    bad_window,
    gated_release,
    kpi_rail,
    make_request,
    on_metrics_loss,
    run,
    started_release,
    tick,
)

CONFIG = load_config()
SERVICES = sorted(CONFIG.services)

# -- helpers ------------------------------------------------------------------------------------


def texts(node: Any) -> list[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) in a structure."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
            found.append(node)
        for child in node.values():
            found += texts(child)
    elif isinstance(node, list):
        for child in node:
            found += texts(child)
    return found


def buttons(out: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        e["action_id"]: e
        for b in out
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    }


def assert_slack_safe(message: tuple[str, list[dict[str, Any]]] | list[dict[str, Any]]) -> None:
    """Within Slack's limits, escaped, routed, and JSON all the way down."""
    text, out = message if isinstance(message, tuple) else ("", message)
    json.dumps([text, out])
    assert len(text) <= 3000 and not re.search(r"[<>]", text)
    assert len(out) <= 50
    for t in texts(out):
        assert 0 < len(t["text"]) <= 3000
        if t["type"] == "mrkdwn":  # a bare < or > would be read as a link
            assert not re.search(r"[<>]", re.sub(r"<@[UW][A-Z0-9]+>", "", t["text"])), t["text"]
    for block in out:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            assert block["elements"], "Slack refuses an actions block without elements"
    for b in buttons(out).values():
        assert len(b["text"]["text"]) <= 75 and len(b["value"]) <= 2000
    assert set(iter_action_ids(out)) <= ACTION_IDS


def events_of(release: Release, start: int = 1) -> list[StoredEvent]:
    return [
        StoredEvent(id=start + i, release_id=release.id, **e.model_dump())
        for i, e in enumerate(release.collect_events())
    ]


def paused_release() -> Release:
    release = on_metrics_loss(started_release(make_request(risk="medium")), "pause")
    now = run(release, T0, stop=lambda r: r.step_index >= 1 and r.steps[1].status == "active")
    for i in range(3):
        release.record_metrics_error("prometheus timed out", now + (i + 1) * MINUTE)
    assert release.status == "paused"
    return release


def rolled_back_release() -> tuple[Release, Any]:
    release = started_release(make_request(risk="medium"))
    now = run(release, T0, stop=lambda r: r.step_index >= 1 and r.steps[1].status == "active")
    for _ in range(10):
        now += MINUTE
        tick(release, now, bad_window)
        if release.status == "rolling_back":
            break
    assert release.status == "rolling_back"
    return release, now


# -- the status card ------------------------------------------------------------------------------


def test_rolling_out_card_offers_promote_pause_and_a_confirmed_rollback() -> None:
    release = started_release(make_request(risk="medium"))
    now = run(release, T0, stop=lambda r: r.judgement is not None)
    text, out = status_card(release, now)
    assert_slack_safe((text, out))
    got = buttons(out)
    assert set(got) == {PROMOTE, PAUSE, ROLLBACK}
    assert got[PROMOTE]["style"] == "primary"
    rollback = got[ROLLBACK]
    assert rollback["style"] == "danger" and rollback["value"] == release.id
    confirm = rollback["confirm"]
    assert confirm["style"] == "danger"
    assert "shop" in confirm["text"]["text"] and "1.2.0" in confirm["text"]["text"]
    assert confirm["confirm"]["text"] == "Roll back" and confirm["deny"]["text"] == "Cancel"
    assert confirm["title"]["text"]
    body = json.dumps(out, ensure_ascii=False)
    assert "shop 1.2.0" in body and "rolling out" in body
    assert re.search(r"step \d+/\d+", body) and re.search(r"[▰▱]+ \d+ %", body)
    assert "Guardrails" in body and "Verdict" in body and "error_rate&lt;1%" in body
    assert status_card(release, now + MINUTE) == (text, out)  # no clock: no needless update


def test_paused_card_offers_resume_and_says_why() -> None:
    release = paused_release()
    text, out = status_card(release, T0 + timedelta(hours=1))
    assert_slack_safe((text, out))
    assert set(buttons(out)) == {RESUME, ROLLBACK}
    assert "metrics unavailable" in json.dumps(out)


def test_rolling_back_then_rolled_back_card_has_no_buttons_and_names_the_breach() -> None:
    release, now = rolled_back_release()
    _, out = status_card(release, now)
    assert buttons(out) == {} and not [b for b in out if b["type"] == "actions"]
    assert "error_rate" in json.dumps(out) and "Rolling back automatically" in json.dumps(out)
    release.confirm_rollback(True, now + MINUTE)
    text, out = status_card(release, now + MINUTE)
    assert_slack_safe((text, out))
    assert buttons(out) == {}
    assert "rolled back" in text and "1.1.0" in text
    assert "Rolled back automatically" in json.dumps(out)


def test_an_errored_release_says_it_backs_off_then_that_it_moves_again() -> None:
    release = started_release(make_request(risk="medium"))
    now = T0 + MINUTE
    for _ in range(3):
        release.record_tick_error(
            "ValueError", "instances must be positive", now, timedelta(seconds=10)
        )
    assert release.retry_at is not None
    text, out = status_card(release, now)
    assert_slack_safe((text, out))
    body = json.dumps(out, ensure_ascii=False)
    assert "Errored" in body and "backing off after 3 failed ticks in a row" in body
    assert "ValueError: instances must be positive" in body
    assert f"next try at {release.retry_at:%H:%M:%S} UTC" in body
    assert status_card(release, now + MINUTE) == (text, out)  # no clock: no needless update
    lines = [event_text(release, e) for e in events_of(release)]
    assert lines[-1].startswith("💥 tick failed: failed 3 ticks in a row")

    release.tick_recovered(now + 2 * MINUTE)
    assert "Errored" not in json.dumps(status_card(release, now)[1], ensure_ascii=False)
    assert event_text(release, events_of(release)[-1]) == (
        "🩹 tick recovered: moving again after 3 failed ticks"
    )


def test_finished_releases_have_no_buttons() -> None:
    done = started_release(make_request(risk="low"))
    run(done, T0)
    assert done.status == "completed"
    failed = gated_release(make_request(risk="medium"), results=[])
    assert failed.status == "failed"
    for release in (done, failed):
        text, out = status_card(release, T0 + timedelta(hours=3))
        assert_slack_safe((text, out))
        assert buttons(out) == {}
    assert "Stopped" in json.dumps(status_card(failed, T0)[1])


def test_awaiting_approval_card_offers_cancel_not_rollback_wording() -> None:
    release = gated_release(make_request(risk="high"))
    assert release.status == "awaiting_approval"
    _, out = status_card(release, T0)
    got = buttons(out)
    assert set(got) == {ROLLBACK}
    assert got[ROLLBACK]["text"]["text"] == "Cancel release"


def test_people_are_mentioned_when_they_are_slack_ids() -> None:
    request = make_request(risk="medium")
    release = Release.create(
        "rel-x", request, started_release(request).plan, ["U0APPROVE1", "bob"], "W0REQ42", T0
    )
    section = json.dumps(status_card(release, T0)[1])
    assert "<@W0REQ42>" in section and "<@U0APPROVE1>" in section and "bob" in section
    assert "<@bob>" not in section


def test_card_stays_within_limits_with_40_guardrails_and_long_changes() -> None:
    request = make_request(risk="medium", kpis=[kpi_rail(f"kpi_{i:02d}") for i in range(40)])
    long = request.release_package.model_copy(update={"changes": "x<y & z; " * 2000})
    request = request.model_copy(update={"release_package": long})
    release = started_release(request)
    now = run(release, T0, stop=lambda r: r.judgement is not None)
    assert release.judgement is not None
    detail = "a long detail <with> & markup " * 40
    results = [
        GuardrailTest(
            test=f"kpi:metric_with_a_rather_long_name_{i:03d}>=-2%" * 3,
            guardrail=f"kpi:m{i}",
            action="alert" if i % 3 else "auto_rollback",
            state=("breached", "holds", "unproven", "no_data")[i % 4],
            observed=1.5,
            baseline=1.0,
            canary_value=1.5,
            confidence=0.97,
            gating=False,
            detail=detail,
        )
        for i in range(120)
    ]
    release.judgement = release.judgement.model_copy(
        update={"results": [*release.judgement.results, *results]}
    )
    release.paused = PauseRecord(reason="why " * 2000, by="alice", at=now)
    text, out = status_card(release, now)
    assert_slack_safe((text, out))
    assert len(out) <= 50
    assert any("more guardrails" in t["text"] for t in texts(out))
    assert ROLLBACK in buttons(out)  # truncation never drops the buttons


# -- approvals, events, audit ---------------------------------------------------------------------


def test_approval_request_mentions_approvers_and_offers_approve_and_reject() -> None:
    request = make_request(risk="high")
    plan = started_release(request).plan
    release = Release.create("rel-2", request, plan, ["U0ALICE1", "U0BOB22"], "U0DAVE33", T0)
    gated = gated_release(request)
    release.observed.checks = gated.observed.checks
    release.status, release.pending_approval = "awaiting_approval", "release"
    text, out = approval_request(release)
    assert_slack_safe((text, out))
    got = buttons(out)
    assert set(got) == {APPROVE, REJECT}
    assert got[APPROVE]["style"] == "primary" and got[APPROVE]["value"] == "rel-2"
    assert got[REJECT]["confirm"]["style"] == "danger"
    body = json.dumps(out)
    assert "<@U0ALICE1>" in body and "<@U0BOB22>" in body
    assert "high" in body and "CHG-1234" in body and "canary" in body
    assert "cannot approve" in body  # segregation of duties, said before anyone clicks
    actions = next(b for b in out if b["type"] == "actions")
    assert gate_of(actions["block_id"]) == "release"


def test_approval_request_lists_warning_checks_and_step_gates() -> None:
    release = started_release(make_request(risk="high"))
    run(release, T0, approver="", stop=lambda r: r.status == "awaiting_approval")
    assert release.pending_approval == "step:1"
    release.observed.checks = [*release.observed.checks[:1], release.observed.checks[1].model_copy(
        update={"status": "warning", "details": "p95 +8% <vs> last build"}
    )]  # fmt: skip
    text, out = approval_request(release)
    assert_slack_safe((text, out))
    assert "step 2/" in text
    assert "⚠️" in json.dumps(out, ensure_ascii=False)
    actions = next(b for b in out if b["type"] == "actions")
    assert gate_of(actions["block_id"]) == "step:1"


def test_event_reply_coalesces_and_appends_approval_buttons_while_the_gate_is_open() -> None:
    release = gated_release(make_request(risk="high"))
    events = events_of(release)
    assert any(e.action == "approval_requested" for e in events)
    text, out = event_reply(release, events)
    assert_slack_safe((text, out))
    lines = "\n".join(t["text"] for t in texts(out))
    assert "`14:00` 🚀 release requested" in lines and "gate checked" in lines
    assert set(buttons(out)) == {APPROVE, REJECT}
    release.approve("alice", T0 + MINUTE)  # delivered late: the gate is closed already
    _, out = event_reply(release, events)
    assert buttons(out) == {}
    _, out = event_reply(release, events_of(release, 100))
    assert buttons(out) == {}
    assert "approved [alice]" in json.dumps(out)


def test_event_reply_mentions_actors_and_survives_a_huge_batch() -> None:
    release = started_release(make_request(risk="medium"))
    release.collect_events()
    release.request_rollback("U0ROLL99", "bad <deploy> & more", T0)
    _, out = event_reply(release, events_of(release))
    assert "[<@U0ROLL99>]" in json.dumps(out) and "&lt;deploy&gt;" in json.dumps(out)
    many = [
        StoredEvent(id=i, release_id=release.id, at=T0, actor="release-bot", action="alert",
                    details="error_rate<1% " * 50)
        for i in range(500)
    ]  # fmt: skip
    text, out = event_reply(release, many)
    assert_slack_safe((text, out))
    assert "more events" in json.dumps(out)


def test_audit_line_mentions_the_user_and_the_time() -> None:
    out = audit_line("approved", "U0ALICE1", T0 + timedelta(minutes=2), note="gate <release>")
    assert_slack_safe(out)
    assert out[0]["type"] == "context"
    text = out[0]["elements"][0]["text"]
    assert text.startswith("✅ approved by <@U0ALICE1> at 14:02 UTC")
    assert "&lt;release&gt;" in text
    assert audit_line("rollback requested", "U1X", T0)[0]["elements"][0]["text"].startswith("⏪")
    assert out[0]["block_id"] != audit_line("approved", "U0ALICE1", T0)[0]["block_id"]


# -- missing fields, the form, errors on fields --------------------------------------------------


def test_missing_fields_lists_gaps_and_opens_a_prefilled_form() -> None:
    line = 'payments-api 2.4.1 changes="fix refunds" p95<250ms'
    parsed = parse_release(line, CONFIG)
    assert isinstance(parsed, InsufficientContext)
    text, out = missing_fields(parsed, line)
    assert_slack_safe((text, out))
    assert "Risk level" in text
    body = json.dumps(out)
    assert "Risk level" in body and "Next" in body
    form = buttons(out)[OPEN_MODAL]
    prefill = json.loads(form["value"])
    assert prefill["service"] == "payments-api" and prefill["version"] == "2.4.1"
    assert prefill["changes"] == "fix refunds" and prefill["guardrails"] == "p95<250ms"
    huge = InsufficientContext(missing=["Risk level"], deployment_blockers=[], next_best_step="x")
    _, out = missing_fields(huge, line + ' ticket="' + "CHG-1 " * 1000 + '"')
    assert len(buttons(out)[OPEN_MODAL]["value"]) <= 2000
    json.loads(buttons(out)[OPEN_MODAL]["value"])


def submitted(view: dict[str, Any], **edits: Any) -> dict[str, Any]:
    """What Slack sends back as ``view.state.values`` for a form left as it was opened."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        el = block["element"]
        key = next(k for k, b in FIELD_BLOCKS.items() if b == block["block_id"])
        state: dict[str, Any] = {"type": el["type"]}
        if el["type"] == "static_select":
            state["selected_option"] = el.get("initial_option")
        elif el["type"] == "checkboxes":
            state["selected_options"] = el.get("initial_options", [])
        else:
            state["value"] = el.get("initial_value")
        if key in edits:
            state = {"type": "plain_text_input", "value": edits[key]}
        values[block["block_id"]] = {el["action_id"]: state}
    return values


def test_modal_round_trips_into_a_line_the_parser_reads() -> None:
    line = (
        "payments-api 2.4.1 risk=high strategy=blue-green env=staging,production "
        'regions=us-east-1 ticket=CHG-1 changes="fix “refund” rounding; faster \\"checkout\\"" '
        "flags=new_checkout:25 deps=payments-db:healthy traffic=1200rps "
        'window="sat 02:00-04:00" error_rate<0.5% "p95 < 250ms"'
    )
    view = release_modal(prefill_from_line(line), "C0CHAN", SERVICES)
    assert view["type"] == "modal" and view["callback_id"] == MODAL_CALLBACK
    assert json.loads(view["private_metadata"]) == {"channel_id": "C0CHAN"}
    assert len(view["title"]["text"]) <= 24 and len(view["blocks"]) <= 100
    assert_slack_safe(view["blocks"])
    got, channel = modal_line(submitted(view), view["private_metadata"])
    assert channel == "C0CHAN"
    parsed = parse_release(got, CONFIG)
    assert isinstance(parsed, ReleaseRequest), got
    original = parse_release(line, CONFIG)
    assert isinstance(original, ReleaseRequest)
    assert parsed.service == "payments-api" and parsed.release_package.version == "2.4.1"
    assert parsed.release_package.risk == "high"
    assert parsed == original


@pytest.mark.parametrize(
    "changes, expected",
    [
        ('quote " and back\\slash', 'quote " and back\\slash'),
        ("“smart” ‘quotes’ it's", "\"smart\" 'quotes' it's"),
        ("- fix: refunds\n- faster: checkout", "fix: refunds; faster: checkout"),
        ("a<b & c=d $HOME `x` #tag", "a<b & c=d $HOME `x` #tag"),
    ],
)
def test_modal_line_quotes_values_the_way_the_parser_unquotes_them(
    changes: str, expected: str
) -> None:
    view = release_modal({"service": "payments-api", "version": "2.4.1"}, "C1", SERVICES)
    values = submitted(view, changes=changes, risk="low")
    line, _ = modal_line(values, view["private_metadata"])
    parsed = parse_release(line, CONFIG)
    assert isinstance(parsed, ReleaseRequest), line
    assert parsed.release_package.changes == expected


def test_the_form_asks_for_the_parsers_keys_and_no_others() -> None:
    assert set(FIELD_KEYS) == {"service", "version", "guardrails", *LINE_KEYS}
    view = release_modal({}, "C1", SERVICES)
    shown = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert sorted(shown) == sorted(FIELD_BLOCKS.values())


@pytest.mark.parametrize("word", ["2.4.1", "v2.4.1", "2.4.1-rc.1+b7", "2.4.1+b7+x", "2.4.1-"])
def test_the_form_and_the_parser_agree_on_what_a_version_is(word: str) -> None:
    try:
        parse_release(f"payments-api {word} risk=low changes=x artifact=reg/app:1", CONFIG)
        parser_says = True
    except ParseError as exc:
        assert "is not a version" in str(exc)
        parser_says = False
    assert (prefill_from_line(word).get("version") == word) == parser_says


def test_modal_accepts_a_line_prefill_and_unknown_services() -> None:
    view = release_modal({"line": "newsvc 1.0.0 risk=low"}, "C1", SERVICES)
    service = view["blocks"][0]
    assert service["element"]["type"] == "plain_text_input"  # not among the known: typed
    assert service["element"]["initial_value"] == "newsvc"
    risk = next(b for b in view["blocks"] if b["block_id"] == FIELD_BLOCKS["risk"])
    assert risk["element"]["initial_option"]["value"] == "low"
    known = release_modal({"service": "payments-api"}, "C1", SERVICES)["blocks"][0]
    assert known["element"]["type"] == "static_select"
    assert known["element"]["initial_option"] in known["element"]["options"]


def test_a_modal_without_a_channel_asks_for_one_and_reads_it_back() -> None:
    view = release_modal({"service": "payments-api", "version": "2.4.1"}, "", SERVICES)
    picker = view["blocks"][0]
    assert picker["block_id"] == blocks.CHANNEL_BLOCK
    assert picker["element"]["type"] == "conversations_select"
    assert set(iter_action_ids(view["blocks"])) <= ACTION_IDS
    assert_slack_safe(view["blocks"])
    fields = [b for b in view["blocks"] if b["block_id"] != blocks.CHANNEL_BLOCK]
    values = submitted({**view, "blocks": fields}, risk="low", changes="x")
    assert modal_line(values, view["private_metadata"])[1] == ""
    values[blocks.CHANNEL_BLOCK] = {
        blocks.CHANNEL_ACTION: {"type": "conversations_select", "selected_conversation": "C0PICK"}
    }
    line, channel = modal_line(values, view["private_metadata"])
    assert channel == "C0PICK" and "C0PICK" not in line
    assert isinstance(parse_release(line, CONFIG), ReleaseRequest), line
    with_channel = release_modal({}, "C1", SERVICES)
    assert blocks.CHANNEL_BLOCK not in json.dumps(with_channel)


@pytest.mark.parametrize(
    "line, field",
    [
        ("payments-api 2.4.1 risk=urgent", "risk"),
        ("payments-api 2.4.1 stages=5,140", "stages"),
        ("payments-api 2.4.1 p95<0ms", "guardrails"),
        ("payments-api 2.4.1 env=moon", "env"),
        ("payments-api 2.4.1 window=whenever", "window"),
        ("Payments 2.4.1", "service"),
        ("payments-api 2.4.1 deps=db:sad", "deps"),
        ("payments-api 2.4.1 hash=md5:1", "hash"),
    ],
)
def test_field_errors_put_a_parse_error_on_its_field(line: str, field: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_release(line, CONFIG)
    errors = field_errors(str(exc.value))
    assert list(errors) == [FIELD_BLOCKS[field]], str(exc.value)


def test_field_errors_spread_missing_items_over_their_fields() -> None:
    parsed = parse_release("search-api 1.0.0", CONFIG)
    assert isinstance(parsed, InsufficientContext)
    joined = field_errors("; ".join([*parsed.missing, *parsed.deployment_blockers]))
    per_item = context_errors(parsed)
    for errors in (joined, per_item):
        assert FIELD_BLOCKS["changes"] in errors and FIELD_BLOCKS["risk"] in errors
        assert "risk level" in errors[FIELD_BLOCKS["risk"]]
    assert field_errors("something odd") == {FIELD_BLOCKS["changes"]: "something odd"}


# -- home and help ------------------------------------------------------------------------------


def test_home_lists_active_releases_first_then_recent_ones() -> None:
    active = started_release(make_request(risk="medium"))
    recent = [
        {"id": f"rel-old-{i}", "service": "search-api", "version": f"0.{i}.0",
         "status": ("completed", "rolled_back", "failed")[i % 3],
         "created_at": "2025-03-01T10:00:00+00:00", "updated_at": "2025-03-01T11:00:00+00:00"}
        for i in range(60)
    ]  # fmt: skip
    row = {"id": "rel-row", "service": "pay", "version": "9.9.9", "status": "paused",
           "created_at": "2025-03-04T14:00:00+00:00"}  # fmt: skip
    view = home_view([active, row], [*recent, {**row, "updated_at": "x"}])
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    assert_slack_safe(view["blocks"][:50])
    assert_slack_safe(view["blocks"][50:])
    body = [t["text"] for t in texts(view["blocks"])]
    first_active = next(i for i, t in enumerate(body) if "shop 1.2.0" in t)
    first_recent = next(i for i, t in enumerate(body) if "search-api" in t)
    assert body.index("Active releases") < first_active < body.index("Recent releases")
    assert body.index("Recent releases") < first_recent
    assert sum("rel-row" in t for t in body) == 1  # not listed again under recent
    assert "rolling out" in body[first_active] and "%" in body[first_active]
    assert "<http" not in json.dumps(view)
    empty = home_view([], [])
    assert_slack_safe(empty["blocks"])
    assert "Nothing is rolling out" in json.dumps(empty)


def test_help_lists_every_subcommand_and_an_example_that_parses() -> None:
    text, out = help_blocks()
    assert_slack_safe((text, out))
    body = json.dumps(out)
    for word in ("help", "status", "list", "history", "rollback", "pause", "resume",
                 "promote", "lock", "unlock", "dry-run"):  # fmt: skip
        assert f"/release {word}" in body, word
    parsed = parse_release(blocks.EXAMPLE, CONFIG)
    assert isinstance(parsed, ReleaseRequest)
