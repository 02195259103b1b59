"""ARM operations that no management SDK janitor can use offers, through azure-mgmt-core's
`ARMPipelineClient`: the same credential, bearer-token policy, retries and long-running-operation
polling as the SDK clients (`session.client_options`), with no hand-rolled HTTP.

Used for Azure Machine Learning: the stable `azure-mgmt-machinelearningservices` release has no
online endpoints or deployments and its compute model drops `idleTimeBeforeShutdown`, so those
operations are called here by their REST paths at `ML_API_VERSION` (a stable version that has
online endpoints, online deployments and a compute instance's `idleTimeBeforeShutdown`).

Answers are plain JSON mappings; the callers normalise them at their scanner edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.pipeline import policies
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.policies import (
    ARMAutoResourceProviderRegistrationPolicy,
    ARMChallengeAuthenticationPolicy,
    ARMHttpLoggingPolicy,
)
from azure.mgmt.core.polling.arm_polling import ARMPolling

from janitor.clouds.azure.session import POLL_SECONDS, retry_policy

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineResponse

    from janitor.clouds.azure.session import AzureCredentials

ML_API_VERSION = "2024-04-01"

_ERRORS: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
}


def _raise_for(response: Any, ok: tuple[int, ...]) -> None:
    if response.status_code in ok:
        return
    map_error(status_code=response.status_code, response=response, error_map=_ERRORS)
    raise HttpResponseError(response=response, error_format=ARMErrorFormat)


def _json(response: Any) -> Any:
    text = response.text()
    return response.json() if text.strip() else None


class ArmApi:
    """JSON over the ARM pipeline for one credential; paths are ARM ids (`/subscriptions/...`)."""

    def __init__(self, credentials: AzureCredentials, api_version: str = ML_API_VERSION) -> None:
        self._base = credentials.endpoint
        self._api_version = api_version
        kwargs: dict[str, Any] = {}
        self._client: ARMPipelineClient[Any, Any] = ARMPipelineClient(
            base_url=self._base,
            policies=[
                policies.RequestIdPolicy(**kwargs),
                policies.HeadersPolicy(**kwargs),
                policies.UserAgentPolicy(sdk_moniker="janitor-arm", **kwargs),
                policies.ProxyPolicy(**kwargs),
                policies.ContentDecodePolicy(**kwargs),
                ARMAutoResourceProviderRegistrationPolicy(),
                policies.RedirectPolicy(**kwargs),
                retry_policy(),
                ARMChallengeAuthenticationPolicy(credentials.credential, credentials.scope),
                policies.CustomHookPolicy(**kwargs),
                policies.NetworkTraceLoggingPolicy(**kwargs),
                policies.DistributedTracingPolicy(**kwargs),
                policies.SensitiveHeaderCleanupPolicy(**kwargs),
                ARMHttpLoggingPolicy(**kwargs),
            ],
        )

    def _request(
        self, method: str, path_or_url: str, body: Mapping[str, Any] | None = None
    ) -> HttpRequest:
        if path_or_url.startswith("https://") or path_or_url.startswith("http://"):
            return HttpRequest(method, path_or_url)  # a nextLink: its query is complete
        return HttpRequest(
            method,
            f"{self._base}{path_or_url}",
            params={"api-version": self._api_version},
            json=dict(body) if body is not None else None,
        )

    def _send(self, request: HttpRequest) -> PipelineResponse[Any, Any]:
        response: PipelineResponse[Any, Any] = self._client.send_request(
            request, _return_pipeline_response=True
        )
        return response

    def get(self, path: str) -> dict[str, Any]:
        """GET one resource; `ResourceNotFoundError` when it does not exist."""
        response = self._send(self._request("GET", path)).http_response
        _raise_for(response, (200,))
        body: dict[str, Any] = _json(response) or {}
        return body

    def find(self, path: str) -> dict[str, Any] | None:
        """GET one resource, None when it does not exist."""
        try:
            return self.get(path)
        except ResourceNotFoundError:
            return None

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every row of a list, following `nextLink`."""
        url: str | None = path
        while url:
            response = self._send(self._request("GET", url)).http_response
            _raise_for(response, (200,))
            body: Mapping[str, Any] = _json(response) or {}
            yield from body.get("value", [])
            url = body.get("nextLink") or None

    def begin(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> LROPoller[Any]:
        """Start a long-running operation (PUT, POST, DELETE) and return its poller, polled at
        the service's `Retry-After` (at least `POLL_SECONDS`). Its result is the final body
        (the resource, for a PUT) or None."""
        initial = self._send(self._request(method, path, body))
        _raise_for(initial.http_response, (200, 201, 202, 204))

        def output(pipeline_response: PipelineResponse[Any, Any]) -> Any:
            return _json(pipeline_response.http_response)

        return LROPoller(self._client, initial, output, ARMPolling(POLL_SECONDS))

    def run(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """A long-running operation, waited on; raises `HttpResponseError` when it fails."""
        return self.begin(method, path, body).result()
