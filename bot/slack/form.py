"""The release form as a front end to the ``/release`` line, not a second syntax.

``modal_line`` turns a submission back into the line ``bot.parsing.parse_release`` reads, so
defaults, validation and error wording stay in one place; ``field_errors`` points those errors
at the input they are about; ``prefill_from_line`` goes the other way for "Open the form".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot.domain.contract import InsufficientContext
from bot.domain.guardrails import COMPARATOR
from bot.domain.request import TEMPLATE_FIELDS
from bot.parsing import (
    LINE_KEYS,
    SMART_QUOTES,
    VERSION_RE,
    is_guardrail_token,
    line_tokens,
    quote_value,
)
from bot.slack.kit import MAX_VALUE, clip

MODAL_CALLBACK = "release_modal"
# The form's fields, keyed by the /release line key each one writes (service and version are
# the line's leading words, guardrails its bare tokens): the parser's keys, no others, in the
# order a submitted line writes them (a key the form has no place for yet goes last).
_LINE_ORDER = ("risk", "strategy", "env", "regions", "stages", "changes", "ticket", "artifact",
               "hash", "build", "flags", "deps", "traffic", "peak", "window")  # fmt: skip
FORM_LINE_KEYS = tuple(sorted(LINE_KEYS, key=(*_LINE_ORDER, *LINE_KEYS).index))
FIELD_KEYS = ("service", "version", *FORM_LINE_KEYS, "guardrails")
FIELD_BLOCKS = {key: f"release_field_{key}" for key in FIELD_KEYS}
FIELD_ACTIONS = {key: f"release_input_{key}" for key in FIELD_KEYS}
# Where the release is posted, asked for only when the form was opened without a channel.
CHANNEL_BLOCK = "release_field_channel"
CHANNEL_ACTION = "release_input_channel"

# -- a line into the form ---------------------------------------------------------------------


def prefill_from_line(line: str) -> dict[str, str]:
    """The form's initial values from a /release line, leniently: the form is where it gets
    fixed, so a bad value is kept as typed and an unknown key is dropped."""
    tokens = line_tokens(line, lenient=True)  # unbalanced quotes: the words as typed
    out: dict[str, str] = {}
    words: list[str] = []
    rails: list[str] = []
    for token in tokens:
        if is_guardrail_token(token):
            rails.append("".join(token.split()))
        elif "=" in token:
            key, _, value = token.partition("=")
            if key in FORM_LINE_KEYS:
                out[key] = value
        else:
            words.append(token)
    if len(words) == 1 and VERSION_RE.fullmatch(words[0]):
        words = ["", words[0]]
    for key, word in zip(("service", "version"), words, strict=False):
        if word:
            out[key] = word
    if rails:
        out["guardrails"] = " ".join(rails)
    return out


def prefill_value(prefill: Mapping[str, str]) -> str:
    """Compact JSON of a prefill within a button value's 2000 characters: long fields shrink."""
    data = {k: v for k, v in prefill.items() if v}
    while True:
        value = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if len(value) <= MAX_VALUE or not data:
            return value
        longest = max(data, key=lambda k: len(data[k]))
        data[longest] = data[longest][: len(data[longest]) // 2]


def expand_prefill(prefill: Mapping[str, str]) -> dict[str, str]:
    """A prefill that may carry a whole ``line`` (as the OPEN_MODAL handler passes a non-JSON
    value): the line's fields, overridden by the explicit ones."""
    line = prefill.get("line", "")
    return {**(prefill_from_line(line) if line else {}), **prefill}


# -- a submission back into a line ------------------------------------------------------------


def _value(values: Mapping[str, Any], key: str) -> str:
    block = values.get(FIELD_BLOCKS[key]) or {}
    entry = block.get(FIELD_ACTIONS[key]) or next(iter(block.values()), None) or {}
    if "selected_options" in entry:
        return ",".join(str(o["value"]) for o in entry["selected_options"] or [])
    if "selected_option" in entry:
        return str((entry["selected_option"] or {}).get("value") or "")
    return str(entry.get("value") or "")


def _clean(key: str, raw: str) -> str:
    """One line, straight quotes: the parser would take a "- x: y" line for the template."""
    lines = [ln.strip() for ln in raw.translate(SMART_QUOTES).splitlines() if ln.strip()]
    if key == "changes":
        return "; ".join(ln.lstrip("-*• ").strip() for ln in lines)
    return ",".join(lines)


def guardrail_tokens(text: str) -> list[str]:
    """``p95 < 300ms, error_rate<1%`` -> ``["p95<300ms", "error_rate<1%"]``."""
    joined = re.sub(rf"\s*({COMPARATOR})\s*", r"\1", _clean("guardrails", text))
    return [quote_value(t) for t in re.split(r"[\s,;]+", joined) if t]


def modal_line(state_values: dict[str, Any], private_metadata: str) -> tuple[str, str]:
    """(the text a /release command would carry, without "/release"; the channel to start
    it in, from ``private_metadata``, else from the channel picker; "" when neither has
    one)."""
    words = [
        quote_value(w) for k in ("service", "version") if (w := _clean(k, _value(state_values, k)))
    ]
    pairs = [
        f"{k}={quote_value(v)}" for k in FORM_LINE_KEYS if (v := _clean(k, _value(state_values, k)))
    ]
    rails = guardrail_tokens(_value(state_values, "guardrails"))
    try:
        meta = json.loads(private_metadata or "{}")
    except ValueError:
        meta = {}
    channel = str(meta.get("channel_id") or "") if isinstance(meta, dict) else ""
    picked = (state_values.get(CHANNEL_BLOCK) or {}).get(CHANNEL_ACTION) or {}
    channel = channel or str(picked.get("selected_conversation") or "")
    return " ".join([*words, *pairs, *rails]), channel


# -- errors onto fields -----------------------------------------------------------------------

_NAMES = {name: key for key, name in TEMPLATE_FIELDS.items()} | {"Service name": "service"}
_ALIASES = {"environments": "env", "error_rate": "guardrails", "latency": "guardrails",
            "availability": "guardrails", "kpis": "guardrails", "maintenance_windows": "window",
            "peak_hours": "peak", "dependencies": "deps"}  # fmt: skip
_KEYWORDS: list[tuple[str, str]] = [
    (r"error.rate|success_rate|availability|\bp50|\bp95|\bp99|latency|kpi|guardrail|threshold"
     r"|comparator|known key|key=value", "guardrails"),
    (r"\bversion", "version"), (r"\brisk", "risk"), (r"strateg", "strategy"),
    (r"environment|\benv\b", "env"), (r"region", "regions"), (r"sha256|digest|\bhash", "hash"),
    (r"artifact|image", "artifact"), (r"\bbuild", "build"), (r"ticket", "ticket"),
    (r"\bflag", "flags"), (r"stage|rollout percentage", "stages"),
    (r"traffic|rps|request rate", "traffic"), (r"peak", "peak"),
    (r"maintenance|window", "window"), (r"dependenc|\bdeps\b", "deps"),
    (r"change", "changes"), (r"service", "service"),
]  # fmt: skip


def field_key(problem: str) -> str:
    """The form field a problem is about: by its token, its field name, then its words."""
    text = re.sub(r"data/services\.toml(\s*\[[^\]]*\])?\s*", "", problem).strip()
    head = text.split(": ", 1)[0].strip()
    key = head.partition("=")[0] if "=" in head else head
    if key in FIELD_KEYS or key in _ALIASES:
        return _ALIASES.get(key, key)
    if is_guardrail_token(head):
        return "guardrails"
    for name, field in _NAMES.items():
        if head.startswith(name):
            return _ALIASES.get(field, field)
    claim = text.split(";", 1)[0].lower()
    for words in (head.lower(), claim):  # "no feature flag: the feature_flag strategy …"
        if found := next((k for pattern, k in _KEYWORDS if re.search(pattern, words)), None):
            return found
    return "changes"


def field_errors(problem: str) -> dict[str, str]:
    """{block_id: message} for ``ack(response_action="errors")``: a parse error on the input
    it is about (best effort; the changes field when unsure). Missing items joined with
    "; " (field names of ``InsufficientContext.missing``, blockers) land each on its own."""
    parts = [p.strip() for p in problem.split(";") if p.strip()]
    missing = [p for p in parts if p in _NAMES]
    if not missing:
        return {FIELD_BLOCKS[field_key(problem)]: clip(problem, 500)}
    names: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    for part in parts:
        bucket = names if part in _NAMES else reasons
        bucket.setdefault(field_key(part), []).append(part)
    return {
        FIELD_BLOCKS[key]: clip("; ".join(reasons.get(key) or [f"{', '.join(n)}: missing"]), 500)
        for key, n in names.items()
    }


def context_errors(insufficient: InsufficientContext) -> dict[str, str]:
    """Every missing field of an ``InsufficientContext`` on its input, with why it matters."""
    blockers = insufficient.deployment_blockers
    out: dict[str, str] = {}
    for i, name in enumerate(insufficient.missing):
        why = blockers[i] if i < len(blockers) else f"{name} is missing"
        block = FIELD_BLOCKS[field_key(name)]
        out[block] = clip(f"{out[block]}; {why}" if block in out else why, 500)
    return out or {FIELD_BLOCKS["changes"]: clip(insufficient.next_best_step, 500)}
