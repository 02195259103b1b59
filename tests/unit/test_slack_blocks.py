"""Slack message building: escaping, Slack's limits, the owner's time zone."""

from __future__ import annotations

import json
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
from janitor.notify.slack_blocks import (
    MAX_BLOCKS,
    MAX_SECTION_TEXT,
    digest_messages,
    escape,
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
) -> DigestItem:
    ref = ResourceRef(Cloud.AWS, "aws.sagemaker-endpoint", "123456789012", "us-east-1", name)
    resource = Resource(ref=ref, name=name, state="InService", created_at=NOW - timedelta(90))
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
