"""Gate evidence from the files a team's CI uploads: what each file says, and what the gates
make of them for one release. Parsing the formats is outside the domain (``bot/evidence``);
here a file is its kind, its identity and the figures read from it.

Missing evidence is a ``fail`` for the critical checks (tests, scans, the artifact) and a
``warning`` for the others, each naming the file to upload and the command that does it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal

from bot.domain.base import Model
from bot.domain.observations import ArtifactRecord, CheckEvidence

Kind = Literal["junit", "sarif", "trivy", "cyclonedx", "spdx", "k6", "signature"]
SCAN_KINDS: tuple[Kind, ...] = ("sarif", "trivy")
SBOM_KINDS: tuple[Kind, ...] = ("cyclonedx", "spdx")
BLOCKING = ("critical", "high")
# A benchmark slower than the stable version's by more than this warns.
REGRESSION_WARNING = 0.15
DIGEST_PREFIX = "sha256:"


def digest_of(data: bytes) -> str:
    """An artifact's digest as the line, CI and the registry write it: ``sha256:<hex>``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def is_pem_text(key: str) -> bool:
    """Whether a ``signing_key`` setting is the PEM itself rather than a path to it."""
    return key.lstrip().startswith("-----BEGIN")


class EvidenceFile(Model):
    """One uploaded file: who sent it and when, its sha256, and the figures read from it
    (``summary``, as the parser for its kind wrote them)."""

    id: int = 0
    service: str
    version: str
    kind: Kind
    name: str
    sha256: str
    size: int
    uploaded_by: str
    uploaded_at: datetime
    digest: str | None = None  # the artifact digest it is bound to (SBOMs, signatures)
    summary: dict[str, Any]

    def cite(self) -> str:
        return f"{self.name} sha256:{self.sha256[:12]}… from {self.uploaded_by}"


class Waiver(Model):
    """A finding a team accepts for now: its id, why, and until when."""

    id: str
    reason: str
    expires: date


def upload_hint(service: str, version: str, what: str, example: str) -> str:
    return f"upload {what}: `release-bot evidence add {service} {version} {example}`"


def checks_from_evidence(
    files: Sequence[EvidenceFile],
    stable: Sequence[EvidenceFile],
    service: str,
    version: str,
    budgets: tuple[float | None, float | None],
    waivers: Sequence[Waiver],
    now: datetime,
    smoke: Sequence[str] = (),
) -> list[CheckEvidence]:
    """The gates' results for ``version`` from its files (``stable``: the stable version's,
    for the benchmark's comparison). ``budgets``: the p95 in ms and error rate in % the
    request holds the new version to; ``smoke``: the service's smoke checks, run over HTTP
    after each environment step."""
    return [
        _tests(files, service, version, now),
        _scans(files, service, version, waivers, now),
        _benchmark(files, stable, service, version, budgets, now),
        _smoke(service, smoke, now),
        CheckEvidence(
            name="contract_tests",
            status="warning",
            details="no contract-test format is read yet: a person checks the consumers' pacts",
            recorded_at=now,
        ),
    ]


def _smoke(service: str, checks: Sequence[str], now: datetime) -> CheckEvidence:
    """Smoke tests are this bot's own, real HTTP after each environment step: before the
    first step none has run, so this gate can only say what will run (a warning, never a
    pass on nothing)."""
    if not checks:
        return CheckEvidence(
            name="smoke_tests",
            status="warning",
            details=(
                f'no smoke checks for {service}: add smoke = [{{ name = "checkout", url = '
                f'"http://…" }}] to its table; nothing will check it after each step'
            ),
            recorded_at=now,
        )
    return CheckEvidence(
        name="smoke_tests",
        status="warning",
        details=f"not run yet: {len(checks)} smoke checks run over HTTP after each environment "
        "step (" + ", ".join(checks) + "); a failing one rolls the release back",
        recorded_at=now,
    )


def _latest(files: Sequence[EvidenceFile], *kinds: Kind) -> EvidenceFile | None:
    found = [f for f in files if f.kind in kinds]
    return max(found, key=lambda f: (f.uploaded_at, f.id)) if found else None


def _result(
    name: Literal["staging_tests", "security_scan", "performance_benchmark", "smoke_tests"],
    status: Literal["pass", "fail", "warning"],
    details: str,
    now: datetime,
    passed: int = 0,
    failed: int = 0,
) -> CheckEvidence:
    return CheckEvidence(
        name=name, status=status, details=details, passed=passed, failed=failed, recorded_at=now
    )


def _tests(
    files: Sequence[EvidenceFile], service: str, version: str, now: datetime
) -> CheckEvidence:
    """Every test report counts (the newest of each name: a re-run replaces its report, a
    passing integration suite does not hide a failing unit suite)."""
    newest: dict[str, EvidenceFile] = {}
    for f in files:
        if f.kind == "junit" and (f.name not in newest or f.id > newest[f.name].id):
            newest[f.name] = f
    reports = sorted(newest.values(), key=lambda f: f.id)
    if not reports:
        hint = upload_hint(service, version, "the test report", "report.xml")
        return _result("staging_tests", "fail", f"no test report for {version}: {hint}", now)
    total = {k: sum(int(r.summary[k]) for r in reports) for k in ("tests", "failures", "errors",
                                                                   "skipped")}  # fmt: skip
    broken = total["failures"] + total["errors"]
    passed = total["tests"] - broken - total["skipped"]
    cited = ", ".join(r.cite() for r in reports)
    if passed <= 0 and not broken:
        details = f"no test passed ({total['skipped']} skipped): nothing was verified ({cited})"
        return _result("staging_tests", "fail", details, now)
    details = (
        f"{passed} passed, {total['failures']} failed, {total['errors']} errored, "
        f"{total['skipped']} skipped ({cited})"
    )
    status: Literal["pass", "fail"] = "fail" if broken else "pass"
    return _result("staging_tests", status, details, now, passed, broken)


def _scans(
    files: Sequence[EvidenceFile],
    service: str,
    version: str,
    waivers: Sequence[Waiver],
    now: datetime,
) -> CheckEvidence:
    scans = [f for f in files if f.kind in SCAN_KINDS]
    if not scans:
        hint = upload_hint(service, version, "a SARIF or Trivy JSON scan", "scan.sarif")
        return _result("security_scan", "fail", f"no security scan for {version}: {hint}", now)
    # Every scan uploaded for the version counts: one tool's silence is not another's pass.
    findings = [(scan, f) for scan in scans for f in scan.summary["findings"]]
    live = {w.id: w for w in waivers if w.expires >= now.date()}
    blocking = [f for _, f in findings if f["severity"] in BLOCKING and f["rule"] not in live]
    waived = [f for _, f in findings if f["severity"] in BLOCKING and f["rule"] in live]
    medium = [f for _, f in findings if f["severity"] == "medium"]
    sources = ", ".join(scan.cite() for scan in scans)
    parts = [
        f"{sum(f['severity'] == 'critical' for f in blocking)} critical, "
        f"{sum(f['severity'] == 'high' for f in blocking)} high, {len(medium)} medium"
    ]
    if blocking:
        parts.append("blocking: " + ", ".join(f"{f['rule']} in {f['where']}" for f in blocking[:5]))
    if waived:
        parts.append(
            "waived: "
            + ", ".join(
                f"{f['rule']} until {live[f['rule']].expires} ({live[f['rule']].reason})"
                for f in waived
            )
        )
    details = "; ".join(parts) + f" ({sources})"
    status: Literal["pass", "fail", "warning"] = (
        "fail" if blocking else "warning" if medium else "pass"
    )
    return _result("security_scan", status, details, now, failed=len(blocking))


def _benchmark(
    files: Sequence[EvidenceFile],
    stable: Sequence[EvidenceFile],
    service: str,
    version: str,
    budgets: tuple[float | None, float | None],
    now: datetime,
) -> CheckEvidence:
    run = _latest(files, "k6")
    if run is None:
        hint = upload_hint(service, version, "a k6 summary", "k6-summary.json")
        return _result(
            "performance_benchmark", "warning", f"no load test for {version}: {hint}", now
        )
    p95, error_rate = float(run.summary["p95_ms"]), float(run.summary["error_rate"]) * 100
    p95_budget, error_budget = budgets
    parts = [f"p95 {p95:.0f} ms, {error_rate:.2f}% errors over {run.summary['requests']} requests"]
    over = []
    if p95_budget is not None and p95 > p95_budget:
        over.append(f"p95 over the {p95_budget:g} ms budget")
    if error_budget is not None and error_rate > error_budget:
        over.append(f"errors over the {error_budget:g}% budget")
    slower = False
    if (base := _latest(stable, "k6")) is not None:
        base_p95 = float(base.summary["p95_ms"])
        change = (p95 - base_p95) / base_p95 if base_p95 else 0.0
        parts.append(f"{change:+.0%} vs {base_p95:.0f} ms on the stable version")
        slower = change > REGRESSION_WARNING
    details = "; ".join(parts + over) + f" ({run.cite()})"
    status: Literal["pass", "fail", "warning"] = "fail" if over else "warning" if slower else "pass"
    return _result("performance_benchmark", status, details, now, int(not over), int(bool(over)))


def artifact_from_evidence(
    files: Sequence[EvidenceFile], digest: str | None, build_id: str | None
) -> tuple[ArtifactRecord | None, str]:
    """The artifact as the evidence shows it, and what showed it (or why there is none).
    Its digest is the one the release names, which must be the one CI bound its SBOM and
    signature to (when it bound them to any), else the bound one. Signed when a signature
    over that digest verified against the service's key at upload; with an SBOM when one
    was bound to it."""
    bound = list(dict.fromkeys(f.digest for f in files if f.digest is not None))
    if digest is not None and bound and digest not in bound:
        return None, (
            f"digest mismatch: the request says {digest}, CI bound its evidence to "
            f"{', '.join(bound)}; release the artifact CI built, or upload its evidence"
        )
    digest = digest or (bound[-1] if bound else None)
    if digest is None:
        return None, ""
    signatures = [
        f
        for f in files
        if f.kind == "signature" and f.digest == digest and f.summary.get("verified")
    ]
    sboms = [f for f in files if f.kind in SBOM_KINDS and f.digest == digest]
    cites = [f"signature {f.cite()}" for f in signatures[-1:]] + [
        f"SBOM of {f.summary.get('components', '?')} components, {f.cite()}" for f in sboms[-1:]
    ]
    record = ArtifactRecord(
        image="",
        digest=digest,
        build_id=build_id or "",
        signed=bool(signatures),
        sbom_attached=bool(sboms),
    )
    return record, "; ".join(cites)


def artifact_hint(service: str, version: str) -> str:
    """What to do when the evidence names no artifact digest at all."""
    return (
        f"no artifact digest for {service} {version}: give hash=sha256:… on the /release line, "
        f"or bind the SBOM and signature to it: `release-bot evidence add {service} {version} "
        "sbom.json image.sig --digest sha256:…`"
    )
