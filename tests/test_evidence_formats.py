"""The evidence parsers on real files: a JUnit XML from a real pytest run, SARIF from a real
ruff run, a CycloneDX SBOM from the real cyclonedx-py generator, signatures made here with
fresh keys (and by openssl, as cosign's format is), a summary written by a real k6 and a
report written by a real Trivy (``tests/data/evidence/README.md`` says how), and bad input of
every kind."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.evidence as evidence
from bot.evidence import EvidenceError

DATA = Path(__file__).parent / "data" / "evidence"

PYTEST_MODULE = """
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("the fixture breaks: an error, not a failure")


def test_one():
    assert 1 + 1 == 2


def test_two():
    assert "a" in "abc"


def test_fails():
    assert 1 == 2


def test_errors(broken):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""

LINTED_MODULE = "import os\nimport sys\n\n\ndef f(x):\n    return x == None\n"


@dataclass(frozen=True)
class RealFiles:
    junit: Path
    sarif: Path
    cyclonedx: Path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealFiles:
    """The files real tools write, made once for the module."""
    work = tmp_path_factory.mktemp("real")
    (work / "test_sample.py").write_text(PYTEST_MODULE)
    tests = run(
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_sample.py",
        "--junitxml=report.xml", cwd=work,
    )  # fmt: skip
    assert tests.returncode == 1, tests.stdout + tests.stderr  # 1: some tests failed

    (work / "bad.py").write_text(LINTED_MODULE)
    lint = run(
        sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F401,E711",
        "--output-format", "sarif", "--output-file", "ruff.sarif", "bad.py", cwd=work,
    )  # fmt: skip
    assert lint.returncode == 1, lint.stderr  # 1: violations found

    # --no-validate: the generator's own schema check takes ~10 s; the parser checks here.
    sbom = run(
        sys.executable, "-m", "cyclonedx_py", "environment", "--no-validate", "--of", "JSON",
        "-o", "sbom.cdx.json", sys.executable, cwd=work,
    )  # fmt: skip
    assert sbom.returncode == 0, sbom.stderr
    return RealFiles(work / "report.xml", work / "ruff.sarif", work / "sbom.cdx.json")


# JUnit


def test_a_real_pytest_report_gives_its_counts(real: RealFiles) -> None:
    kind, report = evidence.parse(real.junit.read_bytes(), "report.xml")

    assert kind == "junit"
    assert report == evidence.TestReport(tests=5, failures=1, errors=1, skipped=1, suites=1)
    assert isinstance(report, evidence.TestReport) and report.passed == 2


def test_junit_counts_the_test_cases_when_a_suite_has_no_counts(real: RealFiles) -> None:
    # Jest and some Maven plugins leave the attributes out: count <testcase> children.
    stripped = re.sub(rb' (tests|failures|errors|skipped)="\d+"', b"", real.junit.read_bytes())
    assert b' tests="' not in stripped

    _, report = evidence.parse(stripped, "report.xml", "junit")

    assert report == evidence.TestReport(tests=5, failures=1, errors=1, skipped=1, suites=1)


def test_junit_sums_the_suites_of_a_testsuites_root() -> None:
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="9" failures="1">
  <testsuite name="api" tests="4" failures="1" errors="0" skipped="0"/>
  <testsuite name="web" tests="5" failures="0" errors="0" skipped="2">
    <testsuite name="web.forms" tests="2" failures="0" errors="0" skipped="0"/>
  </testsuite>
</testsuites>"""

    _, report = evidence.parse(xml, "maven.xml")

    # The nested suite's tests are already in its parent's count.
    assert report == evidence.TestReport(tests=9, failures=1, errors=0, skipped=2, suites=3)


# SARIF


def test_a_real_ruff_sarif_gives_one_finding_per_violation(real: RealFiles) -> None:
    kind, report = evidence.parse(real.sarif.read_bytes(), "ruff.sarif")

    assert kind == "sarif"
    assert isinstance(report, evidence.ScanReport) and report.tool == "ruff"
    found = sorted((f.rule, f.severity, f.where.rsplit("/", 1)[-1]) for f in report.findings)
    # ruff reports every violation at level "error".
    assert found == [
        ("E711", "high", "bad.py:6"),
        ("F401", "high", "bad.py:1"),
        ("F401", "high", "bad.py:2"),
    ]
    assert report.counts() == {"critical": 0, "high": 3, "medium": 0, "low": 0, "none": 0}


def sarif(results: list[dict[str, object]], rules: list[dict[str, object]]) -> bytes:
    run = {"tool": {"driver": {"name": "codeql", "rules": rules}}, "results": results}
    return json.dumps({"version": "2.1.0", "runs": [run]}).encode()


def test_security_severity_outranks_the_level() -> None:
    rules: list[dict[str, object]] = [
        {"id": "sql-injection", "properties": {"security-severity": "9.8"}},
        {"id": "weak-hash", "properties": {"security-severity": "7.5"}},
        {"id": "open-redirect", "properties": {"security-severity": 6.1}},
        {"id": "info-leak", "properties": {"security-severity": "2.0"}},
        {"id": "style", "defaultConfiguration": {"level": "note"}},
        {"id": "unscored", "properties": {"security-severity": "0.0"}},
    ]
    results: list[dict[str, object]] = [
        {"ruleId": "sql-injection", "level": "warning"},
        {"ruleId": "weak-hash", "level": "note"},
        {"ruleId": "open-redirect", "level": "error"},
        {"ruleId": "info-leak", "level": "error"},
        {"ruleId": "style"},  # no level: the rule's default
        {"ruleId": "unscored", "level": "error"},
        {"ruleIndex": 1, "level": "none", "properties": {"security-severity": "9.0"}},
        {"ruleId": "plain-error", "level": "error"},
        {"ruleId": "plain-warning"},  # SARIF's default level is warning
        {"ruleId": "sql-injection", "kind": "pass", "level": "none"},  # a pass: no finding
        {
            "ruleId": "weak-hash",
            "level": "error",
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "src/auth.py"},
                        "region": {"startLine": 42},
                    }
                }
            ],
        },
    ]

    _, report = evidence.parse(sarif(results, rules), "codeql.sarif")

    assert isinstance(report, evidence.ScanReport)
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("sql-injection", "critical"),
        ("weak-hash", "high"),
        ("open-redirect", "medium"),
        ("info-leak", "low"),
        ("style", "low"),
        ("unscored", "none"),
        ("weak-hash", "critical"),  # the result's own score wins over its rule's
        ("plain-error", "high"),
        ("plain-warning", "medium"),
        ("weak-hash", "high"),
    ]
    assert report.findings[-1].where == "src/auth.py:42"
    assert report.counts() == {"critical": 2, "high": 3, "medium": 2, "low": 2, "none": 1}


# SBOMs


def test_a_real_cyclonedx_sbom_counts_its_components(real: RealFiles) -> None:
    data = real.cyclonedx.read_bytes()
    document = json.loads(data)

    kind, sbom = evidence.parse(data, "sbom.cdx.json")

    assert kind == "cyclonedx"
    assert isinstance(sbom, evidence.Sbom)
    assert sbom.components == len(document["components"]) > 0
    assert not any("components" in c for c in document["components"])  # flat, as counted
    assert sbom.spec_version == document["specVersion"]
    assert sbom.subject_digests == []  # an environment has no artifact digest


def test_cyclonedx_states_its_subject_digest_and_counts_nested_components(
    real: RealFiles,
) -> None:
    document = json.loads(real.cyclonedx.read_bytes())
    digest = "AB" * 32
    document["metadata"]["component"] = {
        "type": "container",
        "name": "checkout",
        "hashes": [{"alg": "SHA-1", "content": "0" * 40}, {"alg": "SHA-256", "content": digest}],
    }
    document["components"][0]["components"] = [{"type": "library", "name": "vendored"}]

    _, sbom = evidence.parse(json.dumps(document).encode(), "sbom.cdx.json", "cyclonedx")

    assert isinstance(sbom, evidence.Sbom)
    assert sbom.subject_digests == ["ab" * 32]
    assert sbom.components == len(document["components"]) + 1


SPDX = {
    "spdxVersion": "SPDX-2.3",
    "dataLicense": "CC0-1.0",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": "checkout-2.4.1",
    "documentNamespace": "https://example.com/spdx/checkout-2.4.1",
    "creationInfo": {"created": "2026-11-30T09:00:00Z", "creators": ["Tool: syft-1.18.0"]},
    "packages": [
        {
            "SPDXID": "SPDXRef-image",
            "name": "checkout",
            "downloadLocation": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": "cd" * 32}],
        },
        {"SPDXID": "SPDXRef-flask", "name": "flask", "versionInfo": "3.0.3"},
        {"SPDXID": "SPDXRef-requests", "name": "requests", "versionInfo": "2.32.3"},
    ],
    "relationships": [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-image",
        },
        {
            "spdxElementId": "SPDXRef-image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-flask",
        },
    ],
}


def test_spdx_counts_the_packages_besides_the_one_it_describes() -> None:
    kind, sbom = evidence.parse(json.dumps(SPDX).encode(), "sbom.spdx.json")

    assert kind == "spdx"
    assert sbom == evidence.Sbom(
        format="spdx", spec_version="2.3", components=2, subject_digests=["cd" * 32]
    )


# Signatures


def cosign_file(signature: bytes) -> bytes:
    """What ``cosign sign-blob --key`` prints: base64 of the DER signature, one line."""
    return base64.b64encode(signature)


def pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


DIGEST = b"sha256:" + b"9a4f6c2e" * 8


def test_an_ecdsa_p256_signature_verifies_against_its_key_only() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    data = cosign_file(key.sign(DIGEST, ec.ECDSA(hashes.SHA256())))

    kind, signature = evidence.parse(data, "image.sig")

    assert kind == "signature" and isinstance(signature, evidence.Signature)
    assert evidence.verify_signature(signature, DIGEST, pem(key)) is True
    assert evidence.verify_signature(signature, DIGEST.replace(b"9", b"8"), pem(key)) is False
    assert evidence.verify_signature(signature, DIGEST, pem(other)) is False


def test_an_ed25519_signature_verifies_against_its_key_only() -> None:
    key, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    data = cosign_file(key.sign(DIGEST)) + b"\n"

    kind, signature = evidence.parse(data, "image.sig")

    assert kind == "signature" and isinstance(signature, evidence.Signature)
    assert evidence.verify_signature(signature, DIGEST, pem(key)) is True
    assert evidence.verify_signature(signature, DIGEST + b"0", pem(key)) is False
    assert evidence.verify_signature(signature, DIGEST, pem(other)) is False
    # An ECDSA key with an Ed25519 signature: a bad signature, not a crash.
    assert (
        evidence.verify_signature(signature, DIGEST, pem(ec.generate_private_key(ec.SECP256R1())))
        is False
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_a_signature_openssl_makes_verifies(tmp_path: Path) -> None:
    # cosign's key-based signature is the one `openssl dgst -sha256 -sign` writes.
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "cosign.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "blob").write_bytes(DIGEST)
    signed = run(
        "openssl", "dgst", "-sha256", "-sign", "cosign.key", "-out", "blob.der", "blob",
        cwd=tmp_path,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr

    _, signature = evidence.parse(cosign_file((tmp_path / "blob.der").read_bytes()), "blob.sig")

    assert isinstance(signature, evidence.Signature)
    assert evidence.verify_signature(signature, DIGEST, pem(key)) is True


def test_a_key_it_cannot_use_is_an_error_not_a_bad_signature() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = evidence.Signature(der=key.sign(DIGEST, ec.ECDSA(hashes.SHA256())))
    keys = {
        b"not a key": "not a PEM public key",
        pem(ec.generate_private_key(ec.SECP384R1())): "ECDSA secp384r1",
        pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)): "RSA",
    }
    for public_key, problem in keys.items():
        with pytest.raises(EvidenceError) as raised:
            evidence.verify_signature(signature, DIGEST, public_key)
        assert problem in str(raised.value) and str(raised.value).startswith("public key: ")


def test_a_signature_summary_round_trips_through_json() -> None:
    signature = evidence.Signature(der=bytes(range(256)))  # binary, not UTF-8

    dumped = signature.model_dump(mode="json")

    assert dumped == {"der": base64.b64encode(bytes(range(256))).decode()}
    assert evidence.Signature.model_validate_json(json.dumps(dumped)) == signature
    assert evidence.Signature.model_validate(dumped) == signature


# k6 and Trivy: committed files, written by the real tools (tests/data/evidence/README.md)


def test_a_real_k6_summary_export_gives_its_figures() -> None:
    # k6 run --summary-export's format: each metric's figures at the top of its object.
    data = (DATA / "k6-summary.json").read_bytes()

    kind, load = evidence.parse(data, "k6-summary.json")

    metrics = json.loads(data)["metrics"]
    assert kind == "k6"
    assert load == evidence.LoadTest(
        requests=40,
        error_rate=0.075,
        p95_ms=metrics["http_req_duration"]["p(95)"],
        avg_ms=metrics["http_req_duration"]["avg"],
    )


def test_the_handle_summary_shape_reads_the_same() -> None:
    # handleSummary's data (and newer k6): figures under "values", the failure rate as "rate".
    metrics = json.loads((DATA / "k6-summary.json").read_bytes())["metrics"]
    failed = metrics["http_req_failed"]
    shaped = {
        "metrics": {
            "http_reqs": {"type": "counter", "values": metrics["http_reqs"]},
            "http_req_duration": {"type": "trend", "values": metrics["http_req_duration"]},
            "http_req_failed": {
                "type": "rate",
                "values": {"rate": failed["value"], "passes": 3, "fails": 37},
            },
        }
    }

    _, load = evidence.parse(json.dumps(shaped).encode(), "summary.json")
    _, export = evidence.parse((DATA / "k6-summary.json").read_bytes(), "k6-summary.json")

    assert load == export


def test_a_real_trivy_report_gives_failed_checks_and_secrets() -> None:
    kind, report = evidence.parse((DATA / "trivy-fs.json").read_bytes(), "trivy-fs.json")

    assert kind == "trivy"
    assert report == evidence.ScanReport(
        tool="trivy",
        findings=[
            evidence.Finding(rule="DS-0002", severity="high", where="Dockerfile"),
            evidence.Finding(rule="DS-0005", severity="low", where="Dockerfile:2"),
            evidence.Finding(rule="DS-0026", severity="low", where="Dockerfile"),
            evidence.Finding(rule="github-pat", severity="critical", where="app.py:2"),
        ],
    )


def test_a_trivy_image_report_gives_one_finding_per_vulnerability() -> None:
    # trivy image --format json's documented schema 2, written by hand (no vulnerability
    # database can be downloaded here).
    kind, report = evidence.parse((DATA / "trivy-image.json").read_bytes(), "scan.json")

    assert kind == "trivy" and isinstance(report, evidence.ScanReport)
    assert [(f.rule, f.severity, f.where) for f in report.findings] == [
        ("CVE-2023-45853", "critical", "zlib1g@1:1.2.13.dfsg-1"),
        ("CVE-2024-2511", "low", "libssl3@3.0.11-1~deb12u2"),
        ("TEMP-0841856-B18BAF", "low", "bash@5.2.15-2+b2"),  # UNKNOWN counts as low
        ("CVE-2024-6345", "high", "setuptools@65.5.1"),
        ("CVE-2023-5752", "medium", "pip@23.0.1"),
    ]


def test_a_trivy_report_without_results_has_no_findings() -> None:
    clean = {
        "SchemaVersion": 2,
        "ArtifactName": "checkout:2.4.1",
        "ArtifactType": "container_image",
    }

    assert evidence.parse(json.dumps(clean).encode(), "scan.json") == (
        "trivy",
        evidence.ScanReport(tool="trivy", findings=[]),
    )


# Guessing the kind


def test_the_kind_of_each_real_file_is_told_from_its_content(real: RealFiles) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    # Names that say nothing: the content decides.
    files = {
        real.junit: "junit",
        real.sarif: "sarif",
        real.cyclonedx: "cyclonedx",
        DATA / "k6-summary.json": "k6",
        DATA / "trivy-fs.json": "trivy",
        DATA / "trivy-image.json": "trivy",
    }
    for path, kind in files.items():
        assert evidence.guess_kind("upload", path.read_bytes()) == kind, path.name
    assert evidence.guess_kind("upload", json.dumps(SPDX).encode()) == "spdx"
    assert evidence.guess_kind("upload", cosign_file(key.sign(DIGEST))) == "signature"


def test_a_file_of_no_known_kind_names_the_kinds() -> None:
    with pytest.raises(EvidenceError) as raised:
        evidence.guess_kind("notes.json", b'{"hello": "world"}')

    assert str(raised.value) == (
        "notes.json: cannot tell its kind from the content (JSON with keys hello); "
        "give --kind, one of junit, sarif, trivy, cyclonedx, spdx, k6, signature"
    )


# Bad input: one line naming the file, the place and the fix; nothing else escapes


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuite tests="1"><testcase name="&lol3;"/></testsuite>"""


def bad_inputs(real: RealFiles) -> list[tuple[str, bytes, evidence.Kind | None, str]]:
    """(name, content, kind given, what the one line says)."""
    junit, sarif_data = real.junit.read_bytes(), real.sarif.read_bytes()
    sbom = real.cyclonedx.read_bytes()
    k6 = (DATA / "k6-summary.json").read_bytes()
    trivy = json.loads((DATA / "trivy-image.json").read_bytes())
    trivy["Results"][0]["Vulnerabilities"][1]["Severity"] = "SEVERE"
    no_p95 = json.loads(k6)
    del no_p95["metrics"]["http_req_duration"]["p(95)"]
    bad_level = json.loads(sarif_data)
    bad_level["runs"][0]["results"][2]["level"] = "fatal"
    nameless = json.loads(sbom)
    del nameless["components"][3]["name"]
    bad_checksum = json.loads(json.dumps(SPDX))
    bad_checksum["packages"][0]["checksums"][0]["checksumValue"] = "abc"
    return [
        # truncated
        ("report.xml", junit[: len(junit) // 2], None, "the XML ends early (cut short?)"),
        ("ruff.sarif", sarif_data[: len(sarif_data) // 2], "sarif", "the JSON ends early"),
        ("sbom.json", sbom[:-2], None, "the JSON ends early (cut short?)"),
        ("k6.json", k6[:100], "k6", "the JSON ends early"),
        # wrong schema
        ("scan.sarif", json.dumps(bad_level).encode(), None,
         "scan.sarif: runs[0].results[2].level: 'fatal' is not one of error, warning, note, none; "
         "upload the SARIF 2.1.0"),
        ("scan.json", json.dumps(trivy).encode(), None,
         "scan.json: Results[0].Vulnerabilities[1].Severity: 'SEVERE' is not one of CRITICAL"),
        ("k6.json", json.dumps(no_p95).encode(), None,
         "k6.json: metrics.http_req_duration.p(95): missing; upload the summary k6 wrote"),
        ("sbom.json", json.dumps(nameless).encode(), None, "components[3].name: missing"),
        ("sbom.spdx.json", json.dumps(bad_checksum).encode(), None,
         "packages[0].checksums[0].checksumValue: 'abc' is not a sha256"),
        ("scan.sarif", b'{"version": "2.1.0", "runs": {}}', "sarif",
         "scan.sarif: runs: expected a list, found an object"),
        ("scan.sarif", b'{"version": "2.2", "runs": []}', "sarif",
         "version: '2.2': only SARIF 2.1.0 is read"),
        ("report.xml", b'<testsuite tests="two"/>', None,
         "report.xml: line 1: <testsuite tests='two'> is not a whole number"),
        ("report.xml", b'<testsuite tests="1" failures="2"/>', None,
         "counts 2 failures, 0 errors and 0 skipped of only 1 tests"),
        ("report.xml", b"<html><body/></html>", "junit",
         "the root element is <html>, not <testsuites> or <testsuite>"),
        # a file of one kind given as another
        ("scan.sarif", sbom, "sarif",
         "scan.sarif: this is a CycloneDX SBOM, not a SARIF scan; give --kind cyclonedx"),
        ("report.xml", k6, "junit", "this is a k6 summary, not a JUnit XML test report"),
        ("image.sig", junit, "signature", "this is a JUnit XML test report, not a signature"),
        ("k6.json", b'{"metrics": {}}', "k6", "k6.json: metrics.http_req_failed: missing"),
        # empty
        ("report.xml", b"", None, "report.xml: the file is empty;"),
        ("k6.json", b" \n\t", "k6", "k6.json: the file is empty; upload the summary k6 wrote"),
        # not UTF-8
        ("report.xml", b'<testsuite tests="1">\n<testcase name="caf\xe9"/></testsuite>', None,
         "report.xml: line 2, column 20: byte 0xe9 is not UTF-8"),
        # entities that expand without bound
        ("report.xml", BILLION_LAUGHS, None, "a DOCTYPE or ENTITY declaration is not accepted"),
        # signatures
        ("image.sig", b"not a signature!", "signature",
         "image.sig: not base64: '!' at character 16; upload the base64 signature"),
        ("image.sig", base64.b64encode(b"x" * 10), "signature",
         "10 bytes that are neither an ECDSA DER signature nor a 64-byte Ed25519 one"),
        ("cosign.pub", pem(ed25519.Ed25519PrivateKey.generate()), None,
         "cannot tell its kind from the content (a PEM block, not a signature)"),
        ("cosign.pub", pem(ed25519.Ed25519PrivateKey.generate()), "signature",
         "this is a PEM block (a key or certificate?), not a signature"),
    ]  # fmt: skip


def test_bad_input_of_every_kind_is_refused_in_one_line(real: RealFiles) -> None:
    for name, data, kind, expected in bad_inputs(real):
        with pytest.raises(EvidenceError) as raised:
            evidence.parse(data, name, kind)
        message = str(raised.value)
        assert expected in message, message
        assert message.startswith(f"{name}: ") and "\n" not in message, message
        assert "; " in message, message  # and a fix


def test_a_file_over_50_mib_is_refused_before_it_is_read() -> None:
    # Valid JSON, to be sure the size alone refuses it.
    data = b"[" + b" " * (evidence.MAX_BYTES - 1) + b"]"
    assert len(data) == evidence.MAX_BYTES + 1

    for call in (
        lambda: evidence.parse(data, "huge.json"),
        lambda: evidence.guess_kind("huge.json", data),
    ):
        with pytest.raises(EvidenceError) as raised:
            call()
        assert str(raised.value).startswith(
            f"huge.json: {evidence.MAX_BYTES + 1} bytes is over the 50 MiB limit; "
        )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=600), st.sampled_from([None, "junit", "sarif", "k6", "signature"]))
def test_any_bytes_are_read_or_refused_in_one_line(data: bytes, kind: evidence.Kind | None) -> None:
    try:
        evidence.parse(data, "upload", kind)
    except EvidenceError as error:
        assert str(error).startswith("upload: ") and "\n" not in str(error)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["k6-summary.json", "trivy-fs.json", "trivy-image.json"]), st.data())
def test_a_real_file_cut_anywhere_is_refused_in_one_line(name: str, draw: st.DataObject) -> None:
    data = (DATA / name).read_bytes()
    cut = draw.draw(st.integers(min_value=0, max_value=len(data.rstrip()) - 1))

    with pytest.raises(EvidenceError) as raised:
        evidence.parse(data[:cut], name)

    assert str(raised.value).startswith(f"{name}: ") and "\n" not in str(raised.value)
