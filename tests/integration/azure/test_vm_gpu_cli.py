"""`azure.vm-gpu` end to end through `janitor.cli.main` against the local ARM: scan, `run
--apply` over faked days (time_machine, ticking: calls may retry and poll), then `restore`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from tests.conftest import ALICE, SLACK_TOKEN
from tests.integration.azure.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION

from janitor import cli
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.slack import SlackDevServer
from janitor.pricing import load_catalog

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RG = "ml-rg"
NOW = datetime.now(UTC).replace(microsecond=0)
CONSOLE = "notifier:\n  type: console\n  counts_as_delivery: true\n"


def policy(tmp_path: Path, subscriptions: list[str], notifier: str = CONSOLE) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  notify_after: 30d\n"
        "  stop_after: 60d\n"
        "  warning: 7d\n"
        "  owner_tags: [owner]\n"
        f"azure:\n  subscriptions: [{', '.join(subscriptions)}]\n"
        "owners:\n  map: {alice: alice@example.com}\n"
        f"{notifier}"
        "rules:\n  - name: gpu\n    kind: azure.vm-gpu\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def seeded(
    azure_env: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AzureDevServer:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    created = NOW - timedelta(days=120)
    for name, owner, cpu in (
        ("idle-v100", "alice", 1.0),
        ("unmapped-idle", "bob", 0.5),
        ("busy-v100", "alice", 90.0),
    ):
        body = azure_env.compute.add_vm(
            SUBSCRIPTION, name, size="Standard_NC6s_v3", tags={"owner": owner},
            time_created=created,
        )  # fmt: skip
        # 80 idle days up to today, and on into the days the test travels to.
        azure_env.monitor.add_daily(
            body["id"], "Percentage CPU",
            {(NOW - timedelta(days=k)).date(): cpu for k in range(-12, 80)},
        )  # fmt: skip
    azure_env.add_subscription(OTHER_SUBSCRIPTION)
    return azure_env


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["findings"]}


def test_a_subscription_without_permission_is_an_error_and_the_rest_goes_on(
    seeded: AzureDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded.deny_subscription(OTHER_SUBSCRIPTION)
    path = policy(tmp_path, [SUBSCRIPTION, OTHER_SUBSCRIPTION])
    code, report = run_json(capsys, "scan", "--policy", str(path))
    assert code == 1
    rows = by_name(report)
    assert rows["idle-v100"]["status"] == "idle"
    assert rows["idle-v100"]["region"] == "eastus"
    assert rows["idle-v100"]["owner"] == "alice@example.com"  # through owners.map
    assert rows["unmapped-idle"]["owner"] == "bob"  # no mapping, no domain: as it is
    assert rows["busy-v100"]["status"] == "active"
    hourly = load_catalog().hourly("azure-vm", "eastus", "Standard_NC6s_v3")
    assert hourly is not None
    assert rows["idle-v100"]["monthly_cost_usd"] == pytest.approx(round(hourly * 730, 2))
    (error,) = report["errors"]
    assert error["scope"] == OTHER_SUBSCRIPTION
    assert "403 AuthorizationFailed" in error["message"]


def test_no_credentials_skips_azure_and_exits_0(
    no_azure_credentials: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    code, report = run_json(capsys, "scan", "--policy", str(policy(tmp_path, [])))
    assert code == 0
    assert report["findings"] == []
    assert any(line.startswith("azure: skipped") for line in report["skipped"])


def test_warns_then_deallocates_then_restores(
    seeded: AzureDevServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(policy(tmp_path, [SUBSCRIPTION]))
    with time_machine.travel(NOW, tick=True):
        code, day0 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day0)
    assert rows["idle-v100"]["action"] == "warn"  # 80 days idle: warned first, never stopped
    assert all(f["outcome"] is None for f in day0["findings"])
    assert seeded.calls["VirtualMachines_Deallocate"] == 0

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    rows = by_name(day7)
    assert rows["idle-v100"]["outcome"] == "stopped"
    assert rows["unmapped-idle"]["outcome"] == "stopped"
    assert rows["busy-v100"]["outcome"] is None
    assert seeded.compute.power_state(SUBSCRIPTION, RG, "idle-v100") == "deallocated"
    assert seeded.compute.power_state(SUBSCRIPTION, RG, "busy-v100") == "running"
    assert seeded.calls["VirtualMachines_PowerOff"] == 0  # deallocate, never power off

    assert cli.main(["restore", "idle-v100", "--policy", path]) == 0
    assert "idle-v100" in capsys.readouterr().out
    assert seeded.compute.power_state(SUBSCRIPTION, RG, "idle-v100") == "running"
    # No side mutations: reads, the deallocate and the restore's start, nothing else.
    assert set(seeded.calls) <= {
        "ManagedIdentity_GetToken",
        "VirtualMachines_ListAll",
        "VirtualMachines_Get",
        "Metrics_ListAtSubscriptionScope",
        "VirtualMachines_Deallocate",
        "VirtualMachines_Start",
        "AsyncOperation_Get",
        "AsyncOperation_Location",
    }
    assert seeded.calls["VirtualMachines_Deallocate"] == 2  # idle-v100 and unmapped-idle
    assert seeded.calls["VirtualMachines_Start"] == 1


def test_no_datapoints_is_unknown_and_never_deallocated(
    azure_env: AzureDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    azure_env.compute.add_vm(SUBSCRIPTION, "dark", time_created=NOW - timedelta(days=120))
    path = str(policy(tmp_path, [SUBSCRIPTION]))
    code, report = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert by_name(report)["dark"]["status"] == "unknown"
    assert azure_env.calls["VirtualMachines_Deallocate"] == 0


def test_owner_tags_reach_slack_and_unmapped_ones_the_fallback_channel(
    seeded: AzureDevServer,
    slack_server: SlackDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("JANITOR_SLACK_API_URL", slack_server.url)
    monkeypatch.setenv("JANITOR_SLACK_FALLBACK_CHANNEL", "#ml-spend")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "1")
    path = policy(tmp_path, [SUBSCRIPTION], notifier="notifier:\n  type: slack\n")
    code, report = run_json(capsys, "run", "--apply", "--policy", str(path))
    assert code == 0, report["delivery_failures"]
    sent = {
        str(m.params["channel"]): json.dumps(m.params.get("blocks")) + str(m.params["text"])
        for m in slack_server.messages()
        if "idle" in str(m.params["text"]) + json.dumps(m.params.get("blocks"))
    }
    assert "idle-v100" in sent[ALICE.id]  # tag "alice" -> owners.map -> alice@example.com
    assert "unmapped-idle" in sent["#ml-spend"]  # tag "bob": no mapping, not an address
    assert "unmapped-idle" not in sent[ALICE.id]


def test_the_exempt_tag_is_reported_and_never_deallocated(
    azure_env: AzureDevServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    body = azure_env.compute.add_vm(
        SUBSCRIPTION, "keep-me", tags={"janitor-exempt": "true"},
        time_created=NOW - timedelta(days=120),
    )  # fmt: skip
    azure_env.monitor.add_daily(
        body["id"], "Percentage CPU", {(NOW - timedelta(days=k)).date(): 0.0 for k in range(80)}
    )
    path = str(policy(tmp_path, [SUBSCRIPTION]))
    code, report = run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert by_name(report)["keep-me"]["status"] == "exempt"
    assert azure_env.calls["VirtualMachines_Deallocate"] == 0
