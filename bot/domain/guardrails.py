"""The guardrail grammar: ``error_rate<1%``, ``p95<300ms``, ``p99<0.8s``, ``kpi:conversion>=-2%``.

Shared by the ``/release`` line, the config and the agent's plan proposals, so a guardrail
means the same wherever it is written. Pure; bad input raises ``ParseError`` whose message
names the token and shows a correct example.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from pydantic import ValidationError

from bot.domain.request import Guardrail

NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
GUARDRAIL_NAME = r"(?:kpi:[A-Za-z0-9_.\-]+|[A-Za-z_][A-Za-z0-9_]*)"
COMPARATOR = r"<=|>=|<|>"
GUARDRAIL_RE = re.compile(
    rf"(?P<name>{GUARDRAIL_NAME})(?P<cmp>{COMPARATOR})(?P<value>{NUMBER})(?P<unit>%|ms|s)?"
)
# A token that starts like a guardrail (name, then a comparator): how a line tells one apart.
GUARDRAIL_START = re.compile(rf"{GUARDRAIL_NAME}\s*[<>]")
LATENCY_NAMES = {f"{p}{q}": f"latency_{q}" for p in ("", "latency_") for q in ("p50", "p95", "p99")}
RATES = ("error_rate", "success_rate", "availability")
# How to write each kind of guardrail: (hint, example on a /release line).
GUARDRAIL_HINTS: dict[str, tuple[str, str]] = {
    "error_rate": ("write the error-rate threshold as a percentage", "error_rate<1%"),
    "latency": ("write a latency budget as a positive time in ms or s", "p95<300ms"),
    "availability": ("write the availability SLA as a percentage", "availability>=99.9%"),
    "kpis": (
        "write kpi:<name> with a comparator; with % it bounds the change against the baseline",
        "kpi:checkout_conversion>=-2%",
    ),
    "success_rate": ("write the success rate as a percentage", "success_rate>=99%"),
    "guardrail": (
        "guardrails are error_rate, success_rate, availability, p50, p95, p99 or kpi:<name> "
        "with < <= > or >=",
        "p95<300ms",
    ),
}


class ParseError(Exception):
    """Bad input. str(exc) says what is wrong AND how to write it, e.g.
    "stages=5,140: 140 is not a percentage; write rollout percentages between 1 and 100, e.g.
    stages=1,5,25,50,100"."""


class BadValue(Exception):
    """A value is wrong. The caller knows the token (or template line) and words the error;
    ``key`` says which field's hint and example apply."""

    def __init__(self, problem: str, key: str) -> None:
        super().__init__(problem)
        self.problem, self.key = problem, key


def read_number(text: str, key: str, scale: int = 1) -> float:
    """A finite number, scaled in decimal: 0.7s is 700 ms, not 700.0000000000001."""
    value = float(text) if re.fullmatch(NUMBER, text) else math.nan
    if math.isfinite(value) and scale != 1:
        value = float(Decimal(text) * scale)
    if not math.isfinite(value):
        too_large = re.fullmatch(NUMBER, text) is not None
        raise BadValue(
            f"{text or 'nothing'} is {'too large' if too_large else 'not a number'}", key
        )
    return value


def guardrail_metric(name: str) -> tuple[str, str]:
    """(metric, hint key) of a guardrail name."""
    if name.startswith("kpi:"):
        return "kpi", "kpis"
    if name in LATENCY_NAMES:
        return LATENCY_NAMES[name], "latency"
    if name in RATES:
        return name, name
    raise BadValue(f"{name} is not a guardrail metric", "guardrail")


def read_guardrail(token: str) -> Guardrail:
    """The guardrail a token writes; ``BadValue`` when it is not one."""
    m = GUARDRAIL_RE.fullmatch("".join(token.split()))
    if m is None:
        raise BadValue("is not a guardrail", "guardrail")
    name, raw, unit = m["name"], m["value"], m["unit"] or ""
    metric, key = guardrail_metric(name)
    value = read_number(raw, key, 1000 if unit == "s" else 1)  # budgets are kept in ms
    if metric in RATES:
        if unit not in ("%", ""):
            raise BadValue(f"{name} is a percentage, not a time", key)
        if not 0 <= value <= 100:
            raise BadValue(f"{raw}{unit} is not a percentage between 0 and 100", key)
        unit = "%"
    elif metric != "kpi":
        if unit == "%":
            raise BadValue(f"{name} is a time, not a percentage", key)
        if value <= 0:
            raise BadValue(f"{raw}{unit or 'ms'} is not a positive latency", key)
        unit = unit or "ms"
    unit = "ms" if unit == "s" else unit
    return Guardrail(
        metric=metric,
        kpi=name[4:] if metric == "kpi" else None,
        comparator=m["cmp"],
        value=value,
        unit={"%": "percent", "ms": "ms", "": "value"}[unit],
        relative=metric == "kpi" and unit == "%",
    )


def parse_guardrail(token: str) -> Guardrail:
    """``error_rate<1%``, ``p99<0.8s`` (kept as 800 ms), ``kpi:conversion>=-2%``...; bad
    input raises ``ParseError`` naming the token, with how to write it."""
    try:
        return read_guardrail(token)
    except BadValue as bad:
        hint, example = GUARDRAIL_HINTS[bad.key]
        raise ParseError(f"{token}: {bad.problem}; {hint}, e.g. {example}") from None
    except ValidationError as exc:  # the model's own checks, worded like ours
        err = exc.errors()[0]
        hint, example = GUARDRAIL_HINTS["guardrail"]
        where = ".".join(str(part) for part in err["loc"])
        raise ParseError(
            f"{token}: guardrail ({where}): {err['msg']}; {hint}, e.g. {example}"
        ) from None
