"""Every answer of the local GCP server has the shape Google gives: the keys and value types of
the recorded responses under tests/fixtures/gcp/ (see the README there), key for key.

A recorded object's keys must all be in the server's answer, and the server may answer only
those keys, plus fields Google documents that the recordings happen not to hold (listed below,
each with why). Maps keyed by names (zones, labels, metadata, traffic split) are compared by
the shape of their values. Requests go through google-auth's AuthorizedSession with the
generated service-account key (the real ADC path), with the recordings' own queries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.transport.requests import AuthorizedSession

from janitor.clouds.gcp import session as gcp
from janitor.devserver.gcp import GcpDevServer

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gcp"
PROJECT = "example-project"

# Objects keyed by names: compare value shapes only.
MAPS = {
    ".items",
    ".labels",
    ".trafficSplit",
    ".gceSetup.metadata",
    ".metric.labels",
    ".resource.labels",
}
# Fields Google answers only sometimes (documented in the Compute Engine Instance / Operation,
# Vertex DeployedModel and Notebooks v2 Instance references): the server may add or omit them.
DOCUMENTED_EXTRAS = {
    "guestAccelerators",  # Instance: GPUs attached (no GPU VM was ever recorded publicly)
    "labels",  # Instance: only present when set
    "lastStopTimestamp",  # Instance: after the first stop
    "serviceAccounts",  # Instance: recorded in the 2018 aggregated list
    "description",  # Instance: recorded in the 2018 aggregated list
    "items",  # Instance.metadata: only when the VM has metadata
    "startTime",  # Operation: once RUNNING (recorded in instances.setLabels)
    "endTime",  # Operation: once DONE
    "error",  # Operation: when it failed
    "acceleratorConfigs",  # Notebooks v2 GceSetup: GPUs
    "enableGpuDriver",  # Notebooks v2 GpuDriverConfig
    "nextPageToken",  # every list: when there is another page
}
# Recorded, but not modelled by the local server (nothing in janitor reads them).
NOT_MODELLED = {
    "shieldedInstanceInitialState",  # Secure Boot certificate blobs
    "lastSuspendedTimestamp",  # only after a suspend, which janitor never does
}


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def body(name: str) -> Any:
    return recorded(name)["response"]["body"]


def assert_same_shape(answer: Any, expected: Any, path: str = "") -> None:
    """`answer` has `expected`'s keys (and documented extras only), with values of the same
    kind, recursively; lists compare their first items."""
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
    elif expected is not None:
        assert type(answer) is type(expected), (
            f"{path}: {type(answer).__name__} where Google answers {type(expected).__name__}"
        )


def union(*objects: dict[str, Any]) -> dict[str, Any]:
    """One catalogue from several recordings of the same resource (keys merged, first wins)."""
    merged: dict[str, Any] = {}
    for obj in objects:
        for key, value in obj.items():
            if key in merged and isinstance(value, dict) and isinstance(merged[key], dict):
                merged[key] = union(merged[key], value)
            else:
                merged.setdefault(key, value)
    return merged


@pytest.fixture
def api(gcp_env: GcpDevServer) -> AuthorizedSession:
    return gcp.authorized_session(gcp.load_credentials())


def recorded_instances() -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = [body("compute/instances.get.json")]
    for name in (
        "compute/instances.aggregatedList.json",
        "compute/instances.aggregatedList.running_and_terminated.json",
    ):
        for scoped in body(name)["items"].values():
            instances.extend(scoped.get("instances", []))
    return instances


def test_the_assertion_fails_on_a_missing_or_added_key() -> None:
    with pytest.raises(AssertionError, match="leaves out"):
        assert_same_shape({"a": 1}, {"a": 1, "b": 2})
    with pytest.raises(AssertionError, match="adds"):
        assert_same_shape({"a": 1, "zz": 2}, {"a": 1})
    with pytest.raises(AssertionError, match="str where Google answers int"):
        assert_same_shape({"a": "1"}, {"a": 1})


def test_instance_get_and_aggregated_list(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "pro-narwhal", metadata={"k": "v"})
    gcp_env.add_instance(PROJECT, "us-east1-b", "custodian-dev", labels={"env": "dev"})
    catalogue = union(*recorded_instances())

    url = f"{gcp.base_url('compute')}/compute/v1/projects/{PROJECT}"
    got = api.get(f"{url}/zones/us-central1-a/instances/pro-narwhal")
    assert got.status_code == 200
    assert_same_shape(got.json(), catalogue)

    listed = api.get(f"{url}/aggregated/instances", params={"alt": "json"})
    assert listed.status_code == 200
    answer = listed.json()
    expected = body("compute/instances.aggregatedList.json")
    assert set(answer) == set(expected)
    assert answer["kind"] == expected["kind"]
    empty_zone = next(v for v in expected["items"].values() if "warning" in v)
    for scope, scoped in answer["items"].items():
        assert scope.startswith("zones/")
        if "instances" in scoped:
            for instance in scoped["instances"]:
                assert_same_shape(instance, catalogue)
        else:
            assert_same_shape(scoped, empty_zone)
            assert scoped["warning"]["code"] == "NO_RESULTS_ON_PAGE"
            assert scoped["warning"]["data"] == [{"key": "scope", "value": scope}]


def test_stop_operation_running_then_done(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-c", "instance-1")
    url = f"{gcp.base_url('compute')}/compute/v1/projects/{PROJECT}/zones/us-central1-c"
    stop = api.post(f"{url}/instances/instance-1/stop")
    assert stop.status_code == 200
    operation = stop.json()
    assert_same_shape(operation, body("compute/instances.stop.json"))
    assert operation["status"] == "RUNNING"

    polls = [api.get(f"{url}/operations/{operation['name']}").json() for _ in range(2)]
    assert [p["status"] for p in polls] == ["RUNNING", "DONE"]
    assert_same_shape(polls[-1], body("compute/zoneOperations.get.done.json"))


@pytest.mark.parametrize(
    ("fixture", "metric_kind", "value_type", "resource_type", "labels"),
    [
        (
            "monitoring/timeSeries.list.cpu_utilization.json",
            "GAUGE",
            "DOUBLE",
            "gce_instance",
            {"zone": "us-east4-c"},
        ),
        (
            "monitoring/timeSeries.list.vertex_prediction_count.json",
            "DELTA",
            "INT64",
            "aiplatform.googleapis.com/Endpoint",
            {"endpoint_id": "c7n-endpoint-default-7509", "location": "us-central1"},
        ),
    ],
)
def test_time_series_answers_the_recorded_query(
    gcp_env: GcpDevServer,
    api: AuthorizedSession,
    fixture: str,
    metric_kind: str,
    value_type: str,
    resource_type: str,
    labels: dict[str, str],
) -> None:
    exchange = recorded(fixture)
    query = dict(exchange["request"]["query"])
    expected = exchange["response"]["body"]
    series = expected["timeSeries"][0]
    now = datetime.now(UTC)
    query["interval.startTime"] = (now - timedelta(days=1)).isoformat()
    query["interval.endTime"] = now.isoformat()
    query["aggregation.alignmentPeriod"] = "86400s"
    gcp_env.add_points(
        PROJECT,
        series["metric"]["type"],
        resource_type=resource_type,
        resource_labels=labels,
        metric_labels=series["metric"]["labels"],
        metric_kind=metric_kind,
        value_type=value_type,
        points=[(now - timedelta(hours=2), 2)],
    )
    answer = api.get(
        f"{gcp.base_url('monitoring')}{exchange['request']['path']}", params=query
    ).json()
    assert_same_shape(answer, expected)
    assert answer["unit"] == expected["unit"]
    assert answer["timeSeries"][0]["metricKind"] == series["metricKind"]
    assert answer["timeSeries"][0]["valueType"] == series["valueType"]


@pytest.mark.parametrize(
    "fixture", ["vertex/endpoints.list.json", "vertex/endpoints.list.no_deployed_models.json"]
)
def test_endpoints_list(gcp_env: GcpDevServer, api: AuthorizedSession, fixture: str) -> None:
    expected = body(fixture)
    recorded_endpoint = expected["endpoints"][0]
    models = [
        {k: v for k, v in model.items() if k not in ("id", "createTime", "status")}
        for model in recorded_endpoint.get("deployedModels", [])
    ]
    gcp_env.add_endpoint(
        PROJECT,
        "us-central1",
        recorded_endpoint["name"].rsplit("/", 1)[-1],
        display_name=recorded_endpoint["displayName"],
        deployed_models=models,
        labels=recorded_endpoint["labels"],
    )
    answer = api.get(
        f"{gcp.base_url('aiplatform', 'us-central1')}{recorded(fixture)['request']['path']}"
    ).json()
    assert_same_shape(answer, expected)


def test_workbench_instances_list(gcp_env: GcpDevServer, api: AuthorizedSession) -> None:
    exchange = recorded("vertex/workbench.instances.list.json")
    gcp_env.add_workbench(PROJECT, "us-east1-b", "c7n-notebook-public-default-e84a")
    answer = api.get(f"{gcp.base_url('notebooks')}{exchange['request']['path']}").json()
    assert_same_shape(answer, exchange["response"]["body"])
