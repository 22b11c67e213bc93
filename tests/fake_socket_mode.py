"""A local fake of Slack's Socket Mode WebSocket endpoint, for tests.

`FakeSlack`'s `apps.connections.open` hands out a URL; point it here with
`fake.socket_url = socket.url` and slack_sdk's built-in client connects for real. The server
is a small RFC 6455 implementation on the stdlib (a plain TCP socket on 127.0.0.1, port 0):
the built-in client speaks TLS only to port 443, so a `ws://127.0.0.1:<port>` URL needs no
certificate. It sends Slack's `hello`, pushes envelopes, records the acks and answers pings.

    with FakeSocketMode() as socket_mode:
        fake.socket_url = socket_mode.url
        ...  # start the app
        connection = socket_mode.wait_connected()
        envelope_id = socket_mode.push("slash_commands", {"command": "/release", ...})
        ack = socket_mode.wait_ack(envelope_id)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from tests.fake_slack import APP_ID

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
#: Close codes: 1000 normal, 1001 going away (the server stops), 1002 protocol error.
NORMAL, GOING_AWAY, PROTOCOL_ERROR = 1000, 1001, 1002
MAX_HANDSHAKE = 16384

Payload = dict[str, Any]


class _Closed(Exception):
    """The peer went away: EOF, a reset, or a close frame."""


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    masked: bool
    payload: bytes


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, unmasked frame: servers must not mask (RFC 6455 section 5.1)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n <= 125:
        head += bytes([n])
    elif n <= 0xFFFF:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def parse_frame(buffer: bytes) -> tuple[Frame, int] | None:
    """The first frame in `buffer` and the bytes it used, or None until it has all arrived.

    Nothing is consumed before a frame is complete, so a read timeout never loses bytes.
    """
    if len(buffer) < 2:
        return None
    b1, b2 = buffer[0], buffer[1]
    length, pos = b2 & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        (length,) = struct.unpack("!H", buffer[2:4])
        pos = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        (length,) = struct.unpack("!Q", buffer[2:10])
        pos = 10
    masked = bool(b2 & 0x80)
    mask = b""
    if masked:
        if len(buffer) < pos + 4:
            return None
        mask, pos = buffer[pos : pos + 4], pos + 4
    if len(buffer) < pos + length:
        return None
    payload = buffer[pos : pos + length]
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return Frame(bool(b1 & 0x80), b1 & 0x0F, masked, payload), pos + length


def _hello() -> Payload:
    """What Slack sends first on every Socket Mode connection."""
    return {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {
            "host": "applink-fake",
            "build_number": 1,
            "approximate_connection_time": 18060,
        },
        "connection_info": {"app_id": APP_ID},
    }


@dataclass
class Connection:
    """One client connection: its handshake, what it sent, and how it ended."""

    sock: socket.socket = field(repr=False)
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[Payload] = field(default_factory=list)
    pings: int = 0
    close_code: int | None = None  # the code of the client's close frame, if it sent one
    error: str | None = None  # a protocol violation by the client
    closed: threading.Event = field(default_factory=threading.Event)
    _buffer: bytes = field(default=b"", repr=False)
    _send_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, opcode: int, payload: bytes = b"") -> None:
        """One frame; the reader (pings, pongs) and the test (pushes) both send: the lock."""
        with self._send_lock:
            self.sock.sendall(encode_frame(opcode, payload))

    def send_json(self, message: Payload) -> None:
        self.send(OP_TEXT, json.dumps(message).encode())

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Send a close frame and drop the connection, as Slack does before a refresh."""
        with contextlib.suppress(OSError):  # the client may have left already
            self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode())
        self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(OSError):  # wakes a reader blocked in recv; may be gone
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.closed.set()


class FakeSocketMode:
    """Slack's Socket Mode endpoint: one thread accepts, one thread serves each connection.

    `ping_interval`: the server pings an idle connection this often, as Slack pings its
    clients. Kept short by default because slack_sdk's client blocks in `recv` for up to
    3 s holding a lock its `close()` needs: traffic makes that `recv` return, so the app
    stops in a fraction of a second instead of ~3 s.
    """

    def __init__(self, *, ping_interval: float = 0.05) -> None:
        self.ping_interval = ping_interval
        self._cond = threading.Condition()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.connections: list[Connection] = []
        self.rejected: list[str] = []  # request lines of refused handshakes

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._listener is not None:
            raise RuntimeError("FakeSocketMode is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.05)  # accept polls, so stop() never waits on a blocked accept
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._accept_loop, "fake-socket-mode")
        return self

    def stop(self) -> None:
        """Close every connection (1001 going away) and the port; safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        with self._cond:
            open_ones = [c for c in self.connections if not c.closed.is_set()]
        for connection in open_ones:
            connection.close(GOING_AWAY, "server stopping")
        for thread in self._threads:
            thread.join(timeout=5)
        listener.close()
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("FakeSocketMode is not running: call start() or use it as a context")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """What `apps.connections.open` should return: ws://, so no TLS (see the docstring)."""
        host, port = self.address
        return f"ws://{host}:{port}/link/?ticket=fake-ticket&app_id={APP_ID}"

    # -- what tests do -----------------------------------------------------------------------

    def wait_connected(self, count: int = 1, timeout: float = 5.0) -> Connection:
        """The `count`-th connection, once its handshake is done and `hello` sent."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) >= count, timeout):
                raise AssertionError(
                    f"expected {count} Socket Mode connection(s) within {timeout}s, "
                    f"got {len(self.connections)}; refused handshakes: {self.rejected}"
                )
            return self.connections[count - 1]

    def push(
        self,
        type: str,
        payload: Payload,
        *,
        accepts_response_payload: bool | None = None,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Send an envelope on the newest open connection; returns its `envelope_id`.

        `accepts_response_payload` defaults to Slack's: true for slash commands and
        interactions, false for the Events API. `retry_attempt` > 0 marks an Events API
        redelivery (a new envelope, the same `event_id` in the payload).
        """
        envelope_id = envelope_id or str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = type != "events_api"
        envelope: Payload = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        self._open_connection().send_json(envelope)
        return envelope_id

    def acks(self) -> list[Payload]:
        """Every message a client sent that answers an envelope, oldest first."""
        with self._cond:
            return [m for c in self.connections for m in c.messages if "envelope_id" in m]

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Payload:
        """The app's ack of `envelope_id`: `{"envelope_id": ..., "payload": ...?}`."""

        def found() -> Payload | None:
            return next((m for m in self.acks() if m["envelope_id"] == envelope_id), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"no ack for envelope {envelope_id} within {timeout}s")
            ack = found()
        assert ack is not None
        return ack

    def wait_closed(self, connection: Connection | None = None, timeout: float = 5.0) -> None:
        """Until the client has closed `connection` (the newest by default)."""
        connection = connection or self.wait_connected(max(len(self.connections), 1))
        if not connection.closed.wait(timeout):
            raise AssertionError(f"the client kept its connection open for {timeout}s")

    def _open_connection(self) -> Connection:
        with self._cond:
            live = [c for c in self.connections if not c.closed.is_set()]
        if not live:
            raise AssertionError("no open Socket Mode connection to push to")
        return live[-1]

    # -- server side (own threads) -----------------------------------------------------------

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            self._spawn(self._serve, "fake-socket-mode-conn", sock)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(self.ping_interval)
        connection = self._handshake(sock)
        if connection is None:
            sock.close()
            return
        try:
            connection.send_json(_hello())
            with self._cond:
                self.connections.append(connection)
                self._cond.notify_all()
            self._read_loop(connection)
        except (_Closed, OSError):
            pass
        finally:
            if not connection.closed.is_set():
                connection._drop()
            with self._cond:
                self._cond.notify_all()

    def _handshake(self, sock: socket.socket) -> Connection | None:
        """Read the upgrade request and answer 101, or 400 and None if it is not one."""
        request = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in request:
            if self._stopping.is_set() or time.monotonic() > deadline:
                return None
            if len(request) > MAX_HANDSHAKE:
                return None
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            request += chunk
        head, _, rest = request.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, *_ = [*lines[0].split(" "), "", ""]
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        valid = (
            method == "GET"
            and headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in headers.get("connection", "").lower()
            and headers.get("sec-websocket-version") == "13"
            and key
        )
        if not valid:
            with self._cond:
                self.rejected.append(lines[0])
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return None
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        return Connection(sock, path=path, headers=headers, _buffer=rest)

    def _read_loop(self, connection: Connection) -> None:
        fragments: list[bytes] = []
        while not self._stopping.is_set():
            frame = self._next_frame(connection)
            if frame is None:  # idle for ping_interval: ping, like Slack
                # slack_sdk reads a 2-byte frame as incomplete and waits for more: the
                # payload makes every ping longer than that.
                connection.send(OP_PING, b"fake-slack-ping")
                continue
            if not frame.masked:  # clients must mask (RFC 6455 section 5.1)
                connection.error = f"unmasked frame, opcode {frame.opcode}"
                connection.close(PROTOCOL_ERROR, "frames from a client must be masked")
                return
            if frame.opcode == OP_PING:
                with self._cond:
                    connection.pings += 1
                connection.send(OP_PONG, frame.payload)
            elif frame.opcode == OP_CLOSE:
                code = (
                    struct.unpack("!H", frame.payload[:2])[0] if len(frame.payload) >= 2 else 1005
                )
                connection.close_code = code
                connection.close(NORMAL if code == 1005 else code)
                return
            elif frame.opcode in (OP_TEXT, OP_CONTINUATION):
                fragments.append(frame.payload)
                if frame.fin:
                    self._received(connection, b"".join(fragments))
                    fragments = []
            # pongs and binary frames: nothing to do

    def _next_frame(self, connection: Connection) -> Frame | None:
        """The next complete frame, or None after `ping_interval` without one."""
        while True:
            parsed = parse_frame(connection._buffer)
            if parsed is not None:
                frame, used = parsed
                connection._buffer = connection._buffer[used:]
                return frame
            try:
                chunk = connection.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise _Closed
            connection._buffer += chunk

    def _received(self, connection: Connection, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {"text": data.decode("utf-8", "replace")}
        if not isinstance(message, dict):
            message = {"value": message}
        with self._cond:
            connection.messages.append(message)
            self._cond.notify_all()
