"""Detached signatures as ``cosign sign-blob --key`` writes them (base64 of an ECDSA P-256 /
SHA-256 DER signature), and Ed25519 ones (base64 of the 64 raw bytes)."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from bot.evidence.errors import HOW, refused
from bot.evidence.models import Signature

FIX = HOW["signature"]
BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
KEY_FIX = "configure the PEM public key cosign generate-key-pair wrote (cosign.pub)"


def looks_like(content: str) -> bool:
    """Whether the text is one base64 value that decodes to a signature's bytes."""
    packed = "".join(content.split())
    if not BASE64.fullmatch(packed) or len(packed) % 4:
        return False
    return _shape(base64.b64decode(packed)) is not None


def read(content: str, name: str) -> Signature:
    if "-----BEGIN" in content:
        raise refused(name, "this is a PEM block (a key or certificate?), not a signature", FIX)
    if bad := re.search(r"[^A-Za-z0-9+/=\s]", content):
        raise refused(name, f"not base64: {bad.group()!r} at character {bad.start() + 1}", FIX)
    try:
        der = base64.b64decode("".join(content.split()), validate=True)
    except binascii.Error as error:
        raise refused(name, f"not base64 ({error})", FIX) from None
    if _shape(der) is None:
        raise refused(
            name,
            f"{len(der)} bytes that are neither an ECDSA DER signature nor a 64-byte Ed25519 one",
            FIX,
        )
    return Signature(der=der)


def _shape(raw: bytes) -> str | None:
    try:
        decode_dss_signature(raw)
        return "ecdsa"
    except ValueError:
        return "ed25519" if len(raw) == 64 else None


def verify_signature(
    signature: Signature, message: bytes, public_key_pem: bytes, sha256: bytes | None = None
) -> bool:
    """Whether ``signature`` is over ``message`` by the holder of the key: ECDSA P-256 with
    SHA-256 (what cosign uses), or Ed25519. ``sha256``: the digest of a file the signature
    may be over instead (what ``cosign sign-blob --key FILE`` signs), checked for ECDSA
    without the file. A key it cannot use is an EvidenceError, not a False: that is the
    configuration's fault, not the artifact's."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise refused("public key", "not a PEM public key it can load", KEY_FIX) from None
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature.der, message)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            try:
                key.verify(signature.der, message, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                if sha256 is None:
                    raise
                prehashed = ec.ECDSA(Prehashed(hashes.SHA256()))
                key.verify(signature.der, sha256, prehashed)
        else:
            kind = (
                f"ECDSA {key.curve.name}"
                if isinstance(key, ec.EllipticCurvePublicKey)
                else type(key).__name__
            )
            raise refused(
                "public key", f"a {kind} key; only ECDSA P-256 and Ed25519 are verified", KEY_FIX
            )
    except InvalidSignature:
        return False
    return True
