"""API calls and wall time of `janitor scan` on GCP: GPU VMs and Vertex AI endpoints.

One local GCP (`GcpDevServer`, in this process, paging as the real APIs page: Compute
aggregatedList at most 500 instances a page, Monitoring pages counted in points, at most
100,000, Vertex AI lists 100 a page by default) holds one project with:

* `--vms` GPU VMs (default 1,000) over 15 zones of 5 regions, a mix of N1 VMs with attached
  T4/V100/P100 GPUs and accelerator-optimised G2 (L4), A2 (A100) and A3 (H100) machine types,
  owner labels as people write them (`owner: jdoe`, some `created-by`), all created 120 days
  ago. Every VM has the built-in CPU and network series; all but `--no-agent` of them (default
  50) also run the Ops Agent, one `gpu/utilization` series per GPU. `--idle-vms` (default 100)
  are idle every day (GPUs at most 2%, CPU 2%, network about 30 MB a day), the rest busy.
* `--endpoints` Vertex AI endpoints (default 200) over 4 of the project's 38 Vertex AI
  locations, one or two deployed models each (traffic split 80/20), created 120 days ago; all
  report the `replicas` heartbeat every day, and all but `--idle-endpoints` (default 20) count
  predictions every day.

A service-account key whose `token_uri` is the server goes to the scan through the real ADC
path (`GOOGLE_APPLICATION_CREDENTIALS`); gcloud's configuration and the metadata server are
kept out (`CLOUDSDK_CONFIG` empty, `NO_GCE_CHECK`). Then `janitor scan --format json` runs in a
fresh process with a policy holding the `gcp.gce-gpu` and `gcp.vertex-endpoint` rules
(30/60/7 lifecycle, `gcp.projects: [the project]`, `gcp.regions` empty: every location).

Every request the server answers is counted (token requests and every page included), by
operation, by kind and as listing / metrics / other, next to the issue's targets: metrics under
0.01 calls per resource, everything under 0.1. The script asserts nothing about time; it exits
1 when the scan failed or did not report exactly the idle resources as idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from harness import (
    Measured,
    calls_table,
    janitor_command,
    measure,
    scratch_dir,
    verdict,
    version,
)
from janitor.devserver.gcp import GcpDevServer, _Reply, write_service_account_key

PROJECT = "ml-research-prod"
AGE_DAYS = 120
METRIC_DAYS = 80  # one point a day on each of the 80 days before today (the lookback is 74)
GCE = "gcp.gce-gpu"
VERTEX = "gcp.vertex-endpoint"

# 15 zones of 5 regions; VMs go round them.
ZONES = (
    "us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f",
    "us-east1-b", "us-east1-c", "us-east1-d",
    "us-west1-a", "us-west1-b",
    "europe-west4-a", "europe-west4-b", "europe-west4-c",
    "asia-east1-a", "asia-east1-b", "asia-east1-c",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """A GPU VM shape: machine type, attached GPUs, and the GPUs the Ops Agent reports."""

    machine_type: str
    attached: tuple[tuple[str, int], ...]  # guestAccelerators (none for built-in GPUs)
    gpus: int  # GPUs on the VM: one gpu/utilization series each
    model: str  # the GPU's name in the agent's `model` label


# 20 VMs in a row take these shapes in turn (weights as a team that trains and serves might
# have them: mostly single T4 and L4 boxes, a few 8-GPU H100 nodes).
SHAPES: tuple[tuple[Shape, int], ...] = (
    (Shape("n1-standard-8", (("nvidia-tesla-t4", 1),), 1, "Tesla T4"), 6),
    (Shape("n1-standard-16", (("nvidia-tesla-v100", 2),), 2, "Tesla V100-SXM2-16GB"), 2),
    (Shape("n1-highmem-8", (("nvidia-tesla-p100", 1),), 1, "Tesla P100-PCIE-16GB"), 1),
    (Shape("g2-standard-8", (), 1, "NVIDIA L4"), 5),
    (Shape("g2-standard-24", (), 2, "NVIDIA L4"), 1),
    (Shape("a2-highgpu-1g", (), 1, "NVIDIA A100-SXM4-40GB"), 3),
    (Shape("a2-highgpu-4g", (), 4, "NVIDIA A100-SXM4-40GB"), 1),
    (Shape("a3-highgpu-8g", (), 8, "NVIDIA H100 80GB HBM3"), 1),
)
_SHAPE_CYCLE = tuple(shape for shape, weight in SHAPES for _ in range(weight))

USERS = (
    "jdoe", "asmith", "mgarcia", "wchen", "pkumar", "lnguyen", "okafor", "sjohnson",
    "tmuller", "rrossi", "ykim", "abrown", "dlee", "fsilva", "hpatel", "kwalker",
)  # fmt: skip
TEAMS = ("vision", "nlp", "recsys", "speech", "platform")

# The Vertex AI locations the Locations API answers (the regions Google lists for Vertex AI).
# With `gcp.regions` empty janitor lists endpoints in each of them.
VERTEX_LOCATIONS = (
    "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west2",
    "us-west3", "us-west4", "northamerica-northeast1", "northamerica-northeast2",
    "southamerica-east1", "southamerica-west1", "europe-central2", "europe-north1",
    "europe-southwest1", "europe-west1", "europe-west2", "europe-west3", "europe-west4",
    "europe-west6", "europe-west8", "europe-west9", "europe-west12", "me-central1",
    "me-central2", "me-west1", "africa-south1", "asia-east1", "asia-east2", "asia-northeast1",
    "asia-northeast3", "asia-south1", "asia-southeast1", "asia-southeast2",
    "australia-southeast1", "australia-southeast2", "asia-northeast2",
)  # fmt: skip
# Where the endpoints are: (location, share of the fleet). us-central1 holds more than one
# 100-endpoint page.
ENDPOINT_LOCATIONS = (
    ("us-central1", 0.6),
    ("europe-west4", 0.2),
    ("us-east4", 0.1),
    ("asia-northeast1", 0.1),
)
SERVING = (  # (machine type, accelerator or "", count): what the deployed models run on
    ("n1-standard-4", "NVIDIA_TESLA_T4", 1),
    ("g2-standard-8", "NVIDIA_L4", 1),
    ("n1-standard-8", "", 0),
)

GPU_METRIC = "agent.googleapis.com/gpu/utilization"
CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
RX_METRIC = "compute.googleapis.com/instance/network/received_bytes_count"
TX_METRIC = "compute.googleapis.com/instance/network/sent_bytes_count"
PREDICTIONS_METRIC = "aiplatform.googleapis.com/prediction/online/prediction_count"
REPLICAS_METRIC = "aiplatform.googleapis.com/prediction/online/replicas"
VERTEX_RESOURCE = "aiplatform.googleapis.com/Endpoint"

JANITOR_POLICY = f"""\
version: 1
defaults:
  notify_after: 30d
  stop_after: 60d
  warning: 7d
  owner_tags: [owner, created-by]
gcp:
  projects: [{PROJECT}]
  regions: [{{regions}}]
owners:
  domain: example.com
notifier:
  type: console
rules:
  - name: idle-gpu-vms
    kind: {GCE}
  - name: idle-vertex-endpoints
    kind: {VERTEX}
"""

# Environment variables through which the machine's own Google credentials, project or gcloud
# configuration could reach the scan.
LEAKY_GOOGLE_VARS = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_QUOTA_PROJECT",
    "JANITOR_GCP_API_ENDPOINT",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
)

# How each counted operation is classed.
LISTING = frozenset({"compute.instances.aggregatedList", "aiplatform.endpoints.list"})
METRICS = frozenset({"monitoring.timeSeries.list"})
OTHER_WHY = {"oauth2.token": "auth", "aiplatform.locations.list": "locations"}
TARGET_METRICS = 0.01  # Monitoring calls per resource
TARGET_TOTAL = 0.1  # calls per resource


# -- the emulator ----------------------------------------------------------------------------

_METRIC_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')


class TimedGcpServer(GcpDevServer):
    """`GcpDevServer` that also adds up the time it spends answering, and counts Monitoring
    requests by the metric type their filter names (pages included).

    Both wrap the server's (private) `_dispatch`; should it be renamed, `busy_s` stays 0 (the
    report prints "n/a") and Monitoring calls are not split by metric type; the totals, counted
    by the server itself, are unaffected."""

    def __init__(self) -> None:
        super().__init__()
        self._bench_lock = threading.Lock()
        self._busy = 0.0
        self._by_metric: Counter[str] = Counter()
        self._metric_busy: dict[str, float] = {}

    @property
    def busy_s(self) -> float:
        with self._bench_lock:
            return self._busy

    def reset_busy(self) -> None:
        with self._bench_lock:
            self._busy = 0.0

    @property
    def metric_calls(self) -> Counter[str]:
        with self._bench_lock:
            return Counter(self._by_metric)

    @property
    def metric_busy_s(self) -> dict[str, float]:
        """Metric type -> seconds the server spent answering its Monitoring requests."""
        with self._bench_lock:
            return dict(self._metric_busy)

    def reset_calls(self) -> None:
        super().reset_calls()
        with self._bench_lock:
            self._by_metric.clear()
            self._metric_busy.clear()

    def _dispatch(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        started = time.perf_counter()
        try:
            return super()._dispatch(method, raw_path, headers, body)
        finally:
            elapsed = time.perf_counter() - started
            path, _, query = raw_path.partition("?")
            metric = ""
            if path.endswith("/timeSeries"):
                found = _METRIC_TYPE.search(parse_qs(query).get("filter", [""])[-1])
                metric = found.group(1) if found else "(no metric.type)"
            with self._bench_lock:
                self._busy += elapsed
                if metric:
                    self._by_metric[metric] += 1
                    self._metric_busy[metric] = self._metric_busy.get(metric, 0.0) + elapsed


# -- the fleet -------------------------------------------------------------------------------


def spread(total: int, count: int, offset: int = 0) -> set[int]:
    """`count` indexes spread evenly over range(total), each moved by `offset` (kept inside)."""
    if count <= 0 or total <= 0:
        return set()
    step = max(1, total // count)
    return {min(total - 1, i + offset) for i in range(0, total, step)[:count]}


def no_agent_indexes(total: int, count: int, idle: set[int]) -> set[int]:
    """`count` VMs without the Ops Agent: half of them idle, half busy (when there are)."""
    idle_part = sorted(idle)[:: max(1, len(idle) // max(1, count // 2))][: count // 2]
    busy = [i for i in sorted(spread(total, count, offset=3)) if i not in idle]
    return set(idle_part) | set(busy[: count - len(idle_part)])


@dataclass
class Fleet:
    now: datetime
    where: dict[str, dict[str, str]] = field(default_factory=lambda: {GCE: {}, VERTEX: {}})
    idle: dict[str, set[str]] = field(default_factory=lambda: {GCE: set(), VERTEX: set()})
    no_agent: set[str] = field(default_factory=set)  # VMs without the Ops Agent
    seconds: float = 0.0

    def add(self, kind: str, name: str, region: str, *, idle: bool) -> None:
        self.where[kind][name] = region
        if idle:
            self.idle[kind].add(name)

    @property
    def sizes(self) -> dict[str, int]:
        return {kind: len(names) for kind, names in self.where.items()}

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def within(self, regions: Sequence[str]) -> Fleet:
        """What a scan limited to `regions` (empty: all) should see."""
        if not regions:
            return self
        where = {
            kind: {name: region for name, region in names.items() if region in regions}
            for kind, names in self.where.items()
        }
        idle = {kind: names & set(where[kind]) for kind, names in self.idle.items()}
        no_agent = self.no_agent & set(where[GCE])
        return Fleet(self.now, where, idle, no_agent, self.seconds)


def _metric_days(now: datetime) -> list[date]:
    today = now.date()
    return [today - timedelta(days=back) for back in range(METRIC_DAYS, 0, -1)]


def seed_vms(
    server: GcpDevServer, fleet: Fleet, count: int, idle: set[int], no_agent: set[int]
) -> None:
    created = fleet.now - timedelta(days=AGE_DAYS)
    days = _metric_days(fleet.now)
    for index in range(count):
        shape = _SHAPE_CYCLE[index % len(_SHAPE_CYCLE)]
        zone = ZONES[index % len(ZONES)]
        name = f"{TEAMS[index % len(TEAMS)]}-gpu-{index:04d}"
        user = USERS[index % len(USERS)]
        labels = {"team": TEAMS[index % len(TEAMS)], "env": "dev" if index % 3 else "prod"}
        labels["created-by" if index % 20 == 7 else "owner"] = user
        body = server.add_instance(
            PROJECT, zone, name, machine_type=shape.machine_type,
            accelerators=shape.attached, labels=labels, created_at=created,
        )  # fmt: skip
        resource = {"instance_id": str(body["id"]), "zone": zone}
        is_idle = index in idle
        if index not in no_agent:  # the Ops Agent: one series per GPU
            for gpu in range(shape.gpus):
                if is_idle:
                    values = {day: (k + gpu) % 3 * 0.5 for k, day in enumerate(days)}
                else:
                    values = {
                        day: 35.0 + (k * 7 + gpu * 11 + index) % 60 for k, day in enumerate(days)
                    }
                server.add_daily(
                    PROJECT, GPU_METRIC, resource_type="gce_instance", resource_labels=resource,
                    metric_labels={"gpu_number": str(gpu), "model": shape.model,
                                   "uuid": f"GPU-{index:08x}-{gpu:04x}"},
                    days=values,
                )  # fmt: skip
        cpu = 0.02 if is_idle else 0.45 + index % 40 / 100
        rx, tx = (25e6, 5e6) if is_idle else (4e9 + index * 1e6, 1e9)
        for metric, value, kind, value_type, extra in (
            (CPU_METRIC, cpu, "GAUGE", "DOUBLE", {}),
            (RX_METRIC, rx, "DELTA", "INT64", {"loadbalanced": "false"}),
            (TX_METRIC, tx, "DELTA", "INT64", {"loadbalanced": "false"}),
        ):
            server.add_daily(
                PROJECT, metric, resource_type="gce_instance", resource_labels=resource,
                metric_labels={"instance_name": name} | extra,
                days=dict.fromkeys(days, value), metric_kind=kind, value_type=value_type,
            )  # fmt: skip
        fleet.add(GCE, name, zone.rsplit("-", 1)[0], idle=is_idle)
        if index in no_agent:
            fleet.no_agent.add(name)


def _endpoint_locations(count: int) -> list[str]:
    out: list[str] = []
    for location, share in ENDPOINT_LOCATIONS:
        out += [location] * round(count * share)
    out += [ENDPOINT_LOCATIONS[0][0]] * (count - len(out))
    return out[:count]


def seed_endpoints(server: GcpDevServer, fleet: Fleet, count: int, idle: set[int]) -> None:
    server.set_locations(PROJECT, VERTEX_LOCATIONS)
    created = fleet.now - timedelta(days=AGE_DAYS)
    days = _metric_days(fleet.now)
    for index, location in enumerate(_endpoint_locations(count)):
        team = TEAMS[index % len(TEAMS)]
        display = f"{team}-serving-{index:03d}"
        machine, accelerator, gpus = SERVING[index % len(SERVING)]
        spec: dict[str, Any] = {"machineType": machine}
        if accelerator:
            spec |= {"acceleratorType": accelerator, "acceleratorCount": gpus}
        n_models = 2 if index % 4 == 0 else 1
        endpoint_id = str(4_200_000_000_000_000_000 + index)
        ids = [str(5_100_000_000_000_000_000 + 2 * index + m) for m in range(n_models)]
        models = [
            {
                "id": model_id,
                "model": f"projects/{PROJECT}/locations/{location}/models/{team}-{index:03d}-{m}",
                "displayName": f"{display}-v{m + 1}",
                "dedicatedResources": {
                    "machineSpec": spec,
                    "minReplicaCount": 1,
                    "maxReplicaCount": 3,
                },
            }
            for m, model_id in enumerate(ids)
        ]
        split = {ids[0]: 80, ids[1]: 20} if n_models == 2 else None  # a canary takes a fifth
        server.add_endpoint(
            PROJECT, location, endpoint_id, display_name=display, deployed_models=models,
            traffic_split=split, created_at=created,
            labels={"owner": USERS[(index * 3) % len(USERS)], "team": team},
        )  # fmt: skip
        resource = {
            "endpoint_id": endpoint_id,
            "location": location,
            "resource_container": PROJECT,
        }
        for position, model_id in enumerate(ids):
            labels = {"deployed_model_id": model_id}
            server.add_daily(
                PROJECT, REPLICAS_METRIC, resource_type=VERTEX_RESOURCE,
                resource_labels=resource, metric_labels=labels, days=dict.fromkeys(days, 1.0),
            )  # fmt: skip
            if index in idle:
                continue
            served = 5_000.0 + index * 10 if position == 0 else 1_200.0
            server.add_daily(
                PROJECT, PREDICTIONS_METRIC, resource_type=VERTEX_RESOURCE,
                resource_labels=resource,
                metric_labels=labels | {"endpoint_display_name": display, "spot": "false"},
                days=dict.fromkeys(days, served), metric_kind="DELTA", value_type="INT64",
            )  # fmt: skip
        fleet.add(VERTEX, display, location, idle=index in idle)


# -- the scan --------------------------------------------------------------------------------


def child_env(server: GcpDevServer, key_file: Path, tmp: Path) -> dict[str, str]:
    """This process's environment without the machine's Google credentials and gcloud
    configuration, with the generated key, the project and the local server's URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in LEAKY_GOOGLE_VARS and not key.startswith("CLOUDSDK_")
    }
    env |= {
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "JANITOR_GCP_API_ENDPOINT": server.url,
        "CLOUDSDK_CONFIG": str(tmp / "gcloud"),  # no gcloud application-default login
        "NO_GCE_CHECK": "True",  # no metadata-server probe
        "JANITOR_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        "JANITOR_POLICY": "",
        "JANITOR_KILL_SWITCH": "",
    }
    return env


@dataclass
class Scan:
    measured: Measured
    by_metric: Counter[str]
    metric_busy_s: dict[str, float]
    found: dict[str, set[str]]  # kind -> names reported idle
    statuses: dict[str, Counter[str]]  # kind -> status -> findings
    errors: list[str]

    @property
    def calls(self) -> Counter[str]:
        return self.measured.calls


def run_scan(server: TimedGcpServer, workdir: Path, regions: Sequence[str]) -> Scan:
    tmp = Path(tempfile.mkdtemp(prefix="janitor-gcp-", dir=workdir))
    (tmp / "gcloud").mkdir()
    key_file = tmp / "service-account.json"
    write_service_account_key(server, key_file, project=PROJECT)
    policy = tmp / "policy.yaml"
    policy.write_text(JANITOR_POLICY.format(regions=", ".join(regions)), encoding="utf-8")
    report = tmp / "report.json"
    argv = [*janitor_command(), "scan", "--policy", str(policy), "--format", "json"]
    argv += ["--output", str(report)]
    measured = measure(server, argv, child_env(server, key_file, tmp), tmp / "janitor.log")
    found: dict[str, set[str]] = {GCE: set(), VERTEX: set()}
    statuses: dict[str, Counter[str]] = {GCE: Counter(), VERTEX: Counter()}
    errors: list[str] = []
    if report.exists():
        document = json.loads(report.read_text(encoding="utf-8"))
        for row in document.get("findings", []):
            kind = str(row.get("kind"))
            statuses.setdefault(kind, Counter())[str(row.get("status"))] += 1
            if row.get("status") == "idle":
                found.setdefault(kind, set()).add(str(row.get("name")))
        errors = [str(e.get("message", e)) for e in document.get("errors", [])]
    return Scan(measured, server.metric_calls, server.metric_busy_s, found, statuses, errors)


# -- the report ------------------------------------------------------------------------------


def kind_of(operation: str, metric: str = "") -> str:
    """The kind an operation was made for ("shared" for credentials)."""
    if operation.startswith("compute.") or metric.startswith(
        ("compute.googleapis.com/", "agent.googleapis.com/")
    ):
        return GCE
    if operation.startswith("aiplatform.") or metric.startswith("aiplatform.googleapis.com/"):
        return VERTEX
    return "shared"


def class_of(operation: str) -> str:
    if operation in LISTING:
        return "listing"
    if operation in METRICS:
        return "metrics"
    return "other"


def split_calls(scan: Scan) -> dict[str, Counter[str]]:
    """kind (and "shared") -> class (listing / metrics / other) -> calls."""
    out: dict[str, Counter[str]] = {GCE: Counter(), VERTEX: Counter(), "shared": Counter()}
    monitoring = 0
    for metric, n in scan.by_metric.items():
        out[kind_of("monitoring.timeSeries.list", metric)]["metrics"] += n
        monitoring += n
    for operation, n in scan.calls.items():
        if operation in METRICS:
            n -= monitoring  # those the metric split did not see (only if `_dispatch` moved)
            if n <= 0:
                continue
        out[kind_of(operation)][class_of(operation)] += n
    return out


def print_report(scan: Scan, fleet: Fleet, regions: Sequence[str]) -> None:
    m = scan.measured
    split = split_calls(scan)
    total = sum(scan.calls.values())
    vms, endpoints = fleet.sizes[GCE], fleet.sizes[VERTEX]
    print(
        f"== janitor scan: {vms:,} GPU VMs ({len(fleet.idle[GCE])} idle, {len(fleet.no_agent)} "
        f"without the Ops Agent) and {endpoints:,} Vertex AI endpoints "
        f"({len(fleet.idle[VERTEX])} idle), 1 project, local GCP server in-process =="
    )
    where = ", ".join(regions) if regions else "empty: every zone and Vertex AI location"
    print(f"gcp.regions: {where}")
    kinds = [(GCE, vms), (VERTEX, endpoints)]
    print(calls_table(split, kinds, "shared (auth)", fleet.total, total))
    metrics = sum(c["metrics"] for c in split.values())
    print(
        "  (every request the server answered: pages and token requests included; other = "
        "auth (token) and the Vertex AI Locations API)"
    )
    print()
    per_metric = metrics / fleet.total
    per_call = total / fleet.total
    print(f"metrics calls per resource: {per_metric:.4f}  ({verdict(per_metric, TARGET_METRICS)})")
    print(f"API calls per resource:     {per_call:.4f}  ({verdict(per_call, TARGET_TOTAL)})")
    print()
    print("calls by operation:")
    for operation, n in sorted(scan.calls.items(), key=lambda item: (-item[1], item[0])):
        why = OTHER_WHY.get(operation, "")
        label = f"{class_of(operation)}{f', {why}' if why else ''}"
        print(f"  {n:5d}  {operation}  ({label})")
    if scan.by_metric:
        print("monitoring.timeSeries.list by metric type (pages included; the server's time):")
        for metric, n in sorted(scan.by_metric.items()):
            print(f"  {n:5d}  {metric}  ({scan.metric_busy_s.get(metric, 0.0):.1f} s)")
    print()
    emulator = f"{m.emulator_s:.1f} s" if m.emulator_s > 0 else "n/a"
    print(
        f"wall time of the scan: {m.wall_s:.1f} s (local server answering: {emulator}, "
        f"summed over requests); peak RSS {m.peak_rss_mb:.0f} MB; exit {m.returncode}"
    )
    for kind in (GCE, VERTEX):
        expected = fleet.idle[kind]
        hits = len(scan.found.get(kind, set()) & expected)
        wrong = len(scan.found.get(kind, set()) - expected)
        verdicts = ", ".join(f"{s} {n}" for s, n in sorted(scan.statuses.get(kind, {}).items()))
        extra = f" (+{wrong} wrong)" if wrong else ""
        print(f"{kind}: idle found {hits}/{len(expected)}{extra}; verdicts: {verdicts or 'none'}")


def failures(scan: Scan, fleet: Fleet) -> list[str]:
    out: list[str] = []
    if scan.measured.returncode != 0:
        out.append(f"janitor scan exited {scan.measured.returncode}")
    out += [f"scan error: {error}" for error in scan.errors]
    for kind in (GCE, VERTEX):
        found, expected = scan.found.get(kind, set()), fleet.idle[kind]
        for label, names in (
            ("missed", sorted(expected - found)),
            ("wrongly idle", sorted(found - expected)),
        ):
            if names:
                more = " ..." if len(names) > 5 else ""
                out.append(f"{kind}: {len(names)} {label}: {', '.join(names[:5])}{more}")
        seen = sum(scan.statuses.get(kind, Counter()).values())
        if seen != fleet.sizes[kind]:
            out.append(f"{kind}: {seen} findings for {fleet.sizes[kind]} resources")
    return out


# -- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vms", type=int, default=1000, help="GPU VMs (default 1000)")
    parser.add_argument("--idle-vms", type=int, default=100, help="idle VMs (default 100)")
    parser.add_argument(
        "--no-agent",
        type=int,
        default=50,
        help="VMs without the Ops Agent, half of them idle (default 50): CPU/network fallback",
    )
    parser.add_argument("--endpoints", type=int, default=200, help="endpoints (default 200)")
    parser.add_argument(
        "--idle-endpoints", type=int, default=20, help="idle endpoints (default 20)"
    )
    parser.add_argument(
        "--regions",
        type=parse_regions,
        default=[],
        help="the policy's gcp.regions, comma-separated (default: empty, every region)",
    )
    return parser


def parse_regions(text: str) -> list[str]:
    regions = [part.strip() for part in text.split(",") if part.strip()]
    if not all(re.fullmatch(r"[a-z]+-[a-z]+\d+", region) for region in regions):
        raise argparse.ArgumentTypeError(f"{text!r}: regions such as us-central1,europe-west4")
    return regions


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        args.vms < 0
        or args.endpoints < 0
        or args.vms + args.endpoints < 1
        or not 0 <= args.idle_vms <= args.vms
        or not 0 <= args.no_agent <= args.vms
        or not 0 <= args.idle_endpoints <= args.endpoints
    ):
        print(
            "gcp: need --vms + --endpoints >= 1, 0 <= --idle-vms, --no-agent <= --vms and "
            "0 <= --idle-endpoints <= --endpoints",
            file=sys.stderr,
        )
        return 2
    print(
        f"python {platform.python_version()}, janitor {version('ml-janitor')}, "
        f"google-cloud-compute {version('google-cloud-compute')}, "
        f"google-auth {version('google-auth')}"
    )
    with scratch_dir() as workdir, TimedGcpServer() as server:
        fleet = Fleet(now=datetime.now(UTC))
        started = time.perf_counter()
        idle_vms = spread(args.vms, args.idle_vms)
        no_agent = no_agent_indexes(args.vms, args.no_agent, idle_vms)
        seed_vms(server, fleet, args.vms, idle_vms, no_agent)
        seed_endpoints(server, fleet, args.endpoints, spread(args.endpoints, args.idle_endpoints))
        fleet.seconds = time.perf_counter() - started
        print(f"seeded {args.vms:,} VMs and {args.endpoints:,} endpoints in {fleet.seconds:.1f} s")
        scan = run_scan(server, workdir, args.regions)
    scanned = fleet.within(args.regions)
    print()
    print_report(scan, scanned, args.regions)
    problems = failures(scan, scanned)
    if problems:
        print()
        print("!! the scan failed or misreported:")
        for problem in problems:
            print(f"   {problem}")
        tail = scan.measured.log.strip().splitlines()[-15:]
        if tail:
            print("   last lines of its output:")
            print("\n".join(f"   | {line}" for line in tail))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
