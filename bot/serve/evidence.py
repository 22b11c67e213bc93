"""``POST /evidence``: a CI job uploads one file of a version's evidence.

    POST /evidence?service=shop&version=2.0.0&name=report.xml[&kind=junit][&digest=sha256:…]
    X-Release-Bot-Timestamp: <unix seconds>
    X-Release-Bot-Uploader: <who, e.g. the CI job's name>
    X-Release-Bot-Signature: v1=<hex HMAC-SHA256, with the secret, of
        "<timestamp>." + "<query string>\n<uploader>\n" + body>

The body is the file. The query and the uploader are signed with it: a captured upload
cannot be replayed for another service, version or digest. Answers are JSON: 201 with what was stored, or an error with one line
saying what is wrong and how to fix it (400 the file or the query, 401 the signature, 404 the
service, 405 not a POST, 413 too big, 503 uploads are off).
"""

from __future__ import annotations

import json
import time
from typing import Any, get_args
from urllib.parse import parse_qs

from bot.adapters.webhook.signing import verify
from bot.domain.evidence import Kind
from bot.domain.release import CommandRejected
from bot.evidence import MAX_BYTES, EvidenceError
from bot.service import Services
from bot.service.evidence import add_evidence

Answer = tuple[str, str, bytes]
KINDS: tuple[str, ...] = get_args(Kind)


def _answer(status: str, **fields: Any) -> Answer:
    return status, "application/json", json.dumps(fields).encode()


class EvidenceUploads:
    def __init__(self, services: Services, secret: str | None) -> None:
        self.services = services
        self.secret = secret

    def handle(self, environ: dict[str, Any]) -> Answer:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer("405 Method Not Allowed", error="POST the file to /evidence")
        if not self.secret:
            return _answer(
                "503 Service Unavailable",
                error="evidence uploads are off: set RELEASE_BOT_EVIDENCE_SECRET for serve",
            )
        declared = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not declared.isdigit():
            return _answer(
                "400 Bad Request", error=f"Content-Length {declared!r} is not a byte count"
            )
        length = int(declared)
        if length > MAX_BYTES:
            return _answer(
                "413 Content Too Large", error=f"{length} bytes: files are at most {MAX_BYTES}"
            )
        body = environ["wsgi.input"].read(length) if length else b""
        stamp = environ.get("HTTP_X_RELEASE_BOT_TIMESTAMP", "")
        signature = environ.get("HTTP_X_RELEASE_BOT_SIGNATURE", "")
        uploader = environ.get("HTTP_X_RELEASE_BOT_UPLOADER", "")
        signed = f"{environ.get('QUERY_STRING', '')}\n{uploader}\n".encode() + body
        if (
            not stamp
            or not signature
            or not verify(self.secret, stamp, signed, signature, now=time.time())
        ):
            return _answer(
                "401 Unauthorized",
                error="bad or stale signature: sign timestamp + '.' + query + newline + "
                "uploader + newline + body with HMAC-SHA256 and RELEASE_BOT_EVIDENCE_SECRET, "
                "sent within 5 minutes",
            )
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        missing = [k for k in ("service", "version", "name") if not query.get(k)]
        if missing:
            return _answer(
                "400 Bad Request", error=f"missing {', '.join(missing)} in the query string"
            )
        kind = query.get("kind")
        if kind is not None and kind not in KINDS:
            return _answer(
                "400 Bad Request", error=f"kind {kind!r} is not one of {', '.join(KINDS)}"
            )
        try:
            [stored] = add_evidence(
                self.services,
                query["service"],
                query["version"],
                [(query["name"], body)],
                uploader or "ci",
                kind,  # checked against KINDS above
                query.get("digest"),
            )
        except CommandRejected as exc:
            return _answer("404 Not Found", error=str(exc))
        except EvidenceError as exc:
            return _answer("400 Bad Request", error=str(exc))
        return _answer(
            "201 Created",
            stored=stored.kind,
            sha256=stored.sha256,
            digest=stored.digest,
            cites=stored.cite(),
        )
