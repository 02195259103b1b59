"""End-to-end fixtures: the demo fleet in the AWS emulator, and the CLI driven in-process.

Later days are reached by faking the process clock (`fleet.travel(day)`), never by giving an
applied run another lifecycle clock (refused): moto runs in this process, so the emulator's
clock and janitor's wall clock move together.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from janitor import cli

if TYPE_CHECKING:
    from janitor.devserver.aws import AwsDevServer
    from janitor.devserver.fleet import Fleet as FleetSpec

DAY_DRIFT = timedelta(seconds=10)
MUTATING = ("Create", "Delete", "Stop", "Start", "Update", "Put", "Add", "Tag", "Untag")


@dataclass
class Fleet:
    server: AwsDevServer
    now: datetime  # when the fleet was seeded
    state: Path
    spec: FleetSpec
    published_until: datetime  # metrics are published up to here
    own_calls: Counter[str] = field(default_factory=Counter)  # the fleet's, not janitor's

    def at(self, day: float) -> datetime:
        """Day `day` of the story: an hour past the seeding time, `day` days later.

        Plus DAY_DRIFT per day: the clock ticks during a run, so a warning is recorded a moment
        after its day began; the drift makes "seven days after the warning" come by the start
        of the run seven days later, as it did when each run took no time.
        """
        return self.now + timedelta(days=day, hours=1) + day * DAY_DRIFT

    def as_of(self, day: float) -> str:
        """The `--as-of` text for day `day` (dry runs and scans only)."""
        return self.at(day).strftime("%Y-%m-%dT%H:%M:%SZ")

    @contextmanager
    def travel(self, day: float) -> Iterator[datetime]:
        """Run the block on day `day`: the process clock (janitor's and moto's) moved there.

        The clock ticks on from there (`tick=True`): botocore's retry back-off and the Slack
        SDK's Retry-After waits sleep on it, and would wait forever on a frozen one.
        """
        import time_machine

        from janitor.devserver.fleet import advance_fleet

        when = self.at(day)
        if when > self.published_until:  # the fleet lived on: its metrics too
            with time_machine.travel(when, tick=True):
                before = Counter(self.server.calls)
                advance_fleet(self.server, self.spec, self.published_until, when)
                self.published_until = when
                self.own_calls += Counter(self.server.calls) - before
        with time_machine.travel(when, tick=True):
            yield when

    def mutating_calls(self) -> dict[str, int]:
        calls = Counter(self.server.calls) - self.own_calls
        return {op: n for op, n in calls.items() if op.rsplit(".", 1)[-1].startswith(MUTATING)}


@pytest.fixture
def fleet(aws_env: AwsDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    from janitor.devserver.fleet import demo_fleet, seed_fleet

    now = datetime.now(UTC).replace(microsecond=0)
    spec = demo_fleet("us-east-1")
    seed_fleet(aws_env, spec, now)
    aws_env.reset_calls()
    state = tmp_path / "state.db"
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{state}")
    monkeypatch.setenv("JANITOR_REGIONS", "us-east-1")
    monkeypatch.delenv("JANITOR_POLICY", raising=False)
    for name in (
        "JANITOR_KILL_SWITCH",
        "SLACK_BOT_TOKEN",
        "JANITOR_SLACK_WEBHOOK_URL",
        "JANITOR_SLACK_API_URL",
        "JANITOR_SLACK_FALLBACK_CHANNEL",
    ):
        monkeypatch.delenv(name, raising=False)
    return Fleet(aws_env, now, state, spec, now)


@pytest.fixture
def counting_console(fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default policy with a console whose output counts as delivery (stops without
    messages), for the tests of the lifecycle itself. Without it, nothing is ever stopped."""
    text = Path("policies/default.yaml").read_text(encoding="utf-8")
    notifier = "notifier:\n  type: console\n  counts_as_delivery: true\n"
    start = text.index("notifier:")
    end = text.index("\nrules:")
    policy = tmp_path / "counting-console.yaml"
    policy.write_text(text[:start] + notifier + text[end:], encoding="utf-8")
    monkeypatch.setenv("JANITOR_POLICY", str(policy))
    return policy


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}
