"""Evidence a team's CI uploads (``release-bot evidence add``, ``POST /evidence``): each file
read by its format's parser and refused whole on any mistake, signatures verified against the
service's key, SBOMs and signatures bound to the artifact digest, then stored once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot import evidence as formats
from bot.domain.evidence import DIGEST_PREFIX, EvidenceFile, Kind, is_pem_text
from bot.domain.release import CommandRejected
from bot.evidence import EvidenceError
from bot.service.services import Services


def add_evidence(
    services: Services,
    service: str,
    version: str,
    files: list[tuple[str, bytes]],
    uploaded_by: str,
    kind: Kind | None = None,
    digest: str | None = None,
) -> list[EvidenceFile]:
    """Read, check and store ``files`` (name, content): every one, or none of them. Raises
    CommandRejected for a service the config does not know, EvidenceError (one line: the
    file, the field at fault, the fix) for a file."""
    with services.store.unit_of_work():
        return [
            _add(services, service, version, name, data, uploaded_by, kind, digest)
            for name, data in files
        ]


def _add(
    services: Services,
    service: str,
    version: str,
    name: str,
    data: bytes,
    uploaded_by: str,
    kind: Kind | None,
    digest: str | None,
) -> EvidenceFile:
    if not services.config.knows(service):
        raise CommandRejected(services.config.refusal(service) or f"{service} is unknown")
    if digest is not None and not _is_digest(digest):
        raise EvidenceError(f"{name}: --digest {digest!r} is not sha256:<64 hex digits>")
    found, parsed = formats.parse(data, name, kind)
    summary: dict[str, object]
    if isinstance(parsed, formats.Signature):
        summary = _verified(services, service, name, parsed, digest)
    else:
        summary = parsed.model_dump(mode="json")
    if isinstance(parsed, formats.Sbom):
        digest = _bound_sbom(name, digest, list(parsed.subject_digests))
    file = EvidenceFile(
        service=service,
        version=version,
        kind=found,
        name=Path(name).name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        uploaded_by=uploaded_by,
        uploaded_at=services.clock.now(),
        digest=digest,
        summary=summary,
    )
    return services.evidence.add(file, data)


def list_evidence(services: Services, service: str, version: str) -> list[EvidenceFile]:
    return services.evidence.files(service, version)


def _is_digest(text: str) -> bool:
    hexpart = text.removeprefix(DIGEST_PREFIX)
    return (
        text.startswith(DIGEST_PREFIX)
        and len(hexpart) == 64
        and all(c in "0123456789abcdef" for c in hexpart)
    )


def _verified(
    services: Services, service: str, name: str, signature: formats.Signature, digest: str | None
) -> dict[str, object]:
    """A signature is kept only when it verifies, over the digest text, against the
    service's ``signing_key``: an unverified one would be a gate that cannot fail."""
    if digest is None:
        raise EvidenceError(
            f"{name}: a signature covers an artifact digest: add --digest sha256:<hex> "
            "(the digest the signature was made over)"
        )
    key = services.config.for_service(service).signing_key
    if key is None:
        raise EvidenceError(
            f"{name}: {service} has no signing_key in {services.config.source}: add its PEM public "
            "key (or a path to it) so signatures can be verified"
        )
    try:
        pem = key.encode() if is_pem_text(key) else Path(key).read_bytes()
    except OSError as exc:
        raise EvidenceError(
            f"{name}: {service}'s signing_key {key} cannot be read ({exc.strerror}); give the "
            "PEM file's path (from where release-bot runs) or the PEM text"
        ) from None
    # Over the digest's text, or over the artifact file itself (cosign sign-blob FILE).
    file_digest = bytes.fromhex(digest.removeprefix(DIGEST_PREFIX))
    if not formats.verify_signature(signature, digest.encode(), pem, sha256=file_digest):
        raise EvidenceError(
            f"{name}: the signature does not verify over {digest} (or the file it is the "
            f"digest of) with {service}'s signing_key; sign it with the matching private key "
            "(cosign sign-blob --key)"
        )
    return {"verified": True, "over": digest}


def _bound_sbom(name: str, digest: str | None, stated: list[str]) -> str | None:
    """The digest an SBOM is bound to: the one given, which the SBOM must not contradict, or
    the one it states for its subject."""
    stated = [d if d.startswith(DIGEST_PREFIX) else DIGEST_PREFIX + d for d in stated]
    if digest is not None and stated and digest not in stated:
        raise EvidenceError(
            f"{name}: the SBOM describes {', '.join(stated)}, not {digest}; upload the SBOM "
            "made for this artifact"
        )
    if digest is None and len(stated) == 1:
        return stated[0]
    return digest
