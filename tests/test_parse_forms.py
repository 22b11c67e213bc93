"""The forms people naturally write in a pasted template or a /release line: ranges, units,
parentheses, lists, arrows, case and spacing, comments, and what Slack does to text. Each
form with one reading is understood; the others are refused naming the line at fault."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.config import Config
from bot.domain.request import ReleaseRequest
from bot.parsing import ParseError, parse_release

ARTIFACT = "ghcr.io/acme/payments-api:2.4.1"
EMAIL = "alice@example.com"

# Each field: its section, and the ways teams write the same value (the first is canonical).
FORMS: list[tuple[str, str, list[str]]] = [
    ("release_package", "Version", ["2.4.1", "`2.4.1`", "2.4.1  # hotfix", "2.4.1 // hotfix"]),
    (
        "release_package",
        "Build artifacts",
        [
            f"{ARTIFACT} (sha256:ab12cd34, build 8812)",
            f"`{ARTIFACT}` (sha256:ab12cd34, build #8812)",
            f"{ARTIFACT} (build 8812, sha256:ab12cd34)",
        ],
    ),
    ("release_package", "Changes included", [f"faster checkout; fix refunds, ask {EMAIL}"]),
    ("release_package", "Risk level", ["medium", "Medium", "MEDIUM", "medium  # payments"]),
    (
        "deployment_config",
        "Target environments",
        [
            "staging, prod (us-east-1, eu-west-1)",
            "staging -> prod (us-east-1, eu-west-1)",
            "staging → prod (us-east-1 and eu-west-1)",
            "staging => prod (us-east-1 / eu-west-1)",
            "[staging, prod] (us-east-1, eu-west-1)",
            "Staging; Prod (US-EAST-1, EU-WEST-1)",
            "staging and prod (us-east-1, eu-west-1)",
            "staging (us-east-1, eu-west-1), prod (us-east-1, eu-west-1)",
            "stage, production (us-east-1, eu-west-1)",
            "staging, prod (us-east-1, eu-west-1)  # both regions",
            "\n    - staging\n    - prod (us-east-1, eu-west-1)",  # a bulleted list below
        ],
    ),
    (
        "deployment_config",
        "Deployment strategy",
        ["canary", "Canary", "CANARY", "canary 1-5-25-50-100%", "canary (1%, 5%, 25%, 50%, 100%)"],
    ),
    (
        "deployment_config",
        "Feature flags",
        [
            "new_checkout:0%",
            "new_checkout: 0%",
            "new_checkout (0%)",
            "new_checkout=0",
            "new_checkout @ 0 %",
            "`new_checkout`: 0%",
        ],
    ),
    (
        "deployment_config",
        "Rollout percentages",
        [
            "1%, 5%, 25%, 50%, 100%",
            "1-5-25-50-100%",
            "1% → 5% → 25% → 50% → 100%",
            "1 -> 5 -> 25 -> 50 -> 100",
            "1 => 5 => 25 => 50 => 100",
            "[1, 5, 25, 50, 100]",
            "1/5/25/50/100",
            "1 %, 5 %, 25 %, 50 %, 100 %",
            "1, 5, 25, 50, 100 percent",
            "1% – 5% – 25% – 50% – 100%",
            "1 5 25 50 100",
        ],
    ),
    (
        "guardrails",
        "Error rate threshold",
        [
            "< 1%",
            "<1 %",
            "< 1 percent",
            "under 1%",
            "below 1 pct",
            "error_rate < 1%",
            "Error_Rate < 1%",
            "1%",
            "< 1%  # from the SLO",
        ],
    ),
    (
        "guardrails",
        "Latency budget",
        [
            "p95 < 300ms, p99 < 800ms",
            "p95 < 0.3s, p99 < 0.8s",
            "P95 < 300MS; P99 < 800MS",
            "p95 300ms / p99 800ms",
            "p95 < 300ms (p99 < 800ms)",
            "p95: 300 msec, p99: 800 millis",
            "p95 under 300 ms, p99 under 0.8 seconds",
        ],
    ),
    (
        "guardrails",
        "Availability SLA",
        ["99.9%", ">= 99.9%", "≥ 99.9 %", "at least 99.9 percent", "99.9"],
    ),
    (
        "guardrails",
        "Business KPIs",
        ["checkout_conversion >= -2%", "checkout_conversion ≥ -2 %", "checkout_conversion>=-2pct"],
    ),
    (
        "operational_context",
        "Current traffic",
        [
            "1200 rps",
            "1.2k rps",
            "1,200 req/s",
            "1.2K RPS",
            "~1200rps",
            "72k rpm",
            "72,000 req/min",
        ],
    ),
    (
        "operational_context",
        "Peak hours",
        [
            "09:00-12:00 UTC",
            "09:00–12:00 UTC",
            "9:00 - 12:00",
            "09:00 → 12:00 UTC",
            "09:00 to 12:00",
        ],
    ),
    ("operational_context", "Maintenance windows", ["sat 02:00-04:00", "Sat 02:00 to 04:00 UTC"]),
    (
        "operational_context",
        "Dependencies status",
        [
            "payments-db healthy, ledger degraded",
            "payments-db: healthy; ledger: degraded",
            "payments-db (healthy), ledger (degraded)",
            "payments-db → healthy, ledger → degraded",
            "payments-db=Healthy, ledger=DEGRADED",
        ],
    ),
]
NAMES = [name for _, name, _ in FORMS]

# Values with no one reading, per field, with what the refusal must say.
MALFORMED: dict[str, list[tuple[str, str]]] = {
    "Version": [("latest", "latest is not a version"), ("2.4.1 2.4.2", "is not a version")],
    "Risk level": [("extreme", "extreme is not a risk level"), ("med-high", "not a risk level")],
    "Target environments": [
        ("staging, qa (us-east-1)", "qa is not a known environment"),
        ("prod -> staging (us-east-1)", "prod -> staging is not the deploy order"),
        ("staging (us-east-1), prod (eu-west-1)", "a release has one list"),
        ("staging, prod (us-east-1", "unbalanced parentheses"),
    ],
    "Deployment strategy": [
        ("big bang", "big_bang is not a strategy"),
        ("canary (5-100%)", "could be a range or two stages"),
    ],
    "Feature flags": [
        ("new checkout: 0%", "is not a flag name"),
        ("new_checkout: 150%", "not a percentage between 0 and 100"),
    ],
    "Rollout percentages": [
        ("1..5%", "1..5% is a range"),
        ("5-100%", "could be a range or two stages"),
        ("5 to 100%", "is a range"),
        ("25, 5, 100", "stages must increase"),
        ("1, 5, 50", "the last stage is not 100"),
    ],
    "Error rate threshold": [
        ("< 1% (5m window)", "5m window is not a guardrail"),
        ("error_rate < 1% (p95 < 400ms)", "put it under Latency budget"),
        ("< 1ms", "error_rate is a percentage, not a time"),
    ],
    "Latency budget": [("p95 < 300%", "p95 is a time"), ("fast", "fast is not a threshold")],
    "Availability SLA": [("three nines", "not a threshold"), ("99.9 ms", "percentage")],
    "Business KPIs": [("checkout_conversion", "not a threshold")],
    "Current traffic": [("1200 rps (peak 3k)", "not a request rate"), ("lots", "request rate")],
    "Peak hours": [("9am-12pm", "not a time range"), ("09:00", "not a time range")],
    "Dependencies status": [("payments-db fine", "fine is not a status")],
}


@dataclass(frozen=True)
class Style:
    """How a person, or Slack, wrote the template around its values."""

    bullet: str = "- "
    name_case: str = "as is"  # lower, upper, bold
    colon: str = ": "
    line_end: str = "\n"
    nbsp: bool = False  # non-breaking spaces where spaces were
    slack: bool = False  # as a Slack message carries it: &gt;, <mailto:…|…>, <http://…|…>
    quoted: bool = False  # pasted as a Slack quote block
    fenced: bool = False  # pasted inside ``` … ```
    service: str = "payments-api"


def field_line(name: str, value: str, style: Style) -> str:
    shown = {"lower": name.lower(), "upper": name.upper(), "bold": f"*{name}:*"}.get(
        style.name_case, name
    )
    colon = "" if style.name_case == "bold" else style.colon.rstrip(" ")
    return f"{style.bullet}{shown}{colon} {value}".rstrip(" ")


def render(values: dict[str, str], style: Style) -> tuple[str, dict[str, int]]:
    """The template text, and the line number of each field."""
    lines, numbers, section = [style.service], {}, ""
    for field_section, name, _ in FORMS:
        if field_section != section:
            if section:
                lines.append(f"</{section}>")
            lines.append(f"<{field_section}>")
            section = field_section
        numbers[name] = len(lines) + 1
        lines += field_line(name, values[name], style).split("\n")
    lines.append(f"</{section}>")
    if style.quoted:
        lines = [f"> {line}" for line in lines]
    text = style.line_end.join(lines) + style.line_end
    if style.nbsp:
        text = text.replace(" ", "\u00a0")
    if style.slack:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = text.replace(ARTIFACT, f"<http://{ARTIFACT}|{ARTIFACT}>")
        text = text.replace(EMAIL, f"<mailto:{EMAIL}|{EMAIL}>")
    if style.fenced:
        text = f"```{text}```"
    return text, numbers


CANONICAL = {name: forms[0] for _, name, forms in FORMS}
styles = st.builds(
    Style,
    bullet=st.sampled_from(["- ", "* ", "• ", "  - ", "-", ""]),
    name_case=st.sampled_from(["as is", "lower", "upper", "bold"]),
    colon=st.sampled_from([": ", ":  ", ":\t", " : "]),
    line_end=st.sampled_from(["\n", "\r\n"]),
    nbsp=st.booleans(),
    slack=st.booleans(),
    quoted=st.booleans(),
    fenced=st.booleans(),
    service=st.sampled_from(["payments-api", "/release payments-api", "Service: payments-api"]),
)
forms = st.fixed_dictionaries({name: st.sampled_from(values) for _, name, values in FORMS})


@pytest.fixture(scope="module")
def canonical() -> ReleaseRequest:
    result = parse_release(render(CANONICAL, Style())[0], Config())
    assert isinstance(result, ReleaseRequest), result
    return result


def parsed(text: str) -> ReleaseRequest:
    result = parse_release(text, Config())
    assert isinstance(result, ReleaseRequest), result
    return result


def refusal(text: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_release(text, Config())
    return str(info.value)


def test_the_canonical_template_reads_as_written(canonical: ReleaseRequest) -> None:
    pkg, dep, ops = canonical.release_package, canonical.deployment_config, canonical.guardrails
    assert (pkg.version, pkg.risk, pkg.artifact.image) == ("2.4.1", "medium", ARTIFACT)
    assert pkg.changes == f"faster checkout; fix refunds, ask {EMAIL}"
    assert (dep.environments, dep.regions) == (["staging", "prod"], ["us-east-1", "eu-west-1"])
    assert dep.stages == [1, 5, 25, 50, 100]
    assert [g.describe() for g in ops.latency] == ["p95<300ms", "p99<800ms"]
    assert canonical.operational_context.traffic_rps == 1200


# --- every natural form of one field, in the canonical template ----------------------------


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for _, name, values in FORMS for value in values[1:]]
)
def test_a_natural_form_reads_as_the_canonical_value(
    canonical: ReleaseRequest, name: str, value: str
) -> None:
    assert parsed(render(CANONICAL | {name: value}, Style())[0]) == canonical


@pytest.mark.parametrize(
    "style",
    [
        Style(line_end="\r\n"),
        Style(nbsp=True),
        Style(slack=True),
        Style(quoted=True, slack=True),
        Style(fenced=True),
        Style(name_case="bold"),
        Style(bullet="• ", name_case="upper", colon=":\t"),
    ],
)
def test_how_slack_and_people_carry_the_template(canonical: ReleaseRequest, style: Style) -> None:
    assert parsed(render(CANONICAL, style)[0]) == canonical


@settings(deadline=None)
@given(values=forms, style=styles)
def test_any_mix_of_natural_forms_reads_as_the_canonical_template(
    canonical: ReleaseRequest, values: dict[str, str], style: Style
) -> None:
    assert parsed(render(values, style)[0]) == canonical


# --- what has no one reading is refused on its line -----------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [(name, value, problem) for name, bad in MALFORMED.items() for value, problem in bad],
)
def test_a_malformed_value_is_refused_naming_its_line(name: str, value: str, problem: str) -> None:
    text, numbers = render(CANONICAL | {name: value}, Style())
    message = refusal(text)
    assert message.startswith(f'line {numbers[name]}: "- {name}: {value}": ')
    assert problem in message
    assert "e.g. - " in message  # the form expected
    assert "\n" not in message


@settings(deadline=None)
@given(
    values=forms,
    style=styles,
    bad=st.sampled_from([(name, value) for name, bad in MALFORMED.items() for value, _ in bad]),
)
def test_a_malformed_value_among_natural_forms_is_refused_on_its_line(
    values: dict[str, str], style: Style, bad: tuple[str, str]
) -> None:
    name, value = bad
    if name == "Rollout percentages" and any(ch.isdigit() for ch in values["Deployment strategy"]):
        values = values | {"Deployment strategy": "canary"}  # else the strategy's line differs
    text, numbers = render(values | {name: value}, style)
    message = refusal(text)
    assert message.startswith(f"line {numbers[name]}: ")
    assert "e.g. - " in message
    assert "\n" not in message


def test_stages_given_with_the_strategy_and_again_must_agree(canonical: ReleaseRequest) -> None:
    values = CANONICAL | {"Deployment strategy": "canary 1-5-100%"}
    text, numbers = render(values, Style())
    message = refusal(text)
    assert message.startswith(f"line {numbers['Rollout percentages']}: ")
    assert "differ from 1%, 5%, 100% given with the strategy" in message
    same = CANONICAL | {"Deployment strategy": "canary 1-5-25-50-100%"}
    assert parsed(render(same, Style())[0]) == canonical


# --- the /release line ---------------------------------------------------------------------

LINE = (
    "payments-api 2.4.1 artifact=ghcr.io/acme/payments-api:2.4.1 changes=x risk=medium "
    "env=staging,prod regions=us-east-1 strategy=canary stages=1,5,25,100 "
    "error_rate<1% p95<300ms availability>=99.9% traffic=1200rps"
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "error_rate<1% p95<300ms availability>=99.9%",
            "error_rate&lt;1% p95&lt;300ms availability&gt;=99.9%",
        ),
        (" ", "\u00a0"),
        ("p95<300ms", "P95<300MS"),
        ("p95<300ms", "p95<0.3sec"),
        ("error_rate<1%", "error_rate<1pct"),
        ("stages=1,5,25,100", "stages=1-5-25-100%"),
        ("stages=1,5,25,100", "stages=1->5->25->100"),
        ("env=staging,prod", "env=staging->prod"),
        ("env=staging,prod", "env=[staging,prod]"),
        ("traffic=1200rps", "traffic=72kRPM"),
        ("artifact=ghcr.io/acme/payments-api:2.4.1", f"artifact=<http://{ARTIFACT}|{ARTIFACT}>"),
    ],
)
def test_natural_forms_on_the_line(old: str, new: str) -> None:
    assert LINE.replace(old, new) != LINE
    assert parsed(LINE.replace(old, new)) == parsed(LINE)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("env=staging,prod", "env=prod->staging", "env=prod->staging: prod -> staging is not"),
        ("stages=1,5,25,100", "stages=1..100", "stages=1..100: 1..100 is a range"),
        ("stages=1,5,25,100", "stages=5-100", "stages=5-100: 5-100 could be a range"),
    ],
)
def test_ambiguous_forms_on_the_line_are_refused(old: str, new: str, message: str) -> None:
    refused = refusal(LINE.replace(old, new))
    assert refused.startswith(message)
    assert "e.g. " in refused
