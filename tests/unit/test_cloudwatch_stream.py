"""`cloudwatch.stream_metric_data`: whole groups per GetMetricData call, results per group.

A fake client stands in for CloudWatch: it records every call's query count and answers each
query with one datapoint per day whose value is the query's index in its call, so a result
that reached the wrong request would show. No emulator is involved.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError

from janitor.clouds.aws.cloudwatch import (
    MAX_QUERIES_PER_CALL,
    MetricRequest,
    MetricResult,
    get_metric_data,
    stream_metric_data,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=3)
DAYS = [START + timedelta(days=n) for n in range(3)]


class FakeCloudWatch:
    def __init__(self, *, fail_calls: Sequence[int] = (), page_size: int | None = None) -> None:
        self.calls: list[list[str]] = []  # the dimension value of every query, per call
        self._fail = set(fail_calls)
        self._page_size = page_size

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        queries = kwargs["MetricDataQueries"]
        if "NextToken" not in kwargs:
            self.calls.append(
                [q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in queries]
            )
            if len(self.calls) - 1 in self._fail:
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": "not authorized"}},
                    "GetMetricData",
                )
        offset = int(kwargs.get("NextToken", "0"))
        size = self._page_size or len(queries)
        page = queries[offset : offset + size]
        answer: dict[str, Any] = {
            "MetricDataResults": [
                {
                    "Id": q["Id"],
                    "Timestamps": list(reversed(DAYS)),  # any order: results come out sorted
                    "Values": [float(offset + i)] * len(DAYS),
                    "StatusCode": "Complete",
                }
                for i, q in enumerate(page)
            ]
        }
        if offset + size < len(queries):
            answer["NextToken"] = str(offset + size)
        return answer


def client(fake: FakeCloudWatch) -> CloudWatchClient:
    return cast("CloudWatchClient", fake)


def request(name: str) -> MetricRequest:
    return MetricRequest(name, "Test", "Load", (("Name", name),), "Sum")


def group(name: str, size: int) -> tuple[str, list[MetricRequest]]:
    return name, [request(f"{name}/{i}") for i in range(size)]


def stream(fake: FakeCloudWatch, groups: Any) -> list[tuple[str, tuple[MetricResult, ...]]]:
    return list(stream_metric_data(client(fake), groups, START, END))


@pytest.mark.parametrize("count", [1, 499, 500, 501, 1000, 1201])
def test_single_series_groups_take_ceil_n_over_500_calls(count: int) -> None:
    fake = FakeCloudWatch()
    out = stream(fake, (group(f"r{i}", 1) for i in range(count)))
    assert len(fake.calls) == math.ceil(count / MAX_QUERIES_PER_CALL)
    assert all(len(call) == MAX_QUERIES_PER_CALL for call in fake.calls[:-1])
    assert [handle for handle, _ in out] == [f"r{i}" for i in range(count)]


def test_a_group_never_straddles_two_calls() -> None:
    fake = FakeCloudWatch()
    groups = [group("a", 499), group("b", 2), group("c", 498), group("d", 3)]

    out = stream(fake, groups)

    assert [len(call) for call in fake.calls] == [499, 500, 3]
    assert [{name.split("/")[0] for name in call} for call in fake.calls] == [
        {"a"},
        {"b", "c"},
        {"d"},
    ]
    assert [handle for handle, _ in out] == ["a", "b", "c", "d"]


def test_each_group_gets_its_own_results_in_request_order() -> None:
    fake = FakeCloudWatch()
    out = dict(stream(fake, [group("a", 2), group("b", 3)]))
    assert [r.key for r in out["b"]] == ["b/0", "b/1", "b/2"]
    # value = index of the query in its call: b's series are the 3rd to 5th of the one call
    assert [r.points[0][1] for r in out["b"]] == [2.0, 3.0, 4.0]
    assert all([day for day, _ in r.points] == DAYS for r in out["a"] + out["b"])


def test_four_gpus_a_resource_take_ceil_of_all_series_over_500_calls() -> None:
    fake = FakeCloudWatch()
    stream(fake, (group(f"i{i}", 4) for i in range(300)))
    assert len(fake.calls) == math.ceil(300 * 4 / 500)


def test_a_group_larger_than_a_call_is_sent_alone_in_several() -> None:
    fake = FakeCloudWatch()
    out = dict(stream(fake, [group("small", 10), group("huge", 1200), group("last", 1)]))
    assert [len(call) for call in fake.calls] == [10, 500, 500, 200, 1]
    assert [r.key for r in out["huge"]] == [f"huge/{i}" for i in range(1200)]


def test_empty_groups_cost_no_call() -> None:
    fake = FakeCloudWatch()
    assert stream(fake, [("a", [])]) == [("a", ())]
    assert stream(fake, []) == []
    assert fake.calls == []


def test_pages_of_one_call_are_joined() -> None:
    fake = FakeCloudWatch(page_size=7)
    out = dict(stream(fake, [group("a", 20)]))
    assert len(fake.calls) == 1
    assert all(len(r.points) == len(DAYS) for r in out["a"])


def test_a_failed_call_fails_only_its_own_groups() -> None:
    fake = FakeCloudWatch(fail_calls=[1])
    out = dict(stream(fake, [group("a", 300), group("b", 300), group("c", 100)]))
    assert [len(call) for call in fake.calls] == [300, 400]
    assert all(r.ok for r in out["a"])
    assert not any(r.ok for r in out["b"] + out["c"])
    assert all(r.denied and "permission denied" in str(r.error) for r in out["b"])


def test_groups_are_read_lazily_one_call_ahead_at_most() -> None:
    fake = FakeCloudWatch()
    made: list[str] = []

    def groups() -> Iterator[tuple[str, list[MetricRequest]]]:
        for i in range(1500):
            made.append(f"r{i}")
            yield group(f"r{i}", 1)

    results = stream_metric_data(client(fake), groups(), START, END)
    handle, _ = next(results)
    assert handle == "r0"
    assert len(fake.calls) == 1
    assert len(made) <= MAX_QUERIES_PER_CALL + 1  # the first call's groups and the one after


def test_bad_arguments_are_refused_before_any_call() -> None:
    fake = FakeCloudWatch()
    with pytest.raises(ValueError, match="batch_size"):
        stream_metric_data(client(fake), [], START, END, batch_size=501)
    with pytest.raises(ValueError, match="timezone|aware"):
        stream_metric_data(client(fake), [], START.replace(tzinfo=None), END)
    assert fake.calls == []


def test_get_metric_data_keeps_its_flat_packing_and_keys() -> None:
    fake = FakeCloudWatch()
    requests = [request(f"s{i}") for i in range(1001)]
    results = get_metric_data(client(fake), requests, START, END)
    assert [len(call) for call in fake.calls] == [500, 500, 1]
    assert list(results) == [r.key for r in requests]
    assert results["s1000"].points[0][1] == 0.0
    with pytest.raises(ValueError, match="unique"):
        get_metric_data(client(fake), [request("x"), request("x")], START, END)
