"""The lifecycle with Slack as the notifier: the CLI against the AWS emulator and the local
Slack Web API server, both reached by the real SDK clients."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ALICE, BOB, SLACK_TOKEN
from tests.e2e.conftest import Fleet, by_name, run_json

from janitor import cli
from janitor.devserver.slack import SlackDevServer

pytestmark = pytest.mark.e2e

FALLBACK = "#ml-spend"


@pytest.fixture
def slack_fleet(
    fleet: Fleet, slack_server: SlackDevServer, monkeypatch: pytest.MonkeyPatch
) -> Fleet:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_FALLBACK_CHANNEL", FALLBACK)
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    return fleet


def messages_to(server: SlackDevServer, channel: str) -> list[str]:
    return [
        json.dumps(m.params.get("blocks")) + str(m.params["text"])
        for m in server.messages()
        if m.params["channel"] == channel
    ]


def test_one_digest_per_owner_by_dm_and_the_fallback_for_the_rest(
    slack_fleet: Fleet, slack_server: SlackDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with slack_fleet.travel(0):
        code, report = run_json(capsys, "run", "--apply")
    assert code == 0, report["delivery_failures"]
    (bob,) = messages_to(slack_server, BOB.id)
    for name in ("llm-summarizer-canary", "train-box-p3", "bob-finetune-llama"):
        assert name in bob
    assert "PST" in bob  # bob's stop dates in his own time zone
    (alice,) = messages_to(slack_server, ALICE.id)
    assert "churn-model-v3" in alice
    fallback = messages_to(slack_server, FALLBACK)
    reasons = "".join(fallback)
    assert "no Slack user has the email carol@example.com" in reasons  # deactivated
    assert "no Slack user has the email dave@example.com" in reasons  # not in Slack
    assert "the resource has no owner tag" in reasons  # untagged-gpu
    assert any("janitor run summary" in m for m in fallback)
    assert slack_server.calls["users.lookupByEmail"] == 4  # each owner once

    slack_server.clear()
    with slack_fleet.travel(0):
        code, again = run_json(capsys, "run", "--apply")
    assert code == 0
    assert slack_server.messages() == [], "each stage once per streak: a rerun sends nothing"


def test_slack_down_means_no_stop_and_the_clock_starts_at_the_delivered_warning(
    slack_fleet: Fleet, slack_server: SlackDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    slack_server.outage(True)
    with slack_fleet.travel(0):
        code, day0 = run_json(capsys, "run", "--apply")
    assert code == 1
    assert any(line.startswith("bob@example.com: not reached") for line in
               day0["delivery_failures"])  # fmt: skip
    with slack_fleet.travel(8):
        code, day8 = run_json(capsys, "run", "--apply")
    assert code == 1
    assert all(f["outcome"] is None for f in day8["findings"]), "no stop without a warning"
    assert by_name(day8)["llm-summarizer-canary"]["action"] == "warn"

    slack_server.outage(False)
    with slack_fleet.travel(9):
        code, day9 = run_json(capsys, "run", "--apply")
    assert code == 0, day9["delivery_failures"]
    canary = by_name(day9)["llm-summarizer-canary"]
    assert canary["action"] == "warn"
    assert canary["stop_due"].startswith(slack_fleet.as_of(16)[:10])
    with slack_fleet.travel(15):
        code, day15 = run_json(capsys, "run", "--apply")
    assert by_name(day15)["llm-summarizer-canary"]["outcome"] is None
    with slack_fleet.travel(16):
        code, day16 = run_json(capsys, "run", "--apply")
    assert by_name(day16)["llm-summarizer-canary"]["outcome"] == "stopped"
    (stop_message,) = [m for m in messages_to(slack_server, BOB.id) if "Stopped" in m]
    assert "janitor restore arn:aws:sagemaker:" in stop_message  # by id (the ARN), pastable
    assert ":endpoint/llm-summarizer-canary`" in stop_message


def test_a_rate_limited_slack_is_waited_for(
    slack_fleet: Fleet, slack_server: SlackDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    slack_server.rate_limit("chat.postMessage", 1, retry_after=1)
    with slack_fleet.travel(0):
        code, report = run_json(capsys, "run", "--apply")
    assert code == 0
    assert report["delivery_failures"] == []
    assert len(messages_to(slack_server, BOB.id)) == 1


def test_unreachable_slack_is_one_line_per_owner_and_exit_1(
    slack_fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANITOR_SLACK_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "0")
    with slack_fleet.travel(0):
        code, report = run_json(capsys, "run", "--apply")
    assert code == 1
    assert report["delivery_failures"]
    assert all("\n" not in line for line in report["delivery_failures"])
    assert all(f["outcome"] is None for f in report["findings"])


def test_the_token_never_appears_in_output_reports_or_state(
    slack_fleet: Fleet, slack_server: SlackDevServer, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:  # fmt: skip
    caplog.set_level("DEBUG")
    for day in (0, 7):
        for fmt in ("json", "table", "markdown", "csv"):
            with slack_fleet.travel(day):
                cli.main(["run", "--apply", "--format", fmt])
    assert cli.main(["history"]) == 0
    captured = capsys.readouterr()
    assert slack_server.messages(), "Slack was used"
    for text in (captured.out, captured.err, caplog.text):
        assert SLACK_TOKEN not in text
    with sqlite3.connect(slack_fleet.state) as db:
        rows: list[Any] = db.execute("SELECT detail FROM audit").fetchall()
    assert rows
    assert all(SLACK_TOKEN not in row[0] for row in rows)


def test_a_policy_requiring_slack_without_a_token_is_a_usage_error(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "notifier:\n  type: slack\n  slack:\n    fallback_channel: '#ml-spend'\n"
        "rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n"
    )
    assert cli.main(["run", "--policy", str(policy), "--format", "json"]) == 0  # dry run: fine
    capsys.readouterr()
    assert cli.main(["run", "--apply", "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN" in err
    assert fleet.mutating_calls() == {}
