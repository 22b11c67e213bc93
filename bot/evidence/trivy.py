"""Trivy JSON (``--format json``, schema 2): vulnerabilities, and the failed misconfiguration
checks and secrets when those scanners ran."""

from __future__ import annotations

from bot.evidence.errors import HOW
from bot.evidence.models import Finding, ScanReport, Severity
from bot.evidence.reading import Fields, join

FIX = HOW["trivy"]
# UNKNOWN is a vulnerability no source has rated yet: still a known vulnerability, so it
# counts as a low finding rather than vanishing among SARIF's "none" (not a problem).
SEVERITIES: dict[str, Severity] = {
    "CRITICAL": "critical",
    "HIGH": "high",
    "MEDIUM": "medium",
    "LOW": "low",
    "UNKNOWN": "low",
}


def read(doc: object, name: str) -> ScanReport:
    f = Fields(name, FIX)
    top = f.obj(doc, "")
    f.count(f.get(top, "SchemaVersion", ""), "SchemaVersion")
    findings: list[Finding] = []
    for path, result_value in f.items(top, "Results", ""):
        result = f.obj(result_value, path)
        target = f.string(f.get(result, "Target", path), join(path, "Target"))
        for where, item in f.items(result, "Vulnerabilities", path):
            vuln = f.obj(item, where)
            package = f.string(f.get(vuln, "PkgName", where), join(where, "PkgName"))
            version = vuln.get("InstalledVersion")
            findings.append(
                Finding(
                    rule=f.string(
                        f.get(vuln, "VulnerabilityID", where), join(where, "VulnerabilityID")
                    ),
                    severity=_severity(f, vuln, where),
                    where=f"{package}@{version}" if isinstance(version, str) else package,
                )
            )
        for where, item in f.items(result, "Misconfigurations", path):
            check = f.obj(item, where)
            if check.get("Status", "FAIL") != "FAIL":  # PASS and EXCEPTION are not findings
                continue
            cause = check.get("CauseMetadata")
            line = cause.get("StartLine") if isinstance(cause, dict) else None
            findings.append(
                Finding(
                    rule=f.string(f.get(check, "ID", where), join(where, "ID")),
                    severity=_severity(f, check, where),
                    where=f"{target}:{line}" if isinstance(line, int) else target,
                )
            )
        for where, item in f.items(result, "Secrets", path):
            secret = f.obj(item, where)
            line = secret.get("StartLine")
            findings.append(
                Finding(
                    rule=f.string(f.get(secret, "RuleID", where), join(where, "RuleID")),
                    severity=_severity(f, secret, where),
                    where=f"{target}:{line}" if isinstance(line, int) else target,
                )
            )
    return ScanReport(tool="trivy", findings=findings)


def _severity(f: Fields, item: dict[str, object], path: str) -> Severity:
    value = f.get(item, "Severity", path)
    if value not in SEVERITIES:
        raise f.fail(join(path, "Severity"), f"{value!r} is not one of {', '.join(SEVERITIES)}")
    return SEVERITIES[str(value)]
