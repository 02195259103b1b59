"""API calls, wall time and peak memory: `janitor scan` beside Cloud Custodian, same fleet.

One local AWS (`AwsDevServer`, moto in this process) holds N SageMaker endpoints (default
1,000), `--idle` of them (default 100) with zero invocations every day for the last 70 days and
the rest busy every day; all were created 120 days ago, one variant "AllTraffic", an `owner`
tag. Then, each in a fresh subprocess (its peak RSS read by a small wrapper process):

* `janitor scan --format json` with a policy holding only the `aws.sagemaker-endpoint` rule
  (30/60/7 lifecycle);
* Cloud Custodian (`bench/c7n_runner.py`, when `c7n` is importable: `make bench` installs it
  in `.venv-bench`) with a `metrics` filter on sagemaker-endpoint: Sum of Invocations over 60
  days, per EndpointName + VariantName, equal to 0.

Each run's API calls are counted by the server (every request, by operation), and each tool's
idle list is checked against the seeded one. Then janitor alone at larger fleets
(`--memory-sizes`, default 1000,5000; `--quick` skips them) to show how its memory grows.

This script prints figures; it asserts nothing about time. Exit status 1 when a tool failed or
did not find exactly the idle endpoints.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from harness import janitor_command, measure, scratch_dir, table, top_operations, version
from janitor.devserver.aws import (
    ACCOUNT_ID,
    LEAKY_ENV_VARS,
    AwsDevServer,
    StartResponse,
    WsgiApp,
)
from janitor.devserver.timetravel import MAX_METRIC_DATA_PER_CALL, at

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sagemaker import SageMakerClient

REGION = "us-east-1"
BENCH_DIR = Path(__file__).resolve().parent
ROLE_ARN = "arn:aws:iam::123456789012:role/janitor-bench"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3-gpu-py311"
MODEL = "bench-model"
CONFIG = "bench-config"
VARIANT = "AllTraffic"
AGE_DAYS = 120
METRIC_DAYS = 70
BUSY_PER_DAY = 1800.0
SEED_WORKERS = 4  # seeding threads: the emulator is in this process, so a few are enough

JANITOR_POLICY = """\
version: 1
defaults:
  notify_after: 30d
  stop_after: 60d
  warning: 7d
  owner_tags: [owner]
notifier:
  type: console
rules:
  - name: idle-sagemaker-endpoints
    kind: aws.sagemaker-endpoint
    thresholds:
      invocations_per_day: 0
"""

CUSTODIAN_POLICY_NAME = "idle-sagemaker-endpoints"
CUSTODIAN_POLICY = f"""\
policies:
  - name: {CUSTODIAN_POLICY_NAME}
    resource: aws.sagemaker-endpoint
    filters:
      - type: metrics
        namespace: AWS/SageMaker
        name: Invocations
        statistics: Sum
        days: 60
        value: 0
        op: eq
"""


# -- an indexed CloudWatch for moto: real CloudWatch's answers, in linear time -----------------
#
# moto's CloudWatch backend keeps every datapoint in one list and scans it again and again:
# GetMetricData is O(queries x periods x datapoints) and GetMetricStatistics scans every datapoint
# on every call. At the benchmark's size (1,000 endpoints x 70 days = 70,000 datapoints) one
# GetMetricData of 500 queries would take hours, so the emulator, not the tool under test, would
# be measured. (ListMetrics is already answered by `AwsDevServer` itself, one entry per series.)
#
# `install_fast_cloudwatch()` replaces two methods of moto's `CloudWatchBackend`, in this
# process only, with versions that read an index (series -> datapoints) kept in step with moto's
# own list. They answer what real CloudWatch answers: a query matches a series by namespace, name
# and the *exact* set of dimensions, in any order (moto's GetMetricData ignores the namespace and
# depends on the dimensions' order; its GetMetricStatistics treats them as a subset filter).
# Statistics are computed by moto's own `Statistics`, and buckets are laid out as moto lays them
# out. Requests the index does not cover (metric math, Metrics Insights, queries without exact
# dimensions, metrics moto derives from other services) fall back to moto's own methods.
#
# API call counts are not touched: `AwsDevServer` counts a request before it reaches moto.

SeriesKey = tuple[str, str, frozenset[tuple[str, str]]]  # namespace, metric, dimensions

_INDEX_ATTR = "_bench_series_index"
_installed = False
_install_lock = threading.Lock()


class _SeriesIndex:
    """Series -> datapoints, for one backend, synced lazily with `backend.metric_data`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._source: list[Any] | None = None
        self._count = 0
        self.series: dict[SeriesKey, list[Any]] = {}

    def sync(self, data: list[Any]) -> None:
        if data is not self._source or len(data) < self._count:
            self._source, self._count = data, 0
            self.series = {}
        for datum in data[self._count :]:
            self.series.setdefault(series_key(datum), []).append(datum)
        self._count = len(data)


def series_key(datum: Any) -> SeriesKey:
    dims = frozenset((str(d.name), str(d.value)) for d in datum.dimensions)
    return (str(datum.namespace), str(datum.name), dims)


def _index(backend: Any) -> _SeriesIndex | None:
    """The backend's index, synced; None when moto derives metrics the index cannot see."""
    if backend.aws_metric_data:
        return None
    index: _SeriesIndex | None = getattr(backend, _INDEX_ATTR, None)
    if index is None:
        index = _SeriesIndex()
        setattr(backend, _INDEX_ATTR, index)
    with index.lock:
        index.sync(backend.metric_data)
    return index


def _dims_key(dimensions: Sequence[dict[str, Any]]) -> frozenset[tuple[str, str]] | None:
    """A query's dimensions as a set; None when one has no value (not an exact series)."""
    pairs: set[tuple[str, str]] = set()
    for dim in dimensions:
        value = dim.get("Value")
        if value is None:
            return None
        pairs.add((str(dim["Name"]), str(value)))
    return frozenset(pairs)


def prime_fast_cloudwatch(account_id: str, region: str) -> None:
    """Index what is stored now, so the first measured request does not pay for it."""
    from moto.cloudwatch.models import cloudwatch_backends

    _index(cloudwatch_backends[account_id][region])


def install_fast_cloudwatch() -> None:
    """Patch moto's CloudWatch backend class in this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.cloudwatch import models

        backend_cls = models.CloudWatchBackend
        _patch_get_metric_data(backend_cls, models)
        _patch_get_metric_statistics(backend_cls, models)
        _installed = True


def _patch_get_metric_data(backend_cls: Any, models: Any) -> None:
    original: Callable[..., Any] = backend_cls.get_metric_data

    def get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> Any:
        keys: list[SeriesKey] = []
        for query in queries:
            stat = query.get("MetricStat")
            dims = _dims_key(stat["Metric"].get("Dimensions", [])) if stat else None
            if stat is None or not dims:
                return original(self, queries, start_time, end_time, scan_by)
            keys.append((stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], dims))
        index = _index(self)
        if index is None:
            return original(self, queries, start_time, end_time, scan_by)
        start = start_time.replace(microsecond=0)
        end = end_time.replace(microsecond=0)
        if start >= end:  # moto's own validation errors
            return original(self, queries, start_time, end_time, scan_by)

        results: list[dict[str, Any]] = []
        for query, key in zip(queries, keys, strict=True):
            stat = query["MetricStat"]
            with index.lock:
                points = list(index.series.get(key, ()))
            unit = stat.get("Unit")
            delta = timedelta(seconds=int(stat["Period"]))
            buckets: dict[int, list[Any]] = {}
            for md in points:
                if start <= md.timestamp < end and (not unit or md.unit == unit):
                    buckets.setdefault((md.timestamp - start) // delta, []).append(md)
            values: list[Any] = []
            timestamps: list[datetime] = []
            for slot in sorted(buckets):
                stats = models.Statistics([stat["Stat"]], start + slot * delta)
                stats.metric_data = buckets[slot]
                values.append(stats.get_statistics_for_type(stat["Stat"]))
                timestamps.append(stats.timestamp)
            if scan_by == "TimestampDescending":
                values.reverse()
                timestamps.reverse()
            if query.get("ReturnData", True):
                results.append(
                    {
                        "id": query["Id"],
                        "label": query.get("Label") or f"{key[1]} {stat['Stat']}",
                        "values": values,
                        "timestamps": timestamps,
                        "status_code": "Complete",
                    }
                )
        return results

    backend_cls.get_metric_data = get_metric_data


def _patch_get_metric_statistics(backend_cls: Any, models: Any) -> None:
    original: Callable[..., Any] = backend_cls.get_metric_statistics

    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: datetime,
        end_time: datetime,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> Any:
        args = (namespace, metric_name, start_time, end_time, period, stats, dimensions, unit)
        dims = _dims_key(dimensions)
        index = _index(self) if dims is not None else None
        start = start_time.replace(microsecond=0)
        end = end_time.replace(microsecond=0)
        if index is None or dims is None or start >= end:
            return original(self, *args)
        with index.lock:
            points = list(index.series.get((namespace, metric_name, dims), ()))
        data = sorted(
            (md for md in points if start <= md.timestamp < end and (not unit or md.unit == unit)),
            key=lambda md: md.timestamp,
        )
        if not data:
            return []
        # From here on, moto's own bucketing: periods start at the oldest datapoint.
        period_delta = timedelta(seconds=period)
        out: list[Any] = []
        position = 0
        for bucket in models.daterange(
            data[0].timestamp, data[-1].timestamp + period_delta, period_delta
        ):
            statistics = models.Statistics(stats, bucket)
            while position < len(data) and data[position].timestamp < bucket + period_delta:
                statistics.metric_data.append(data[position])
                statistics.unit = data[position].unit
                position += 1
            if statistics.metric_data:
                out.append(statistics)
        return out

    backend_cls.get_metric_statistics = get_metric_statistics


# -- the emulator ----------------------------------------------------------------------------


class TimedDevServer(AwsDevServer):
    """`AwsDevServer` that also adds up the time it spends answering requests.

    The figure separates the emulator's share of a tool's wall time from the tool's own. It
    wraps the server's (private) `_middleware` hook; should that hook be renamed, `busy_s`
    stays 0 and the report prints "n/a" rather than a wrong figure.
    """

    def __init__(self) -> None:
        super().__init__()
        self._busy_lock = threading.Lock()
        self._busy = 0.0

    def __enter__(self) -> TimedDevServer:
        self.start()
        return self

    @property
    def busy_s(self) -> float:
        with self._busy_lock:
            return self._busy

    def reset_busy(self) -> None:
        with self._busy_lock:
            self._busy = 0.0

    def _middleware(self, app: WsgiApp) -> WsgiApp:
        inner = super()._middleware(app)

        def timed(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            started = time.perf_counter()
            try:
                return list(inner(environ, start_response))  # the body is built here too
            finally:
                with self._busy_lock:
                    self._busy += time.perf_counter() - started

        return timed


# -- the fleet -------------------------------------------------------------------------------


def endpoint_name(index: int) -> str:
    return f"bench-ep-{index:05d}"


def idle_indexes(total: int, idle: int) -> set[int]:
    """`idle` indexes spread evenly over the first `total`."""
    if idle <= 0:
        return set()
    step = max(1, total // idle)
    return set(range(0, total, step)[:idle])


@dataclass
class Fleet:
    """What is seeded so far: endpoints 0..size-1, the idle ones by name."""

    now: datetime
    size: int = 0
    idle: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _clients(server: AwsDevServer) -> tuple[SageMakerClient, CloudWatchClient]:
    env = server.env(REGION)
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    # Seeding sends 70,000 datapoints per 1,000 endpoints: botocore's client-side parameter
    # validation alone would add seconds. The requests are the same.
    config = Config(parameter_validation=False, max_pool_connections=SEED_WORKERS * 2)
    make: Any = session.client
    return (
        make("sagemaker", endpoint_url=server.url, config=config),
        make("cloudwatch", endpoint_url=server.url, config=config),
    )


def grow_fleet(
    server: AwsDevServer, fleet: Fleet, size: int, idle: Sequence[int], *, heartbeat: bool = True
) -> None:
    """Seed endpoints fleet.size..size-1; those whose index is in `idle` get zero invocations.

    With `heartbeat`, every endpoint's instances also report `/aws/sagemaker/Endpoints`
    CPUUtilization, as real instances do every minute whether they serve traffic or not: one
    sample at noon on each metric day and one a minute ago, so today's (incomplete) day has a
    heartbeat and no Invocations datapoint yet."""
    if size <= fleet.size:
        return
    started = time.perf_counter()
    sagemaker, cloudwatch = _clients(server)
    new = range(fleet.size, size)
    with at(fleet.now - timedelta(days=AGE_DAYS)), ThreadPoolExecutor(SEED_WORKERS) as pool:
        if fleet.size == 0:  # every endpoint shares one model and one endpoint config
            sagemaker.create_model(
                ModelName=MODEL, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": IMAGE}
            )
            sagemaker.create_endpoint_config(
                EndpointConfigName=CONFIG,
                ProductionVariants=[
                    {
                        "VariantName": VARIANT,
                        "ModelName": MODEL,
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.g4dn.xlarge",
                        "InitialVariantWeight": 1.0,
                    }
                ],
            )

        def create(index: int) -> None:
            sagemaker.create_endpoint(
                EndpointName=endpoint_name(index),
                EndpointConfigName=CONFIG,
                Tags=[{"Key": "owner", "Value": f"team-{index % 40:02d}@example.com"}],
            )

        list(pool.map(create, new))

    # One datapoint per endpoint per day, noon UTC, on each of the METRIC_DAYS days before
    # today; PutMetricData batches of 1,000 datapoints shared across endpoints.
    today = fleet.now.replace(hour=12, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=back) for back in range(METRIC_DAYS, 0, -1)]
    idle_set = set(idle)
    data: list[Any] = []
    for index in new:
        dims = [
            {"Name": "EndpointName", "Value": endpoint_name(index)},
            {"Name": "VariantName", "Value": VARIANT},
        ]
        value = 0.0 if index in idle_set else BUSY_PER_DAY + index % 100
        data += [
            {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": day, "Value": value}
            for day in days
        ]
    beats: list[Any] = []
    if heartbeat:
        stamps = [*days, fleet.now - timedelta(minutes=1)]
        for index in new:
            dims = [
                {"Name": "EndpointName", "Value": endpoint_name(index)},
                {"Name": "VariantName", "Value": VARIANT},
            ]
            beats += [
                {"MetricName": "CPUUtilization", "Dimensions": dims, "Timestamp": t, "Value": 3.0}
                for t in stamps
            ]
    batches = [
        (namespace, points[start : start + MAX_METRIC_DATA_PER_CALL])
        for namespace, points in (("AWS/SageMaker", data), ("/aws/sagemaker/Endpoints", beats))
        for start in range(0, len(points), MAX_METRIC_DATA_PER_CALL)
    ]
    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(
            pool.map(
                lambda batch: cloudwatch.put_metric_data(Namespace=batch[0], MetricData=batch[1]),
                batches,
            )
        )
    prime_fast_cloudwatch(ACCOUNT_ID, REGION)

    fleet.idle |= {endpoint_name(index) for index in new if index in idle_set}
    fleet.size = size
    fleet.seconds += time.perf_counter() - started


# -- measuring one tool ----------------------------------------------------------------------


@dataclass
class Run:
    tool: str
    endpoints: int
    returncode: int
    wall_s: float
    peak_rss_mb: float
    calls: Counter[str]
    emulator_s: float  # time the emulator spent answering this run's requests
    found: set[str]
    expected: set[str]
    log: str
    note: str = ""

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def per_endpoint(self) -> float:
        return self.total_calls / self.endpoints if self.endpoints else 0.0

    @property
    def correct(self) -> bool:
        return self.returncode == 0 and self.found == self.expected

    def emulator_text(self) -> str:
        return f"{self.emulator_s:.1f}" if self.emulator_s > 0 else "n/a"

    def found_text(self) -> str:
        hits = len(self.found & self.expected)
        text = f"{hits}/{len(self.expected)}"
        if extra := len(self.found - self.expected):
            text += f" (+{extra} wrong)"
        return text


def child_env(server: AwsDevServer, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in LEAKY_ENV_VARS and not key.startswith("AWS_ENDPOINT_URL_")
    }
    env.update(server.env(REGION))
    env.update(extra)
    return env


def run_janitor(server: TimedDevServer, fleet: Fleet, workdir: Path) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix=f"janitor-{fleet.size}-", dir=workdir))
    policy = tmp / "policy.yaml"
    policy.write_text(JANITOR_POLICY, encoding="utf-8")
    report = tmp / "report.json"
    env = child_env(
        server,
        {
            "JANITOR_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
            "JANITOR_REGIONS": REGION,
            "JANITOR_POLICY": "",
            "JANITOR_KILL_SWITCH": "",
        },
    )
    argv = [*janitor_command(), "scan", "--policy", str(policy), "--format", "json"]
    argv += ["--output", str(report)]
    measured = measure(server, argv, env, tmp / "janitor.log")
    found: set[str] = set()
    statuses: Counter[str] = Counter()
    if report.exists():
        document = json.loads(report.read_text(encoding="utf-8"))
        for row in document.get("findings", []):
            if row.get("kind") != "aws.sagemaker-endpoint":
                continue
            statuses[str(row.get("status"))] += 1
            if row.get("status") == "idle":
                found.add(str(row.get("name")))
    note = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items()))
    return Run(
        "janitor",
        fleet.size,
        measured.returncode,
        measured.wall_s,
        measured.peak_rss_mb,
        measured.calls,
        measured.emulator_s,
        found,
        set(fleet.idle),
        measured.log,
        note,
    )


def run_custodian(server: TimedDevServer, fleet: Fleet, workdir: Path) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix=f"custodian-{fleet.size}-", dir=workdir))
    policy = tmp / "policy.yml"
    policy.write_text(CUSTODIAN_POLICY, encoding="utf-8")
    output = tmp / "output"
    argv = [sys.executable, str(BENCH_DIR / "c7n_runner.py"), "run", "-s", str(output)]
    argv += ["--region", REGION, "--cache", str(tmp / "c7n.cache"), "--cache-period", "0"]
    argv += [str(policy)]
    env = child_env(server, {"HOME": str(tmp)})
    measured = measure(server, argv, env, tmp / "custodian.log")
    found: set[str] = set()
    resources = output / CUSTODIAN_POLICY_NAME / "resources.json"
    if resources.exists():
        found = {str(r["EndpointName"]) for r in json.loads(resources.read_text(encoding="utf-8"))}
    return Run(
        "Cloud Custodian",
        fleet.size,
        measured.returncode,
        measured.wall_s,
        measured.peak_rss_mb,
        measured.calls,
        measured.emulator_s,
        found,
        set(fleet.idle),
        measured.log,
    )


# -- the report ------------------------------------------------------------------------------


def print_comparison(runs: Sequence[Run], fleet: Fleet, top: int) -> None:
    print(
        f"== API calls: {fleet.size:,} SageMaker endpoints ({len(fleet.idle)} idle), "
        f"1 region, moto {version('moto')} in-process =="
    )
    headers = [
        "tool",
        "API calls",
        "calls/endpoint",
        "wall s",
        "emulator s",
        "peak RSS MB",
        "idle found",
    ]
    rows = [
        [
            run.tool,
            f"{run.total_calls:,}",
            f"{run.per_endpoint:.3f}",
            f"{run.wall_s:.1f}",
            run.emulator_text(),
            f"{run.peak_rss_mb:.0f}",
            run.found_text(),
        ]
        for run in runs
    ]
    print(table(headers, rows, right={1, 2, 3, 4, 5}))
    print(
        "  (emulator s: time the local emulator spent answering, summed over requests; "
        "wall s includes it)"
    )
    print()
    print(f"calls by operation (top {top}):")
    for run in runs:
        print(f"  {run.tool}: {top_operations(run.calls, top)}")
    for run in runs:
        if run.note:
            print(f"  {run.tool} verdicts: {run.note}")


def print_memory(runs: Sequence[Run], idle: int) -> None:
    print(f"== janitor peak memory by fleet size ({idle} idle endpoints at every size) ==")
    headers = [
        "endpoints",
        "peak RSS MB",
        "wall s",
        "emulator s",
        "API calls",
        "calls/endpoint",
        "idle found",
    ]
    rows = [
        [
            f"{run.endpoints:,}",
            f"{run.peak_rss_mb:.0f}",
            f"{run.wall_s:.1f}",
            run.emulator_text(),
            f"{run.total_calls:,}",
            f"{run.per_endpoint:.3f}",
            run.found_text(),
        ]
        for run in runs
    ]
    print(table(headers, rows, right={0, 1, 2, 3, 4, 5}))
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        growth = last.peak_rss_mb - first.peak_rss_mb
        per_k = growth / ((last.endpoints - first.endpoints) / 1000)
        print(
            f"growth: {growth:+.0f} MB from {first.endpoints:,} to {last.endpoints:,} endpoints "
            f"({per_k:+.1f} MB per 1,000)"
        )


def print_failure(run: Run) -> None:
    print(f"!! {run.tool} at {run.endpoints:,} endpoints: exit {run.returncode}", end="")
    missing = sorted(run.expected - run.found)
    extra = sorted(run.found - run.expected)
    print(f", {len(missing)} idle endpoint(s) missed, {len(extra)} wrongly reported idle")
    for label, names in (("missed", missing), ("wrongly idle", extra)):
        if names:
            print(f"   {label}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""))
    tail = run.log.strip().splitlines()[-15:]
    if tail:
        print("   last lines of its output:")
        print("\n".join(f"   | {line}" for line in tail))


# -- main ------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of counts") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("fleet sizes must be positive")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoints", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument("--idle", type=int, default=100, help="idle endpoints (default 100)")
    parser.add_argument(
        "--memory-sizes",
        type=parse_sizes,
        default=[1000, 5000],
        help="fleet sizes for janitor's memory section (default 1000,5000)",
    )
    parser.add_argument("--quick", action="store_true", help="skip the memory section")
    parser.add_argument("--no-custodian", action="store_true", help="do not run Cloud Custodian")
    parser.add_argument(
        "--no-heartbeat",
        action="store_true",
        help="seed no /aws/sagemaker/Endpoints CPUUtilization heartbeat (Invocations only)",
    )
    parser.add_argument("--top", type=int, default=8, help="operations listed per tool")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.endpoints < 1 or not 0 <= args.idle <= args.endpoints:
        print("api_calls: need --endpoints >= 1 and 0 <= --idle <= --endpoints", file=sys.stderr)
        return 2
    custodian = not args.no_custodian and importlib.util.find_spec("c7n") is not None
    sizes = [] if args.quick else args.memory_sizes
    largest = max([args.endpoints, *sizes])
    idle = sorted(idle_indexes(args.endpoints, args.idle))

    print(
        f"python {platform.python_version()}, janitor {version('ml-janitor')}, "
        f"c7n {version('c7n') if custodian else 'not run'}, boto3 {version('boto3')}, "
        f"moto {version('moto')}"
    )
    install_fast_cloudwatch()
    failures: list[Run] = []
    with scratch_dir() as workdir, TimedDevServer() as server:
        fleet = Fleet(now=datetime.now(UTC))
        grow_fleet(server, fleet, args.endpoints, idle, heartbeat=not args.no_heartbeat)
        print(f"seeded {fleet.size:,} endpoints in {fleet.seconds:.1f} s")
        runs = [run_janitor(server, fleet, workdir)]
        if custodian:
            runs.append(run_custodian(server, fleet, workdir))
        failures += [run for run in runs if not run.correct]
        print()
        print_comparison(runs, fleet, args.top)
        if not custodian:
            why = "--no-custodian" if args.no_custodian else "c7n is not installed here"
            print(f"  Cloud Custodian not run ({why}; `make bench` installs it in .venv-bench)")
        janitor_run = runs[0]
        if len(runs) == 2:
            theirs = runs[1]
            target = "met" if janitor_run.per_endpoint <= 0.3 else "MISSED"
            print()
            print(
                f"janitor: {janitor_run.per_endpoint:.3f} calls/endpoint (target <= 0.3: "
                f"{target}); Cloud Custodian: {theirs.per_endpoint:.3f}; "
                f"{theirs.total_calls / max(1, janitor_run.total_calls):.1f}x fewer calls"
            )
            speed = theirs.wall_s / janitor_run.wall_s if janitor_run.wall_s else 0.0
            verdict = "faster" if janitor_run.wall_s < theirs.wall_s else "NOT faster"
            print(f"janitor is {verdict} than Cloud Custodian: {speed:.1f}x by wall time")

        if sizes:
            memory: list[Run] = []
            for size in sizes:
                if size == args.endpoints:
                    memory.append(janitor_run)
                    continue
                grow_fleet(server, fleet, size, idle, heartbeat=not args.no_heartbeat)
                if size < fleet.size:  # a smaller fleet than seeded: not measurable here
                    print(f"(memory at {size:,} skipped: the fleet already holds {fleet.size:,})")
                    continue
                run = run_janitor(server, fleet, workdir)
                memory.append(run)
                if not run.correct:
                    failures.append(run)
            print()
            print_memory(memory, len(fleet.idle))
            print(f"(seeding, all sizes up to {largest:,}: {fleet.seconds:.1f} s)")

    for run in failures:
        print()
        print_failure(run)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
