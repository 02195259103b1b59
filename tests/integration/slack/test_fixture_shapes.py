"""Every answer of the local Slack has the shape Slack gives: the keys and value types of the
response files under tests/fixtures/slack/ (recorded, masked field catalogues, or written from
the documentation; see the README there). Values are not compared, shapes are.

A shape is the JSON value with every scalar replaced by its type name; a list keeps the shape of
its first item.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from janitor.devserver.slack import SlackDevServer, SlackUser

pytestmark = pytest.mark.integration

# Users the slack_server fixture (tests/conftest.py) seeds: active, and deactivated.
ALICE = SlackUser("U0000000002", "alice@example.com", "alice", "Alice Example", "Europe/London")
CAROL = SlackUser("U0000000004", "carol@example.com", "carol", "Carol Example", deleted=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "slack"


def fixture(name: str) -> dict[str, Any]:
    exchange: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return exchange


def body(name: str) -> dict[str, Any]:
    answer: dict[str, Any] = fixture(name)["response"]["body"]
    return answer


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_within(answer: Any, catalogue: Any, path: str = "") -> None:
    """Every key of `answer` is a key of `catalogue`, with a value of the same shape kind."""
    if isinstance(catalogue, dict):
        assert isinstance(answer, dict), f"{path}: {answer!r} is not an object"
        for key, value in answer.items():
            assert key in catalogue, f"{path}.{key}: not a key Slack answers"
            assert_within(value, catalogue[key], f"{path}.{key}")
    elif isinstance(catalogue, list):
        assert isinstance(answer, list), f"{path}: {answer!r} is not a list"
        if answer and catalogue:
            assert_within(answer[0], catalogue[0], f"{path}[0]")
    elif catalogue is not None:  # null in a catalogue: any type
        assert type(answer) is type(catalogue), f"{path}: {answer!r} vs {catalogue!r}"


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def data_of(response: SlackResponse) -> dict[str, Any]:
    assert isinstance(response.data, dict)
    return response.data


def header(response: SlackResponse, name: str) -> str:
    found = {k.lower(): v for k, v in response.headers.items()}[name.lower()]
    return found[0] if isinstance(found, list) else str(found)


def error_response(call: Any) -> SlackResponse:
    with pytest.raises(SlackApiError) as info:
        call()
    response: SlackResponse = info.value.response
    return response


def assert_status_and_type(response: SlackResponse, name: str) -> None:
    recorded = fixture(name)["response"]
    assert response.status_code == recorded["status"]
    content_type = {k.lower(): v for k, v in recorded["headers"].items()}["content-type"]
    assert header(response, "Content-Type") == content_type


MASKED_USER = body("users.lookupByEmail.masked_union.json")["user"]
RECORDED_USER = body("users.info.recorded.json")["user"]


# -- chat.postMessage ---------------------------------------------------------------------------


def test_post_message_ok(slack: WebClient) -> None:
    name = "chat.postMessage.ok.from-docs.json"

    answer = slack.chat_postMessage(channel=ALICE.id, text="Your GPU VM example-vm is idle")

    assert_status_and_type(answer, name)
    assert shape(answer.data) == shape(body(name))
    assert answer["channel"].startswith("D")


def test_post_message_ok_with_blocks(slack: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "idle"}}]

    answer = slack.chat_postMessage(channel="#ml-spend", text="idle", blocks=blocks)

    data = data_of(answer)
    expected = shape(body("chat.postMessage.ok.from-docs.json"))
    assert shape({**data, "message": without(data["message"], "blocks")}) == expected
    assert data["message"]["blocks"] == blocks  # documented: the posted message carries its blocks


# -- users --------------------------------------------------------------------------------------


def test_lookup_by_email_ok(slack: WebClient) -> None:
    name = "users.lookupByEmail.ok.from-docs.json"

    answer = slack.users_lookupByEmail(email=ALICE.email)

    assert_status_and_type(answer, name)
    assert shape(answer.data) == shape(body(name))
    assert_within(answer["user"], MASKED_USER, "user")


def test_lookup_by_email_users_not_found(slack: WebClient) -> None:
    name = "users.lookupByEmail.users_not_found.from-docs.json"

    response = error_response(lambda: slack.users_lookupByEmail(email="nobody@example.com"))

    assert_status_and_type(response, name)
    assert response.data == body(name)


def test_users_info_ok_is_the_lookup_envelope(slack: WebClient) -> None:
    answer = slack.users_info(user=ALICE.id)

    assert_status_and_type(answer, "users.info.recorded.json")
    assert shape(answer.data) == shape(body("users.lookupByEmail.ok.from-docs.json"))
    assert set(answer.data) == set(body("users.info.recorded.json"))
    assert_within(answer["user"], MASKED_USER, "user")


def test_users_info_of_a_deactivated_user_is_shaped_like_the_recording(slack: WebClient) -> None:
    user = slack.users_info(user=CAROL.id)["user"]

    assert shape(without(user, "profile")) == shape(without(RECORDED_USER, "profile"))
    assert_within(user["profile"], MASKED_USER["profile"], "user.profile")


def test_users_info_of_a_deactivated_bot_matches_the_recording(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack_server.add_user(
        SlackUser("U0000000001", "aws@example.com", "aws", "AWS Cloud", deleted=True, is_bot=True)
    )

    user = slack.users_info(user="U0000000001")["user"]

    assert shape(without(user, "profile")) == shape(without(RECORDED_USER, "profile"))
    assert_within(user["profile"], RECORDED_USER["profile"], "user.profile")
    assert user["profile"]["bot_id"].startswith("B")


def test_users_list_members(slack: WebClient) -> None:
    answer = slack.users_list(limit=2)

    assert set(answer.data) == {"ok", "members", "cache_ts", "response_metadata"}
    assert isinstance(answer["cache_ts"], int)
    assert isinstance(answer["response_metadata"]["next_cursor"], str)
    for member in answer["members"]:
        assert_within(member, MASKED_USER, "member")


# -- conversations.open -------------------------------------------------------------------------


def test_conversations_open(slack: WebClient) -> None:
    name = "conversations.open.ok.from-docs.json"
    documented = body(name)

    first = slack.conversations_open(users=ALICE.id)
    again = slack.conversations_open(users=ALICE.id)

    assert_status_and_type(first, name)
    assert shape(first.data) == shape(without(documented, "no_op", "already_open"))
    assert shape(again.data) == shape(documented)


# -- errors -------------------------------------------------------------------------------------


def test_not_authed_is_the_recorded_answer(slack_server: SlackDevServer) -> None:
    name = "auth.test.error_not_authed.recorded.json"

    response = error_response(WebClient(base_url=slack_server.url).auth_test)

    assert_status_and_type(response, name)
    assert response.data == body(name)


def test_ratelimited(slack: WebClient, slack_server: SlackDevServer) -> None:
    name = "ratelimited.429.from-docs.json"
    slack_server.rate_limit("chat.postMessage", times=1, retry_after=30)

    response = error_response(lambda: slack.chat_postMessage(channel="#a", text="x"))

    assert_status_and_type(response, name)
    assert response.data == body(name)
    assert header(response, "Retry-After") == fixture(name)["response"]["headers"]["Retry-After"]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.users_info(user="U0000000999"), id="user_not_found"),
        pytest.param(lambda c: c.chat_postMessage(channel="#", text="x"), id="channel_not_found"),
        pytest.param(
            lambda c: c.chat_postMessage(channel="#a", text="x" * 40_001), id="msg_too_long"
        ),
        pytest.param(lambda c: c.conversations_open(users=CAROL.id), id="user_disabled"),
        pytest.param(lambda c: c.api_call("no.such"), id="unknown_method"),
        pytest.param(
            lambda c: WebClient(token="xoxb-wrong", base_url=c.base_url).auth_test(),
            id="invalid_auth",
        ),
    ],
)
def test_every_error_is_the_recorded_envelope(slack: WebClient, call: Any) -> None:
    name = "auth.test.error_not_authed.recorded.json"

    response = error_response(lambda: call(slack))

    assert_status_and_type(response, name)
    assert shape(response.data) == shape(body(name))


def test_invalid_blocks_carries_response_metadata(slack: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]

    response = error_response(lambda: slack.chat_postMessage(channel="#a", text="t", blocks=blocks))

    assert response.status_code == 200
    assert_within(response.data, body("users.lookupByEmail.masked_union.json"))
    assert shape(without(data_of(response), "response_metadata")) == shape(
        body("auth.test.error_not_authed.recorded.json")
    )


def test_outage_is_an_error_envelope(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.outage()

    response = error_response(slack.auth_test)

    assert response.status_code == 503
    assert shape(response.data) == shape(body("auth.test.error_not_authed.recorded.json"))


def test_fixture_files_are_exchanges() -> None:
    """Each file is one HTTP exchange; the hand-written ones say they were not recorded."""
    names = sorted(p.name for p in FIXTURES.glob("*.json"))

    assert len(names) == 8
    assert (FIXTURES / "README.md").is_file()
    for name in names:
        exchange = fixture(name)
        if ".from-docs." in name:
            assert "not recorded" in exchange["_note"]
        assert {"request", "response"} <= set(exchange)
