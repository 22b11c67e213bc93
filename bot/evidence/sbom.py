"""SBOMs: CycloneDX JSON and SPDX JSON, their component count and the digest of the subject
they describe (to bind them to the artifact)."""

from __future__ import annotations

import re

from bot.evidence.errors import HOW
from bot.evidence.models import Sbom
from bot.evidence.reading import Fields, join

SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def read_cyclonedx(doc: object, name: str) -> Sbom:
    f = Fields(name, HOW["cyclonedx"])
    top = f.obj(doc, "")
    if top.get("bomFormat") != "CycloneDX":
        raise f.fail("bomFormat", f"{top.get('bomFormat')!r}: expected 'CycloneDX'")
    spec = f.string(f.get(top, "specVersion", ""), "specVersion")
    # Components nest (a container's layers, a package's vendored parts): count them all,
    # without recursion, as a file can nest as deep as it likes.
    count, stack = 0, f.items(top, "components", "")
    while stack:
        path, value = stack.pop()
        component = f.obj(value, path)
        f.string(f.get(component, "name", path), join(path, "name"))
        count += 1
        stack.extend(f.items(component, "components", path))
    digests: list[str] = []
    metadata = top.get("metadata")
    subject = f.obj(metadata, "metadata").get("component") if metadata is not None else None
    if subject is not None:
        path = "metadata.component"
        for where, value in f.items(f.obj(subject, path), "hashes", path):
            digest = f.obj(value, where)
            if f.get(digest, "alg", where) == "SHA-256":
                digests.append(_hex(f, f.get(digest, "content", where), join(where, "content")))
    return Sbom(format="cyclonedx", spec_version=spec, components=count, subject_digests=digests)


def read_spdx(doc: object, name: str) -> Sbom:
    f = Fields(name, HOW["spdx"])
    top = f.obj(doc, "")
    version = f.string(f.get(top, "spdxVersion", ""), "spdxVersion")
    if not version.startswith("SPDX-"):
        raise f.fail("spdxVersion", f"{version!r}: expected SPDX-2.x")
    described = _described(f, top)
    packages = [(path, f.obj(value, path)) for path, value in f.items(top, "packages", "")]
    count, digests = 0, []
    for path, package in packages:
        spdx_id = f.string(f.get(package, "SPDXID", path), join(path, "SPDXID"))
        if spdx_id not in described:
            count += 1  # the subject itself is not one of its components
            continue
        for where, value in f.items(package, "checksums", path):
            checksum = f.obj(value, where)
            if f.get(checksum, "algorithm", where) == "SHA256":
                field = join(where, "checksumValue")
                digests.append(_hex(f, f.get(checksum, "checksumValue", where), field))
    return Sbom(
        format="spdx",
        spec_version=version.removeprefix("SPDX-"),
        components=count,
        subject_digests=digests,
    )


def _described(f: Fields, top: dict[str, object]) -> set[str]:
    """The packages the document describes: ``documentDescribes`` (SPDX 2.2) or its
    DESCRIBES / DESCRIBED_BY relationships (2.3)."""
    document = top.get("SPDXID", "SPDXRef-DOCUMENT")
    found = {f.string(value, path) for path, value in f.items(top, "documentDescribes", "")}
    for path, value in f.items(top, "relationships", ""):
        relation = f.obj(value, path)
        kind = relation.get("relationshipType")
        element, related = relation.get("spdxElementId"), relation.get("relatedSpdxElement")
        if kind == "DESCRIBES" and element == document and isinstance(related, str):
            found.add(related)
        elif kind == "DESCRIBED_BY" and related == document and isinstance(element, str):
            found.add(element)
    return found


def _hex(f: Fields, value: object, path: str) -> str:
    text = f.string(value, path)
    if not SHA256.fullmatch(text):
        raise f.fail(path, f"{text[:80]!r} is not a sha256 (64 hex digits)")
    return text.lower()
