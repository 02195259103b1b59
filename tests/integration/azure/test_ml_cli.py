"""`azure.ml-endpoint` and `azure.ml-compute` end to end through `janitor.cli.main` against the
local ARM: scan (JSON), `run --apply` over faked days (time_machine, ticking: calls may retry
and long-running operations poll), then `restore` by name; a subscription without permission;
owner tags through Slack, unmapped ones to the fallback channel."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from tests.conftest import ALICE, SLACK_TOKEN
from tests.integration.azure.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION

from janitor import cli
from janitor.clouds.azure.ml_endpoint import (
    DEPLOYMENT_NAMESPACE,
    ENDPOINT_NAMESPACE,
    REQUESTS_METRIC,
)
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService
from janitor.devserver.slack import SlackDevServer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
CREATED = NOW - timedelta(days=120)
CONSOLE = "notifier:\n  type: console\n  counts_as_delivery: true\n"
RULES = (
    "rules:\n"
    "  - name: endpoints\n    kind: azure.ml-endpoint\n"
    "  - name: instances\n    kind: azure.ml-compute\n"
)


def policy(tmp_path: Path, subscriptions: list[str] | None = None, notifier: str = CONSOLE) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  notify_after: 30d\n"
        "  stop_after: 60d\n"
        "  warning: 7d\n"
        "  owner_tags: [owner]\n"
        f"azure:\n  subscriptions: [{', '.join(subscriptions or [SUBSCRIPTION])}]\n"
        "owners:\n  map: {alice: alice@example.com}\n"
        f"{notifier}{RULES}",
        encoding="utf-8",
    )
    return path


def days(value: float) -> dict[date, float]:
    return {(NOW - timedelta(days=k)).date(): value for k in range(-12, 80)}


class Seeded:
    def __init__(self, server: AzureDevServer) -> None:
        self.server = server
        self.ml = server.mount(MachineLearningService)
        self.ws = self.ml.add_workspace(SUBSCRIPTION, "team-ws", created_at=CREATED)
        self.endpoints: dict[str, str] = {}
        for name, requests, owner in (
            ("ep-idle", None, "alice"),
            ("ep-unowned", None, "bob"),
            ("ep-busy", 500.0, "alice"),
        ):
            ep_id = self.ml.add_endpoint(
                self.ws, name,
                deployments=[
                    {"name": "blue", "instance_type": "Standard_NC4as_T4_v3", "capacity": 2},
                    {"name": "green", "instance_type": "Standard_DS3_v2", "capacity": 1},
                ],
                traffic={"blue": 80, "green": 20}, tags={"owner": owner}, created_at=CREATED,
            )  # fmt: skip
            self.endpoints[name] = ep_id
            for deployment in ("blue", "green"):
                server.monitor.add_daily(
                    f"{ep_id}/deployments/{deployment}", "CpuUtilizationPercentage", days(2.0),
                    namespace=DEPLOYMENT_NAMESPACE,
                )  # fmt: skip
                if requests:
                    server.monitor.add_daily(
                        ep_id, REQUESTS_METRIC, days(requests), namespace=ENDPOINT_NAMESPACE,
                        dimensions={"deployment": deployment},
                    )  # fmt: skip
        self.compute = self.ml.add_compute_instance(
            self.ws, "lazy-ci", created_at=CREATED, tags={"owner": "alice"}
        )


@pytest.fixture
def seeded(azure_env: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return Seeded(azure_env)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}


def test_scan_reports_endpoints_and_compute_instances(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_json(capsys, "scan", "--policy", str(policy(tmp_path)))
    assert code == 0, report["errors"]
    rows = by_name(report)
    assert set(rows) == {"ep-idle", "ep-unowned", "ep-busy", "lazy-ci"}
    idle = rows["ep-idle"]
    assert idle["status"] == "idle"
    assert idle["id"] == seeded.endpoints["ep-idle"]
    assert idle["region"] == "eastus"
    assert idle["owner"] == "alice@example.com"
    assert idle["monthly_cost_usd"] == pytest.approx((2 * 0.526 + 0.293) * 730)
    assert rows["ep-busy"]["status"] == "active"
    lazy = rows["lazy-ci"]
    assert lazy["status"] == "idle"
    assert lazy["confidence"] == "low"
    assert "idleTimeBeforeShutdown" in lazy["advice"]
    assert lazy["monthly_cost_usd"] == pytest.approx(0.526 * 730)
    # A scan is a dry run: nothing was written.
    for op in ("OnlineEndpoints_CreateOrUpdate", "OnlineDeployments_Delete", "Compute_Stop"):
        assert seeded.server.calls[op] == 0


def test_a_subscription_without_permission_is_an_error_and_the_rest_goes_on(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded.server.add_subscription(OTHER_SUBSCRIPTION)
    seeded.server.deny_subscription(OTHER_SUBSCRIPTION)
    path = policy(tmp_path, [SUBSCRIPTION, OTHER_SUBSCRIPTION])
    code, report = run_json(capsys, "scan", "--policy", str(path))
    assert code == 1
    denied = [e for e in report["errors"] if e["scope"] == OTHER_SUBSCRIPTION]
    assert len(denied) == 2  # both kinds
    assert all("AuthorizationFailed" in e["message"] for e in denied)
    assert {"ep-idle", "lazy-ci"} <= set(by_name(report))


def test_warns_then_stops_then_restores(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path))
    ml = seeded.ml
    ep_id = seeded.endpoints["ep-idle"]
    before = ml.deployments(ep_id)
    with time_machine.travel(NOW, tick=True):
        code, day0 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0, day0["errors"]
    rows = by_name(day0)
    assert rows["ep-idle"]["action"] == "warn"
    assert rows["lazy-ci"]["action"] == "warn"
    assert seeded.server.calls["OnlineDeployments_Delete"] == 0
    assert seeded.server.calls["Compute_Stop"] == 0

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0, day7["errors"]
    rows = by_name(day7)
    assert rows["ep-idle"]["outcome"] == "stopped"
    assert rows["lazy-ci"]["outcome"] == "stopped"
    assert rows["ep-busy"]["outcome"] is None
    assert ml.deployments(ep_id) == {}
    kept = ml.endpoint(ep_id)
    assert kept is not None  # the endpoint stays, its traffic at zero
    assert kept["properties"]["traffic"] == {"blue": 0, "green": 0}
    assert set(ml.deployments(seeded.endpoints["ep-busy"])) == {"blue", "green"}
    stopped = ml.compute(seeded.compute)
    assert stopped is not None
    assert stopped["properties"]["properties"]["state"] == "Stopped"

    assert cli.main(["restore", "ep-idle", "--policy", path]) == 0
    assert "ep-idle" in capsys.readouterr().out
    after = ml.deployments(ep_id)
    assert set(after) == {"blue", "green"}
    for name in ("blue", "green"):
        assert after[name]["sku"] == before[name]["sku"]
        assert after[name]["properties"] == {
            **before[name]["properties"],
            "provisioningState": "Succeeded",
        }
    restored = ml.endpoint(ep_id)
    assert restored is not None
    assert restored["properties"]["traffic"] == {"blue": 80, "green": 20}

    assert cli.main(["restore", "lazy-ci", "--policy", path]) == 0
    assert "lazy-ci" in capsys.readouterr().out
    running = ml.compute(seeded.compute)
    assert running is not None
    assert running["properties"]["properties"]["state"] == "Running"


def test_a_deployment_recreated_between_scan_and_stop_is_refused(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path))
    ep_id = seeded.endpoints["ep-idle"]
    with time_machine.travel(NOW, tick=True):
        assert run_json(capsys, "run", "--apply", "--policy", path)[0] == 0
    # Someone deletes and recreates "blue" right after the day-7 scan listed the deployments.
    seeded.ml.recreate_deployment_after_lists(ep_id, "blue", lists=1)
    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0, day7["errors"]
    row = by_name(day7)["ep-idle"]
    assert row["outcome"] == "refused-state"
    assert "blue was recreated" in row["outcome_message"]
    assert set(seeded.ml.deployments(ep_id)) == {"blue", "green"}
    kept = seeded.ml.endpoint(ep_id)
    assert kept is not None
    assert kept["properties"]["traffic"] == {"blue": 80, "green": 20}  # not touched


def test_owner_tags_reach_slack_and_unmapped_ones_the_fallback_channel(
    seeded: Seeded,
    slack_server: SlackDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_FALLBACK_CHANNEL", "#ml-spend")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    path = policy(tmp_path, notifier="notifier:\n  type: slack\n")
    code, report = run_json(capsys, "run", "--apply", "--policy", str(path))
    assert code == 0, report["delivery_failures"]
    sent = {
        str(m.params["channel"]): json.dumps(m.params.get("blocks")) + str(m.params["text"])
        for m in slack_server.messages()
        if "idle" in str(m.params["text"]) + json.dumps(m.params.get("blocks"))
    }
    assert "ep-idle" in sent[ALICE.id]  # tag "alice" -> owners.map -> alice@example.com
    assert "lazy-ci" in sent[ALICE.id]
    assert "ep-unowned" in sent["#ml-spend"]  # tag "bob": no mapping, not an address
    assert "ep-unowned" not in sent[ALICE.id]
