"""Reading a release request written in plain words: the agent fills the /release line's
fields, the rules parse the line, and code checks that nothing was made up.

The person who typed the text is the requester, so what the text says is theirs to say. What
it does not say the agent may only fill in where that makes the release more careful than
the service's defaults (smaller steps, a stricter or extra guardrail, a higher risk). Facts
only a person can give (a change ticket, an artifact, a flag, the changes) must come from the
text. A request read this way always waits for a human approval.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.agent.context import AgentContext
from bot.agent.prompts import agent_task, untrusted
from bot.domain.contract import InsufficientContext
from bot.domain.plan_policy import less_careful
from bot.domain.request import RISKS, ReleaseRequest
from bot.parsing import ParseError, parse_release, quote_value
from bot.ports.llm import AgentTask, ToolError, ToolOutcome

# The /release keys the agent may fill (bot.parsing.LINE_KEYS has them all; prompts/tools.json
# offers these): not the digest, the build, the traffic or dependency health, which are facts.
LINE_FIELDS = ("changes", "risk", "env", "regions", "strategy", "flags", "stages", "artifact",
               "ticket", "peak", "window")  # fmt: skip
# Only the text can give these: an invented ticket would pass the change-approval gate.
FROM_THE_TEXT_ONLY = ("changes", "flags", "artifact", "ticket")
WORD = re.compile(r"[a-z0-9]{3,}")
TICKET = re.compile(r"[A-Za-z][A-Za-z0-9]*-?[0-9]+")  # CHG-123, INC42, OPS-7


@dataclass(frozen=True)
class AskHuman:
    question: str
    missing: list[str]

    def as_insufficient(self, blockers: Iterable[str] = ()) -> InsufficientContext:
        return InsufficientContext(
            missing=self.missing or ["the request"],
            deployment_blockers=list(blockers) or ["the request could not be read"],
            next_best_step=self.question,
        )


@dataclass(frozen=True)
class ReadRequest:
    line: str  # the /release line the agent's fields make: what the rules parsed
    result: ReleaseRequest | InsufficientContext


def _quote(value: str) -> str:
    """One line token, on one line: the parser's own quoting (an apostrophe stays one)."""
    return quote_value(" ".join(value.split()))


def request_line(fields: dict[str, Any]) -> str:
    """The agent's fields as a /release line for the rule parser."""
    parts = [str(fields.get("service", "")).strip(), str(fields.get("version", "")).strip()]
    for key in LINE_FIELDS:
        value = fields.get(key)
        if value is not None and str(value).strip():
            parts.append(f"{key}={_quote(str(value))}")
    for rail in fields.get("guardrails") or []:
        parts.append(_quote(str(rail)))
    return " ".join(p for p in parts if p)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[_\-]", " ", text.lower()).split())


def _tokens(text: str) -> set[str]:
    """The text's whole tokens, lower-cased: "CHG-7", "us-east-1", "new_checkout", "25"."""
    return {t.strip(".,;:!?()\"'").lower() for t in text.split()} - {""}


def in_text(key: str, value: str, text: str, version: str = "") -> bool:
    """Whether the text itself states this field's value, as whole words."""
    if key == "changes":  # reworded is fine; mostly the request's own words
        words, source = WORD.findall(value.lower()), set(WORD.findall(text.lower()))
        return bool(words) and sum(w in source for w in words) * 2 >= len(words)
    tokens = _tokens(text) - {version.lower()}  # the version's digits state no percentage
    if key == "risk":  # "low risk", "risk: low", "low-risk"; a lone "low" says nothing
        plain = _plain(text)
        return bool(re.search(rf"\b{value} risk\b|\brisk (?:is |of |level )?{value}\b", plain))
    if key == "flags":
        parts = [p.strip().lower() for p in value.split(",") if p.strip()]
        return all(all(bit in tokens for bit in part.split(":")) for part in parts)
    return all(p.strip().lower() in tokens for p in value.split(",") if p.strip())


def _strings(args: dict[str, Any]) -> dict[str, Any]:
    """The tool input with every field the right type, or a ToolError naming the field."""
    for key in ("service", "version", *LINE_FIELDS):
        if args.get(key) is not None and not isinstance(args[key], str):
            raise ToolError(f"{key}: give a string")
    rails = args.get("guardrails")
    if rails is not None and (
        not isinstance(rails, list) or not all(isinstance(r, str) for r in rails)
    ):
        raise ToolError("guardrails: give a list of expressions such as error_rate<1%")
    return args


def read_request_task(agent: AgentContext, text: str) -> AgentTask:
    config, planner = agent.config, agent.planner
    known = sorted(config.services)

    def parse(fields: dict[str, Any]) -> ReleaseRequest | InsufficientContext:
        line = request_line(fields)
        try:
            return parse_release(line, config)
        except ParseError as exc:
            raise ToolError(f"the line {line!r} does not parse: {exc}") from None

    def less_careful_than(
        base: ReleaseRequest, mine: ReleaseRequest | InsufficientContext
    ) -> list[str]:
        """Every way ``mine`` is less careful than ``base`` (the stated fields alone)."""
        if not isinstance(mine, ReleaseRequest):
            return []
        instances = config.for_service(base.service).instances
        now = agent.clock.now()
        theirs = planner.plan(base, now, instances)
        return less_careful(base, theirs, mine, planner.plan(mine, now, instances))

    def propose(args: dict[str, Any]) -> ToolOutcome:
        fields = _strings(args)
        service, version = str(fields.get("service") or ""), str(fields.get("version") or "")
        if known and service not in known:
            raise ToolError(f"service: {service!r} is not a known service; use one of {known}")
        if not version or version not in text:
            raise ToolError("version: copy the version exactly as the request writes it")
        given = {k: v for k, v in fields.items() if k in LINE_FIELDS and v and v.strip()}
        invented = [
            k for k in FROM_THE_TEXT_ONLY if k in given and not in_text(k, given[k], text, version)
        ]
        if invented:
            raise ToolError(
                f"{', '.join(invented)}: not in the request; leave out what the text does not "
                "say (a person gives tickets, artifacts, flags and changes)"
            )
        # Risk is judgement: the agent may weigh it, never below what the text says, and
        # never low unless the text says so.
        said = [r for r in RISKS if in_text("risk", r, text)]
        floor = RISKS.index(said[-1]) if said else RISKS.index("medium")
        risk = given.get("risk")
        if risk is not None and risk in RISKS and RISKS.index(risk) < floor:
            says = f"it says {said[-1]} risk" if said else "it gives no risk, so at least medium"
            raise ToolError(f"risk: {risk} is too low for the request ({says}); raise it")
        result = parse(fields)
        if isinstance(result, ReleaseRequest):
            # Checked on the parsed request: the parser also finds a ticket inside the changes.
            ticket = result.release_package.change_ticket
            if ticket and (
                not TICKET.fullmatch(ticket)
                or ticket.lower() not in _tokens(text) - {version.lower()}
            ):
                raise ToolError(f"ticket: {ticket} is not a ticket in the request; leave it out")
        # Everything else is compared with the defaults ("to prod" names the target; it does
        # not mean skipping staging; numbers in the text are not necessarily stages).
        implied = [k for k in given if k not in (*FROM_THE_TEXT_ONLY, "risk")]
        if fields.get("guardrails"):
            implied.append("guardrails")
        if implied and isinstance(result, ReleaseRequest):
            stated = {k: v for k, v in fields.items() if k not in implied}
            base = parse(stated)
            if not isinstance(base, ReleaseRequest):
                raise ToolError(
                    f"{', '.join(implied)}: the request without them is incomplete, so they "
                    "cannot be checked against the defaults; leave them out"
                )
            each = {key: parse({**stated, key: fields[key]}) for key in implied}
            looser = [
                f"{key}: {'; '.join(why)}"
                for key, mine in each.items()
                if (why := less_careful_than(base, mine))
            ]
            if not looser and (why := less_careful_than(base, result)):
                looser.append(f"{', '.join(implied)} together: {'; '.join(why)}")
            if looser:
                raise ToolError(
                    "less careful than the service's defaults, so leave it out (a person "
                    f"can write it on a /release line): {' | '.join(looser)}"
                )
        return ToolOutcome("accepted", accepted=ReadRequest(request_line(fields), result))

    def ask(args: dict[str, Any]) -> ToolOutcome:
        question, missing = args.get("question"), args.get("missing") or []
        if not isinstance(question, str) or not question.strip():
            raise ToolError("ask_human: the question is empty")
        if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
            raise ToolError("missing: give a list of field names")
        return ToolOutcome("asked", accepted=AskHuman(question.strip()[:300], missing[:10]))

    prompt = "\n".join(
        [
            "Task: read_request",
            "Known services: " + (", ".join(known) or "any (none configured)"),
            "The request, as the user typed it:",
            untrusted("slack_message", text),
        ]
    )
    return agent_task(
        "read_request",
        prompt,
        {"propose_request": propose, "ask_human": ask},
        frozenset({"propose_request", "ask_human"}),
    )
