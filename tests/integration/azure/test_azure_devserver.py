"""The local Azure Resource Manager through the real SDK clients (azure-mgmt-compute,
azure-mgmt-monitor, azure-mgmt-resource-subscriptions) and the real `DefaultAzureCredential`
chain (App Service managed identity), over HTTPS trusted through the test CA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from tests.integration.azure.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION

from janitor.devserver.azure import AzureDevServer

pytestmark = pytest.mark.integration

RG = "ml-rg"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def clients(server: AzureDevServer, subscription: str = SUBSCRIPTION) -> dict[str, Any]:
    credential = DefaultAzureCredential()
    options: dict[str, Any] = {
        "base_url": server.url,
        "credential_scopes": [f"{server.url}/.default"],
        "retry_total": 3,
        "retry_backoff_factor": 0.01,
    }
    return {
        "subscriptions": SubscriptionClient(credential, **options),
        "compute": ComputeManagementClient(credential, subscription, polling_interval=1, **options),
        "monitor": MonitorManagementClient(credential, subscription, **options),
    }


def test_the_credential_chain_gets_its_token_from_the_identity_endpoint(
    azure_env: AzureDevServer,
) -> None:
    azure_env.add_subscription(SUBSCRIPTION)
    subs = [s.subscription_id for s in clients(azure_env)["subscriptions"].subscriptions.list()]
    assert subs == [SUBSCRIPTION]
    assert azure_env.calls["ManagedIdentity_GetToken"] == 1
    assert azure_env.token_audiences() == [azure_env.url]  # the scope's resource


def test_requests_without_a_token_it_issued_are_refused(azure_env: AzureDevServer) -> None:
    url = f"{azure_env.url}/subscriptions?api-version=2022-12-01"
    bare = requests.get(url, timeout=5)
    forged = requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=5)
    assert (bare.status_code, forged.status_code) == (401, 401)
    assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"
    token = requests.get(
        azure_env.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": azure_env.url},
        headers={"X-IDENTITY-HEADER": "wrong"},
        timeout=5,
    )
    assert token.status_code == 401


def test_list_all_with_status_only_pages_and_carries_power_states(
    azure_env: AzureDevServer,
) -> None:
    azure_env.compute.page_size = 2
    for index, state in enumerate(["running", "stopped", "deallocated", "running", "running"]):
        azure_env.compute.add_vm(SUBSCRIPTION, f"vm{index}", power_state=state)
    azure_env.compute.add_vm(OTHER_SUBSCRIPTION, "elsewhere")
    vms = list(clients(azure_env)["compute"].virtual_machines.list_all(status_only="true"))
    states = {
        vm.name: [s.code for s in vm.instance_view.statuses if s.code.startswith("PowerState/")]
        for vm in vms
    }
    assert states == {
        "vm0": ["PowerState/running"],
        "vm1": ["PowerState/stopped"],
        "vm2": ["PowerState/deallocated"],
        "vm3": ["PowerState/running"],
        "vm4": ["PowerState/running"],
    }
    assert azure_env.calls["VirtualMachines_ListAll"] == 3  # 5 VMs, 2 a page: nextLink followed


def test_a_hidden_power_state_is_missing_once(azure_env: AzureDevServer) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm", power_state="running")
    azure_env.compute.hide_power_state(SUBSCRIPTION, RG, "vm")
    compute = clients(azure_env)["compute"].virtual_machines
    (first,) = compute.list_all(status_only="true")
    (second,) = compute.list_all(status_only="true")
    assert [s.code for s in first.instance_view.statuses] == ["ProvisioningState/succeeded"]
    assert "PowerState/running" in [s.code for s in second.instance_view.statuses]


def test_deallocate_is_a_long_running_operation_in_progress_then_succeeded(
    azure_env: AzureDevServer,
) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    compute = clients(azure_env)["compute"].virtual_machines
    poller = compute.begin_deallocate(RG, "vm")
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "deallocating"
    poller.result()
    assert poller.status() == "Succeeded"
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "deallocated"
    # one InProgress poll, one Succeeded poll, then the final Location GET
    assert azure_env.calls["AsyncOperation_Get"] == 2
    assert azure_env.calls["AsyncOperation_Location"] == 1
    compute.begin_start(RG, "vm").result()
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "running"
    compute.begin_power_off(RG, "vm").result()
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "stopped"
    assert azure_env.compute.history(SUBSCRIPTION, RG, "vm") == ["deallocate", "start", "powerOff"]


def test_an_operation_can_end_failed_and_the_vm_keeps_its_state(
    azure_env: AzureDevServer,
) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.compute.fail_next_operation(SUBSCRIPTION, RG, "vm", code="InternalExecutionError")
    poller = clients(azure_env)["compute"].virtual_machines.begin_deallocate(RG, "vm")
    with pytest.raises(HttpResponseError, match="InternalExecutionError"):
        poller.result()
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "running"


def test_a_deleted_vm_is_not_found(azure_env: AzureDevServer) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.compute.delete_vm(SUBSCRIPTION, RG, "vm")
    compute = clients(azure_env)["compute"].virtual_machines
    with pytest.raises(ResourceNotFoundError):
        compute.get(RG, "vm")
    with pytest.raises(ResourceNotFoundError):
        compute.begin_deallocate(RG, "vm")


def test_faults_deny_rate_limit_and_outage(azure_env: AzureDevServer) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.deny_subscription(OTHER_SUBSCRIPTION)
    with pytest.raises(HttpResponseError) as denied:
        list(clients(azure_env, OTHER_SUBSCRIPTION)["compute"].virtual_machines.list_all())
    assert denied.value.status_code == 403
    assert denied.value.error is not None
    assert denied.value.error.code == "AuthorizationFailed"
    azure_env.rate_limit("VirtualMachines_ListAll", times=1, retry_after=1)
    azure_env.outage("VirtualMachines_ListAll", times=1)
    vms = list(clients(azure_env)["compute"].virtual_machines.list_all())
    assert [vm.name for vm in vms] == ["vm"]  # the SDK's retry policy got through both
    assert azure_env.calls["VirtualMachines_ListAll"] == 4  # denied + 429 + 503 + answer


def _cpu(server: AzureDevServer, count: int) -> list[str]:
    ids = []
    for index in range(count):
        body = server.compute.add_vm(SUBSCRIPTION, f"vm{index:02d}")
        server.monitor.add_daily(
            body["id"],
            "Percentage CPU",
            {(TODAY - timedelta(days=k)).date(): float(index) for k in range(1, 4)},
        )
        ids.append(body["id"])
    return ids


def test_subscription_scope_metrics_answer_only_top_series(azure_env: AzureDevServer) -> None:
    ids = _cpu(azure_env, 12)
    metrics = clients(azure_env)["monitor"].metrics
    timespan = f"{(TODAY - timedelta(days=3)).isoformat()}/{TODAY.isoformat()}"

    def query(**extra: Any) -> Any:
        return metrics.list_at_subscription_scope(
            region="eastus",
            metricnamespace="Microsoft.Compute/virtualMachines",
            metricnames="Percentage CPU",
            interval="P1D",
            aggregation="maximum",
            timespan=timespan,
            filter="Microsoft.ResourceId eq '*'",
            **extra,
        )

    (default,) = query().value
    assert len(default.timeseries) == 10  # the API's default top: two VMs silently missing
    (full,) = query(top=len(ids)).value
    seen = {ts.metadatavalues[0].value for ts in full.timeseries}
    assert seen == set(ids)
    series = next(ts for ts in full.timeseries if ts.metadatavalues[0].value == ids[7])
    assert [(p.time_stamp.date(), p.maximum) for p in series.data] == [
        ((TODAY - timedelta(days=k)).date(), 7.0) for k in (3, 2, 1)
    ]


def test_a_day_without_data_has_a_timestamp_only_and_an_unpublished_namespace_is_an_error(
    azure_env: AzureDevServer,
) -> None:
    body = azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.monitor.add_daily(
        body["id"], "Percentage CPU", {(TODAY - timedelta(days=1)).date(): 2.0}
    )
    metrics = clients(azure_env)["monitor"].metrics
    timespan = f"{(TODAY - timedelta(days=2)).isoformat()}/{TODAY.isoformat()}"
    answer = metrics.list_at_subscription_scope(
        region="eastus",
        metricnamespace="Microsoft.Compute/virtualMachines",
        metricnames="Percentage CPU,Network In Total",
        interval="P1D",
        aggregation="maximum",
        timespan=timespan,
        filter="Microsoft.ResourceId eq '*'",
        top=100,
    )
    cpu, net = answer.value
    assert [p.maximum for p in cpu.timeseries[0].data] == [None, 2.0]
    assert net.timeseries == []
    with pytest.raises(HttpResponseError) as missing:
        metrics.list_at_subscription_scope(
            region="eastus",
            metricnamespace="Telegraf/nvidia_smi",
            metricnames="utilization_gpu",
            interval="P1D",
            aggregation="maximum",
            timespan=timespan,
            filter="Microsoft.ResourceId eq '*'",
        )
    assert missing.value.status_code == 400


def test_metrics_split_by_a_dimension_and_combine_without_one(azure_env: AzureDevServer) -> None:
    """What Azure ML endpoint metrics need: series per resource and `deployment`, or combined
    over the deployments when the filter does not split by it; and a resource type that the
    subscription scope does not serve until enabled."""
    endpoint = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/ep"
    )
    namespace = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    metrics = clients(azure_env)["monitor"].metrics
    timespan = f"{(TODAY - timedelta(days=1)).isoformat()}/{TODAY.isoformat()}"
    with pytest.raises(HttpResponseError, match="not enabled for Cross Resource metrics"):
        metrics.list_at_subscription_scope(
            region="eastus", metricnamespace=namespace, metricnames="RequestsPerMinute",
            interval="P1D", aggregation="total", timespan=timespan,
        )  # fmt: skip
    azure_env.monitor.enable_cross_resource(namespace)
    day = (TODAY - timedelta(days=1)).date()
    for deployment, value in (("blue", 3.0), ("green", 4.0)):
        azure_env.monitor.add_daily(
            endpoint, "RequestsPerMinute", {day: value}, namespace=namespace,
            dimensions={"deployment": deployment},
        )  # fmt: skip

    def series(filter: str) -> list[tuple[list[str | None], float | None]]:
        (metric,) = metrics.list_at_subscription_scope(
            region="eastus", metricnamespace=namespace, metricnames="RequestsPerMinute",
            interval="P1D", aggregation="total", timespan=timespan, filter=filter, top=50,
        ).value  # fmt: skip
        return [
            ([m.value for m in ts.metadatavalues], ts.data[0].total) for ts in metric.timeseries
        ]

    assert series("Microsoft.ResourceId eq '*' and deployment eq '*'") == [
        ([endpoint, "blue"], 3.0),
        ([endpoint, "green"], 4.0),
    ]
    assert series("Microsoft.ResourceId eq '*'") == [([endpoint], 7.0)]
    assert series("Microsoft.ResourceId eq '*' and deployment eq 'green'") == [([endpoint], 4.0)]


def test_an_operation_moves_the_provisioning_status_time(azure_env: AzureDevServer) -> None:
    before = TODAY - timedelta(days=10)
    azure_env.compute.add_vm(SUBSCRIPTION, "vm", provisioned_at=before)
    compute = clients(azure_env)["compute"].virtual_machines

    def status_time() -> datetime:
        vm = compute.get(RG, "vm", expand="instanceView")
        (status,) = [s for s in vm.instance_view.statuses if s.code.startswith("Provisioning")]
        moment: datetime = status.time
        return moment

    assert status_time() == before
    compute.begin_deallocate(RG, "vm").result()
    assert status_time() > before  # the deallocate's end, as ARM records it
