"""Azure credentials, the Resource Manager endpoint and clients, with bounded retries.

Credentials come only from `DefaultAzureCredential` (environment service principal, workload
identity, managed identity, Azure CLI...). No credential in the chain can give a token:
`NoCredentials`, and Azure is skipped (or, for subscriptions a policy names, each is an error).

`JANITOR_AZURE_ARM_ENDPOINT` replaces the Resource Manager URL (sovereign clouds, a private
endpoint, the local dev server in tests); the token scope is `<endpoint>/.default` unless
`JANITOR_AZURE_ARM_AUDIENCE` names another audience (e.g. a sovereign cloud whose tokens are
issued for `https://management.core.usgovcloudapi.net/`).

Every client is built with the same options (`client_options`):

* retries: azure-core's `RetryPolicy`, bounded (`MAX_ATTEMPTS` in all), retrying 408/429/5xx and
  honouring `Retry-After` (capped at `MAX_RETRY_AFTER_SECONDS`), with exponential backoff;
* long-running operations are polled with the interval the service sends in `Retry-After`. A
  `Retry-After: 0` (or none) would make azure-core wait its `polling_interval`, 30 seconds by
  default: janitor sets it to `POLL_SECONDS`, so the service's interval is used when it gives
  one and `POLL_SECONDS` otherwise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.identity import DefaultAzureCredential

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineResponse
    from azure.core.polling import LROPoller
    from azure.core.rest import HttpRequest, HttpResponse
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.monitor import MonitorManagementClient
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    ArmClient = ARMPipelineClient[HttpRequest, HttpResponse]

ENDPOINT_ENV = "JANITOR_AZURE_ARM_ENDPOINT"
AUDIENCE_ENV = "JANITOR_AZURE_ARM_AUDIENCE"
DEFAULT_ENDPOINT = "https://management.azure.com"

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 60.0
POLL_SECONDS = 1.0  # LRO poll interval when the service sends no (or a zero) Retry-After


class NoCredentials(Exception):
    """No credential of the `DefaultAzureCredential` chain could give a token."""


def arm_endpoint() -> str:
    """The Resource Manager base URL, without a trailing slash."""
    value = os.environ.get(ENDPOINT_ENV, "").strip().rstrip("/")
    return value or DEFAULT_ENDPOINT


def token_scope(endpoint: str | None = None) -> str:
    """`JANITOR_AZURE_ARM_AUDIENCE` (as a `/.default` scope), else `<endpoint>/.default`."""
    audience = os.environ.get(AUDIENCE_ENV, "").strip()
    if audience:
        return audience if audience.endswith("/.default") else f"{audience.rstrip('/')}/.default"
    return f"{(endpoint or arm_endpoint()).rstrip('/')}/.default"


@dataclass(frozen=True)
class AzureCredentials:
    credential: TokenCredential = field(repr=False)
    endpoint: str
    scope: str


def load_credentials() -> AzureCredentials:
    """`DefaultAzureCredential`, checked by getting a token for the ARM scope once (the token is
    cached by the credential); `NoCredentials` when the chain has none."""
    endpoint = arm_endpoint()
    scope = token_scope(endpoint)
    # azure-identity logs every failed credential of the chain as a multi-line WARNING; janitor
    # reports the outcome itself, in one line (skipped, or the scope's error).
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    credential = DefaultAzureCredential()
    # The chain logs a multi-line warning when no credential works; the skipped line says it.
    identity_log = logging.getLogger("azure.identity")
    level = identity_log.level
    identity_log.setLevel(logging.ERROR)
    try:
        credential.get_token(scope)
    except ClientAuthenticationError as exc:
        first = (exc.message or str(exc)).strip().splitlines()
        raise NoCredentials(
            f"no Azure credentials ({first[0] if first else 'DefaultAzureCredential failed'})"
        ) from exc
    finally:
        identity_log.setLevel(level)
    return AzureCredentials(credential, endpoint, scope)


class _CappedRetry(RetryPolicy[Any, Any]):
    """azure-core's retry policy with the server's Retry-After capped."""

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_policy(attempts: int = MAX_ATTEMPTS) -> RetryPolicy[Any, Any]:
    return _CappedRetry(
        retry_total=attempts - 1,
        retry_connect=2,
        retry_read=0,
        retry_status=attempts - 1,
        retry_backoff_factor=BACKOFF_SECONDS,
        retry_backoff_max=MAX_BACKOFF_SECONDS,
    )


def client_options(credentials: AzureCredentials) -> dict[str, Any]:
    """The keyword arguments every ARM client of janitor is built with."""
    return {
        "base_url": credentials.endpoint,
        "credential_scopes": [credentials.scope],
        "retry_policy": retry_policy(),
        "polling_interval": POLL_SECONDS,
    }


def subscription_client(credentials: AzureCredentials) -> SubscriptionClient:
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    return SubscriptionClient(credentials.credential, **client_options(credentials))


def compute_client(credentials: AzureCredentials, subscription: str) -> ComputeManagementClient:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        credentials.credential, subscription, **client_options(credentials)
    )


def monitor_client(credentials: AzureCredentials, subscription: str) -> MonitorManagementClient:
    from azure.mgmt.monitor import MonitorManagementClient

    return MonitorManagementClient(
        credentials.credential, subscription, **client_options(credentials)
    )


def arm_pipeline_client(credentials: AzureCredentials) -> ArmClient:
    """azure-mgmt-core's ARM pipeline client with the policies the generated management clients
    use (request id, user agent, redirects, janitor's retry policy, ARM's bearer-token challenge
    policy with the same credential and scope, ARM logging), for ARM operations no management
    SDK serves as janitor needs them. Use it with `arm_request` and `arm_begin`."""
    from azure.core.pipeline import policies
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import (
        ARMAutoResourceProviderRegistrationPolicy,
        ARMChallengeAuthenticationPolicy,
        ARMHttpLoggingPolicy,
    )

    chain: list[Any] = [
        policies.RequestIdPolicy(),
        policies.HeadersPolicy(),
        policies.UserAgentPolicy(sdk_moniker="ml-janitor"),
        policies.ProxyPolicy(),
        policies.ContentDecodePolicy(),
        ARMAutoResourceProviderRegistrationPolicy(),
        policies.RedirectPolicy(),
        retry_policy(),
        ARMChallengeAuthenticationPolicy(credentials.credential, credentials.scope),
        policies.CustomHookPolicy(),
        policies.NetworkTraceLoggingPolicy(),
        policies.DistributedTracingPolicy(),
        ARMHttpLoggingPolicy(),
    ]
    return ARMPipelineClient(base_url=credentials.endpoint, policies=chain)


def _request(client: ArmClient, method: str, path: str, api_version: str, body: Any = None) -> Any:
    from azure.core.rest import HttpRequest

    url = client.format_url(path)
    return HttpRequest(method, url, params={"api-version": api_version}, json=body)


def arm_request(
    client: ArmClient,
    method: str,
    path: str,
    *,
    api_version: str,
    body: Any = None,
) -> HttpResponse:
    """One ARM call (`path` relative to the endpoint, e.g. `/subscriptions/...`); an error
    status raises `HttpResponseError` (`ResourceNotFoundError` for 404) with ARM's error code."""
    from azure.core.exceptions import map_error
    from azure.mgmt.core.exceptions import ARMErrorFormat

    response: HttpResponse = client.send_request(_request(client, method, path, api_version, body))
    if response.status_code >= 400:
        map_error(response.status_code, response, {404: ResourceNotFoundError})
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    return response


def arm_begin(
    client: ArmClient,
    method: str,
    path: str,
    *,
    api_version: str,
    body: Any = None,
) -> LROPoller[Any]:
    """Start an ARM long-running operation and poll it as the management SDKs do (ARMPolling:
    Azure-AsyncOperation, Location, the final GET), at the service's Retry-After with
    janitor's `POLL_SECONDS` floor. `.result()` is the final body (parsed JSON) or None."""
    from azure.core.exceptions import map_error
    from azure.core.polling import LROPoller
    from azure.mgmt.core.exceptions import ARMErrorFormat
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    # `_return_pipeline_response`: azure-core's way to get the PipelineResponse an LROPoller
    # starts from (what the generated clients get from `_pipeline.run`).
    initial: Any = client.send_request(
        _request(client, method, path, api_version, body), _return_pipeline_response=True
    )
    response = initial.http_response
    if response.status_code >= 400:
        map_error(response.status_code, response, {404: ResourceNotFoundError})
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)

    def deserialize(pipeline_response: PipelineResponse[Any, Any]) -> Any:
        final = pipeline_response.http_response
        return final.json() if final.text() else None

    return LROPoller(client, initial, deserialize, ARMPolling(POLL_SECONDS))


# Subscription states that can be read (Disabled and Deleted cannot).
READABLE_STATES = frozenset({"Enabled", "Warned", "PastDue"})


def list_subscriptions(credentials: AzureCredentials) -> tuple[list[str], list[str]]:
    """Every subscription the credential can list: (readable ids, lines for those skipped)."""
    readable: list[str] = []
    skipped: list[str] = []
    for subscription in subscription_client(credentials).subscriptions.list():
        sub_id = str(subscription.subscription_id)
        raw = subscription.state
        state = str(getattr(raw, "value", raw) or "")  # an enum (a str subclass) or a string
        if state and state not in READABLE_STATES:
            skipped.append(f"azure: subscription {sub_id} skipped: it is {state}")
            continue
        readable.append(sub_id)
    return readable, skipped


def one_line(exc: BaseException) -> str:
    """A single line for an Azure error: HTTP status, ARM error code, the message's first line."""
    if isinstance(exc, HttpResponseError):
        code = exc.error.code if exc.error is not None else None
        message = exc.error.message if exc.error is not None else exc.message
        text = (message or "").strip().splitlines()
        status = f"{exc.status_code} " if exc.status_code else ""
        return f"{status}{code or type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
