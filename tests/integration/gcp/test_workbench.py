"""`gcp.workbench` through google-auth's authorized session (REST) against the local GCP server,
credentials through the real ADC path (`gcp_env`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as core_exceptions
from tests.integration.gcp.conftest import list_price

from janitor.clouds.base import RestoreFailed, stop_now
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import load_credentials
from janitor.clouds.gcp.workbench import (
    CPU_METRIC,
    WorkbenchProbe,
    WorkbenchScanner,
    WorkbenchStopper,
    idle_shutdown_advice,
)
from janitor.devserver.gcp import GcpDevServer
from janitor.model import Confidence, Resource, Status, StopOutcome, Window
from janitor.pricing import monthly_cost_usd

PROJECT = "example-project"
ZONE = "us-central1-a"
THRESHOLDS = {"cpu_utilization_percent": 10.0}
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
IDLE_OFF = {"idle-timeout-seconds": "0"}
IDLE_ON = {"idle-timeout-seconds": "10800"}


def scope(regions: tuple[str, ...] = ()) -> GcpScope:
    return GcpScope(PROJECT, GLOBAL, load_credentials(), regions)


def days(n: int, value: float, *, until: date = TODAY) -> dict[date, float]:
    return {until - timedelta(days=k): value for k in range(n)}


def notebook(server: GcpDevServer, name: str, *, zone: str = ZONE, **kwargs: Any) -> str:
    """Add an instance; its VM's numeric id (what Monitoring knows it by)."""
    kwargs.setdefault("created_at", NOW - timedelta(days=120))
    kwargs.setdefault("metadata", IDLE_ON)
    body = server.add_workbench(PROJECT, zone, name, **kwargs)
    return str(body["gceSetup"]["instanceId"])


def cpu(server: GcpDevServer, instance_id: str, values: dict[date, float]) -> None:
    server.add_daily(
        PROJECT, CPU_METRIC, resource_type="gce_instance",
        resource_labels={"instance_id": instance_id, "zone": ZONE}, days=values,
    )  # fmt: skip


def scan(regions: tuple[str, ...] = ()) -> dict[str, Resource]:
    return {r.name: r for r in WorkbenchScanner(scope(regions)).scan()}


def judge(resources: dict[str, Resource]) -> dict[str, Any]:
    probe = WorkbenchProbe(scope(), thresholds=THRESHOLDS)
    window = Window.ending(NOW, timedelta(days=74))
    verdicts = probe.usage(list(resources.values()), window, NOW)
    return {name: verdicts[r.ref.key] for name, r in resources.items()}


def stopper() -> WorkbenchStopper:
    return WorkbenchStopper(scope())


# --- scan ------------------------------------------------------------------------------------


def test_scan_lists_active_instances_of_every_location_with_labels_units_and_region(
    gcp_env: GcpDevServer,
) -> None:
    notebook(
        gcp_env, "gpu-nb", machine_type="n1-standard-8",
        accelerators=[("NVIDIA_TESLA_T4", 1)], labels={"owner": "alice"},
    )  # fmt: skip
    notebook(gcp_env, "eu-nb", zone="europe-west4-a")
    notebook(gcp_env, "stopped-nb", state="STOPPED")
    notebook(gcp_env, "other-project-nb")
    gcp_env.add_workbench("someone-else", ZONE, "not-ours")

    found = scan()
    assert set(found) == {"gpu-nb", "eu-nb", "other-project-nb"}
    nb = found["gpu-nb"]
    assert nb.ref.region == "us-central1"
    assert nb.ref.id == f"{ZONE}/gpu-nb"
    assert nb.ref.scope == PROJECT
    assert nb.tags["owner"] == "alice"
    assert nb.instance_type == "n1-standard-8"
    assert nb.details["units"] == [
        {"service": "gce", "sku": "n1-standard-8", "count": 1},
        {"service": "gce-gpu", "sku": "nvidia-tesla-t4", "count": 1},
    ]
    assert nb.details["creator"] == "owner@example.com"
    assert monthly_cost_usd(nb) == round(
        (list_price("gce", "n1-standard-8") + list_price("gce-gpu", "nvidia-tesla-t4")) * 730, 2
    )
    # One list for every location: the regions filter is applied client-side.
    assert set(scan(("europe-west4",))) == {"eu-nb"}
    assert gcp_env.calls["notebooks.instances.list"] == 2


def test_the_recorded_fixture_maps_each_instance_to_its_vm(gcp_env: GcpDevServer) -> None:
    import json
    from pathlib import Path

    fixture = Path(__file__).parents[2] / "fixtures/gcp/vertex/workbench.instances.list.json"
    body = json.loads(fixture.read_text())["response"]["body"]["instances"][0]
    resource = WorkbenchScanner(scope())._resource(body)
    assert resource.details["instance_id"] == "4532768441233380276"
    assert resource.ref.id == "us-east1-b/c7n-notebook-public-default-e84a"
    assert resource.ref.region == "us-east1"
    assert resource.advice is not None
    assert "absent" in resource.advice


def test_advice_when_idle_shutdown_is_off(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "zero", metadata=IDLE_OFF)
    notebook(gcp_env, "absent", metadata={})
    notebook(gcp_env, "on", metadata=IDLE_ON)
    found = scan()
    assert found["zero"].advice is not None
    assert "idle-timeout-seconds 0" in found["zero"].advice
    assert found["absent"].advice is not None
    assert "absent" in found["absent"].advice
    assert found["on"].advice is None
    assert idle_shutdown_advice({"idle-timeout-seconds": 0}) is not None


def test_429_and_503_are_retried(gcp_env: GcpDevServer) -> None:
    instance_id = notebook(gcp_env, "nb")
    cpu(gcp_env, instance_id, days(40, 0.01))
    gcp_env.rate_limit("notebooks.instances.list", retry_after=1)
    gcp_env.outage("monitoring.timeSeries.list", status=503)
    verdicts = judge(scan())
    assert verdicts["nb"].status is Status.IDLE
    assert gcp_env.calls["notebooks.instances.list"] == 2
    assert gcp_env.calls["monitoring.timeSeries.list"] == 2


def test_a_denied_project_fails_the_scan(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    gcp_env.deny(PROJECT, "notebooks.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden):
        scan()


# --- usage -----------------------------------------------------------------------------------


def test_verdicts_busy_idle_and_no_data(gcp_env: GcpDevServer) -> None:
    busy = notebook(gcp_env, "busy")
    idle = notebook(gcp_env, "idle")
    recent = notebook(gcp_env, "recent")
    notebook(gcp_env, "silent")
    cpu(gcp_env, busy, days(40, 0.60))
    cpu(gcp_env, idle, days(40, 0.02))
    cpu(gcp_env, recent, days(40, 0.02) | {TODAY - timedelta(days=1): 0.5})

    verdicts = judge(scan())
    assert verdicts["busy"].status is Status.ACTIVE
    assert verdicts["recent"].status is Status.ACTIVE  # used within the last day
    assert verdicts["silent"].status is Status.UNKNOWN
    assert verdicts["idle"].status is Status.IDLE
    assert verdicts["idle"].confidence is Confidence.LOW
    assert "low confidence" in verdicts["idle"].evidence
    assert f"gceSetup.instanceId = gce_instance instance_id {idle}" in verdicts["idle"].evidence
    assert "2.0%" in verdicts["idle"].evidence


def test_one_monitoring_query_whatever_the_number_of_instances(gcp_env: GcpDevServer) -> None:
    for n in range(12):
        cpu(gcp_env, notebook(gcp_env, f"nb-{n}"), days(40, 0.01))
    found = scan()
    gcp_env.reset_calls()
    verdicts = judge(found)
    assert {v.status for v in verdicts.values()} == {Status.IDLE}
    assert gcp_env.calls["monitoring.timeSeries.list"] == 1


# --- stop / restore --------------------------------------------------------------------------


def test_stop_waits_on_the_operation_and_restore_starts(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    resource = scan()["nb"]
    result = stop_now(stopper(), resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert gcp_env.workbench(PROJECT, ZONE, "nb")["state"] == "STOPPED"  # type: ignore[index]
    assert gcp_env.calls["notebooks.operations.get"] >= 1
    assert result.restore is not None
    assert result.restore["location"] == ZONE
    assert result.restore["name"] == "nb"

    message = stopper().restore(result.restore)
    assert message.startswith("started")
    assert gcp_env.workbench(PROJECT, ZONE, "nb")["state"] == "ACTIVE"  # type: ignore[index]
    assert "already ACTIVE" in stopper().restore(result.restore)
    assert gcp_env.calls["notebooks.instances.start"] == 1


def test_an_instance_already_stopped_is_already_stopped(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    resource = scan()["nb"]
    assert stop_now(stopper(), resource).outcome is StopOutcome.STOPPED
    again = stop_now(stopper(), resource)
    assert again.outcome is StopOutcome.ALREADY_STOPPED
    assert gcp_env.calls["notebooks.instances.stop"] == 1


def test_an_instance_deleted_between_scan_and_stop_is_not_found(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    resource = scan()["nb"]
    gcp_env.delete_workbench(PROJECT, ZONE, "nb")
    assert stop_now(stopper(), resource).outcome is StopOutcome.NOT_FOUND
    with pytest.raises(RestoreFailed):
        stopper().restore({"project": PROJECT, "location": ZONE, "name": "nb"})


def test_an_operation_ending_in_error_is_failed_with_its_recipe(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    resource = scan()["nb"]
    gcp_env.fail_next_operation(f"projects/{PROJECT}/locations/{ZONE}/instances/nb")
    result = stop_now(stopper(), resource)
    assert result.outcome is StopOutcome.FAILED
    assert "enough resources" in result.message
    assert result.restore is not None
    assert result.restore["name"] == "nb"
    assert gcp_env.workbench(PROJECT, ZONE, "nb")["state"] == "ACTIVE"  # type: ignore[index]


def test_stop_retries_a_503(gcp_env: GcpDevServer) -> None:
    notebook(gcp_env, "nb")
    resource = scan()["nb"]
    gcp_env.outage("notebooks.instances.stop", status=503)
    assert stop_now(stopper(), resource).outcome is StopOutcome.STOPPED
    assert gcp_env.calls["notebooks.instances.stop"] == 2
