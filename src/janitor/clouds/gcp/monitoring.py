"""Cloud Monitoring, read in bulk: one `projects.timeSeries.list` query per metric type per
project, never one per resource.

The REST API (`GET /v3/projects/{project}/timeSeries`) through google-auth's
`AuthorizedSession` (google-cloud-monitoring ships gRPC transports only). A query names one
`metric.type` and one `resource.type`, aligns every series to daily buckets
(`aggregation.alignmentPeriod=86400s`, `perSeriesAligner` ALIGN_MAX, or ALIGN_SUM for counts
such as bytes), asks for the largest pages (`pageSize=100000` points) and follows every
`nextPageToken`: pages of one query are not extra queries.

The answer is grouped by one resource label (`instance_id` for `gce_instance`, `endpoint_id`
for a Vertex endpoint): group -> day (the start of the UTC day bucket) -> value, the series of
one group combined per day by max (several GPUs of one VM) or sum (several deployed models of
one endpoint). A day with no point in any series of a group is absent, not zero.

Memory stays proportional to the resources judged, not to the project: a query names the groups
it wants (`wanted`), every other series is dropped as its page is read, pages are read one at a
time, and the day keys are shared (a window has a few dozen distinct days, not one object per
point).

Errors are raised as the session's exceptions (`google.api_core` errors, through `checked`), so
the caller's scope fails: unknown, never idle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from google.auth.transport.requests import AuthorizedSession

from janitor.clouds.gcp.session import MONITORING, base_url, checked
from janitor.evidence import DAY
from janitor.model import require_aware

MAX_PAGE_SIZE = 100_000  # points per page, the API's maximum
ALIGNMENT_PERIOD = "86400s"

# group (a resource label's value) -> day bucket start (UTC midnight) -> value
Daily = dict[str, dict[datetime, float]]


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One metric type on one resource type, read for every resource of a project at once."""

    metric_type: str  # e.g. "agent.googleapis.com/gpu/utilization"
    resource_type: str  # e.g. "gce_instance"
    group_by: str  # the resource label that names the resource, e.g. "instance_id"
    aligner: Literal["ALIGN_MAX", "ALIGN_SUM", "ALIGN_MEAN", "ALIGN_MIN"] = "ALIGN_MAX"
    combine: Literal["max", "sum"] = "max"  # series of one group on one day
    extra_filter: str = ""  # more clauses, ANDed (e.g. 'resource.labels.zone = "..."')

    @property
    def filter(self) -> str:
        clauses = [
            f'metric.type = "{self.metric_type}"',
            f'resource.type = "{self.resource_type}"',
        ]
        if self.extra_filter:
            clauses.append(self.extra_filter)
        return " AND ".join(clauses)


def _stamp(moment: datetime) -> str:
    return (
        require_aware(moment, "interval bound").astimezone(UTC).isoformat().replace("+00:00", "Z")
    )


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _value(typed: Mapping[str, Any]) -> float | None:
    """A point's TypedValue as a float (double, int64 as a string, bool), else None."""
    if "doubleValue" in typed:
        return float(typed["doubleValue"])
    if "int64Value" in typed:
        return float(typed["int64Value"])
    if "boolValue" in typed:
        return 1.0 if typed["boolValue"] else 0.0
    return None


def _day_of(end_time: str) -> datetime:
    """The UTC day a daily-aligned point belongs to: its bucket ends at `interval.endTime`."""
    start = _parse_time(end_time) - DAY
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def daily_values(
    session: AuthorizedSession,
    project: str,
    query: MetricQuery,
    start: datetime,
    end: datetime,
    *,
    wanted: Collection[str] | None = None,
) -> Daily:
    """Every series of `query` in `project` between `start` and `end` (whole UTC days: pass
    `janitor.evidence.daily_bounds(window)`), aligned per day, grouped by `query.group_by`;
    with `wanted`, only those groups are kept.

    One query: the request is sent once and its pages are followed. Raises the API's error
    (`google.api_core.exceptions.GoogleAPICallError`) or the transport's.
    """
    url = f"{base_url(MONITORING)}/v3/projects/{project}/timeSeries"
    params: dict[str, str] = {
        "filter": query.filter,
        "interval.startTime": _stamp(start),
        "interval.endTime": _stamp(end),
        "aggregation.alignmentPeriod": ALIGNMENT_PERIOD,
        "aggregation.perSeriesAligner": query.aligner,
        "pageSize": str(MAX_PAGE_SIZE),
    }
    keep = None if wanted is None else frozenset(wanted)
    out: Daily = {}
    day_of: dict[str, datetime] = {}  # interval.endTime -> its day, one object per day
    while True:
        body = checked(session.get(url, params=params))
        for series in body.get("timeSeries", []):
            labels: Mapping[str, str] = series.get("resource", {}).get("labels", {})
            group = labels.get(query.group_by)
            if group is None or (keep is not None and str(group) not in keep):
                continue
            days = out.setdefault(str(group), {})
            for point in series.get("points", []):
                value = _value(point.get("value", {}))
                if value is None:
                    continue
                end_time = str(point["interval"]["endTime"])
                day = day_of.get(end_time)
                if day is None:
                    day = day_of[end_time] = _day_of(end_time)
                if day not in days:
                    days[day] = value
                elif query.combine == "max":
                    days[day] = max(days[day], value)
                else:
                    days[day] += value
        token = body.get("nextPageToken")
        if not token:
            return out
        params["pageToken"] = str(token)
        del body  # one page in memory at a time
