"""Block Kit messages for a release's Slack thread: plain dicts, no I/O, no slack_sdk.

Every builder returns JSON-serialisable structures within Slack's limits, clipping rather
than letting Slack refuse the message. This module is the handlers' one import: it holds every
action_id, block_id and callback_id they route on, and re-exports the form's line conversion
(``bot.slack.form``); the modal and the App Home views are in ``bot.slack.views``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.domain import access
from bot.domain.contract import InsufficientContext
from bot.domain.judgement import TestResult
from bot.domain.plan import Step
from bot.domain.release import MAX_EXTENSION_MINUTES, Release
from bot.ports.store import StoredEvent
from bot.presenters import backoff_line, event_text
from bot.slack.form import (
    CHANNEL_ACTION,
    CHANNEL_BLOCK,
    FIELD_ACTIONS,
    FIELD_BLOCKS,
    FIELD_KEYS,
    MODAL_CALLBACK,
    context_errors,
    field_errors,
    modal_line,
    prefill_from_line,
    prefill_value,
)
from bot.slack.kit import (
    MAX_BLOCKS,
    MAX_TEXT,
    Block,
    button,
    clip,
    confirm_dialog,
    context,
    esc,
    fallback,
    fit,
    header,
    hm,
    iter_action_ids,
    mrkdwn,
    packed,
    plain,
    section,
    who,
)

# -- routing constants: every action_id, block_id and callback_id the handlers route on ----------

APPROVE = "release_approve"
REJECT = "release_reject"
ROLLBACK = "release_rollback"
PAUSE = "release_pause"
RESUME = "release_resume"
PROMOTE = "release_promote"
OPEN_MODAL = "release_open_modal"
EXTEND = "release_extend"  # a held step: bake on for ``extension_minutes``
OVERRIDE = "release_override"  # a held step: the override form asks why
BUTTON_ACTIONS = (APPROVE, REJECT, ROLLBACK, PAUSE, RESUME, PROMOTE, OPEN_MODAL, EXTEND, OVERRIDE)
DECISION_BLOCK = "release_decision_actions"  # + "/<hold_key>": the hold the buttons answer
OVERRIDE_CALLBACK = "release_override_form"
OVERRIDE_REASON_BLOCK = "override_reason"
OVERRIDE_REASON_ACTION = "override_reason_input"
CARD_ACTIONS_BLOCK = "release_card_actions"  # + "/<status>": a fresh id when buttons change
APPROVAL_BLOCK = "release_approval_actions"  # + "/<gate>": which gate the buttons answer
FORM_BLOCK = "release_form_actions"
AUDIT_BLOCK = "release_audit"  # + "/<ms timestamp>"
ACTION_IDS = frozenset(
    (*BUTTON_ACTIONS, *FIELD_ACTIONS.values(), CHANNEL_ACTION, OVERRIDE_REASON_ACTION)
)

STATUS: dict[str, tuple[str, str]] = {
    "pending_gates": ("🔎", "checking gates"),
    "awaiting_approval": ("✋", "awaiting approval"),
    "scheduled": ("⏰", "scheduled"),
    "rolling_out": ("🚀", "rolling out"),
    "paused": ("⏸️", "paused"),
    "rolling_back": ("⏪", "rolling back"),
    "completed": ("🎉", "completed"),
    "rolled_back": ("↩️", "rolled back"),
    "failed": ("❌", "failed"),
}
RISK_ICONS = {"low": "🟢", "medium": "🟡", "high": "🟠", "critical": "🔴"}
VERDICTS = {
    "promote": "⏩ promote",
    "rollback": "⏪ roll back",
    "extend_analysis": "⏳ keep analysing",
}
AUDIT_ICONS = {"approv": "✅", "reject": "⛔", "roll": "⏪", "paus": "⏸️", "resum": "▶️",
               "override": "⚠️", "promot": "⏩", "extend": "⏳", "cancel": "🛑", "unlock": "🔓",
               "lock": "🔒"}  # fmt: skip

# -- what the release is doing --------------------------------------------------------------


def _title(release: Release) -> str:
    return f"{release.request.service} {release.version}"


def stage_words(step: Step) -> str:
    match step.kind:
        case "traffic":
            return f"{step.percentage:g} % of traffic"
        case "batch":
            return f"{step.percentage:g} % of instances"
        case "flag":
            return f"flag at {step.percentage:g} %"
        case "shadow":
            return f"shadow, {step.mirror:g} % mirrored"
        case "env_deploy":
            return "deploy and verify"
        case "green_verify":
            return "green verify"
        case "switch":
            return "blue-green switch"
        case _:
            return "dark launch"


def stage_line(release: Release, now: datetime | None = None) -> str:
    """Where the release stands, e.g. "step 2/5 · canary · 25 % of traffic · prod us-east-1"."""
    plan, step, status = release.plan, release.current_step, release.status
    prev = release.previous_version or "the stable version"
    if status == "awaiting_approval" and release.pending_approval == "release":
        return "waiting for approval to start"
    if status == "pending_gates":
        return "running pre-deployment checks"
    if status == "scheduled":  # no countdown: the card changes only when the release does
        due = now is not None and plan.start <= now
        return "starting" if due else f"starts at {hm(plan.start)} UTC"
    if status == "rolling_back":
        return f"rolling back to {prev}"
    if status == "rolled_back":
        return f"rolled back to {prev}"
    if status == "completed":
        return f"all {len(plan.steps)} steps done"
    if step is None:
        return "stopped before anything was deployed" if status == "failed" else "not started"
    where = f"{step.env} {', '.join(step.regions)}"
    line = f"step {step.index + 1}/{len(plan.steps)} · {step.phase} · {stage_words(step)} · {where}"
    if status == "awaiting_approval":
        return f"{line} · waits for approval"
    if release.holding_until is not None:
        return f"{line} · waits for peak hours to end at {hm(release.holding_until)} UTC"
    return line


def progress_bar(release: Release, width: int = 20) -> str:
    """Steps done over the plan, e.g. ``▰▰▱▱▱ 40 %``; after a rollback, the steps reached."""
    total = len(release.plan.steps) or 1
    done_as = "rolled_back" if release.rollback is not None else "completed"
    done = sum(1 for s in release.steps if s.status == done_as)
    cells = min(total, width)
    filled = round(done / total * cells)
    return f"{'▰' * filled}{'▱' * (cells - filled)} {round(done / total * 100)} %"


def _unit(release: Release, result: TestResult) -> tuple[str, str] | None:
    """(unit suffix, threshold) when the test is a guardrail's own; None for a ratio test."""
    for g in release.request.guardrails.all():
        if g.name == result.guardrail and g.describe() == result.test:
            suffix = {"percent": " %", "ms": " ms", "value": ""}[g.unit]
            change = " change" if g.relative else ""
            return suffix + change, f"{g.comparator} {g.value:g}{suffix}"
    return None


def percent(share: float) -> str:
    """0.99953 -> "99.95 %": enough digits to tell 99.9 % from the 99 % a rollback needs."""
    return f"{share * 100:.4g} %"


def _figure(value: float | None, suffix: str) -> str:
    return "n/a" if value is None else f"{value:.3g}{suffix}"


def guardrail_line(release: Release, r: TestResult) -> str:
    icon = {"holds": "✅", "unproven": "⏳", "no_data": "…"}.get(r.state)
    icon = icon or ("⚠️" if r.action == "alert" else "❌")
    unit = _unit(release, r)
    if unit is None:
        figures = (
            f"canary *{_figure(r.canary_value, ' %')}* vs baseline {_figure(r.baseline, ' %')}"
        )
    else:
        figures = f"canary *{_figure(r.observed, unit[0])}* vs {esc(unit[1])}"
    sure = {
        "breached": f"{percent(r.confidence)} sure it broke",
        "holds": f"{percent(r.confidence)} sure it holds",
        "unproven": f"{percent(r.confidence)} so far",
    }.get(r.state, "no data yet")
    only = " · alerts only" if r.action == "alert" else ""
    return f"{icon} `{esc(r.test)}` {figures} · {sure}{only}"


def guardrail_blocks(release: Release) -> list[Block]:
    verdict = release.judgement
    if verdict is None:
        return []
    results = verdict.results
    if sum(len(guardrail_line(release, r)) for r in results) > 2 * MAX_TEXT:
        order = {"breached": 0, "unproven": 1, "no_data": 2, "holds": 3}
        results = sorted(results, key=lambda r: order[r.state])  # what matters survives the cut
    live = release.status == "rolling_out"
    title = "*Guardrails*" if live else "*Guardrails* (last analysis)"
    lines = [title, *(guardrail_line(release, r) for r in results)]
    rec = VERDICTS[verdict.recommendation]
    tail = " · no canary traffic" if verdict.no_data else ""
    return [
        *packed(lines, 2, "more guardrails"),
        context(
            f"*Verdict:* {rec} · confidence {percent(verdict.statistical_confidence)} · "
            f"{verdict.canary_requests:,} canary requests this step{tail}"
        ),
    ]


def _people(release: Release) -> str:
    approvers = ", ".join(who(a) for a in release.approvers) or "none"
    line = f"Requested by {who(release.requested_by)} · approvers: {approvers}"
    for a in release.approvals:
        gate = "release" if a.gate == "release" else f"step {int(a.gate[5:]) + 1}"
        line += f"\n✅ {gate} approved by {who(a.approver)} at {hm(a.at)} UTC"
    return line


def _problems(release: Release) -> list[Block]:
    blocks: list[Block] = []
    if release.held is not None:
        blocks.append(section(f"✋ *Held for a decision:* {esc(release.held.reason)}"))
    elif release.pause_reason:
        blocks.append(section(f"⏸️ *Paused:* {esc(release.pause_reason)}"))
    if rb := release.rollback:
        by = "automatically" if rb.triggered_by == "automated" else f"by {who(rb.actor)}"
        done = f", done at {hm(rb.completed_at)} UTC" if rb.completed_at else ""
        verb = "Rolled" if rb.completed_at else "Rolling"
        blocks.append(
            section(f"⏪ *{verb} back {by}* from {hm(rb.started_at)} UTC{done}: {esc(rb.reason)}")
        )
    if release.blockers and release.status == "failed":
        blocks.append(section("❌ *Stopped:* " + esc("; ".join(release.blockers))))
    if backoff := backoff_line(release):
        blocks.append(section(f"💥 *Errored:* {esc(clip(backoff, 1000))}"))
    if release.alerts:
        shown = [
            f"{a.guardrail} ({a.severity}, step {a.step + 1}: {a.action_taken})"
            for a in release.alerts[-5:]
        ]
        more = f" and {len(release.alerts) - 5} earlier" if len(release.alerts) > 5 else ""
        blocks.append(
            context(f"🚨 {len(release.alerts)} alert(s): " + esc("; ".join(shown)) + more)
        )
    return blocks


def card_buttons(release: Release) -> list[Block]:
    """Buttons for what a human may do now: none once the release has finished."""
    if not release.is_active:
        return []
    rid, buttons = release.id, []
    if release.status == "rolling_out":
        buttons += [button("Promote now", PROMOTE, rid, "primary"), button("Pause", PAUSE, rid)]
    if release.status == "paused" and release.held is None:
        buttons.append(button("Resume", RESUME, rid, "primary"))
    if release.status == "paused" and release.held is not None:
        buttons += decision_buttons(release)
    if release.status != "rolling_back":
        deployed = release.step_index >= 0
        label, verb = ("Roll back", "Roll back") if deployed else ("Cancel release", "Cancel it")
        target = release.previous_version or "the stable version"
        what = (
            f"All traffic of {_title(release)} goes back to {target}."
            if deployed
            else f"{_title(release)} stops before anything is deployed."
        )
        confirm = confirm_dialog(f"{label}?", what, verb)
        buttons.append(button(label, ROLLBACK, rid, "danger", confirm))
    if not buttons:
        return []
    return [{"type": "actions", "block_id": f"{CARD_ACTIONS_BLOCK}/{release.status}",
             "elements": buttons}]  # fmt: skip


def _times(release: Release) -> str:
    """Moments the release itself records, never the clock: an unchanged release keeps an
    unchanged card, so the chat adapter can skip the chat.update."""
    out = f"created {hm(release.created_at)} UTC"
    if release.judged_at is not None and release.is_active:
        out += f" · analysed {hm(release.judged_at)} UTC"
    if release.finished_at is not None:
        out += f" · finished {hm(release.finished_at)} UTC"
    return out


def status_card(release: Release, now: datetime) -> tuple[str, list[Block]]:
    """The thread's top message, rebuilt from the release on every change (chat.update).
    ``now`` only tells a due start from a delayed one: the card must not change by itself."""
    req, plan = release.request, release.plan
    pkg = req.release_package
    emoji, words = STATUS[release.status]
    strategy = plan.strategy.replace("_", " ")
    if plan.reported_strategy != plan.strategy:
        strategy += f" (reported as {plan.reported_strategy.replace('_', ' ')})"
    since = f" (from {esc(release.previous_version)})" if release.previous_version else ""
    fields = [
        f"*Status*\n{emoji} {words}",
        f"*Risk*\n{RISK_ICONS[pkg.risk]} {pkg.risk}",
        f"*Strategy*\n{esc(strategy)}",
        f"*Traffic on {esc(release.version)}*\n{release.current_percentage():g} %{since}",
    ]
    ticket = f" · {esc(pkg.change_ticket)}" if pkg.change_ticket else ""
    blocks: list[Block] = [
        header(f"{emoji} {_title(release)}"),
        {"type": "section", "fields": [mrkdwn(clip(f, 2000)) for f in fields]},
        section(f"*Stage:* {esc(stage_line(release, now))}\n`{progress_bar(release)}`"),
        *guardrail_blocks(release),
        *_problems(release),
        section(_people(release)),
        context(
            f"`{esc(release.id)}`{ticket} · changes: {esc(clip(pkg.changes, 500))}",
            _times(release),
        ),
        *card_buttons(release),
    ]
    text = (
        f"{emoji} {_title(release)}: {words} · {release.current_percentage():g} % traffic · "
        f"{stage_line(release, now)}"
    )
    return fallback(text), fit(blocks)


# -- approvals, events and the audit line -----------------------------------------------------


def gate_words(release: Release, gate: str) -> str:
    if gate == "release":
        return "the release"
    step = release.plan.steps[int(gate[5:])]
    return f"step {step.index + 1}/{len(release.plan.steps)}: {step.description}"


def gate_of(block_id: str) -> str | None:
    """The gate an approval block's buttons answer: compare with ``pending_approval``."""
    prefix = f"{APPROVAL_BLOCK}/"
    return block_id[len(prefix) :] if block_id.startswith(prefix) else None


def plan_summary(release: Release) -> str:
    def short(s: Step) -> str:
        label = s.env if s.kind == "env_deploy" else stage_words(s).removesuffix(" of traffic")
        return ("✋ " if s.manual_gate else "") + label

    plan = release.plan
    minutes = sum(s.bake_minutes for s in plan.steps)
    return (
        f"{plan.strategy.replace('_', ' ')}, {len(plan.steps)} steps (~{minutes:.0f} min): "
        + " → ".join(short(s) for s in plan.steps)
    )


def approval_request(release: Release) -> tuple[str, list[Block]]:
    """Ask the approvers for the pending gate, with what they approve and the buttons."""
    gate = release.pending_approval
    title = _title(release)
    if gate is None:
        text = f"{title} is not waiting for approval ({STATUS[release.status][1]})"
        return fallback(text), [context(esc(text))]
    pkg, what = release.request.release_package, gate_words(release, gate)
    mentions = ", ".join(who(a) for a in release.approvers) or "an approver"
    issues = [c for c in release.observed.checks if c.status != "pass"]
    checks = "\n".join(
        f"{'❌' if c.status == 'fail' else '⚠️'} {esc(c.check)}: {esc(c.details)}" for c in issues
    ) or (
        f"✅ all {len(release.observed.checks)} pre-deployment checks pass"
        if release.observed.checks
        else ""
    )
    ticket = f" · ticket {esc(pkg.change_ticket)}" if pkg.change_ticket else ""
    lines = [
        f"✋ {mentions}: approve *{esc(what)}* of *{esc(title)}*?",
        f"*Risk:* {RISK_ICONS[pkg.risk]} {pkg.risk}{ticket}",
        f"*Plan:* {esc(plan_summary(release))}",
        f"*Changes:* {esc(clip(pkg.changes, 1000))}",
    ]
    if access.four_eyes_refusal(release.requested_by, "approve", release):
        lines.append(f"_{who(release.requested_by)} requested it and cannot approve it._")
    blocks = [section("\n".join(lines))]
    if checks:
        blocks.append(section(checks))
    rid = release.id
    reject = confirm_dialog(
        "Reject?",
        f"{title} will "
        + ("not be deployed." if gate == "release" else "roll back to the stable version."),
        "Reject",
    )
    blocks.append(
        {
            "type": "actions",
            "block_id": f"{APPROVAL_BLOCK}/{gate}",
            "elements": [
                button("Approve", APPROVE, rid, "primary"),
                button("Reject", REJECT, rid, "danger", reject),
            ],
        }
    )
    return fallback(f"✋ Approval needed for {what} of {title}"), fit(blocks)


# -- a held step: its approvers decide ----------------------------------------------------------


def extension_minutes(release: Release) -> float:
    """What the Extend button grants: the held step's planned bake again, within the bound."""
    held = release.held
    step = release.plan.steps[held.step] if held is not None else release.current_step
    bake = step.bake_minutes if step is not None else MAX_EXTENSION_MINUTES
    return float(min(max(bake, 1.0), MAX_EXTENSION_MINUTES))


def hold_key(release: Release) -> str | None:
    """Which hold a decision message answers: the step and when it was asked (a step may be
    held again after an extension, and an old message must not answer the new hold)."""
    held = release.held
    return None if held is None else f"{held.step}/{int(held.asked_at.timestamp())}"


def hold_of(block_id: str) -> str | None:
    prefix = f"{DECISION_BLOCK}/"
    return block_id[len(prefix) :] if block_id.startswith(prefix) else None


def decision_buttons(release: Release) -> list[Block]:
    """Extend (confirmed), Promote on override… (the form asks why), Roll back (confirmed)."""
    rid, minutes = release.id, extension_minutes(release)
    title = _title(release)
    extend = confirm_dialog(
        "Extend the bake?",
        f"{title} keeps its canary share and is judged {minutes:g} min more; if still "
        "without a verdict, you are asked again.",
        "Extend",
    )
    return [
        button(f"Extend {minutes:g} min", EXTEND, rid, "primary", extend),
        button("Promote on override…", OVERRIDE, rid),
    ]


def decision_request(release: Release) -> tuple[str, list[Block]]:
    """Ask the approvers to decide a held step, with the evidence and the options."""
    held, title = release.held, _title(release)
    if held is None or release.status != "paused":
        text = f"{title} has no step waiting for a decision ({STATUS[release.status][1]})"
        return fallback(text), [context(esc(text))]
    step = release.plan.steps[held.step]
    mentions = ", ".join(who(a) for a in release.approvers) or "an approver"
    rate = held.canary_requests / (held.baked_minutes * 60) if held.baked_minutes else 0.0
    cause = (
        "the stable version breaks a guardrail too"
        if held.cause == "stable_breaks"
        else "no verdict past its maximum bake"
    )
    lines = [
        f"✋ {mentions}: *step {held.step + 1}/{len(release.plan.steps)}* "
        f"({esc(stage_words(step))}, {esc(step.env)}) of *{esc(title)}* is held: {cause}.",
        f"*Why:* {esc(held.reason)}",
        f"*Baked:* {held.baked_minutes:g} min (planned {step.bake_minutes:g}) · "
        f"*traffic seen:* {held.canary_requests:,} canary requests (~{rate:.2g} rps)",
        "*Options:* extend the bake (judged on with the evidence so far), promote on an "
        "override (who and why are recorded; the report says so), or roll back.",
    ]
    if access.four_eyes_refusal(release.requested_by, "override", release):
        lines.append(f"_{who(release.requested_by)} requested it and cannot override it._")
    evidence = [f"• {esc(line)}" for line in held.evidence]
    rollback = confirm_dialog(
        "Roll back?",
        f"All traffic of {title} goes back to {release.previous_version or 'the stable version'}.",
        "Roll back",
    )
    blocks: list[Block] = [
        section("\n".join(lines)),
        *packed(["*Evidence*", *evidence], 2, "more tests"),
        {
            "type": "actions",
            "block_id": f"{DECISION_BLOCK}/{hold_key(release)}",
            "elements": [
                *decision_buttons(release),
                button("Roll back", ROLLBACK, release.id, "danger", rollback),
            ],
        },
    ]
    return fallback(f"✋ Decision needed: {title} step {held.step + 1} is held"), fit(blocks)


def override_form(release: Release, channel: str, message_ts: str) -> dict[str, Any]:
    """The modal behind "Promote on override…": the reason is required and recorded. The
    release and the clicked message ride in private_metadata (set by the app)."""
    held = release.held
    where = f"step {held.step + 1}" if held is not None else "the held step"
    meta = {
        "release_id": release.id,
        "channel": channel,
        "ts": message_ts,
        "held": clip(held.reason if held is not None else "", 1500),
        "hold": hold_key(release),
    }
    return {
        "type": "modal",
        "callback_id": OVERRIDE_CALLBACK,
        "title": plain("Promote on override", 24),
        "submit": plain("Promote", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(meta)[:3000],
        "blocks": [
            section(
                f"Promote {where} of *{esc(_title(release))}* although the judge reached no "
                "verdict. Your name and reason are recorded in the audit trail and the report."
            ),
            {
                "type": "input",
                "block_id": OVERRIDE_REASON_BLOCK,
                "label": plain("Why is it safe to promote?", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": OVERRIDE_REASON_ACTION,
                    "multiline": True,
                    "min_length": 3,
                    "max_length": 500,
                },
            },
        ],
    }


def override_submission(view: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """(release ID, channel, message ts, the hold's key, why it was held, reason) from a
    submitted override form."""
    meta = json.loads(view.get("private_metadata") or "{}")
    values = view.get("state", {}).get("values", {})
    reason = (values.get(OVERRIDE_REASON_BLOCK, {}).get(OVERRIDE_REASON_ACTION) or {}).get(
        "value"
    ) or ""
    return (
        str(meta.get("release_id", "")),
        str(meta.get("channel", "")),
        str(meta.get("ts", "")),
        str(meta.get("hold", "")),
        str(meta.get("held", "")),
        reason.strip(),
    )


def held_summary(held: str) -> list[Block]:
    """What a decided request keeps of itself once its buttons are gone."""
    return [section(f"✋ *Held for a decision:* {esc(held)}")]


def audit_line(verb: str, user_id: str, at: datetime, note: str = "") -> list[Block]:
    """What replaces the buttons after a click, so the thread shows who did what, when."""
    icon = next((i for stem, i in AUDIT_ICONS.items() if stem in verb.lower()), "•")
    text = f"{icon} {esc(verb)} by {who(user_id)} at {hm(at)} UTC"
    if note:
        text += f" · {esc(note)}"
    stamp = int(at.timestamp() * 1000)
    return [{"type": "context", "block_id": f"{AUDIT_BLOCK}/{stamp}", "elements": [mrkdwn(text)]}]


def _event_line(release: Release, event: StoredEvent) -> str:
    line = esc(event_text(release, event))
    actor = esc(event.actor)
    line = line.replace(f" [{actor}]:", f" [{who(event.actor)}]:", 1)
    return f"`{hm(event.at)}` {line}"


def event_reply(release: Release, events: list[StoredEvent]) -> tuple[str, list[Block]]:
    """One thread reply for a batch of events; approval buttons when a gate is still open."""
    lines = [_event_line(release, e) for e in events]
    blocks = packed(lines, MAX_BLOCKS - 8, "more events (the card shows the current state)")
    asks = [e for e in events if e.action == "approval_requested"]
    if (
        release.status == "awaiting_approval"
        and release.pending_approval is not None
        and any(e.data.get("gate", release.pending_approval) == release.pending_approval
                for e in asks)
    ):  # fmt: skip
        blocks += approval_request(release)[1]
    if release.held is not None and any(e.action == "decision_requested" for e in events):
        blocks += decision_request(release)[1]
    first = event_text(release, events[0]) if events else "no news"
    more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
    return fallback(f"{_title(release)}: {first}{more}"), fit(blocks)


# -- asking for what is missing, and help -----------------------------------------------------


def missing_fields(insufficient: InsufficientContext, line: str) -> tuple[str, list[Block]]:
    """The ephemeral answer to an incomplete line, with a button to finish it in the form."""
    blockers = insufficient.deployment_blockers
    items = [
        f"• *{esc(name)}*" + (f": {esc(blockers[i])}" if i < len(blockers) else "")
        for i, name in enumerate(insufficient.missing)
    ]
    items += [f"• {esc(b)}" for b in blockers[len(insufficient.missing) :]]
    blocks = [
        section("I need a little more before I can plan this release:"),
        *packed(items, 3, "more"),
        section(f"*Next:* {esc(insufficient.next_best_step)}"),
    ]
    if line.strip():
        blocks.append(context(f"`{esc(clip(line.strip(), 2000))}`"))
    value = prefill_value(prefill_from_line(line))
    blocks.append(
        {
            "type": "actions",
            "block_id": FORM_BLOCK,
            "elements": [button("Open the form", OPEN_MODAL, value, "primary")],
        }
    )
    text = "Missing: " + ", ".join(insufficient.missing)
    return fallback(text), fit(blocks)


_HELP: list[tuple[str, str]] = [
    ("/release <line>", "start a release, e.g. the example below"),
    ("/release dry-run <line>", "show the plan and the gates without deploying"),
    ("/release status [id]", "where a release (or every active one) stands"),
    ("/release list", "recent releases, newest first"),
    ("/release history <service>", "a service's releases with their audit trail"),
    ("/release rollback <id> [reason]", "roll back (or cancel) a release"),
    ("/release pause <id>", "stop at the current step"),
    ("/release resume <id>", "continue a paused release; the step restarts"),
    ("/release promote <id>", "skip the rest of the current step's analysis"),
    ("/release extend <id> <minutes> [reason]", "a held step bakes on (an approver)"),
    ("/release override <id> <reason>", "promote a held step without a verdict, recorded"),
    ("/release lock <env> [reason]", "nobody deploys to <env> until it is unlocked"),
    ("/release unlock <env>", "lift a lock"),
    ("/release help", "this message"),
]
EXAMPLE = (
    'payments-api 2.4.1 risk=medium ticket=CHG-1234 changes="faster checkout; fix refunds" '
    "error_rate<1% p95<300ms"
)


def help_blocks() -> tuple[str, list[Block]]:
    usage = "\n".join(f"`{esc(cmd)}` {esc(what)}" for cmd, what in _HELP)
    keys = (
        "`strategy=` `env=` `regions=` `stages=` `risk=` `flags=` `artifact=` `hash=` "
        "`build=` `ticket=` `changes=` `traffic=` `peak=` `window=` `deps=` and guardrails "
        "like `error_rate&lt;1%` `p95&lt;300ms` `availability&gt;=99.9%`"
    )
    blocks = [
        header("release-bot"),
        section(usage),
        section(
            f"*A release line:* `{esc('<service> <version>')}` then {keys}. "
            "Quote values with spaces. data/services.toml fills in the rest."
        ),
        section(f"*Example:*\n```/release {esc(EXAMPLE)}```"),
    ]
    return fallback("release-bot: /release <line> | help | status | list | history | …"), blocks


__all__ = [
    "ACTION_IDS", "APPROVAL_BLOCK", "APPROVE", "AUDIT_BLOCK", "BUTTON_ACTIONS",
    "CARD_ACTIONS_BLOCK", "CHANNEL_ACTION", "CHANNEL_BLOCK", "DECISION_BLOCK", "EXTEND",
    "FIELD_ACTIONS", "FIELD_BLOCKS", "FIELD_KEYS", "FORM_BLOCK",
    "MODAL_CALLBACK", "OPEN_MODAL", "OVERRIDE", "OVERRIDE_CALLBACK", "PAUSE", "PROMOTE",
    "REJECT", "RESUME", "ROLLBACK",
    "STATUS", "Block", "approval_request", "audit_line", "context_errors", "decision_request",
    "event_reply", "extension_minutes", "field_errors", "gate_of", "held_summary", "help_blocks",
    "hold_key", "hold_of",
    "iter_action_ids", "missing_fields", "modal_line", "override_form", "override_submission",
    "stage_line", "status_card",
]  # fmt: skip
