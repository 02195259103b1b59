"""GCP credentials, the project, API base URLs and clients, with bounded retries.

Credentials come only from Application Default Credentials (`google.auth.default()`): a key file
named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default login, or the metadata
server. The project is `GOOGLE_CLOUD_PROJECT`, else the credentials' own project.

`JANITOR_GCP_API_ENDPOINT` is one base URL (e.g. `http://127.0.0.1:8123`) that replaces the host
of every GCP API janitor calls: Compute Engine, Cloud Monitoring, Vertex AI and Notebooks. The
paths stay Google's (`/compute/v1/...`, `/v3/...`, `/v1/...`, `/v2/...`), so one server (a
private endpoint, or the local dev server in tests) answers them all.

Compute Engine goes through `google-cloud-compute` with `transport="rest"`; Monitoring, Vertex AI
and Notebooks through their REST APIs on google-auth's `AuthorizedSession` (google-cloud-monitoring
ships gRPC transports only, and google-cloud-aiplatform pulls in far more than janitor needs).

Retries: a 429 (honouring `Retry-After`, capped) and a 5xx are retried with exponential backoff,
a bounded number of times: `call()` / `with_retries()` for Compute client calls (the generated
client's own default retry is switched off there), a urllib3 `Retry` on the session. On the
session, a POST is retried on 429 and 503 only: an API answers those before it acts, while a
500 may come after a non-idempotent change (a model deployed). A PATCH is retried like a GET:
janitor's only PATCH sets an endpoint's traffic split to a whole target value, so sending it
twice leaves the same split.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import google.auth
import google.auth.exceptions
import requests
from google.api_core import exceptions as core_exceptions
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import compute_v1
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ENDPOINT_ENV = "JANITOR_GCP_API_ENDPOINT"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

COMPUTE = "compute"
MONITORING = "monitoring"
AIPLATFORM = "aiplatform"
NOTEBOOKS = "notebooks"
_HOSTS = {
    COMPUTE: "compute.googleapis.com",
    MONITORING: "monitoring.googleapis.com",
    AIPLATFORM: "aiplatform.googleapis.com",
    NOTEBOOKS: "notebooks.googleapis.com",
}

MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_POST_RETRY_STATUSES = frozenset({429, 503})

T = TypeVar("T")


class NoCredentials(Exception):
    """No Application Default Credentials at all: GCP is skipped, not failed."""


class NoProject(Exception):
    """Credentials exist but name no project, and `GOOGLE_CLOUD_PROJECT` is unset."""


@dataclass(frozen=True)
class GcpCredentials:
    credentials: Credentials = field(repr=False)
    project: str | None  # GOOGLE_CLOUD_PROJECT, else the credentials' own project


def load_credentials() -> GcpCredentials:
    """Application Default Credentials and their project; `NoCredentials` when there are none."""
    try:
        credentials, own_project = google.auth.default(scopes=list(SCOPES))
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise NoCredentials(str(exc).splitlines()[0] if str(exc) else "no credentials") from exc
    project = os.environ.get(PROJECT_ENV, "").strip() or own_project or None
    return GcpCredentials(credentials, project)


def default_project(credentials: GcpCredentials) -> str:
    if not credentials.project:
        raise NoProject(
            f"no GCP project: set {PROJECT_ENV} or name projects in the policy (gcp.projects)"
        )
    return credentials.project


def endpoint_override() -> str | None:
    """`JANITOR_GCP_API_ENDPOINT` without a trailing slash, or None."""
    value = os.environ.get(ENDPOINT_ENV, "").strip().rstrip("/")
    return value or None


def base_url(api: str, location: str | None = None) -> str:
    """The base URL of a GCP API (no trailing slash); Google's REST paths go after it.

    Vertex AI is regional: `{location}-aiplatform.googleapis.com`; without a location (the
    Locations API) the global host."""
    override = endpoint_override()
    if override is not None:
        return override
    if api not in _HOSTS:
        raise ValueError(f"unknown GCP API {api!r}")
    host = _HOSTS[api]
    if api == AIPLATFORM and location and location != "global":
        host = f"{location}-{host}"
    return f"https://{host}"


def compute_client_options() -> dict[str, str]:
    return {"api_endpoint": base_url(COMPUTE)}


def instances_client(credentials: GcpCredentials) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(
        credentials=credentials.credentials,
        transport="rest",
        client_options=compute_client_options(),
    )


def zone_operations_client(credentials: GcpCredentials) -> compute_v1.ZoneOperationsClient:
    """Built with the same client options as `instances_client`: an operation's default
    `result()` would otherwise poll the public host."""
    return compute_v1.ZoneOperationsClient(
        credentials=credentials.credentials,
        transport="rest",
        client_options=compute_client_options(),
    )


def aggregated_list_request(
    project: str, *, filter: str = "status = RUNNING", max_results: int = 500
) -> compute_v1.AggregatedListInstancesRequest:
    """`instances.aggregatedList` for running VMs, pages at the maximum size (500)."""
    return compute_v1.AggregatedListInstancesRequest(
        project=project, filter=filter, max_results=max_results
    )


class _Retry(Retry):
    """urllib3 retries: GET and PATCH on 429 and 5xx, POST on 429 and 503; Retry-After capped."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST" and status_code not in _POST_RETRY_STATUSES:
            return False
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_BACKOFF_SECONDS)


def session_retry(attempts: int = MAX_ATTEMPTS) -> Retry:
    return _Retry(
        total=attempts - 1,
        connect=2,
        read=0,
        status=attempts - 1,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST", "PATCH"}),
        backoff_factor=BACKOFF_SECONDS,
        backoff_max=MAX_BACKOFF_SECONDS,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def authorized_session(
    credentials: GcpCredentials, *, attempts: int = MAX_ATTEMPTS
) -> AuthorizedSession:
    """google-auth's requests session for the REST APIs (Monitoring, Vertex AI, Notebooks), with
    bounded retries. Pair it with `base_url(api, location)`."""
    session = AuthorizedSession(credentials.credentials)  # type: ignore[no-untyped-call]
    adapter = HTTPAdapter(max_retries=session_retry(attempts), pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def checked(response: requests.Response) -> dict[str, Any]:
    """The JSON body of a REST answer; an error status raises the same `GoogleAPICallError`
    the Compute client raises (`Forbidden` with `.reason == "SERVICE_DISABLED"`, `NotFound`,
    ...), so callers handle both paths alike."""
    if response.status_code >= 400:
        raise core_exceptions.from_http_response(response)  # type: ignore[no-untyped-call]
    if not response.content:
        return {}
    body: dict[str, Any] = response.json()
    return body


def one_line(exc: BaseException) -> str:
    """A single line for a Google API error: HTTP code, reason (e.g. SERVICE_DISABLED) and the
    message's first line."""
    if isinstance(exc, core_exceptions.GoogleAPICallError):
        reason = f" {exc.reason}" if exc.reason else ""
        text = (exc.message or "").strip().splitlines()
        return f"{exc.code}{reason}: {text[0] if text else type(exc).__name__}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_RETRIABLE = (
    core_exceptions.TooManyRequests,
    core_exceptions.InternalServerError,
    core_exceptions.BadGateway,
    core_exceptions.ServiceUnavailable,
    core_exceptions.GatewayTimeout,
)


def _retry_after(exc: core_exceptions.GoogleAPICallError) -> float | None:
    response = getattr(exc, "response", None)
    headers: Mapping[str, str] = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_SECONDS)
    except ValueError:
        return None


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run an SDK call (the Compute client), retrying 429 (after its Retry-After) and 5xx with
    exponential backoff and jitter, at most `attempts` times in all; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except _RETRIABLE as exc:
            if attempt == attempts:
                raise
            delay = _retry_after(exc)
            if delay is None:
                backoff = min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                delay = backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def call(method: Callable[..., T], /, **kwargs: Any) -> T:
    """Call a Compute client method with `with_retries` as the one retry layer: the generated
    client's own default retry (503 on reads, for up to 600 s) is switched off (`retry=None`)
    so that attempts stay bounded and a 429's Retry-After is honoured."""
    return with_retries(lambda: method(retry=None, **kwargs))
