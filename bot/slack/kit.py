"""Block Kit primitives within Slack's limits: escaping, clipping, and the element shapes.

Slack refuses a whole message over one limit (50 blocks, 3000 characters a text, 75 a button
label), so every builder clips instead; and a bare ``<`` in mrkdwn starts a link, so every
piece of domain text (``error_rate<1%``) goes through ``esc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_BUTTON = 75
MAX_HEADER = 150
MAX_VALUE = 2000
MAX_FALLBACK = 3000
_SLACK_ID = re.compile(r"[UW](?=[A-Z0-9]*[0-9])[A-Z0-9]+")


def esc(text: str) -> str:
    """Escape mrkdwn's control characters; Slack reads a bare ``<`` as a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Cut to ``limit`` characters with an ellipsis, never inside an entity or a mention."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp, lt = cut.rfind("&"), cut.rfind("<")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if lt >= 0 and ">" not in cut[lt:]:
        cut = cut[:lt]
    return cut + "…"


def who(name: str) -> str:
    """A Slack user ID as a mention; anything else (a name, a group) as escaped text."""
    return f"<@{name}>" if _SLACK_ID.fullmatch(name) else esc(name)


def hm(at: datetime) -> str:
    return (at.astimezone(UTC) if at.tzinfo else at).strftime("%H:%M")


def plain(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text) or " "}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:10]]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER)}


def button(
    label: str,
    action_id: str,
    value: str,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> Block:
    out: Block = {
        "type": "button",
        "text": plain(label, MAX_BUTTON),
        "action_id": action_id,
        "value": value[:MAX_VALUE],
    }
    if style:
        out["style"] = style
    if confirm:
        out["confirm"] = confirm
    return out


def confirm_dialog(title: str, text: str, yes: str, no: str = "Cancel") -> dict[str, Any]:
    return {
        "title": plain(title, 100),
        "text": plain(text, 300),
        "confirm": plain(yes, 30),
        "deny": plain(no, 30),
        "style": "danger",
    }


def packed(lines: list[str], most: int, more: str = "more") -> list[Block]:
    """Lines in as few sections as fit (at most ``most``), then a count of what was left."""
    blocks: list[Block] = []
    chunk: list[str] = []
    for i, line in enumerate(clip(raw, 1000) for raw in lines):
        if chunk and len("\n".join([*chunk, line])) > MAX_TEXT:
            blocks.append(section("\n".join(chunk)))
            chunk = []
            if len(blocks) == most:
                return [*blocks, context(f"… and {len(lines) - i} {more}")]
        chunk.append(line)
    return [*blocks, section("\n".join(chunk))] if chunk else blocks


def fit(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    """At most ``limit`` blocks; the overflow goes from the middle, so buttons survive."""
    if len(blocks) <= limit:
        return blocks
    tail = [b for b in blocks[-2:] if b["type"] == "actions"]
    head = blocks[: limit - 1 - len(tail)]
    return [*head, context(f"… {len(blocks) - len(head) - len(tail)} more blocks left out"), *tail]


def fallback(text: str) -> str:
    """A message's ``text``: what notifications show; Slack formats it too, so escaped."""
    return clip(esc(text), MAX_FALLBACK)


def iter_action_ids(node: Any) -> Iterable[str]:
    """Every ``action_id`` in a structure: handlers and tests check each one is routed."""
    if isinstance(node, dict):
        if isinstance(node.get("action_id"), str):
            yield node["action_id"]
        for child in node.values():
            yield from iter_action_ids(child)
    elif isinstance(node, list):
        for child in node:
            yield from iter_action_ids(child)
