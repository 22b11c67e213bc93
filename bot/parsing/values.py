"""The value forms people write in a release request, one value at a time: Slack's and word
processors' text cleaned up (quotes, spaces, links, typography, comments), lists, days and
time ranges, flags, dependencies, stages, traffic, environments, regions, digests, and the
guardrail words and units. Each raises ``BadValue`` naming its key; ``bot.parsing`` reads the
line and the template with them.
"""

from __future__ import annotations

import itertools
import re
from datetime import time
from typing import TypeVar

from bot.domain.guardrails import (
    GUARDRAIL_NAME,
    LATENCY_NAMES,
    NUMBER,
    RATES,
    BadValue,
    read_number,
)
from bot.domain.request import (
    ENV_ORDER,
    WEEKDAYS,
    DependencyStatus,
    EnvName,
    FlagSpec,
    TimeRange,
    Weekday,
)

_TIME = r"[0-9]{1,2}:[0-9]{2}"
_RANGE_RE = re.compile(
    rf"(?:(?P<days>[A-Za-z]+(?:\s*[,\-]\s*[A-Za-z]+)*)\s+)?(?P<start>{_TIME})\s*(?:->|-|\bto\b)\s*"
    rf"(?P<end>{_TIME})(?:\s*UTC\b)?",
    re.IGNORECASE,
)
_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9._\-]*")  # the model's pattern
_NONE = ("none", "n/a", "-")
ENV_ALIASES = {"production": "prod", "stage": "staging", "stg": "staging", "development": "dev"}
SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})  # Slack retypes quotes
# Spaces that look like spaces (Slack and word processors insert them), and invisible ones.
_SPACES = str.maketrans({c: " " for c in "\u00a0\u2007\u2009\u200a\u202f\u3000"} | {
    "\u200b": None, "\u2060": None, "\ufeff": None})  # fmt: skip
_SLACK_LINK_RE = re.compile(r"<((?:https?://|mailto:)[^<>|\s]*)(?:\|([^<>]*))?>")
# Typography in a structured value: dashes, arrows, comparators as one character.
_TYPOGRAPHY = str.maketrans({"–": "-", "—": "-", "−": "-", "→": "->", "⇒": "->",
                             "⟶": "->", "➔": "->", "≤": "<=", "≥": ">="})  # fmt: skip
_COMMENT_RE = re.compile(r"\s(?:#|//)(?:\s.*)?$")  # "value  # why": '#' alone, not "#8812"
_LIST_SEPS = r"\s*(?:[,;/&+]|->|=>|\band\b|\s)\s*"  # dev, staging -> prod and [dev staging]
_T = TypeVar("_T", bound=str)

# --- single values -----------------------------------------------------------------------


def _choice(value: str, options: tuple[_T, ...], key: str, what: str) -> _T:
    for option in options:
        if option == value:
            return option
    raise BadValue(f"{value or 'nothing'} is not a {what}", key)


def _match(pattern: re.Pattern[str], value: str, key: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise BadValue(f"{value or 'nothing'} is not {what}", key)
    return value


def _items(value: str, seps: str = ",") -> list[str]:
    return [item.strip() for item in re.split(f"[{seps}]", value) if item.strip()]


def _plain(text: str) -> str:
    """The text as typed, before Slack and word processors changed it: Slack's links
    (``<mailto:a@b.c|a@b.c>``) and escapes (``&gt;``), curly quotes, odd spaces, code fences
    and a quote block's ``>`` on every line. Line numbers are kept."""

    def link(m: re.Match[str]) -> str:
        return m[2] if m[2] is not None else m[1].removeprefix("mailto:")

    text = _SLACK_LINK_RE.sub(link, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = text.translate(SMART_QUOTES).translate(_SPACES).replace("```", "")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith(">") for line in lines):
        text = re.sub(r"(?m)^[ \t]*>[ \t]?", "", text)  # pasted as a Slack quote
    return text


def _tidy(value: str) -> str:
    """A structured value without what decorates it: backticks, a trailing ``# comment``,
    typographic dashes, arrows and comparators."""
    value = _COMMENT_RE.sub("", value.replace("`", "")).translate(_TYPOGRAPHY)
    return value.strip()


def _list(value: str) -> list[str]:
    """``dev, staging``, ``[dev, staging]``, ``dev -> staging``, ``dev and staging``."""
    inner = value.strip()
    if inner[:1] in "[{" and inner[-1:] in "]}":
        inner = inner[1:-1]
    return [item for item in re.split(_LIST_SEPS, inner.strip()) if item]


def _days(text: str, key: str) -> list[Weekday]:
    """'sat', 'sat,sun', 'mon-fri' (a range may wrap: 'fri-mon')."""
    days: list[Weekday] = []
    for part in _items(text.lower()):
        ends = [WEEKDAYS.index(_choice(e.strip(), WEEKDAYS, key, "day")) for e in part.split("-")]
        if len(ends) > 2:
            raise BadValue(f"{part} is not a day range like mon-fri", key)
        span = range((ends[-1] - ends[0]) % 7 + 1)
        days += [d for d in (WEEKDAYS[(ends[0] + i) % 7] for i in span) if d not in days]
    return days


def _clock(text: str, key: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise BadValue(f"{text} is not a time of day (00:00 to 23:59)", key)
    return time(hours, minutes)


def _time_ranges(text: str, key: str) -> list[TimeRange]:
    """Ranges separated by ',' or ';'; days like 'sat,sun' stay with their range."""
    if text.strip().lower() in _NONE:
        return []
    ranges: list[TimeRange] = []
    pos = 0
    for m in _RANGE_RE.finditer(text):
        if text[pos : m.start()].strip(" ,;"):
            break
        start, end = _clock(m["start"], key), _clock(m["end"], key)
        if start == end:
            raise BadValue(f"{m[0].strip()} starts and ends at the same time", key)
        days = _days(m["days"], key) if m["days"] else None
        ranges.append(TimeRange(start=start, end=end, days=days))
        pos = m.end()
    if text[pos:].strip(" ,;") or not ranges:
        raise BadValue(f"{text[pos:].strip(' ,;') or 'nothing'} is not a time range", key)
    return ranges


def _flag(text: str) -> FlagSpec:
    """``name``, ``name:25``, ``name: 25%``, ``name (25%)``, ``name=25``, ``name @ 25%``."""
    m = re.fullmatch(rf"([^\s:=@(]+)\s*(?:[:=@]\s*|\(\s*|\s+)({NUMBER}\s*%?)\s*\)?", text)
    name, _, pct = (m[1], "", m[2]) if m else (part.strip() for part in text.partition(":"))
    _match(re.compile(r"[A-Za-z0-9_.\-]+"), name, "flags", "a flag name")
    percentage = read_number(pct.removesuffix("%").strip(), "flags") if pct else 100.0
    if not 0 <= percentage <= 100:
        raise BadValue(f"{pct} is not a percentage between 0 and 100", "flags")
    return FlagSpec(name=name, percentage=percentage)


def _dependency(text: str) -> DependencyStatus:
    m = re.fullmatch(
        r"([A-Za-z0-9_.\-/]+)\s*(?:(?:[:=(]|->)\s*|\s+)([A-Za-z]+)\s*\)?", text.strip()
    )
    if m is None:
        raise BadValue(f"{text.strip() or 'nothing'} is not name:status", "deps")
    health = _choice(m[2].lower(), ("healthy", "degraded", "unhealthy"), "deps", "status")
    return DependencyStatus(name=m[1], health=health)


def _stages(text: str) -> list[float]:
    """``1%, 5%, 100%``, ``1-5-25-100%``, ``5 -> 25 -> 100``, ``[1, 5, 100]``; a range
    (``1..5%``, ``5-100%``) has no one reading, so it is refused."""
    text = re.sub(r"\s*(?:%|\bpercent\b|\bpct\b)", "%", text, flags=re.IGNORECASE)
    if m := re.search(rf"{NUMBER}%?\s*(?:\.\.\.?|…|\bto\b)\s*{NUMBER}%?", text):
        raise BadValue(f"{m[0]} is a range, not the list of stages", "stages")
    dashed = re.fullmatch(rf"({NUMBER}%?)\s*-\s*({NUMBER}%?)", text.strip())
    if dashed and not dashed[2].startswith("-"):
        raise BadValue(f"{dashed[0]} could be a range or two stages; list each stage", "stages")
    parts = _list(re.sub(r"(?<=[0-9%])\s*-\s*(?=[0-9])", ",", text))  # 1-5-25-100%
    raws = [part.removesuffix("%").strip() for part in parts]
    stages = [read_number(raw, "stages") for raw in raws]
    for raw, stage in zip(raws, stages, strict=True):
        if not 0 < stage <= 100:
            raise BadValue(f"{raw} is not a percentage", "stages")
    for before, after in itertools.pairwise(stages):
        if after <= before:
            raise BadValue(f"{after:g} comes after {before:g}, but stages must increase", "stages")
    if not stages or stages[-1] != 100:
        raise BadValue("the last stage is not 100", "stages")
    return stages


def _traffic(text: str) -> float:
    plain = re.sub(r"(?<=[0-9]),(?=[0-9]{3})", "", text.strip())  # 1,200 rps
    m = re.fullmatch(
        rf"~?\s*({NUMBER})\s*([kKmM]?)\s*(?:(rps|req/s|requests/s(?:ec)?|/s)|"
        r"(rpm|req/min|requests/min(?:ute)?|/min))?",
        plain,
        re.IGNORECASE,
    )
    if m is None or m[1].startswith("-"):
        raise BadValue(f"{text.strip() or 'nothing'} is not a request rate", "traffic")
    rate = read_number(m[1], "traffic", {"": 1, "k": 1000, "m": 1_000_000}[m[2].lower()])
    return rate / 60 if m[4] else rate  # per minute, as per second


def _environments(text: str) -> list[EnvName]:
    envs: list[EnvName] = []
    for item in _list(text.lower()):
        env = _choice(ENV_ALIASES.get(item, item), ENV_ORDER, "env", "known environment")
        if env in envs:
            raise BadValue(f"{env} is listed twice", "env")
        envs.append(env)
    arrows = re.search(r"->|=>", text) is not None  # an arrow states an order: it must be ours
    if arrows and envs != sorted(envs, key=ENV_ORDER.index):
        order = " -> ".join(sorted(envs, key=ENV_ORDER.index))
        raise BadValue(f"{' -> '.join(envs)} is not the deploy order, which is {order}", "env")
    return envs


def _regions(text: str) -> list[str]:
    regions = [_match(_SERVICE_RE, r, "regions", "a region") for r in _list(text.lower())]
    if len(set(regions)) != len(regions):
        raise BadValue("a region is listed twice", "regions")
    return regions


def _hash(value: str) -> str:
    digest = value.lower().removesuffix("…").removesuffix("...")  # pasted digests get cut
    return _match(re.compile(r"sha256:[0-9a-f]{6,64}"), digest, "hash", "a sha256 digest")


# Comparators people write as words, each with one meaning.
_COMPARATOR_WORDS = (
    (r"under|below|less than|lower than", "<"),
    (r"at most|max(?:imum)?|up to|no more than", "<="),
    (r"at least|min(?:imum)?|no less than", ">="),
    (r"above|over|more than|greater than|higher than", ">"),
)
_UNIT_RE = re.compile(
    rf"({NUMBER})\s*(%|percent|pct|ms|msecs?|millis(?:econds?)?|milliseconds?|s|secs?|seconds?)"
    r"(?![A-Za-z])",
    re.IGNORECASE,
)


def _guardrail_words(item: str) -> str:
    """``under 1%`` -> ``< 1%``; ``p95 at most 300ms`` -> ``p95 <= 300ms``."""
    for words, comparator in _COMPARATOR_WORDS:
        item = re.sub(rf"\b(?:{words})\s+(?=[+\-.0-9])", comparator, item, flags=re.IGNORECASE)
    return item


def _units(value: str) -> str:
    """``1 percent`` -> ``1%``, ``300 MS`` -> ``300ms``, ``0.8 seconds`` -> ``0.8s``."""

    def unit(m: re.Match[str]) -> str:
        word = m[2].lower()
        short = "%" if word in ("%", "percent", "pct") else "ms" if word[0] == "m" else "s"
        return m[1] + short

    return _UNIT_RE.sub(unit, value)


def _metric_name(name: str) -> str:
    """``P95``, ``Error_Rate``: a known metric in any case; a KPI keeps its own."""
    lower = name.lower()
    if lower in RATES or lower in LATENCY_NAMES:
        return lower
    return "kpi:" + name[4:] if lower.startswith("kpi:") else name


def _guardrail_token(token: str) -> str:
    """A line's guardrail token with its metric name and unit in any case: ``P95<300MS``."""
    m = re.fullmatch(rf"({GUARDRAIL_NAME})(.*)", token.strip())
    return _metric_name(m[1]) + _units(m[2]) if m else token
