"""Evidence in: `release-bot evidence add/list`, the service function, and `POST /evidence`
on serve; then a release of a service off the simulated CI that passes its gates on real
files (a real pytest report, a real ruff SARIF, a signature made with a fresh key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bot.adapters.terminal import TerminalChat
from bot.bootstrap import Wiring, bootstrap
from bot.config import DEFAULT_CONFIG, ConfigError
from bot.domain.release import CommandRejected, Release
from bot.evidence import MAX_BYTES, EvidenceError
from bot.serve.evidence import EvidenceUploads
from bot.service import start_release
from bot.service.evidence import add_evidence, list_evidence
from demo.ci import sign, signing_key
from tests.conftest import cli
from tests.fake_slack import FakeSlack
from tests.slack_app_harness import RunningApp

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
PASSING = "def test_one():\n    assert True\n\n\ndef test_two():\n    assert 1 + 1 == 2\n"
CLEAN = "def f(x: int) -> int:\n    return x + 1\n"
K6 = {
    "metrics": {
        "http_req_duration": {"avg": 80.0, "p(95)": 120.0, "med": 70.0},
        "http_req_failed": {"value": 0.0, "passes": 0, "fails": 4000},
        "http_reqs": {"count": 4000, "rate": 66.6},
    }
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real pytest JUnit report and a real ruff SARIF scan, both clean."""
    tmp = tmp_path_factory.mktemp("ci")
    (tmp / "test_ok.py").write_text(PASSING)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=report.xml",
         "test_ok.py"],
        cwd=tmp, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    (tmp / "ok.py").write_text(CLEAN)
    sarif = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--output-format", "sarif", "ok.py"],
        cwd=tmp, capture_output=True, timeout=120,
    )  # fmt: skip
    return {
        "report.xml": (tmp / "report.xml").read_bytes(),
        "scan.sarif": sarif.stdout,
        "k6-summary.json": json.dumps(K6).encode(),
    }


@pytest.fixture
def key(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    return signing_key(tmp_path)


def shop_config(tmp_path: Path, pem: Path) -> Path:
    config = tmp_path / "services.toml"
    config.write_text(
        DEFAULT_CONFIG.read_text()
        + f"""
[services.shop]
approvers = ["alice"]
environments = ["prod"]
regions = ["us-east-1"]
strategy = "canary"
artifact = "registry.local/shop:{{version}}"
signing_key = "{pem}"
metrics = {{ provider = "simulator" }}
traffic = {{ router = "simulator" }}
"""
    )
    return config


@pytest.fixture
def wiring(tmp_path: Path, key: tuple[ec.EllipticCurvePrivateKey, Path]) -> Iterator[Wiring]:
    wired = bootstrap(
        ":memory:",
        clock_start=NOW,
        chat=TerminalChat(io.StringIO()),
        config_path=shop_config(tmp_path, key[1]),
    )
    yield wired
    wired.close()


def test_a_release_passes_its_gates_on_real_uploaded_evidence(
    wiring: Wiring, files: dict[str, bytes], key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    services, (private, _) = wiring.services, key
    digest = "sha256:" + hashlib.sha256(b"the image").hexdigest()
    add_evidence(services, "shop", "2.0.0", list(files.items()), "ci-job-42")
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "x"}]}
    add_evidence(
        services, "shop", "2.0.0",
        [("sbom.json", json.dumps(sbom).encode()), ("image.sig", sign(private, digest))],
        "ci-job-42", digest=digest,
    )  # fmt: skip
    stored = list_evidence(services, "shop", "2.0.0")
    assert [f.kind for f in stored] == ["junit", "sarif", "k6", "cyclonedx", "signature"]
    assert all(f.uploaded_by == "ci-job-42" for f in stored)
    assert stored[0].sha256 == hashlib.sha256(files["report.xml"]).hexdigest()

    line = f'shop 2.0.0 risk=low ticket=CHG-9 hash={digest} changes="x"'
    release = start_release(services, line, "alice")
    assert isinstance(release, Release)
    checks = {c.check: c for c in release.observed.checks}
    assert checks["staging_tests"].status == "pass"
    assert checks["staging_tests"].details.startswith("2 passed, 0 failed, 0 errored, 0 skipped")
    assert "report.xml sha256:" in checks["staging_tests"].details
    assert checks["security_scan"].status == "pass"
    assert checks["performance_benchmark"].status == "pass"
    assert checks["build_artifacts"].status == "pass", checks["build_artifacts"].details
    assert "signed, SBOM attached" in checks["build_artifacts"].details
    assert "simulated" not in " ".join(c.details for c in checks.values())


def test_a_bad_file_is_refused_and_nothing_of_the_batch_is_stored(
    wiring: Wiring, files: dict[str, bytes]
) -> None:
    services = wiring.services
    truncated = files["report.xml"][: len(files["report.xml"]) // 2]
    with pytest.raises(EvidenceError) as caught:
        add_evidence(
            services, "shop", "2.0.0",
            [("scan.sarif", files["scan.sarif"]), ("report.xml", truncated)], "ci",
        )  # fmt: skip
    assert str(caught.value).startswith("report.xml: ")
    assert "\n" not in str(caught.value)
    assert list_evidence(services, "shop", "2.0.0") == []


def test_a_signature_must_verify_over_the_digest_with_the_services_key(
    wiring: Wiring, key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    services, (private, _) = wiring.services, key
    digest = "sha256:" + "ab" * 32
    with pytest.raises(EvidenceError, match="add --digest sha256:<hex>"):
        add_evidence(services, "shop", "2.0.0", [("image.sig", sign(private, digest))], "ci")
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(EvidenceError, match="does not verify over sha256:abab"):
        add_evidence(
            services, "shop", "2.0.0", [("image.sig", sign(other, digest))], "ci", digest=digest
        )
    with pytest.raises(CommandRejected, match="did you mean shop"):
        add_evidence(services, "shpo", "2.0.0", [("image.sig", b"x")], "ci")
    assert list_evidence(services, "shop", "2.0.0") == []


def test_the_cli_adds_and_lists_and_refuses_in_one_line(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    db = str(tmp_path / "bot.db")
    report = tmp_path / "report.xml"
    report.write_bytes(files["report.xml"])
    added = cli("evidence", "add", "payments-api", "2.4.1", str(report), "--as", "ci", "--db", db)
    assert added.returncode == 0, added.stderr
    assert "stored junit report.xml sha256:" in added.stdout
    listed = cli("evidence", "list", "payments-api", "2.4.1", "--db", db)
    assert "junit     report.xml sha256:" in listed.stdout and "from ci" in listed.stdout
    bad = tmp_path / "scan.sarif"
    bad.write_bytes(b'{"version": "2.1.0", "runs": [{"results": [{"level": "fatal"}]}]}')
    refused = cli("evidence", "add", "payments-api", "2.4.1", str(bad), "--db", db)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {bad}: runs[0].tool: missing; upload the SARIF")
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1


# -- POST /evidence on serve --------------------------------------------------------------

SECRET = "evidence-secret"


def upload(app: RunningApp, query: str, body: bytes, secret: str = SECRET) -> tuple[int, dict]:
    stamp, uploader = str(int(time.time())), "github-actions"
    signed = f"{stamp}.{query}\n{uploader}\n".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{app.server.port}/evidence?{query}",
        data=body,
        method="POST",
        headers={
            "X-Release-Bot-Timestamp": stamp,
            "X-Release-Bot-Signature": f"v1={mac}",
            "X-Release-Bot-Uploader": uploader,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_ci_uploads_over_a_signed_post(tmp_path: Path, files: dict[str, bytes]) -> None:
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path, release_bot_evidence_secret=SECRET).start()
        try:
            status, answer = upload(
                app, "service=shop&version=1.2.0&name=report.xml", files["report.xml"]
            )
            assert status == 201, answer
            assert answer["stored"] == "junit" and "from github-actions" in answer["cites"]
            assert [f.kind for f in list_evidence(app.services, "shop", "1.2.0")] == ["junit"]

            status, answer = upload(app, "service=shop&version=1.2.0&name=r.xml", b"x", "wrong")
            assert status == 401 and "RELEASE_BOT_EVIDENCE_SECRET" in answer["error"]
            status, answer = upload(app, "service=shop&version=1.2.0&name=r.xml", b"<testsuite")
            assert status == 400 and answer["error"].startswith("r.xml: ")
            status, answer = upload(
                app, "service=shpo&version=1.2.0&name=r.xml", files["report.xml"]
            )
            assert status == 404 and "did you mean shop" in answer["error"]
            status, answer = upload(app, "service=shop&name=r.xml", files["report.xml"])
            assert status == 400 and answer["error"] == "missing version in the query string"
            assert len(list_evidence(app.services, "shop", "1.2.0")) == 1
        finally:
            app.stop()


def test_uploads_are_off_without_a_secret(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path).start()
        try:
            status, answer = upload(app, "service=shop&version=1&name=r.xml", b"<x/>")
            assert status == 503 and "set RELEASE_BOT_EVIDENCE_SECRET" in answer["error"]
        finally:
            app.stop()


def test_the_gates_say_what_was_rehearsed_where_and_when(
    wiring: Wiring, files: dict[str, bytes]
) -> None:
    release = start_release(wiring.services, 'shop 2.0.0 risk=low changes="x"', "alice")
    assert isinstance(release, Release)
    plan = next(c for c in release.observed.checks if c.check == "rollback_plan")
    assert plan.details == (
        "previous version 1.0.0 available; rollback of 2.0.0 to 1.0.0 rehearsed through "
        "simulator on shop/prod/us-east-1 at 2026-11-24 14:00:00 UTC; traffic back to the "
        "stable version"
    )


def test_a_dry_run_shows_each_gate_and_the_evidence_it_used(
    tmp_path: Path, files: dict[str, bytes], key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    """Through the real command, on the repository's config plus shop (off the simulated CI)."""
    config = shop_config(tmp_path, key[1])
    db = str(tmp_path / "bot.db")
    report = tmp_path / "report.xml"
    report.write_bytes(files["report.xml"])
    env = {"RELEASE_BOT_CONFIG": str(config)}
    assert cli("evidence", "add", "shop", "2.0.0", str(report), "--db", db, env=env).returncode == 0
    shown = cli("dry-run", 'shop 2.0.0 risk=low changes="x"', "--json", "--db", db, env=env)
    assert shown.returncode == 1  # blocked: no scan, no signed artifact
    checks = {c["check"]: c for c in json.loads(shown.stdout)["checks"]}
    assert checks["staging_tests"]["status"] == "pass"
    assert "report.xml sha256:" in checks["staging_tests"]["details"]
    assert checks["security_scan"]["status"] == "fail"
    assert "release-bot evidence add shop 2.0.0 scan.sarif" in checks["security_scan"]["details"]


def test_a_signing_key_that_is_not_there_stops_start_up(tmp_path: Path) -> None:
    config = shop_config(tmp_path, tmp_path / "missing.pub")
    with pytest.raises(
        ConfigError, match=r"services\.shop\.signing_key: .*missing\.pub is not a file"
    ):
        bootstrap(":memory:", chat=TerminalChat(io.StringIO()), config_path=config)


def test_an_upload_over_50_mib_is_refused_before_it_is_read(wiring: Wiring) -> None:
    class Unread(io.BytesIO):
        def read(self, *args: object) -> bytes:
            raise AssertionError("the body was read")

    uploads = EvidenceUploads(wiring.services, SECRET)
    status, _, body = uploads.handle(
        {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(MAX_BYTES + 1), "wsgi.input": Unread()}
    )
    assert status.startswith("413") and b"files are at most" in body


def test_the_digest_can_be_computed_from_the_artifact_file(
    tmp_path: Path, key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    private, pem = key
    env = {"RELEASE_BOT_CONFIG": str(shop_config(tmp_path, pem))}
    db = str(tmp_path / "bot.db")
    image = tmp_path / "image.tar"
    image.write_bytes(b"the layers of the image")
    digest = "sha256:" + hashlib.sha256(image.read_bytes()).hexdigest()
    sig = tmp_path / "image.sig"
    sig.write_bytes(sign(private, digest))
    args = ("evidence", "add", "shop", "2.0.0", str(sig), "--db", db)
    added = cli(*args, "--artifact", str(image), env=env)
    assert added.returncode == 0, added.stderr
    listed = cli("evidence", "list", "shop", "2.0.0", "--db", db, env=env)
    assert "signature image.sig sha256:" in listed.stdout and f"for {digest}" in listed.stdout
    other = "sha256:" + "00" * 32
    clash = cli(*args, "--artifact", str(image), "--digest", other, env=env)
    assert clash.returncode == 1
    assert (
        clash.stderr
        == f"error: --digest {other} is not {image}'s digest {digest}; give one of them\n"
    )


def test_a_replayed_upload_cannot_be_moved_to_another_version(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    """The signature covers the query and the uploader: the same signed request with another
    version is refused; the same file twice is stored once."""
    with FakeSlack() as fake:
        app = RunningApp(fake, tmp_path, release_bot_evidence_secret=SECRET).start()
        try:
            body = files["scan.sarif"]
            stamp, uploader = str(int(time.time())), "ci"
            signed = f"{stamp}.service=shop&version=1.0.0&name=s.sarif\n{uploader}\n".encode()
            mac = hmac.new(SECRET.encode(), signed + body, hashlib.sha256).hexdigest()
            headers = {
                "X-Release-Bot-Timestamp": stamp,
                "X-Release-Bot-Signature": f"v1={mac}",
                "X-Release-Bot-Uploader": uploader,
            }
            root = f"http://127.0.0.1:{app.server.port}/evidence"

            def send(version: str) -> int:
                url = f"{root}?service=shop&version={version}&name=s.sarif"
                request = urllib.request.Request(url, data=body, method="POST", headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return int(response.status)
                except urllib.error.HTTPError as error:
                    with error:
                        return int(error.code)

            assert send("1.0.0") == 201
            assert send("1.0.0") == 201  # the same upload again: stored once
            assert send("9.9.9") == 401
            assert len(list_evidence(app.services, "shop", "1.0.0")) == 1
            assert list_evidence(app.services, "shop", "9.9.9") == []
        finally:
            app.stop()


def test_a_content_length_that_is_not_a_count_is_refused(wiring: Wiring) -> None:
    uploads = EvidenceUploads(wiring.services, SECRET)
    for declared in ("abc", "-1"):
        status, _, body = uploads.handle(
            {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": declared, "wsgi.input": io.BytesIO()}
        )
        assert status.startswith("400") and b"is not a byte count" in body


def test_a_signature_over_the_artifact_file_verifies_as_cosign_makes_it(
    wiring: Wiring, key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    """`cosign sign-blob --key k image.tar` signs the file: ECDSA over its SHA-256."""
    private, _ = key
    image = b"the layers of the image"
    digest = "sha256:" + hashlib.sha256(image).hexdigest()
    signature = base64.b64encode(private.sign(image, ec.ECDSA(hashes.SHA256()))) + b"\n"
    [stored] = add_evidence(
        wiring.services, "shop", "2.0.0", [("image.sig", signature)], "ci", digest=digest
    )
    assert stored.summary == {"verified": True, "over": digest}


def test_an_sbom_for_another_digest_is_refused(wiring: Wiring) -> None:
    stated = hashlib.sha256(b"another image").hexdigest()
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "metadata": {
            "component": {"name": "shop", "hashes": [{"alg": "SHA-256", "content": stated}]}
        },
        "components": [{"name": "x"}],
    }
    digest = "sha256:" + hashlib.sha256(b"the image").hexdigest()
    with pytest.raises(EvidenceError) as caught:
        add_evidence(
            wiring.services, "shop", "2.0.0", [("sbom.json", json.dumps(sbom).encode())], "ci",
            digest=digest,
        )  # fmt: skip
    assert str(caught.value) == (
        f"sbom.json: the SBOM describes sha256:{stated}, not {digest}; upload the SBOM made "
        "for this artifact"
    )
    [bound] = add_evidence(
        wiring.services, "shop", "2.0.0", [("sbom.json", json.dumps(sbom).encode())], "ci"
    )
    assert bound.digest == f"sha256:{stated}"  # the one it states, when none is given
