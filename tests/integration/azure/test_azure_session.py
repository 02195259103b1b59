"""Azure credentials and clients: only `DefaultAzureCredential`, the ARM endpoint and token
scope from the environment, bounded retries honouring Retry-After, and LRO polling at the
service's interval (never azure-core's 30-second default)."""

from __future__ import annotations

import threading

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from tests.integration.azure.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION

from janitor.clouds.azure import session
from janitor.clouds.errors import scope_error_message
from janitor.devserver.azure import AzureDevServer, TestCa

pytestmark = pytest.mark.integration

RG = "ml-rg"


def test_no_credentials_at_all(no_azure_credentials: None) -> None:
    with pytest.raises(session.NoCredentials, match="no Azure credentials"):
        session.load_credentials()


def test_endpoint_and_scope_come_from_the_environment(
    no_azure_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert session.arm_endpoint() == "https://management.azure.com"
    assert session.token_scope() == "https://management.azure.com/.default"
    monkeypatch.setenv("JANITOR_AZURE_ARM_ENDPOINT", "https://management.usgovcloudapi.net/")
    assert session.arm_endpoint() == "https://management.usgovcloudapi.net"
    assert session.token_scope() == "https://management.usgovcloudapi.net/.default"
    monkeypatch.setenv("JANITOR_AZURE_ARM_AUDIENCE", "https://management.core.usgovcloudapi.net/")
    assert session.token_scope() == "https://management.core.usgovcloudapi.net/.default"


def test_the_token_is_asked_for_the_audience(
    azure_env: AzureDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANITOR_AZURE_ARM_AUDIENCE", "https://arm.example.test")
    credentials = session.load_credentials()
    assert credentials.scope == "https://arm.example.test/.default"
    assert azure_env.token_audiences() == ["https://arm.example.test"]


def test_subscriptions_are_listed_through_the_credential(azure_env: AzureDevServer) -> None:
    azure_env.add_subscription(SUBSCRIPTION)
    azure_env.add_subscription(OTHER_SUBSCRIPTION)
    readable, skipped = session.list_subscriptions(session.load_credentials())
    assert sorted(readable) == [SUBSCRIPTION, OTHER_SUBSCRIPTION]
    assert skipped == []


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """janitor's own backoff base, shortened: the tests wait for Retry-After, not backoff."""
    monkeypatch.setattr(session, "BACKOFF_SECONDS", 0.01)


def test_429_with_retry_after_and_503_are_retried(
    azure_env: AzureDevServer, quick_backoff: None
) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.rate_limit("VirtualMachines_ListAll", times=1, retry_after=1)
    azure_env.outage("VirtualMachines_ListAll", times=1)
    compute = session.compute_client(session.load_credentials(), SUBSCRIPTION)
    assert [vm.name for vm in compute.virtual_machines.list_all()] == ["vm"]
    assert azure_env.calls["VirtualMachines_ListAll"] == 3


def test_a_rate_limited_deallocate_is_retried(azure_env: AzureDevServer) -> None:
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    azure_env.rate_limit("VirtualMachines_Deallocate", times=1, retry_after=1)
    compute = session.compute_client(session.load_credentials(), SUBSCRIPTION)
    compute.virtual_machines.begin_deallocate(RG, "vm").result()
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "deallocated"
    assert azure_env.calls["VirtualMachines_Deallocate"] == 2


def test_retries_are_bounded(azure_env: AzureDevServer, quick_backoff: None) -> None:
    azure_env.outage("VirtualMachines_ListAll", times=50)
    compute = session.compute_client(session.load_credentials(), SUBSCRIPTION)
    with pytest.raises(HttpResponseError) as failed:
        list(compute.virtual_machines.list_all())
    assert failed.value.status_code == 503
    assert azure_env.calls["VirtualMachines_ListAll"] == session.MAX_ATTEMPTS
    assert scope_error_message(failed.value) == (
        "503 ServiceUnavailable: The service is temporarily unavailable. Please try again later."
    )


def test_a_zero_retry_after_polls_at_janitors_interval_not_the_sdk_default(
    no_azure_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """azure-core reads `Retry-After: 0` as "none" and would wait its 30 s default between
    polls; the clients janitor builds poll at POLL_SECONDS instead. The operation must finish
    well within the first 30-second wait (a guard, not a measurement)."""
    with AzureDevServer(tls=TestCa.generate(f"{tmp_path}/tls"), retry_after=0) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.compute.add_vm(SUBSCRIPTION, "vm")
        compute = session.compute_client(session.load_credentials(), SUBSCRIPTION)
        poller = compute.virtual_machines.begin_deallocate(RG, "vm")
        waiter = threading.Thread(target=poller.result, daemon=True)
        waiter.start()
        waiter.join(timeout=20)
        assert not waiter.is_alive(), "polling waited the SDK's 30 s default"
        assert server.compute.power_state(SUBSCRIPTION, RG, "vm") == "deallocated"


def test_the_arm_pipeline_client_calls_and_polls_like_the_sdks(
    azure_env: AzureDevServer, quick_backoff: None
) -> None:
    """For ARM operations without a management SDK call: the same credential, retries and
    long-running-operation polling (here on Compute paths the server serves)."""
    azure_env.compute.add_vm(SUBSCRIPTION, "vm")
    client = session.arm_pipeline_client(session.load_credentials())
    vm_path = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
        "Microsoft.Compute/virtualMachines/vm"
    )
    azure_env.rate_limit("VirtualMachines_Get", times=1, retry_after=1)
    got = session.arm_request(client, "GET", vm_path, api_version="2024-07-01")
    assert got.json()["name"] == "vm"
    assert azure_env.calls["VirtualMachines_Get"] == 2  # the 429 was retried
    poller = session.arm_begin(client, "POST", f"{vm_path}/deallocate", api_version="2024-07-01")
    assert poller.result() is None
    assert azure_env.compute.power_state(SUBSCRIPTION, RG, "vm") == "deallocated"
    assert azure_env.calls["AsyncOperation_Get"] == 2
    with pytest.raises(ResourceNotFoundError):
        session.arm_request(client, "GET", vm_path + "-gone", api_version="2024-07-01")
    azure_env.compute.fail_next_operation(SUBSCRIPTION, RG, "vm", code="Conflict")
    failing = session.arm_begin(client, "POST", f"{vm_path}/start", api_version="2024-07-01")
    with pytest.raises(HttpResponseError, match="Conflict"):
        failing.result()
