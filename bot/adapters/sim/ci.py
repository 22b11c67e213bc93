"""``SimulatedCI``: what a CI pipeline and the registry record for a build, in the simulation.

Every check passes unless the version carries a ``check:NAME=fail|warning`` fault;
``artifact:`` faults make the image unsigned, SBOM-less, or a different digest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.adapters.sim.fleet import SimulatedFleet
from bot.domain.evidence import digest_of
from bot.domain.observations import ArtifactRecord, CheckEvidence
from bot.domain.request import Artifact
from bot.ports.checks import AbstractChecks
from bot.ports.ci import AbstractCI, Build

Status = Literal["pass", "fail", "warning"]

# (passed, failed, details) per check and status; {service} and {p95}/{base} are filled in.
_EVIDENCE: dict[str, dict[Status, tuple[int, int, str]]] = {
    "staging_tests": {
        "pass": (412, 0, "412 passed, 0 failed in staging"),
        "warning": (412, 0, "412 passed, 0 failed in staging; 4 flaky tests passed on retry"),
        "fail": (
            409,
            3,
            "409 passed, 3 failed in staging: test_retry_on_timeout, test_error_mapping_5xx, "
            "test_pagination_cursor",
        ),
    },
    "security_scan": {
        "pass": (0, 0, "0 critical, 0 high vulnerabilities (trivy)"),
        "warning": (0, 0, "0 critical, 0 high, 4 medium vulnerabilities (trivy); fixes available"),
        "fail": (
            0,
            2,
            "1 critical, 1 high vulnerabilities (trivy): CVE-2024-3094 in xz-utils 5.6.0 "
            "(critical), CVE-2023-44487 in golang.org/x/net 0.15.0 (high)",
        ),
    },
    "performance_benchmark": {
        "pass": (
            1,
            0,
            "p95 {p95} ms vs {base} ms on the stable version (+2%) at 1.2× peak load (k6, 10 min)",
        ),
        "warning": (
            1,
            0,
            "p95 {p95} ms vs {base} ms on the stable version (+12%) at 1.2× "
            "peak load (k6, 10 min); close to the 15% budget",
        ),
        "fail": (
            0,
            1,
            "p95 {p95} ms vs {base} ms on the stable version (+45%) at 1.2× peak "
            "load (k6, 10 min); over the 15% regression budget",
        ),
    },
    "smoke_tests": {
        "pass": (18, 0, "18 passed, 0 failed against staging"),
        "warning": (18, 0, "18 passed, 0 failed against staging; 2 responses slower than 1 s"),
        "fail": (
            17,
            1,
            "17 passed, 1 failed against staging: GET /healthz/ready returned 503 "
            "(readiness probe)",
        ),
    },
    "contract_tests": {
        "pass": (27, 0, "27 pact interactions verified against 3 consumers"),
        "warning": (
            27,
            0,
            "27 pact interactions verified against 3 consumers; 1 consumer has no pact "
            "for this version yet",
        ),
        "fail": (
            25,
            2,
            "2 of 27 pact interactions failed: consumer web-frontend expects field "
            "'amount_minor' in {service} responses, got 'amount'",
        ),
    },
}
_P95_CHANGE: dict[Status, float] = {"pass": 0.02, "warning": 0.12, "fail": 0.45}
# Every figure it writes says where it came from: never mistaken for a real CI's.
SIMULATED = " (simulated CI)"


class SimulatedCI(AbstractCI):
    """Builds on request: an ArtifactRecord plus the five CheckEvidence CI would record."""

    def __init__(self, checks: AbstractChecks, fleet: SimulatedFleet) -> None:
        self.checks = checks
        self.fleet = fleet

    def publish(self, service: str, version: str, artifact: Artifact, at: datetime) -> Build:
        """Build, then record the artifact and the evidence through the checks port."""
        build = self.build(service, version, artifact, at)
        self.checks.record_artifact(build.artifact)
        for e in build.evidence:
            self.checks.record(service, version, e)
        return build

    def build(self, service: str, version: str, artifact: Artifact, at: datetime) -> Build:
        """The artifact and evidence of ``version``; records nothing. The digest is what the
        line names, else ``sha256:`` + sha256(image); the build id, else
        ``simulated-build-VERSION``."""
        faults = self.fleet.faults(service, version)
        problems = {f.value for f in faults if f.kind == "artifact"}
        statuses: dict[str, Status] = {
            f.name: "fail" if f.value == "fail" else "warning"
            for f in faults
            if f.kind == "check" and f.name is not None
        }
        image = artifact.image
        digest = artifact.hash or digest_of(image.encode())
        if "digest-mismatch" in problems:
            # The registry holds another build than the one the release names.
            digest = digest_of(f"{digest}:rebuilt".encode())
        record = ArtifactRecord(
            image=image,
            digest=digest,
            build_id=artifact.build_id or f"simulated-build-{version}",
            signed="unsigned" not in problems,
            sbom_attached="no-sbom" not in problems,
        )
        base = self.fleet.profile(service).latency_quantile_ms(0.95)
        evidence = []
        for name, by_status in _EVIDENCE.items():
            status = statuses.get(name, "pass")
            passed, failed, template = by_status[status]
            details = (
                template.format(
                    service=service,
                    base=f"{base:.0f}",
                    p95=f"{base * (1 + _P95_CHANGE[status]):.0f}",
                )
                + SIMULATED
            )
            evidence.append(
                CheckEvidence.model_validate(
                    {
                        "name": name,
                        "status": status,
                        "details": details,
                        "passed": passed,
                        "failed": failed,
                        "recorded_at": at,
                    }
                )
            )
        return Build(artifact=record, evidence=evidence)
