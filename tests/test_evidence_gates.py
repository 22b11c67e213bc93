"""What the gates make of uploaded evidence: tests, scans (with waivers), load tests against
budgets and the stable version, the artifact's digest, signature and SBOM; and a release of a
service off the simulated CI, judged only on what was uploaded."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.config import DEFAULT_CONFIG
from bot.domain.evidence import (
    EvidenceFile,
    Kind,
    Waiver,
    artifact_from_evidence,
    checks_from_evidence,
)
from bot.domain.release import Release
from bot.service import start_release

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def file(
    kind: Kind, summary: dict[str, Any], digest: str | None = None, n: int = 1
) -> EvidenceFile:
    return EvidenceFile(
        id=n,
        service="shop",
        version="2.0.0",
        kind=kind,
        name=f"file-{n}",
        sha256=f"{n:064x}",
        size=100,
        uploaded_by="ci",
        uploaded_at=NOW,
        digest=digest,
        summary=summary,
    )


JUNIT_OK = {"tests": 10, "failures": 0, "errors": 0, "skipped": 1, "suites": 1}
TRIVY_HIGH = {
    "tool": "trivy",
    "findings": [
        {"rule": "CVE-2024-1", "severity": "high", "where": "openssl@3.0.1"},
        {"rule": "CVE-2024-2", "severity": "medium", "where": "zlib@1.2"},
    ],
}
K6 = {"requests": 6000, "error_rate": 0.001, "p95_ms": 210.0, "avg_ms": 90.0}


def checks(
    files: list[EvidenceFile], stable: list[EvidenceFile] | None = None, **kw: Any
) -> dict[str, Any]:
    results = checks_from_evidence(
        files,
        stable or [],
        "shop",
        "2.0.0",
        kw.get("budgets", (300.0, 1.0)),
        kw.get("waivers", []),
        NOW,
    )
    return {r.name: r for r in results}


def test_nothing_uploaded_fails_the_critical_checks_naming_the_command() -> None:
    got = checks([])
    assert got["staging_tests"].status == "fail"
    assert "`release-bot evidence add shop 2.0.0 report.xml`" in got["staging_tests"].details
    assert got["security_scan"].status == "fail"
    assert "scan.sarif" in got["security_scan"].details
    assert got["performance_benchmark"].status == "warning"  # not a critical check
    assert "k6-summary.json" in got["performance_benchmark"].details


def test_test_reports_pass_or_fail_on_their_counts_and_cite_the_file() -> None:
    assert checks([file("junit", JUNIT_OK)])["staging_tests"].status == "pass"
    failing = checks([file("junit", JUNIT_OK | {"failures": 2, "errors": 1})])["staging_tests"]
    assert failing.status == "fail"
    assert failing.details.startswith("6 passed, 2 failed, 1 errored, 1 skipped (file-1 sha256:")
    assert failing.failed == 3


def test_every_report_counts_and_a_report_of_skips_verifies_nothing() -> None:
    unit = file("junit", JUNIT_OK | {"failures": 1}, n=1)
    integration = file("junit", JUNIT_OK, n=2)  # another file: it does not hide the unit one
    assert checks([unit, integration])["staging_tests"].status == "fail"
    rerun = unit.model_copy(update={"id": 3, "summary": JUNIT_OK})  # same name, newer
    assert checks([unit, integration, rerun])["staging_tests"].status == "pass"
    skipped = file("junit", {"tests": 3, "failures": 0, "errors": 0, "skipped": 3, "suites": 1})
    result = checks([skipped])["staging_tests"]
    assert result.status == "fail" and result.details.startswith("no test passed (3 skipped)")


def test_high_findings_block_unless_waived_until_a_date_not_past() -> None:
    scan = [file("trivy", TRIVY_HIGH)]
    blocked = checks(scan)["security_scan"]
    assert blocked.status == "fail"
    assert "CVE-2024-1 in openssl@3.0.1" in blocked.details
    waiver = Waiver(id="CVE-2024-1", reason="not reachable", expires=date(2026, 12, 31))
    waived = checks(scan, waivers=[waiver])["security_scan"]
    assert waived.status == "warning"  # the medium one still warns
    assert "waived: CVE-2024-1 until 2026-12-31 (not reachable)" in waived.details
    expired = Waiver(id="CVE-2024-1", reason="old", expires=date(2026, 11, 1))
    assert checks(scan, waivers=[expired])["security_scan"].status == "fail"


def test_every_scan_counts_not_only_the_latest() -> None:
    clean = file("sarif", {"tool": "ruff", "findings": []}, n=2)
    assert checks([file("trivy", TRIVY_HIGH), clean])["security_scan"].status == "fail"


def test_load_tests_are_held_to_the_budgets_and_to_the_stable_version() -> None:
    assert checks([file("k6", K6)])["performance_benchmark"].status == "pass"
    over = checks([file("k6", K6 | {"p95_ms": 450.0})])["performance_benchmark"]
    assert over.status == "fail" and "p95 over the 300 ms budget" in over.details
    base = file("k6", K6 | {"p95_ms": 150.0}, n=9)
    slower = checks([file("k6", K6)], stable=[base])["performance_benchmark"]
    assert slower.status == "warning" and "+40% vs 150 ms on the stable version" in slower.details


def test_the_artifact_is_signed_only_by_a_verified_signature_over_its_digest() -> None:
    sig = file("signature", {"verified": True, "over": DIGEST}, DIGEST, n=2)
    sbom = file("cyclonedx", {"components": 3}, DIGEST, n=3)
    record, shown = artifact_from_evidence([sig, sbom], DIGEST, None)
    assert record is not None and record.signed and record.sbom_attached
    assert shown == (f"signature {sig.cite()}; SBOM of 3 components, {sbom.cite()}")
    record, _ = artifact_from_evidence([sig, sbom], None, None)  # the bound digest, unnamed
    assert record is not None and record.digest == DIGEST
    assert artifact_from_evidence([], None, None) == (None, "")


def test_a_digest_ci_did_not_bind_its_evidence_to_is_a_mismatch() -> None:
    sig = file("signature", {"verified": True, "over": DIGEST}, DIGEST, n=2)
    other = "sha256:" + "cd" * 32
    record, why = artifact_from_evidence([sig], other, None)
    assert record is None
    assert why == (
        f"digest mismatch: the request says {other}, CI bound its evidence to {DIGEST}; "
        "release the artifact CI built, or upload its evidence"
    )


def test_smoke_checks_are_the_bots_own_and_contract_tests_need_a_person() -> None:
    results = checks_from_evidence([], [], "shop", "2.0.0", (None, None), [], NOW, ["checkout"])
    by_name = {r.name: r for r in results}
    assert by_name["smoke_tests"].status == "warning"  # nothing has run before the first step
    assert by_name["smoke_tests"].details.startswith(
        "not run yet: 1 smoke checks run over HTTP after each environment step (checkout)"
    )
    assert by_name["contract_tests"].status == "warning"
    none = {r.name: r for r in checks_from_evidence([], [], "shop", "2", (None, None), [], NOW)}
    assert (
        none["smoke_tests"].status == "warning" and "add smoke = [" in none["smoke_tests"].details
    )


# -- a release of a service whose CI uploads its evidence --------------------------------------

SHOP = """
[services.shop]
approvers = ["alice"]
environments = ["prod"]
regions = ["us-east-1"]
strategy = "canary"
artifact = "registry.local/shop:{version}"
metrics = { provider = "simulator" }
traffic = { router = "simulator" }
"""


def wired(tmp_path: Path) -> Wiring:
    config = tmp_path / "services.toml"
    config.write_text(DEFAULT_CONFIG.read_text() + SHOP)
    return bootstrap(
        ":memory:", clock_start=NOW, chat=TerminalChat(io.StringIO()), config_path=config
    )


def test_a_service_off_the_simulated_ci_fails_its_gates_without_evidence(tmp_path: Path) -> None:
    wiring = wired(tmp_path)
    try:
        release = start_release(wiring.services, 'shop 2.0.0 risk=low changes="x"', "alice")
        assert isinstance(release, Release)
        assert release.status == "failed"
        by_name = {c.check: c for c in release.observed.checks}
        assert by_name["build_artifacts"].status == "fail"
        assert "release-bot evidence add shop 2.0.0" in by_name["build_artifacts"].details
        assert by_name["staging_tests"].status == "fail"
        assert (
            "`release-bot evidence add shop 2.0.0 report.xml`" in by_name["staging_tests"].details
        )
        assert by_name["security_scan"].status == "fail"
        # nothing simulated was published for it
        assert wiring.services.checks.results("shop", "2.0.0") == []
    finally:
        wiring.close()
