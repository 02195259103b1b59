"""`azure.ml-compute` through azure-mgmt-core's ARM pipeline client against the local ARM: the
scan (running compute instances only, `idleTimeBeforeShutdown` and the advice), the
`lastOperation` evidence, stop and restore, and the faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.integration.azure.conftest import SUBSCRIPTION

from janitor.clouds.azure.arm import ArmApi
from janitor.clouds.azure.ml_compute import MlComputeProbe, MlComputeScanner, MlComputeStopper
from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.clouds.azure.session import load_credentials
from janitor.clouds.base import RestoreFailed, stop_now
from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService
from janitor.model import Confidence, Resource, Status, StopOutcome, Window

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
CREATED = NOW - timedelta(days=120)
MUTATING = (
    "OnlineEndpoints_CreateOrUpdate",
    "OnlineEndpoints_Update",
    "OnlineDeployments_CreateOrUpdate",
    "OnlineDeployments_Delete",
    "Compute_Stop",
    "Compute_Start",
)


@pytest.fixture
def ml(azure_env: AzureDevServer) -> MachineLearningService:
    return azure_env.mount(MachineLearningService)


@pytest.fixture
def scope(azure_env: AzureDevServer) -> AzureScope:
    return AzureScope(SUBSCRIPTION, ALL_REGIONS, load_credentials())


def scanned(scope: AzureScope) -> dict[str, Resource]:
    return {r.name: r for r in MlComputeScanner(scope, ArmApi(scope.credentials)).scan()}


def seed(ml: MachineLearningService) -> str:
    ws_id = ml.add_workspace(SUBSCRIPTION, "ws")
    ml.add_compute_instance(ws_id, "lazy-ci", created_at=CREATED, tags={"owner": "alice"})
    ml.add_compute_instance(
        ws_id, "tidy-ci", idle_time_before_shutdown="PT60M", created_at=CREATED,
        last_operation=("Start", NOW - timedelta(days=40), "Schedule"),
    )  # fmt: skip
    ml.add_compute_instance(
        ws_id, "fresh-ci", created_at=CREATED,
        last_operation=("Restart", NOW - timedelta(hours=3), "User"),
    )  # fmt: skip
    ml.add_compute_instance(ws_id, "off-ci", state="Stopped", created_at=CREATED)
    ml.add_cluster(ws_id, "cpu-cluster", nodes=2)
    return ws_id


def test_scan_lists_running_compute_instances_with_advice(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ws_id = seed(ml)
    found = scanned(scope)
    assert set(found) == {"lazy-ci", "tidy-ci", "fresh-ci"}  # no stopped one, no cluster
    lazy, tidy = found["lazy-ci"], found["tidy-ci"]
    assert lazy.ref.id == f"{ws_id}/computes/lazy-ci"
    assert lazy.state == "Running"
    assert lazy.tags == {"owner": "alice"}
    assert lazy.instance_type == "STANDARD_NC4AS_T4_V3"
    assert lazy.details["units"] == [
        {"service": "azure-ml", "sku": "Standard_NC4as_T4_v3", "count": 1}
    ]
    assert lazy.advice is not None
    assert "idleTimeBeforeShutdown" in lazy.advice
    assert lazy.details["idle_time_before_shutdown"] is None
    assert tidy.advice is None
    assert tidy.details["idle_time_before_shutdown"] == "PT60M"
    assert tidy.details["last_operation"]["trigger"] == "Schedule"
    assert azure_env.calls["Compute_List"] == 1


def test_last_operation_is_the_evidence_labelled_low(
    ml: MachineLearningService, scope: AzureScope
) -> None:
    seed(ml)
    found = scanned(scope)
    verdicts = MlComputeProbe().usage(
        list(found.values()), Window.ending(NOW, timedelta(days=74)), NOW
    )
    lazy = verdicts[found["lazy-ci"].ref.key]
    assert lazy.status is Status.IDLE
    assert lazy.confidence is Confidence.LOW
    assert lazy.idle_since == CREATED
    assert "lastOperation Create by User" in lazy.evidence
    assert "no kernel" in lazy.evidence
    tidy = verdicts[found["tidy-ci"].ref.key]
    assert tidy.status is Status.IDLE
    assert tidy.idle_since == NOW - timedelta(days=40)
    assert verdicts[found["fresh-ci"].ref.key].status is Status.ACTIVE


def test_no_last_operation_is_unknown(ml: MachineLearningService, scope: AzureScope) -> None:
    ws_id = ml.add_workspace(SUBSCRIPTION, "ws")
    compute_id = ml.add_compute_instance(ws_id, "ci", created_at=CREATED)
    ml.clear_last_operation(compute_id)
    (resource,) = scanned(scope).values()
    verdict = MlComputeProbe().usage([resource], Window.ending(NOW, timedelta(days=74)), NOW)
    assert verdict[resource.ref.key].status is Status.UNKNOWN


def test_stop_then_restore(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    ws_id = seed(ml)
    compute_id = f"{ws_id}/computes/lazy-ci"
    stopper = MlComputeStopper(scope, ArmApi(scope.credentials))
    resource = scanned(scope)["lazy-ci"]
    result = stop_now(stopper, resource)
    assert result.outcome is StopOutcome.STOPPED, result.message
    compute = ml.compute(compute_id)
    assert compute is not None
    assert compute["properties"]["properties"]["state"] == "Stopped"
    assert compute["properties"]["properties"]["lastOperation"]["operationName"] == "Stop"
    assert stop_now(stopper, resource).outcome is StopOutcome.ALREADY_STOPPED
    assert result.restore is not None
    assert "started" in stopper.restore(result.restore)
    assert ml.compute_history(compute_id) == ["stop", "start"]
    running = ml.compute(compute_id)
    assert running is not None
    assert running["properties"]["properties"]["state"] == "Running"
    assert "already Running" in stopper.restore(result.restore)
    # No side mutations: nothing but the stop and the start was written.
    writes = {op for op in MUTATING if azure_env.calls[op]}
    assert writes == {"Compute_Stop", "Compute_Start"}


def test_a_failed_stop_is_reported_and_the_instance_keeps_running(
    ml: MachineLearningService, scope: AzureScope
) -> None:
    ws_id = seed(ml)
    compute_id = f"{ws_id}/computes/lazy-ci"
    ml.fail_next_operation(compute_id)
    result = stop_now(MlComputeStopper(scope, ArmApi(scope.credentials)), scanned(scope)["lazy-ci"])
    assert result.outcome is StopOutcome.FAILED
    assert "InternalServerError" in result.message
    compute = ml.compute(compute_id)
    assert compute is not None
    assert compute["properties"]["properties"]["state"] == "Running"


def test_an_instance_deleted_before_the_stop_is_not_found(
    ml: MachineLearningService, scope: AzureScope
) -> None:
    ws_id = seed(ml)
    resource = scanned(scope)["lazy-ci"]
    ml.delete_compute(f"{ws_id}/computes/lazy-ci")
    stopper = MlComputeStopper(scope, ArmApi(scope.credentials))
    assert stop_now(stopper, resource).outcome is StopOutcome.NOT_FOUND
    with pytest.raises(RestoreFailed, match="no longer exists"):
        stopper.restore({"compute_id": resource.ref.id, "name": "lazy-ci"})


def test_rate_limited_listing_is_retried(
    azure_env: AzureDevServer, ml: MachineLearningService, scope: AzureScope
) -> None:
    seed(ml)
    azure_env.rate_limit("Compute_List", times=2, retry_after=1)
    assert "lazy-ci" in scanned(scope)
    assert azure_env.calls["Compute_List"] == 3
