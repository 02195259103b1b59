"""`gcp.gce-gpu` through the real google-cloud-compute and google-auth clients against the
local GCP server, credentials through the real ADC path (`gcp_env`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as core_exceptions
from tests.integration.gcp.conftest import list_price

from janitor.clouds.base import RestoreFailed, stop_now
from janitor.clouds.gcp import gce_gpu
from janitor.clouds.gcp.gce_gpu import (
    CPU_METRIC,
    GPU_METRIC,
    RX_METRIC,
    TX_METRIC,
    GceGpuProbe,
    GceGpuScanner,
    GceGpuStopper,
)
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import load_credentials
from janitor.devserver.gcp import GcpDevServer
from janitor.model import Confidence, Resource, Status, StopOutcome, Window
from janitor.pricing import monthly_cost_usd

PROJECT = "example-project"
ZONE = "us-central1-a"
THRESHOLDS = {
    "gpu_utilization_percent": 5.0,
    "cpu_utilization_percent": 10.0,
    "network_mb_per_day": 100.0,
}
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def scope(regions: tuple[str, ...] = ()) -> GcpScope:
    return GcpScope(PROJECT, GLOBAL, load_credentials(), regions)


def days(n: int, value: float, *, until: date = TODAY) -> dict[date, float]:
    """`n` days up to and including `until`, each with `value`."""
    return {until - timedelta(days=k): value for k in range(n)}


def vm(server: GcpDevServer, name: str, *, zone: str = ZONE, **kwargs: Any) -> str:
    kwargs.setdefault("accelerators", [("nvidia-tesla-t4", 1)])
    kwargs.setdefault("created_at", NOW - timedelta(days=120))
    return str(server.add_instance(PROJECT, zone, name, **kwargs)["id"])


def gpu(server: GcpDevServer, instance_id: str, values: dict[date, float], n: str = "0") -> None:
    server.add_daily(
        PROJECT,
        GPU_METRIC,
        resource_type="gce_instance",
        resource_labels={"instance_id": instance_id, "zone": ZONE},
        metric_labels={"gpu_number": n},
        days=values,
    )


def cpu_net(server: GcpDevServer, instance_id: str, cpu: float, net_bytes: float) -> None:
    labels = {"instance_id": instance_id, "zone": ZONE}
    server.add_daily(
        PROJECT, CPU_METRIC, resource_type="gce_instance", resource_labels=labels,
        days=days(60, cpu),
    )  # fmt: skip
    for metric in (RX_METRIC, TX_METRIC):
        server.add_daily(
            PROJECT, metric, resource_type="gce_instance", resource_labels=labels,
            days=days(60, net_bytes / 2), metric_kind="DELTA", value_type="INT64",
        )  # fmt: skip


def scan(regions: tuple[str, ...] = ()) -> dict[str, Resource]:
    return {r.name: r for r in GceGpuScanner(scope(regions)).scan()}


def judge(resources: dict[str, Resource]) -> dict[str, Any]:
    probe = GceGpuProbe(scope(), thresholds=THRESHOLDS)
    window = Window.ending(NOW, timedelta(days=74))
    verdicts = probe.usage(list(resources.values()), window, NOW)
    return {name: verdicts[r.ref.key] for name, r in resources.items()}


# --- scan ------------------------------------------------------------------------------------


def test_scan_lists_running_gpu_vms_with_region_zone_units_and_labels(
    gcp_env: GcpDevServer,
) -> None:
    vm(gcp_env, "t4-box", labels={"owner": "alice", "team": "ml"})
    vm(gcp_env, "a100", machine_type="a2-highgpu-1g", accelerators=[])
    vm(gcp_env, "l4", machine_type="g2-standard-8", accelerators=[])
    vm(gcp_env, "cpu-only", accelerators=[])
    vm(gcp_env, "stopped-t4", status="TERMINATED")
    vm(gcp_env, "ssd-box", local_ssds=1)
    vm(gcp_env, "eu-t4", zone="europe-west4-a")
    vm(gcp_env, "spot-t4", spot=True)

    found = scan()
    assert set(found) == {"t4-box", "a100", "l4", "ssd-box", "eu-t4", "spot-t4"}
    assert found["spot-t4"].details["lifecycle"] == "spot"
    box = found["t4-box"]
    assert box.ref.region == "us-central1"
    assert box.ref.id == f"{ZONE}/t4-box"
    assert box.ref.scope == PROJECT
    assert box.tags == {"owner": "alice", "team": "ml"}  # raw labels; owners map them
    assert box.instance_type == "n1-standard-8"
    assert box.details["lifecycle"] == "on-demand"
    assert box.details["units"] == [
        {"service": "gce", "sku": "n1-standard-8", "count": 1},
        {"service": "gce-gpu", "sku": "nvidia-tesla-t4", "count": 1},
    ]
    assert monthly_cost_usd(box) == round(
        (list_price("gce", "n1-standard-8") + list_price("gce-gpu", "nvidia-tesla-t4")) * 730, 2
    )
    # Built-in GPUs are priced within the machine type, never twice.
    assert found["a100"].details["units"] == [
        {"service": "gce", "sku": "a2-highgpu-1g", "count": 1}
    ]
    assert found["a100"].details["gpus"] == [{"type": "nvidia-tesla-a100", "count": 1}]
    assert found["l4"].details["gpus"] == [{"type": "nvidia-l4", "count": 1}]
    assert found["ssd-box"].stop_refusal is not None
    assert "local SSD" in found["ssd-box"].stop_refusal
    assert box.stop_refusal is None
    assert found["eu-t4"].ref.region == "europe-west4"

    # The policy's regions filter the zones.
    assert set(scan(("europe-west4",))) == {"eu-t4"}
    assert gcp_env.calls["compute.instances.aggregatedList"] == 2  # one per scan


def test_an_unreachable_zone_is_reported_and_the_rest_used(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    gcp_env.unreachable_zone(PROJECT, "asia-east1-a")
    scanner = GceGpuScanner(scope())
    assert [r.name for r in scanner.scan()] == ["t4-box"]
    assert len(scanner.scan_warnings) == 1
    assert "asia-east1-a" in scanner.scan_warnings[0]


def test_compute_disabled_or_denied_fails_the_scope(gcp_env: GcpDevServer) -> None:
    gcp_env.disable_service(PROJECT, "compute.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden) as disabled:
        scan()
    assert disabled.value.reason == "SERVICE_DISABLED"


def test_no_permission_fails_the_scope(gcp_env: GcpDevServer) -> None:
    gcp_env.deny(PROJECT, "compute.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden):
        scan()


def test_429_with_retry_after_and_503_are_retried(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    gpu(gcp_env, vm(gcp_env, "busy"), days(30, 80.0))
    gcp_env.rate_limit("compute.instances.aggregatedList", retry_after=1)
    gcp_env.outage("monitoring.timeSeries.list", status=503)
    found = scan()
    assert set(found) == {"t4-box", "busy"}
    assert judge({"busy": found["busy"]})["busy"].status is Status.ACTIVE
    assert gcp_env.calls["compute.instances.aggregatedList"] == 2
    assert gcp_env.calls["monitoring.timeSeries.list"] == 2


# --- usage -----------------------------------------------------------------------------------


def test_verdicts_strongest_evidence_first(gcp_env: GcpDevServer) -> None:
    idle = vm(gcp_env, "idle-gpu")
    gpu(gcp_env, idle, days(60, 1.0))
    gpu(gcp_env, idle, days(60, 2.0), n="1")
    busy = vm(gcp_env, "busy-gpu")
    gpu(gcp_env, busy, days(60, 1.0))
    gpu(gcp_env, busy, days(2, 90.0), n="1")  # one busy GPU of two keeps it active
    cpu_idle = vm(gcp_env, "no-agent-idle")
    cpu_net(gcp_env, cpu_idle, cpu=0.03, net_bytes=1e6)
    cpu_busy = vm(gcp_env, "no-agent-busy")
    cpu_net(gcp_env, cpu_busy, cpu=0.5, net_bytes=1e6)
    vm(gcp_env, "no-data")
    silent = vm(gcp_env, "silent-agent")
    gpu(gcp_env, silent, days(20, 1.0, until=TODAY - timedelta(days=10)))
    cpu_net(gcp_env, silent, cpu=0.01, net_bytes=0)  # never judged by its CPU instead

    v = judge(scan())
    assert v["idle-gpu"].status is Status.IDLE
    assert v["idle-gpu"].confidence is Confidence.HIGH
    assert "2.0%" in v["idle-gpu"].evidence  # max across GPUs
    assert v["busy-gpu"].status is Status.ACTIVE
    assert v["no-agent-idle"].status is Status.IDLE
    assert v["no-agent-idle"].confidence is Confidence.LOW
    assert "3.0%" in v["no-agent-idle"].evidence  # the 0-1 fraction read as a percentage
    assert v["no-agent-busy"].status is Status.ACTIVE
    assert v["no-agent-busy"].confidence is Confidence.LOW
    assert v["no-data"].status is Status.UNKNOWN
    assert v["silent-agent"].status is Status.UNKNOWN
    assert "stopped reporting" in v["silent-agent"].evidence


def test_network_alone_keeps_a_vm_without_the_agent_active(gcp_env: GcpDevServer) -> None:
    loader = vm(gcp_env, "data-loader")
    cpu_net(gcp_env, loader, cpu=0.02, net_bytes=5e9)
    assert judge(scan())["data-loader"].status is Status.ACTIVE


@pytest.mark.parametrize("count", [3, 40])
def test_metrics_cost_one_query_per_metric_type_whatever_the_number_of_vms(
    gcp_env: GcpDevServer, count: int
) -> None:
    for n in range(count):
        instance_id = vm(gcp_env, f"vm-{n}")
        if n % 2:
            gpu(gcp_env, instance_id, days(30, 1.0))
        else:
            cpu_net(gcp_env, instance_id, cpu=0.01, net_bytes=0)
    found = scan()
    gcp_env.reset_calls()
    verdicts = judge(found)
    assert all(v.status is Status.IDLE for v in verdicts.values())
    # GPU, then CPU, received and sent bytes for the VMs without the agent: 4 queries.
    assert gcp_env.calls["monitoring.timeSeries.list"] == 4


def test_only_the_gpu_query_when_every_vm_has_the_agent(gcp_env: GcpDevServer) -> None:
    for n in range(5):
        gpu(gcp_env, vm(gcp_env, f"vm-{n}"), days(30, 1.0))
    found = scan()
    gcp_env.reset_calls()
    judge(found)
    assert gcp_env.calls["monitoring.timeSeries.list"] == 1


def test_a_monitoring_failure_fails_the_scope(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    found = scan()
    gcp_env.deny(PROJECT, "monitoring.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden):
        judge(found)


# --- stop / restore --------------------------------------------------------------------------


def stopper() -> GceGpuStopper:
    return GceGpuStopper(scope())


def test_stop_waits_on_the_zone_operation_and_restore_starts(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    resource = scan()["t4-box"]
    result = stop_now(stopper(), resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert gcp_env.instance(PROJECT, ZONE, "t4-box")["status"] == "TERMINATED"  # type: ignore[index]
    assert gcp_env.calls["compute.zoneOperations.wait"] >= 1
    assert result.restore is not None
    assert result.restore["zone"] == ZONE

    message = stopper().restore(result.restore)
    assert "started" in message
    assert gcp_env.instance(PROJECT, ZONE, "t4-box")["status"] == "RUNNING"  # type: ignore[index]
    assert "already RUNNING" in stopper().restore(result.restore)


def test_a_vm_already_terminated_is_already_stopped(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    resource = scan()["t4-box"]
    gcp_env.set_instance_status(PROJECT, ZONE, "t4-box", "TERMINATED")
    result = stop_now(stopper(), resource)
    assert result.outcome is StopOutcome.ALREADY_STOPPED
    assert gcp_env.calls["compute.instances.stop"] == 0


def test_a_vm_deleted_between_scan_and_stop_is_not_found(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    resource = scan()["t4-box"]
    gcp_env.delete_instance(PROJECT, ZONE, "t4-box")
    assert stop_now(stopper(), resource).outcome is StopOutcome.NOT_FOUND
    # ... and deleted after the plan, before the stop call.
    vm(gcp_env, "t4-box")
    plan = stopper().plan(scan()["t4-box"])
    gcp_env.delete_instance(PROJECT, ZONE, "t4-box")
    assert stopper().act(plan).outcome is StopOutcome.NOT_FOUND
    assert plan.recipe is not None
    with pytest.raises(RestoreFailed):
        stopper().restore(plan.recipe)


def test_an_operation_ending_in_error_is_failed_with_its_recipe(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    resource = scan()["t4-box"]
    gcp_env.fail_next_operation(f"projects/{PROJECT}/zones/{ZONE}/instances/t4-box")
    result = stop_now(stopper(), resource)
    assert result.outcome is StopOutcome.FAILED
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in result.message
    assert result.restore is not None


def test_a_local_ssd_vm_is_refused(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "ssd-box", local_ssds=2)
    result = stop_now(stopper(), scan()["ssd-box"])
    assert result.outcome is StopOutcome.REFUSED_STATE
    assert gcp_env.calls["compute.instances.stop"] == 0


def test_stop_retries_a_503(gcp_env: GcpDevServer) -> None:
    vm(gcp_env, "t4-box")
    resource = scan()["t4-box"]
    gcp_env.outage("compute.instances.stop", status=503)
    assert stop_now(stopper(), resource).outcome is StopOutcome.STOPPED
    assert gcp_env.calls["compute.instances.stop"] == 2


def test_the_factory_builds_the_handlers(gcp_env: GcpDevServer) -> None:
    from janitor.policy import load_policy

    rule = next(r for r in load_policy(None, env={}).rules if r.kind == gce_gpu.KIND)
    handlers = gce_gpu.build(scope(), rule)
    assert isinstance(handlers.probe, GceGpuProbe)
