"""CloudWatch, batched: one ListMetrics pass per metric, GetMetricData for hundreds of series.

Every kind that reads CloudWatch goes through here, so the batching rules live in one place:

* `list_dimension_sets` discovers which dimension sets a metric is published with (paged
  ListMetrics). A GetMetricData query must name the *exact* dimension set of a series: a series
  published with an extra dimension is a different series and is never matched by a query that
  leaves that dimension out. Keep the dimensions in the order ListMetrics returned them.
* `stream_metric_data` takes the series in groups (all the series of one resource: its
  variants, its GPUs) and packs whole groups, in order, into calls of up to 500
  MetricDataQueries (the API maximum; a group never straddles two calls, so N single-series
  groups take ceil(N / 500) calls). It follows NextToken (real CloudWatch pages by datapoint
  count) and yields each group's `MetricResult`s as soon as its call is answered, so a probe
  reduces a resource's points to its verdict and drops them: no more than one call's points
  are held at a time, however large the region. `get_metric_data` is the simple form (one
  result per request, all at once) for small request sets. A failed call or a query
  CloudWatch could not answer is reported on the results it concerns (`ok` is False, `error`
  says why): a probe turns that into `unknown`, never `idle`.
* `daily_bounds` aligns a window to whole UTC days, so `Period=86400` buckets are calendar days.
* `daily_streak`, `is_stale`, `recently_active` and `idle_since` turn per-day activity (a probe
  decides what makes a day active) into the newest streak: active when the newest day is, or
  when the last active day may have been within the last 24 hours (the current day is
  incomplete: an endpoint invoked at 22:00 is not idle at 03:00 the next day); else idle since
  the start of the newest unbroken run of days with evidence after the last active day, never
  before the window, the resource's streak floor or the evidence. Pure: no client involved.

ListMetrics lists only series with a datapoint in the past two weeks ("ListMetrics doesn't
return information about metrics if those metrics haven't reported data in the past two
weeks. To retrieve those metrics, use GetMetricData or GetMetricStatistics", CloudWatch API
reference, ListMetrics). A series that went quiet longer ago is still readable by its exact
dimension set, so probes also query the dimension sets they know from elsewhere (another
metric of the same resource, the resource's described details) whether listed or not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from janitor.clouds.aws.session import is_access_denied, one_line
from janitor.model import require_aware

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

MAX_QUERIES_PER_CALL = 500  # GetMetricData's limit on MetricDataQueries

# A metric's dimensions, as (name, value) pairs in the order ListMetrics returned them.
Dimensions = tuple[tuple[str, str], ...]

G = TypeVar("G")  # the caller's handle for a group of requests (usually its resource)


class MetricsUnavailable(Exception):
    """CloudWatch could not be read for the whole scope (denied, throttled out, unreachable)."""

    def __init__(self, message: str, *, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


def _failure(exc: ClientError | BotoCoreError) -> MetricsUnavailable:
    denied = isinstance(exc, ClientError) and is_access_denied(exc)
    prefix = "permission denied: " if denied else ""
    return MetricsUnavailable(prefix + one_line(exc), denied=denied)


def list_dimension_sets(
    cloudwatch: CloudWatchClient,
    namespace: str,
    metric_name: str,
    *,
    exact_names: Collection[str] | None = None,
) -> list[Dimensions]:
    """Every distinct dimension set `metric_name` is published with in the client's region.

    With `exact_names`, only the sets whose dimension *names* are exactly those are kept (a set
    with an extra or a missing dimension is a different series). Raises `MetricsUnavailable`.
    """
    wanted = frozenset(exact_names) if exact_names is not None else None
    seen: set[frozenset[tuple[str, str]]] = set()
    found: list[Dimensions] = []
    kwargs: dict[str, Any] = {"Namespace": namespace, "MetricName": metric_name}
    try:
        while True:
            page = cloudwatch.list_metrics(**kwargs)
            for metric in page.get("Metrics", []):
                dims: Dimensions = tuple(
                    (d["Name"], d["Value"]) for d in metric.get("Dimensions", [])
                )
                if wanted is not None and frozenset(name for name, _ in dims) != wanted:
                    continue
                if len(dims) != len({name for name, _ in dims}):
                    continue  # a repeated dimension name is not a series anyone can query
                identity = frozenset(dims)
                if identity in seen:
                    continue
                seen.add(identity)
                found.append(dims)
            token = page.get("NextToken")
            if not token:
                return found
            kwargs["NextToken"] = token
    except (ClientError, BotoCoreError) as exc:
        raise _failure(exc) from exc


@dataclass(frozen=True, slots=True)
class MetricRequest:
    """One series to read: `key` is the caller's handle for its result."""

    key: str
    namespace: str
    metric_name: str
    dimensions: Dimensions
    stat: str  # Sum, Maximum, Average, SampleCount, Minimum, p99...


@dataclass(frozen=True, slots=True)
class MetricResult:
    key: str
    # (bucket start, value), oldest first; buckets without data are absent, not zero.
    points: tuple[tuple[datetime, float], ...] = ()
    status: str = "Complete"  # CloudWatch's StatusCode, or "Error" when the call failed
    error: str | None = None
    denied: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def newest(self) -> datetime | None:
        return self.points[-1][0] if self.points else None


def _batches(items: Sequence[MetricRequest], size: int) -> Iterator[Sequence[MetricRequest]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _check_call(start: datetime, end: datetime, batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_QUERIES_PER_CALL:
        raise ValueError(f"batch_size must be within 1..{MAX_QUERIES_PER_CALL}")
    require_aware(start, "start")
    require_aware(end, "end")


def _pack(
    groups: Iterable[tuple[G, Sequence[MetricRequest]]], size: int
) -> Iterator[list[tuple[G, Sequence[MetricRequest]]]]:
    """Whole groups, in order, into runs of at most `size` requests (next fit, lazily).

    A group larger than `size` on its own is a run of its own (sent in several calls).
    """
    run: list[tuple[G, Sequence[MetricRequest]]] = []
    count = 0
    for handle, requests in groups:
        if run and count + len(requests) > size:
            yield run
            run, count = [], 0
        run.append((handle, requests))
        count += len(requests)
    if run:
        yield run


def stream_metric_data(
    cloudwatch: CloudWatchClient,
    groups: Iterable[tuple[G, Sequence[MetricRequest]]],
    start: datetime,
    end: datetime,
    *,
    period: int = 86400,
    batch_size: int = MAX_QUERIES_PER_CALL,
) -> Iterator[tuple[G, tuple[MetricResult, ...]]]:
    """(handle, results in request order) for every group, in order, one call at a time.

    `groups` is read lazily. A group's requests are always sent in the same call (unless the
    group alone holds more than `batch_size`), so a group's results arrive together and can be
    reduced at once; the results of one call are dropped once its groups have been yielded.
    Calls: ceil(requests / batch_size) when every group holds one request; otherwise one more
    now and then, where a group does not fit in what is left of a call. A call that fails marks
    every request of its call as failed; the other calls still count.
    """
    _check_call(start, end, batch_size)
    return _stream(cloudwatch, groups, start, end, period, batch_size)


def _stream(
    cloudwatch: CloudWatchClient,
    groups: Iterable[tuple[G, Sequence[MetricRequest]]],
    start: datetime,
    end: datetime,
    period: int,
    batch_size: int,
) -> Iterator[tuple[G, tuple[MetricResult, ...]]]:
    for run in _pack(groups, batch_size):
        flat = [request for _, requests in run for request in requests]
        results: list[MetricResult] = []
        for batch in _batches(flat, batch_size):
            results += _one_batch(cloudwatch, batch, start, end, period)
        position = 0
        for handle, requests in run:
            yield handle, tuple(results[position : position + len(requests)])
            position += len(requests)


def get_metric_data(
    cloudwatch: CloudWatchClient,
    requests: Sequence[MetricRequest],
    start: datetime,
    end: datetime,
    *,
    period: int = 86400,
    batch_size: int = MAX_QUERIES_PER_CALL,
) -> dict[str, MetricResult]:
    """One result per request key, all held at once; ceil(len(requests) / 500) calls (more
    only if paged). For a whole region's series, `stream_metric_data` keeps memory flat.

    A call that fails marks every request of its batch as failed; the other batches still count.
    """
    _check_call(start, end, batch_size)
    keys = [request.key for request in requests]
    if len(set(keys)) != len(keys):
        raise ValueError("MetricRequest keys must be unique")
    singles = ((request.key, (request,)) for request in requests)
    return {
        key: result
        for key, (result,) in _stream(cloudwatch, singles, start, end, period, batch_size)
    }


def _one_batch(
    cloudwatch: CloudWatchClient,
    batch: Sequence[MetricRequest],
    start: datetime,
    end: datetime,
    period: int,
) -> list[MetricResult]:
    """One result per request of `batch`, in its order (keys need not be unique here)."""
    if not batch:
        return []
    by_id = {f"q{index}": request for index, request in enumerate(batch)}
    queries: list[Any] = [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": request.namespace,
                    "MetricName": request.metric_name,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in request.dimensions],
                },
                "Period": period,
                "Stat": request.stat,
            },
            "ReturnData": True,
        }
        for query_id, request in by_id.items()
    ]
    points: dict[str, list[tuple[datetime, float]]] = {query_id: [] for query_id in by_id}
    status: dict[str, str] = {}
    errors: dict[str, str] = {}
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    try:
        while True:
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                query_id = result.get("Id", "")
                if query_id not in by_id:
                    continue
                points[query_id].extend(
                    (ts.astimezone(UTC), float(value))
                    for ts, value in zip(
                        result.get("Timestamps", []), result.get("Values", []), strict=False
                    )
                )
                code: str = result.get("StatusCode", "Complete")
                status[query_id] = code
                if code in ("InternalError", "Forbidden"):
                    detail = "; ".join(
                        f"{m.get('Code', '')}: {m.get('Value', '')}".strip(": ")
                        for m in result.get("Messages", [])
                    )
                    errors[query_id] = f"GetMetricData: {code}" + (f": {detail}" if detail else "")
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    except (ClientError, BotoCoreError) as exc:
        failure = _failure(exc)
        return [
            MetricResult(request.key, (), "Error", str(failure), denied=failure.denied)
            for request in batch
        ]
    out: list[MetricResult] = []
    for query_id, request in by_id.items():
        series = sorted(points.pop(query_id), key=lambda point: point[0])
        final = status.get(query_id, "Complete")
        out.append(
            MetricResult(
                request.key,
                tuple(series),
                final,
                errors.get(query_id),
                denied=final == "Forbidden",
            )
        )
    return out
