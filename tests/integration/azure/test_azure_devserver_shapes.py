"""Every answer of the local Azure server has the shape ARM gives: the keys and value types of
the recorded responses under tests/fixtures/azure/ (see the README there), key for key.

A recorded object's keys must all be in the server's answer, and the server may answer only
those keys, plus fields the REST reference documents that the recordings happen not to hold
(listed below, each with why). Maps keyed by names (tags) are compared by the shape of their
values. Requests carry a token the real `DefaultAzureCredential` chain got from the server's
managed-identity endpoint, over HTTPS trusted through the test CA, with the recordings' paths and
queries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import DefaultAzureCredential

from janitor.devserver.azure import AzureDevServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "azure"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

MAPS = {".tags"}
# Fields ARM answers only sometimes (documented in the Compute VirtualMachine and Azure Monitor
# Metrics references): the server may add or omit them.
DOCUMENTED_EXTRAS = {
    "timeCreated",  # VirtualMachineProperties (api-version 2021-11-01 and later)
    "priority",  # Spot VMs
    "evictionPolicy",  # Spot VMs
    "billingProfile",  # Spot VMs: maxPrice
    "diffDiskSettings",  # OSDisk: ephemeral OS disk
    "instanceView",  # list_all with statusOnly=true: each VM's statuses
    "nextLink",  # every list: when there is another page
    "endTime",  # operation status: once finished
    "error",  # operation status: when Failed
    "displayDescription",  # Metric (api-version 2018-01-01 and later)
    "errorCode",  # Metric (api-version 2021-05-01 and later)
    "maximum",  # MetricValue: one key per requested aggregation
    "total",
}
# Recorded, but not modelled by the local server (nothing in janitor reads them).
NOT_MODELLED = {
    "vmAgent",  # instance view: the guest agent's status
    "disks",  # instance view: per-disk provisioning statuses
    "bootDiagnostics",  # instance view: screenshot and serial log blob URIs
    "extensions",  # instance view: extension statuses
    "average",  # MetricValue: janitor asks for maximum and total only
}


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_same_shape(answer: Any, expected: Any, path: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(answer, dict), f"{path}: {answer!r} is not an object"
        if any(path.endswith(suffix) for suffix in MAPS):
            if answer and expected:
                first = next(iter(expected.values()))
                for key, value in answer.items():
                    assert_same_shape(value, first, f"{path}[{key}]")
            return
        missing = set(expected) - set(answer) - NOT_MODELLED - DOCUMENTED_EXTRAS
        assert not missing, f"{path}: the server leaves out {sorted(missing)}"
        extra = set(answer) - set(expected) - DOCUMENTED_EXTRAS
        assert not extra, f"{path}: the server adds {sorted(extra)}"
        for key in set(answer) & set(expected):
            assert_same_shape(answer[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(answer, list), f"{path}: {answer!r} is not a list"
        if answer and expected:
            assert_same_shape(answer[0], expected[0], f"{path}[0]")
    elif isinstance(expected, float):
        assert isinstance(answer, int | float), f"{path}: {answer!r} is not a number"
    elif expected is not None:
        assert type(answer) is type(expected), (
            f"{path}: {type(answer).__name__} where ARM answers {type(expected).__name__}"
        )


class Arm:
    """requests with a bearer token from the real credential chain."""

    def __init__(self, server: AzureDevServer) -> None:
        self.url = server.url
        token = DefaultAzureCredential().get_token(f"{server.url}/.default").token
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path_or_url: str, query: dict[str, str]) -> requests.Response:
        url = path_or_url if path_or_url.startswith("https://") else self.url + path_or_url
        return requests.request(method, url, params=query, headers=self.headers, timeout=10)


@pytest.fixture
def arm(azure_env: AzureDevServer) -> Arm:
    return Arm(azure_env)


def replay(arm: Arm, name: str) -> requests.Response:
    request = recorded(name)["request"]
    return arm.call(request["method"], request["path"], request["query"])


def seed_recorded_vms(server: AzureDevServer) -> None:
    server.compute.add_vm(SUBSCRIPTION, "cctestvm", resource_group="TEST_VM", tags={"a": "b"})
    server.compute.add_vm(SUBSCRIPTION, "virtualmachinexeb772750", resource_group="rgname")


def test_list_all_has_the_recorded_shape(azure_env: AzureDevServer, arm: Arm) -> None:
    seed_recorded_vms(azure_env)
    answer = replay(arm, "compute/virtualMachines.listAll.json")
    assert answer.status_code == 200
    assert_same_shape(
        answer.json(), recorded("compute/virtualMachines.listAll.json")["response"]["body"]
    )
    status_only = arm.call(
        "GET",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines",
        {"api-version": "2024-07-01", "statusOnly": "true"},
    ).json()
    expected_view = recorded("compute/virtualMachines.get.instanceView.json")["response"]["body"]
    for vm in status_only["value"]:
        # statusOnly: the instance view's statuses (a subset of the full view's keys)
        assert_same_shape(vm["properties"]["instanceView"]["statuses"],
                          expected_view["properties"]["instanceView"]["statuses"])  # fmt: skip


def test_get_with_instance_view_has_the_recorded_shape(azure_env: AzureDevServer, arm: Arm) -> None:
    seed_recorded_vms(azure_env)
    answer = replay(arm, "compute/virtualMachines.get.instanceView.json")
    assert answer.status_code == 200
    expected = recorded("compute/virtualMachines.get.instanceView.json")["response"]["body"]
    expected = {k: v for k, v in expected.items() if k != "resources"}  # extensions: none here
    assert_same_shape({k: v for k, v in answer.json().items() if k != "resources"}, expected)
    codes = [s["code"] for s in answer.json()["properties"]["instanceView"]["statuses"]]
    assert codes == ["ProvisioningState/succeeded", "PowerState/running"]  # as recorded


def _headers(response: requests.Response) -> set[str]:
    return {name.lower() for name in response.headers}


def test_deallocate_sequence_has_the_recorded_shape(azure_env: AzureDevServer, arm: Arm) -> None:
    seed_recorded_vms(azure_env)
    steps = [
        recorded(f"compute/virtualMachines.deallocate.{name}.json")["response"]
        for name in ("1_accepted", "2_poll_inprogress", "3_poll_succeeded", "4_location_final")
    ]
    accepted = replay(arm, "compute/virtualMachines.deallocate.1_accepted.json")
    assert accepted.status_code == steps[0]["status"] == 202
    assert accepted.content == b""
    wanted = {"azure-asyncoperation", "location", "retry-after"}
    assert wanted <= {h.lower() for h in steps[0]["headers"]}
    assert wanted <= _headers(accepted)
    assert accepted.headers["Retry-After"] == "1"
    poll_url = accepted.headers["Azure-AsyncOperation"]
    in_progress = arm.call("GET", poll_url, {})
    assert in_progress.status_code == 200
    assert in_progress.json()["status"] == steps[1]["body"]["status"] == "InProgress"
    assert_same_shape(in_progress.json(), steps[1]["body"])
    assert "retry-after" in _headers(in_progress)
    succeeded = arm.call("GET", poll_url, {})
    assert succeeded.json()["status"] == steps[2]["body"]["status"] == "Succeeded"
    assert_same_shape(succeeded.json(), steps[2]["body"])
    final = arm.call("GET", accepted.headers["Location"], {})
    assert final.status_code == steps[3]["status"] == 200
    assert final.content == b""


def test_power_off_accepted_has_the_recorded_shape(azure_env: AzureDevServer, arm: Arm) -> None:
    seed_recorded_vms(azure_env)
    recorded_reply = recorded("compute/virtualMachines.powerOff.1_accepted.json")["response"]
    answer = replay(arm, "compute/virtualMachines.powerOff.1_accepted.json")
    assert answer.status_code == recorded_reply["status"] == 202
    assert {"azure-asyncoperation", "location"} <= {h.lower() for h in recorded_reply["headers"]}
    assert {"azure-asyncoperation", "location"} <= _headers(answer)


def test_metrics_have_the_recorded_shape_at_both_scopes(
    azure_env: AzureDevServer, arm: Arm
) -> None:
    seed_recorded_vms(azure_env)
    vm_id = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/TEST_VM/providers/"
        "Microsoft.Compute/virtualMachines/cctestvm"
    )
    today = datetime.now(UTC).date()
    azure_env.monitor.add_daily(
        vm_id, "Percentage CPU", {today - timedelta(days=k): 3.0 for k in range(3)}
    )
    expected = recorded("monitor/metrics.list.percentage_cpu.json")["response"]["body"]
    request = recorded("monitor/metrics.list.percentage_cpu.json")["request"]
    start = datetime.combine(today - timedelta(days=2), datetime.min.time(), UTC)
    query = {
        **request["query"],
        "timespan": f"{start.isoformat()}/{(start + timedelta(days=2)).isoformat()}",
    }
    one = arm.call("GET", request["path"], query)
    assert one.status_code == 200, one.text
    assert_same_shape(one.json(), expected)
    assert one.json()["value"][0]["timeseries"][0]["data"][0]["average"] == 3.0
    many = arm.call(
        "GET",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Insights/metrics",
        {
            **query,
            "api-version": "2024-02-01",
            "region": "eastus",
            "metricnamespace": "Microsoft.Compute/virtualMachines",
            "$filter": "Microsoft.ResourceId eq '*'",
            "aggregation": "maximum",
        },
    )
    assert many.status_code == 200, many.text
    assert_same_shape(many.json(), expected)
    (series,) = many.json()["value"][0]["timeseries"]
    (meta,) = series["metadatavalues"]
    assert meta == {
        "name": {"value": "Microsoft.ResourceId", "localizedValue": "Microsoft.ResourceId"},
        "value": vm_id,
    }
