"""`gcp.gce-gpu` end to end through `janitor.cli.main` against the local GCP server: scan,
`run --apply` over faked days (time_machine, ticking: calls may retry), then `restore`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from tests.conftest import ALICE, SLACK_TOKEN
from tests.integration.gcp.conftest import list_price

from janitor import cli
from janitor.clouds.gcp.gce_gpu import GPU_METRIC
from janitor.devserver.gcp import GcpDevServer
from janitor.devserver.slack import SlackDevServer

PROJECT = "example-project"
OTHER = "disabled-project"
ZONE = "us-central1-a"
NOW = datetime.now(UTC).replace(microsecond=0)


CONSOLE = "notifier:\n  type: console\n  counts_as_delivery: true\n"


def policy(tmp_path: Path, projects: list[str], notifier: str = CONSOLE) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  notify_after: 30d\n"
        "  stop_after: 60d\n"
        "  warning: 7d\n"
        "  owner_tags: [owner]\n"
        f"gcp:\n  projects: [{', '.join(projects)}]\n"
        "owners:\n  map: {alice: alice@example.com}\n"
        f"{notifier}"
        "rules:\n  - name: gpu\n    kind: gcp.gce-gpu\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def seeded(gcp_env: GcpDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GcpDevServer:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    created = NOW - timedelta(days=120)
    for name, owner, value in (
        ("idle-t4", "alice", 1.0),
        ("unmapped-idle", "bob", 0.0),
        ("busy-t4", "alice", 90.0),
    ):
        body = gcp_env.add_instance(
            PROJECT, ZONE, name, accelerators=[("nvidia-tesla-t4", 1)],
            labels={"owner": owner}, created_at=created,
        )  # fmt: skip
        # 80 idle days up to today, and on into the days the test travels to.
        gcp_env.add_daily(
            PROJECT, GPU_METRIC, resource_type="gce_instance",
            resource_labels={"instance_id": str(body["id"]), "zone": ZONE},
            days={(NOW - timedelta(days=k)).date(): value for k in range(-12, 80)},
        )  # fmt: skip
    return gcp_env


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}


def test_a_project_with_compute_disabled_is_an_error_and_the_rest_goes_on(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded.disable_service(OTHER, "compute.googleapis.com")
    path = policy(tmp_path, [PROJECT, OTHER])
    code, report = run_json(capsys, "scan", "--policy", str(path))
    assert code == 1
    rows = by_name(report)
    assert rows["idle-t4"]["status"] == "idle"
    assert rows["idle-t4"]["region"] == "us-central1"
    assert rows["idle-t4"]["owner"] == "alice@example.com"  # through owners.map
    assert rows["unmapped-idle"]["owner"] == "bob"  # no mapping, no domain: as it is
    assert rows["busy-t4"]["status"] == "active"
    assert rows["idle-t4"]["monthly_cost_usd"] == round(
        (list_price("gce", "n1-standard-8") + list_price("gce-gpu", "nvidia-tesla-t4")) * 730, 2
    )
    (error,) = report["errors"]
    assert error["scope"] == OTHER
    assert "SERVICE_DISABLED" in error["message"]


def test_an_unreachable_zone_is_an_error_line_and_the_rest_is_used(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded.unreachable_zone(PROJECT, "asia-east1-a")
    code, report = run_json(capsys, "scan", "--policy", str(policy(tmp_path, [PROJECT])))
    assert code == 1
    assert {"idle-t4", "busy-t4", "unmapped-idle"} <= set(by_name(report))
    (error,) = report["errors"]
    assert "asia-east1-a" in error["message"]


def test_no_monitoring_data_is_unknown_and_never_stopped(
    gcp_env: GcpDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    gcp_env.add_instance(
        PROJECT, ZONE, "dark", accelerators=[("nvidia-tesla-t4", 1)],
        created_at=NOW - timedelta(days=120),
    )  # fmt: skip
    code, report = run_json(capsys, "run", "--apply", "--policy", str(policy(tmp_path, [PROJECT])))
    assert code == 0
    assert by_name(report)["dark"]["status"] == "unknown"
    assert gcp_env.calls["compute.instances.stop"] == 0


def test_warns_then_stops_then_restores(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path, [PROJECT]))
    with time_machine.travel(NOW, tick=True):
        code, day0 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day0)
    assert rows["idle-t4"]["action"] == "warn"  # 80 days idle: warned first, never stopped
    assert all(f["outcome"] is None for f in day0["findings"])
    assert seeded.calls["compute.instances.stop"] == 0

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day7)
    assert rows["idle-t4"]["outcome"] == "stopped"
    assert rows["busy-t4"]["outcome"] is None
    assert seeded.instance(PROJECT, ZONE, "idle-t4")["status"] == "TERMINATED"  # type: ignore[index]
    assert seeded.instance(PROJECT, ZONE, "busy-t4")["status"] == "RUNNING"  # type: ignore[index]

    assert cli.main(["restore", "idle-t4", "--policy", path]) == 0
    assert "idle-t4" in capsys.readouterr().out
    assert seeded.instance(PROJECT, ZONE, "idle-t4")["status"] == "RUNNING"  # type: ignore[index]


def test_owner_labels_reach_slack_and_unmapped_ones_the_fallback_channel(
    seeded: GcpDevServer,
    slack_server: SlackDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_FALLBACK_CHANNEL", "#ml-spend")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    path = policy(tmp_path, [PROJECT], notifier="notifier:\n  type: slack\n")
    code, report = run_json(capsys, "run", "--apply", "--policy", str(path))
    assert code == 0, report["delivery_failures"]
    sent = {
        str(m.params["channel"]): json.dumps(m.params.get("blocks")) + str(m.params["text"])
        for m in slack_server.messages()
        if "idle" in str(m.params["text"]) + json.dumps(m.params.get("blocks"))
    }
    assert "idle-t4" in sent[ALICE.id]  # label "alice" -> owners.map -> alice@example.com
    assert "unmapped-idle" in sent["#ml-spend"]  # label "bob": no mapping, not an address
    assert "unmapped-idle" not in sent[ALICE.id]
