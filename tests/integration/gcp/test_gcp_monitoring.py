"""The Cloud Monitoring helper against the local server, through the real ADC path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from google.api_core import exceptions as core_exceptions

from janitor.clouds.gcp.monitoring import MetricQuery, daily_values
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import load_credentials
from janitor.devserver.gcp import GcpDevServer, write_service_account_key

PROJECT = "example-project"
GPU = MetricQuery("agent.googleapis.com/gpu/utilization", "gce_instance", "instance_id")
START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=5)
DAYS = [date(2026, 3, 1) + timedelta(days=n) for n in range(5)]


@pytest.fixture
def small_pages(
    no_adc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[GcpDevServer]:
    """A server whose Monitoring pages hold 3 points at most, reached through ADC."""
    with GcpDevServer(max_points_per_page=3) as server:
        key_file = tmp_path / "sa.json"
        write_service_account_key(server, key_file, project=PROJECT)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        monkeypatch.setenv("JANITOR_GCP_API_ENDPOINT", server.url)
        yield server


def scope() -> GcpScope:
    return GcpScope(PROJECT, GLOBAL, load_credentials())


def test_one_query_per_metric_grouped_per_instance_max_across_gpus(
    small_pages: GcpDevServer,
) -> None:
    server = small_pages
    for gpu, values in (("0", [1, 50, 2, 3, 4]), ("1", [70, 1, 1, 1, 1])):
        server.add_daily(
            PROJECT,
            GPU.metric_type,
            resource_type="gce_instance",
            resource_labels={"instance_id": "111", "zone": "us-central1-a"},
            metric_labels={"gpu_number": gpu},
            days=dict(zip(DAYS, values, strict=True)),
        )
    server.add_daily(
        PROJECT,
        GPU.metric_type,
        resource_type="gce_instance",
        resource_labels={"instance_id": "222", "zone": "us-central1-a"},
        days={DAYS[4]: 9.0},
    )
    server.reset_calls()
    found = daily_values(scope().session, PROJECT, GPU, START, END)
    day = [datetime.combine(d, datetime.min.time(), UTC) for d in DAYS]
    assert found == {
        "111": {day[0]: 70.0, day[1]: 50.0, day[2]: 2.0, day[3]: 3.0, day[4]: 4.0},
        "222": {day[4]: 9.0},
    }
    # 11 points at 3 per page: 4 pages of the one query, and nothing else.
    assert server.calls["monitoring.timeSeries.list"] == 4


def test_only_the_wanted_groups_are_kept_across_pages(small_pages: GcpDevServer) -> None:
    for instance in ("111", "222", "333"):
        small_pages.add_daily(
            PROJECT, GPU.metric_type, resource_type="gce_instance",
            resource_labels={"instance_id": instance, "zone": "us-central1-a"},
            days=dict(zip(DAYS, [1.0, 2.0, 3.0, 4.0, 5.0], strict=True)),
        )  # fmt: skip
    found = daily_values(scope().session, PROJECT, GPU, START, END, wanted={"222", "444"})
    assert set(found) == {"222"}
    assert sorted(found["222"].values()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    # Days are shared keys, one object per day whichever series they came from.
    again = daily_values(scope().session, PROJECT, GPU, START, END)
    first, second = (sorted(again[i]) for i in ("111", "333"))
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_sum_combines_series_of_one_group(gcp_env: GcpDevServer) -> None:
    query = MetricQuery(
        "compute.googleapis.com/instance/network/sent_bytes_count",
        "gce_instance",
        "instance_id",
        aligner="ALIGN_SUM",
        combine="sum",
    )
    for nic in ("nic0", "nic1"):
        gcp_env.add_daily(
            PROJECT,
            query.metric_type,
            resource_type="gce_instance",
            resource_labels={"instance_id": "111"},
            metric_labels={"interface": nic},
            metric_kind="DELTA",
            value_type="INT64",
            days={DAYS[0]: 10.0},
        )
    found = daily_values(scope().session, PROJECT, query, START, END)
    assert found == {"111": {START: 20.0}}


def test_errors_raise_so_the_scope_fails(gcp_env: GcpDevServer) -> None:
    gcp_env.disable_service(PROJECT, "monitoring.googleapis.com")
    with pytest.raises(core_exceptions.Forbidden) as caught:
        daily_values(scope().session, PROJECT, GPU, START, END)
    assert caught.value.reason == "SERVICE_DISABLED"
