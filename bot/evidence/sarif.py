"""SARIF 2.1.0 (ruff, semgrep, CodeQL, …): one finding per result, with GitHub's
``security-severity`` convention taking precedence over ``level``."""

from __future__ import annotations

from bot.evidence.errors import HOW
from bot.evidence.models import Finding, ScanReport, Severity
from bot.evidence.reading import Fields, join

FIX = HOW["sarif"]
LEVELS: dict[str, Severity] = {"error": "high", "warning": "medium", "note": "low", "none": "none"}
# Results that say a check passed or did not apply are not findings.
NOT_FINDINGS = ("pass", "notApplicable")


def read(doc: object, name: str) -> ScanReport:
    f = Fields(name, FIX)
    top = f.obj(doc, "")
    version = f.get(top, "version", "")
    if version != "2.1.0":
        raise f.fail("version", f"{version!r}: only SARIF 2.1.0 is read")
    runs = f.arr(f.get(top, "runs", ""), "runs")
    tools: list[str] = []
    findings: list[Finding] = []
    for i, run_value in enumerate(runs):
        path = f"runs[{i}]"
        run = f.obj(run_value, path)
        tool = f.obj(f.get(run, "tool", path), f"{path}.tool")
        driver = f.obj(f.get(tool, "driver", f"{path}.tool"), f"{path}.tool.driver")
        tool_name = f.string(
            f.get(driver, "name", f"{path}.tool.driver"), f"{path}.tool.driver.name"
        )
        if tool_name not in tools:
            tools.append(tool_name)
        rules = _rules(f, tool, f"{path}.tool")
        for where, result in f.items(run, "results", path):
            finding = _finding(f, f.obj(result, where), where, rules)
            if finding is not None:
                findings.append(finding)
    return ScanReport(tool=", ".join(tools), findings=findings)


Rule = tuple[str, dict[str, object]]  # its JSON path, for messages, and the rule


def _rules(f: Fields, tool: dict[str, object], path: str) -> list[Rule]:
    """The driver's rules (indexable by ``ruleIndex``), then the extensions' (CodeQL packs)."""
    components = [(f"{path}.driver", tool["driver"]), *f.items(tool, "extensions", path)]
    return [
        (rule_path, f.obj(rule, rule_path))
        for where, component in components
        for rule_path, rule in f.items(f.obj(component, where), "rules", where)
    ]


def _finding(f: Fields, result: dict[str, object], path: str, rules: list[Rule]) -> Finding | None:
    if result.get("kind") in NOT_FINDINGS:
        return None
    rule_id, (rule_path, rule) = _rule(f, result, path, rules)
    level: object = result.get("level")
    kind = result.get("kind")
    if level is None and kind is not None and kind != "fail":
        level = "none"  # review, open, informational: SARIF says their level is none
    if level is None:
        config = rule.get("defaultConfiguration")
        level = config.get("level", "warning") if isinstance(config, dict) else "warning"
    if not isinstance(level, str) or level not in LEVELS:
        raise f.fail(join(path, "level"), f"{level!r} is not one of error, warning, note, none")
    severity = LEVELS[level]
    # The result's own score is the more specific one.
    score = _security_severity(f, result, path)
    if score is None:
        score = _security_severity(f, rule, rule_path)
    if score is not None:
        severity = _from_score(score)
    return Finding(rule=rule_id, severity=severity, where=_where(f, result, path))


def _rule(f: Fields, result: dict[str, object], path: str, rules: list[Rule]) -> tuple[str, Rule]:
    """The result's rule id and its rule (empty when the tool lists no rules)."""
    index = result.get("ruleIndex")
    by_index = rules[index] if isinstance(index, int) and 0 <= index < len(rules) else None
    rule_id = result.get("ruleId")
    reference = result.get("rule")
    if rule_id is None and isinstance(reference, dict):
        rule_id = reference.get("id")
    if rule_id is None and by_index is not None:
        rule_id = by_index[1].get("id")
    if rule_id is None:
        raise f.fail(join(path, "ruleId"), "missing (and no rule.id or ruleIndex names it)")
    rule_id = f.string(rule_id, join(path, "ruleId"))
    by_id = next((r for r in rules if r[1].get("id") == rule_id), None)
    return rule_id, by_id or by_index or ("", {})


def _security_severity(f: Fields, owner: dict[str, object], path: str) -> float | None:
    properties = owner.get("properties")
    if not isinstance(properties, dict) or "security-severity" not in properties:
        return None
    value = properties["security-severity"]
    where = join(path, "properties.security-severity")
    # GitHub's convention writes the score as a string ("8.8"); numbers are accepted too.
    try:
        score = float(value) if isinstance(value, str) else f.number(value, where)
    except ValueError:
        raise f.fail(where, f"{value!r} is not a number from 0.0 to 10.0") from None
    if not 0.0 <= score <= 10.0:
        raise f.fail(where, f"{value!r} is not a number from 0.0 to 10.0")
    return score


def _from_score(score: float) -> Severity:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0.0 else "none"


def _where(f: Fields, result: dict[str, object], path: str) -> str:
    locations = f.items(result, "locations", path)
    if not locations:
        return "no location"
    where, location = locations[0]
    physical = f.obj(location, where).get("physicalLocation")
    if not isinstance(physical, dict):
        return "no location"
    artifact = physical.get("artifactLocation")
    uri = artifact.get("uri") if isinstance(artifact, dict) else None
    file = str(uri).removeprefix("file://") if uri is not None else "unknown file"
    region = physical.get("region")
    line = region.get("startLine") if isinstance(region, dict) else None
    return f"{file}:{line}" if isinstance(line, int) else file
