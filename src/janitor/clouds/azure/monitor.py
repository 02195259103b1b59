"""Azure Monitor metrics, read in bulk: Metrics - List At Subscription Scope, one call per
subscription, region and metric namespace (the namespace's metrics of one request share it:
`metricnames` takes up to 20), never one call per resource.

`metrics.list_at_subscription_scope(region, metricnamespace, metricnames, interval="P1D",
aggregation, timespan, filter="Microsoft.ResourceId eq '*'", top)`: the filter splits the answer
into one series per resource, its id in `metadatavalues`. With a filter the API answers only
`top` series, 10 by default, and leaves the rest out without a word: `top` is set to at least
the number of resources of the namespace in the region (every VM of it, not only those janitor
looks at: their series compete for the same places), plus a margin.

The answer is keyed by resource id (lower case: ARM ids are case-insensitive and Monitor may
answer them in another case): metric -> resource id -> day (UTC midnight) -> value. A day whose
point holds no value for the aggregation is absent, not zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from janitor.model import require_aware

if TYPE_CHECKING:
    from azure.mgmt.monitor import MonitorManagementClient

RESOURCE_ID = "microsoft.resourceid"
DEFAULT_TOP = 10
TOP_MARGIN = 100  # series of resources created between the listing and the query
MAX_METRICS_PER_CALL = 20

Aggregation = Literal["maximum", "total", "average", "minimum", "count"]
# metric name -> resource id (lower case) -> day bucket start (UTC midnight) -> value
Daily = dict[str, dict[str, dict[datetime, float]]]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # e.g. "Percentage CPU"
    aggregation: Aggregation  # the aggregation read for this metric


def top_for(resources_in_region: int) -> int:
    """`top` for a query whose answer must hold every resource of the region."""
    return max(DEFAULT_TOP, resources_in_region + TOP_MARGIN)


def _stamp(moment: datetime) -> str:
    utc = require_aware(moment, "timespan bound").astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def daily_values(
    monitor: MonitorManagementClient,
    *,
    region: str,
    namespace: str,
    metrics: Sequence[MetricSpec],
    start: datetime,
    end: datetime,
    top: int,
) -> Daily:
    """Every resource's daily values of `metrics` (one namespace) in `region`, between `start`
    and `end` (whole UTC days: pass `janitor.evidence.daily_bounds(window)`). One request per
    20 metrics. Raises the SDK's `HttpResponseError` (a namespace nobody publishes in the region
    is a 400)."""
    out: Daily = {spec.name: {} for spec in metrics}
    by_name = {spec.name.lower(): spec for spec in metrics}
    for index in range(0, len(metrics), MAX_METRICS_PER_CALL):
        chunk = metrics[index : index + MAX_METRICS_PER_CALL]
        aggregations = sorted({spec.aggregation for spec in chunk})
        answer = monitor.metrics.list_at_subscription_scope(
            region=region,
            metricnamespace=namespace,
            metricnames=",".join(spec.name for spec in chunk),
            aggregation=",".join(aggregations),
            interval="P1D",
            timespan=f"{_stamp(start)}/{_stamp(end)}",
            filter="Microsoft.ResourceId eq '*'",
            top=top,
        )
        for metric in answer.value or []:
            spec = by_name.get(str(metric.name.value or "").lower())
            if spec is None:
                continue
            per_resource = out[spec.name]
            for series in metric.timeseries or []:
                resource_id = next(
                    (
                        str(meta.value)
                        for meta in series.metadatavalues or []
                        if meta.name is not None
                        and str(meta.name.value or "").lower() == RESOURCE_ID
                    ),
                    None,
                )
                if resource_id is None:
                    continue
                days = per_resource.setdefault(resource_id.lower(), {})
                for point in series.data or []:
                    value = getattr(point, spec.aggregation, None)
                    if value is None or point.time_stamp is None:
                        continue
                    days[_day(point.time_stamp)] = float(value)
    return out
