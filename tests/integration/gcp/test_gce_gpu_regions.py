"""`gcp.gce-gpu` with the policy's regions: the Monitoring queries keep only the series of VMs
in those regions, so the answer (and its pages) grows with the VMs scanned, not the project.

The local server here pages Monitoring at 60 points (the real API pages at up to 100,000), so
another region's series would cost another page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from janitor.clouds.gcp.gce_gpu import GPU_METRIC, GceGpuProbe, GceGpuScanner, zone_filter
from janitor.clouds.gcp.monitoring import MetricQuery
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import load_credentials
from janitor.devserver.gcp import GcpDevServer
from janitor.model import Status, Window

PROJECT = "example-project"
NOW = datetime.now(UTC).replace(microsecond=0)
THRESHOLDS = {
    "gpu_utilization_percent": 5.0,
    "cpu_utilization_percent": 10.0,
    "network_mb_per_day": 100.0,
}


@pytest.fixture
def gcp_server() -> Iterator[GcpDevServer]:
    with GcpDevServer(max_points_per_page=60) as server:
        yield server


def test_the_gpu_query_reads_only_the_policys_regions(gcp_env: GcpDevServer) -> None:
    for name, zone in (("here", "us-central1-a"), ("there", "europe-west4-a")):
        body = gcp_env.add_instance(
            PROJECT, zone, name, accelerators=[("nvidia-tesla-t4", 1)],
            created_at=NOW - timedelta(days=120),
        )  # fmt: skip
        gcp_env.add_daily(
            PROJECT, GPU_METRIC, resource_type="gce_instance",
            resource_labels={"instance_id": str(body["id"]), "zone": zone},
            days={(NOW - timedelta(days=k)).date(): 50.0 for k in range(60)},
        )  # fmt: skip
    scope = GcpScope(PROJECT, GLOBAL, load_credentials(), ("us-central1",))
    resources = list(GceGpuScanner(scope).scan())
    assert [r.name for r in resources] == ["here"]
    gcp_env.reset_calls()
    probe = GceGpuProbe(scope, thresholds=THRESHOLDS)
    verdicts = probe.usage(resources, Window.ending(NOW, timedelta(days=74)), NOW)
    assert verdicts[resources[0].ref.key].status is Status.ACTIVE
    # 60 points of "here" fill one page; "there"'s 60 would have made a second.
    assert gcp_env.calls["monitoring.timeSeries.list"] == 1


def test_the_zone_filter_names_each_region_as_a_zone_prefix() -> None:
    clause = zone_filter(("us-central1", "europe-west4"))
    assert clause == (
        '(resource.labels.zone = starts_with("us-central1-") OR '
        'resource.labels.zone = starts_with("europe-west4-"))'
    )
    query = MetricQuery(GPU_METRIC, "gce_instance", "instance_id", extra_filter=clause)
    assert query.filter.endswith(f" AND {clause}")
