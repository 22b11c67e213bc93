"""Reading plain words: what the agent fills in is held to the text and to the defaults.

The propose_request handler is called directly, as the agent loop would call it; the model's
words are whatever a hostile or sloppy model might send.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.terminal import TerminalChat
from bot.agent.prompts import tool_definitions
from bot.agent.reading import LINE_FIELDS, ReadRequest, read_request_task, request_line
from bot.bootstrap import bootstrap
from bot.domain.request import ReleaseRequest
from bot.parsing import LINE_KEYS, line_tokens
from bot.ports.llm import ToolError
from bot.service import Services

START = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
READ = {"service": "payments-api", "version": "2.4.1", "changes": "fixes refund rounding"}


@pytest.fixture
def services() -> Services:
    return bootstrap(":memory:", clock_start=START, chat=TerminalChat(io.StringIO())).services


def propose(services: Services, text: str, **fields: Any) -> ReadRequest:
    outcome = read_request_task(services.agent(), text).handlers["propose_request"](
        {**READ, **fields}
    )
    assert isinstance(outcome.accepted, ReadRequest)
    return outcome.accepted


def refused(services: Services, text: str, **fields: Any) -> str:
    with pytest.raises(ToolError) as exc:
        propose(services, text, **fields)
    return str(exc.value)


def test_a_guessed_low_risk_and_looser_defaults_are_refused(services: Services) -> None:
    text = "ship payments-api 2.4.1 to prod, it fixes refund rounding"
    assert "risk: low is too low" in refused(services, text, risk="low")
    why = refused(
        services, text, risk="medium", env="prod", stages="50,100", guardrails=["error_rate<25%"]
    )
    assert all(f"{key}:" in why for key in ("env", "stages", "guardrails")), why
    read = propose(services, text, risk="high", stages="1,5,10,25,50,100")
    assert isinstance(read.result, ReleaseRequest) and read.result.release_package.risk == "high"


def test_a_risk_the_text_states_is_a_floor(services: Services) -> None:
    text = "ship payments-api 2.4.1, high risk, it fixes refund rounding"
    assert "it says high risk" in refused(services, text, risk="medium")
    low = "ship payments-api 2.4.1, low risk, it fixes refund rounding"
    read = propose(services, low, risk="low")
    assert isinstance(read.result, ReleaseRequest) and read.result.release_package.risk == "low"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"ticket": "CHG-999"}, "ticket"),
        ({"ticket": "2.4.1"}, "ticket"),  # the version is not a ticket
        ({"ticket": "refund"}, "ticket"),  # a word of the text is not a ticket either
        ({"changes": "fixes refund rounding CHG-999"}, "ticket"),  # smuggled in the changes
        ({"artifact": "ghcr.io/evil/payments-api:2.4.1"}, "artifact"),
    ],
)
def test_facts_only_a_person_gives_must_be_in_the_text(
    services: Services, fields: dict[str, Any], words: str
) -> None:
    text = "ship payments-api 2.4.1, medium risk, it fixes refund rounding"
    assert words in refused(services, text, risk="medium", **fields)


def test_numbers_in_the_text_are_not_stages(services: Services) -> None:
    text = "ship payments-api 2.4.1, medium risk, fixes 100 refund rounding errors in 50 shops"
    for stages in ("100", "50,100", "1,100"):
        assert "stages:" in refused(services, text, risk="medium", stages=stages)


def test_a_ticket_the_text_gives_is_kept(services: Services) -> None:
    text = "ship payments-api 2.4.1, medium risk, change CHG-7, it fixes refund rounding"
    read = propose(services, text, risk="medium", ticket="CHG-7")
    assert isinstance(read.result, ReleaseRequest)
    assert read.result.release_package.change_ticket == "CHG-7"


def test_the_agent_fills_only_line_keys_and_its_tool_offers_exactly_those() -> None:
    assert set(LINE_FIELDS) <= set(LINE_KEYS)
    propose_request = next(t for t in tool_definitions() if t["name"] == "propose_request")
    offered = set(propose_request["input_schema"]["properties"])
    assert offered == {"service", "version", "guardrails", *LINE_FIELDS}


def test_the_agents_line_quotes_what_it_writes_the_way_the_parser_reads_it() -> None:
    fields = {**READ, "changes": 'it\'s the "refund"\nrounding fix', "guardrails": ["p95 < 300ms"]}
    tokens = line_tokens(request_line(fields))
    assert tokens[:2] == ["payments-api", "2.4.1"]
    assert 'changes=it\'s the "refund" rounding fix' in tokens
    assert "p95 < 300ms" in tokens
    assert "changes=it's" in line_tokens(request_line({**READ, "changes": "it's"}))
