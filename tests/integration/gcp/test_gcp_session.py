"""The GCP session helpers against the local GCP server, through the real ADC path: a generated
service-account key (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is the server's token
endpoint, real google-cloud-compute REST clients and google-auth's AuthorizedSession."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api_core import exceptions as core_exceptions
from google.auth import crypt, jwt
from google.cloud import compute_v1

from janitor.clouds.gcp import session as gcp
from janitor.devserver.gcp import GcpDevServer

pytestmark = pytest.mark.integration

PROJECT = "example-project"  # the project the gcp_env fixture sets
CPU = "compute.googleapis.com/instance/cpu/utilization"
DONE = compute_v1.Operation.Status.DONE
RUNNING = compute_v1.Operation.Status.RUNNING


def seed_vms(server: GcpDevServer, count: int) -> set[str]:
    names = set()
    for index in range(count):
        zone = ("us-central1-a", "us-east1-b", "europe-west4-a")[index % 3]
        server.add_instance(PROJECT, zone, f"gpu-{index}", accelerators=[("nvidia-tesla-t4", 1)])
        names.add(f"gpu-{index}")
    return names


# -- credentials and endpoints -------------------------------------------------------------------


@pytest.mark.usefixtures("no_adc")
def test_no_credentials_at_all() -> None:
    with pytest.raises(gcp.NoCredentials):
        gcp.load_credentials()


def test_project_is_google_cloud_project_else_the_credentials_own(
    gcp_env: GcpDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "other-project")
    assert gcp.load_credentials().project == "other-project"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert gcp.load_credentials().project == PROJECT  # the key file's project_id


def test_base_urls_are_googles_hosts_unless_the_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JANITOR_GCP_API_ENDPOINT", raising=False)
    assert gcp.base_url("compute") == "https://compute.googleapis.com"
    assert gcp.base_url("monitoring") == "https://monitoring.googleapis.com"
    assert (
        gcp.base_url("aiplatform", "europe-west4")
        == "https://europe-west4-aiplatform.googleapis.com"
    )
    assert gcp.base_url("aiplatform") == "https://aiplatform.googleapis.com"
    assert gcp.base_url("notebooks") == "https://notebooks.googleapis.com"
    monkeypatch.setenv("JANITOR_GCP_API_ENDPOINT", "http://127.0.0.1:8123/")
    assert {
        gcp.base_url(api, "us-central1")
        for api in ("compute", "monitoring", "aiplatform", "notebooks")
    } == {"http://127.0.0.1:8123"}
    assert gcp.compute_client_options() == {"api_endpoint": "http://127.0.0.1:8123"}


def test_both_credential_paths_reach_the_server(gcp_env: GcpDevServer) -> None:
    """The Compute client signs its own JWT for the API; the AuthorizedSession exchanges a JWT
    at token_uri for an access token. The server accepts both."""
    gcp_env.add_instance(PROJECT, "us-central1-a", "vm")
    credentials = gcp.load_credentials()
    client = gcp.instances_client(credentials)
    assert client.get(project=PROJECT, zone="us-central1-a", instance="vm").name == "vm"
    session = gcp.authorized_session(credentials)
    listed = session.get(f"{gcp.base_url('aiplatform')}/v1/projects/{PROJECT}/locations")
    assert listed.status_code == 200
    assert gcp_env.calls["oauth2.token"] == 1


def test_unauthenticated_requests_are_401(gcp_env: GcpDevServer) -> None:
    url = f"{gcp_env.url}/compute/v1/projects/{PROJECT}/aggregated/instances"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = requests.get(url, headers={"Authorization": "Bearer ya29.not-issued"}, timeout=10)
    assert wrong.status_code == 401
    # a JWT signed by a key the server never saw
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = crypt.RSASigner.from_string(pem, key_id="unknown")  # type: ignore[no-untyped-call]
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode(  # type: ignore[no-untyped-call]
        signer,
        {
            "iss": "x@y",
            "sub": "x@y",
            "aud": "https://compute.googleapis.com/",
            "iat": now,
            "exp": now + 600,
        },
    ).decode()
    forged = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert forged.status_code == 401
    assert gcp_env.calls["compute.instances.aggregatedList"] == 3  # every request counted


def test_token_endpoint_refuses_a_foreign_assertion(gcp_env: GcpDevServer) -> None:
    answer = requests.post(
        gcp_env.token_url,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b.c"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


# -- Compute Engine ------------------------------------------------------------------------------


def test_aggregated_list_pages_and_reports_the_unreachable_zone(gcp_env: GcpDevServer) -> None:
    names = seed_vms(gcp_env, 7)
    gcp_env.add_instance(PROJECT, "us-central1-a", "stopped", status="TERMINATED")
    gcp_env.unreachable_zone(PROJECT, "asia-east1-a")
    client = gcp.instances_client(gcp.load_credentials())

    seen: list[str] = []
    warnings: dict[str, str] = {}
    for scope, scoped in client.aggregated_list(
        request=gcp.aggregated_list_request(PROJECT, max_results=3)
    ):
        seen.extend(instance.name for instance in scoped.instances)
        code = scoped.warning.code if scoped.warning else ""  # type: ignore[attr-defined]
        if code:
            warnings[scope] = code
    assert sorted(seen) == sorted(names)  # RUNNING only, each once, across pages
    assert len(seen) == len(names)
    assert warnings["zones/asia-east1-a"] == "UNREACHABLE"
    assert gcp_env.calls["compute.instances.aggregatedList"] == 3  # 7 VMs, 3 a page


def test_aggregated_list_is_one_page_at_the_maximum(gcp_env: GcpDevServer) -> None:
    seed_vms(gcp_env, 12)
    client = gcp.instances_client(gcp.load_credentials())
    pager = client.aggregated_list(request=gcp.aggregated_list_request(PROJECT))
    assert sum(len(scoped.instances) for _, scoped in pager) == 12
    assert gcp_env.calls["compute.instances.aggregatedList"] == 1


def test_stop_completes_on_a_later_poll(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "gpu", accelerators=[("nvidia-l4", 1)])
    credentials = gcp.load_credentials()
    operation = gcp.instances_client(credentials).stop(
        project=PROJECT, zone="us-central1-a", instance="gpu"
    )
    assert operation.status == RUNNING
    assert gcp_env.instance(PROJECT, "us-central1-a", "gpu")["status"] == "STOPPING"  # type: ignore[index]
    operations = gcp.zone_operations_client(credentials)
    first = operations.get(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert first.status == RUNNING
    second = operations.wait(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert second.status == DONE
    assert not second.error.errors
    assert gcp_env.instance(PROJECT, "us-central1-a", "gpu")["status"] == "TERMINATED"  # type: ignore[index]

    start = gcp.instances_client(credentials).start(
        project=PROJECT, zone="us-central1-a", instance="gpu"
    )
    for _ in range(2):
        polled = operations.get(project=PROJECT, zone="us-central1-a", operation=start.name)
    assert polled.status == DONE
    assert gcp_env.instance(PROJECT, "us-central1-a", "gpu")["status"] == "RUNNING"  # type: ignore[index]


def test_an_operation_that_ends_in_error(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "vm")
    gcp_env.fail_next_operation(f"projects/{PROJECT}/zones/us-central1-a/instances/vm")
    credentials = gcp.load_credentials()
    operation = gcp.instances_client(credentials).stop(
        project=PROJECT, zone="us-central1-a", instance="vm"
    )
    operations = gcp.zone_operations_client(credentials)
    for _ in range(2):
        polled = operations.get(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert polled.status == DONE
    assert polled.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert gcp_env.instance(PROJECT, "us-central1-a", "vm")["status"] == "RUNNING"  # type: ignore[index]


def test_stopping_a_terminated_vm_is_a_done_no_op(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "off", status="TERMINATED")
    operation = gcp.instances_client(gcp.load_credentials()).stop(
        project=PROJECT, zone="us-central1-a", instance="off"
    )
    assert operation.status == RUNNING  # the first answer is never DONE
    polled = gcp.zone_operations_client(gcp.load_credentials()).get(
        project=PROJECT, zone="us-central1-a", operation=operation.name
    )
    assert polled.status == DONE
    assert gcp_env.instance(PROJECT, "us-central1-a", "off")["status"] == "TERMINATED"  # type: ignore[index]


def test_a_vm_deleted_between_scan_and_stop_is_not_found(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "gone")
    gcp_env.delete_instance(PROJECT, "us-central1-a", "gone")
    client = gcp.instances_client(gcp.load_credentials())
    with pytest.raises(core_exceptions.NotFound):
        client.stop(project=PROJECT, zone="us-central1-a", instance="gone")


def test_service_disabled_and_permission_denied(gcp_env: GcpDevServer) -> None:
    client = gcp.instances_client(gcp.load_credentials())
    gcp_env.disable_service(PROJECT, "compute.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden) as disabled:
        list(client.aggregated_list(request=gcp.aggregated_list_request(PROJECT)))
    assert disabled.value.reason == "SERVICE_DISABLED"
    assert "has not been used in project" in disabled.value.message

    session = gcp.authorized_session(gcp.load_credentials())
    gcp_env.deny("other", "monitoring.googleapis.com")
    denied = session.get(
        f"{gcp.base_url('monitoring')}/v3/projects/other/timeSeries",
        params={"filter": f'metric.type = "{CPU}"', "interval.endTime": "2026-01-01T00:00:00Z"},
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert denied.json()["error"]["details"][0]["reason"] == "IAM_PERMISSION_DENIED"


def test_compute_calls_retry_429_after_retry_after_and_503(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "vm")
    client = gcp.instances_client(gcp.load_credentials())
    gcp_env.rate_limit("compute.instances.get", retry_after=7)
    gcp_env.outage("compute.instances.get", status=503)
    slept: list[float] = []
    got = gcp.with_retries(
        lambda: client.get(project=PROJECT, zone="us-central1-a", instance="vm", retry=None),
        sleep=slept.append,
    )
    assert got.name == "vm"
    assert gcp_env.calls["compute.instances.get"] == 3
    assert slept[0] == 7  # Retry-After honoured
    assert 0 < slept[1] <= 2 * gcp.BACKOFF_SECONDS  # then the second backoff, with jitter


def test_compute_retries_are_bounded(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "vm")
    client = gcp.instances_client(gcp.load_credentials())
    gcp_env.outage("compute.instances.get", times=10)
    with pytest.raises(core_exceptions.ServiceUnavailable):
        gcp.with_retries(
            lambda: client.get(project=PROJECT, zone="us-central1-a", instance="vm", retry=None),
            attempts=3,
            sleep=lambda _: None,
        )
    assert gcp_env.calls["compute.instances.get"] == 3


def test_call_retries_a_stop_that_is_rate_limited(gcp_env: GcpDevServer) -> None:
    gcp_env.add_instance(PROJECT, "us-central1-a", "vm")
    client = gcp.instances_client(gcp.load_credentials())
    gcp_env.rate_limit("compute.instances.stop", retry_after=1)
    operation = gcp.call(client.stop, project=PROJECT, zone="us-central1-a", instance="vm")
    assert operation.status == RUNNING
    assert gcp_env.calls["compute.instances.stop"] == 2


# -- Cloud Monitoring ----------------------------------------------------------------------------


def time_series(session: requests.Session, now: datetime, **extra: str) -> list[dict[str, Any]]:
    """Every page of one CPU query; answers the series as returned, page by page."""
    params = {
        "filter": f'metric.type = "{CPU}" AND resource.type = "gce_instance"',
        "interval.startTime": (now - timedelta(days=7)).isoformat(),
        "interval.endTime": now.isoformat(),
        "aggregation.alignmentPeriod": "86400s",
        "aggregation.perSeriesAligner": "ALIGN_MAX",
    } | extra
    pages: list[dict[str, Any]] = []
    while True:
        answer = session.get(
            f"{gcp.base_url('monitoring')}/v3/projects/{PROJECT}/timeSeries", params=params
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append(page)
        if not page.get("nextPageToken"):
            return pages
        params["pageToken"] = page["nextPageToken"]


def test_monitoring_pages_by_points_and_aligns_daily(gcp_env: GcpDevServer) -> None:
    now = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    for instance in ("1", "2", "3"):
        gcp_env.add_points(
            PROJECT,
            CPU,
            resource_type="gce_instance",
            resource_labels={"instance_id": instance, "zone": "us-central1-a"},
            points=[
                (now - timedelta(days=day, hours=hour), 0.01 * day + 0.001 * hour)
                for day in range(3)
                for hour in (1, 5)
            ],
        )
    session = gcp.authorized_session(gcp.load_credentials())
    pages = time_series(session, now, pageSize="4")
    assert len(pages) == 3  # 9 daily points, at most 4 a page (a series may span pages)
    assert gcp_env.calls["monitoring.timeSeries.list"] == 3
    per_instance: dict[str, list[float]] = {}
    for page in pages:
        assert sum(len(s["points"]) for s in page["timeSeries"]) <= 4
        for series in page["timeSeries"]:
            instance = series["resource"]["labels"]["instance_id"]
            per_instance.setdefault(instance, []).extend(
                p["value"]["doubleValue"] for p in series["points"]
            )
    # newest day first; each day's maximum
    assert per_instance == {i: [0.005, 0.015, 0.025] for i in ("1", "2", "3")}


def test_monitoring_filters_on_resource_labels_and_sums(gcp_env: GcpDevServer) -> None:
    now = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    metric = "aiplatform.googleapis.com/prediction/online/prediction_count"
    for endpoint, count in (("e1", 3), ("e2", 5)):
        gcp_env.add_points(
            PROJECT,
            metric,
            resource_type="aiplatform.googleapis.com/Endpoint",
            resource_labels={"endpoint_id": endpoint, "location": "us-central1"},
            metric_kind="DELTA",
            value_type="INT64",
            points=[(now - timedelta(hours=h), count) for h in (1, 2)],
        )
    session = gcp.authorized_session(gcp.load_credentials())
    answer = session.get(
        f"{gcp.base_url('monitoring')}/v3/projects/{PROJECT}/timeSeries",
        params={
            "filter": f'metric.type = "{metric}" AND (resource.labels.endpoint_id = "e2")',
            "interval.startTime": (now - timedelta(days=1)).isoformat(),
            "interval.endTime": now.isoformat(),
            "aggregation.alignmentPeriod": "86400s",
            "aggregation.perSeriesAligner": "ALIGN_SUM",
        },
    ).json()
    assert [s["resource"]["labels"]["endpoint_id"] for s in answer["timeSeries"]] == ["e2"]
    assert answer["timeSeries"][0]["points"][0]["value"] == {"int64Value": "10"}
    nothing = session.get(
        f"{gcp.base_url('monitoring')}/v3/projects/{PROJECT}/timeSeries",
        params={"filter": f'metric.type = "{CPU}"', "interval.endTime": now.isoformat()},
    )
    assert nothing.json() == {}  # no data at all: no series


def test_session_retries_429_and_503(gcp_env: GcpDevServer) -> None:
    session = gcp.authorized_session(gcp.load_credentials())
    gcp_env.rate_limit("monitoring.timeSeries.list", retry_after=1)
    gcp_env.outage("monitoring.timeSeries.list", status=503)
    pages = time_series(session, datetime(2026, 11, 30, tzinfo=UTC))
    assert pages == [{}]
    assert gcp_env.calls["monitoring.timeSeries.list"] == 3


def test_session_gives_up_after_bounded_attempts(gcp_env: GcpDevServer) -> None:
    session = gcp.authorized_session(gcp.load_credentials(), attempts=2)
    gcp_env.outage("aiplatform.locations.list", times=5, status=500)
    answer = session.get(f"{gcp.base_url('aiplatform')}/v1/projects/{PROJECT}/locations")
    assert answer.status_code == 500
    assert gcp_env.calls["aiplatform.locations.list"] == 2


def test_fail_nth_fails_only_that_request(gcp_env: GcpDevServer) -> None:
    token = gcp_env.issue_token()
    url = f"{gcp_env.url}/v1/projects/{PROJECT}/locations"
    gcp_env.fail_nth("aiplatform.locations.list", 2)
    statuses = [
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 500, 200]


def test_rest_errors_raise_what_the_compute_client_raises(gcp_env: GcpDevServer) -> None:
    """`checked()` turns a REST error into the same exception the Compute client raises, and
    the pipeline's scope-error line names the code, the reason and the message."""
    from janitor.clouds.errors import scope_error_message

    gcp_env.disable_service(PROJECT, "aiplatform.googleapis.com")
    session = gcp.authorized_session(gcp.load_credentials())
    answer = session.get(f"{gcp.base_url('aiplatform')}/v1/projects/{PROJECT}/locations")
    with pytest.raises(core_exceptions.Forbidden) as raised:
        gcp.checked(answer)
    assert raised.value.reason == "SERVICE_DISABLED"
    line = scope_error_message(raised.value)
    assert line is not None
    assert line.startswith("403 SERVICE_DISABLED: GET ")
    assert "Vertex AI API has not been used in project example-project" in line
    assert "\n" not in line
    ok = session.get(f"{gcp.base_url('notebooks')}/v2/projects/{PROJECT}/locations/-/instances")
    assert gcp.checked(ok) == {}


def test_alignment_buckets_end_at_the_interval_end(gcp_env: GcpDevServer) -> None:
    """Bucket i is (end - (i+1) day, end - i day]: a point exactly one day before the end falls
    in the second bucket; a point at the end in the first."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    gcp_env.add_points(
        PROJECT,
        CPU,
        resource_type="gce_instance",
        resource_labels={"instance_id": "9"},
        points=[(end, 0.5), (end - timedelta(days=1), 0.25), (end - timedelta(days=7), 0.9)],
    )
    session = gcp.authorized_session(gcp.load_credentials())
    (page,) = time_series(session, end)
    points = page["timeSeries"][0]["points"]
    assert [p["value"]["doubleValue"] for p in points] == [0.5, 0.25]  # the 7-day-old one is out
    assert [p["interval"]["endTime"] for p in points] == [
        "2026-11-30T00:00:00Z",
        "2026-11-29T00:00:00Z",
    ]
