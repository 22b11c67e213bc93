"""What each kind of evidence file says, as the gates need it."""

from __future__ import annotations

import base64
from typing import ClassVar, Literal

from pydantic import field_serializer, field_validator

from bot.domain.base import Model

Severity = Literal["critical", "high", "medium", "low", "none"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "none")


class TestReport(Model):
    """A JUnit XML report's totals over its test suites."""

    __test__: ClassVar[bool] = False  # pytest: a model, not a test class to collect

    tests: int
    failures: int
    errors: int
    skipped: int
    suites: int

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


class Finding(Model):
    rule: str
    severity: Severity
    where: str  # file:line, or package@version


class ScanReport(Model):
    tool: str
    findings: list[Finding]

    def counts(self) -> dict[Severity, int]:
        """Findings per severity, every severity present."""
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}


class Sbom(Model):
    format: Literal["cyclonedx", "spdx"]
    spec_version: str
    components: int
    # The sha256 (hex) the SBOM states for its subject, to bind it to the artifact digest.
    subject_digests: list[str]


class LoadTest(Model):
    requests: int
    error_rate: float  # a fraction, 0..1
    p95_ms: float
    avg_ms: float


class Signature(Model):
    """A detached signature: DER for ECDSA, the 64 raw bytes for Ed25519."""

    der: bytes

    # Standard base64 as text (as in the file): the bytes are binary, summaries are JSON.
    @field_serializer("der", when_used="json")
    def _to_base64(self, der: bytes) -> str:
        return base64.b64encode(der).decode()

    @field_validator("der", mode="before")
    @classmethod
    def _from_base64(cls, value: object) -> object:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else value


Parsed = TestReport | ScanReport | Sbom | LoadTest | Signature
