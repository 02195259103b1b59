"""`azure.ml-endpoint` with a request history: an endpoint that served requests until weeks ago
and none since is idle since its last busy day, not active because its newest day *with a
request count* was busy (Azure Monitor answers no value on a day without requests: the
heartbeat tells those days apart)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.azure.conftest import SUBSCRIPTION

from janitor import cli
from janitor.clouds.azure.ml_endpoint import (
    DEPLOYMENT_NAMESPACE,
    ENDPOINT_NAMESPACE,
    REQUESTS_METRIC,
)
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def days_ago(first: int, last: int) -> list[date]:
    """The days from `first` days ago to `last` days ago (both included)."""
    return [TODAY - timedelta(days=k) for k in range(last, first + 1)]


def scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        f"azure:\n  subscriptions: [{SUBSCRIPTION}]\n"
        "notifier:\n  type: console\n  counts_as_delivery: true\n"
        "rules:\n  - name: endpoints\n    kind: azure.ml-endpoint\n",
        encoding="utf-8",
    )
    code = cli.main(["scan", "--policy", str(policy), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["errors"]
    return {f["name"]: f for f in report["findings"]}


def test_requests_that_stopped_weeks_ago_are_an_idle_streak(
    azure_env: AzureDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    ml = azure_env.mount(MachineLearningService)
    ws = ml.add_workspace(SUBSCRIPTION, "ws", created_at=NOW - timedelta(days=200))
    ep = ml.add_endpoint(
        ws, "was-busy", deployments=[{"name": "blue"}], created_at=NOW - timedelta(days=120)
    )
    # Requests every day until 45 days ago, none since; the heartbeat every day up to today.
    busy = days_ago(119, 45)
    azure_env.monitor.add_daily(
        ep, REQUESTS_METRIC, dict.fromkeys(busy, 5000.0), namespace=ENDPOINT_NAMESPACE,
        dimensions={"deployment": "blue"},
    )  # fmt: skip
    azure_env.monitor.add_daily(
        f"{ep}/deployments/blue", "CpuUtilizationPercentage",
        dict.fromkeys(days_ago(119, 0), 3.0), namespace=DEPLOYMENT_NAMESPACE,
    )  # fmt: skip

    row = scan(tmp_path, capsys)["was-busy"]
    assert row["status"] == "idle"
    last_busy = TODAY - timedelta(days=45)
    assert row["idle_since"].startswith((last_busy + timedelta(days=1)).isoformat())
    assert f"last busy day {last_busy.isoformat()}" in row["evidence"]


def test_requests_yesterday_are_active_without_reading_the_heartbeat(
    azure_env: AzureDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    ml = azure_env.mount(MachineLearningService)
    ws = ml.add_workspace(SUBSCRIPTION, "ws", created_at=NOW - timedelta(days=200))
    ep = ml.add_endpoint(
        ws, "busy", deployments=[{"name": "blue"}], created_at=NOW - timedelta(days=120)
    )
    azure_env.monitor.add_daily(
        ep, REQUESTS_METRIC, dict.fromkeys(days_ago(119, 1), 5000.0),
        namespace=ENDPOINT_NAMESPACE, dimensions={"deployment": "blue"},
    )  # fmt: skip
    azure_env.monitor.add_daily(
        f"{ep}/deployments/blue", "CpuUtilizationPercentage",
        dict.fromkeys(days_ago(119, 0), 60.0), namespace=DEPLOYMENT_NAMESPACE,
    )  # fmt: skip
    azure_env.reset_calls()

    row = scan(tmp_path, capsys)["busy"]
    assert row["status"] == "active"
    assert azure_env.calls["Metrics_List"] == 1  # the requests only
