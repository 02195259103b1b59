"""`azure.vm-gpu` against the local ARM through the real SDK clients: scan (list_all with
statusOnly, power state retried), usage (one subscription-scope metrics call per region and
namespace, `top` covering every VM), deallocate and restore, and the faults of issue 8."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.azure.conftest import SUBSCRIPTION

from janitor.clouds.azure import vm_gpu
from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.clouds.azure.session import load_credentials
from janitor.clouds.base import KindHandlers, stop_now
from janitor.devserver.azure import AzureDevServer
from janitor.model import Confidence, Resource, Status, StopOutcome, Window
from janitor.policy import load_policy

pytestmark = pytest.mark.integration

RG = "ml-rg"
NOW = datetime.now(UTC).replace(microsecond=0)
CREATED = NOW - timedelta(days=100)
WINDOW = Window.ending(NOW, timedelta(days=74))


def handlers(tmp_path: Path, rule_extra: str = "", regions: tuple[str, ...] = ()) -> KindHandlers:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\nrules:\n  - name: gpu\n    kind: azure.vm-gpu\n{rule_extra}", encoding="utf-8"
    )
    (rule,) = load_policy(path, env={}).rules
    scope = AzureScope(SUBSCRIPTION, ALL_REGIONS, load_credentials(), regions)
    return vm_gpu.build(scope, rule)


def daily(value: float, days: int = 80, skip: int = 0) -> dict[date, float]:
    return {(NOW - timedelta(days=k)).date(): value for k in range(skip, days)}


def add(server: AzureDevServer, name: str, cpu: float | None = 1.0, **kwargs: object) -> str:
    kwargs.setdefault("time_created", CREATED)
    body = server.compute.add_vm(SUBSCRIPTION, name, **kwargs)  # type: ignore[arg-type]
    if cpu is not None:
        region = str(kwargs.get("location", "eastus"))
        server.monitor.add_daily(body["id"], "Percentage CPU", daily(cpu), region=region)
        server.monitor.add_daily(body["id"], "Network In Total", daily(1e6), region=region)
        server.monitor.add_daily(body["id"], "Network Out Total", daily(1e6), region=region)
    return str(body["id"])


def scan(h: KindHandlers) -> dict[str, Resource]:
    return {r.name: r for r in h.scanner.scan()}


def test_gpu_sizes_are_one_rule() -> None:
    gpu = (
        "Standard_NC6s_v3",
        "Standard_ND96asr_v4",
        "Standard_NV36ads_A10_v5",
        "standard_nc24ads_a100_v4",
        "Standard_NG32ads_V620_v1",
        "Standard_NCC40ads_H100_v5",
    )
    for size in gpu:
        assert vm_gpu.is_gpu_size(size), size
    for size in ("Standard_D4s_v5", "Standard_NP10s", "Standard_E8s_v5", "Basic_A1"):
        assert not vm_gpu.is_gpu_size(size), size


def test_scan_keeps_running_and_stopped_gpu_vms_in_the_regions(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    add(azure_env, "busy")
    add(azure_env, "stopped-allocated", power_state="stopped")
    add(azure_env, "deallocated", power_state="deallocated")
    add(azure_env, "cpu-box", size="Standard_D8s_v5")
    add(azure_env, "far", location="westeurope")
    add(azure_env, "spot", spot=True)
    add(azure_env, "ephemeral", ephemeral_os_disk=True, tags={"owner": "alice@example.com"})
    found = scan(handlers(tmp_path, regions=("eastus",)))
    assert set(found) == {"busy", "stopped-allocated", "spot", "ephemeral"}
    assert found["stopped-allocated"].state == "stopped"
    assert found["busy"].ref.region == "eastus"
    assert found["busy"].instance_type == "Standard_NC6s_v3"
    assert found["busy"].created_at == CREATED
    assert found["busy"].stop_refusal is None
    assert "Spot" in (found["spot"].stop_refusal or "")
    assert "ephemeral OS disk" in (found["ephemeral"].stop_refusal or "")
    assert found["ephemeral"].tags == {"owner": "alice@example.com"}
    assert azure_env.calls["VirtualMachines_ListAll"] == 1


def test_a_missing_power_state_is_listed_again(
    azure_env: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vm_gpu, "_LIST_PAUSE_SECONDS", 0.0)
    add(azure_env, "flaky")
    azure_env.compute.hide_power_state(SUBSCRIPTION, RG, "flaky", times=1)
    h = handlers(tmp_path)
    assert set(scan(h)) == {"flaky"}
    assert azure_env.calls["VirtualMachines_ListAll"] == 2
    assert h.scanner.scan_warnings == []  # type: ignore[attr-defined]
    azure_env.compute.hide_power_state(SUBSCRIPTION, RG, "flaky", times=10)
    assert scan(h) == {}
    assert h.scanner.scan_warnings == [  # type: ignore[attr-defined]
        f"VM flaky: no power state in {vm_gpu.LIST_ATTEMPTS} listings, not scanned"
    ]


def test_every_vm_past_the_tenth_gets_a_verdict_with_one_call_per_region(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    for index in range(14):
        add(azure_env, f"gpu{index:02d}", cpu=1.0)
    for index in range(20):  # non-GPU VMs compete for the same series places
        add(azure_env, f"web{index:02d}", cpu=50.0, size="Standard_D4s_v5")
    add(azure_env, "west", cpu=1.0, location="westus2")
    h = handlers(tmp_path)
    resources = list(h.scanner.scan())
    verdicts = h.probe.usage(resources, WINDOW, NOW)
    assert len(verdicts) == 15
    assert {v.status for v in verdicts.values()} == {Status.IDLE}
    assert all(v.confidence is Confidence.LOW for v in verdicts.values())
    # one call per region (CPU and network share the namespace's call): never one per VM
    assert azure_env.calls["Metrics_ListAtSubscriptionScope"] == 2


def test_429_and_503_on_listing_and_metrics_are_retried(
    azure_env: AzureDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from janitor.clouds.azure import session

    monkeypatch.setattr(session, "BACKOFF_SECONDS", 0.01)
    add(azure_env, "idle")
    azure_env.rate_limit("VirtualMachines_ListAll", times=1, retry_after=1)
    azure_env.rate_limit("Metrics_ListAtSubscriptionScope", times=1, retry_after=1)
    azure_env.outage("Metrics_ListAtSubscriptionScope", times=1)
    h = handlers(tmp_path)
    (verdict,) = h.probe.usage(list(h.scanner.scan()), WINDOW, NOW).values()
    assert verdict.status is Status.IDLE
    assert azure_env.calls["VirtualMachines_ListAll"] == 2
    assert azure_env.calls["Metrics_ListAtSubscriptionScope"] == 3


def test_idle_streak_starts_at_the_latest_evidence_and_says_which(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    vm = add(azure_env, "was-busy", cpu=None)
    azure_env.monitor.add_daily(vm, "Percentage CPU", daily(1.0, skip=0))
    azure_env.monitor.add_daily(vm, "Percentage CPU", {(NOW - timedelta(days=20)).date(): 95.0})
    add(azure_env, "never-busy", cpu=1.0, time_created=NOW - timedelta(days=50))
    add(azure_env, "restarted", cpu=1.0, provisioned_at=NOW - timedelta(days=5))
    h = handlers(tmp_path)
    resources = list(h.scanner.scan())
    verdicts = {
        v.ref.id.rsplit("/", 1)[1]: v for v in h.probe.usage(resources, WINDOW, NOW).values()
    }
    busy_end = datetime.combine((NOW - timedelta(days=19)).date(), datetime.min.time(), UTC)
    assert verdicts["was-busy"].idle_since == busy_end
    assert "last day CPU crossed the threshold" in verdicts["was-busy"].evidence
    assert verdicts["restarted"].idle_since == NOW - timedelta(days=5)
    assert "ProvisioningState status time" in verdicts["restarted"].evidence
    # never busy, provisioned when created (within the window): since it was created
    assert verdicts["never-busy"].idle_since == NOW - timedelta(days=50)


def test_no_datapoints_is_unknown(azure_env: AzureDevServer, tmp_path: Path) -> None:
    add(azure_env, "dark", cpu=None)
    add(azure_env, "lit", cpu=1.0)
    h = handlers(tmp_path)
    verdicts = {
        v.ref.id.rsplit("/", 1)[1]: v
        for v in h.probe.usage(list(h.scanner.scan()), WINDOW, NOW).values()
    }
    assert verdicts["dark"].status is Status.UNKNOWN
    assert verdicts["lit"].status is Status.IDLE


def test_an_in_guest_gpu_metric_is_high_confidence_where_published(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    agent = add(azure_env, "with-agent", cpu=80.0)  # busy CPU, idle GPU: the GPU decides
    azure_env.monitor.add_daily(
        agent, "utilization_gpu", daily(0.0), namespace="Telegraf/nvidia_smi"
    )
    add(azure_env, "without-agent", cpu=80.0)
    add(azure_env, "elsewhere", cpu=1.0, location="westus2")  # no agent in the region: a 400
    gpu = "    gpu_metric: {namespace: Telegraf/nvidia_smi, name: utilization_gpu}\n"
    h = handlers(tmp_path, gpu)
    verdicts = {
        v.ref.id.rsplit("/", 1)[1]: v
        for v in h.probe.usage(list(h.scanner.scan()), WINDOW, NOW).values()
    }
    assert verdicts["with-agent"].status is Status.IDLE
    assert verdicts["with-agent"].confidence is Confidence.HIGH
    assert "utilization_gpu" in verdicts["with-agent"].evidence
    assert verdicts["without-agent"].status is Status.ACTIVE
    assert verdicts["without-agent"].confidence is Confidence.LOW
    assert verdicts["elsewhere"].status is Status.IDLE


def test_a_stopped_but_allocated_vm_is_idle_since_it_stopped(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    vm = add(azure_env, "parked", cpu=None, power_state="stopped",
             provisioned_at=NOW - timedelta(days=40))  # fmt: skip
    azure_env.monitor.add_daily(vm, "Percentage CPU", daily(50.0, days=45, skip=41))
    h = handlers(tmp_path)
    (verdict,) = h.probe.usage(list(h.scanner.scan()), WINDOW, NOW).values()
    assert verdict.status is Status.IDLE
    assert verdict.confidence is Confidence.HIGH
    assert verdict.idle_since == NOW - timedelta(days=40)
    assert "stopped but not deallocated" in verdict.evidence


def test_deallocate_never_power_off_then_restore_starts(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    add(azure_env, "idle")
    h = handlers(tmp_path)
    (resource,) = h.scanner.scan()
    result = stop_now(h.stopper, resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "idle") == "deallocated"
    assert azure_env.compute.history(SUBSCRIPTION, RG, "idle") == ["deallocate"]
    assert result.restore is not None
    again = stop_now(h.stopper, resource)
    assert again.outcome is StopOutcome.ALREADY_STOPPED  # a VM already deallocated
    assert "started" in h.stopper.restore(result.restore)
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "idle") == "running"
    assert "already running" in h.stopper.restore(result.restore)


def test_a_stopped_allocated_vm_is_deallocated(azure_env: AzureDevServer, tmp_path: Path) -> None:
    add(azure_env, "parked", power_state="stopped")
    h = handlers(tmp_path)
    (resource,) = h.scanner.scan()
    assert stop_now(h.stopper, resource).outcome is StopOutcome.STOPPED
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "parked") == "deallocated"


def test_spot_and_ephemeral_os_vms_are_never_deallocated(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    add(azure_env, "spot", spot=True)
    add(azure_env, "ephemeral", ephemeral_os_disk=True)
    h = handlers(tmp_path)
    for resource in h.scanner.scan():
        assert stop_now(h.stopper, resource).outcome is StopOutcome.REFUSED_STATE
    assert azure_env.calls["VirtualMachines_Deallocate"] == 0


def test_a_vm_deleted_between_scan_and_deallocate(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    add(azure_env, "gone")
    add(azure_env, "gone-later")
    h = handlers(tmp_path)
    found = scan(h)
    azure_env.compute.delete_vm(SUBSCRIPTION, RG, "gone")
    assert stop_now(h.stopper, found["gone"]).outcome is StopOutcome.NOT_FOUND
    plan = h.stopper.plan(found["gone-later"])  # deleted after the plan, before the call
    azure_env.compute.delete_vm(SUBSCRIPTION, RG, "gone-later")
    assert h.stopper.act(plan).outcome is StopOutcome.NOT_FOUND


def test_a_deallocate_that_ends_failed(azure_env: AzureDevServer, tmp_path: Path) -> None:
    add(azure_env, "stuck")
    azure_env.compute.fail_next_operation(SUBSCRIPTION, RG, "stuck", code="OperationPreempted")
    h = handlers(tmp_path)
    (resource,) = h.scanner.scan()
    result = stop_now(h.stopper, resource)
    assert result.outcome is StopOutcome.FAILED
    assert "OperationPreempted" in result.message
    assert result.restore is not None  # a stop that failed midway keeps its recipe
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "stuck") == "running"
