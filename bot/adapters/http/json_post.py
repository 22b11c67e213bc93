"""One JSON request over http.client (a POST, or a GET or PATCH; no proxy from the
environment, no redirects followed), its failure told in one line: what notification targets
(PagerDuty, Statuspage) are sent with."""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from bot.adapters.http.connection import connect

MAX_ANSWER_BYTES = 64 * 1024


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def http_address(value: str) -> str:
    """A settings validator's check: an http(s) address, without a trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http:// or https:// address")
    return value.rstrip("/")


def env_name(value: str) -> str:
    """A settings validator's check: the name of an environment variable."""
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable's name")
    return value


class PostFailed(Exception):
    """The POST did not get a 2xx; the message names why in one line."""


def post_json(url: str, body: object, headers: Mapping[str, str], timeout: float) -> object:
    """POST ``body`` as JSON to ``url``; the decoded JSON answer of a 2xx (None if it is not
    JSON). Raises PostFailed naming the status and the answer's start, or the network error."""
    return send_json("POST", url, body, headers, timeout)


def send_json(
    method: str, url: str, body: object, headers: Mapping[str, str], timeout: float
) -> object:
    """``post_json`` with another method (GET sends no body: ``body`` None)."""
    split = urlsplit(url)
    conn, path = connect(url, timeout)
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
    try:
        conn.request(method, path, body=data, headers=all_headers)
        answer = conn.getresponse()
        raw = answer.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        raise PostFailed(f"{split.netloc} did not answer within {timeout:g} s") from None
    except socket.gaierror:
        raise PostFailed(f"cannot resolve {split.hostname}") from None
    except ConnectionRefusedError:
        raise PostFailed(f"{split.netloc} refused the connection") from None
    except (OSError, http.client.HTTPException) as exc:
        raise PostFailed(f"{split.netloc}: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    if not 200 <= answer.status < 300:
        raise PostFailed(f"{split.netloc} answered HTTP {answer.status}: {_one_line(raw)}")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _one_line(raw: bytes, limit: int = 200) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split()) or "(empty)"
    return text if len(text) <= limit else text[: limit - 1] + "…"
