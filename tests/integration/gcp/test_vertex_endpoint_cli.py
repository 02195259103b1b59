"""`gcp.vertex-endpoint` end to end through `janitor.cli.main` against the local GCP server: scan,
`run --apply` over faked days (time_machine, ticking: calls may retry), then `restore` by the
endpoint's display name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from janitor import cli
from janitor.clouds.gcp.vertex_endpoint import PREDICTIONS_METRIC, REPLICAS_METRIC, RESOURCE_TYPE
from janitor.devserver.gcp import GcpDevServer

PROJECT = "example-project"
LOC = "us-central1"
NOW = datetime.now(UTC).replace(microsecond=0)
CONSOLE = "notifier:\n  type: console\n  counts_as_delivery: true\n"


def policy(tmp_path: Path, regions: str = "[]") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  notify_after: 30d\n"
        "  stop_after: 60d\n"
        "  warning: 7d\n"
        "  owner_tags: [owner]\n"
        f"gcp:\n  projects: [{PROJECT}]\n  regions: {regions}\n"
        "owners:\n  map: {alice: alice@example.com}\n"
        f"{CONSOLE}"
        "rules:\n  - name: vertex\n    kind: gcp.vertex-endpoint\n",
        encoding="utf-8",
    )
    return path


def model(display: str) -> dict[str, Any]:
    return {
        "model": f"projects/{PROJECT}/locations/{LOC}/models/{display}",
        "displayName": display,
        "dedicatedResources": {
            "machineSpec": {
                "machineType": "n1-standard-4",
                "acceleratorType": "NVIDIA_TESLA_T4",
                "acceleratorCount": 1,
            },
            "minReplicaCount": 1,
            "maxReplicaCount": 2,
        },
    }


@pytest.fixture
def seeded(gcp_env: GcpDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GcpDevServer:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    gcp_env.set_locations(PROJECT, [LOC, "europe-west4"])
    for endpoint_id, predictions in (("idle", 0.0), ("busy", 500.0)):
        gcp_env.add_endpoint(
            PROJECT, LOC, endpoint_id, display_name=f"ep-{endpoint_id}",
            deployed_models=[model("a"), model("b")], labels={"owner": "alice"},
            created_at=NOW - timedelta(days=120),
        )  # fmt: skip
        labels = {"endpoint_id": endpoint_id, "location": LOC, "resource_container": PROJECT}
        window = {(NOW - timedelta(days=k)).date(): 1.0 for k in range(-12, 80)}
        gcp_env.add_daily(
            PROJECT, REPLICAS_METRIC, resource_type=RESOURCE_TYPE, resource_labels=labels,
            days=window,
        )  # fmt: skip
        if predictions:
            gcp_env.add_daily(
                PROJECT, PREDICTIONS_METRIC, resource_type=RESOURCE_TYPE, resource_labels=labels,
                days={day: predictions for day in window}, metric_kind="DELTA",
                value_type="INT64",
            )  # fmt: skip
    return gcp_env


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}


def test_scan_reports_each_endpoint_once_with_its_cost(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_json(capsys, "scan", "--policy", str(policy(tmp_path)))
    assert code == 0, report["errors"]
    rows = by_name(report)
    assert set(rows) == {"ep-idle", "ep-busy"}
    idle = rows["ep-idle"]
    assert idle["status"] == "idle"
    assert idle["id"] == f"projects/{PROJECT}/locations/{LOC}/endpoints/idle"
    assert idle["region"] == LOC
    assert idle["owner"] == "alice@example.com"
    assert idle["monthly_cost_usd"] == pytest.approx(2 * (0.219 + 0.4025) * 730)
    assert rows["ep-busy"]["status"] == "active"
    assert seeded.calls["aiplatform.locations.list"] == 1  # no regions: every location
    assert seeded.calls["monitoring.timeSeries.list"] == 2  # predictions and replicas


def test_with_regions_each_metric_is_still_one_query_per_project(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eu = "europe-west4"
    seeded.add_endpoint(
        PROJECT, eu, "eu", display_name="ep-eu", deployed_models=[model("c")],
        created_at=NOW - timedelta(days=120),
    )  # fmt: skip
    seeded.add_daily(
        PROJECT, REPLICAS_METRIC, resource_type=RESOURCE_TYPE,
        resource_labels={"endpoint_id": "eu", "location": eu, "resource_container": PROJECT},
        days={(NOW - timedelta(days=k)).date(): 1.0 for k in range(80)},
    )  # fmt: skip
    path = policy(tmp_path, f"[{LOC}, {eu}]")
    code, report = run_json(capsys, "scan", "--policy", str(path))
    assert code == 0, report["errors"]
    rows = by_name(report)
    assert rows["ep-idle"]["status"] == rows["ep-eu"]["status"] == "idle"
    assert seeded.calls["monitoring.timeSeries.list"] == 2  # not 2 per region
    assert seeded.calls["aiplatform.endpoints.list"] == 2  # each region of the policy once


def test_warns_then_undeploys_then_restores_by_display_name(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path, f"[{LOC}]"))
    before = seeded.endpoint(PROJECT, LOC, "idle")
    assert before is not None
    old_ids = {m["id"] for m in before["deployedModels"]}
    with time_machine.travel(NOW, tick=True):
        code, day0 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert by_name(day0)["ep-idle"]["action"] == "warn"
    assert seeded.calls["aiplatform.endpoints.undeployModel"] == 0

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day7)
    assert rows["ep-idle"]["outcome"] == "stopped"
    assert rows["ep-busy"]["outcome"] is None
    stopped = seeded.endpoint(PROJECT, LOC, "idle")
    assert stopped is not None
    assert not stopped.get("deployedModels")
    busy = seeded.endpoint(PROJECT, LOC, "busy")
    assert busy is not None
    assert len(busy["deployedModels"]) == 2

    assert cli.main(["restore", "ep-idle", "--policy", path]) == 0
    assert "ep-idle" in capsys.readouterr().out
    restored = seeded.endpoint(PROJECT, LOC, "idle")
    assert restored is not None
    new_ids = {m["id"] for m in restored["deployedModels"]}
    assert len(new_ids) == 2
    assert not new_ids & old_ids
    assert set(restored["trafficSplit"]) <= new_ids
    assert sum(restored["trafficSplit"].values()) == 100
    assert sorted(restored["trafficSplit"].values()) == sorted(before["trafficSplit"].values())
