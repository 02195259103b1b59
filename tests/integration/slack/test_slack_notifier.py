"""SlackNotifier and SlackWebhookNotifier through the real slack_sdk clients, against the local
Slack Web API server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.webhook import WebhookClient
from tests.conftest import ALICE, SLACK_TOKEN

from janitor.devserver.slack import SlackDevServer, SlackUser
from janitor.model import (
    Action,
    Cloud,
    Decision,
    Finding,
    Resource,
    ResourceRef,
    Status,
    Verdict,
)
from janitor.notify.base import Digest, DigestItem
from janitor.notify.slack import (
    OwnerDirectory,
    SlackNotifier,
    SlackSettings,
    SlackWebhookNotifier,
    web_client,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FALLBACK = "#ml-spend"


def item(name: str, owner: str | None, stage: Action = Action.WARN) -> DigestItem:
    ref = ResourceRef(Cloud.AWS, "aws.ec2-gpu", "123456789012", "us-east-1", f"i-{name}")
    resource = Resource(ref=ref, name=name, state="running", created_at=NOW - timedelta(90))
    verdict = Verdict.idle(ref, NOW - timedelta(days=55), "max GPU utilisation 0%")
    decision = Decision(
        ref,
        stage,
        Status.IDLE,
        "idle",
        idle_days=55.0,
        stop_due=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    )
    return DigestItem(Finding(resource, verdict, decision, owner, 250.0), stage)


def digest(owner: str | None, *names: str) -> Digest:
    return Digest(owner, tuple(item(n, owner) for n in names), NOW)


@pytest.fixture
def settings(slack_server: SlackDevServer, monkeypatch: pytest.MonkeyPatch) -> SlackSettings:
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "2")
    return SlackSettings(token=SLACK_TOKEN, api_url=slack_server.url, fallback_channel=FALLBACK)


def notifier(settings: SlackSettings, **kwargs: object) -> SlackNotifier:
    return SlackNotifier(
        web_client(settings),
        fallback_channel=settings.fallback_channel,
        **kwargs,  # type: ignore[arg-type]
    )


def posted_text(server: SlackDevServer) -> list[tuple[str, str]]:
    return [
        (str(m.params["channel"]), json.dumps(m.params.get("blocks")) + str(m.params["text"]))
        for m in server.messages()
    ]


def test_one_message_names_all_of_an_owners_resources_in_their_dm(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    result = notifier(settings).deliver(digest("alice@example.com", "train-box", "dev-box"))
    assert result.ok, result.detail
    ((channel, text),) = posted_text(slack_server)
    assert channel == ALICE.id  # a bot posting to a user id lands in the DM
    assert "train-box" in text
    assert "dev-box" in text
    assert "stops on Mon 30 Nov 2026 09:00 GMT" in text  # Europe/London, from the profile


def test_the_stop_date_follows_each_owners_time_zone(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    assert notifier(settings).deliver(digest("bob@example.com", "x")).ok
    ((_, text),) = posted_text(slack_server)
    assert "stops on Mon 30 Nov 2026 01:00 PST" in text


def test_owners_are_looked_up_once_per_run(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack = notifier(settings)
    for _ in range(3):
        assert slack.deliver(digest("ALICE@example.com", "a")).ok
        assert slack.deliver(digest("alice@example.com", "b")).ok
    assert slack_server.calls["users.lookupByEmail"] == 1
    assert slack_server.calls["chat.postMessage"] == 6


def test_many_owners_are_resolved_with_one_paged_user_list(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    for i in range(30):
        slack_server.add_user(
            SlackUser(id=f"U10000000{i:02d}", email=f"user{i}@example.com", name=f"user{i}",
                      real_name=f"User {i}")
        )  # fmt: skip
    client = web_client(settings)
    slack = SlackNotifier(
        client, fallback_channel=FALLBACK, directory=OwnerDirectory(client, bulk_threshold=10)
    )
    owners = [f"user{i}@example.com" for i in range(30)] + ["ghost@example.com"]
    slack.prepare(owners)
    for owner in owners:
        assert slack.deliver(digest(owner, "gpu")).ok
    assert slack_server.calls["users.lookupByEmail"] == 0
    assert slack_server.calls["users.list"] >= 1
    channels = [c for c, _ in posted_text(slack_server)]
    assert channels[-1] == FALLBACK  # ghost@ is not in the list: the fallback channel


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("ghost@example.com", "no Slack user has the email ghost@example.com"),
        ("carol@example.com", "no Slack user has the email carol@example.com"),  # deactivated
        (None, "the resource has no owner tag"),
        ("bob", "owner tag 'bob' is not an email, a Slack user ID or a #channel"),
        ("U0000000099", "no Slack user U0000000099"),
        ("U0000000004", "the Slack user of U0000000004 is deactivated"),
    ],
)
def test_unreachable_owners_go_to_the_fallback_channel_with_the_reason(
    slack_server: SlackDevServer, settings: SlackSettings, owner: str | None, reason: str
) -> None:
    assert notifier(settings).deliver(digest(owner, "gpu")).ok
    ((channel, text),) = posted_text(slack_server)
    assert channel == FALLBACK
    assert reason.replace("'", "&#39;") in text or reason in text


def test_no_fallback_channel_means_not_delivered(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack = SlackNotifier(web_client(settings), fallback_channel=None)
    result = slack.deliver(digest("ghost@example.com", "gpu"))
    assert not result.ok
    assert "no fallback channel" in result.detail
    assert slack_server.messages() == []


def test_owner_tag_naming_a_channel_posts_there(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    assert notifier(settings).deliver(digest("#team-vision", "gpu")).ok
    ((channel, _),) = posted_text(slack_server)
    assert channel == "#team-vision"


def test_hostile_names_and_tags_cannot_ping_or_forge_links(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    assert notifier(settings).deliver(digest("#ml", "<!channel>", "<https://x.example|ok>")).ok
    ((_, text),) = posted_text(slack_server)
    assert "<!channel>" not in text
    assert "<https://x.example" not in text
    assert "&lt;!channel&gt;" in text


def test_a_429_is_retried_after_retry_after(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack_server.rate_limit("chat.postMessage", 1, retry_after=1)
    slack_server.rate_limit("users.lookupByEmail", 1, retry_after=1)
    assert notifier(settings).deliver(digest("alice@example.com", "gpu")).ok
    assert len(slack_server.messages()) == 1
    assert slack_server.calls["chat.postMessage"] == 2


def test_an_outage_is_a_failed_delivery_never_a_silent_drop(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack_server.outage(True)
    result = notifier(settings).deliver(digest("alice@example.com", "gpu"))
    assert not result.ok
    assert "users.lookupByEmail" in result.detail
    slack_server.outage(False)
    assert notifier(settings).deliver(digest("alice@example.com", "gpu")).ok


def test_slack_refusing_a_message_is_a_failed_delivery(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack_server.fail("chat.postMessage", "channel_not_found")
    result = notifier(settings).deliver(digest("#gone", "gpu"))
    assert not result.ok
    assert result.detail == "chat.postMessage: channel_not_found"


def test_a_long_digest_is_delivered_in_parts_all_accepted(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    names = [f"gpu-{i:03d}" for i in range(140)]
    assert notifier(settings).deliver(digest("alice@example.com", *names)).ok
    messages = slack_server.messages()
    assert len(messages) == 3
    text = "".join(t for _, t in posted_text(slack_server))
    assert all(n in text for n in names)


def test_a_summary_goes_to_the_summary_channel(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    slack = notifier(settings, summary_channel="#janitor-admin")
    result = slack.summarize(["error: one <!here>"], {"notices": "2", "stopped": "1"})
    assert result is not None
    assert result.ok
    ((channel, text),) = posted_text(slack_server)
    assert channel == "#janitor-admin"
    assert "<!here>" not in text
    assert "notices" in text


def test_webhook_mode_posts_to_the_channel_only(slack_server: SlackDevServer) -> None:
    slack = SlackWebhookNotifier(WebhookClient(slack_server.webhook_url))
    assert slack.deliver(digest("alice@example.com", "gpu")).ok
    (hook,) = slack_server.webhooks()
    assert "gpu" in json.dumps(hook.params)
    assert "Owner: alice@example.com" in json.dumps(hook.params)
    assert slack_server.calls["users.lookupByEmail"] == 0
    slack_server.outage(True)
    assert not slack.deliver(digest("alice@example.com", "gpu")).ok


def test_the_token_never_shows_in_settings_or_logs(
    slack_server: SlackDevServer, settings: SlackSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    slack = notifier(settings)
    slack.deliver(digest("alice@example.com", "gpu"))
    slack.deliver(digest("ghost@example.com", "gpu"))
    assert SLACK_TOKEN not in repr(settings)
    assert SLACK_TOKEN not in caplog.text
    assert "chat.postMessage" in caplog.text, "the SDK's debug logs were captured"


# -- a digest split into several messages, delivered in part -----------------------------------


def _names_in(server: SlackDevServer, count: int) -> list[set[str]]:
    """For each of the first `count` requests to chat.postMessage: the names it showed."""
    shown = []
    for m in [r for r in server.received if r.method == "chat.postMessage"][:count]:
        text = json.dumps(m.params.get("blocks"))
        shown.append({f"box-{i:02d}" for i in range(60) if f"*box-{i:02d}*" in text})
    return shown


def test_a_split_digest_delivered_in_part_names_the_items_that_got_through(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    big = digest("alice@example.com", *(f"box-{i:02d}" for i in range(60)))  # > 50 blocks
    slack_server.fail("chat.postMessage", "channel_not_found", after=1)

    result = notifier(settings).deliver(big)

    assert result.ok is False
    assert "message 2 of 2" in result.detail
    first, second = _names_in(slack_server, 2)
    assert first
    assert second
    assert not first & second
    assert result.delivered == frozenset(f"aws.ec2-gpu|123456789012|us-east-1|i-{n}" for n in first)
    assert result.delivered_keys(big) == result.delivered


def test_a_split_digest_delivered_whole_counts_every_item(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    big = digest("alice@example.com", *(f"box-{i:02d}" for i in range(60)))
    result = notifier(settings).deliver(big)
    assert result.ok, result.detail
    assert slack_server.calls["chat.postMessage"] == 2
    assert len(result.delivered_keys(big)) == 60


def test_a_split_digest_whose_first_message_fails_delivers_nothing(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    big = digest("alice@example.com", *(f"box-{i:02d}" for i in range(60)))
    slack_server.fail("chat.postMessage", "channel_not_found")
    result = notifier(settings).deliver(big)
    assert result.ok is False
    assert result.delivered_keys(big) == frozenset()
    assert slack_server.calls["chat.postMessage"] == 1, "the rest waits for the next run"


def test_webhook_split_digest_delivered_in_part(slack_server: SlackDevServer) -> None:
    big = digest("alice@example.com", *(f"box-{i:02d}" for i in range(60)))
    slack_server.fail("webhook", "invalid_payload", after=1)
    result = SlackWebhookNotifier(WebhookClient(slack_server.webhook_url)).deliver(big)
    assert result.ok is False
    (first,) = slack_server.webhooks()  # the second was refused
    assert slack_server.calls["webhook"] == 2
    shown = json.dumps(first.params.get("blocks"))
    expected = {
        i.finding.resource.ref.key for i in big.items if f"*{i.finding.resource.name}*" in shown
    }
    assert expected
    assert result.delivered == frozenset(expected)
    assert len(expected) < 60


def test_slack_notifiers_reach_people(
    slack_server: SlackDevServer, settings: SlackSettings
) -> None:
    assert notifier(settings).reaches_people is True
    assert SlackWebhookNotifier(WebhookClient(slack_server.webhook_url)).reaches_people is True
