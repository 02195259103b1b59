"""The local server's Azure ML answers have the shapes ARM gives: the keys and value types of the
recordings under tests/fixtures/azure/ml/ (see the README there), key for key.

A recorded object's keys must all be in the server's answer, and the server may answer only
those keys, plus fields the 2024-04-01 REST reference documents that the recordings happen not
to hold (listed below, each with why). Maps keyed by names (tags, traffic) are compared by the
shape of their values. Requests carry a token from the real `DefaultAzureCredential` chain, over
HTTPS trusted through the test CA, with the recordings' paths and queries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import DefaultAzureCredential

from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "azure" / "ml"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

MAPS = (".tags", ".traffic", ".mirrorTraffic", ".environmentVariables")
DOCUMENTED_EXTRAS = {
    "nextLink",  # every list: when there is another page
    "identity",  # OnlineEndpoint: managed service identity
    "systemData",  # OnlineEndpoint: creation and last modification (who, when)
    "description",  # OnlineEndpointProperties
    "traffic",  # OnlineEndpointProperties: percent per deployment
    "mirrorTraffic",  # OnlineEndpointProperties: mirrored percent per deployment
    "swaggerUri",  # OnlineEndpointProperties
    "idleTimeBeforeShutdown",  # ComputeInstanceProperties: answered when it is set
}


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_same_shape(answer: Any, expected: Any, path: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(answer, dict), f"{path}: {answer!r} is not an object"
        if path.endswith(MAPS):
            if answer and expected:
                first = next(iter(expected.values()))
                for key, value in answer.items():
                    assert_same_shape(value, first, f"{path}[{key}]")
            return
        missing = set(expected) - set(answer) - DOCUMENTED_EXTRAS
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
    def __init__(self, server: AzureDevServer) -> None:
        self.url = server.url
        token = DefaultAzureCredential().get_token(f"{server.url}/.default").token
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(
        self, method: str, path_or_url: str, query: dict[str, str], body: Any = None
    ) -> requests.Response:
        url = path_or_url if path_or_url.startswith("https://") else self.url + path_or_url
        return requests.request(
            method, url, params=query, headers=self.headers, json=body, timeout=10
        )


@pytest.fixture
def arm(azure_env: AzureDevServer) -> Arm:
    return Arm(azure_env)


@pytest.fixture
def ml(azure_env: AzureDevServer) -> MachineLearningService:
    return azure_env.mount(MachineLearningService)


def replay(arm: Arm, name: str) -> Any:
    request = recorded(name)["request"]
    answer = arm.call(request["method"], request["path"], request["query"])
    assert answer.status_code == recorded(name)["response"]["status"], answer.text
    return answer.json()


def test_workspaces_list_has_the_recorded_shape(arm: Arm, ml: MachineLearningService) -> None:
    ml.add_workspace(SUBSCRIPTION, "vvmlwrkspc", resource_group="VV")
    expected = recorded("workspaces.listBySubscription.json")["response"]["body"]
    assert_same_shape(replay(arm, "workspaces.listBySubscription.json"), expected)


def test_online_endpoints_list_has_the_recorded_shape(arm: Arm, ml: MachineLearningService) -> None:
    ws_id = ml.add_workspace(
        SUBSCRIPTION, "cctest-mlws", resource_group="test_machine-learning-online-endpoint"
    )
    ml.add_endpoint(ws_id, "cctest-online-endpoint", deployments=[{"name": "blue"}])
    answer = replay(arm, "onlineEndpoints.list.json")
    assert_same_shape(answer, recorded("onlineEndpoints.list.json")["response"]["body"])
    assert answer["value"][0]["properties"]["traffic"] == {"blue": 100}


def test_computes_have_the_recorded_shapes(arm: Arm, ml: MachineLearningService) -> None:
    cluster_ws = ml.add_workspace(SUBSCRIPTION, "vvmlwrkspc", resource_group="VV")
    ml.add_cluster(cluster_ws, "vvmlwrkspc11")
    expected = recorded("computes.list.amlcompute.json")["response"]["body"]
    assert_same_shape(replay(arm, "computes.list.amlcompute.json"), expected)
    ws_id = ml.add_workspace(SUBSCRIPTION, "mlworkspace-portal01", resource_group="ml-rg-test")
    ml.add_compute_instance(ws_id, "example-ci", vm_size="STANDARD_DS3_V2")
    answer = replay(arm, "computes.get.computeinstance.json")
    assert_same_shape(answer, recorded("computes.get.computeinstance.json")["response"]["body"])
    assert "idleTimeBeforeShutdown" not in answer["properties"]["properties"]  # not set
    ml.add_compute_instance(ws_id, "tidy-ci", idle_time_before_shutdown="PT60M")
    tidy = arm.call("GET", f"{ws_id}/computes/tidy-ci", {"api-version": "2024-04-01"}).json()
    assert tidy["properties"]["properties"]["idleTimeBeforeShutdown"] == "PT60M"


def test_long_running_operations_answer_as_arm_does(
    azure_env: AzureDevServer, arm: Arm, ml: MachineLearningService
) -> None:
    ws_id = ml.add_workspace(SUBSCRIPTION, "ws")
    ep_id = ml.add_endpoint(ws_id, "ep", deployments=[{"name": "blue"}, {"name": "green"}],
                            traffic={"blue": 100})  # fmt: skip
    query = {"api-version": "2024-04-01"}
    endpoint = arm.call("GET", ep_id, query).json()
    # The PATCH takes tags and identity only: traffic is refused there.
    patched = arm.call("PATCH", ep_id, query, {"properties": {"traffic": {"blue": 0}}})
    assert patched.status_code == 400
    # Deleting a deployment that still has traffic is refused.
    assert arm.call("DELETE", f"{ep_id}/deployments/blue", query).status_code == 400
    endpoint["properties"]["traffic"] = {"blue": 0, "green": 0}
    put = arm.call("PUT", ep_id, query, endpoint)
    assert put.status_code == 200
    assert "azure-asyncoperation" in {h.lower() for h in put.headers}
    assert put.json()["properties"]["provisioningState"] == "Updating"
    deleted = arm.call("DELETE", f"{ep_id}/deployments/green", query)
    assert deleted.status_code == 202
    headers = {h.lower() for h in deleted.headers}
    assert {"azure-asyncoperation", "location", "retry-after"} <= headers
    poll = deleted.headers["Azure-AsyncOperation"]
    assert arm.call("GET", poll, {}).json()["status"] == "InProgress"
    assert arm.call("GET", poll, {}).json()["status"] == "Succeeded"
    assert set(ml.deployments(ep_id)) == {"blue"}
    assert arm.call("DELETE", f"{ep_id}/deployments/green", query).status_code == 204
    spec = ml.deployments(ep_id)["blue"]
    created = arm.call("PUT", f"{ep_id}/deployments/again", query, spec)
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    bad = arm.call("PUT", ep_id, query, {**endpoint, "properties": {
        **endpoint["properties"], "traffic": {"blue": 50}}})  # fmt: skip
    assert bad.status_code == 400  # traffic must add up to 0 or 100
