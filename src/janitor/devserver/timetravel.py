"""Seeding history into the in-process emulators: resources created in the past, metrics by day.

moto runs in this process, so travelling the process clock sets the timestamps it records
(CreationTime, LaunchTime...). `time_machine` patches the clock for every thread at once.
Do not make throttled calls while travelling with the clock frozen: botocore's adaptive retry
rate limiter waits for the clock to move.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from janitor.model import require_aware

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

MAX_METRIC_DATA_PER_CALL = 1000  # PutMetricData's limit


@contextmanager
def at(when: datetime) -> Iterator[None]:
    """Freeze the process clock at `when` (timezone-aware) for the duration of the block."""
    import time_machine

    require_aware(when, "when")
    with time_machine.travel(when, tick=False):
        yield


def put_daily_metric(
    cloudwatch: CloudWatchClient,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    values_by_day: Sequence[tuple[datetime, float]],
) -> int:
    """Publish one datapoint per (timestamp, value), `dimensions` in the given order.

    Each timestamp is used as given (pass noon of a day to land safely inside that day's bucket).
    Batches up to 1000 datapoints per PutMetricData call; returns the number of calls made.
    moto accepts timestamps of any age; real CloudWatch refuses those older than two weeks.
    """
    dims: list[Any] = [{"Name": name, "Value": value} for name, value in dimensions.items()]
    data: list[Any] = [
        {
            "MetricName": metric,
            "Dimensions": dims,
            "Timestamp": require_aware(when, "timestamp"),
            "Value": float(value),
        }
        for when, value in values_by_day
    ]
    calls = 0
    for index in range(0, len(data), MAX_METRIC_DATA_PER_CALL):
        cloudwatch.put_metric_data(
            Namespace=namespace, MetricData=data[index : index + MAX_METRIC_DATA_PER_CALL]
        )
        calls += 1
    return calls
