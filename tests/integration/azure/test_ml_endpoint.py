"""`azure.ml-endpoint` through the real Azure clients (azure-mgmt-core's ARM pipeline client,
azure-mgmt-monitor) against the local ARM: scan, the request and heartbeat evidence, the stop
(traffic to zero, deployments deleted, endpoint kept) and its restore, and the faults."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from tests.integration.azure.conftest import SUBSCRIPTION

from janitor.clouds.azure import ml_endpoint
from janitor.clouds.azure.arm import ArmApi
from janitor.clouds.azure.ml_endpoint import (
    DEPLOYMENT_NAMESPACE,
    ENDPOINT_NAMESPACE,
    REQUESTS_METRIC,
    MlEndpointProbe,
    MlEndpointScanner,
    MlEndpointStopper,
)
from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.clouds.azure.session import load_credentials
from janitor.clouds.base import stop_now
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService
from janitor.model import Resource, Status, StopOutcome, Window

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
CREATED = NOW - timedelta(days=120)
WINDOW = Window.ending(NOW, timedelta(days=74))


def days(value: float, *, back: int = 80, ahead: int = 2) -> dict[date, float]:
    return {(NOW - timedelta(days=k)).date(): value for k in range(-ahead, back)}


@pytest.fixture
def ml(azure_env: AzureDevServer) -> MachineLearningService:
    return azure_env.mount(MachineLearningService)


@pytest.fixture
def scope(azure_env: AzureDevServer) -> AzureScope:
    return AzureScope(SUBSCRIPTION, ALL_REGIONS, load_credentials())


def seed_endpoint(
    server: AzureDevServer,
    ml: MachineLearningService,
    name: str,
    *,
    requests: float | None,
    heartbeat: bool = True,
    ws_name: str = "ws",
    location: str = "eastus",
    mirror: Mapping[str, int] | None = None,
) -> str:
    ws_id = ml.add_workspace(SUBSCRIPTION, ws_name, location=location)
    ep_id = ml.add_endpoint(
        ws_id,
        name,
        deployments=[
            {
                "name": "blue",
                "instance_type": "Standard_NC4as_T4_v3",
                "capacity": 2,
                "environment_variables": {"WORKERS": "2"},
                "tags": {"model": "v1"},
            },
            {"name": "green", "instance_type": "Standard_DS3_v2", "capacity": 1},
        ],  # fmt: skip
        traffic={"blue": 90, "green": 10} if not mirror else {"blue": 100, "green": 0},
        mirror_traffic=mirror,
        tags={"owner": "alice"},
        created_at=CREATED,
    )
    for deployment in ("blue", "green"):
        if requests is not None:
            server.monitor.add_daily(
                ep_id, REQUESTS_METRIC, days(requests), namespace=ENDPOINT_NAMESPACE,
                region=location, dimensions={"deployment": deployment},
            )  # fmt: skip
        if heartbeat:
            server.monitor.add_daily(
                f"{ep_id}/deployments/{deployment}", "DeploymentCapacity", days(1.0),
                namespace=DEPLOYMENT_NAMESPACE, region=location,
            )  # fmt: skip
    return ep_id


def scanned(scope: AzureScope) -> dict[str, Resource]:
    return {r.name: r for r in MlEndpointScanner(scope, ArmApi(scope.credentials)).scan()}


def test_scan_finds_each_managed_endpoint_with_deployments_once(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep-idle", requests=0.0)
    ws_id = ml.add_workspace(SUBSCRIPTION, "ws2", location="westeurope")
    ml.add_endpoint(ws_id, "empty", created_at=CREATED)  # no deployment: nothing to save
    found = scanned(scope)
    assert set(found) == {"ep-idle"}
    endpoint = found["ep-idle"]
    assert endpoint.ref.id == ep_id
    assert endpoint.ref.region == "eastus"
    assert endpoint.state == "Deployed"
    assert endpoint.tags == {"owner": "alice"}
    assert endpoint.instance_count == 3
    assert endpoint.details["traffic"] == {"blue": 90, "green": 10}
    assert [d["name"] for d in endpoint.details["deployments"]] == ["blue", "green"]
    assert endpoint.details["units"] == [
        {"service": "azure-ml", "sku": "Standard_NC4as_T4_v3", "count": 2},
        {"service": "azure-ml", "sku": "Standard_DS3_v2", "count": 1},
    ]
    assert azure_env.calls["Workspaces_ListBySubscription"] == 1


def test_a_regional_scope_lists_only_its_region(
    azure_env: AzureDevServer, ml: MachineLearningService
) -> None:
    seed_endpoint(azure_env, ml, "east", requests=0.0)
    seed_endpoint(azure_env, ml, "west", requests=0.0, ws_name="wsw", location="westeurope")
    regional = AzureScope(SUBSCRIPTION, "westeurope", load_credentials(), ("westeurope",))
    assert set(scanned(regional)) == {"west"}
    filtered = AzureScope(SUBSCRIPTION, ALL_REGIONS, load_credentials(), ("eastus",))
    assert set(scanned(filtered)) == {"east"}


def test_requests_heartbeat_and_no_datapoints(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    seed_endpoint(azure_env, ml, "busy", requests=300.0, ws_name="w1")
    seed_endpoint(azure_env, ml, "quiet", requests=None, ws_name="w2")  # heartbeat, no requests
    seed_endpoint(azure_env, ml, "dark", requests=None, heartbeat=False, ws_name="w3")
    found = scanned(scope)
    azure_env.reset_calls()
    verdicts = MlEndpointProbe(scope, thresholds={"requests_per_day": 0.0}).usage(
        list(found.values()), WINDOW, NOW
    )
    busy, quiet, dark = (verdicts[found[n].ref.key] for n in ("busy", "quiet", "dark"))
    assert busy.status is Status.ACTIVE
    assert "600 requests" in busy.evidence  # two deployments x 300, summed per day
    assert quiet.status is Status.IDLE
    assert "heartbeat" in quiet.evidence
    assert dark.status is Status.UNKNOWN  # metrics with no datapoints: unknown, never idle
    assert "no RequestsPerMinute" in dark.evidence
    # One Metrics - List per endpoint for requests; the heartbeat only where requests do not
    # already show the endpoint active (one per deployment); never the subscription scope.
    assert azure_env.calls["Metrics_List"] == 3 + 2 * 2
    assert azure_env.calls["Metrics_ListAtSubscriptionScope"] == 0


def test_the_subscription_scope_refuses_online_endpoint_metrics(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    seed_endpoint(azure_env, ml, "ep", requests=5.0)
    start = NOW - timedelta(days=3)
    with pytest.raises(HttpResponseError) as caught:
        scope.monitor.metrics.list_at_subscription_scope(
            "eastus",
            timespan=f"{start:%Y-%m-%dT%H:%M:%SZ}/{NOW:%Y-%m-%dT%H:%M:%SZ}",
            interval="P1D",
            metricnames=REQUESTS_METRIC,
            aggregation="Total",
            metricnamespace=ENDPOINT_NAMESPACE,
            filter="Microsoft.ResourceId eq '*'",
        )
    assert caught.value.status_code == 400
    assert "not enabled for Cross Resource metrics" in str(caught.value)  # main's devserver rule


def test_stop_zeroes_traffic_deletes_deployments_keeps_endpoint_and_restore_undoes_it(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0)
    before = ml.deployments(ep_id)
    endpoint = scanned(scope)["ep"]
    stopper = MlEndpointStopper(scope, ArmApi(scope.credentials))
    result = stop_now(stopper, endpoint)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert ml.deployments(ep_id) == {}
    kept = ml.endpoint(ep_id)
    assert kept is not None
    assert kept["properties"]["traffic"] == {"blue": 0, "green": 0}
    assert azure_env.calls["OnlineEndpoints_Update"] == 0  # traffic moves only with a PUT
    assert azure_env.calls["OnlineEndpoints_CreateOrUpdate"] == 1
    assert azure_env.calls["OnlineDeployments_Delete"] == 2
    assert result.restore is not None
    specs = {d["name"]: d["spec"] for d in result.restore["deployments"]}
    blue = specs["blue"]
    assert blue["sku"]["capacity"] == 2
    assert blue["tags"] == {"model": "v1"}
    assert blue["properties"]["instanceType"] == "Standard_NC4as_T4_v3"
    assert blue["properties"]["environmentVariables"] == {"WORKERS": "2"}
    for key in ("model", "codeConfiguration", "environmentId", "scaleSettings",
                "requestSettings", "livenessProbe", "readinessProbe"):  # fmt: skip
        assert blue["properties"][key] == before["blue"]["properties"][key]

    assert stop_now(stopper, endpoint).outcome is StopOutcome.ALREADY_STOPPED

    message = stopper.restore(result.restore)
    assert "blue" in message
    after = ml.deployments(ep_id)
    assert set(after) == {"blue", "green"}
    for name in ("blue", "green"):
        for key in ("instanceType", "model", "codeConfiguration", "environmentVariables"):
            assert after[name]["properties"][key] == before[name]["properties"][key]
        assert after[name]["sku"] == before[name]["sku"]
        assert after[name]["tags"] == before[name]["tags"]
    restored = ml.endpoint(ep_id)
    assert restored is not None
    assert restored["properties"]["traffic"] == {"blue": 90, "green": 10}
    # No side mutations: no tag or other update, only the traffic PUTs, the deletes and the
    # recreations.
    assert azure_env.calls["OnlineEndpoints_Update"] == 0
    assert azure_env.calls["OnlineEndpoints_CreateOrUpdate"] == 2
    assert azure_env.calls["OnlineDeployments_CreateOrUpdate"] == 2
    assert restored["tags"] == kept["tags"] == {"owner": "alice"}
    # Restoring again is harmless: nothing missing, traffic put back as it is.
    assert "none missing" in stopper.restore(result.restore)


def test_mirror_traffic_is_recorded_and_put_back(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0, mirror={"green": 20})
    stopper = MlEndpointStopper(scope, ArmApi(scope.credentials))
    result = stop_now(stopper, scanned(scope)["ep"])
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert result.restore is not None
    assert result.restore["mirror_traffic"] == {"green": 20}
    stopper.restore(result.restore)
    restored = ml.endpoint(ep_id)
    assert restored is not None
    assert restored["properties"]["mirrorTraffic"] == {"green": 20}
    assert restored["properties"]["traffic"] == {"blue": 100, "green": 0}


def test_a_deployment_recreated_between_scan_and_stop_is_refused(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0)
    endpoint = scanned(scope)["ep"]
    ml.recreate_deployment(ep_id, "green")
    plan = MlEndpointStopper(scope, ArmApi(scope.credentials)).plan(endpoint)
    assert plan.refusal is not None
    assert plan.refusal.outcome is StopOutcome.REFUSED_STATE
    assert "green was recreated" in plan.refusal.message
    assert set(ml.deployments(ep_id)) == {"blue", "green"}
    assert azure_env.calls["OnlineDeployments_Delete"] == 0
    assert azure_env.calls["OnlineEndpoints_CreateOrUpdate"] == 0


def test_a_deployment_recreated_between_plan_and_act_is_refused_without_a_write(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0)
    stopper = MlEndpointStopper(scope, ArmApi(scope.credentials))
    plan = stopper.plan(scanned(scope)["ep"])
    assert plan.refusal is None
    ml.recreate_deployment(ep_id, "blue")
    result = stopper.act(plan)
    assert result.outcome is StopOutcome.REFUSED_STATE
    assert result.restore is None
    endpoint = ml.endpoint(ep_id)
    assert endpoint is not None
    assert endpoint["properties"]["traffic"] == {"blue": 90, "green": 10}
    assert set(ml.deployments(ep_id)) == {"blue", "green"}


def test_an_endpoint_being_updated_is_not_stopped(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0)
    endpoint = scanned(scope)["ep"]
    api = ArmApi(scope.credentials)
    body = ml.deployments(ep_id)["green"]
    api.begin("PUT", f"{ep_id}/deployments/green", body)  # someone scales it, still running
    plan = MlEndpointStopper(scope, api).plan(endpoint)
    assert plan.refusal is not None
    assert plan.refusal.outcome is StopOutcome.REFUSED_STATE
    assert "green of endpoint ep is Updating" in plan.refusal.message


def test_rate_limited_calls_are_retried(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ep_id = seed_endpoint(azure_env, ml, "ep", requests=0.0)
    azure_env.rate_limit("OnlineEndpoints_List", times=1, retry_after=1)
    azure_env.rate_limit("OnlineDeployments_Delete", times=1, retry_after=1)
    endpoint = scanned(scope)["ep"]
    assert azure_env.calls["OnlineEndpoints_List"] == 2
    result = stop_now(MlEndpointStopper(scope, ArmApi(scope.credentials)), endpoint)
    assert result.outcome is StopOutcome.STOPPED, result.message
    assert ml.deployments(ep_id) == {}
    assert azure_env.calls["OnlineDeployments_Delete"] == 3  # one 429, then two deletes


def test_a_subscription_without_permission_fails_the_scan(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    seed_endpoint(azure_env, ml, "ep", requests=0.0)
    azure_env.deny_subscription(SUBSCRIPTION)
    with pytest.raises(HttpResponseError) as caught:
        scanned(scope)
    assert caught.value.status_code == 403


def test_restore_of_a_deleted_endpoint_fails_clearly(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    recipe: dict[str, Any] = {
        "kind": ml_endpoint.KIND,
        "endpoint_id": f"{ml.add_workspace(SUBSCRIPTION, 'ws')}/onlineEndpoints/gone",
        "name": "gone",
        "traffic": {},
        "mirror_traffic": {},
        "deployments": [],
    }
    from janitor.clouds.base import RestoreFailed

    with pytest.raises(RestoreFailed, match="no longer exists"):
        MlEndpointStopper(scope, ArmApi(scope.credentials)).restore(recipe)
