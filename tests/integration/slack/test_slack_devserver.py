"""The local Slack Web API through the real slack_sdk WebClient: every method, token checks,
Slack's message limits, paging, recording and injected faults."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from janitor.devserver.slack import SlackDevServer, SlackUser

pytestmark = pytest.mark.integration

# The users the slack_server fixture (tests/conftest.py) seeds.
TOKEN = "xoxb-test-token"
ALICE = SlackUser("U0000000002", "alice@example.com", "alice", "Alice Example", "Europe/London")
BOB = SlackUser("U0000000003", "bob@example.com", "bob", "Bob Example", "America/Los_Angeles")
CAROL = SlackUser("U0000000004", "carol@example.com", "carol", "Carol Example", deleted=True)

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*example-vm* is idle"}}


def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def raw_post(
    url: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> Any:
    """A request the WebClient would not make (a form `token`, form-encoded blocks)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **(headers or {})}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def raw_get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


# -- auth ---------------------------------------------------------------------------------------


def test_auth_test_answers_the_bot_identity(slack: WebClient) -> None:
    answer = slack.auth_test()

    assert answer["ok"] is True
    assert answer["team_id"] == "T0000000001"
    assert answer["bot_id"] == "B0000000001"
    assert {"url", "team", "user", "user_id"} <= set(answer.data)


def test_no_token_is_not_authed(slack_server: SlackDevServer) -> None:
    error = api_error(WebClient(base_url=slack_server.url).auth_test)

    assert error.response.status_code == 200
    assert error.response["error"] == "not_authed"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("auth.test", {}),
        ("chat.postMessage", {"channel": "C0000000001", "text": "hi"}),
        ("users.lookupByEmail", {"email": "alice@example.com"}),
        ("users.info", {"user": "U0000000002"}),
        ("users.list", {}),
        ("conversations.open", {"users": "U0000000002"}),
    ],
)
def test_every_method_checks_the_token(
    slack_server: SlackDevServer, method: str, params: dict[str, str]
) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=slack_server.url)

    error = api_error(lambda: wrong.api_call(method, params=params))

    assert error.response["error"] == "invalid_auth"
    assert slack_server.messages() == []
    assert slack_server.calls[method] == 1


def test_token_as_a_form_field_or_query_parameter(slack_server: SlackDevServer) -> None:
    form = urlencode({"token": TOKEN, "email": "alice@example.com"}).encode()
    by_form = raw_post(
        slack_server.url + "users.lookupByEmail", form, "application/x-www-form-urlencoded"
    )
    by_query = raw_get(
        slack_server.url + "users.info?" + urlencode({"token": TOKEN, "user": BOB.id})
    )
    json_token = raw_post(
        slack_server.url + "auth.test", json.dumps({"token": TOKEN}).encode(), "application/json"
    )

    assert by_form["user"]["id"] == ALICE.id
    assert by_query["user"]["id"] == BOB.id
    assert json_token == {"ok": False, "error": "not_authed"}  # Slack reads no token from JSON
    assert [r.token for r in slack_server.received] == [TOKEN, TOKEN, None]
    assert all("token" not in r.params for r in slack_server.received)


def test_multipart_form(slack_server: SlackDevServer) -> None:
    boundary = "----janitor-test"
    parts = [("token", TOKEN), ("channel", "#ml-spend"), ("text", "multipart")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    body += f"--{boundary}--\r\n"

    answer = raw_post(
        slack_server.url + "chat.postMessage",
        body.encode(),
        f"multipart/form-data; boundary={boundary}",
    )

    assert answer["ok"] is True
    assert slack_server.messages()[0].params == {"channel": "#ml-spend", "text": "multipart"}


def test_unknown_method(slack: WebClient) -> None:
    error = api_error(lambda: slack.api_call("chat.postMesage"))

    assert error.response["error"] == "unknown_method"


# -- chat.postMessage ---------------------------------------------------------------------------


def test_post_to_a_user_id_answers_a_stable_dm_channel(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    first = slack.chat_postMessage(channel=ALICE.id, text="one")
    second = slack.chat_postMessage(channel=ALICE.id, text="two")
    to_bob = slack.chat_postMessage(channel=BOB.id, text="three")
    via_dm = slack.chat_postMessage(channel=first["channel"], text="four")

    assert first["channel"] == second["channel"] == via_dm["channel"] == "D0000000002"
    assert first["channel"] == slack_server.dm_id(ALICE.id)
    assert to_bob["channel"] == "D0000000003"
    assert first["message"]["text"] == "one"
    assert first["message"]["ts"] == first["ts"]


def test_post_to_channel_ids_and_names(slack: WebClient, slack_server: SlackDevServer) -> None:
    by_id = slack.chat_postMessage(channel="C0123456789", text="x")
    by_hash = slack.chat_postMessage(channel="#ml-spend", text="x")
    by_name = slack.chat_postMessage(channel="ml-spend", text="x")
    other = slack.chat_postMessage(channel="#general", text="x")

    assert by_id["channel"] == "C0123456789"
    assert by_hash["channel"] == by_name["channel"] == slack_server.channel_id("#ml-spend")
    assert by_hash["channel"].startswith("C")
    assert other["channel"] != by_hash["channel"]


def test_unknown_channel_names_when_channels_are_listed() -> None:
    with SlackDevServer(token=TOKEN, known_channels={"#ml-spend"}) as server:
        client = WebClient(token=TOKEN, base_url=server.url)

        ok = client.chat_postMessage(channel="#ml-spend", text="x")
        error = api_error(lambda: client.chat_postMessage(channel="#nope", text="x"))

    assert ok["channel"] == server.channel_id("ml-spend")
    assert error.response["error"] == "channel_not_found"
    assert [m.params["channel"] for m in server.messages()] == ["#ml-spend"]


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("U0000000999", "channel_not_found"),  # nobody
        (CAROL.id, "channel_not_found"),  # deactivated
        ("D0000000999", "channel_not_found"),  # a DM nobody has
        ("", "channel_not_found"),
    ],
)
def test_post_to_a_channel_that_does_not_exist(slack: WebClient, channel: str, error: str) -> None:
    answer = api_error(lambda: slack.chat_postMessage(channel=channel, text="x"))

    assert answer.response["error"] == error


def test_post_to_a_bot_user(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.add_user(SlackUser("U0000000009", "bot@example.com", "ci", "CI Bot", is_bot=True))

    error = api_error(lambda: slack.chat_postMessage(channel="U0000000009", text="x"))

    assert error.response["error"] == "cannot_dm_bot"


def test_messages_are_recorded_with_text_and_blocks(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack.chat_postMessage(channel=ALICE.id, text="fallback", blocks=[SECTION])
    api_error(lambda: slack.chat_postMessage(channel="#", text="lost"))

    [message] = slack_server.messages()
    assert message.method == "chat.postMessage"
    assert message.token == TOKEN
    assert message.params["channel"] == ALICE.id
    assert message.params["text"] == "fallback"
    assert message.params["blocks"] == [SECTION]
    assert [(r.status, r.error) for r in slack_server.received] == [
        (200, None),
        (200, "channel_not_found"),
    ]


def test_form_encoded_blocks_are_decoded(slack_server: SlackDevServer) -> None:
    form = urlencode({"channel": BOB.id, "text": "t", "blocks": json.dumps([SECTION])}).encode()

    answer = raw_post(
        slack_server.url + "chat.postMessage",
        form,
        "application/x-www-form-urlencoded",
        {"Authorization": f"Bearer {TOKEN}"},
    )

    assert answer["ok"] is True
    assert answer["message"]["blocks"] == [SECTION]
    assert slack_server.messages()[0].params["blocks"] == [SECTION]


def test_ts_increases(slack: WebClient) -> None:
    stamps = [slack.chat_postMessage(channel="#a", text=str(i))["ts"] for i in range(5)]

    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"blocks": [section("x")] * 51}, "invalid_blocks"),
        ({"blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"blocks": [{"type": "section"}]}, "invalid_blocks"),
        (
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "invalid_blocks",
        ),
        ({"blocks": "not json"}, "invalid_blocks_format"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
        ({"text": ""}, "no_text"),
    ],
)
def test_slack_message_limits(
    slack: WebClient, slack_server: SlackDevServer, kwargs: dict[str, Any], error: str
) -> None:
    answer = api_error(lambda: slack.chat_postMessage(channel="#alerts", **kwargs))

    assert answer.response.status_code == 200
    assert answer.response["error"] == error
    assert slack_server.messages() == []


def test_invalid_blocks_points_at_the_block(slack: WebClient) -> None:
    answer = api_error(
        lambda: slack.chat_postMessage(
            channel="#a", text="t", blocks=[section("ok"), section("x" * 3001)]
        )
    )

    assert answer.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]"
    ]


def test_messages_at_the_limits_are_accepted(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack.chat_postMessage(channel="#a", text="t", blocks=[section("x" * 3000)] * 50)
    slack.chat_postMessage(channel="#a", text="x" * 40_000)

    assert len(slack_server.messages()) == 2


# -- users --------------------------------------------------------------------------------------


def test_lookup_by_email_is_case_insensitive(slack: WebClient) -> None:
    user = slack.users_lookupByEmail(email="Alice@EXAMPLE.com")["user"]

    assert user["id"] == "U0000000002"
    assert user["tz"] == "Europe/London"
    assert user["tz_offset"] in (0, 3600)
    assert user["tz_label"] in ("Greenwich Mean Time", "British Summer Time")
    assert user["profile"]["email"] == "alice@example.com"


def test_lookup_by_email_of_bob(slack: WebClient) -> None:
    user = slack.users_lookupByEmail(email="bob@example.com")["user"]

    assert user["id"] == BOB.id
    assert user["tz"] == "America/Los_Angeles"
    assert user["tz_offset"] in (-8 * 3600, -7 * 3600)


@pytest.mark.parametrize("address", ["nobody@example.com", "carol@example.com"])
def test_lookup_by_email_of_unknown_or_deactivated(slack: WebClient, address: str) -> None:
    error = api_error(lambda: slack.users_lookupByEmail(email=address))

    assert error.response.status_code == 200
    assert error.response["error"] == "users_not_found"


def test_users_info(slack: WebClient) -> None:
    alice = slack.users_info(user=ALICE.id)["user"]
    carol = slack.users_info(user=CAROL.id)["user"]
    missing = api_error(lambda: slack.users_info(user="U0000000999"))

    assert alice["real_name"] == "Alice Example"
    assert alice["deleted"] is False
    assert carol["deleted"] is True
    assert "tz" not in carol  # as in the recorded users.info of a deleted user
    assert missing.response["error"] == "user_not_found"


def test_users_list_pages_with_the_sdk_cursor(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    for n in range(5, 8):
        slack_server.add_user(SlackUser(f"U000000000{n}", f"u{n}@example.com", f"u{n}", f"U {n}"))

    # A SlackResponse iterates over next_cursor, updating itself in place.
    pages = [dict(page.data) for page in slack.users_list(limit=2)]

    assert [len(p["members"]) for p in pages] == [2, 2, 2]
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    assert all(p["response_metadata"]["next_cursor"] for p in pages[:-1])
    ids = [m["id"] for p in pages for m in p["members"]]
    assert ids == [ALICE.id, BOB.id, CAROL.id, "U0000000005", "U0000000006", "U0000000007"]
    assert slack_server.calls["users.list"] == 3


def test_users_list_in_one_page_by_default(slack: WebClient) -> None:
    answer = slack.users_list()

    assert [m["id"] for m in answer["members"]] == [ALICE.id, BOB.id, CAROL.id]
    assert answer["response_metadata"]["next_cursor"] == ""


def test_users_list_with_a_bad_cursor(slack: WebClient) -> None:
    error = api_error(lambda: slack.users_list(cursor="bm90LWEtY3Vyc29y"))

    assert error.response["error"] == "invalid_cursor"


def test_add_user(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.add_user(
        SlackUser("U0000000010", "dan@example.com", "dan", "Dan", tz="Asia/Tokyo")
    )

    user = slack.users_lookupByEmail(email="dan@example.com")["user"]

    assert user["tz_offset"] == 9 * 3600
    assert user["tz_label"] == "Japan Standard Time"
    with pytest.raises(ValueError, match="email"):
        slack_server.add_user(SlackUser("U0000000011", "DAN@example.com", "d2", "D2"))
    with pytest.raises(ValueError, match="time zone"):
        slack_server.add_user(SlackUser("U0000000012", "e@example.com", "e", "E", tz="Mars/Base"))


# -- conversations.open -------------------------------------------------------------------------


def test_conversations_open(slack: WebClient) -> None:
    first = slack.conversations_open(users=ALICE.id)
    again = slack.conversations_open(users=ALICE.id)
    posted = slack.chat_postMessage(channel=first["channel"]["id"], text="hi")

    assert first.data == {"ok": True, "channel": {"id": "D0000000002"}}
    assert again.data == {
        "ok": True,
        "no_op": True,
        "already_open": True,
        "channel": {"id": "D0000000002"},
    }
    assert posted["channel"] == "D0000000002"


def test_a_dm_opened_by_posting_is_already_open(slack: WebClient) -> None:
    slack.chat_postMessage(channel=BOB.id, text="hi")

    assert slack.conversations_open(users=BOB.id)["already_open"] is True


@pytest.mark.parametrize(
    ("users", "error"),
    [
        ("U0000000999", "user_not_found"),
        (CAROL.id, "user_disabled"),
        ("", "users_list_not_supplied"),
    ],
)
def test_conversations_open_errors(slack: WebClient, users: str, error: str) -> None:
    answer = api_error(lambda: slack.conversations_open(users=users))

    assert answer.response["error"] == error


# -- faults -------------------------------------------------------------------------------------


def test_fail_answers_the_error_then_recovers(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack_server.fail("chat.postMessage", "channel_not_found", times=2)

    errors = [api_error(lambda: slack.chat_postMessage(channel="#a", text="x")) for _ in range(2)]
    ok = slack.chat_postMessage(channel="#a", text="x")

    assert [(e.response.status_code, e.response["error"]) for e in errors] == [
        (200, "channel_not_found")
    ] * 2
    assert ok["ok"] is True
    assert slack_server.calls["chat.postMessage"] == 3
    assert len(slack_server.messages()) == 1


def test_a_pending_failure_waits_for_an_authenticated_call(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack_server.fail("auth.test", "account_inactive")
    wrong = WebClient(token="xoxb-wrong", base_url=slack_server.url)

    assert api_error(wrong.auth_test).response["error"] == "invalid_auth"
    assert api_error(slack.auth_test).response["error"] == "account_inactive"
    assert slack.auth_test()["ok"] is True


def test_faults_are_per_method(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.fail("users.lookupByEmail", "ratelimited")

    assert slack.chat_postMessage(channel="#a", text="x")["ok"] is True
    assert (
        api_error(lambda: slack.users_lookupByEmail(email="alice@example.com")).response["error"]
        == "ratelimited"
    )


def test_rate_limit_answers_429_with_retry_after(
    slack: WebClient, slack_server: SlackDevServer
) -> None:
    slack_server.rate_limit("chat.postMessage", times=1, retry_after=7)

    error = api_error(lambda: slack.chat_postMessage(channel="#a", text="x"))

    assert error.response.status_code == 429
    assert error.response.headers["Retry-After"] == "7"
    assert error.response.data == {"ok": False, "error": "ratelimited"}
    assert slack.chat_postMessage(channel="#a", text="x")["ok"] is True


def test_the_sdk_rate_limit_handler_gets_through(slack_server: SlackDevServer) -> None:
    client = WebClient(
        token=TOKEN, base_url=slack_server.url, retry_handlers=[RateLimitErrorRetryHandler()]
    )
    slack_server.rate_limit("chat.postMessage", times=1, retry_after=1)

    answer = client.chat_postMessage(channel=ALICE.id, text="after the wait")

    assert answer["ok"] is True
    assert slack_server.calls["chat.postMessage"] == 2
    assert [(r.status, r.error) for r in slack_server.received] == [
        (429, "ratelimited"),
        (200, None),
    ]
    assert [m.params["text"] for m in slack_server.messages()] == ["after the wait"]


def test_outage_raises_and_is_recorded(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.outage()

    error = api_error(lambda: slack.chat_postMessage(channel="#a", text="x"))
    auth = api_error(slack.auth_test)
    slack_server.outage(False)
    ok = slack.chat_postMessage(channel="#a", text="back")

    assert error.response.status_code == auth.response.status_code == 503
    assert error.response["error"] == "service_unavailable"
    assert ok["ok"] is True
    assert [(r.method, r.status) for r in slack_server.received] == [
        ("chat.postMessage", 503),
        ("auth.test", 503),
        ("chat.postMessage", 200),
    ]
    assert [m.params["text"] for m in slack_server.messages()] == ["back"]


def test_outage_with_another_status(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack_server.outage(status=500)

    error = api_error(slack.auth_test)

    assert error.response.status_code == 500
    assert error.response["error"] == "internal_error"


def test_clear(slack: WebClient, slack_server: SlackDevServer) -> None:
    slack.chat_postMessage(channel="#a", text="x")
    slack_server.fail("auth.test", "invalid_auth")
    slack_server.outage()

    slack_server.clear()

    assert slack_server.received == []
    assert slack_server.calls == {}
    assert slack.auth_test()["ok"] is True
    assert slack.users_info(user=ALICE.id)["ok"] is True  # users stay


def test_concurrent_posts(slack_server: SlackDevServer) -> None:
    def post(worker: int) -> None:
        client = WebClient(token=TOKEN, base_url=slack_server.url)
        for i in range(5):
            client.chat_postMessage(channel="#load", text=f"{worker}-{i}")

    threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(slack_server.messages()) == 20
    assert slack_server.calls["chat.postMessage"] == 20


def test_url_needs_a_started_server() -> None:
    server = SlackDevServer()

    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
