"""The demo's Azure subscription (`janitor.devserver.azure_fleet`) tells the story it promises,
through `janitor scan` against the local ARM with the default policy's Azure rule; and
`advance_azure_fleet` keeps it going as the (faked) days pass, for what still runs only. Also
the demo's Azure environment: the local server only, never the machine's Azure login."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from janitor import cli
from janitor.demo import _azure_mutating, _environment, azure_environment
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService
from janitor.devserver.azure_fleet import (
    DEMO_SUBSCRIPTION,
    AzureFleet,
    MlDeployment,
    MlEndpoint,
    MlWorkspace,
    advance_azure_fleet,
    demo_azure_fleet,
    seed_azure_fleet,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fleet(azure_env: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AzureFleet:
    """The demo's Azure fleet seeded as of NOW, and a policy of the default policy's Azure rules
    and lifecycle, over every subscription the credential lists."""
    spec = demo_azure_fleet()
    assert seed_azure_fleet(azure_env, spec, NOW) > 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "defaults:\n  owner_tags: [owner]\n"
        "azure:\n  subscriptions: []\n"
        "notifier:\n  type: console\n  counts_as_delivery: true\n"
        "rules:\n"
        "  - name: gpu\n    kind: azure.vm-gpu\n"
        "  - name: endpoints\n    kind: azure.ml-endpoint\n"
        "  - name: instances\n    kind: azure.ml-compute\n",
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


def test_the_demo_subscription_scans_as_its_story_says(
    fleet: AzureFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    with time_machine.travel(NOW + timedelta(hours=1), tick=True):
        rows = scan(capsys)
    assert {name: row["status"] for name, row in rows.items()} == {
        "llm-finetune-nd96": "active",
        "cv-train-nc24s": "idle",
        "bert-nc6s-stopped": "idle",
        "viz-nv12s": "idle",
        "spot-a100-sweep": "idle",
        "nd-h100-benchmark": "exempt",
        "sentiment-online": "idle",
        "fraud-score-online": "active",
        "carol-gpu-ci": "idle",
        "alice-ci": "active",
    }
    assert len(rows) == len(fleet.vms) + sum(
        len(ws.endpoints) + len(ws.compute_instances) for ws in fleet.workspaces
    )
    # Warned on day 0 (53 idle days or more) and deallocated on day 7; the others noticed.
    assert rows["cv-train-nc24s"]["action"] == "warn"
    assert rows["bert-nc6s-stopped"]["action"] == "warn"
    assert rows["viz-nv12s"]["action"] == "notify"
    assert 51 <= rows["viz-nv12s"]["idle_days"] < 52.1  # warned on day 2 or 3
    assert rows["spot-a100-sweep"]["action"] == "notify"  # Spot: a notice at most
    # Stopped but allocated: a finding of its own, idle since the stop (ProvisioningState).
    stopped = rows["bert-nc6s-stopped"]
    assert "stopped but not deallocated" in stopped["evidence"]
    assert "ProvisioningState status time" in stopped["evidence"]
    assert stopped["idle_days"] == pytest.approx(55, abs=0.1)
    assert stopped["monthly_cost_usd"] == pytest.approx(3.06 * 730)  # Standard_NC6s_v3, eastus
    # The running ones: the CPU and network fallback, low confidence, from the last busy day.
    assert rows["cv-train-nc24s"]["confidence"] == "low"
    assert "the end of the last day CPU crossed the threshold" in rows["cv-train-nc24s"]["evidence"]
    assert rows["viz-nv12s"]["region"] == "westeurope"
    # Owner tags are addresses, as Azure tag values allow.
    assert rows["cv-train-nc24s"]["owner"] == "bob@example.com"
    assert rows["bert-nc6s-stopped"]["owner"] == "dave@example.com"

    # Azure ML: the endpoint served requests until 56 days ago (its two deployments' heartbeat
    # goes on): idle since its last busy day, warned on day 0, priced by its instances.
    endpoint = rows["sentiment-online"]
    assert endpoint["action"] == "warn"
    assert 56 <= endpoint["idle_days"] < 57.1
    assert "last busy day" in endpoint["evidence"]
    assert endpoint["monthly_cost_usd"] == pytest.approx((2 * 0.526 + 0.293) * 730)
    assert endpoint["owner"] == "carol@example.com"
    # The compute instance without idle shutdown: a notice, and the advice that would have
    # prevented it; the one with idle shutdown gets none.
    instance = rows["carol-gpu-ci"]
    assert instance["action"] == "notify"
    assert "idleTimeBeforeShutdown" in instance["advice"]
    assert rows["alice-ci"]["advice"] is None


def test_the_story_goes_on_for_what_still_runs(
    fleet: AzureFleet, azure_env: AzureDevServer, capsys: pytest.CaptureFixture[str]
) -> None:
    subscription, group = fleet.subscription, "ml-research-rg"
    later = NOW + timedelta(days=5, hours=1)
    azure_env.compute.set_power_state(subscription, group, "viz-nv12s", "deallocated")
    with time_machine.travel(later, tick=True):
        published = advance_azure_fleet(azure_env, fleet, NOW, NOW, later)
        rows = scan(capsys)
    # The busy stay busy (without new values their newest day would be five days old) ...
    assert rows["llm-finetune-nd96"]["status"] == "active"
    assert rows["fraud-score-online"]["status"] == "active"
    # ... and the idle stay idle, five days longer.
    assert rows["cv-train-nc24s"]["idle_days"] == pytest.approx(62.5, abs=0.6)
    assert rows["sentiment-online"]["idle_days"] == pytest.approx(61.5, abs=0.6)
    # A deallocated VM is no finding and publishes nothing; a stopped one publishes nothing
    # either: it stays idle since its stop.
    assert "viz-nv12s" not in rows
    assert rows["bert-nc6s-stopped"]["idle_days"] == pytest.approx(60, abs=0.1)
    azure_env.compute.set_power_state(subscription, group, "viz-nv12s", "running")
    with time_machine.travel(later, tick=True):
        again = advance_azure_fleet(azure_env, fleet, NOW, NOW, later)
    # NOW's day to today's, CPU and two network metrics: viz-nv12s's, now that it runs.
    days = (later.date() - NOW.date()).days + 1
    assert again - published == days * 3


def test_an_endpoint_publishes_for_the_deployments_it_has(azure_env: AzureDevServer) -> None:
    """What janitor's stop leaves (the endpoint, no deployment) publishes nothing."""
    quiet = MlEndpoint("quiet", None, 90, 60, deployments=())
    busy = MlEndpoint("busy", None, 90, None, (MlDeployment("blue", "Standard_DS3_v2", 1, 100),))
    ws = MlWorkspace("ws", "eastus", 100, endpoints=(quiet, busy), compute_instances=())
    fleet = AzureFleet(DEMO_SUBSCRIPTION, "demo", vms=(), workspaces=(ws,))
    seed_azure_fleet(azure_env, fleet, NOW)
    later = NOW + timedelta(days=3, hours=1)
    days = (later.date() - NOW.date()).days + 1
    with time_machine.travel(later, tick=True):
        published = advance_azure_fleet(azure_env, fleet, NOW, NOW, later)
    assert published == days * 2  # busy's blue: its heartbeat and its requests; quiet: none


def test_the_demo_environment_reaches_the_local_server_only(
    azure_server: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's own Azure login, as a service principal and as a managed identity.
    machine = {
        "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
        "AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222",
        "AZURE_CLIENT_SECRET": "not-a-secret",
        "MSI_ENDPOINT": "http://127.0.0.1:9/msi",
        "IDENTITY_SERVER_THUMBPRINT": "abc",
        "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/machine.pem",
    }
    for name, value in machine.items():
        monkeypatch.setenv(name, value)
    env = azure_environment(azure_server, str(tmp_path))
    with _environment(env):
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
            assert name not in os.environ
        assert "MSI_ENDPOINT" not in os.environ
        assert "IDENTITY_SERVER_THUMBPRINT" not in os.environ
        assert os.environ["IDENTITY_ENDPOINT"] == azure_server.identity_endpoint
        assert os.environ["REQUESTS_CA_BUNDLE"] == str(azure_server.ca_file)
        assert os.environ["SSL_CERT_FILE"] == str(azure_server.ca_file)
        assert os.environ["AZURE_CONFIG_DIR"].startswith(str(tmp_path))
        assert os.environ["JANITOR_AZURE_ARM_ENDPOINT"] == azure_server.url
    # Afterwards the process's environment is as it was.
    for name, value in machine.items():
        assert os.environ[name] == value
    assert "IDENTITY_ENDPOINT" not in os.environ
    assert "SSL_CERT_FILE" not in os.environ or os.environ["SSL_CERT_FILE"] != str(
        azure_server.ca_file
    )


def test_the_dry_run_line_counts_every_writing_route_as_mutating(
    azure_server: AzureDevServer,
) -> None:
    """The demo tells mutating calls from reads by their REST operation id: every route of the
    local ARM that is not a GET (POST deallocate/start/powerOff/stop, PUT, PATCH, DELETE) is
    mutating, and no GET is."""
    azure_server.mount(MachineLearningService)
    routes = azure_server._routes
    assert {r.method for r in routes} >= {"GET", "POST", "PUT", "PATCH", "DELETE"}
    for route in routes:
        assert _azure_mutating(route.operation) is (route.method != "GET"), route.operation
