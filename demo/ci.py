"""The live demo's CI: it builds the shop service's artifact and makes real evidence of it,
as a team's pipeline would, then uploads it through ``bot.service.evidence``:

- the artifact: a tarball of ``demo/service.py`` stamped with the version (its sha256 is
  the digest the release is judged on);
- a JUnit report from a real pytest run of ``demo/checks``;
- a SARIF scan from a real ``ruff check`` of the service;
- a CycloneDX SBOM from the real ``cyclonedx-py environment``, bound to the digest;
- a signature over the digest, with a key made for the run (its public half is the
  service's ``signing_key``).

No load test: k6 is not here, so the benchmark gate warns and a person approves.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import tarfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bot.domain.evidence import digest_of
from bot.service import Services
from bot.service.evidence import add_evidence

ROOT = Path(__file__).resolve().parent.parent


def signing_key(workdir: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """A fresh ECDSA P-256 key; its public half written where the config points."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = workdir / "shop-cosign.pub"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def sign(private: ec.EllipticCurvePrivateKey, digest: str) -> bytes:
    """What ``cosign sign-blob --key`` writes for the digest's text: base64 of the DER
    ECDSA P-256/SHA-256 signature, one line."""
    return base64.b64encode(private.sign(digest.encode(), ec.ECDSA(hashes.SHA256()))) + b"\n"


def artifact(version: str) -> bytes:
    """The service's source, stamped with the version, as a deterministic tarball."""
    source = (ROOT / "demo" / "service.py").read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("service.py", source), ("VERSION", version.encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, capture_output=True, timeout=300)


def build_and_upload(
    services: Services,
    service: str,
    version: str,
    workdir: Path,
    private: ec.EllipticCurvePrivateKey,
) -> str:
    """Make the evidence of ``version`` and upload it as the CI job would; the digest."""
    digest = digest_of(artifact(version))
    report = workdir / f"report-{version}.xml"
    tests = _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 f"--junitxml={report}", "demo/checks", cwd=ROOT)  # fmt: skip
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report: {tests.stderr.decode()[-300:]}")
    scan = _run(sys.executable, "-m", "ruff", "check", "--isolated", "--output-format",
                "sarif", "demo/service.py", cwd=ROOT)  # fmt: skip
    sbom = _run(sys.executable, "-m", "cyclonedx_py", "environment", "--no-validate",
                sys.executable, cwd=ROOT)  # fmt: skip
    if sbom.returncode != 0:
        raise RuntimeError(f"cyclonedx-py failed: {sbom.stderr.decode()[-300:]}")
    job = f"demo-ci/{version}"
    add_evidence(
        services, service, version,
        [("report.xml", report.read_bytes()), ("ruff.sarif", scan.stdout)], job,
    )  # fmt: skip
    add_evidence(
        services, service, version,
        [("sbom.cdx.json", sbom.stdout), ("image.sig", sign(private, digest))], job,
        digest=digest,
    )  # fmt: skip
    return digest
