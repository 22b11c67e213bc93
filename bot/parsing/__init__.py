"""Parse a ``/release`` line, or the brief's ``<inputs>`` template pasted as is, into a request.

Pure functions, no I/O. Bad input raises ``ParseError`` (the message names the offending token
and shows a correct example); input that is merely incomplete, after the per-service defaults
of ``data/services.toml`` are applied, yields ``InsufficientContext`` instead.

The grammar of the line and the template is here; the forms of single values (and Slack's
text cleaned up) are in ``bot.parsing.values``.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from bot.domain.config import DEFAULT_SOURCE, Config
from bot.domain.contract import InsufficientContext
from bot.domain.guardrails import (
    GUARDRAIL_HINTS,
    GUARDRAIL_START,
    LATENCY_NAMES,
    RATES,
    BadValue,
    ParseError,
    guardrail_metric,
    parse_guardrail,
    read_guardrail,
)
from bot.domain.request import (
    ENV_ORDER,
    RISKS,
    STRATEGIES,
    TEMPLATE_FIELDS,
    Artifact,
    DependencyStatus,
    DeploymentConfig,
    EnvName,
    FlagSpec,
    Guardrail,
    Guardrails,
    OperationalContext,
    ReleasePackage,
    ReleaseRequest,
    Risk,
    Strategy,
    TimeRange,
)
from bot.parsing.values import (
    _NONE,
    _SERVICE_RE,
    ENV_ALIASES,
    SMART_QUOTES,
    _choice,
    _dependency,
    _environments,
    _flag,
    _guardrail_token,
    _guardrail_words,
    _hash,
    _items,
    _match,
    _metric_name,
    _plain,
    _regions,
    _stages,
    _tidy,
    _time_ranges,
    _traffic,
    _units,
)

_LENIENT_RE = re.compile(  # a template guardrail: name and comparator may be left out
    r"(?:(?P<name>[A-Za-z_][A-Za-z0-9_:.\-]*)\s*)?(?P<cmp><=|>=|<|>)?\s*(?P<rest>[+\-.0-9].*)"
)
VERSION_RE = re.compile(r"v?[0-9]+(?:\.[0-9]+){1,3}(?:-[0-9A-Za-z.\-]+)?(?:\+[0-9A-Za-z.\-]+)?")
_IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/:@]*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]*")
_TICKET_RE = re.compile(r"\bCHG-?[0-9]+\b", re.IGNORECASE)
_TAG_RE = re.compile(r"<\s*(/?)\s*([A-Za-z_]+)\s*>")
_FIELD_RE = re.compile(r"(?:[-*•]\s*)?([^:]+?)\s*:\s*(.*)")
_EMPHASIS_RE = re.compile(r"(?P<bullet>[-•]\s*|\*\s+)?(?P<mark>\*\*|\*|__|_)(?P<name>[A-Za-z][^:*_]*?)"
                          r"(?::(?P=mark)|(?P=mark):)\s*")  # fmt: skip


@dataclass(frozen=True)
class _Spec:
    name: str  # template field name, as `missing` reports it
    section: str
    hint: str  # how to write it right
    line: str  # example on a /release line
    template: str  # example value in the template
    ask: str = ""  # token to ask for when missing
    config: str = ""  # how to give a default in data/services.toml


_TF, _GH = TEMPLATE_FIELDS, GUARDRAIL_HINTS
_RP, _DC, _GR, _OC = "release_package", "deployment_config", "guardrails", "operational_context"
_SPECS: dict[str, _Spec] = {
    "service": _Spec("Service name", "", "name the service in lowercase letters, digits, '.', "
                     "'_' or '-'", "/release payments-api 2.4.1", "payments-api"),
    "version": _Spec(_TF["version"], _RP, "write a version like 2.4.1, v2.4.1 or 2.4.1-rc.1",
                     "/release payments-api 2.4.1", "2.4.1"),
    "artifact": _Spec(_TF["artifact"], _RP, "give an image reference without spaces",
                      "artifact=ghcr.io/acme/payments-api:2.4.1",
                      "ghcr.io/acme/payments-api:2.4.1 (sha256:ab12cd34, build 8812)",
                      "artifact=<image ref>", 'set artifact = "registry/{service}:{{version}}"'),
    "hash": _Spec(_TF["artifact"], _RP, "give the digest as sha256: and 6 to 64 hex digits",
                  "hash=sha256:ab12cd34", "ghcr.io/acme/payments-api:2.4.1 (sha256:ab12cd34)"),
    "build": _Spec(_TF["artifact"], _RP, "give the build id as letters, digits, '.', '_' or '-'",
                   "build=8812", "ghcr.io/acme/payments-api:2.4.1 (build 8812)"),
    "ticket": _Spec(_TF["artifact"], _RP, "give the change ticket id without spaces",
                    "ticket=CHG-1234", "ghcr.io/acme/payments-api:2.4.1 (CHG-1234)"),
    "changes": _Spec(_TF["changes"], _RP, "describe the changes, quoted when they have spaces",
                     'changes="fix refund rounding"', "faster checkout; fix refund rounding",
                     'changes="<what changed>"'),
    "risk": _Spec(_TF["risk"], _RP, f"use one of {', '.join(RISKS)}", "risk=medium", "medium",
                  "risk=<low|medium|high|critical>", 'set risk = "<low|medium|high|critical>"'),
    "env": _Spec(_TF["environments"], _DC, f"list environments from {', '.join(ENV_ORDER)}",
                 "env=staging,prod", "staging, prod (us-east-1, eu-west-1)",
                 "env=<dev|staging|prod>[,...]", 'set environments = ["staging", "prod"]'),
    "regions": _Spec(_TF["environments"], _DC, "list regions like us-east-1, comma-separated",
                     "regions=us-east-1,eu-west-1", "staging, prod (us-east-1, eu-west-1)",
                     "regions=<region>[,...]", 'set regions = ["us-east-1"]'),
    "strategy": _Spec(_TF["strategy"], _DC, f"use one of {', '.join(STRATEGIES)}",
                      "strategy=canary", "canary", f"strategy=<{'|'.join(STRATEGIES)}>",
                      'set strategy = "canary"'),
    "flags": _Spec(_TF["flags"], _DC, "write flags as name or name:percent, comma-separated",
                   "flags=new_checkout:25", "new_checkout:0%", "flags=<flag name>[:<percent>]",
                   'set flags = ["<flag name>"]'),
    "stages": _Spec(_TF["stages"], _DC, "write rollout percentages between 1 and 100, "
                    "increasing and ending at 100", "stages=1,5,25,50,100",
                    "1%, 5%, 25%, 50%, 100%"),
    "error_rate": _Spec(_TF["error_rate"], _GR, *_GH["error_rate"], "< 1%", "error_rate<1%",
                        'add "error_rate<1%" to guardrails'),
    "latency": _Spec(_TF["latency"], _GR, *_GH["latency"], "p95 < 300ms, p99 < 800ms",
                     "p95<300ms", 'add "p95<300ms" to guardrails'),
    "availability": _Spec(_TF["availability"], _GR, *_GH["availability"], "99.9%",
                          "availability>=99.9%", 'add "availability>=99.9%" to guardrails'),
    "kpis": _Spec(_TF["kpis"], _GR, *_GH["kpis"], "checkout_conversion >= -2%"),
    "success_rate": _Spec(_TF["error_rate"], _GR, *_GH["success_rate"],
                          "< 1%, success_rate >= 99%"),
    "guardrail": _Spec("guardrail", _GR, *_GH["guardrail"], "< 1%"),
    "traffic": _Spec(_TF["traffic"], _OC, "write requests per second", "traffic=1200rps",
                     "1200 rps"),
    "peak": _Spec(_TF["peak_hours"], _OC, "write [days] HH:MM-HH:MM in UTC", "peak=09:00-12:00",
                  "09:00-12:00 UTC"),
    "window": _Spec(_TF["maintenance_windows"], _OC, "write [days] HH:MM-HH:MM in UTC",
                    'window="sat 02:00-04:00"', "sat 02:00-04:00"),
    "deps": _Spec(_TF["dependencies"], _OC, "write name:status, status healthy, degraded or "
                  "unhealthy", "deps=payments-db:healthy,ledger:degraded",
                  "payments-db healthy, ledger degraded"),
}  # fmt: skip
LINE_KEYS = ("strategy", "env", "regions", "stages", "risk", "flags", "artifact", "hash",
              "build", "ticket", "changes", "traffic", "peak", "window", "deps")  # fmt: skip
# Template sections: each field name -> the key its value is parsed under.
_SECTIONS: dict[str, dict[str, str]] = {
    _RP: {"Version": "version", "Build artifacts": "artifact", "Changes included": "changes",
          "Risk level": "risk"},
    _DC: {"Target environments": "env", "Deployment strategy": "strategy",
          "Feature flags": "flags", "Rollout percentages": "stages"},
    _GR: {"Error rate threshold": "error_rate", "Latency budget": "latency",
          "Availability SLA": "availability", "Business KPIs": "kpis"},
    _OC: {"Current traffic": "traffic", "Peak hours": "peak", "Maintenance windows": "window",
          "Dependencies status": "deps"},
}  # fmt: skip
_BLOCKERS = {
    "service": "no service name: there is no service to deploy",
    "version": "no version: the release cannot be identified or rolled back to",
    "artifact": "no build artifact: there is nothing to deploy",
    "changes": "no change description: approvers and the changelog have nothing to review",
    "risk": "no risk level: the rollout pace and approvals cannot be chosen",
    "env": "no target environments or regions: there is nowhere to deploy",
    "strategy": "no deployment strategy: the rollout cannot be planned",
    "flags": "no feature flag: the feature_flag strategy has nothing to turn on",
    "error_rate": "no error-rate threshold: the canary cannot be judged",
    "latency": "no latency budget: a latency regression cannot trigger a rollback",
    "availability": "no availability SLA: availability cannot be checked against a target",
}
# Model field names -> spec keys, to word a pydantic error like our own.
_MODEL_KEYS = {"image": "artifact", "build_id": "build", "change_ticket": "ticket",
               "environments": "env", "traffic_rps": "traffic", "peak_hours": "peak",
               "maintenance_windows": "window", "dependencies": "deps"}  # fmt: skip

_R = TypeVar("_R")


@dataclass
class _Given:
    """What the text says; None means the text does not say it."""

    form: str = "line"  # or "template"
    service: str | None = None
    version: str | None = None
    image: str | None = None
    hash: str | None = None
    build: str | None = None
    ticket: str | None = None
    changes: str | None = None
    risk: Risk | None = None
    environments: list[EnvName] | None = None
    regions: list[str] | None = None
    strategy: Strategy | None = None
    flags: list[FlagSpec] | None = None
    stages: list[float] | None = None
    guardrails: dict[str, Guardrail] = field(default_factory=dict)
    traffic: float | None = None
    peak_hours: list[TimeRange] | None = None
    windows: list[TimeRange] | None = None
    dependencies: list[DependencyStatus] | None = None


# --- fields ------------------------------------------------------------------------------


def _apply(given: _Given, key: str, value: str) -> None:
    """Set what one /release key, or one template field, says."""
    value = value.strip() if key == "changes" else _tidy(value)  # changes are free text
    if not value:
        raise BadValue("has no value", key)
    template = given.form == "template"
    match key:
        case "version":
            given.version = _match(VERSION_RE, value, key, "a version")
        case "artifact" if template:
            _artifacts(given, value)
        case "artifact":
            given.image = _match(_IMAGE_RE, value, key, "an image reference")
        case "hash":
            given.hash = _hash(value)
        case "build":
            given.build = _match(_ID_RE, value.lstrip("#"), key, "a build id")
        case "ticket":
            given.ticket = _match(_ID_RE, value, key, "a change ticket")
        case "changes":
            ticket = _TICKET_RE.search(value)
            given.changes, given.ticket = value, given.ticket or (ticket and ticket[0].upper())
        case "risk":
            given.risk = _choice(value.lower(), RISKS, key, "risk level")
        case "env" if template:  # "staging, prod (us-east-1, eu-west-1)"
            _targets(given, value)
        case "env":
            given.environments = _environments(value)
        case "regions":
            given.regions = _regions(value)
        case "strategy":  # "canary", "blue-green", "canary 1-5-25-100%", "canary (5%, 100%)"
            m = re.fullmatch(r"([^0-9(\[]*?)[\s:,]*(?:\((.*)\)|(\[?[0-9].*))?", value)
            name, stages = (m[1], m[2] or m[3]) if m else (value, None)
            normalised = re.sub(r"[\s\-/]+", "_", name.lower())  # "blue-green" -> blue_green
            given.strategy = _choice(normalised, STRATEGIES, key, "strategy")
            if stages:
                _apply(given, "stages", stages)
        case "flags":
            none = value.lower() in _NONE
            given.flags = [] if none else [_flag(item) for item in _items(value, ",;")]
        case "stages":
            stages = _stages(value)
            if given.stages is not None and stages != given.stages:  # also after the strategy
                earlier = ", ".join(f"{stage:g}%" for stage in given.stages)
                raise BadValue(
                    f"they differ from {earlier} given with the strategy; give them once", key
                )
            given.stages = stages
        case "traffic":
            given.traffic = _traffic(value)
        case "peak":
            given.peak_hours = _time_ranges(value, key)
        case "window":
            given.windows = _time_ranges(value, key)
        case "deps":
            none = value.lower() in _NONE
            given.dependencies = [] if none else [_dependency(d) for d in _items(value, ",;")]
        case _:
            for guardrail in _template_guardrails(value, key):
                _add_guardrail(given, guardrail)


def _targets(given: _Given, value: str) -> None:
    """``staging, prod (us-east-1, eu-west-1)``; regions may follow each environment when
    they are the same, since a release has one list of regions."""
    groups = [_regions(group) for group in re.findall(r"\(([^()]*)\)", value)]
    envs = re.sub(r"\([^()]*\)", " ", value)
    if "(" in envs or ")" in envs:
        raise BadValue(f"{value} has unbalanced parentheses", "env")
    if any(group != groups[0] for group in groups):
        raise BadValue("each environment names other regions, but a release has one list", "env")
    given.environments = _environments(envs) if envs.strip(" ,;[]") else None
    given.regions = groups[0] if groups else None


def _artifacts(given: _Given, value: str) -> None:
    """'image (sha256:..., build N, CHG-N)': the image first, the rest found by shape."""
    first = value.split()[0].rstrip(",;")
    if not re.match(r"(?:sha256:|build\b|\(|chg-?[0-9])", first, re.IGNORECASE):
        given.image = _match(_IMAGE_RE, first, "artifact", "an image reference")
    if digest := re.search(r"sha256:[^\s,;)]*", value):
        given.hash = _hash(digest[0])
    if build := re.search(r"\bbuild\b[\s:=#]*([^\s,;)]+)", value, re.IGNORECASE):
        given.build = _match(_ID_RE, build[1], "build", "a build id")
    if ticket := _TICKET_RE.search(value):
        given.ticket = ticket[0].upper()


def _template_guardrails(value: str, key: str) -> list[Guardrail]:
    """A template guardrail field; a left-out name or comparator comes from the field."""
    if value.lower() in _NONE:
        return []
    default, comparator, allowed = {
        "error_rate": ("error_rate", "<", ("error_rate", "success_rate")),
        "latency": ("p95", "<", tuple(LATENCY_NAMES.values())),
        "availability": ("availability", ">=", ("availability",)),
        "kpis": ("", ">=", ("kpi",)),
    }[key]
    guardrails = []
    # "p95 < 300ms (p99 < 800ms)", "p95 300ms / p99 800ms": each part is a threshold
    for item in _items(re.sub(r"\s/\s", ",", value), ",;()"):
        m = _LENIENT_RE.fullmatch(_guardrail_words(item))
        if m is None or not (m["name"] or default):
            raise BadValue(f"{item} is not a threshold", key)
        name = _metric_name(m["name"].removesuffix(":")) if m["name"] else default
        name = f"kpi:{name}" if key == "kpis" and not name.startswith("kpi:") else name
        try:
            guardrail = read_guardrail(f"{name}{m['cmp'] or comparator}{_units(m['rest'])}")
        except BadValue as bad:  # "is not a guardrail" names no item: name it
            if not bad.problem.startswith("is "):
                raise
            raise BadValue(f"{item} {bad.problem}", bad.key) from None
        if guardrail.metric not in allowed:
            home = _SPECS[guardrail_metric(guardrail.name)[1]].name
            raise BadValue(
                f"{item} does not belong under {_SPECS[key].name}; put it under {home}", key
            )
        guardrails.append(guardrail)
    return guardrails


def _add_guardrail(given: _Given, guardrail: Guardrail) -> None:
    if guardrail.name in given.guardrails:
        raise BadValue(f"{guardrail.name} is given twice", guardrail_metric(guardrail.name)[1])
    given.guardrails[guardrail.name] = guardrail


# --- the /release line -------------------------------------------------------------------


def _line_error(token: str, bad: BadValue) -> ParseError:
    spec = _SPECS[bad.key]
    return ParseError(f"{token}: {bad.problem}; {spec.hint}, e.g. {spec.line}")


def line_tokens(text: str, lenient: bool = False) -> list[str]:
    """A /release line's tokens: Slack's retyped quotes straightened, quoted values kept
    whole, a leading ``/release`` dropped. Unbalanced quotes are a ParseError, or (lenient)
    the text split at its spaces."""
    plain = _plain(text)
    try:
        tokens = shlex.split(plain)
    except ValueError as exc:
        if not lenient:
            raise ParseError(
                f"{text.strip()}: {exc} (unbalanced quotes); quote values that contain spaces, "
                'e.g. changes="fix refund rounding"'
            ) from None
        tokens = plain.split()
    return tokens[1:] if tokens[:1] == ["/release"] else tokens


def quote_value(value: str) -> str:
    """A value as one line token (what ``line_tokens`` reads back): bare when it can be, else
    double-quoted and escaped."""
    if re.fullmatch(r"[^\s'\"\\]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_guardrail_token(token: str) -> bool:
    """Whether a line token is a guardrail (a name, then a comparator), not key=value."""
    return GUARDRAIL_START.match(token) is not None


def _parse_line(text: str) -> _Given:
    given, words, seen = _Given(), [], set[str]()
    for token in line_tokens(text):
        try:
            if is_guardrail_token(token):
                _add_guardrail(given, read_guardrail(_guardrail_token(token)))
            elif "=" in token:
                key, _, value = token.partition("=")
                _check_key(token, key, seen)
                _apply(given, key, value)
            else:
                words.append(token)
        except BadValue as bad:
            raise _line_error(token, bad) from None
    _service_and_version(given, words)
    return given


def _check_key(token: str, key: str, seen: set[str]) -> None:
    if key in RATES or key in LATENCY_NAMES or key.startswith("kpi:"):
        raise ParseError(f"{token}: a guardrail takes a comparator, not '='; e.g. error_rate<1%")
    if key not in LINE_KEYS:
        raise ParseError(
            f"{token}: {key or 'nothing'} is not a known key; the keys are "
            f"{', '.join(LINE_KEYS)}, e.g. risk=medium"
        )
    if key in seen:
        raise ParseError(f"{token}: {key} is given twice; give it once, e.g. {_SPECS[key].line}")
    seen.add(key)


def _service_and_version(given: _Given, words: list[str]) -> None:
    """`<service> <version>`; a lone version-like word is a version without a service."""
    if len(words) > 2:
        raise ParseError(
            f"{words[2]}: is neither key=value nor a guardrail; write key=value with a key "
            f"from {', '.join(LINE_KEYS)}, or a guardrail, e.g. risk=medium or p95<300ms"
        )
    lone_version = len(words) == 1 and VERSION_RE.fullmatch(words[0])
    service, version = (["", *words] if lone_version else [*words, "", ""])[:2]
    for word, key, pattern in (
        (service, "service", _SERVICE_RE),
        (version, "version", VERSION_RE),
    ):
        if word and not pattern.fullmatch(word):
            what = "service name" if key == "service" else key
            raise _line_error(word, BadValue(f"{word} is not a {what}", key))
    given.service, given.version = service or None, version or None


# --- the pasted template -----------------------------------------------------------------


@dataclass
class _Row:
    number: int
    line: str
    key: str  # "service", or the key the field is parsed under
    name: str  # the field name, for messages
    value: str
    indent: int


def _is_template(text: str) -> bool:
    return any(
        _TAG_RE.fullmatch(line.strip()) or re.match(r"\s*[-*•]\s*[A-Za-z][^:]*:", line)
        for line in text.splitlines()
    )


def _parse_template(text: str) -> _Given:
    given = _Given(form="template")
    for row in _template_rows(text):
        try:
            if not row.value.strip():  # an empty value means not given
                continue
            if row.key == "service":
                _service(given, row.value)
            else:
                _apply(given, row.key, row.value)
        except BadValue as bad:
            raise ParseError(
                f'line {row.number}: "{row.line}": {bad.problem}; {_SPECS[bad.key].hint}, '
                f"e.g. - {row.name}: {_SPECS[row.key].template}"
            ) from None
    return given


def _service(given: _Given, value: str) -> None:
    words = value.split()
    words = words[1:] if words[:1] == ["/release"] else words
    if given.service is not None:
        raise BadValue("the service is given twice", "service")
    given.service = _match(_SERVICE_RE, " ".join(words), "service", "a service name")


def _template_rows(text: str) -> list[_Row]:
    """Check the structure line by line; return the fields (and service lines) in order."""
    rows: list[_Row] = []
    opened: dict[str, int] = {}  # open tags -> their line; <inputs> may wrap a section
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line, indent = raw.strip(), len(raw) - len(raw.lstrip())
        if bold := _EMPHASIS_RE.match(line):  # Slack's *bold* field name
            line = f"{bold['bullet'] or ''}{bold['name']}: {line[bold.end() :]}"
        section = next((s for s in opened if s != "inputs"), None)
        if tag := _TAG_RE.fullmatch(line):
            _tag(opened, seen, number, tag[1] == "/", tag[2].lower())
            continue
        if line.startswith("<"):
            raise ParseError(f'line {number}: "{line}" is not a tag, e.g. <release_package>')
        m, last = _FIELD_RE.fullmatch(line), rows[-1] if rows else None
        if not line:
            continue
        if section and last and last.key != "service" and indent > last.indent:
            # an indented line continues the field above: a bulleted list of changes, say
            last.value = "; ".join(v for v in (last.value.strip(), line.lstrip("-*• ")) if v)
        elif m and m[1].lower() == "service":
            rows.append(_Row(number, line, "service", "Service", m[2], indent))
        elif section:
            rows.append(_field(section, number, line, m, indent, rows))
        elif seen - {"inputs"} or m:
            raise ParseError(
                f'line {number}: "{line}" is outside any section; put "- Name: value" lines '
                f"inside {', '.join(f'<{s}>' for s in _SECTIONS)}"
            )
        else:  # text before the first section names the service
            rows.append(_Row(number, line, "service", "Service", line, indent))
    if opened:
        name, number = next(reversed(opened.items()))
        raise ParseError(f"<{name}> opened on line {number} is never closed; add </{name}>")
    return rows


def _field(
    section: str, number: int, line: str, m: re.Match[str] | None, indent: int, rows: list[_Row]
) -> _Row:
    fields, at = _SECTIONS[section], f"line {number}: "
    if m is None:
        first = next(iter(fields))
        raise ParseError(
            f'{at}"{line}" has no ":"; write each field as "- Name: value", '
            f"e.g. - {first}: {_SPECS[fields[first]].template}"
        )
    wanted = " ".join(m[1].split()).lower()
    name = next((f for f in fields if f.lower() == wanted), None)
    if name is None:
        raise ParseError(at + _unknown_field(line, wanted, section))
    if twice := next((r for r in rows if r.key == fields[name]), None):
        raise ParseError(
            f"{at}{name} is given twice (first on line {twice.number}); keep one, "
            f"e.g. - {name}: {_SPECS[fields[name]].template}"
        )
    return _Row(number, line, fields[name], name, m[2], indent)


def _unknown_field(line: str, wanted: str, section: str) -> str:
    for other, fields in _SECTIONS.items():
        if wanted in (f.lower() for f in fields):
            return f'"{line}" is a field of <{other}>, not <{section}>; move it there'
    names = list(_SECTIONS[section])
    close = difflib.get_close_matches(wanted, [n.lower() for n in names], n=1)
    guess = next((f"; did you mean {n}?" for n in names if close and n.lower() == close[0]), "")
    return f'"{line}" is not a field of <{section}>; its fields are {", ".join(names)}{guess}'


def _tag(opened: dict[str, int], seen: set[str], number: int, closing: bool, name: str) -> None:
    at, tag = f"line {number}: ", f"<{'/' if closing else ''}{name}>"
    if name not in _SECTIONS and name != "inputs":
        close = difflib.get_close_matches(name, [*_SECTIONS, "inputs"], n=1)
        guess = f"; did you mean <{close[0]}>?" if close else ""
        sections = ", ".join(f"<{s}>" for s in _SECTIONS)
        raise ParseError(f"{at}{tag} is not a section; the sections are {sections}{guess}")
    inner = next(reversed(opened), None)  # the innermost open tag
    if closing and inner != name:
        why = f"<{inner}> from line {opened[inner]} is still open" if inner else "nothing is open"
        fix = f"close <{inner}> first" if inner else f"open it with <{name}> above its fields"
        raise ParseError(f"{at}{tag} does not match: {why}; {fix}")
    if closing:
        del opened[name]
    elif name in seen:
        raise ParseError(f"{at}{tag} is given twice; put all its fields in one {tag}")
    elif inner and (inner != "inputs" or name == "inputs"):
        raise ParseError(
            f"{at}{tag} opens inside <{inner}> from line {opened[inner]}; "
            f"close that first with </{inner}>"
        )
    else:
        opened[name] = number
        seen.add(name)


# --- defaults, gaps, the request ---------------------------------------------------------


def _from_config(
    table: str, setting: str, raws: list[str], key: str = "", source: str = DEFAULT_SOURCE
) -> list[Any]:
    """Config strings, parsed like the line; errors name the config file (``source``)."""
    parse: Callable[[str], list[Any]] = {
        "guardrails": lambda raw: [read_guardrail(raw)],
        "flags": lambda raw: [_flag(raw)],
        "artifact": lambda raw: [_match(_IMAGE_RE, raw, "artifact", "an image reference")],
    }.get(setting, lambda raw: _time_ranges(raw, key))
    items: list[Any] = []
    for raw in raws:
        try:
            items += parse(raw)
        except BadValue as bad:
            spec = _SPECS[bad.key]
            example = re.sub(r'^[a-z]+="?|"$', "", spec.line)  # the value without key=
            raise ParseError(
                f'{source} [{table}] {setting}: "{raw}": {bad.problem}; {spec.hint}, '
                f'e.g. "{example}"'
            ) from None
    return items


def _assemble(given: _Given, config: Config) -> ReleaseRequest | InsufficientContext:
    svc = config.for_service(given.service) if given.service else config.defaults
    known = given.service is not None and config.knows(given.service)
    table = f"services.{given.service}" if known else "defaults"
    # config strings are checked even when the text overrides them: a typo should surface
    src = config.source  # errors in config strings name the file actually read
    guardrails = {g.name: g for g in _from_config(table, "guardrails", svc.guardrails, "", src)}
    guardrails |= given.guardrails
    flags = _from_config(table, "flags", svc.flags, "", src) if given.flags is None else given.flags
    peaks = _from_config(table, "peak_hours", svc.peak_hours, "peak", src)
    windows = _from_config(table, "maintenance_windows", svc.maintenance_windows, "window", src)
    image = given.image
    if image is None and svc.artifact and given.version:
        ref = svc.artifact.replace("{version}", given.version)
        image = _from_config(table, "artifact", [ref], "", src)[0]
    envs = svc.environments if given.environments is None else given.environments
    regions = svc.regions if given.regions is None else given.regions
    strategy, risk = given.strategy or svc.strategy, given.risk or svc.risk
    rails = sorted(guardrails.values(), key=lambda g: g.metric)  # p50, p95, p99 in order
    latency = [g for g in rails if g.metric in LATENCY_NAMES.values()]
    gaps = {
        "service": given.service is None,
        "version": given.version is None,
        "artifact": not (image or svc.artifact),
        "changes": not given.changes,
        "risk": risk is None,
        "env": not envs or not regions,
        "strategy": strategy is None,
        "flags": strategy == "feature_flag" and not flags,
        "error_rate": "error_rate" not in guardrails,
        "latency": not latency,
        "availability": "availability" not in guardrails,
    }
    if missing := [key for key, gap in gaps.items() if gap]:
        return _insufficient(missing, given, no_envs=not envs, source=src)
    assert given.service and given.version and image and given.changes and risk and strategy
    assert envs and regions
    return ReleaseRequest(
        service=given.service,
        release_package=ReleasePackage(
            version=given.version,
            artifact=Artifact(image=image, hash=given.hash, build_id=given.build),
            changes=given.changes,
            risk=risk,
            change_ticket=given.ticket,
        ),
        deployment_config=DeploymentConfig(
            environments=envs, regions=regions, strategy=strategy, flags=flags, stages=given.stages
        ),
        guardrails=Guardrails(
            error_rate=guardrails["error_rate"],
            latency=latency,
            availability=guardrails["availability"],
            kpis=[g for g in guardrails.values() if g.metric == "kpi"],
            others=[g for g in guardrails.values() if g.metric == "success_rate"],
        ),
        operational_context=OperationalContext(
            traffic_rps=given.traffic,
            peak_hours=peaks if given.peak_hours is None else given.peak_hours,
            maintenance_windows=windows if given.windows is None else given.windows,
            dependencies=given.dependencies or [],
        ),
    )


def _insufficient(
    missing: list[str], given: _Given, no_envs: bool, source: str = DEFAULT_SOURCE
) -> InsufficientContext:
    unhealthy = [d.name for d in given.dependencies or [] if d.health == "unhealthy"]
    return InsufficientContext(
        missing=[_SPECS[key].name for key in missing],
        deployment_blockers=[_BLOCKERS[key] for key in missing]
        + [f"dependency {name} is unhealthy" for name in unhealthy],
        next_best_step=_next_step(missing[0], given, no_envs, source),
    )


def _next_step(key: str, given: _Given, no_envs: bool, source: str) -> str:
    """One sentence for the first gap: the token to add, and where a default could go."""
    line, service = given.form == "line", given.service or "<service>"
    if key == "service" and line:
        return "Start the line with the service name, e.g. /release payments-api 2.4.1."
    if key == "service":
        return "Put the service name on the first line, above <release_package>, e.g. payments-api."
    if key == "version" and line:
        return f"Add the version after the service name, e.g. /release {service} 2.4.1."
    keys = ["env", "regions"] if key == "env" and no_envs else ["regions" if key == "env" else key]
    specs, spec = [_SPECS[k] for k in keys], _SPECS[key]
    if line:
        step = f"Add {' '.join(s.ask for s in specs)} to the /release line"
    else:
        step = f'Fill in "- {spec.name}: {spec.template}" under <{spec.section}>'
    if configs := " and ".join(s.config.format(service=service) for s in specs if s.config):
        step += f", or {configs} under [services.{service}] in {source}"
    return step + "."


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    keys = [_MODEL_KEYS.get(part, part) for part in reversed(loc)]
    spec = _SPECS[next((k for k in keys if k in _SPECS), "guardrail")]
    return f"{spec.name} ({'.'.join(loc)}): {err['msg']}; {spec.hint}, e.g. {spec.line}"


# --- public API --------------------------------------------------------------------------


def parse_release(text: str, config: Config) -> ReleaseRequest | InsufficientContext:
    """A /release line or a pasted template -> the request, or what is missing from it."""
    text = _plain(text)
    try:
        given = _parse_template(text) if _is_template(text) else _parse_line(text)
        return _assemble(given, config)
    except ValidationError as exc:  # the models' own checks, worded like ours
        raise ParseError(_validation_message(exc)) from None


def named_service(text: str) -> str | None:
    """The service a /release line or template names, whatever else it lacks (None when it
    names none or cannot be read)."""
    text = _plain(text)
    try:
        return (_parse_template(text) if _is_template(text) else _parse_line(text)).service
    except (ParseError, ValidationError):
        return None


def _public(token: str, parse: Callable[[str], _R]) -> _R:
    try:
        return parse(token)
    except BadValue as bad:
        raise _line_error(token, bad) from None
    except ValidationError as exc:
        raise ParseError(f"{token}: {_validation_message(exc)}") from None


def parse_time_range(text: str) -> TimeRange:
    """``09:00-12:00``, ``sat 02:00-04:00``, ``sat,sun 22:00-02:00``, optional ``UTC``."""
    ranges = _public(text, lambda value: _time_ranges(value, "window"))
    if len(ranges) != 1:
        raise ParseError(f"{text}: is not one time range; e.g. sat 02:00-04:00")
    return ranges[0]


def parse_flag(text: str) -> FlagSpec:
    """``new_checkout`` (100 %) or ``new_checkout:25``."""
    return _public(text, _flag)


def parse_dependency(text: str) -> DependencyStatus:
    """``payments-db:healthy``; the status is healthy, degraded or unhealthy."""
    return _public(text, _dependency)


# The /release grammar that the form (bot/slack/form.py) and the agent build on; the guardrail
# grammar is the domain's (bot/domain/guardrails.py), offered here too.
__all__ = [
    "ENV_ALIASES",
    "LINE_KEYS",
    "SMART_QUOTES",
    "VERSION_RE",
    "ParseError",
    "is_guardrail_token",
    "line_tokens",
    "named_service",
    "parse_dependency",
    "parse_flag",
    "parse_guardrail",
    "parse_release",
    "parse_time_range",
    "quote_value",
]
