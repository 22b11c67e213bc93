"""Deterministic checks on the agent's text and judgement: what it writes is grounded in
the facts or goes back to it as a tool error with the reason.

The model may word things; it may not invent or drop changes, demote a breaking change,
contradict the outcome, make up numbers or people, or post links, markup, broadcasts and
commands into the thread.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from bot.domain.contract import Changelog, NextAction
from bot.domain.release import AGENT, Event, Release
from bot.domain.report import rules_changelog
from bot.ports.llm import ToolError

SUMMARY_WORDS = 200
EXPLANATION_CHARS = 900
# Words that must appear in a final summary, by outcome: the text may not contradict the facts.
OUTCOME_WORDS = {
    "completed": ("complete",),
    "rolled_back": ("rolled back", "rollback", "roll back"),
    "failed": ("fail", "block", "stopped", "rejected", "cancel"),
}
FORBIDDEN = re.compile(
    r"```|<!(?:channel|here|everyone)|@(?:channel|here|everyone)\b|\bkubectl\b|\bhelm\s|^\s*\$ ",
    re.IGNORECASE | re.MULTILINE,
)
# Links, and the bare domains Slack turns into links by itself.
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://|\bwww\.|\bmailto:", re.IGNORECASE)
DOMAIN = re.compile(
    r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|dev|app|co|ai|ly|me|sh|xyz|info|biz"
    r"|link|site|page|gg|us|uk|de)\b",
    re.IGNORECASE,
)
# Slack's own markup: <https://…|label>, <@U…>, <#C…>, <!subteam^…>, <!date…>.
MARKUP = re.compile(r"<\s*(?:[@#!]|[a-z][a-z0-9+.-]*:)|<[^<>\n]*\|[^<>\n]*>", re.IGNORECASE)
# Brackets that look like < and > in Slack: text that mimics markup without being it.
LOOKALIKE = re.compile("[\u2039\u203a\u2329\u232a\u27e8\u27e9\u3008\u3009\ufe64\ufe65\uff1c\uff1e"
                       "\u1438\u1433\u02c2\u02c3\u276e\u276f\u276c\u276d\u29fc\u29fd\u2989\u298a]")  # fmt: skip
USER_MENTION = re.compile(r"<@([A-Za-z0-9]+)(?:\|[^<>]*)?>")
AT_MENTION = re.compile(r"(?<![\w<@.])@([\w.-]*\w)")
APPROVED_BY = re.compile(
    r"\bapproved by\s+(?:the\s+|an?\s+)?(<@[A-Za-z0-9]+(?:\|[^<>]*)?>|@?[\w.-]*\w)", re.IGNORECASE
)
# Ways to say who approved that name nobody in particular.
APPROVER_WORDS = {"one", "two", "both", "approver", "approvers", "human", "person", "policy"}
WORD = re.compile(r"[a-z0-9]{3,}")
# Words that say which list a change belongs in, not what it is.
LABEL_WORDS = {"breaking", "deprecated", "deprecate", "deprecation", "fix", "fixes", "fixed",
               "bug", "bugfix", "feat", "feature", "chore"}  # fmt: skip
# A number in the summary: not one glued to a word (p95, v2, U0ALICE, 5xx).
NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
# Dates and times are checked whole: a minute of a timestamp grounds no percentage.
DATE_TIME = re.compile(
    r"(?<![\w.])(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?)?"
    r"(?:Z|[+-]\d{2}:\d{2})?"
)
TIME = re.compile(r"(?<![\w.:])(\d{1,2}:\d{2})(?::\d{2})?(?![\w:])")
THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# -- the changelog ----------------------------------------------------------------------------


def _stem(word: str) -> str:
    """Crude, on purpose: "fixed", "fixes" and "fix" are one word when sorting changes."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _stems(text: str) -> list[str]:
    return [_stem(w) for w in WORD.findall(text.lower())]


def _grounded(item: str, source: set[str]) -> bool:
    """Most of an item's words come from the changes: sorting, not inventing."""
    words = _stems(item)
    return bool(words) and sum(w in source for w in words) >= max(1, len(words) // 2)


def _covers(item: str, change: str) -> bool:
    """The item carries most of what the change says (its label words aside)."""
    words = set(_stems(change))
    content = words - {_stem(w) for w in LABEL_WORDS} or words
    if not content:  # a change of short words only ("v2"): its text must be there
        return change.strip().lower() in item.lower()
    return len(content & set(_stems(item))) * 2 > len(content)


def check_changelog(raw: Any, changes: str) -> Changelog:
    try:
        log = Changelog.model_validate(raw)
    except ValidationError as exc:
        raise ToolError(f"changelog: {_reason(exc)}") from None
    items = [*log.features, *log.fixes, *log.breaking_changes, *log.deprecations]
    source = set(_stems(changes))
    if not items:
        raise ToolError("changelog: every change must be sorted into one of the four lists")
    if len(items) > 50 or any(not i.strip() or len(i) > 300 for i in items):
        raise ToolError("changelog: at most 50 items, each 1 to 300 characters")
    invented = [i for i in items if not _grounded(i, source)]
    if invented:
        raise ToolError(
            "changelog: items must use the words of the changes; not found: "
            + "; ".join(invented[:3])
        )
    rules = rules_changelog(changes)  # split as the rules split it: by ";" and by line
    every = dict.fromkeys(
        [*rules.features, *rules.fixes, *rules.breaking_changes, *rules.deprecations]
    )
    dropped = [c for c in every if not any(_covers(i, c) for i in items)]
    if dropped:
        raise ToolError(
            "changelog: every change must be in an item; missing: " + "; ".join(dropped[:3])
        )
    # The model may call more changes breaking, never fewer: a demoted one is missed by readers.
    for change in rules.breaking_changes:
        if not any(_covers(i, change) for i in log.breaking_changes):
            raise ToolError(
                f"changelog: {change!r} is a breaking change; keep it in breaking_changes"
            )
    for change in rules.deprecations:
        if change not in rules.breaking_changes and not any(
            _covers(i, change) for i in [*log.deprecations, *log.breaking_changes]
        ):
            raise ToolError(f"changelog: {change!r} is a deprecation; keep it in deprecations")
    return log


# -- text posted to Slack ---------------------------------------------------------------------


def _refuse_markup(text: str, where: str = "") -> None:
    """No broadcasts, commands, links or Slack markup, also spelled in full-width lookalikes."""
    folded = unicodedata.normalize("NFKC", text)
    if FORBIDDEN.search(text) or FORBIDDEN.search(folded):
        raise ToolError(
            f"{where}the text has a broadcast mention, a command or code; write plain prose"
        )
    if any(p.search(folded) for p in (URL, DOMAIN, MARKUP)) or LOOKALIKE.search(text):
        raise ToolError(
            f"{where}the text has a link or Slack markup; write plain prose without links or mentions"
        )


def _bounded(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def clean_text(text: str, limit: int = EXPLANATION_CHARS) -> str:
    """A model's free text made safe to post: plain prose, no markup, bounded length."""
    _refuse_markup(text)
    return _bounded(text, limit)


# -- the report's summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgentReport:
    summary: str
    next_actions: list[NextAction]


@dataclass(frozen=True)
class Claim:
    """A phrase that contradicts an outcome when it is said (or, for "denied", negated)."""

    pattern: re.Pattern[str]
    when: Literal["said", "denied"] = "said"
    unless: re.Pattern[str] | None = None  # the clause is about something else (a step, a check)


ROLLBACK = r"\b(?:roll(?:ed|ing)?[ -]?back|rollback|revert(?:ed|ing)?)\b"
ROLLED_BACK = re.compile(
    r"\b(?:rolled[ -]?back|reverted|rollback (?:was |has been |got )?(?:triggered|started"
    r"|initiated|performed|executed|completed|fired|ran|happened|kicked in))\b"
)
RELEASE_SUCCEEDED = re.compile(
    r"\b(?:release|rollout|roll-out|deployment|deploy|upgrade|update|it)\s+(?:has\s+|had\s+"
    r"|was\s+|is\s+)?(?:now\s+)?(?:fully\s+|successfully\s+)?(?:completed?|succeeded"
    r"|successful|finished|done|shipped)\b"
)
SUCCEEDED = re.compile(r"\b(?:completed successfully|succeeded|successful(?:ly)?)\b")
FULLY_OUT = re.compile(
    r"\b(?:fully (?:rolled out|deployed|released|shipped|live)"
    r"|rolled out to (?:all|every|everyone|the whole))\b"
)
# What a clause may be about when it says "succeeded" of a release that did not.
PART = (
    r"check|test|scan|gate|verif|smoke|approv|rehears|benchmark|build|review|plan|staging"
    r"|window|metric|probe|analys|peak|halt|paus|resum"
)
# What a clause may be about when it says a rolled-back or failed release is live: the
# version that serves now, or an earlier environment.
STILL = r"stable|previous|again|restor|stays|remain|unaffected|staging|\d+\.\d+\.\d+ is"
CONTRADICTIONS: dict[str, tuple[Claim, ...]] = {
    "completed": (
        Claim(ROLLED_BACK),
        Claim(
            re.compile(
                r"\b(?:incomplete|uncompleted|partially (?:completed?|deployed|rolled out))\b"
            )
        ),
        Claim(re.compile(r"\bcomplet(?:e|ed|ion)\b"), "denied"),
        Claim(
            re.compile(r"\b(?:fail(?:ed|s|ure)?|abort(?:ed)?|halted|cancell?ed|abandoned)\b"),
            unless=re.compile(rf"{PART}|retr|attempt|warning|alert|request|transaction|load"),
        ),
    ),
    "rolled_back": (
        Claim(re.compile(ROLLBACK), "denied"),
        Claim(RELEASE_SUCCEEDED, unless=re.compile(STILL)),
        Claim(
            re.compile(r"\bfully (?:rolled out|deployed|released|shipped|live)\b"),
            unless=re.compile(STILL),
        ),
        Claim(
            SUCCEEDED, unless=re.compile(rf"{ROLLBACK}|restor|stable|previous|step|stage|{PART}")
        ),
    ),
    "failed": (
        Claim(RELEASE_SUCCEEDED, unless=re.compile(STILL)),
        Claim(FULLY_OUT, unless=re.compile(STILL)),
        Claim(ROLLED_BACK),
        Claim(
            re.compile(r"\b(?:rolled out|deployed|released|shipped|went live|is live)\b"),
            unless=re.compile(STILL),
        ),
        Claim(SUCCEEDED, unless=re.compile(PART)),
        Claim(re.compile(r"\bcomplet(?:e|ed)\b"), unless=re.compile(rf"{PART}|run")),
    ),
}
# Honest idioms that would read as a contradiction: the rules write "Alerts without rollback".
IDIOMS = re.compile(r"\balerts? without (?:a |any )?rollback\b")
NEGATORS = {"no", "not", "never", "nothing", "none", "without", "neither", "nor", "zero",
            "avoided", "nobody", "before"}  # fmt: skip
# A phrase after these is a possibility or a next step, not a claim: "can be rolled back".
MODALS = {"will", "would", "can", "could", "should", "may", "might", "once", "until", "if", "be"}
NEGATED_AFTER = re.compile(
    r"\s*(?:(?:was|were|is|has|had|did)(?:\s+not|n't)|(?:was|were|is|has|had)\s+never)"
    r"(?:\s+been)?\s+(?:needed|necessary|required|triggered|performed|done|started|executed"
    r"|initiated|happen(?:ed)?|occur(?:red)?|completed?|fired?)\b"
    r"|\s*(?:was\s+|is\s+)?(?:unnecessary|unneeded|avoided)\b"
)


def _before(clause: str, start: int) -> list[str]:
    """The three words before ``start`` in its part of the clause."""
    part = re.split(r"[,(—–]|\bbut\b|\band\b", clause[:start])[-1]
    return re.findall(r"[\w']+", part)[-3:]


def _negation(clause: str, start: int, end: int) -> str | None:
    """The words that negate the phrase at ``start:end`` ("no rollback", "rollback was not
    needed"), or None when it is said plainly."""
    words = _before(clause, start)
    for i, w in enumerate(words):
        if w in NEGATORS or w.endswith("n't"):
            return " ".join([*words[i:], clause[start:end]])
    after = NEGATED_AFTER.match(clause[end:])
    return clause[start : end + after.end()].strip() if after else None


def contradiction(summary: str, status: str, quoted: Sequence[str] = ()) -> str | None:
    """The phrase in ``summary`` that contradicts ``status``, or None. ``quoted`` is text
    people typed (a rollback reason, a blocker): the summary may repeat it as it stands."""
    text = summary.lower().replace("\u2019", "'")
    for q in quoted:
        if q.strip():
            text = text.replace(q.lower().replace("\u2019", "'"), " ")
    text = IDIOMS.sub("alerts", text)
    for clause in re.split(r"[.!?;:](?=\s|$)|\n", text):
        for claim in CONTRADICTIONS.get(status, ()):
            if claim.unless is not None and claim.unless.search(clause):
                continue
            for m in claim.pattern.finditer(clause):
                negation = _negation(clause, m.start(), m.end())
                hypothetical = MODALS.intersection(_before(clause, m.start()))
                if claim.when == "said" and negation is None and not hypothetical:
                    return m.group(0)
                if claim.when == "denied" and negation is not None:
                    return negation
    return None


def _parts(token: str) -> list[str]:
    """A number with thousands separators is one number ("1,000"); "5,25,50" is three."""
    return [token.replace(",", "")] if THOUSANDS.fullmatch(token) else token.split(",")


def _moments(text: str) -> tuple[set[str], str]:
    """The dates and HH:MM times in ``text``, and the text without them."""
    found: set[str] = set()

    def date_time(m: re.Match[str]) -> str:
        found.update(g for g in m.groups() if g)
        return " "

    def time(m: re.Match[str]) -> str:
        found.add(m.group(1).zfill(5))
        return " "

    rest = TIME.sub(time, DATE_TIME.sub(date_time, text))
    return found, rest


@dataclass(frozen=True)
class Facts:
    """The numbers a text may use: values (rounding allowed), versions as they stand, and
    dates and times."""

    values: tuple[float, ...]
    dotted: frozenset[str]
    moments: frozenset[str]

    @classmethod
    def of(cls, text: str) -> Facts:
        moments, rest = _moments(text)
        values: set[float] = set()
        dotted: set[str] = set()
        for token in NUMBER.findall(rest):
            for part in _parts(token):
                pieces = part.split(".")
                if len(pieces) > 2:
                    dotted.add(part)
                    values.update(float(p) for p in pieces)
                    # "2.4" of "2.4.1": the minor version is a fact too.
                    values.add(float(".".join(pieces[:2])))
                elif part:
                    values.add(float(part))
        return cls(tuple(sorted(values)), frozenset(dotted), frozenset(moments))

    def has(self, part: str) -> bool:
        if part.count(".") > 1:
            return part in self.dotted
        decimals = len(part.split(".")[1]) if "." in part else 0
        value, tolerance = float(part), 0.5 * 10**-decimals + 1e-9
        # "40" grounds 39.6 and "0.21" grounds 0.2134: rounding is honest, inventing is not.
        return any(abs(value - v) <= tolerance for v in self.values)


def ungrounded_number(summary: str, facts: str | Facts) -> str | None:
    """The first number, date or time in ``summary`` that the facts do not give, or None."""
    known = facts if isinstance(facts, Facts) else Facts.of(facts)
    moments, rest = _moments(summary)
    for moment in sorted(moments - known.moments):
        return moment
    for token in NUMBER.findall(rest):
        for part in _parts(token):
            if part and not known.has(part):
                return part
    return None


def _person(name: str) -> str:
    name = name.strip()
    if m := USER_MENTION.fullmatch(name):
        name = m.group(1)
    return name.lstrip("@").lower()


def _check_mentions(summary: str, people: set[str]) -> None:
    known = {_person(p) for p in people}
    mentioned = [m.group(0) for m in USER_MENTION.finditer(summary)]
    mentioned += [f"@{m.group(1)}" for m in AT_MENTION.finditer(summary)]
    for name in mentioned:
        if _person(name) not in known:
            raise ToolError(
                f"summary: {name} is not among the people in the facts; "
                f"mention only {sorted(people)}"
            )


def _check_approvers(summary: str, release: Release, people: set[str]) -> None:
    """Approvals are facts: "approved by the CTO" when alice approved invents a person."""
    known = {_person(p) for p in people} | {
        w.lower() for a in release.approvals for w in re.findall(r"[\w.-]+", a.approver)
    }
    for m in APPROVED_BY.finditer(summary):
        if _person(m.group(1)) not in known | APPROVER_WORDS:
            raise ToolError(
                f"summary: approved by {m.group(1)!r} is not in the facts; the approvals were "
                f"by {sorted({a.approver for a in release.approvals}) or 'nobody yet'}"
            )


def check_report(
    args: dict[str, Any], release: Release, people: set[str], facts: str
) -> AgentReport:
    """The agent's summary and next actions, or a ToolError naming what is wrong. ``facts``
    is the text every number in the summary must come from (see ``report_facts``)."""
    summary = str(args.get("summary", "")).strip()
    if not summary:
        raise ToolError("summary: empty")
    if len(summary.split()) > SUMMARY_WORDS:
        raise ToolError(f"summary: {len(summary.split())} words; the limit is {SUMMARY_WORDS}")
    _check_mentions(summary, people)
    # Mentions of people are checked above, and the image's registry is a fact, not a link.
    known = facts.lower()
    _refuse_markup(
        DOMAIN.sub(
            lambda m: " " if m.group(0).lower() in known else m.group(0),
            USER_MENTION.sub(" ", summary),
        ),
        "summary: ",
    )
    summary = _bounded(summary, 2000)
    status = release.status.replace("_", " ")
    words = OUTCOME_WORDS.get(release.status)
    if words and not any(w in summary.lower() for w in words):
        raise ToolError(
            f"summary: the release is {status}; say so (use one of: {', '.join(words)})"
        )
    quoted = [
        *release.blockers,
        *([release.rollback.reason] if release.rollback else []),
        *([release.pause_reason] if release.pause_reason else []),
    ]
    if phrase := contradiction(summary, release.status, quoted):
        raise ToolError(
            f"summary: the release is {status}, and {phrase!r} says otherwise; "
            "state the outcome the facts show"
        )
    if number := ungrounded_number(summary, facts):
        raise ToolError(f"summary: {number} is not in the facts; use the numbers the facts give")
    _check_approvers(summary, release, people)
    raw = args.get("next_actions")
    if not isinstance(raw, list) or not 1 <= len(raw) <= 5:
        raise ToolError("next_actions: give one to five actions")
    actions = []
    for i, item in enumerate(raw):
        try:
            action = NextAction.model_validate(item)
        except ValidationError as exc:
            raise ToolError(f"next_actions[{i}]: {_reason(exc)}") from None
        if action.owner not in people:
            raise ToolError(
                f"next_actions[{i}].owner: {action.owner!r} is not named in the facts; "
                f"use one of {sorted(people)}"
            )
        actions.append(action.model_copy(update={"action": clean_text(action.action, 300)}))
    return AgentReport(summary, actions)


def report_facts(release: Release, rules_summary: str, events: Sequence[Event]) -> str:
    """What a report's numbers may come from: the rules' summary, the release as the read
    tools show it, and the audit trail with its times. The agent's own words are left out,
    so an earlier invented number cannot ground a later one."""
    shown = release.model_dump(
        mode="json",
        exclude={
            "narration": True,
            "canary_judge": True,
            "observed": {"baseline_history", "canary_error_rates"},
        },
    )
    lines = [
        rules_summary,
        f"{release.request.service} {release.version}, status {release.status}, "
        f"{release.current_percentage():g} % of traffic on the new version, "
        f"{len(release.plan.steps)} steps",
        json.dumps(shown, default=str),
    ]
    if release.judgement is not None:  # confidences are fractions; people write percentages
        confidences = [release.judgement.statistical_confidence] + [
            r.confidence for r in release.judgement.results
        ]
        lines.append("confidence " + ", ".join(f"{c * 100:g} %" for c in confidences))
    for i, (step, record) in enumerate(zip(release.plan.steps, release.steps, strict=False)):
        if record.started_at and record.completed_at:
            minutes = (record.completed_at - record.started_at).total_seconds() / 60
            lines.append(f"step {i + 1} of {len(release.plan.steps)} took {minutes:g} minutes")
        lines.append(f"step {i + 1}: {step.percentage:g} %")
    spans = [(release.created_at, release.finished_at)]
    if release.rollback is not None:
        spans.append((release.rollback.started_at, release.rollback.completed_at))
    for start, end in spans:
        if end is not None:
            secs = (end - start).total_seconds()
            lines.append(f"took {secs:g} seconds, {secs / 60:g} minutes, {secs / 3600:g} hours")
    lines += [
        f"{e.at:%Y-%m-%d %H:%M:%S} UTC {e.action} by {e.actor}: {e.details}"
        for e in events
        if e.actor != AGENT
    ]
    return "\n".join(lines)
