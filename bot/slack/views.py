"""The release form (a modal) and the App Home: views, not messages, so they live apart.

The form's inputs are the ``/release`` line's keys; ``bot.slack.form`` turns a submission
back into a line, so the parser stays the one place that validates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.domain.release import Release
from bot.domain.request import ENV_ORDER, RISKS, STRATEGIES
from bot.parsing import ENV_ALIASES
from bot.slack.blocks import STATUS, stage_line
from bot.slack.form import (
    CHANNEL_ACTION,
    CHANNEL_BLOCK,
    FIELD_ACTIONS,
    FIELD_BLOCKS,
    MODAL_CALLBACK,
    expand_prefill,
)
from bot.slack.kit import Block, context, esc, header, packed, plain, section

View = dict[str, Any]
MAX_OPTIONS = 100

# key: (label, placeholder, hint, optional, multiline), in the form's order.
_TEXT: dict[str, tuple[str, str, str, bool, bool]] = {
    "version": ("Version", "2.4.1", "", False, False),
    "changes": ("Changes included", "faster checkout; fix refund rounding",
                "What approvers review. A CHG-123 in here becomes the change ticket.", False, True),
    "ticket": ("Change ticket", "CHG-1234", "", True, False),
    "regions": ("Regions", "us-east-1,eu-west-1", "Comma-separated. Blank: the service's.",
                True, False),
    "stages": ("Rollout percentages", "1,5,25,50,100",
               "Increasing, ending at 100. Blank: the planner picks from risk and strategy.",
               True, False),
    "guardrails": ("Guardrails", "error_rate<1% p95<300ms availability>=99.9%",
                   "error_rate, success_rate, availability, p50, p95, p99 or kpi:<name> with "
                   "< <= > >=; they override the service's of the same name.", True, False),
    "flags": ("Feature flags", "new_checkout:25", "name or name:percent, comma-separated; "
              "none for no flag.", True, False),
    "artifact": ("Build artifact", "ghcr.io/acme/payments-api:2.4.1",
                 "An image reference. Blank: the service's pattern in data/services.toml.",
                 True, False),
    "hash": ("Image digest", "sha256:ab12cd34", "", True, False),
    "build": ("Build id", "8812", "", True, False),
    "deps": ("Dependencies status", "payments-db:healthy,ledger:degraded",
             "name:healthy|degraded|unhealthy. Blank: probed live.", True, False),
    "traffic": ("Current traffic", "1200rps", "Blank: measured at start.", True, False),
    "peak": ("Peak hours (UTC)", "09:00-12:00", "[days] HH:MM-HH:MM, comma-separated.",
             True, False),
    "window": ("Maintenance window (UTC)", "sat 02:00-04:00",
               "The release waits for the window to open.", True, False),
}  # fmt: skip
_ORDER = ("service", "version", "risk", "strategy", "changes", "ticket", "env", "regions",
          "stages", "guardrails", "flags", "artifact", "hash", "build", "deps", "traffic",
          "peak", "window")  # fmt: skip

# -- the form -------------------------------------------------------------------------------


def _option(value: str) -> dict[str, Any]:
    return {"text": plain(value.replace("_", " "), 75), "value": value[:150]}


def _input(key: str, label: str, element: dict[str, Any], optional: bool, hint: str = "") -> Block:
    block: Block = {
        "type": "input",
        "block_id": FIELD_BLOCKS[key],
        "label": plain(label, 2000),
        "optional": optional,
        "element": {**element, "action_id": FIELD_ACTIONS[key]},
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _text_input(key: str, value: str) -> Block:
    label, placeholder, hint, optional, multiline = _TEXT[key]
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "multiline": multiline,
        "placeholder": plain(placeholder, 150),
        "max_length": 3000,
    }
    if value:
        element["initial_value"] = value[:3000]
    return _input(key, label, element, optional, hint)


def _select(key: str, label: str, options: Sequence[str], value: str, hint: str) -> Block:
    element: dict[str, Any] = {
        "type": "static_select",
        "placeholder": plain(f"the service's default {label.lower()}", 150),
        "options": [_option(o) for o in options],
    }
    chosen = re.sub(r"[\s\-/]+", "_", value.strip().lower())
    if chosen in options:
        element["initial_option"] = _option(chosen)
    return _input(key, label, element, True, hint)


def _service_input(value: str, services: list[str]) -> Block:
    if services and len(services) <= MAX_OPTIONS and (not value or value in services):
        element: dict[str, Any] = {
            "type": "static_select",
            "placeholder": plain("pick a service", 150),
            "options": [_option(s) for s in services],
        }
        if value:
            element["initial_option"] = _option(value)
        return _input("service", "Service", element, False)
    element = {"type": "plain_text_input", "placeholder": plain("payments-api", 150)}
    if value:
        element["initial_value"] = value[:3000]
    return _input("service", "Service", element, False, "Lowercase, as in data/services.toml.")


def _env_input(value: str) -> Block:
    chosen = [ENV_ALIASES.get(v, v) for v in re.split(r"[\s,]+", value.lower()) if v]
    element: dict[str, Any] = {"type": "checkboxes", "options": [_option(e) for e in ENV_ORDER]}
    if initial := [_option(e) for e in ENV_ORDER if e in chosen]:
        element["initial_options"] = initial
    return _input("env", "Target environments", element, True, "None ticked: the service's.")


def _channel_input() -> Block:
    return {
        "type": "input",
        "block_id": CHANNEL_BLOCK,
        "label": plain("Post the release in", 2000),
        "element": {
            "type": "conversations_select",
            "action_id": CHANNEL_ACTION,
            "placeholder": plain("a channel release-bot is in", 150),
            "filter": {"include": ["public", "private"], "exclude_bot_users": True},
        },
        "hint": plain("The release's thread goes there; its allowed_channels apply.", 2000),
    }


def release_modal(prefill: dict[str, str], channel_id: str, services: list[str]) -> View:
    """The form behind "Open the form" (views.open). A view submission carries no channel:
    the one the form was opened from rides in private_metadata; without one (opened outside
    a conversation) the form asks for it."""
    prefill = expand_prefill(prefill)
    blocks: list[Block] = [] if channel_id else [_channel_input()]
    for key in _ORDER:
        value = prefill.get(key, "")
        if key == "service":
            blocks.append(_service_input(value, services))
        elif key == "risk":
            blocks.append(_select(key, "Risk level", RISKS, value, "Sets the pace and approvals."))
        elif key == "strategy":
            blocks.append(_select(key, "Deployment strategy", STRATEGIES, value, ""))
        elif key == "env":
            blocks.append(_env_input(value))
        else:
            blocks.append(_text_input(key, value))
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": plain("New release", 24),
        "submit": plain("Start release", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps({"channel_id": channel_id})[:3000],
        "blocks": blocks,
    }


# -- the App Home -------------------------------------------------------------------------------


def _when(raw: object) -> str:
    try:
        at = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError:
        return ""
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _release_row(release: Release) -> str:
    emoji, words = STATUS[release.status]
    return (
        f"{emoji} *{esc(release.request.service)} {esc(release.version)}* · {words} · "
        f"{release.current_percentage():g} % traffic\n{esc(stage_line(release))} · "
        f"`{esc(release.id)}`"
    )


def _listing_row(row: Mapping[str, object], when: str) -> str:
    """A ``SqliteReleaseStore.listing()`` row: id, service, version, status and times."""
    status = str(row.get("status"))
    emoji, words = STATUS.get(status, ("•", status.replace("_", " ")))
    return (
        f"{emoji} *{esc(str(row.get('service')))} {esc(str(row.get('version')))}* · "
        f"{esc(words)} · {when} · `{esc(str(row.get('id')))}`"
    )


def _active_row(item: Release | Mapping[str, object]) -> str:
    if isinstance(item, Release):
        return _release_row(item)
    if isinstance(found := item.get("release"), Release):
        return _release_row(found)
    return _listing_row(item, f"started {_when(item.get('created_at'))}")


def home_view(
    active: Sequence[Release | Mapping[str, object]], recent: Sequence[Mapping[str, object]]
) -> View:
    """The App Home: what is moving now, then how recent releases ended. No links: the
    threads are the place to act."""
    blocks: list[Block] = [header("Active releases")]
    if active:
        blocks += [section(_active_row(item)) for item in active[:40]]
        if len(active) > 40:
            blocks.append(context(f"… and {len(active) - 40} more active"))
    else:
        blocks.append(
            context(f"Nothing is rolling out. Start one with `{esc('/release <line>')}`.")
        )
    ids = {
        str(a.id if isinstance(a, Release) else a.get("id")) for a in active
    }  # listing() includes the active ones too
    rows = [
        _listing_row(row, _when(row.get("updated_at")))
        for row in recent
        if str(row.get("id")) not in ids
    ]
    blocks += [{"type": "divider"}, header("Recent releases")]
    blocks += packed(rows, 10, "more") if rows else [context("No finished releases yet.")]
    blocks.append(context("`/release help` lists the commands."))
    return {"type": "home", "blocks": blocks[:100]}
