"""`gcp.vertex-endpoint` through google-auth's authorized session (REST) against the local GCP
server, credentials through the real ADC path (`gcp_env`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as core_exceptions

from janitor.clouds.base import stop_now
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import load_credentials
from janitor.clouds.gcp.vertex_endpoint import (
    CPU_METRIC,
    PREDICTIONS_METRIC,
    REPLICAS_METRIC,
    RESOURCE_TYPE,
    VertexEndpointProbe,
    VertexEndpointScanner,
    VertexEndpointStopper,
)
from janitor.devserver.gcp import GcpDevServer
from janitor.model import Confidence, Resource, Status, StopOutcome, Window

PROJECT = "example-project"
LOC = "us-central1"
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()


def scope(region: str = GLOBAL, regions: tuple[str, ...] = ()) -> GcpScope:
    return GcpScope(PROJECT, region, load_credentials(), regions)


def days(n: int, value: float, *, until: date = TODAY) -> dict[date, float]:
    return {until - timedelta(days=k): value for k in range(n)}


def model(display: str, *, gpu: bool = True, replicas: int = 1) -> dict[str, Any]:
    machine: dict[str, Any] = {"machineType": "n1-standard-4"}
    if gpu:
        machine |= {"acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 1}
    return {
        "model": f"projects/{PROJECT}/locations/{LOC}/models/{display}",
        "modelVersionId": "2",
        "displayName": display,
        "dedicatedResources": {
            "machineSpec": machine,
            "minReplicaCount": replicas,
            "maxReplicaCount": replicas + 2,
            "autoscalingMetricSpecs": [
                {"metricName": "aiplatform.googleapis.com/prediction/online/cpu/utilization",
                 "target": 70}
            ],
        },
        "serviceAccount": f"serving@{PROJECT}.iam.gserviceaccount.com",
        "enableAccessLogging": True,
        "disableContainerLogging": False,
    }  # fmt: skip


def endpoint(
    server: GcpDevServer,
    endpoint_id: str,
    *models: dict[str, Any],
    location: str = LOC,
    split: dict[str, int] | None = None,
) -> str:
    body = server.add_endpoint(
        PROJECT, location, endpoint_id, display_name=f"ep-{endpoint_id}",
        deployed_models=list(models), traffic_split=split, labels={"owner": "alice"},
        created_at=NOW - timedelta(days=120),
    )  # fmt: skip
    return str(body["name"])


def metric(
    server: GcpDevServer,
    metric_type: str,
    endpoint_id: str,
    values: dict[date, float],
    deployed_model_id: str = "m1",
) -> None:
    server.add_daily(
        PROJECT, metric_type, resource_type=RESOURCE_TYPE,
        resource_labels={"endpoint_id": endpoint_id, "location": LOC,
                         "resource_container": PROJECT},
        metric_labels={"deployed_model_id": deployed_model_id},
        days=values,
        metric_kind="DELTA" if metric_type == PREDICTIONS_METRIC else "GAUGE",
        value_type="INT64" if metric_type != CPU_METRIC else "DOUBLE",
    )  # fmt: skip


def scan(region: str = GLOBAL, regions: tuple[str, ...] = ()) -> dict[str, Resource]:
    return {r.name: r for r in VertexEndpointScanner(scope(region, regions)).scan()}


def judge(resources: dict[str, Resource]) -> dict[str, Any]:
    probe = VertexEndpointProbe(scope(), thresholds={"predictions_per_day": 0.0})
    verdicts = probe.usage(list(resources.values()), Window.ending(NOW, timedelta(days=60)), NOW)
    return {name: verdicts[r.ref.key] for name, r in resources.items()}


# --- scan ------------------------------------------------------------------------------------


def test_scan_uses_the_locations_api_when_no_region_is_given(gcp_env: GcpDevServer) -> None:
    gcp_env.set_locations(PROJECT, [LOC, "europe-west4"])
    name = endpoint(gcp_env, "1", model("llm", replicas=2))
    endpoint(gcp_env, "2", model("eu"), location="europe-west4")
    endpoint(gcp_env, "3")  # no deployed model: nothing billed, not listed
    found = scan()
    assert set(found) == {"ep-1", "ep-2"}
    llm = found["ep-1"]
    assert llm.ref.id == name
    assert llm.ref.region == LOC
    assert llm.tags == {"owner": "alice"}
    assert llm.details["units"] == [
        {"service": "vertex-prediction", "sku": "n1-standard-4", "count": 2},
        {"service": "vertex-prediction-gpu", "sku": "NVIDIA_TESLA_T4", "count": 2},
    ]
    assert gcp_env.calls["aiplatform.locations.list"] == 1
    assert gcp_env.calls["aiplatform.endpoints.list"] == 2


def test_scan_with_regions(gcp_env: GcpDevServer) -> None:
    gcp_env.set_locations(PROJECT, [LOC, "europe-west4"])
    endpoint(gcp_env, "1", model("llm"))
    endpoint(gcp_env, "2", model("eu"), location="europe-west4")
    assert set(scan(LOC, (LOC,))) == {"ep-1"}  # a regional task: no Locations call
    assert gcp_env.calls["aiplatform.locations.list"] == 0
    assert set(scan(GLOBAL, ("europe-west4",))) == {"ep-2"}  # filter on the listed locations


def test_a_disabled_api_fails_the_scan(gcp_env: GcpDevServer) -> None:
    gcp_env.disable_service(PROJECT, "aiplatform.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden):
        scan(LOC, (LOC,))


def test_429_and_503_are_retried(gcp_env: GcpDevServer) -> None:
    endpoint(gcp_env, "1", model("llm"))
    gcp_env.rate_limit("aiplatform.endpoints.list", retry_after=1)
    gcp_env.outage("monitoring.timeSeries.list", status=503)
    found = scan(LOC, (LOC,))
    assert set(found) == {"ep-1"}
    assert judge(found)["ep-1"].status is Status.UNKNOWN
    assert gcp_env.calls["aiplatform.endpoints.list"] == 2


# --- verdicts --------------------------------------------------------------------------------


def test_verdicts(gcp_env: GcpDevServer) -> None:
    for eid in ("busy", "idle", "beat", "cpu", "none", "multi"):
        models = [model("a")] if eid != "multi" else [model("a"), model("b")]
        endpoint(gcp_env, eid, *models)
    metric(gcp_env, PREDICTIONS_METRIC, "busy", days(30, 50))
    metric(gcp_env, REPLICAS_METRIC, "busy", days(30, 1))
    metric(gcp_env, PREDICTIONS_METRIC, "idle", days(30, 40, until=TODAY - timedelta(days=10)))
    metric(gcp_env, REPLICAS_METRIC, "idle", days(30, 1))
    metric(gcp_env, REPLICAS_METRIC, "beat", days(20, 1))  # heartbeat only: zero days
    metric(gcp_env, CPU_METRIC, "cpu", days(20, 3.0))  # heartbeat from CPU
    # two models: one busy until today, one idle: the endpoint is active
    metric(gcp_env, PREDICTIONS_METRIC, "multi", days(30, 0), "m1")
    metric(gcp_env, PREDICTIONS_METRIC, "multi", days(2, 9), "m2")
    metric(gcp_env, REPLICAS_METRIC, "multi", days(30, 1))
    verdicts = judge(scan(LOC, (LOC,)))
    assert verdicts["ep-busy"].status is Status.ACTIVE
    idle = verdicts["ep-idle"]
    assert idle.status is Status.IDLE
    assert idle.confidence is Confidence.HIGH
    assert idle.idle_since == datetime.combine(TODAY - timedelta(days=9), datetime.min.time(), UTC)
    assert "endpoint level" in idle.evidence
    beat = verdicts["ep-beat"]
    assert beat.status is Status.IDLE
    assert "heartbeat and no prediction" in beat.evidence
    assert verdicts["ep-cpu"].status is Status.IDLE
    assert "cpu/utilization" in verdicts["ep-cpu"].evidence
    assert verdicts["ep-none"].status is Status.UNKNOWN
    assert verdicts["ep-multi"].status is Status.ACTIVE


def test_metrics_cost_one_query_per_metric_type(gcp_env: GcpDevServer) -> None:
    for k in range(12):
        endpoint(gcp_env, f"e{k}", model("a"))
        metric(gcp_env, REPLICAS_METRIC, f"e{k}", days(10, 1))
    endpoint(gcp_env, "cpu-only", model("a"))
    metric(gcp_env, CPU_METRIC, "cpu-only", days(10, 1.0))
    found = scan(LOC, (LOC,))
    gcp_env.reset_calls()
    judge(found)
    assert gcp_env.calls["monitoring.timeSeries.list"] == 3  # predictions, replicas, cpu
    gcp_env.reset_calls()
    judge({k: v for k, v in found.items() if k != "ep-cpu-only"})
    assert gcp_env.calls["monitoring.timeSeries.list"] == 2  # no CPU query needed


# --- stop / restore --------------------------------------------------------------------------


def test_stop_undeploys_every_model_and_restore_puts_them_and_the_split_back(
    gcp_env: GcpDevServer,
) -> None:
    name = endpoint(gcp_env, "1", model("a"), model("b", gpu=False))
    before = gcp_env.endpoint(PROJECT, LOC, "1")
    assert before is not None
    old = [m["id"] for m in before["deployedModels"]]
    session = scope().session
    session.patch(
        f"{gcp_env.url}/v1/{name}", params={"updateMask": "traffic_split"},
        json={"trafficSplit": {old[0]: 70, old[1]: 30}},
    ).raise_for_status()  # fmt: skip
    resource = scan(LOC, (LOC,))["ep-1"]
    stopper = VertexEndpointStopper(scope(LOC, (LOC,)))
    result = stop_now(stopper, resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    after = gcp_env.endpoint(PROJECT, LOC, "1")
    assert after is not None
    assert not after.get("deployedModels")
    recipe = result.restore
    assert recipe is not None
    assert recipe["traffic_split"] == {old[0]: 70, old[1]: 30}
    spec = recipe["deployed_models"][0]["spec"]
    assert spec["dedicatedResources"]["machineSpec"]["acceleratorType"] == "NVIDIA_TESLA_T4"
    assert spec["dedicatedResources"]["autoscalingMetricSpecs"][0]["target"] == 70
    assert spec["serviceAccount"].startswith("serving@")
    assert "id" not in spec
    assert gcp_env.calls["aiplatform.endpoints.undeployModel"] == 2
    assert gcp_env.calls["aiplatform.operations.get"] >= 2
    # a second stop finds nothing deployed
    assert stop_now(stopper, resource).outcome is StopOutcome.ALREADY_STOPPED

    message = stopper.restore(recipe)
    restored = gcp_env.endpoint(PROJECT, LOC, "1")
    assert restored is not None
    new = {m["displayName"]: m["id"] for m in restored["deployedModels"]}
    assert set(new) == {"a", "b"}
    assert not set(new.values()) & set(old)
    assert restored["trafficSplit"] == {new["a"]: 70, new["b"]: 30}
    by_name = {m["displayName"]: m for m in restored["deployedModels"]}
    assert by_name["a"]["dedicatedResources"]["maxReplicaCount"] == 3
    assert by_name["a"]["modelVersionId"] == "2"
    assert f"{old[0]} -> {new['a']}" in message
    assert gcp_env.calls["aiplatform.endpoints.patch"] == 2  # ours above, and restore's


def test_an_undeploy_ending_in_error_is_failed_with_its_recipe(gcp_env: GcpDevServer) -> None:
    name = endpoint(gcp_env, "1", model("a"))
    gcp_env.fail_next_operation(name, code="INTERNAL", message="undeploy broke")
    result = stop_now(VertexEndpointStopper(scope()), scan(LOC, (LOC,))["ep-1"])
    assert result.outcome is StopOutcome.FAILED
    assert "undeploy broke" in result.message
    assert result.restore is not None
    assert result.restore["endpoint"] == name


def test_an_endpoint_deleted_between_scan_and_stop_is_not_found(gcp_env: GcpDevServer) -> None:
    endpoint(gcp_env, "1", model("a"))
    resource = scan(LOC, (LOC,))["ep-1"]
    gcp_env.delete_endpoint(PROJECT, LOC, "1")
    result = stop_now(VertexEndpointStopper(scope()), resource)
    assert result.outcome is StopOutcome.NOT_FOUND
    assert gcp_env.calls["aiplatform.endpoints.undeployModel"] == 0


def test_undeploy_retries_a_503_and_a_429(gcp_env: GcpDevServer) -> None:
    endpoint(gcp_env, "1", model("a"))
    resource = scan(LOC, (LOC,))["ep-1"]
    gcp_env.outage("aiplatform.endpoints.undeployModel", status=503)
    gcp_env.rate_limit("aiplatform.endpoints.get", retry_after=1)
    result = stop_now(VertexEndpointStopper(scope()), resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert gcp_env.calls["aiplatform.endpoints.undeployModel"] == 2
    assert gcp_env.calls["aiplatform.endpoints.get"] == 2


def test_restore_retries_the_traffic_split_patch_on_429_and_503(gcp_env: GcpDevServer) -> None:
    name = endpoint(gcp_env, "1", model("a"), model("b", gpu=False))
    before = gcp_env.endpoint(PROJECT, LOC, "1")
    assert before is not None
    old = [m["id"] for m in before["deployedModels"]]
    scope().session.patch(
        f"{gcp_env.url}/v1/{name}", params={"updateMask": "traffic_split"},
        json={"trafficSplit": {old[0]: 60, old[1]: 40}},
    ).raise_for_status()  # fmt: skip
    gcp_env.reset_calls()
    stopper = VertexEndpointStopper(scope(LOC, (LOC,)))
    result = stop_now(stopper, scan(LOC, (LOC,))["ep-1"])
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert result.restore is not None
    gcp_env.rate_limit("aiplatform.endpoints.patch", retry_after=1)
    gcp_env.outage("aiplatform.endpoints.patch", status=503)
    stopper.restore(result.restore)
    restored = gcp_env.endpoint(PROJECT, LOC, "1")
    assert restored is not None
    new = {m["displayName"]: m["id"] for m in restored["deployedModels"]}
    assert restored["trafficSplit"] == {new["a"]: 60, new["b"]: 40}
    assert gcp_env.calls["aiplatform.endpoints.patch"] == 3  # 429, 503, then done
