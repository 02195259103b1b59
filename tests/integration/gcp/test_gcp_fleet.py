"""The demo's GCP project (`janitor.devserver.gcp_fleet`) tells the story it promises, through
`janitor scan` against the local GCP server with the demo's owners mapping; and
`advance_gcp_fleet` keeps it going as the (faked) days pass, for what still runs only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from janitor import cli
from janitor.demo import DEMO_OWNERS_POLICY
from janitor.devserver.gcp import GcpDevServer
from janitor.devserver.gcp_fleet import (
    GcpFleet,
    advance_gcp_fleet,
    demo_gcp_fleet,
    seed_gcp_fleet,
)

PROJECT = "example-project"  # the project of the generated key (conftest)
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fleet(gcp_env: GcpDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GcpFleet:
    """The demo's GCP fleet seeded as of NOW, and a policy of the three GCP rules (the default
    policy's thresholds and lifecycle) with the demo's owners section."""
    spec = demo_gcp_fleet(PROJECT)
    assert seed_gcp_fleet(gcp_env, spec, NOW) > 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "gcp:\n  projects: []\n"  # the ADC's project
        "notifier:\n  type: console\n  counts_as_delivery: true\n"
        "rules:\n"
        "  - name: gpu\n    kind: gcp.gce-gpu\n"
        "  - name: vertex\n    kind: gcp.vertex-endpoint\n"
        "  - name: workbench\n    kind: gcp.workbench\n" + DEMO_OWNERS_POLICY,
        encoding="utf-8",
    )
    monkeypatch.setenv("JANITOR_POLICY", str(policy))
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return spec


def scan(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code = cli.main(["scan", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["errors"]
    return {f["name"]: f for f in report["findings"]}


def test_the_demo_project_scans_as_its_story_says(
    fleet: GcpFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    with time_machine.travel(NOW + timedelta(hours=1), tick=True):
        rows = scan(capsys)
    assert set(rows) == {
        *(vm.name for vm in fleet.gpu_vms),
        *(ep.display_name for ep in fleet.endpoints),
        *(nb.name for nb in fleet.workbench),
    }
    status = {name: row["status"] for name, row in rows.items()}
    assert status == {
        "llm-pretrain-a100": "active",
        "vision-train-v100": "idle",
        "shared-t4-sandbox": "idle",
        "l4-dev-box": "idle",
        "a100-benchmark": "exempt",
        "fraud-scorer-vertex": "active",
        "summarizer-ab": "idle",
        "carol-workbench": "idle",
        "alice-workbench": "active",
    }
    # Warned on day 0 (53 idle days or more), stopped on day 7; the others only noticed.
    assert rows["vision-train-v100"]["action"] == "warn"
    assert rows["summarizer-ab"]["action"] == "warn"
    assert rows["shared-t4-sandbox"]["action"] == "notify"
    assert 50 <= rows["shared-t4-sandbox"]["idle_days"] < 51  # warned on day 3, stopped day 10
    # Evidence: the Ops Agent (high), or the CPU fallback without it (low).
    assert rows["vision-train-v100"]["confidence"] == "high"
    assert rows["l4-dev-box"]["confidence"] == "low"
    assert "fallback" in rows["l4-dev-box"]["evidence"]
    # Owner labels are bare names: mapped by the owners section (map, then domain).
    assert rows["vision-train-v100"]["owner"] == "bob@example.com"
    assert rows["shared-t4-sandbox"]["owner"] == "#ml-vision"
    assert rows["carol-workbench"]["owner"] == "carol@example.com"
    # Idle shutdown off: advised; on: no advice.
    assert "idle-timeout-seconds" in rows["carol-workbench"]["advice"]
    assert rows["alice-workbench"]["advice"] is None
    assert rows["summarizer-ab"]["id"].endswith("/endpoints/5727437217830305792")


def test_the_story_goes_on_for_what_still_runs(
    fleet: GcpFleet, gcp_env: GcpDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    later = NOW + timedelta(days=5, hours=1)
    gcp_env.set_instance_status(PROJECT, "us-central1-b", "shared-t4-sandbox", "TERMINATED")
    with time_machine.travel(later, tick=True):
        published = advance_gcp_fleet(gcp_env, fleet, NOW, NOW, later)
        rows = scan(capsys)
    # The busy stay busy (without new points their newest day would be five days old) ...
    assert rows["llm-pretrain-a100"]["status"] == "active"
    assert rows["fraud-scorer-vertex"]["status"] == "active"
    assert rows["alice-workbench"]["status"] == "active"
    # ... and the idle stay idle, five days longer.
    assert rows["vision-train-v100"]["idle_days"] == pytest.approx(61, abs=1)
    assert rows["summarizer-ab"]["idle_days"] == pytest.approx(59, abs=1)
    # A stopped VM publishes nothing: the same days again publish only for the others.
    assert "shared-t4-sandbox" not in rows
    gcp_env.set_instance_status(PROJECT, "us-central1-b", "shared-t4-sandbox", "RUNNING")
    with time_machine.travel(later, tick=True):
        assert advance_gcp_fleet(gcp_env, fleet, NOW, NOW, later) - published == 5 * 4
        # (one GPU, CPU, received and sent bytes: 4 series, 5 days)
        assert advance_gcp_fleet(gcp_env, fleet, NOW, later, later) == 0  # nothing new
