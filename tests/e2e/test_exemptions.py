"""Exemptions end to end: the CLI against the AWS emulator and the local Slack server, with the
process clock moved forward (time_machine), never `--as-of`.

A GPU instance is warned, then exempted until a date; the day after that date it is warned
again, with a new stop date a full warning period away, and it is not stopped until then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.conftest import BOB, SLACK_TOKEN
from tests.e2e.conftest import Fleet, by_name, run_json

from janitor.devserver.slack import SlackDevServer
from janitor.devserver.timetravel import put_daily_metric

pytestmark = pytest.mark.e2e

BOX = "train-box-p3"  # bob's, 4 GPUs, idle 61 days when the fleet is seeded
POLICY = """\
notifier:
  type: slack
  slack:
    fallback_channel: '#ml-spend'
rules:
  - name: gpu
    kind: aws.ec2-gpu
"""


def ec2() -> Any:
    return boto3.client("ec2", region_name="us-east-1")


def instance(name: str) -> dict[str, Any]:
    pages = ec2().describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    (found,) = [i for r in pages["Reservations"] for i in r["Instances"]]
    return dict(found)


@contextmanager
def on_day(fleet: Fleet, day: int, hours: int) -> Iterator[datetime]:
    """The process clock (janitor's and the in-process emulator's) `day` days after seeding."""
    import time_machine

    when = fleet.now + timedelta(days=day, hours=hours)
    # tick: the clock runs on, so SDK retries and the Slack client's waits still see time pass.
    with time_machine.travel(when, tick=True):
        yield when


class Runner:
    """Runs `janitor run --apply` on a given day, the GPU agent having reported 0% until then."""

    def __init__(self, fleet: Fleet, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.fleet = fleet
        self.policy = policy
        self.capsys = capsys
        self.reported_through = 0  # the fleet's seed covers day 0

    def _report_idle_gpus(self, through: int) -> None:
        instance_id = instance(BOX)["InstanceId"]
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        noon = self.fleet.now.replace(hour=12, minute=0, second=0, microsecond=0)
        points = [(noon + timedelta(days=n), 0.0) for n in range(self.reported_through + 1,
                                                                  through + 1)]  # fmt: skip
        if points:
            for index in range(4):
                dims = {"InstanceId": instance_id, "index": str(index),
                        "name": "Tesla V100-SXM2-16GB"}  # fmt: skip
                put_daily_metric(cloudwatch, "CWAgent", "nvidia_smi_utilization_gpu", dims, points)
        self.reported_through = through

    def on(self, day: int, *, hours: int = 1) -> dict[str, Any]:
        self._report_idle_gpus(day)
        with on_day(self.fleet, day, hours):
            code, report = run_json(self.capsys, "run", "--apply", "--policy", str(self.policy))
        assert code == 0, (report["errors"], report["delivery_failures"])
        row: dict[str, Any] = by_name(report)[BOX]
        return row

    def date(self, day: int, *, hours: int = 1) -> str:
        return (self.fleet.now + timedelta(days=day, hours=hours)).date().isoformat()


def warnings_to_bob(slack_server: SlackDevServer) -> list[str]:
    return [
        json.dumps(m.params.get("blocks"))
        for m in slack_server.messages()
        if m.params["channel"] == BOB.id and BOX in json.dumps(m.params.get("blocks"))
    ]


def test_after_a_dated_exemption_ends_the_owner_is_warned_again_before_any_stop(
    fleet: Fleet,
    slack_server: SlackDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    run = Runner(fleet, policy, capsys)
    instance_id = instance(BOX)["InstanceId"]

    # Day 0: idle 61 days, never warned: warned (delivered by Slack), stop in 7 days.
    day0 = run.on(0)
    assert (day0["status"], day0["action"]) == ("idle", "warn")
    assert day0["stop_due"][:10] == run.date(7)
    assert len(warnings_to_bob(slack_server)) == 1

    # Day 1: bob exempts it until day 10 (inclusive); janitor reports it, touches nothing.
    until = (fleet.now + timedelta(days=10)).date().isoformat()
    ec2().create_tags(Resources=[instance_id], Tags=[{"Key": "janitor-exempt", "Value": until}])
    day1 = run.on(1)
    assert (day1["status"], day1["action"]) == ("exempt", "skip")

    # Day 11: the exemption is over. The day-0 warning (stop due on day 7) no longer counts: a
    # new warning, with a stop date a full warning period away, and no stop today.
    slack_server.clear()
    day11 = run.on(11)
    assert (day11["status"], day11["action"], day11["outcome"]) == ("idle", "warn", None)
    assert day11["stop_due"][:10] == run.date(18)
    (warning,) = warnings_to_bob(slack_server)
    assert "Will be stopped" in warning
    assert '"verbatim": true' in warning  # as posted to Slack: cloud values shown as they are
    assert instance(BOX)["State"]["Name"] == "running"

    # Day 17: still inside the new warning period: not stopped.
    day17 = run.on(17)
    assert (day17["action"], day17["outcome"]) == ("none", None)
    assert instance(BOX)["State"]["Name"] == "running"

    # Day 18, an hour after the date the new warning announced: stopped.
    day18 = run.on(18, hours=2)
    assert (day18["action"], day18["outcome"]) == ("stop", "stopped")
    assert instance(BOX)["State"]["Name"] in ("stopping", "stopped")
