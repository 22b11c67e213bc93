"""The one error every parser raises: one line naming the file, the place and the fix."""

from __future__ import annotations

from bot.domain.evidence import Kind

# What to upload instead, per kind: the tool that writes a good file.
HOW: dict[Kind, str] = {
    "junit": "upload the XML your test runner wrote (pytest --junitxml=report.xml)",
    "sarif": "upload the SARIF 2.1.0 your scanner wrote (ruff check --output-format sarif)",
    "trivy": "upload the JSON trivy wrote (trivy image --format json --output scan.json)",
    "cyclonedx": "upload the CycloneDX JSON your generator wrote (cyclonedx-py environment)",
    "spdx": "upload the SPDX JSON your generator wrote (syft -o spdx-json)",
    "k6": "upload the summary k6 wrote (k6 run --summary-export k6-summary.json)",
    "signature": "upload the base64 signature cosign wrote (cosign sign-blob --key cosign.key)",
}
ANY = (
    "upload a JUnit XML, SARIF, Trivy JSON, CycloneDX or SPDX JSON, k6 summary or cosign "
    "signature, or give --kind"
)


class EvidenceError(ValueError):
    """One line: the file, the line or field at fault, and the fix."""

    def __init__(self, message: str) -> None:
        # One line whatever a file's content put into it: it goes to a chat and a log.
        super().__init__(" ".join(message.split()))


def refused(name: str, problem: str, fix: str, where: str = "") -> EvidenceError:
    """``NAME: WHERE: PROBLEM; FIX``, the shape of every parser's error."""
    place = f"{where}: " if where else ""
    return EvidenceError(f"{name}: {place}{problem}; {fix}")


def shown(value: object, limit: int = 40) -> str:
    """A value quoted for a message, cut short: a file's content can be anything."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
