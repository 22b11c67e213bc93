"""Evidence files as CI writes them (JUnit XML, SARIF, Trivy JSON, CycloneDX and SPDX JSON,
k6 summaries, cosign signatures): what kind a file is, what it says, and whether a signature
verifies. Pure: bytes in, models out, one-line EvidenceErrors for anything malformed."""

from bot.domain.evidence import Kind
from bot.evidence.errors import EvidenceError
from bot.evidence.kinds import MAX_BYTES, guess_kind, parse
from bot.evidence.models import (
    Finding,
    LoadTest,
    Parsed,
    Sbom,
    ScanReport,
    Severity,
    Signature,
    TestReport,
)
from bot.evidence.signature import verify_signature

__all__ = [
    "MAX_BYTES",
    "EvidenceError",
    "Finding",
    "Kind",
    "LoadTest",
    "Parsed",
    "Sbom",
    "ScanReport",
    "Severity",
    "Signature",
    "TestReport",
    "guess_kind",
    "parse",
    "verify_signature",
]
