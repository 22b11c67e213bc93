"""``release-bot serve`` in Socket Mode: the real wiring, slack_sdk's real built-in client, a
real WebSocket to a local fake of Slack's endpoint, and the fake Web API behind it.

No patching: ``SLACK_APP_TOKEN`` selects Socket Mode, FakeSlack's ``apps.connections.open``
hands out the fake socket's ``ws://`` URL, and envelopes travel as WebSocket frames.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.domain.release import Release
from bot.serve.wiring import SlackWiring, wire
from bot.slack import blocks
from tests.fake_slack import BOT_USER_ID, FakeSlack
from tests.fake_socket_mode import (
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FakeSocketMode,
    Frame,
    accept_key,
    parse_frame,
)
from tests.slack_app_harness import (
    ALICE,
    CHANNEL,
    CLOCK_START,
    DAVE,
    blocks_text,
    settings_for,
    thread_messages,
    wait_until,
)
from tests.slack_signing import block_action_body, event_body, post, slash_command_body
from tests.test_serve import _env, _serve

APP_TOKEN = "xapp-1-A0APP-1-fake"
LINE = 'shop 1.2.0 risk=medium ticket=CHG-1 changes="faster checkout"'
# A hang guard, not a speed test: Slack's 3 s deadline is bench-ack's to measure.
ACK_WITHIN = 30.0


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def socket_mode(fake: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as server:
        fake.socket_url = server.url
        yield server


@pytest.fixture
def wired(fake: FakeSlack, socket_mode: FakeSocketMode, tmp_path: Path) -> Iterator[SlackWiring]:
    """``serve``'s wiring started as ``serve_forever`` starts it, stopped however the test ends,
    and checked to leave no thread behind."""
    settings = settings_for(
        fake,
        tmp_path,
        slack_app_token=APP_TOKEN,
        slack_signing_secret=None,  # Socket Mode needs none: Slack's identity is the socket
        release_bot_tick_seconds=300,  # no real tick fires during a test
    )
    assert settings.mode == "socket"
    before = set(threading.enumerate())
    running = wire(settings, virtual_clock=True, clock_start=CLOCK_START)
    running.server.start()
    yield running
    running.server.stop()  # a second stop() is harmless when the test stopped it already
    running.wiring.close()
    wait_until(lambda: not _left_running(before), what="the app's threads to end")


def _left_running(before: set[threading.Thread]) -> list[str]:
    # Bolt's listener pool (created in build_app) is never shut down: idle, it holds nothing.
    return [
        t.name
        for t in set(threading.enumerate()) - before
        if t.is_alive() and not t.name.startswith("release-bot-listener")
    ]


def _release(wired: SlackWiring) -> Release:
    services = wired.wiring.services
    ids = [str(r["id"]) for r in services.store.listing(limit=1)]
    assert ids, "no release was stored"
    return services.store.get(ids[0])


def _command_payload(fake: FakeSlack, text: str, user: str, name: str) -> dict[str, str]:
    """A slash command envelope carries the very fields Slack would POST, as a JSON object."""
    body = slash_command_body(text, user, CHANNEL, response_url=fake.response_url(name))
    return dict(parse_qsl(body, keep_blank_values=True))


def _click_payload(
    fake: FakeSlack, action_id: str, release_id: str, user: str, message: dict[str, Any]
) -> dict[str, Any]:
    """A button click envelope carries the interaction payload that HTTP sends as ``payload=``."""
    block_id = next(
        b.get("block_id", "")
        for b in message.get("blocks", [])
        if b.get("type") == "actions"
        and any(e.get("action_id") == action_id for e in b.get("elements", []))
    )
    body = block_action_body(
        action_id,
        release_id,
        user,
        CHANNEL,
        message["ts"],
        response_url=fake.response_url(action_id),
        message_blocks=message.get("blocks", []),
        block_id=block_id,
    )
    payload: dict[str, Any] = json.loads(dict(parse_qsl(body))["payload"])
    return payload


def _approval_request(fake: FakeSlack, thread_ts: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next(
            (
                m
                for m in fake.messages(CHANNEL, thread_ts)
                if blocks.APPROVAL_BLOCK in blocks_text(m.get("blocks", []))
            ),
            None,
        )

    found: dict[str, Any] = wait_until(find, what="an approval request in the thread")
    return found


def _acked(socket_mode: FakeSocketMode, envelope_id: str) -> dict[str, Any]:
    return socket_mode.wait_ack(envelope_id, timeout=ACK_WITHIN)


def test_it_connects_with_the_app_token_serves_health_and_stops_cleanly(
    wired: SlackWiring, fake: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    opened = fake.last("apps.connections.open")
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
    connection = socket_mode.wait_connected()
    assert connection.path.startswith("/link/?ticket=fake-ticket")
    wait_until(lambda: connection.pings, what="the client's first ping")  # answered with a pong
    assert wired.server.socket_mode is not None
    client = wired.server.socket_mode.client  # slack_sdk's SocketModeClient
    assert client.is_connected()

    port = wired.server.port
    status, _, body = post(f"http://127.0.0.1:{port}/healthz", "", {}, method="GET")
    assert status == 200 and json.loads(body)["scheduler"] == "running"
    # Slack's requests come over the socket only: no unauthenticated HTTP way in.
    assert post(f"http://127.0.0.1:{port}/slack/events", "{}", {})[0] == 404

    wired.server.stop()
    socket_mode.wait_closed(connection, timeout=30)  # a hang guard
    assert not client.is_connected()
    time.sleep(0.2)  # a reconnect would open a new ticket and a second connection
    assert fake.count("apps.connections.open") == 1
    assert len(socket_mode.connections) == 1 and connection.error is None


def test_commands_buttons_and_events_arrive_over_the_socket(
    wired: SlackWiring, fake: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    """Slack's three kinds of envelope, each acked in time and acted upon."""
    socket_mode.wait_connected()
    envelope = socket_mode.push("slash_commands", _command_payload(fake, LINE, DAVE, "cmd"))
    ack = _acked(socket_mode, envelope)
    assert ack == {"envelope_id": envelope}

    tops = wait_until(lambda: fake.messages(CHANNEL, thread_ts=""), what="the release's card")
    assert len(tops) == 1
    thread = tops[0]["ts"]
    approval = _approval_request(fake, thread)
    assert thread_messages(fake, thread), "nothing was posted in the release's thread"
    release = _release(wired)
    assert release.status == "awaiting_approval"

    click = _click_payload(fake, blocks.APPROVE, release.id, ALICE, approval)
    envelope = socket_mode.push("interactive", click)
    ack = _acked(socket_mode, envelope)
    assert ack["envelope_id"] == envelope
    wait_until(lambda: _release(wired).status != "awaiting_approval", what="the approval")
    approvals = [
        e for e in wired.wiring.services.store.events(release.id) if e.action == "approved"
    ]
    assert [e.actor for e in approvals] == [ALICE]

    mention = {
        "type": "app_mention",
        "user": DAVE,
        "text": f"<@{BOT_USER_ID}> why",
        "channel": CHANNEL,
        "ts": "1900000000.000100",
        "thread_ts": thread,
    }
    event = json.loads(event_body(mention))

    def answers() -> list[dict[str, Any]]:
        return [m for m in fake.messages(CHANNEL, thread) if "no metrics judged yet" in m["text"]]

    envelope = socket_mode.push("events_api", event)
    ack = _acked(socket_mode, envelope)
    assert ack == {"envelope_id": envelope}
    wait_until(answers, what="the answer to why, in the thread")
    # Slack redelivers an event it thinks was lost: a new envelope, the same event_id.
    envelope = socket_mode.push("events_api", event, retry_attempt=1)
    assert socket_mode.wait_ack(envelope, timeout=ACK_WITHIN)["envelope_id"] == envelope
    time.sleep(0.3)  # a second answer, if any, would be posted by now
    assert len(answers()) == 1


def test_a_refused_app_token_gives_one_line(tmp_path: Path) -> None:
    with FakeSlack(tokens=["xoxb-good", "xapp-good"]) as fake:
        env = _env(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-good",
            SLACK_APP_TOKEN="xapp-refused",
            SLACK_API_URL=fake.url,
            PORT="0",
            HOST="127.0.0.1",
        )
        process = _serve(tmp_path, env)
        _, err = process.communicate(timeout=30)
        assert fake.last("apps.connections.open").headers["authorization"].endswith("refused")
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert process.returncode == 1, err
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
    assert "SLACK_APP_TOKEN" in errors[0] and "invalid_auth" in errors[0]
    assert "Traceback" not in err


# -- the fake itself speaks RFC 6455 --------------------------------------------------------------


def _raw_client(server: FakeSocketMode) -> tuple[socket.socket, bytes]:
    """A bare TCP client that sends the upgrade request; returns the socket and the answer."""
    sock = socket.create_connection(server.address, timeout=2)
    sock.sendall(
        b"GET /link/?ticket=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    return sock, answer


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])  # payloads < 126 here
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _next_frame(sock: socket.socket, buffer: bytes, opcode: int) -> tuple[Frame, bytes]:
    """The next frame with `opcode` (skipping the fake's pings) and what is left over."""
    while True:
        parsed = parse_frame(buffer)
        if parsed is None:
            chunk = sock.recv(4096)
            assert chunk, f"the fake closed the connection before an opcode {opcode} frame"
            buffer += chunk
            continue
        frame, used = parsed
        buffer = buffer[used:]
        if frame.opcode == opcode:
            return frame, buffer


def test_the_fake_follows_rfc_6455() -> None:
    # The example handshake of RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with FakeSocketMode() as server:
        sock, answer = _raw_client(server)
        with sock:
            head, _, rest = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
            hello, rest = _next_frame(sock, rest, OP_TEXT)
            assert not hello.masked and json.loads(hello.payload)["type"] == "hello"

            sock.sendall(_masked(OP_PING, b"are you there"))
            pong, rest = _next_frame(sock, rest, OP_PONG)
            assert pong.payload == b"are you there"

            # An ack split over two frames (a continuation) is put back together.
            ack = json.dumps({"envelope_id": "e1", "payload": {"text": "ok"}}).encode()
            sock.sendall(_masked(OP_TEXT, ack[:10], fin=False) + _masked(OP_CONTINUATION, ack[10:]))
            assert server.wait_ack("e1", timeout=2)["payload"] == {"text": "ok"}

            sock.sendall(b"\x81\x02hi")  # unmasked: a protocol error, answered with 1002
            close, _ = _next_frame(sock, rest, OP_CLOSE)
            assert close.payload[:2] == b"\x03\xea"
            server.wait_closed(timeout=2)
            assert server.connections[0].error

        with socket.create_connection(server.address, timeout=2) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert plain.recv(4096).startswith(b"HTTP/1.1 400 ")
        assert len(server.rejected) == 1
