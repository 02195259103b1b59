"""`gcp.workbench` end to end through `janitor.cli.main` against the local GCP server: scan (the
`advice` field), `run --apply` over faked days (time_machine, ticking: calls may retry), then
`restore`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from tests.integration.gcp.conftest import list_price

from janitor import cli
from janitor.clouds.gcp.workbench import CPU_METRIC
from janitor.devserver.gcp import GcpDevServer

PROJECT = "example-project"
ZONE = "us-central1-a"
NOW = datetime.now(UTC).replace(microsecond=0)


def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  notify_after: 30d\n"
        "  stop_after: 60d\n"
        "  warning: 7d\n"
        "  owner_tags: [owner]\n"
        f"gcp:\n  projects: [{PROJECT}]\n"
        "owners:\n  map: {alice: alice@example.com}\n"
        "notifier:\n  type: console\n  counts_as_delivery: true\n"
        "rules:\n  - name: notebooks\n    kind: gcp.workbench\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def seeded(gcp_env: GcpDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GcpDevServer:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    for name, value, metadata in (
        ("lazy-nb", 0.01, {"idle-timeout-seconds": "0"}),
        ("busy-nb", 0.80, {}),
        ("tidy-nb", 0.01, {"idle-timeout-seconds": "10800"}),
    ):
        body = gcp_env.add_workbench(
            PROJECT, ZONE, name, machine_type="n1-standard-8", metadata=metadata,
            labels={"owner": "alice"}, created_at=NOW - timedelta(days=120),
        )  # fmt: skip
        gcp_env.add_daily(
            PROJECT, CPU_METRIC, resource_type="gce_instance",
            resource_labels={"instance_id": str(body["gceSetup"]["instanceId"]), "zone": ZONE},
            days={(NOW - timedelta(days=k)).date(): value for k in range(-12, 80)},
        )  # fmt: skip
    return gcp_env


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}


def test_scan_shows_the_advice_and_the_evidence(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_json(capsys, "scan", "--policy", str(policy(tmp_path)))
    assert code == 0, report["errors"]
    rows = by_name(report)
    assert rows["lazy-nb"]["status"] == "idle"
    assert rows["lazy-nb"]["confidence"] == "low"
    assert "idle-timeout-seconds" in rows["lazy-nb"]["advice"]
    assert rows["busy-nb"]["status"] == "active"
    assert "absent" in rows["busy-nb"]["advice"]
    assert rows["tidy-nb"]["advice"] is None
    assert rows["lazy-nb"]["owner"] == "alice@example.com"
    assert rows["lazy-nb"]["region"] == "us-central1"
    assert rows["lazy-nb"]["monthly_cost_usd"] == round(list_price("gce", "n1-standard-8") * 730, 2)
    assert seeded.calls["notebooks.instances.list"] == 1
    assert seeded.calls["monitoring.timeSeries.list"] == 1

    assert cli.main(["scan", "--policy", str(policy(tmp_path)), "--format", "table"]) == 0
    assert "lazy-nb (gcp.workbench, us-central1): idle shutdown is off" in capsys.readouterr().out


def test_warns_then_stops_then_restores(
    seeded: GcpDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path))
    with time_machine.travel(NOW, tick=True):
        code, day0 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert by_name(day0)["lazy-nb"]["action"] == "warn"
    assert seeded.calls["notebooks.instances.stop"] == 0

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day7)
    assert rows["lazy-nb"]["outcome"] == "stopped"
    assert rows["tidy-nb"]["outcome"] == "stopped"
    assert rows["busy-nb"]["outcome"] is None
    assert seeded.workbench(PROJECT, ZONE, "lazy-nb")["state"] == "STOPPED"  # type: ignore[index]
    assert seeded.workbench(PROJECT, ZONE, "busy-nb")["state"] == "ACTIVE"  # type: ignore[index]

    assert cli.main(["restore", "lazy-nb", "--policy", path]) == 0
    assert "lazy-nb" in capsys.readouterr().out
    assert seeded.workbench(PROJECT, ZONE, "lazy-nb")["state"] == "ACTIVE"  # type: ignore[index]
