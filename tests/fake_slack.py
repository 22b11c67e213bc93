"""A local fake of the Slack Web API, served over real HTTP for tests.

Slack is unreachable from tests, and patching `WebClient` would hide how slack_sdk really
encodes requests. `FakeSlack` is an `http.server` on 127.0.0.1 that a real
`WebClient(base_url=fake.url)` talks to: it records every call with its decoded arguments,
answers with the shapes documented by Slack, and can inject rate limits and errors, and lose
the answer to a call it applied (as when the caller dies before reading it).
Modelled on slackapi/bolt-python's tests/mock_web_api_server.

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.url)
        client.chat_postMessage(channel="C1", text="hi")
        assert fake.last("chat.postMessage").params["text"] == "hi"
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import SplitResult, parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tests.loopback import LoopbackServer

TEAM_ID = "T1"
TEAM_NAME = "Release Bot Test"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"
SOCKET_URL = "wss://wss-primary.slack.com/link/?ticket=fake-ticket&app_id=A0APP"

#: Arguments that carry JSON inside a form post (slack_sdk sends some methods as forms).
JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "unfurls"})
#: Methods an app-level (xapp-) token may call; everything else needs a bot token.
APP_TOKEN_METHODS = frozenset({"apps.connections.open", "auth.test"})
SCOPES = (
    "chat:write,commands,files:write,users:read,channels:read,groups:read,"
    "channels:history,groups:history"
)
#: A channel ID (a name is lower-case: Slack allows no capitals in it).
CHANNEL_ID = re.compile(r"[A-Z][A-Z0-9]+")

Payload = dict[str, Any]
Answer = Payload | Callable[["Call"], Payload]


@dataclass(frozen=True)
class Call:
    """One request the fake received. Header names are lower-cased."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    path: str = ""
    body: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    lost: _Loss | None = None  # applied, but the connection is closed without an answer


@dataclass(frozen=True)
class _Loss:
    after: int  # calls of the method still answered before the one lost
    hold: float  # seconds the connection is kept open, unanswered, before it is closed
    applied: threading.Event
    channel: str | None = None  # only calls to this channel count (``channel``/``channel_id``)


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: int
    error: str


def _json_reply(
    payload: Payload, status: int = 200, headers: dict[str, str] | None = None
) -> _Reply:
    body = json.dumps(payload).encode()
    return _Reply(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


def _text_reply(text: str, status: int = 200) -> _Reply:
    return _Reply(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _decode_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Form fields as str, file parts as bytes (slack_sdk uses multipart when given files=)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        raw = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(raw, bytes):
            continue
        fields[name] = raw if part.get_filename() else raw.decode("utf-8")
    return fields


def _decode_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Arguments from a JSON, form-urlencoded or multipart body; ValueError if malformed."""
    if not body:
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        decoded = json.loads(body)
        if not isinstance(decoded, dict):
            raise ValueError("JSON body is not an object")
        return decoded
    if mime == "multipart/form-data":
        return _decode_multipart(content_type, body)
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def _decode_json_field(name: str, value: Any) -> Any:
    """`blocks='[...]'` in a form post becomes a list; a string that is not JSON stays as is."""
    if name not in JSON_FIELDS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """All arguments of a Web API call, whichever way they were sent."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    params.update(_decode_body(content_type, body))
    return {name: _decode_json_field(name, value) for name, value in params.items()}


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _tz_fields(tz: str) -> dict[str, Any]:
    """Slack's tz, tz_label, tz_offset (seconds east of UTC) for an IANA zone."""
    try:
        now = datetime.now(ZoneInfo(tz))
    except ZoneInfoNotFoundError:
        now = datetime.now(UTC)
    offset = now.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return {"tz": tz, "tz_label": now.tzname() or tz, "tz_offset": seconds}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    """Reads the request, lets `FakeSlack.handle` decide, writes the reply."""

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
            reply = self.server.fake.handle(self.path, headers, body)
        except Exception as exc:  # a bug in the fake must reach the test, not hang it
            reply = _json_reply(
                {"ok": False, "error": "fake_slack_error", "detail": repr(exc)}, 500
            )
        if reply.lost is not None:
            reply.lost.applied.set()
            self.server.fake.holding.wait(reply.lost.hold)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest output is for the tests."""


class FakeSlack(LoopbackServer):
    """Slack Web API fake: records calls, answers realistically, injects faults.

    `tokens` restricts the accepted tokens (others get `invalid_auth`); by default any
    `xoxb-`/`xapp-` token is accepted. With `strict=True`, unknown users, channels, messages
    and views are errors (`user_not_found`, ...) instead of being made up on the fly.
    """

    name = "fake-slack"

    def __init__(
        self,
        tokens: Iterable[str] | None = None,
        *,
        socket_url: str = SOCKET_URL,
        strict: bool = False,
    ) -> None:
        self.tokens = frozenset(tokens) if tokens is not None else None
        self.socket_url = socket_url
        self.strict = strict
        self._cond = threading.Condition(threading.RLock())
        self.holding = threading.Event()  # set: answers held back by lose_next_answer end
        super().__init__()
        self._users: dict[str, Payload] = {}
        self._channels: dict[str, Payload] = {}
        self._ts_base = int(datetime.now(UTC).timestamp())
        self._clear()
        self._methods: dict[str, Callable[[Call], Payload]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": lambda call: {"ok": True},
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    def _clear(self) -> None:
        self._calls: list[Call] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._overrides: dict[str, Answer] = {}
        self._messages: dict[tuple[str, str], Payload] = {}
        self._views: dict[str, Payload] = {}
        self._home_views: dict[str, str] = {}
        self._files: dict[str, Payload] = {}
        self._uploads: dict[str, bytes] = {}
        self._seq = 0
        self._refused_channels: dict[str, str] = {}
        self._losses: dict[str, deque[_Loss]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def _make_server(self) -> _Server:
        return _Server(self)

    @property
    def url(self) -> str:
        """Base URL for `WebClient(base_url=...)`; the trailing slash matters to urljoin."""
        return f"{self.root}/api/"

    def response_url(self, name: str) -> str:
        """A `response_url` for a test payload; POSTs to it are recorded as `response_url`."""
        return f"{self.root}/response/{name}"

    # -- set-up ------------------------------------------------------------------------------

    def add_user(
        self, user_id: str, name: str, real_name: str = "", tz: str = "Europe/Paris"
    ) -> None:
        """Make `users.info` answer this user (otherwise one is made up unless strict)."""
        with self._cond:
            self._users[user_id] = self._user(user_id, name, real_name or name.title(), tz)

    def add_channel(
        self, channel_id: str, name: str, is_private: bool = False, is_archived: bool = False
    ) -> None:
        """Make `conversations.info` answer this channel and `conversations.list` list it;
        `chat.postMessage` given its name (`#name` or `name`) posts to it."""
        with self._cond:
            self._channels[channel_id] = {
                **self._channel(channel_id, name, is_private),
                "is_archived": is_archived,
            }

    def channel_id(self, channel: str) -> str:
        """The ID of `channel` given by ID or by name (made up for a name never seen, unless
        strict: then `channel_not_found`, as KeyError)."""
        with self._cond:
            found = self._known_id(channel)
            if found is not None:
                return found
            if self.strict:
                raise KeyError(channel)
            name = channel.removeprefix("#")
            # Made up, but the same for a name whatever happened before (reset keeps channels).
            made_up = "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()
            self._channels[made_up] = self._channel(made_up, name, False)
            return made_up

    def _known_id(self, channel: str) -> str | None:
        if CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#")
        return next((c for c, v in self._channels.items() if v["name"] == name), None)

    def fail_next(
        self,
        method: str,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        error: str = "ratelimited",
    ) -> None:
        """Make the next `times` calls of `method` fail.

        429 answers carry `Retry-After: retry_after`; any status answers `{"ok": false,
        "error": error}`, so status 200 is an ordinary API error. Works for `upload` and
        `response_url` too. Calls are still recorded.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._cond:
            queue = self._faults.setdefault(method, deque())
            queue.extend(_Fault(status, retry_after, error) for _ in range(times))

    def lose_next_answer(
        self, method: str, after: int = 0, hold: float = 0.0, channel: str | None = None
    ) -> threading.Event:
        """Apply the call of `method` that comes after `after` more, then close the connection
        without answering, as Slack seen from a process that died (or whose network failed)
        after the call reached Slack. With `hold`, the connection stays open, unanswered, for
        that many seconds first (until `reset`): time to SIGKILL the caller mid-call. With
        `channel`, only calls to that channel count. Returns an event set once the call was
        applied."""
        if after < 0:
            raise ValueError("after must be at least 0")
        loss = _Loss(after, hold, threading.Event(), channel)
        with self._cond:
            self._losses.setdefault(method, deque()).append(loss)
        return loss.applied

    def keep_answers(self) -> None:
        """Forget the answers still to be lost (lose_next_answer) that no call reached."""
        with self._cond:
            self._losses.clear()

    def refuse_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Answer every `chat.*` call to `channel` with `error` until `accept_channel`, as
        Slack does for a channel deleted or the bot was removed from. Calls are recorded."""
        with self._cond:
            self._refused_channels[channel] = error

    def accept_channel(self, channel: str) -> None:
        with self._cond:
            self._refused_channels.pop(channel, None)

    def set_response(self, method: str, payload: Answer) -> None:
        """Answer `method` with `payload` (or `payload(call)`) from now on; `ok` defaults to true.

        Also makes an otherwise unknown method known.
        """
        with self._cond:
            self._overrides[method] = payload

    def reset(self) -> None:
        """Forget calls, messages, views, uploads, pending faults and overrides.

        Users and channels added with add_user/add_channel are kept.
        """
        with self._cond:
            self.holding.set()  # answers still held back are dropped now
            self._clear()
            self.holding = threading.Event()

    # -- inspection --------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded calls of `method` (all calls if None), oldest first."""
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def count(self, method: str) -> int:
        return len(self.calls(method))

    def last(self, method: str) -> Call:
        """The latest call of `method`; AssertionError if there was none."""
        found = self.calls(method)
        if not found:
            raise AssertionError(f"no {method} call; seen: {self._seen()}")
        return found[-1]

    def wait_for(self, method: str, count: int = 1, timeout: float = 60.0) -> list[Call]:
        """Block until `method` was called `count` times, for code that calls Slack off-thread."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.count(method) >= count, timeout):
                raise AssertionError(
                    f"expected {count} {method} call(s) within {timeout}s, "
                    f"got {self.count(method)}; seen: {self._seen()}"
                )
            return self.calls(method)

    def message(self, channel: str, ts: str) -> Payload:
        """The message as it stands now, after any chat.update: what a user would see."""
        with self._cond:
            try:
                return dict(self._messages[(self._known_id(channel) or channel, ts)])
            except KeyError:
                raise AssertionError(f"no message {ts} in {channel}") from None

    def messages(self, channel: str, thread_ts: str | None = None) -> list[Payload]:
        """Messages posted to `channel` as they stand now, oldest first; with `thread_ts`,
        only that thread's replies; with `thread_ts=""`, only top-level messages."""
        with self._cond:
            channel = self._known_id(channel) or channel
            found = [dict(m) for (c, _), m in self._messages.items() if c == channel]
        if thread_ts is None:
            return found
        return [m for m in found if m.get("thread_ts", "") == thread_ts]

    def uploaded(self, file_id: str) -> bytes:
        """The bytes POSTed to the upload URL of `file_id`."""
        with self._cond:
            try:
                return self._uploads[file_id]
            except KeyError:
                known = sorted(self._uploads)
                raise AssertionError(f"nothing uploaded for {file_id}; uploads: {known}") from None

    def responses(self, name: str) -> list[Payload]:
        """JSON bodies POSTed to `response_url(name)`, oldest first."""
        suffix = f"/response/{name}"
        return [c.params for c in self.calls("response_url") if c.path == suffix]

    def _seen(self) -> str:
        counts = Counter(c.method for c in self.calls())
        return ", ".join(f"{m} x{n}" for m, n in counts.items()) or "nothing"

    # -- request handling (called from server threads) ---------------------------------------

    def handle(self, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Route one request; the whole exchange runs under the lock, so state stays coherent."""
        parts = urlsplit(target)
        kind, _, name = parts.path.lstrip("/").partition("/")
        with self._cond:
            if kind == "api" and name:
                return self._api(name, parts, headers, body)
            if kind == "upload" and name:
                return self._upload(name, parts.path, headers, body)
            if kind == "response" and name:
                return self._response_url(parts.path, headers, body)
            self._record(Call(parts.path, {}, headers, parts.path, body))
            return _json_reply({"ok": False, "error": "not_found"}, 404)

    def _record(self, call: Call) -> None:
        self._calls.append(call)
        self._cond.notify_all()

    def _take_fault(self, method: str) -> _Reply | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue.popleft()
        extra = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
        return _json_reply({"ok": False, "error": fault.error}, fault.status, extra)

    def _api(self, method: str, parts: SplitResult, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            params = decode_params(parts.query, headers.get("content-type", ""), body)
        except ValueError:
            self._record(Call(method, {}, headers, parts.path, body))
            return _json_reply({"ok": False, "error": "invalid_json"})
        call = Call(method, params, headers, parts.path, body)
        self._record(call)
        scopes = {"X-OAuth-Scopes": SCOPES, "X-Accepted-OAuth-Scopes": ""}
        error = self._auth_error(method, _bearer(headers) or params.get("token"))
        if error:
            return _json_reply({"ok": False, "error": error}, headers=scopes)
        fault = self._take_fault(method)
        if fault:
            return fault
        refused = self._refused_channels.get(str(params.get("channel", "")))
        if refused is not None and method.startswith("chat."):
            return _json_reply({"ok": False, "error": refused}, headers=scopes)
        reply = _json_reply(self._answer(call), headers=scopes)
        return replace(reply, lost=self._take_loss(method, params))

    def _take_loss(self, method: str, params: dict[str, Any]) -> _Loss | None:
        queue = self._losses.get(method)
        if not queue:
            return None
        channel = params.get("channel", params.get("channel_id"))
        if queue[0].channel is not None and queue[0].channel != channel:
            return None
        if queue[0].after > 0:
            queue[0] = replace(queue[0], after=queue[0].after - 1)
            return None
        return queue.popleft()

    def _auth_error(self, method: str, token: Any) -> str | None:
        if not isinstance(token, str) or not token.startswith(("xoxb-", "xapp-")):
            return "not_authed"
        if self.tokens is not None and token not in self.tokens:
            return "invalid_auth"
        is_app_token = token.startswith("xapp-")
        if method == "apps.connections.open" and not is_app_token:
            return "not_allowed_token_type"
        if is_app_token and method not in APP_TOKEN_METHODS:
            return "not_allowed_token_type"
        return None

    def _answer(self, call: Call) -> Payload:
        override = self._overrides.get(call.method)
        if override is not None:
            payload = override(call) if callable(override) else override
            return {"ok": True, **payload}
        handler = self._methods.get(call.method)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": call.method}
        return handler(call)

    def _upload(self, file_id: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """The raw POST of the bytes: no token, as with files.slack.com's signed URLs."""
        params = {"file_id": file_id, "size": len(body)}
        self._record(Call("upload", params, headers, path, body))
        fault = self._take_fault("upload")
        if fault:
            return fault
        if file_id not in self._files:
            return _text_reply("file_not_found", 404)
        self._uploads[file_id] = body
        return _text_reply(f"OK - {len(body)}")

    def _response_url(self, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Like hooks.slack.com: JSON in, plain `ok` out."""
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = None
        self._record(Call("response_url", params or {}, headers, path, body))
        fault = self._take_fault("response_url")
        if fault:
            return fault
        if not isinstance(params, dict):
            return _text_reply("invalid_payload", 400)
        return _text_reply("ok")

    # -- Web API methods ---------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Fresh, strictly increasing message timestamps like '1732456800.000100'."""
        self._seq += 1
        micros = self._ts_base * 1_000_000 + self._seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:09d}"

    def _auth_test(self, call: Call) -> Payload:
        return {
            "ok": True,
            "url": "https://release-bot-test.slack.com/",
            "team": TEAM_NAME,
            "user": "release-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, call: Call) -> Payload:
        return {"ok": True, "url": self.socket_url}

    def _chat_post_message(self, call: Call) -> Payload:
        p = call.params
        channel = p.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (p.get("text") or p.get("blocks") or p.get("attachments")):
            return {"ok": False, "error": "no_text"}
        try:
            channel = self.channel_id(str(channel))  # Slack answers with the ID
        except KeyError:
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        message: Payload = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": p.get("text", ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if key in p:
                message[key] = p[key]
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, call: Call) -> Payload:
        """Replaces what is given; blocks left out are kept, as Slack does."""
        p = call.params
        channel, ts = str(p.get("channel", "")), str(p.get("ts", ""))
        if not channel or not ts:
            return {"ok": False, "error": "invalid_arguments"}
        message = self._messages.get((channel, ts))
        if message is None:
            if self.strict:
                return {"ok": False, "error": "message_not_found"}
            message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts}
        updated = {**message, "edited": {"user": BOT_USER_ID, "ts": self._next_ts()}}
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in p:
                updated[key] = p[key]
        self._messages[(channel, ts)] = updated
        text = updated.get("text", "")
        return {"ok": True, "channel": channel, "ts": ts, "text": text, "message": updated}

    def _chat_delete(self, call: Call) -> Payload:
        key = (str(call.params.get("channel", "")), str(call.params.get("ts", "")))
        if self._messages.pop(key, None) is None and self.strict:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _chat_post_ephemeral(self, call: Call) -> Payload:
        if not call.params.get("channel") or not call.params.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_get_permalink(self, call: Call) -> Payload:
        channel = str(call.params.get("channel", ""))
        ts = str(call.params.get("message_ts", "")).replace(".", "")
        link = f"https://release-bot-test.slack.com/archives/{channel}/p{ts}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _view(self, spec: Any, view_id: str) -> Payload:
        """The view object Slack returns: the submitted spec plus server-side fields."""
        spec = spec if isinstance(spec, dict) else {}
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": spec.get("type", "modal"),
            "title": spec.get("title"),
            "submit": spec.get("submit"),
            "close": spec.get("close"),
            "blocks": spec.get("blocks", []),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{self._ts_base}.{self._seq:08d}",
            "clear_on_close": spec.get("clear_on_close", False),
            "notify_on_close": spec.get("notify_on_close", False),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }

    def _views_open(self, call: Call) -> Payload:
        p = call.params
        if not (p.get("trigger_id") or p.get("interactivity_pointer")):
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(p.get("view"), dict):
            return {"ok": False, "error": "invalid_arguments"}
        view = self._view(p["view"], self._next_id("V"))
        self._views[view["id"]] = view
        return {"ok": True, "view": view}

    def _views_update(self, call: Call) -> Payload:
        p = call.params
        view_id = p.get("view_id") or self._view_by_external_id(p.get("external_id"))
        if not view_id or (self.strict and view_id not in self._views):
            return {"ok": False, "error": "not_found"}
        view = self._view(p.get("view"), str(view_id))
        self._views[view["id"]] = view
        return {"ok": True, "view": view}

    def _view_by_external_id(self, external_id: Any) -> str | None:
        if not external_id:
            return None
        for view in self._views.values():
            if view.get("external_id") == external_id:
                return str(view["id"])
        return None if self.strict else self._next_id("V")

    def _views_publish(self, call: Call) -> Payload:
        """One Home tab per user: publishing again keeps its id."""
        user_id = call.params.get("user_id")
        if not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = self._home_views.setdefault(str(user_id), self._next_id("V"))
        view = self._view({"type": "home", **(call.params.get("view") or {})}, view_id)
        self._views[view_id] = view
        return {"ok": True, "view": view}

    def _user(self, user_id: str, name: str, real_name: str, tz: str) -> Payload:
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            **_tz_fields(tz),
            "is_admin": False,
            "is_bot": user_id == BOT_USER_ID,
            "profile": {
                "real_name": real_name,
                "display_name": name,
                "email": f"{name}@example.com",
                "team": TEAM_ID,
            },
        }

    def _users_info(self, call: Call) -> Payload:
        user_id = str(call.params.get("user", ""))
        user = self._users.get(user_id)
        if user is None:
            if self.strict or not user_id:
                return {"ok": False, "error": "user_not_found"}
            user = self._user(user_id, user_id.lower(), f"User {user_id}", "America/Los_Angeles")
        return {"ok": True, "user": user}

    def _channel(self, channel_id: str, name: str, is_private: bool) -> Payload:
        return {
            "id": channel_id,
            "name": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": is_private,
            "is_archived": False,
            "is_member": True,
            "created": self._ts_base,
            "creator": BOT_USER_ID,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _conversations_info(self, call: Call) -> Payload:
        channel_id = str(call.params.get("channel", ""))
        channel = self._channels.get(channel_id)
        if channel is None:
            if self.strict or not channel_id:
                return {"ok": False, "error": "channel_not_found"}
            channel = self._channel(channel_id, channel_id.lower(), False)
        return {"ok": True, "channel": channel}

    def _listed(self, message: Payload, call: Call) -> Payload:
        """A message as conversations.history/replies list it: metadata only when asked."""
        shown = dict(message)
        if str(call.params.get("include_all_metadata", "")).lower() not in ("1", "true"):
            shown.pop("metadata", None)
        return shown

    def _page(self, items: list[Payload], call: Call, key: str = "messages") -> Payload:
        """One page of `items` (`limit`, `cursor` an offset), as Slack pages them."""
        start = int(str(call.params.get("cursor") or 0))
        limit = int(str(call.params.get("limit") or 100))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "ok": True,
            key: [self._listed(m, call) for m in page] if key == "messages" else page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_list(self, call: Call) -> Payload:
        """The channels of `types` (public by default), in pages of `limit` (`cursor` an
        offset); archived ones too unless `exclude_archived`."""
        p = call.params
        types = set(str(p.get("types") or "public_channel").split(","))
        if not types <= {"public_channel", "private_channel", "mpim", "im"}:
            return {"ok": False, "error": "invalid_types"}
        archived = str(p.get("exclude_archived", "")).lower() not in ("1", "true")
        channels = [
            dict(c)
            for c in self._channels.values()
            if ("private_channel" if c["is_private"] else "public_channel") in types
            and (archived or not c["is_archived"])
        ]
        return self._page(channels, call, "channels")

    def _conversations_history(self, call: Call) -> Payload:
        """The channel's top-level messages, newest first (thread replies are not listed).
        Only an ID is understood, as on Slack: a name is `channel_not_found`."""
        channel = str(call.params.get("channel", ""))
        if not CHANNEL_ID.fullmatch(channel):
            return {"ok": False, "error": "channel_not_found"}
        found = [
            m
            for (c, ts), m in self._messages.items()
            if c == channel and m.get("thread_ts", ts) == ts
        ]
        return self._page(sorted(found, key=lambda m: float(m["ts"]), reverse=True), call)

    def _conversations_replies(self, call: Call) -> Payload:
        """A thread: its parent first, then its replies, oldest first."""
        channel, ts = str(call.params.get("channel", "")), str(call.params.get("ts", ""))
        parent = self._messages.get((channel, ts))
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        replies = [
            m for (c, t), m in self._messages.items() if c == channel and m.get("thread_ts") == ts
        ]
        return self._page([parent, *sorted(replies, key=lambda m: float(m["ts"]))], call)

    def _files_get_upload_url(self, call: Call) -> Payload:
        p = call.params
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        self._files[file_id] = {"name": p["filename"], "length": int(p["length"])}
        return {"ok": True, "upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, call: Call) -> Payload:
        """Only files whose bytes arrived can be completed, as on Slack. Given a
        ``channel_id`` (and a ``thread_ts``), the files are shared there as Slack does: one
        ``file_share`` message carrying them, its text the ``initial_comment``."""
        p = call.params
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            return {"ok": False, "error": "invalid_arguments"}
        files: list[Payload] = []
        for entry in entries:
            file_id = entry.get("id") if isinstance(entry, dict) else None
            if file_id not in self._uploads:
                return {"ok": False, "error": "file_not_found"}
            files.append(self._file_object(cast(Payload, entry)))
        channel = p.get("channel_id")
        if channel:
            ts = self._next_ts()
            message: Payload = {
                "type": "message",
                "subtype": "file_share",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "text": p.get("initial_comment", ""),
                "files": files,
                "upload": True,
                "display_as_bot": False,
                "ts": ts,
            }
            if p.get("thread_ts"):
                message["thread_ts"] = p["thread_ts"]
            self._messages[(str(channel), ts)] = message
        return {"ok": True, "files": files}

    def _file_object(self, entry: Payload) -> Payload:
        file_id = str(entry["id"])
        name = str(self._files[file_id]["name"])
        return {
            "id": file_id,
            "name": name,
            "title": entry.get("title") or name,
            "mimetype": mimetypes.guess_type(name)[0] or "application/octet-stream",
            "size": len(self._uploads[file_id]),
            "user": BOT_USER_ID,
            "created": self._ts_base,
        }
