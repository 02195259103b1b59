"""The local incoming webhook through slack_sdk's WebhookClient."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from slack_sdk.webhook import WebhookClient

from janitor.devserver.slack import SlackDevServer

pytestmark = pytest.mark.integration

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*example-vm* is idle"}}


@pytest.fixture
def webhook(slack_server: SlackDevServer) -> WebhookClient:
    return WebhookClient(slack_server.webhook_url, timeout=10)


def test_a_post_is_recorded_and_answered_ok(
    webhook: WebhookClient, slack_server: SlackDevServer
) -> None:
    answer = webhook.send(text="fallback", blocks=[SECTION])

    assert (answer.status_code, answer.body) == (200, "ok")
    [post] = slack_server.webhooks()
    assert post.method == "webhook"
    assert post.token is None
    assert post.params == {"text": "fallback", "blocks": [SECTION]}
    assert slack_server.calls["webhook"] == 1
    assert slack_server.messages() == []  # not a chat.postMessage


def test_webhook_url_form(slack_server: SlackDevServer) -> None:
    assert slack_server.webhook_url.startswith("http://127.0.0.1:")
    assert slack_server.webhook_url.endswith("/services/T000/B000/XXXX")


def test_no_text(webhook: WebhookClient, slack_server: SlackDevServer) -> None:
    answer = webhook.send(text="")

    assert (answer.status_code, answer.body) == (400, "no_text")
    assert slack_server.webhooks() == []


def test_invalid_blocks(webhook: WebhookClient) -> None:
    answer = webhook.send(text="t", blocks=[SECTION] * 51)

    assert (answer.status_code, answer.body) == (400, "invalid_blocks")


def test_rate_limited(webhook: WebhookClient, slack_server: SlackDevServer) -> None:
    slack_server.rate_limit("webhook", times=1, retry_after=3)

    limited = webhook.send(text="x")
    ok = webhook.send(text="y")

    assert limited.status_code == 429
    assert {k.lower(): v for k, v in limited.headers.items()}["retry-after"] == "3"
    assert ok.status_code == 200
    assert [p.params["text"] for p in slack_server.webhooks()] == ["y"]
    assert slack_server.calls["webhook"] == 2


def test_outage(webhook: WebhookClient, slack_server: SlackDevServer) -> None:
    slack_server.outage()

    down = webhook.send(text="x")
    slack_server.outage(False)
    up = webhook.send(text="y")

    assert down.status_code == 503
    assert up.status_code == 200
    assert [(r.status, r.params["text"]) for r in slack_server.received] == [(503, "x"), (200, "y")]


@pytest.mark.parametrize(
    ("error", "status"),
    [("no_service", 404), ("channel_is_archived", 410), ("action_prohibited", 403)],
)
def test_fail_answers_slacks_status_for_the_code(
    webhook: WebhookClient, slack_server: SlackDevServer, error: str, status: int
) -> None:
    slack_server.fail("webhook", error)

    answer = webhook.send(text="x")

    assert (answer.status_code, answer.body) == (status, error)


def test_another_webhook_path_is_no_service(slack_server: SlackDevServer) -> None:
    url = slack_server.webhook_url.replace("XXXX", "YYYY")

    answer = WebhookClient(url, timeout=10).send(text="x")

    assert (answer.status_code, answer.body) == (404, "no_service")


def test_form_payload(slack_server: SlackDevServer) -> None:
    request = urllib.request.Request(
        slack_server.webhook_url,
        data=b"payload=%7B%22text%22%3A%22hi%22%7D",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        assert response.read() == b"ok"

    assert slack_server.webhooks()[0].params == {"text": "hi"}


def test_invalid_payload(slack_server: SlackDevServer) -> None:
    request = urllib.request.Request(
        slack_server.webhook_url,
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=10)

    with info.value as error:
        assert error.code == 400
        assert error.read() == b"invalid_payload"
