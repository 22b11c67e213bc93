"""Which kind of evidence a file is, told from its content (the root element, the JSON keys),
and the one entry point that reads any of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

from bot.domain.evidence import Kind
from bot.evidence import junit, k6, sarif, sbom, signature, trivy
from bot.evidence.errors import ANY, HOW, EvidenceError, refused
from bot.evidence.models import Parsed
from bot.evidence.reading import XmlDoc, load_json, load_xml, local, text

MAX_BYTES = 50 * 1024 * 1024
KINDS: tuple[Kind, ...] = get_args(Kind)
LABELS: dict[Kind, str] = {
    "junit": "a JUnit XML test report",
    "sarif": "a SARIF scan",
    "trivy": "a Trivy JSON scan",
    "cyclonedx": "a CycloneDX SBOM",
    "spdx": "an SPDX SBOM",
    "k6": "a k6 summary",
    "signature": "a signature",
}
Content = XmlDoc | str | object  # parsed XML, a signature's text, or a JSON document


def guess_kind(name: str, data: bytes) -> Kind:
    """The kind ``data`` is, from its content; an EvidenceError naming the kinds when the
    content is none of them (or is malformed)."""
    _check_size(name, data)
    content = _load(name, data, None)
    kind = _guess(content)
    if kind is None:
        raise _unknown(name, content)
    return kind


def parse(data: bytes, name: str, kind: Kind | None = None) -> tuple[Kind, Parsed]:
    """Read one uploaded file: its kind (guessed when not given) and what it says. Every
    problem is an EvidenceError of one line; nothing else escapes."""
    _check_size(name, data)
    content = _load(name, data, kind)
    found = _guess(content)
    if kind is None:
        if found is None:
            raise _unknown(name, content)
        kind = found
    elif found is not None and found != kind:
        raise refused(
            name,
            f"this is {LABELS[found]}, not {LABELS[kind]}",
            f"give --kind {found}, or leave --kind out",
        )
    return kind, _READERS[kind](content, name)


def _check_size(name: str, data: bytes) -> None:
    if len(data) > MAX_BYTES:
        raise refused(
            name,
            f"{len(data)} bytes is over the {MAX_BYTES // (1024 * 1024)} MiB limit",
            "upload the report alone (not an archive or a log), or split a larger scan",
        )


def _load(name: str, data: bytes, kind: Kind | None) -> Content:
    fix = HOW[kind] if kind else ANY
    content = text(data, name, fix)
    head = content.lstrip()[:1]
    if head == "<":
        return load_xml(content, name, HOW[kind or "junit"])  # JUnit is the only XML kind
    if head in ("{", "["):
        return load_json(content, name, fix)
    return content


def _guess(content: Content) -> Kind | None:
    if isinstance(content, XmlDoc):
        return "junit" if local(content.root.tag) in ("testsuites", "testsuite") else None
    if isinstance(content, str):
        return "signature" if signature.looks_like(content) else None
    if not isinstance(content, dict):
        return None
    if content.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    if "spdxVersion" in content:
        return "spdx"
    if "runs" in content and ("version" in content or "sarif" in str(content.get("$schema"))):
        return "sarif"
    if "SchemaVersion" in content and ("Results" in content or "ArtifactName" in content):
        return "trivy"
    metrics = content.get("metrics")
    if isinstance(metrics, dict) and ("http_reqs" in metrics or "http_req_duration" in metrics):
        return "k6"
    return None


def _unknown(name: str, content: Content) -> EvidenceError:
    if isinstance(content, XmlDoc):
        root = local(content.root.tag)
        seen = f"XML whose root is <{root}>"
        if root == "bom":
            seen += " (CycloneDX XML: write JSON instead, cyclonedx-py --of JSON)"
    elif isinstance(content, str):
        seen = (
            "a PEM block, not a signature"
            if "-----BEGIN" in content
            else "text, no base64 signature"
        )
    elif isinstance(content, dict):
        keys = ", ".join(list(content)[:5])
        seen = f"JSON with keys {keys}" if keys else "an empty JSON object"
    else:
        seen = "JSON that is not an object"
    return refused(
        name,
        f"cannot tell its kind from the content ({seen})",
        f"give --kind, one of {', '.join(KINDS)}",
    )


def _xml(reader: Callable[[XmlDoc, str], Parsed]) -> Callable[[Content, str], Parsed]:
    def read(content: Content, name: str) -> Parsed:
        if not isinstance(content, XmlDoc):
            raise refused(name, "not XML", HOW["junit"], "line 1, column 1")
        return reader(content, name)

    return read


def _json(kind: Kind, reader: Callable[[object, str], Parsed]) -> Callable[[Content, str], Parsed]:
    def read(content: Content, name: str) -> Parsed:
        if isinstance(content, XmlDoc | str):
            raise refused(name, "not JSON", HOW[kind], "line 1, column 1")
        return reader(content, name)

    return read


def _text(content: Content, name: str) -> Parsed:
    if not isinstance(content, str):
        raise refused(name, "not a base64 signature (it is XML or JSON)", HOW["signature"])
    return signature.read(content, name)


_READERS: dict[Kind, Callable[[Content, str], Parsed]] = {
    "junit": _xml(junit.read),
    "sarif": _json("sarif", sarif.read),
    "trivy": _json("trivy", trivy.read),
    "cyclonedx": _json("cyclonedx", sbom.read_cyclonedx),
    "spdx": _json("spdx", sbom.read_spdx),
    "k6": _json("k6", k6.read),
    "signature": _text,
}
