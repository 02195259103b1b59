"""End-to-end fixtures: the demo fleet in the AWS emulator, and the CLI driven in-process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from janitor import cli

if TYPE_CHECKING:
    from janitor.devserver.aws import AwsDevServer

MUTATING = ("Create", "Delete", "Stop", "Start", "Update", "Put", "Add", "Tag", "Untag")


@dataclass
class Fleet:
    server: AwsDevServer
    now: datetime
    state: Path

    def as_of(self, day: int) -> str:
        return (self.now + timedelta(days=day, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def mutating_calls(self) -> dict[str, int]:
        return {
            op: n
            for op, n in self.server.calls.items()
            if op.rsplit(".", 1)[-1].startswith(MUTATING)
        }


@pytest.fixture
def fleet(aws_env: AwsDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    from janitor.devserver.fleet import demo_fleet, seed_fleet

    now = datetime.now(UTC).replace(microsecond=0)
    seed_fleet(aws_env, demo_fleet("us-east-1"), now)
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
    return Fleet(aws_env, now, state)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}
