"""Tests for the /release parser: the line, the pasted template, defaults and what is missing."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import load_config
from bot.domain.config import Config, ServiceConfig
from bot.domain.contract import InsufficientContext
from bot.domain.request import TEMPLATE_FIELDS, Guardrail, ReleaseRequest
from bot.parsing import (
    ParseError,
    parse_dependency,
    parse_flag,
    parse_guardrail,
    parse_release,
    parse_time_range,
)

FULL_LINE = (
    "/release checkout 3.1.0 strategy=canary env=staging,prod regions=us-east-1,eu-west-1 "
    "stages=1,5,25,100% risk=high flags=new_checkout:25,dark_mode artifact=ghcr.io/acme/co:3.1.0 "
    "hash=sha256:ab12cd34 build=8812 ticket=CHG-77 "
    'changes="faster checkout; fix refund rounding" traffic=1.2krps peak=09:00-12:00,17:00-18:00 '
    'window="sat 02:00-04:00; sun 03:00-05:00" deps=payments-db:healthy,ledger:degraded '
    "error_rate<1% success_rate>=99% p95<300ms p99<0.8s availability>=99.9% "
    "kpi:checkout_conversion>=-2%"
)

TEMPLATE = """\
payments-api
<release_package>
- Version: 2.4.1
- Build artifacts: ghcr.io/acme/payments-api:2.4.1 (sha256:ab12cd34…, build 8812)
- Changes included: faster checkout; fix refund rounding
- Risk level: medium
</release_package>
<deployment_config>
- Target environments: staging, prod (us-east-1, eu-west-1)
- Deployment strategy: canary
- Feature flags: new_checkout:0%
- Rollout percentages: 1%, 5%, 25%, 50%, 100%
</deployment_config>
<guardrails>
- Error rate threshold: < 1%
- Latency budget: p95 < 300ms, p99 < 800ms
- Availability SLA: 99.9%
- Business KPIs: checkout_conversion >= -2%
</guardrails>
<operational_context>
- Current traffic: 1200 rps
- Peak hours: 09:00-12:00 UTC
- Maintenance windows: sat 02:00-04:00
- Dependencies status: payments-db healthy, ledger degraded
</operational_context>
"""

EMPTY_TEMPLATE = "\n".join(
    line.split(":")[0] + ":" if line.startswith("- ") else line for line in TEMPLATE.splitlines()
)


@pytest.fixture(scope="module")
def real() -> Config:
    return load_config()


@pytest.fixture
def empty() -> Config:
    return Config()


@pytest.fixture
def small() -> Config:
    """A config in the test's control: defaults for every service, and one service."""
    return Config(
        defaults=ServiceConfig(
            environments=["staging", "prod"],
            regions=["us-east-1"],
            strategy="canary",
            guardrails=["error_rate<2%", "p95<500ms", "availability>=99%"],
        ),
        services={
            "svc": ServiceConfig(
                regions=["eu-west-1"],
                risk="low",
                artifact="registry.test/svc:{version}",
                guardrails=["error_rate<1%", "p99<900ms", "availability>=99.9%", "kpi:orders>=-5%"],
                flags=["beta:10"],
                peak_hours=["mon-fri 09:00-17:00"],
                maintenance_windows=["sun 01:00-03:00"],
            )
        },
    )


def request(text: str, config: Config) -> ReleaseRequest:
    result = parse_release(text, config)
    assert isinstance(result, ReleaseRequest), result
    return result


def insufficient(text: str, config: Config) -> InsufficientContext:
    result = parse_release(text, config)
    assert isinstance(result, InsufficientContext), result
    return result


def parse_error(text: str, config: Config) -> str:
    with pytest.raises(ParseError) as info:
        parse_release(text, config)
    return str(info.value)


# --- the line ----------------------------------------------------------------------------


def test_full_line_needs_no_config(empty: Config) -> None:
    req = request(FULL_LINE, empty)
    assert req.service == "checkout"
    pkg, dep, ops = req.release_package, req.deployment_config, req.operational_context
    assert pkg.version == "3.1.0"
    assert pkg.artifact.image == "ghcr.io/acme/co:3.1.0"
    assert pkg.artifact.hash == "sha256:ab12cd34"
    assert pkg.artifact.build_id == "8812"
    assert pkg.change_ticket == "CHG-77"
    assert pkg.changes == "faster checkout; fix refund rounding"
    assert pkg.risk == "high"
    assert dep.environments == ["staging", "prod"]
    assert dep.regions == ["us-east-1", "eu-west-1"]
    assert dep.strategy == "canary"
    assert dep.stages == [1, 5, 25, 100]
    assert [(f.name, f.percentage) for f in dep.flags] == [("new_checkout", 25), ("dark_mode", 100)]
    rails = req.guardrails
    assert rails.error_rate.describe() == "error_rate<1%"
    assert [g.describe() for g in rails.latency] == ["p95<300ms", "p99<800ms"]
    assert rails.availability.describe() == "availability>=99.9%"
    assert [g.describe() for g in rails.kpis] == ["kpi:checkout_conversion>=-2%"]
    assert [g.describe() for g in rails.others] == ["success_rate>=99%"]
    assert ops.traffic_rps == 1200
    assert [r.describe() for r in ops.peak_hours] == ["09:00-12:00 UTC", "17:00-18:00 UTC"]
    assert [r.describe() for r in ops.maintenance_windows] == [
        "sat 02:00-04:00 UTC",
        "sun 03:00-05:00 UTC",
    ]
    assert [(d.name, d.health) for d in ops.dependencies] == [
        ("payments-db", "healthy"),
        ("ledger", "degraded"),
    ]


def test_release_prefix_is_optional(empty: Config) -> None:
    assert request(FULL_LINE.removeprefix("/release "), empty) == request(FULL_LINE, empty)


def test_line_with_payments_api_defaults(real: Config) -> None:
    own = real.for_service("payments-api")
    req = request('/release payments-api v2.4.1 risk=medium changes="fix rounding"', real)
    assert req.release_package.version == "v2.4.1"
    assert own.artifact is not None
    assert req.release_package.artifact.image == own.artifact.replace("{version}", "v2.4.1")
    assert req.deployment_config.environments == own.environments
    assert req.deployment_config.regions == own.regions
    assert req.deployment_config.strategy == own.strategy
    assert req.deployment_config.stages is None  # the planner picks them
    assert req.operational_context.traffic_rps is None  # measured live
    assert req.operational_context.dependencies == []  # probed live
    assert [r.describe() for r in req.operational_context.peak_hours] == [
        parse_time_range(p).describe() for p in own.peak_hours
    ]
    assert sorted(g.describe() for g in req.guardrails.all()) == sorted(
        parse_guardrail(g).describe() for g in own.guardrails
    )


def test_line_guardrail_replaces_the_config_one_of_the_same_name(small: Config) -> None:
    req = request("/release svc 1.0.0 changes=x p99<0.5s kpi:orders>=-1% p50<80ms", small)
    assert [g.describe() for g in req.guardrails.latency] == ["p50<80ms", "p99<500ms"]
    assert [g.describe() for g in req.guardrails.kpis] == ["kpi:orders>=-1%"]
    assert req.guardrails.error_rate.describe() == "error_rate<1%"  # from the service table
    assert req.guardrails.availability.describe() == "availability>=99.9%"


def test_service_table_overrides_defaults_and_line_overrides_both(small: Config) -> None:
    req = request("/release svc 1.0.0 changes=x", small)
    assert req.deployment_config.regions == ["eu-west-1"]
    assert req.deployment_config.environments == ["staging", "prod"]
    assert req.release_package.artifact.image == "registry.test/svc:1.0.0"
    assert req.release_package.risk == "low"
    assert [(f.name, f.percentage) for f in req.deployment_config.flags] == [("beta", 10)]
    assert req.operational_context.peak_hours[0].days == ["mon", "tue", "wed", "thu", "fri"]
    assert req.operational_context.maintenance_windows[0].describe() == "sun 01:00-03:00 UTC"
    line = "/release svc 1.0.0 changes=x regions=ap-south-1 risk=high flags=none peak=none"
    req = request(line, small)
    assert req.deployment_config.regions == ["ap-south-1"]
    assert req.release_package.risk == "high"
    assert req.deployment_config.flags == []
    assert req.operational_context.peak_hours == []


def test_unknown_service_with_everything_on_the_line(real: Config) -> None:
    line = FULL_LINE.replace("checkout 3.1.0", "brand-new 0.1.0")
    req = request(line, real)
    assert req.service == "brand-new"
    assert not real.knows("brand-new")
    assert req.release_package.artifact.image == "ghcr.io/acme/co:3.1.0"


def test_quoted_and_smart_quoted_changes(small: Config) -> None:
    text = '/release svc 1.0.0 changes="it\'s faster; fixes CHG-9"'
    req = request(text, small)
    assert req.release_package.changes == "it's faster; fixes CHG-9"
    assert req.release_package.change_ticket == "CHG-9"
    slack = "/release svc 1.0.0 changes=“two words” window=“sat 02:00-04:00”"
    req = request(slack, small)
    assert req.release_package.changes == "two words"
    assert req.operational_context.maintenance_windows[0].days == ["sat"]


@pytest.mark.parametrize(
    ("token", "rps"), [("1200rps", 1200), ("1200", 1200), ("1.2krps", 1200), ("0", 0)]
)
def test_traffic_forms(small: Config, token: str, rps: float) -> None:
    req = request(f"/release svc 1.0.0 changes=x traffic={token}", small)
    assert req.operational_context.traffic_rps == rps


# --- what is missing ---------------------------------------------------------------------


def test_missing_for_a_new_service_with_the_real_defaults(real: Config) -> None:
    result = insufficient("/release newsvc 1.0.0", real)
    assert result.missing == ["Build artifacts", "Changes included", "Risk level"]
    assert result.deployment_blockers[0] == "no build artifact: there is nothing to deploy"
    assert result.next_best_step == (
        "Add artifact=<image ref> to the /release line, or set artifact = "
        '"registry/newsvc:{version}" under [services.newsvc] in data/services.toml.'
    )


def test_missing_everything_without_config(empty: Config) -> None:
    result = insufficient("/release newsvc 1.0.0", empty)
    assert result.missing == [
        "Build artifacts",
        "Changes included",
        "Risk level",
        "Target environments",
        "Deployment strategy",
        "Error rate threshold",
        "Latency budget",
        "Availability SLA",
    ]
    assert "no error-rate threshold: the canary cannot be judged" in result.deployment_blockers
    assert len(result.deployment_blockers) == len(result.missing)


def test_missing_names_come_from_the_template_in_template_order(empty: Config) -> None:
    result = insufficient("/release", empty)
    assert result.missing[0] == "Service name"
    order = list(TEMPLATE_FIELDS.values())
    assert result.missing[1:] == sorted(result.missing[1:], key=order.index)
    assert result.next_best_step.startswith("Start the line with the service name")


def test_only_the_version_given(empty: Config) -> None:
    result = insufficient("/release 2.4.1 risk=low", empty)
    assert result.missing[0] == "Service name"
    assert "Version" not in result.missing and "Risk level" not in result.missing


def test_missing_version_asks_for_it_after_the_service(small: Config) -> None:
    result = insufficient("/release svc changes=x", small)
    assert result.missing == ["Version"]
    assert (
        result.next_best_step == "Add the version after the service name, e.g. /release svc 2.4.1."
    )


def test_missing_regions_only(empty: Config) -> None:
    line = FULL_LINE.replace(" regions=us-east-1,eu-west-1", "")
    result = insufficient(line, empty)
    assert result.missing == ["Target environments"]
    assert result.next_best_step.startswith("Add regions=<region>[,...] to the /release line")
    assert 'set regions = ["us-east-1"] under [services.checkout]' in result.next_best_step


def test_feature_flag_strategy_needs_a_flag(small: Config) -> None:
    result = insufficient("/release svc 1.0.0 changes=x strategy=feature_flag flags=none", small)
    assert result.missing == ["Feature flags"]
    assert result.next_best_step.startswith("Add flags=<flag name>")
    req = request("/release svc 1.0.0 changes=x strategy=feature_flag", small)  # config flag
    assert req.deployment_config.flags[0].name == "beta"


def test_unhealthy_dependency_is_a_blocker_when_something_is_missing(small: Config) -> None:
    result = insufficient("/release svc deps=payments-db:unhealthy,ledger:healthy", small)
    assert "dependency payments-db is unhealthy" in result.deployment_blockers
    assert not any("ledger" in b for b in result.deployment_blockers)


def test_a_latency_guardrail_on_the_line_is_enough(empty: Config) -> None:
    line = FULL_LINE.replace(" p95<300ms p99<0.8s", " p50<90ms")
    assert [g.metric for g in request(line, empty).guardrails.latency] == ["latency_p50"]
    result = insufficient(FULL_LINE.replace(" p95<300ms p99<0.8s", ""), empty)
    assert result.missing == ["Latency budget"]


# --- bad input ---------------------------------------------------------------------------

BAD_LINES = [
    ("foo=bar", "foo=bar", "strategy, env, regions"),
    ("blah", "blah", "e.g. risk=medium"),
    ("stages=5,140", "140 is not a percentage", "e.g. stages=1,5,25,50,100"),
    ("stages=5,1,100", "stages=5,1,100", "e.g. stages=1,5,25,50,100"),
    ("stages=5,50", "stages=5,50", "e.g. stages=1,5,25,50,100"),
    ("stages=0,100", "stages=0,100", "e.g. stages=1,5,25,50,100"),
    ("p95<-3ms", "p95<-3ms", "e.g. p95<300ms"),
    ("p95<3%", "p95<3%", "e.g. p95<300ms"),
    ("error_rate<140%", "error_rate<140%", "e.g. error_rate<1%"),
    ("availability>=100.5", "availability>=100.5", "e.g. availability>=99.9%"),
    ("p97<300ms", "p97<300ms", "e.g. p95<300ms"),
    ("error_rate=1%", "error_rate=1%", "e.g. error_rate<1%"),
    ("strategy=yolo", "strategy=yolo", "canary, blue_green, rolling, feature_flag, shadow"),
    ("risk=extreme", "risk=extreme", "low, medium, high, critical"),
    ("hash=md5:abc", "hash=md5:abc", "e.g. hash=sha256:ab12cd34"),
    ("hash=sha256:xyz", "hash=sha256:xyz", "e.g. hash=sha256:ab12cd34"),
    ("env=qa", "env=qa", "dev, staging, prod"),
    ("env=prod,prod", "env=prod,prod", "e.g. env=staging,prod"),
    ("risk=low risk=high", "risk=high", "given twice"),
    ("peak=25:00-26:00", "peak=25:00-26:00", "e.g. peak=09:00-12:00"),
    ("peak=9-12", "peak=9-12", "e.g. peak=09:00-12:00"),
    ('window="caturday 02:00-04:00"', "caturday", 'e.g. window="sat 02:00-04:00"'),
    ("deps=payments-db:broken", "deps=payments-db:broken", "healthy, degraded or unhealthy"),
    ("flags=beta:150", "flags=beta:150", "e.g. flags=new_checkout:25"),
    ("traffic=fast", "traffic=fast", "e.g. traffic=1200rps"),
    ("artifact=<image>", "artifact=<image>", "e.g. artifact=ghcr.io/acme/payments-api:2.4.1"),
    ("risk=", "risk=", "e.g. risk=medium"),
    ('changes="unclosed', "unbalanced quotes", 'e.g. changes="fix refund rounding"'),
]


@pytest.mark.parametrize(("extra", "token", "example"), BAD_LINES)
def test_bad_input_names_the_token_and_shows_an_example(
    small: Config, extra: str, token: str, example: str
) -> None:
    message = parse_error(f"/release svc 1.0.0 changes=x {extra}", small)
    assert token in message
    assert example in message


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ("/release Payments-API 1.0.0", "Payments-API"),
        ("/release svc banana", "banana"),
        ("/release svc 1.0.0 extra", "extra"),
    ],
)
def test_bad_service_or_version(small: Config, line: str, token: str) -> None:
    message = parse_error(line, small)
    assert message.startswith(f"{token}:")
    assert "e.g. " in message


def test_config_strings_that_do_not_parse_name_the_config_file() -> None:
    for bad in (
        ServiceConfig(guardrails=["p95<fast"]),
        ServiceConfig(flags=["bad flag"]),
        ServiceConfig(peak_hours=["9am-noon"]),
        ServiceConfig(artifact="not an image:{version}"),
    ):
        config = Config(services={"svc": bad})
        message = parse_error("/release svc 1.0.0 changes=x", config)
        assert "data/services.toml [services.svc]" in message
        assert "e.g. " in message


def test_a_model_validation_error_becomes_a_parse_error() -> None:
    config = Config(defaults=ServiceConfig(environments=["prod", "prod"]))
    message = parse_error(FULL_LINE.replace(" env=staging,prod", ""), config)
    assert "Target environments" in message
    assert "e.g. env=staging,prod" in message


# --- the pasted template -----------------------------------------------------------------


def test_the_brief_template_as_pasted(real: Config) -> None:
    req = request(TEMPLATE, real)
    pkg, dep = req.release_package, req.deployment_config
    assert req.service == "payments-api"
    assert (pkg.version, pkg.risk, pkg.changes) == (
        "2.4.1",
        "medium",
        "faster checkout; fix refund rounding",
    )
    assert pkg.artifact.image == "ghcr.io/acme/payments-api:2.4.1"
    assert (pkg.artifact.hash, pkg.artifact.build_id) == ("sha256:ab12cd34", "8812")
    assert dep.environments == ["staging", "prod"]
    assert dep.regions == ["us-east-1", "eu-west-1"]
    assert [(f.name, f.percentage) for f in dep.flags] == [("new_checkout", 0)]
    assert dep.stages == [1, 5, 25, 50, 100]
    assert req.guardrails.error_rate.describe() == "error_rate<1%"
    assert [g.describe() for g in req.guardrails.latency] == ["p95<300ms", "p99<800ms"]
    assert req.guardrails.availability.describe() == "availability>=99.9%"
    assert [g.describe() for g in req.guardrails.kpis] == ["kpi:checkout_conversion>=-2%"]
    ops = req.operational_context
    assert ops.traffic_rps == 1200
    assert ops.peak_hours[0].describe() == "09:00-12:00 UTC"
    assert ops.maintenance_windows[0].describe() == "sat 02:00-04:00 UTC"
    assert [d.health for d in ops.dependencies] == ["healthy", "degraded"]


def test_template_and_line_agree(empty: Config) -> None:
    line = (
        "/release payments-api 2.4.1 artifact=ghcr.io/acme/payments-api:2.4.1 hash=sha256:ab12cd34"
        ' build=8812 changes="faster checkout; fix refund rounding" risk=medium env=staging,prod'
        " regions=us-east-1,eu-west-1 strategy=canary flags=new_checkout:0 stages=1,5,25,50,100"
        " error_rate<1% p95<300ms p99<800ms availability>=99.9% kpi:checkout_conversion>=-2%"
        ' traffic=1200rps peak=09:00-12:00 window="sat 02:00-04:00"'
        " deps=payments-db:healthy,ledger:degraded"
    )
    assert request(TEMPLATE, empty) == request(line, empty)


def test_inputs_wrapper_service_line_and_release_prefix(empty: Config) -> None:
    body = TEMPLATE.removeprefix("payments-api\n")
    expected = request(TEMPLATE, empty)
    assert request(f"/release payments-api\n<inputs>\n{body}</inputs>\n", empty) == expected
    assert request(f"<inputs>\n- Service: payments-api\n{body}</inputs>", empty) == expected


def test_template_with_empty_values_is_missing_everything(empty: Config) -> None:
    result = insufficient(EMPTY_TEMPLATE, empty)
    assert result.missing == [
        "Version",
        "Build artifacts",
        "Changes included",
        "Risk level",
        "Target environments",
        "Deployment strategy",
        "Error rate threshold",
        "Latency budget",
        "Availability SLA",
    ]
    assert result.next_best_step == 'Fill in "- Version: 2.4.1" under <release_package>.'


def test_template_with_empty_values_uses_the_service_defaults(real: Config) -> None:
    result = insufficient(EMPTY_TEMPLATE, real)
    assert result.missing == ["Version", "Changes included", "Risk level"]  # artifact etc. set


def test_template_without_a_service(empty: Config) -> None:
    result = insufficient(TEMPLATE.removeprefix("payments-api\n"), empty)
    assert result.missing == ["Service name"]
    assert "above <release_package>" in result.next_best_step


def test_template_next_step_names_the_field_and_the_config(empty: Config) -> None:
    text = TEMPLATE.replace(
        "- Build artifacts: ghcr.io/acme/payments-api:2.4.1", "- Build artifacts:"
    )
    text = text.replace(" (sha256:ab12cd34…, build 8812)", "")
    result = insufficient(text, empty)
    assert result.missing == ["Build artifacts"]
    assert result.next_best_step.startswith('Fill in "- Build artifacts: ')
    assert "under [services.payments-api] in data/services.toml" in result.next_best_step


@pytest.mark.parametrize(
    ("field", "value", "described"),
    [
        ("Error rate threshold", "1%", ["error_rate<1%"]),
        ("Error rate threshold", "error_rate <= 0.5", ["error_rate<=0.5%"]),
        (
            "Error rate threshold",
            "< 1%, success_rate >= 99%",
            ["error_rate<1%", "success_rate>=99%"],
        ),
        ("Availability SLA", "99.9", ["availability>=99.9%"]),
        ("Availability SLA", "> 99.95%", ["availability>99.95%"]),
        ("Latency budget", "300ms", ["p95<300ms"]),
        ("Latency budget", "p99 1.2s", ["p99<1200ms"]),
        ("Business KPIs", "orders > 100", ["kpi:orders>100"]),
        ("Business KPIs", "none", []),
    ],
)
def test_lenient_template_guardrails(
    empty: Config, field: str, value: str, described: list[str]
) -> None:
    old = next(line for line in TEMPLATE.splitlines() if line.startswith(f"- {field}:"))
    req = request(TEMPLATE.replace(old, f"- {field}: {value}"), empty)
    assert set(described) <= {g.describe() for g in req.guardrails.all()}
    if field == "Business KPIs":
        assert [g.describe() for g in req.guardrails.kpis] == described


def test_template_change_ticket_and_bulleted_changes(empty: Config) -> None:
    text = TEMPLATE.replace(
        "- Changes included: faster checkout; fix refund rounding",
        "- Changes included: CHG-1234\n  - faster checkout\n  - fix refund rounding",
    )
    pkg = request(text, empty).release_package
    assert pkg.change_ticket == "CHG-1234"
    assert pkg.changes == "CHG-1234; faster checkout; fix refund rounding"
    text = TEMPLATE.replace("build 8812)", "build 8812, chg-77)")
    pkg = request(text, empty).release_package
    assert (pkg.change_ticket, pkg.artifact.build_id) == ("CHG-77", "8812")


MANGLED = [
    (
        ("- Version: 2.4.1", "- Verison: 2.4.1"),
        'line 3: "- Verison: 2.4.1" is not a field of <release_package>; its fields are '
        "Version, Build artifacts, Changes included, Risk level",
    ),
    (("- Version: 2.4.1", "- Current traffic: 5"), "line 3: "),
    (("- Version: 2.4.1", "Version 2.4.1"), 'line 3: "Version 2.4.1" has no ":"'),
    (("</release_package>\n", ""), "line 7: <deployment_config>"),
    (("</release_package>", "</guardrails>"), "line 7: </guardrails>"),
    (("</operational_context>\n", ""), "<operational_context> opened on line 20 is never closed"),
    (("<guardrails>", "<guardrail>"), "line 14: <guardrail> is not a section"),
    (
        ("- Risk level: medium", "- Risk level: medium\n- Version: 3"),
        "line 7: Version is given twice",
    ),
    (("- Risk level: medium", "- Risk level: extreme"), 'line 6: "- Risk level: extreme"'),
    (("1%, 5%, 25%, 50%, 100%", "5%, 140%"), "line 12: "),
    (("payments-api\n", "payments api\n"), "line 1: "),
    (("</operational_context>", "</operational_context>\nstray text"), "line 26: "),
    (("</operational_context>", "</operational_context>\n</inputs>"), "line 26: </inputs>"),
    (("<guardrails>", "<guardrails>\n<guardrails>"), "line 15: <guardrails> is given twice"),
    (("</guardrails>", "</guardrails>\n<guardrails>\n</guardrails>"), "line 20: <guardrails> is"),
    (("- Availability SLA: 99.9%", "- Availability SLA: p95<3ms"), "line 17: "),
    (("- Version: 2.4.1", "- Service: other"), "line 3: "),
]


@pytest.mark.parametrize(("change", "expected"), MANGLED)
def test_mangled_templates(empty: Config, change: tuple[str, str], expected: str) -> None:
    text = TEMPLATE.replace(*change)
    assert text != TEMPLATE
    message = parse_error(text, empty)
    assert expected in message
    assert "e.g." in message or "fields are" in message or "</" in message or "<" in message


def test_mangled_template_messages_say_how_to_fix(empty: Config) -> None:
    moved = parse_error(TEMPLATE.replace("- Version: 2.4.1", "- Current traffic: 5"), empty)
    assert "is a field of <operational_context>, not <release_package>" in moved
    bad_value = parse_error(TEMPLATE.replace("1%, 5%, 25%, 50%, 100%", "5%, 140%"), empty)
    assert "140 is not a percentage" in bad_value
    assert "e.g. - Rollout percentages: 1%, 5%, 25%, 50%, 100%" in bad_value
    unclosed = parse_error(TEMPLATE.replace("</release_package>\n", ""), empty)
    assert "</release_package>" in unclosed


def test_template_sections_use_the_model_field_names() -> None:
    from bot.parsing import _SECTIONS  # the one table the template is read with

    names = [name for fields in _SECTIONS.values() for name in fields]
    assert names == list(TEMPLATE_FIELDS.values())


# --- single parsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "metric", "comparator", "value", "unit", "relative"),
    [
        ("error_rate<1%", "error_rate", "<", 1, "percent", False),
        ("success_rate>=99%", "success_rate", ">=", 99, "percent", False),
        ("p50<100ms", "latency_p50", "<", 100, "ms", False),
        ("p95 <= 300ms", "latency_p95", "<=", 300, "ms", False),
        ("p99<0.8s", "latency_p99", "<", 800, "ms", False),
        ("p99<2s", "latency_p99", "<", 2000, "ms", False),
        ("p99<2.01s", "latency_p99", "<", 2010, "ms", False),  # scaled exactly, not 2009.999...
        ("availability>=99.9%", "availability", ">=", 99.9, "percent", False),
        ("kpi:checkout_conversion>=-2%", "kpi", ">=", -2, "percent", True),
        ("kpi:orders_per_min>100", "kpi", ">", 100, "value", False),
    ],
)
def test_guardrail_table(
    token: str, metric: str, comparator: str, value: float, unit: str, relative: bool
) -> None:
    g = parse_guardrail(token)
    assert (g.metric, g.comparator, g.unit, g.relative) == (metric, comparator, unit, relative)
    assert g.value == value
    assert g.kpi == (token.split(":")[1].split(">")[0] if metric == "kpi" else None)


@pytest.mark.parametrize(
    "token", ["p95<-3ms", "error_rate<140%", "latency<3ms", "p95", "<1%", "p95<1e306s", "p95=3ms"]
)
def test_bad_guardrails(token: str) -> None:
    with pytest.raises(ParseError, match=r"e\.g\. "):
        parse_guardrail(token)


@pytest.mark.parametrize(
    ("text", "start", "end", "days"),
    [
        ("09:00-12:00", time(9), time(12), None),
        ("sat 02:00-04:00", time(2), time(4), ["sat"]),
        ("sat,sun 22:00-02:00", time(22), time(2), ["sat", "sun"]),
        ("Sat 02:00-04:00 UTC", time(2), time(4), ["sat"]),
        ("fri-mon 9:30 - 10:00", time(9, 30), time(10), ["fri", "sat", "sun", "mon"]),
    ],
)
def test_time_ranges(text: str, start: time, end: time, days: list[str] | None) -> None:
    r = parse_time_range(text)
    assert (r.start, r.end, r.days) == (start, end, days)


@pytest.mark.parametrize("text", ["25:00-26:00", "10:00-10:00", "sat 02:00", "xyz 01:00-02:00"])
def test_bad_time_ranges(text: str) -> None:
    with pytest.raises(ParseError, match=r"e\.g\. "):
        parse_time_range(text)


def test_flags_and_dependencies() -> None:
    assert (parse_flag("new_checkout").name, parse_flag("new_checkout").percentage) == (
        "new_checkout",
        100,
    )
    assert parse_flag("new_checkout:25").percentage == 25
    assert parse_flag("new_checkout:0%").percentage == 0
    assert parse_dependency("payments-db:healthy").health == "healthy"
    assert parse_dependency("ledger degraded").name == "ledger"
    for bad in ("x:101", "bad name", "x:lots"):
        with pytest.raises(ParseError, match="flags="):
            parse_flag(bad)
    with pytest.raises(ParseError, match="healthy, degraded or unhealthy"):
        parse_dependency("payments-db:meh")


# --- properties --------------------------------------------------------------------------

LINE_WITHOUT_STAGES = (
    "/release svc 1.0.0 artifact=r/svc:1 changes=x risk=low env=prod regions=us-east-1 "
    "strategy=canary error_rate<1% p95<300ms availability>=99%"
)


@given(
    st.lists(st.floats(min_value=0.01, max_value=99.99), max_size=6, unique=True).map(
        lambda xs: [*sorted(xs), 100.0]
    ),
    st.booleans(),
)
def test_increasing_stages_ending_at_100_round_trip(stages: list[float], percent: bool) -> None:
    text = ",".join(f"{s!r}{'%' if percent else ''}" for s in stages)
    req = parse_release(f"{LINE_WITHOUT_STAGES} stages={text}", Config())
    assert isinstance(req, ReleaseRequest)
    assert req.deployment_config.stages == stages


@given(st.lists(st.integers(1, 100), min_size=1, max_size=6))
def test_stage_lists_that_break_the_rules_are_parse_errors(stages: list[int]) -> None:
    valid = stages == sorted(set(stages)) and stages[-1] == 100
    text = f"{LINE_WITHOUT_STAGES} stages={','.join(map(str, stages))}"
    if valid:
        assert isinstance(parse_release(text, Config()), ReleaseRequest)
    else:
        with pytest.raises(ParseError, match=r"stages=.*e\.g\. stages=1,5,25,50,100"):
            parse_release(text, Config())


COMPARATORS = st.sampled_from(["<", "<=", ">", ">="])
# describe() prints 6 significant digits (f"{v:g}"), so generate values it prints exactly
SIX_DIGITS = st.integers(-999_999, 999_999).flatmap(
    lambda n: st.sampled_from([n, n / 10, n / 100, n / 1000]).map(float)
)
KPI_NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
GUARDRAILS = st.one_of(
    st.builds(
        lambda metric, c, v: Guardrail(metric=metric, comparator=c, value=v, unit="percent"),
        st.sampled_from(["error_rate", "success_rate", "availability"]),
        COMPARATORS,
        SIX_DIGITS.filter(lambda v: 0 <= v <= 100),
    ),
    st.builds(
        lambda metric, c, v: Guardrail(metric=metric, comparator=c, value=v, unit="ms"),
        st.sampled_from(["latency_p50", "latency_p95", "latency_p99"]),
        COMPARATORS,
        SIX_DIGITS.filter(lambda v: v > 0),
    ),
    st.builds(
        lambda name, c, v, rel: Guardrail(
            metric="kpi",
            kpi=name,
            comparator=c,
            value=v,
            unit="percent" if rel else "value",
            relative=rel,
        ),
        KPI_NAMES,
        COMPARATORS,
        SIX_DIGITS,
        st.booleans(),
    ),
)


@given(GUARDRAILS)
def test_guardrail_describe_round_trips(guardrail: Guardrail) -> None:
    assert parse_guardrail(guardrail.describe()) == guardrail


def outcome_is_a_model_or_parse_error(text: str, config: Config) -> None:
    try:
        result = parse_release(text, config)
    except ParseError as exc:
        assert str(exc)
    else:
        assert isinstance(result, ReleaseRequest | InsufficientContext)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_random_text_never_raises_anything_else(text: str) -> None:
    outcome_is_a_model_or_parse_error(text, load_config())


TEMPLATE_PIECES = st.sampled_from(
    [*TEMPLATE.splitlines(), "<inputs>", "</inputs>", "- Service: x", "  - more", "<x>", ":", ""]
)


@settings(max_examples=300)
@given(st.lists(TEMPLATE_PIECES, max_size=30), st.randoms(use_true_random=False))
def test_shuffled_template_lines_never_raise_anything_else(pieces: list[str], rnd: object) -> None:
    outcome_is_a_model_or_parse_error("\n".join(pieces), Config())


LINE_PIECES = st.sampled_from(
    [*FULL_LINE.split()[3:], "svc", "1.0.0", "=", "x=", "p95<", "kpi:", "stages=", '"', "'", "%"]
)


@settings(max_examples=300)
@given(st.lists(LINE_PIECES, max_size=12))
def test_line_token_soup_never_raises_anything_else(pieces: list[str]) -> None:
    outcome_is_a_model_or_parse_error("/release svc 1.0.0 " + " ".join(pieces), Config())
