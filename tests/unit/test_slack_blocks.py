"""Slack message building: escaping, Slack's limits, the owner's time zone."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from janitor.model import (
    Action,
    Cloud,
    Confidence,
    Decision,
    Finding,
    Resource,
    ResourceRef,
    Status,
    StopOutcome,
    Verdict,
)
from janitor.notify.base import Digest, DigestItem
from janitor.notify.render import render_text
from janitor.notify.slack_blocks import (
    MAX_BLOCKS,
    MAX_SECTION_TEXT,
    digest_messages,
    escape,
    literal,
    local_time,
    summary_messages,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def item(
    name: str,
    stage: Action,
    *,
    owner: str | None = "alice@example.com",
    cost: float | None = 100.0,
    evidence: str = "0 invocations",
    stop_due: datetime | None = None,
    advice: str | None = None,
) -> DigestItem:
    ref = ResourceRef(Cloud.AWS, "aws.sagemaker-endpoint", "123456789012", "us-east-1", name)
    resource = Resource(
        ref=ref, name=name, state="InService", created_at=NOW - timedelta(90), advice=advice
    )
    verdict = Verdict.idle(ref, NOW - timedelta(days=60), evidence, confidence=Confidence.HIGH)
    decision = Decision(ref, stage, Status.IDLE, "idle", idle_days=60.0, stop_due=stop_due)
    outcome = StopOutcome.STOPPED if stage is Action.STOP else None
    return DigestItem(Finding(resource, verdict, decision, owner, cost, outcome), stage)


def all_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks)


def test_escape_neutralises_mentions_and_links() -> None:
    assert escape("<!channel> & <https://evil|click>") == (
        "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    )


def test_tag_values_and_names_cannot_ping_or_forge_links() -> None:
    hostile = item("<!channel>", Action.NOTIFY, evidence="see <https://evil.example|here>")
    digest = Digest("<!here>", (hostile,), NOW)
    (message,) = digest_messages(digest, zone=UTC, exempt_tag="janitor-exempt")
    text = all_text(message.blocks) + message.text
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "&lt;!channel&gt;" in text
    assert "<!here>" not in message.text


def test_one_digest_names_every_resource_with_its_stage() -> None:
    due = NOW + timedelta(days=7)
    digest = Digest(
        "alice@example.com",
        (item("a", Action.WARN, stop_due=due), item("b", Action.STOP), item("c", Action.NOTIFY)),
        NOW,
    )
    (message,) = digest_messages(digest, zone=UTC, exempt_tag="janitor-exempt")
    text = all_text(message.blocks)
    assert text.index("Will be stopped") < text.index("Stopped") < text.index("Idle")
    for name in ("*a*", "*b*", "*c*"):
        assert name in text
    assert "janitor restore b" in text
    assert "stops on Mon 30 Nov 2026 09:00 UTC" in text
    assert "janitor-exempt=true" in text
    assert "1 to be stopped, 1 stopped, 1 idle" in message.text


def test_the_owner_sees_the_advice_of_a_resource_that_has_one() -> None:
    tip = "idle shutdown is off: set idle-timeout-seconds <@U123>"
    digest = Digest(
        "alice@example.com", (item("nb", Action.NOTIFY, advice=tip), item("ep", Action.NOTIFY)), NOW
    )
    (message,) = digest_messages(digest, zone=UTC, exempt_tag="janitor-exempt")
    sections = [b["text"]["text"] for b in message.blocks if b.get("type") == "section"]
    with_tip = [text for text in sections if "Tip: idle shutdown is off" in text]
    assert len(with_tip) == 1
    assert "*nb*" in with_tip[0]
    assert "<@U123>" not in with_tip[0]  # a cloud's value never pings anyone
    assert "tip: idle shutdown is off" in render_text(digest)


def test_the_stop_date_is_in_the_owners_time_zone() -> None:
    due = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    digest = Digest("bob@example.com", (item("a", Action.WARN, stop_due=due),), NOW)
    (message,) = digest_messages(
        digest, zone=ZoneInfo("America/Los_Angeles"), exempt_tag="janitor-exempt"
    )
    assert "stops on Mon 30 Nov 2026 15:30 PST" in all_text(message.blocks)
    assert local_time(due, ZoneInfo("Asia/Tokyo")) == "Tue 01 Dec 2026 08:30 JST"


def test_a_long_digest_is_split_under_slacks_limits() -> None:
    items = tuple(item(f"endpoint-{i:03d}", Action.NOTIFY) for i in range(120))
    messages = digest_messages(
        Digest("alice@example.com", items, NOW), zone=UTC, exempt_tag="janitor-exempt"
    )
    assert len(messages) == 3
    named = [f"endpoint-{i:03d}" for i in range(120)]
    text = "".join(all_text(m.blocks) for m in messages)
    assert all(f"*{name}*" in text for name in named), "nothing is dropped"
    for index, message in enumerate(messages, start=1):
        assert len(message.blocks) <= MAX_BLOCKS
        assert f"part {index} of 3" in message.text
        for block in message.blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
    assert "janitor-exempt" in all_text(messages[-1].blocks)


def test_an_oversized_field_is_clipped_to_the_section_limit() -> None:
    huge = item("x" * 5000, Action.NOTIFY, evidence="e" * 5000)
    (message,) = digest_messages(Digest(None, (huge,), NOW), zone=UTC, exempt_tag="janitor-exempt")
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT


def test_the_fallback_note_says_why_a_message_landed_in_the_channel() -> None:
    digest = Digest("ghost@example.com", (item("a", Action.NOTIFY),), NOW)
    (message,) = digest_messages(
        digest, zone=UTC, exempt_tag="janitor-exempt",
        note="Sent to this channel because no Slack user has the email ghost@example.com.",
    )  # fmt: skip
    assert "no Slack user has the email ghost@example.com" in all_text(message.blocks)


@pytest.mark.parametrize("count", [0, 1, 25])
def test_run_summary(count: int) -> None:
    lines = [f"error {i} <!channel>" for i in range(count)]
    message = summary_messages(lines, {"notices": "3", "warnings": "1"})
    text = all_text(message.blocks)
    assert "*3*" in text
    assert "<!channel>" not in text
    if count > 20:
        assert f"and {count - 20} more" in text
    assert message.text.startswith("janitor run summary: notices 3")


# -- values from the cloud are shown literally ---------------------------------------------------

ZWSP = "\u200b"


def mrkdwn_objects(node: object) -> list[dict[str, object]]:
    """Every mrkdwn text object anywhere in a block tree."""
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            found.append(node)
        for value in node.values():
            found += mrkdwn_objects(value)
    elif isinstance(node, list):
        for value in node:
            found += mrkdwn_objects(value)
    return found


def shown(text: str) -> str:
    """What a reader sees of literal text: entities decoded, zero-width spaces invisible."""
    return text.replace(ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_every_mrkdwn_text_object_is_verbatim() -> None:
    due = NOW + timedelta(days=7)
    items = (item("a", Action.WARN, stop_due=due), item("b", Action.STOP), item("c", Action.NOTIFY))
    messages = digest_messages(
        Digest("alice@example.com", items, NOW),
        zone=UTC,
        exempt_tag="janitor-exempt",
        note="Sent to #ml-spend because https://example.com",
        max_blocks=6,  # several parts: the continuation context too
    )
    summary = summary_messages(["error: one"], {"notices": "1"})
    objects = [o for m in [*messages, summary] for o in mrkdwn_objects(m.blocks)]
    assert len(messages) > 1
    assert len(objects) > 8
    assert all(o.get("verbatim") is True for o in objects), objects


@pytest.mark.parametrize(
    "value",
    [
        "*prod*_model",
        "_italic_ ~strike~ `code`",
        "a*b*c",
        "> quoted & <!here>",
        "line one\n> line two *bold*",
        "plain-name-01",
    ],
)
def test_literal_shows_the_value_and_neutralises_every_formatting_character(value: str) -> None:
    text = literal(value)
    assert shown(text) == " ".join(value.splitlines())
    assert "\n" not in text
    assert not text.startswith(("&gt;", ">"))
    assert "<" not in text
    for index, char in enumerate(text):
        if char in "*_~`":
            assert text[index - 1] == ZWSP, (value, text)
            assert text[index + 1] == ZWSP, (value, text)


def test_a_name_with_formatting_characters_is_not_formatted_in_the_digest() -> None:
    hostile = item("*prod*_model", Action.NOTIFY, evidence="no ~calls~ to _variant_a_")
    (message,) = digest_messages(
        Digest("_ops_@example.com", (hostile,), NOW), zone=UTC, exempt_tag="janitor-exempt"
    )
    text = all_text(message.blocks)
    assert json.dumps(literal("*prod*_model"))[1:-1] in text
    assert json.dumps(literal("no ~calls~ to _variant_a_"))[1:-1] in text
    assert "*prod*" not in text
    assert "_ops_" not in message.text


def code_spans(text: str) -> list[str]:
    """The code spans of mrkdwn text (``` blocks first, then single backticks)."""
    if "```" in text:
        return text.split("```")[1::2]
    return text.split("`")[1::2]


@pytest.mark.parametrize(
    "resource_id",
    [
        "bob's gpu box",
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/llm-canary",
        "*a*_b_&<c>",
        "tick`tock",
    ],
)
def test_the_undo_command_in_slack_pastes_as_one_argument(resource_id: str) -> None:
    stop = item(resource_id, Action.STOP)
    (message,) = digest_messages(
        Digest("alice@example.com", (stop,), NOW), zone=UTC, exempt_tag="janitor-exempt"
    )
    (section,) = [
        b["text"]["text"] for b in message.blocks if "Undo:" in str(b.get("text", {}).get("text"))
    ]
    undo = section.split("Undo: ", 1)[1]
    (command,) = code_spans(undo)
    assert ZWSP not in command  # copied as it is shown
    pasted = command.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shlex.split(pasted) == ["janitor", "restore", resource_id]
