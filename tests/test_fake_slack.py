"""The Slack fake, driven by the real slack_sdk WebClient so its encodings are what we test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fake_slack import BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack
from tests.slack_signing import (
    block_action_body,
    event_body,
    post,
    signed_headers,
    slash_command_body,
    url_verification_body,
    view_submission_body,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "head", "text": {"type": "mrkdwn", "text": "*api* v2"}},
    {
        "type": "actions",
        "block_id": "release_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "r-1",
            }
        ],
    },
]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake.url)


def test_auth_test_answers_the_bot_identity_bolt_needs(fake: FakeSlack, client: WebClient) -> None:
    response = client.auth_test()

    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        BOT_USER_ID,
        BOT_ID,
        TEAM_ID,
    )
    assert response.headers["X-OAuth-Scopes"]
    assert fake.last("auth.test").headers["authorization"] == "Bearer xoxb-test"
    assert fake.url.endswith("/api/")


def test_post_then_update_keeps_the_ts_and_changes_the_message(
    fake: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel="C1", text="deploying api v2")
    second = client.chat_postMessage(channel="C1", text="step 1", thread_ts=first["ts"])
    updated = client.chat_update(channel="C1", ts=first["ts"], text="api v2 deployed")

    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["thread_ts"] == first["ts"]
    assert (updated["channel"], updated["ts"], updated["text"]) == (
        "C1",
        first["ts"],
        "api v2 deployed",
    )
    assert fake.message("C1", first["ts"])["text"] == "api v2 deployed"
    assert fake.last("chat.update").params["ts"] == first["ts"]


def test_blocks_arrive_as_objects_whether_sent_as_json_or_form(
    fake: FakeSlack, client: WebClient
) -> None:
    response = client.chat_postMessage(channel="C1", text="card", blocks=BLOCKS)
    client.api_call("chat.postMessage", params={"channel": "C1", "blocks": json.dumps(BLOCKS)})

    as_json, as_form = fake.calls("chat.postMessage")
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert as_json.params["blocks"] == BLOCKS
    assert as_form.params["blocks"] == BLOCKS
    assert response["message"]["blocks"] == BLOCKS


def test_files_upload_v2_runs_the_three_step_external_upload(
    fake: FakeSlack, client: WebClient
) -> None:
    thread = client.chat_postMessage(channel="C1", text="release r-1")["ts"]

    response = client.files_upload_v2(
        channel="C1",
        thread_ts=thread,
        content="p95 went from 120 ms to 180 ms\n",
        filename="canary.txt",
        initial_comment="canary report",
    )

    file_id = response["file"]["id"]
    assert fake.uploaded(file_id) == b"p95 went from 120 ms to 180 ms\n"
    assert [c.method for c in fake.calls()][1:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    assert fake.last("files.getUploadURLExternal").params["length"] == "31"
    done = fake.last("files.completeUploadExternal").params
    assert (done["channel_id"], done["thread_ts"], done["initial_comment"]) == (
        "C1",
        thread,
        "canary report",
    )
    assert done["files"] == [{"id": file_id, "title": "canary.txt"}]


def test_a_completed_upload_is_shared_into_its_thread_as_a_message(
    fake: FakeSlack, client: WebClient
) -> None:
    """As on Slack: completing an upload with ``channel_id``/``thread_ts`` posts one
    ``file_share`` message carrying the file (its text the initial comment), listed by
    conversations.replies; without a channel the file stays private and nothing is posted."""
    thread = client.chat_postMessage(channel="C1", text="release r-1")["ts"]
    client.files_upload_v2(
        channel="C1",
        thread_ts=thread,
        content=b"{}",
        filename="r-1.json",
        title="release report",
        initial_comment="done",
    )
    client.files_upload_v2(content=b"private", filename="alone.txt")

    listed = client.conversations_replies(channel="C1", ts=thread)["messages"]
    assert len(listed) == 2
    shared = listed[1]
    assert (shared["subtype"], shared["thread_ts"], shared["text"]) == (
        "file_share",
        thread,
        "done",
    )
    assert [(f["name"], f["title"]) for f in shared["files"]] == [("r-1.json", "release report")]
    assert float(shared["ts"]) > float(thread)
    assert [m["ts"] for m in fake.messages("C1")] == [thread, shared["ts"]]


def test_a_lost_answer_can_be_for_one_channel_only(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    applied = fake.lose_next_answer("chat.postMessage", channel="C2")
    assert client.chat_postMessage(channel="C1", text="answered")["ok"]
    assert not applied.is_set()
    with pytest.raises(OSError, match="without response"):
        client.chat_postMessage(channel="C2", text="lost")
    assert applied.is_set() and [m["text"] for m in fake.messages("C2")] == ["lost"]


def test_rate_limit_is_retried_by_the_sdk_retry_handler(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=0)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))

    response = client.chat_postMessage(channel="C1", text="hi")

    assert response["ok"]
    assert fake.count("chat.postMessage") == 2


def test_rate_limit_fails_without_a_retry_handler(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C1", text="hi")

    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel="C1", text="hi again")["ok"]


def test_fail_next_with_status_200_is_an_api_error(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.update", status=200, error="message_not_found", times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_update(channel="C1", ts="1.000100", text="x")
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == "message_not_found"
    assert client.chat_update(channel="C1", ts="1.000100", text="x")["ok"]


def test_tokens_are_checked() -> None:
    with FakeSlack(tokens={"xoxb-good"}) as fake:
        assert WebClient(token="xoxb-good", base_url=fake.url).auth_test()["ok"]
        with pytest.raises(SlackApiError, match="invalid_auth"):
            WebClient(token="xoxb-stolen", base_url=fake.url).auth_test()
        with pytest.raises(SlackApiError, match="not_authed"):
            WebClient(base_url=fake.url).auth_test()
        assert fake.count("auth.test") == 3


def test_socket_mode_needs_an_app_token(fake: FakeSlack, client: WebClient) -> None:
    app_client = WebClient(token="xapp-1-test", base_url=fake.url)

    assert app_client.apps_connections_open(app_token="xapp-1-test")["url"] == fake.socket_url
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        client.apps_connections_open(app_token="xoxb-test")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        app_client.chat_postMessage(channel="C1", text="hi")


def test_views_users_and_channels(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U1", "ada", "Ada Lovelace", tz="Europe/London")
    modal = {"type": "modal", "callback_id": "plan", "title": {"type": "plain_text", "text": "P"}}

    opened = client.views_open(trigger_id="1.2.3", view=modal)["view"]
    updated = client.views_update(view_id=opened["id"], view={**modal, "blocks": BLOCKS})["view"]
    home = client.views_publish(user_id="U1", view={"type": "home", "blocks": []})["view"]
    user = client.users_info(user="U1")["user"]

    assert opened["id"] == updated["id"] != home["id"]
    assert (opened["callback_id"], updated["blocks"]) == ("plan", BLOCKS)
    assert (user["name"], user["real_name"], user["tz"]) == ("ada", "Ada Lovelace", "Europe/London")
    assert client.conversations_info(channel="C9")["channel"]["id"] == "C9"


def test_strict_mode_rejects_unknown_objects() -> None:
    with FakeSlack(strict=True) as fake:
        client = WebClient(token="xoxb-test", base_url=fake.url)
        with pytest.raises(SlackApiError, match="user_not_found"):
            client.users_info(user="U404")
        with pytest.raises(SlackApiError, match="message_not_found"):
            client.chat_update(channel="C1", ts="1.000100", text="x")


def test_unknown_methods_and_overrides(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError, match="unknown_method"):
        client.api_call("releases.ship")
    fake.set_response("releases.ship", lambda call: {"shipped": call.params["id"]})

    assert client.api_call("releases.ship", params={"id": "r-1"})["shipped"] == "r-1"
    assert fake.count("releases.ship") == 2


def test_response_url_posts_are_recorded(fake: FakeSlack) -> None:
    url = fake.response_url("cmd-1")

    response = WebhookClient(url).send(text="queued", response_type="ephemeral")
    status, _, body = post(url, "not json", {"Content-Type": "application/json"})

    assert (response.status_code, response.body) == (200, "ok")
    assert fake.responses("cmd-1")[0] == {"text": "queued", "response_type": "ephemeral"}
    assert (status, body) == (400, "invalid_payload")
    assert fake.count("response_url") == 2


def test_wait_for_sees_calls_from_another_thread(fake: FakeSlack, client: WebClient) -> None:
    worker = threading.Thread(target=lambda: client.chat_postMessage(channel="C1", text="later"))
    worker.start()

    calls = fake.wait_for("chat.postMessage", timeout=30)  # a timeout would raise instead
    worker.join()

    assert calls[0].params["text"] == "later"


def test_wait_for_times_out_with_what_was_seen(fake: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    started = time.monotonic()

    with pytest.raises(AssertionError, match=r"chat\.postMessage.*auth\.test x1"):
        fake.wait_for("chat.postMessage", timeout=0.2)

    assert time.monotonic() - started >= 0.2  # it waited its timeout out


def test_reset_forgets_calls_and_faults(fake: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    fake.fail_next("auth.test")
    fake.reset()

    assert fake.calls() == []
    assert client.auth_test()["ok"]
    with pytest.raises(AssertionError, match=r"no chat\.update call"):
        fake.last("chat.update")


def test_signed_headers_verify_with_the_right_secret_only() -> None:
    body = slash_command_body("deploy api 2.0", "U1", "C1")
    headers = signed_headers(body, SECRET)
    ts, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(SECRET).is_valid(body, ts, signature)
    assert not SignatureVerifier("another-secret").is_valid(body, ts, signature)
    assert not SignatureVerifier(SECRET).is_valid(body + "x", ts, signature)
    stale = signed_headers(body, SECRET, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier(SECRET).is_valid_request(body, stale)


def test_bodies_have_slack_shapes() -> None:
    command = parse_qs(slash_command_body("plan api", "U1", "C1"))
    action = json.loads(
        parse_qs(block_action_body("approve", "r-1", "U2", "C1", "1.000100"))["payload"][0]
    )
    values = {"env": {"pick": {"type": "static_select", "selected_option": {"value": "prod"}}}}
    view = json.loads(
        parse_qs(view_submission_body("plan", values, "U3", '{"channel": "C1"}'))["payload"][0]
    )
    event = json.loads(event_body({"type": "app_mention", "text": "hi"}))

    assert (command["command"], command["text"], command["user_id"]) == (
        ["/release"],
        ["plan api"],
        ["U1"],
    )
    assert (action["user"]["id"], action["channel"]["id"]) == ("U2", "C1")
    assert action["container"]["message_ts"] == action["message"]["ts"] == "1.000100"
    assert (action["actions"][0]["action_id"], action["actions"][0]["value"]) == ("approve", "r-1")
    assert view["view"]["state"]["values"] == values
    assert json.loads(view["view"]["private_metadata"]) == {"channel": "C1"}
    assert (event["type"], event["team_id"], event["event"]["type"]) == (
        "event_callback",
        "T1",
        "app_mention",
    )
    assert event["event_id"].startswith("Ev") and isinstance(event["event_time"], int)
    assert (
        signed_headers(url_verification_body("abc"), SECRET)["Content-Type"] == "application/json"
    )


def test_history_and_replies_list_metadata_only_when_asked(
    fake: FakeSlack, client: WebClient
) -> None:
    named = {"event_type": "release_bot_post", "event_payload": {"post": "card"}}
    card = client.chat_postMessage(channel="C1", text="card", metadata=named)["ts"]
    replies = [
        client.chat_postMessage(channel="C1", text=f"reply {n}", thread_ts=card)["ts"]
        for n in range(3)
    ]
    later = client.chat_postMessage(channel="C1", text="later")["ts"]

    history = client.conversations_history(channel="C1")["messages"]
    assert [m["ts"] for m in history] == [later, card]  # newest first, no replies
    assert all("metadata" not in m for m in history)
    with_metadata = client.conversations_history(channel="C1", include_all_metadata=True)
    assert with_metadata["messages"][1]["metadata"] == named

    first = client.conversations_replies(channel="C1", ts=card, limit=2)
    assert [m["ts"] for m in first["messages"]] == [card, replies[0]]
    cursor = first["response_metadata"]["next_cursor"]
    rest = client.conversations_replies(channel="C1", ts=card, limit=2, cursor=cursor)
    assert [m["ts"] for m in rest["messages"]] == replies[1:]
    assert rest["response_metadata"]["next_cursor"] == ""
    with pytest.raises(SlackApiError, match="thread_not_found"):
        client.conversations_replies(channel="C1", ts="1.000000")


def test_a_lost_answer_is_applied_but_never_answered(fake: FakeSlack) -> None:
    client = WebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[])
    client.chat_postMessage(channel="C1", text="answered")
    applied = fake.lose_next_answer("chat.postMessage", after=1)
    client.chat_postMessage(channel="C1", text="answered too")
    assert not applied.is_set()

    with pytest.raises(OSError, match="without response"):
        client.chat_postMessage(channel="C1", text="lost")

    assert applied.is_set()
    assert [m["text"] for m in fake.messages("C1")] == ["answered", "answered too", "lost"]
    assert client.chat_postMessage(channel="C1", text="answered again")["ok"]


def test_a_channel_is_posted_to_by_name_but_read_by_id(fake: FakeSlack, client: WebClient) -> None:
    """As on Slack: chat.postMessage takes a name and answers the ID; history takes only IDs."""
    fake.add_channel("C0INC", "payments-incidents")
    answer = client.chat_postMessage(channel="#payments-incidents", text="rolling back")
    assert answer["channel"] == "C0INC"
    assert [m["text"] for m in fake.messages("#payments-incidents")] == ["rolling back"]
    assert fake.messages("C0INC") == fake.messages("payments-incidents")
    assert len(client.conversations_history(channel="C0INC")["messages"]) == 1
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.conversations_history(channel="#payments-incidents")
    made_up = client.chat_postMessage(channel="#elsewhere", text="hi")["channel"]
    assert made_up != "#elsewhere" and fake.channel_id("#elsewhere") == made_up


def test_conversations_list_pages_and_filters(fake: FakeSlack, client: WebClient) -> None:
    fake.add_channel("C1", "one")
    fake.add_channel("C2", "two", is_archived=True)
    fake.add_channel("G3", "three", is_private=True)
    fake.add_channel("C4", "four")

    def names(**args: Any) -> list[str]:
        listed: list[str] = []
        while True:
            page = client.conversations_list(**args)
            listed += [c["name"] for c in page["channels"]]
            if not page["response_metadata"]["next_cursor"]:
                return listed
            args["cursor"] = page["response_metadata"]["next_cursor"]

    assert names() == ["one", "two", "four"]  # public channels, archived ones too
    both = {"types": "public_channel,private_channel", "exclude_archived": True}
    assert names(**both, limit=2) == ["one", "three", "four"]
    assert len(fake.calls("conversations.list")) == 1 + 2
    with pytest.raises(SlackApiError, match="invalid_types"):
        client.conversations_list(types="channels")
    fake.fail_next("conversations.list", status=200, error="missing_scope")
    with pytest.raises(SlackApiError, match="missing_scope"):
        client.conversations_list()
