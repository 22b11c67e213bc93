"""Signing the webhooks the bot sends, Slack/Stripe style: an HMAC-SHA256 over
``"<timestamp>." + body`` with the secret both sides share. The timestamp is signed too, so a
captured call cannot be replayed once it is older than the receiver's tolerance."""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Release-Bot-Timestamp"
SIGNATURE_HEADER = "X-Release-Bot-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"  # the header is "v1=<hex>"; a new scheme would get a new prefix
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int | str, body: bytes) -> str:
    """The value of ``X-Release-Bot-Signature``: ``v1=<hex>``."""
    return f"{SCHEME}={sign(secret, timestamp, body)}"


def verify(
    secret: str,
    timestamp: int | str,
    body: bytes,
    signature: str,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``signature`` (``v1=<hex>`` or the bare hex) signs ``body`` at ``timestamp``
    with ``secret`` and the timestamp is within ``tolerance`` seconds of ``now`` (either way:
    a clock ahead is as suspect as a replay). The comparison takes constant time."""
    stamp = str(timestamp).strip()
    try:
        sent = int(stamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance:
        return False
    given = signature.strip()
    if given.startswith(f"{SCHEME}="):
        given = given[len(SCHEME) + 1 :]
    expected = sign(secret, stamp, body)  # as sent: the signature covers its text
    return hmac.compare_digest(expected.encode(), given.encode())
