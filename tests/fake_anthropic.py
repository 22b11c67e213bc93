"""A local fake of the Anthropic Messages API, served over real HTTP for tests.

The anthropic 2.x SDK talks through `httpx2`, so respx cannot intercept it, and patching the
client would hide how the SDK really encodes requests and decodes replies. `FakeAnthropic` is
an `http.server` on 127.0.0.1 that a real `anthropic.Anthropic(base_url=fake.url)` talks to.
It answers `POST /v1/messages` from a *script* (a queue of replies the test lays out in
advance), computes plausible token usage including prompt caching, answers
`POST /v1/messages/count_tokens`, records every request, and rejects requests without the
headers the real API requires, so a passing test proves the SDK sent them.

    with FakeAnthropic() as fake:
        fake.reply(
            message(tool_use("get_status", {"release": "r1"})),
            lambda req: message(text(f"saw {tool_results(req)[0]['content']}")),
        )
        client = anthropic.Anthropic(api_key="test-key", base_url=fake.url, max_retries=0)
        ...
        assert fake.count() == 2

Script entries (`Reply`):

- a Message dict, usually built with `message(*blocks, ...)`; missing `id`, `model` (the
  request's), `usage` (computed), `stop_sequence`, `type` and `role` are filled in;
- a callable `(request_json) -> Reply`, called when the request arrives, so the answer can
  depend on the tool results it carries;
- `error(status, error_type, message, headers)` or a plain tuple with those fields;
- `raw(body, status, content_type)`: any bytes, e.g. a 200 whose body is not JSON;
- `delayed(reply, seconds)`: answers late, to drive client timeouts.

When the script is empty, the fake answers 500 `api_error` with `x-should-retry: false` and a
message naming the request that found no reply: the SDK raises at once and the test fails
loudly. The request is also listed in `unscripted`, and `assert_done()` checks for both
leftover and missing replies.

Token estimates (documented heuristic, not the real tokenizer): about `CHARS_PER_TOKEN` (4)
characters per token. Text (a string prompt, a text block) counts its characters; anything
else (tool definitions, tool_use and tool_result blocks, images) the characters of its compact
JSON without `cache_control`. Input covers tools, then system, then messages.

Prompt caching, as the API documents it: a request's cacheable *segments* run in the order
tools → system blocks → message content blocks; a segment with `cache_control` is a
breakpoint (a top-level `cache_control` marks the last segment). The prefix up to and
including a breakpoint is keyed by the model and a hash of its segments. Counting from the
longest prefix already cached, the rest up to the last breakpoint is written to the cache
(`cache_creation_input_tokens`) and the cached part is read (`cache_read_input_tokens`);
`input_tokens` is what remains after the last breakpoint. A prefix shorter than the model's
minimum (`min_cacheable`, default `default_min_cacheable(model)`: 4096 tokens for
Haiku-class and Opus 4.5+ models, 1024 otherwise) is neither written nor read, as on the API.
Entries never expire; `clear_cache()` forgets them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeAlias
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
DEFAULT_MODEL = "claude-haiku-4-5"
CHARS_PER_TOKEN = 4

#: The `error.type` the API uses for each status, when a test names none.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: Statuses the SDK retries (unless `x-should-retry: false`).
RETRIED_STATUSES = frozenset({408, 409, 429})

Payload: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class ErrorReply:
    """An API error: `{"type": "error", "error": {"type": ..., "message": ...}}` with `status`.

    A status the SDK retries gets `retry-after-ms: 1` unless `headers` sets `retry-after` or
    `retry-after-ms`, so retries in tests take milliseconds. (The SDK ignores a retry-after
    of 0 and falls back to its ~0.5 s exponential backoff.)
    """

    status: int
    error_type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawReply:
    """Bytes sent as they are: for malformed replies."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DelayedReply:
    """`reply`, sent after `seconds` (the wait ends early when the fake stops)."""

    reply: Reply
    seconds: float


Reply: TypeAlias = (
    Payload | ErrorReply | RawReply | DelayedReply | tuple[Any, ...] | Callable[[Payload], "Reply"]
)


@dataclass(frozen=True)
class Request:
    """One request the fake received. Header names are lower-cased; `json` is None when the
    body was not a JSON object. `path` is as sent (a beta call carries `?beta=true`)."""

    path: str
    headers: dict[str, str]
    json: Payload | None
    request_id: str
    body: bytes = field(default=b"", repr=False)

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path


@dataclass(frozen=True)
class _Wire:
    status: int
    body: bytes
    headers: dict[str, str]


# -- builders ---------------------------------------------------------------------------------


def text(s: str) -> Payload:
    """A `text` content block."""
    return {"type": "text", "text": s}


def tool_use(name: str, input: Any, id: str | None = None) -> Payload:
    """A `tool_use` block; `id` defaults to a fresh `toolu_…`.

    `input` should be an object; anything else (a string, say) is sent as is, to test how the
    code copes: the SDK does not validate it, `block.input` is then that string.
    """
    return {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": name,
        "input": input,
    }


def message(
    *blocks: Payload | str,
    stop_reason: str | None = None,
    usage: Mapping[str, int] | None = None,
    model: str | None = None,
    stop_sequence: str | None = None,
    id: str | None = None,
) -> Payload:
    """A Message reply; plain strings become text blocks.

    `stop_reason` defaults to `tool_use` when a block is a tool_use, else `end_turn`. Without
    `usage` (or for the keys it leaves out) the fake computes it; without `model`, the reply
    names the request's model.
    """
    content = [text(b) if isinstance(b, str) else dict(b) for b in blocks]
    if stop_reason is None:
        has_tool = any(b.get("type") == "tool_use" for b in content)
        stop_reason = "tool_use" if has_tool else "end_turn"
    reply: Payload = {
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
    }
    if usage is not None:
        reply["usage"] = dict(usage)
    if model is not None:
        reply["model"] = model
    if id is not None:
        reply["id"] = id
    return reply


def refusal(
    partial: str = "", category: str | None = None, explanation: str | None = None
) -> Payload:
    """`stop_reason: "refusal"`, with `stop_details`; content is empty unless `partial`."""
    reply = message(*([text(partial)] if partial else []), stop_reason="refusal")
    reply["stop_details"] = {"type": "refusal", "category": category, "explanation": explanation}
    return reply


def max_tokens(*blocks: Payload | str, usage: Mapping[str, int] | None = None) -> Payload:
    """`stop_reason: "max_tokens"`: a reply cut short. Computed `output_tokens` equals the
    request's `max_tokens`. A tool_use block here is what the API sends when the cut fell
    inside it: an incomplete call that must not be run."""
    return message(*(blocks or ("The answer was cut",)), stop_reason="max_tokens", usage=usage)


def error(
    status: int = 529,
    error_type: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ErrorReply:
    """An API error; `error_type` defaults to the API's type for `status` (`api_error`)."""
    kind = error_type or ERROR_TYPES.get(status, "api_error")
    return ErrorReply(status, kind, message or kind.replace("_", " ").capitalize(), headers or {})


def overloaded(message: str = "Overloaded") -> ErrorReply:
    return error(529, "overloaded_error", message)


def rate_limited(retry_after: float | None = None) -> ErrorReply:
    """429; with `retry_after` (seconds), a `retry-after` header the SDK obeys."""
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return error(
        429, "rate_limit_error", "Number of request tokens has exceeded your rate limit", headers
    )


def raw(body: bytes | str, status: int = 200, content_type: str = "application/json") -> RawReply:
    """Any body: `raw("{not json")` is a 200 the SDK fails to decode (json.JSONDecodeError);
    with `content_type="text/html"` the SDK returns the body as a `str` instead of a Message."""
    data = body.encode() if isinstance(body, str) else body
    return RawReply(data, status, content_type)


def delayed(reply: Reply, seconds: float) -> DelayedReply:
    """`reply` after `seconds`: with a shorter client timeout, an `APITimeoutError`."""
    return DelayedReply(reply, seconds)


# -- reading requests -------------------------------------------------------------------------


def _blocks(content: Any) -> list[Payload]:
    if isinstance(content, str):
        return [text(content)]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def tool_results(request: Payload) -> list[Payload]:
    """The tool_result blocks of the request's last user message, in order."""
    messages = request.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return []
    return [b for b in _blocks(messages[-1].get("content")) if b.get("type") == "tool_result"]


def last_user_text(request: Payload) -> str:
    """The text of the request's last user message (text blocks joined by newlines)."""
    for msg in reversed(request.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            parts = [
                b.get("text", "") for b in _blocks(msg.get("content")) if b.get("type") == "text"
            ]
            return "\n".join(str(p) for p in parts)
    return ""


# -- token estimates --------------------------------------------------------------------------


def default_min_cacheable(model: str) -> int:
    """Smallest cacheable prefix in tokens, per the prompt-caching docs (approximately)."""
    name = model.lower()
    if "haiku" in name or any(f"opus-4-{minor}" in name for minor in range(5, 10)):
        return 4096
    return 1024


def _strip_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_cache_control(v) for v in value]
    return value


def _compact(value: Any) -> str:
    return json.dumps(_strip_cache_control(value), separators=(",", ":"), ensure_ascii=False)


def _chars(block: Any) -> int:
    if isinstance(block, str):
        return len(block)
    if (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ):
        return len(block["text"])
    return len(_compact(block))


def tokens_for(chars: int) -> int:
    """The heuristic: ~CHARS_PER_TOKEN characters per token, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class _Segment:
    key: str
    chars: int
    cache_control: Payload | None


def _segments(request: Payload) -> list[_Segment]:
    """Cacheable units in the API's order: tools, system blocks, message content blocks."""
    found: list[_Segment] = []

    def add(prefix: str, block: Any) -> None:
        control = block.get("cache_control") if isinstance(block, dict) else None
        found.append(
            _Segment(f"{prefix}:{_compact(block)}", _chars(block), control if control else None)
        )

    for tool in request.get("tools") or []:
        add("tool", tool)
    system = request.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        add("system", block)
    for msg in request.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role"))
        content = msg.get("content")
        for block in [content] if isinstance(content, str) else content or []:
            add(role, block)
    top = request.get("cache_control")
    if top and found:
        last = found[-1]
        found[-1] = _Segment(last.key, last.chars, last.cache_control or top)
    return found


def estimate_input_tokens(request: Payload) -> int:
    """All input tokens of a request by the heuristic (what count_tokens answers)."""
    return tokens_for(sum(s.chars for s in _segments(request)))


def estimate_output_tokens(reply: Payload) -> int:
    """Output tokens of a reply: text characters and tool calls' name+input JSON; at least 1."""
    chars = 0
    for block in reply.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            chars += len(_compact({"name": block.get("name"), "input": block.get("input")}))
        else:
            chars += _chars(block)
    return max(1, tokens_for(chars))


# -- request validation -----------------------------------------------------------------------


def _validation_error(request: Payload) -> str | None:
    """The API's 400 checks that catch tool-loop bugs; None when the request is fine."""
    for key in ("model", "max_tokens", "messages"):
        if key not in request:
            return f"{key}: Field required"
    messages = request["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if msg["role"] != "assistant":
            continue
        uses = [b.get("id") for b in _blocks(msg.get("content")) if b.get("type") == "tool_use"]
        if not uses:
            continue
        following = messages[i + 1] if i + 1 < len(messages) else None
        blocks = _blocks(following.get("content")) if isinstance(following, dict) else []
        answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        missing = [u for u in uses if u not in answered]
        if missing or not isinstance(following, dict) or following.get("role") != "user":
            return (
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(map(str, missing or uses))}. Each `tool_use` "
                "block must have a corresponding `tool_result` block in the next message."
            )
        if blocks[: len(answered)] != [b for b in blocks if b.get("type") == "tool_result"]:
            return f"messages.{i + 1}: `tool_result` blocks must come first in the user message"
    for i, msg in enumerate(messages):
        if msg.get("role") != "user":
            continue
        results = [
            b.get("tool_use_id")
            for b in _blocks(msg.get("content"))
            if b.get("type") == "tool_result"
        ]
        if not results:
            continue
        previous = messages[i - 1] if i > 0 else {}
        ids = {b.get("id") for b in _blocks(previous.get("content")) if b.get("type") == "tool_use"}
        stray = [r for r in results if r not in ids]
        if stray or previous.get("role") != "assistant":
            return (
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(map(str, stray or results))}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
    return None


# -- server -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            wire = self.server.fake.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake must reach the test, not hang it
            wire = _error_wire(
                ErrorReply(500, "api_error", f"FakeAnthropic crashed: {exc!r}"), "req_fake_crash"
            )
        try:
            self.send_response(wire.status)
            for name, value in wire.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(wire.body)))
            self.end_headers()
            self.wfile.write(wire.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output is for the tests."""


def _json_wire(
    payload: Any, request_id: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> _Wire:
    body = json.dumps(payload).encode()
    return _Wire(
        status,
        body,
        {"Content-Type": "application/json", "request-id": request_id, **(headers or {})},
    )


def _error_wire(err: ErrorReply, request_id: str) -> _Wire:
    headers = dict(err.headers)
    names = {h.lower() for h in headers}
    retried = err.status in RETRIED_STATUSES or err.status >= 500
    if retried and not names & {"retry-after", "retry-after-ms"}:
        headers["retry-after-ms"] = "1"
    payload = {
        "type": "error",
        "error": {"type": err.error_type, "message": err.message},
        "request_id": request_id,
    }
    return _json_wire(payload, request_id, err.status, headers)


def _fatal(message: str, request_id: str, status: int = 500) -> _Wire:
    """An error the SDK must not retry: the test is wrong, not the network."""
    kind = ERROR_TYPES.get(status, "api_error")
    return _error_wire(ErrorReply(status, kind, message, {"x-should-retry": "false"}), request_id)


class FakeAnthropic(LoopbackServer):
    """Anthropic Messages API fake: scripted replies, computed usage, recorded requests.

    `api_keys` restricts the accepted keys (sent as `x-api-key` or `Authorization: Bearer`);
    by default any non-empty key is accepted. `min_cacheable` overrides the per-model minimum
    cacheable prefix (tokens). With `validate` (default), requests that the API would reject
    with a 400 (missing fields, a tool_use without its tool_result in the next message, a
    stray tool_result) are answered with that 400 and do not consume the script. `fallback`
    answers when the script is empty (default: a loud 500).
    """

    name = "fake-anthropic"

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        api_keys: Iterable[str] | None = None,
        min_cacheable: int | None = None,
        validate: bool = True,
        fallback: Reply | None = None,
    ) -> None:
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.min_cacheable = min_cacheable
        self.validate = validate
        super().__init__()
        self.fallback = fallback
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._clear()
        self.reply(*script)

    def _clear(self) -> None:
        self._script: deque[Reply] = deque()
        self._requests: list[Request] = []
        self._unscripted: list[Request] = []
        self._cache: set[str] = set()
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------------

    def _make_server(self) -> _Server:
        return _Server(self)

    def _before_start(self) -> None:
        self._stopping.clear()

    def _before_stop(self) -> None:
        self._stopping.set()  # delayed replies are cut short

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`: for `base_url=` or ANTHROPIC_BASE_URL."""
        return self.root

    def env(self, api_key: str = "test-key") -> dict[str, str]:
        """Environment for code that builds its own client: ANTHROPIC_BASE_URL and _API_KEY."""
        return {"ANTHROPIC_BASE_URL": self.url, "ANTHROPIC_API_KEY": api_key}

    # -- script ------------------------------------------------------------------------------

    def reply(self, *entries: Reply) -> Self:
        """Queue replies for the next POST /v1/messages calls, in order."""
        with self._lock:
            self._script.extend(entries)
        return self

    def pending(self) -> int:
        """Replies queued and not yet served."""
        with self._lock:
            return len(self._script)

    @property
    def unscripted(self) -> list[Request]:
        """Requests that found the script empty (and got a 500)."""
        with self._lock:
            return list(self._unscripted)

    def assert_done(self) -> None:
        """Every queued reply was served and no request went unanswered."""
        with self._lock:
            if self._script:
                raise AssertionError(f"{len(self._script)} scripted repl(ies) never requested")
            if self._unscripted:
                raise AssertionError(
                    f"{len(self._unscripted)} request(s) found no scripted reply; first: "
                    f"{last_user_text(self._unscripted[0].json or {})[:200]!r}"
                )

    def clear_cache(self) -> None:
        """Forget cached prompt prefixes (as if they expired)."""
        with self._lock:
            self._cache.clear()

    def reset(self) -> None:
        """Forget requests, the script and the prompt cache."""
        with self._lock:
            self._clear()

    # -- inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request received, oldest first (including rejected ones)."""
        with self._lock:
            return list(self._requests)

    def calls(self, path: str | None = MESSAGES) -> list[Request]:
        """Requests to `path` (query string ignored; None: all), oldest first."""
        with self._lock:
            return [r for r in self._requests if path is None or r.route == path]

    def count(self, path: str | None = MESSAGES) -> int:
        """How many requests went to `path` (default POST /v1/messages; None: all)."""
        return len(self.calls(path))

    def last(self, path: str | None = MESSAGES) -> Request:
        """The latest request to `path`; AssertionError if there was none."""
        found = self.calls(path)
        if not found:
            raise AssertionError(f"no request to {path}; seen: {[r.path for r in self.requests]}")
        return found[-1]

    def bodies(self, path: str | None = MESSAGES) -> list[Payload]:
        """The JSON bodies of requests to `path`."""
        return [r.json for r in self.calls(path) if r.json is not None]

    # -- request handling (server threads) ---------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Wire:
        with self._lock:
            request_id = f"req_fake{next(self._ids):020d}"
            try:
                decoded = json.loads(body) if body else None
            except ValueError:
                decoded = None
            payload = decoded if isinstance(decoded, dict) else None
            request = Request(target, headers, payload, request_id, body)
            self._requests.append(request)
            route = request.route
            if method != "POST" or route not in (MESSAGES, COUNT_TOKENS):
                return _error_wire(
                    ErrorReply(404, "not_found_error", f"FakeAnthropic serves no {method} {route}"),
                    request_id,
                )
            refused = self._auth_error(headers)
            if refused is not None:
                return _error_wire(refused, request_id)
            if payload is None:
                return _error_wire(
                    ErrorReply(400, "invalid_request_error", "request body is not a JSON object"),
                    request_id,
                )
            if route == COUNT_TOKENS:
                return _json_wire({"input_tokens": estimate_input_tokens(payload)}, request_id)
            if payload.get("stream"):
                return _fatal(
                    "FakeAnthropic does not stream: call without stream=True", request_id, 400
                )
            problem = _validation_error(payload) if self.validate else None
            if problem:
                return _error_wire(ErrorReply(400, "invalid_request_error", problem), request_id)
            if self._script:
                entry: Reply = self._script.popleft()
            elif self.fallback is not None:
                entry = self.fallback
            else:
                self._unscripted.append(request)
                return _fatal(
                    f"FakeAnthropic: the script is empty: no reply queued for messages request "
                    f"#{self.count()} (last user text: {last_user_text(payload)[:120]!r}). "
                    "Queue one with fake.reply(...).",
                    request_id,
                )
        return self._serve_entry(entry, payload, request_id)

    def _auth_error(self, headers: dict[str, str]) -> ErrorReply | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")
        if not key:
            return ErrorReply(401, "authentication_error", "x-api-key header is required")
        if self.api_keys is not None and key not in self.api_keys:
            return ErrorReply(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return ErrorReply(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def _serve_entry(self, entry: Reply, request: Payload, request_id: str) -> _Wire:
        """Turn a script entry into bytes; callables and delays run outside the lock."""
        for _ in range(100):  # a callable may return a delay that wraps a callable...
            if isinstance(entry, DelayedReply):
                self._stopping.wait(entry.seconds)
                entry = entry.reply
            elif callable(entry):
                try:
                    entry = entry(request)
                except Exception as exc:
                    return _fatal(
                        f"FakeAnthropic: the scripted callable raised {exc!r}", request_id
                    )
            else:
                break
        if isinstance(entry, tuple):
            entry = error(*entry)
        if isinstance(entry, ErrorReply):
            return _error_wire(entry, request_id)
        if isinstance(entry, RawReply):
            headers = {
                "Content-Type": entry.content_type,
                "request-id": request_id,
                **entry.headers,
            }
            return _Wire(entry.status, entry.body, headers)
        if isinstance(entry, dict):
            with self._lock:
                return _json_wire(self._complete(entry, request), request_id)
        return _fatal(f"FakeAnthropic: cannot serve script entry {entry!r}", request_id)

    def _complete(self, reply: Payload, request: Payload) -> Payload:
        """Fill what a Message needs and the test left out."""
        model = str(request.get("model") or DEFAULT_MODEL)
        full: Payload = {
            "id": f"msg_fake{next(self._ids):020d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_sequence": None,
            **reply,
        }
        full.setdefault("stop_reason", "end_turn")
        given = full.get("usage") or {}
        computed = self._usage(full, request, model)
        full["usage"] = {**computed, **given}
        return full

    def _usage(self, reply: Payload, request: Payload, model: str) -> Payload:
        segments = _segments(request)
        total = tokens_for(sum(s.chars for s in segments))
        created, read, ttl = self._cache_tokens(segments, model)
        if reply.get("stop_reason") == "max_tokens" and isinstance(request.get("max_tokens"), int):
            output = int(request["max_tokens"])
        else:
            output = estimate_output_tokens(reply)
        return {
            "input_tokens": max(0, total - created - read),
            "output_tokens": output,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if ttl == "1h" else created,
                "ephemeral_1h_input_tokens": created if ttl == "1h" else 0,
            },
            "service_tier": "standard",
        }

    def _cache_tokens(self, segments: list[_Segment], model: str) -> tuple[int, int, str]:
        """(tokens written, tokens read, ttl of the last breakpoint); updates the cache."""
        minimum = (
            self.min_cacheable if self.min_cacheable is not None else default_min_cacheable(model)
        )
        digest = hashlib.sha256(model.encode())
        chars = 0
        breakpoints: list[tuple[str, int, str]] = []  # (key, prefix tokens, ttl)
        for segment in segments:
            digest.update(segment.key.encode() + b"\x00")
            chars += segment.chars
            if segment.cache_control is not None:
                ttl = str(segment.cache_control.get("ttl") or "5m")
                breakpoints.append((digest.hexdigest(), tokens_for(chars), ttl))
        eligible = [b for b in breakpoints if b[1] >= minimum]
        if not eligible:
            return 0, 0, "5m"
        read = max((tokens for key, tokens, _ in eligible if key in self._cache), default=0)
        _, last_tokens, last_ttl = eligible[-1]
        self._cache.update(key for key, _, _ in eligible)
        return last_tokens - read, read, last_ttl
