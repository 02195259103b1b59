"""API calls and wall time of `janitor scan` on Azure: GPU VMs (and Azure ML online endpoints).

One local Azure Resource Manager (`AzureDevServer`, in this process, over HTTPS with a test CA
it generates; Compute's list all pages 50 VMs at a time, Azure Monitor answers `top` series
as the real API does) holds two subscriptions with:

* `--vms` GPU VMs (default 1,000) spread evenly over the 2 subscriptions and 3 regions
  (eastus, westus2, westeurope), NC (T4, V100, A100), ND (A100) and NV (A10) sizes, owner tags as
  people write them (`owner: jdoe`), created 120 days ago. Every VM has its `Percentage CPU`,
  `Network In Total` and `Network Out Total` series for each of the last 80 days. `--idle-vms`
  (default 100) are idle every day (CPU 2%, about 30 MB of network a day), a tenth of them
  stopped but still allocated (a finding too: a stopped VM bills its compute) and a few Spot
  VMs (reported idle, never deallocated); the rest are busy. With `--agent N`, N VMs also
  publish an in-guest GPU metric (Telegraf's `nvidia_smi` `utilization_gpu`) and the rule
  names it (`gpu_metric`).

The real `DefaultAzureCredential` chain finds the server's managed-identity token endpoint
(`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`); the machine's own Azure login is kept out (no
`AZURE_*` or managed-identity variables, an empty Azure CLI config dir). Then
`janitor scan --format json` runs in a fresh process with a policy holding only the Azure rules
(30/60/7 lifecycle, `azure.subscriptions: [both]`).

Every request the server answers is counted (token requests, every page and any long-running
operation poll included), by REST operation id, by kind and as listing / metrics / other, next
to the issue's target: VM metrics under 0.01 calls per resource. The script asserts nothing
about time; it exits 1 when the scan failed or did not report exactly the idle resources as
idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote

from harness import (
    Measured,
    calls_table,
    janitor_command,
    measure,
    per,
    scratch_dir,
    verdict,
    version,
)
from janitor.devserver.azure import AzureDevServer, Reply
from janitor.devserver.azure.ml import MachineLearningService

SUBSCRIPTIONS = (
    "6f1d3c2a-8b4e-4f0a-9c1d-2e3f4a5b6c7d",  # ml-research
    "a9e8d7c6-b5a4-4392-8170-6f5e4d3c2b1a",  # ml-platform
)
SUBSCRIPTION_NAMES = ("ml-research", "ml-platform")
REGIONS = ("eastus", "westus2", "westeurope")
AGE_DAYS = 120
METRIC_DAYS = 80  # one point a day on each of the 80 days before today (the lookback is 74)
VM = "azure.vm-gpu"
ENDPOINT = "azure.ml-endpoint"
KINDS = (VM, ENDPOINT)

VM_NAMESPACE = "Microsoft.Compute/virtualMachines"
AGENT_NAMESPACE = "Telegraf/nvidia_smi"
AGENT_METRIC = "utilization_gpu"
ML_NAMESPACE_PREFIX = "microsoft.machinelearningservices/"
ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
WORKSPACES_PER_CELL = 2  # Azure ML workspaces per subscription and region
# What the deployments run on, in turn (a GPU or CPU VM size per instance).
SERVING = ("Standard_NC4as_T4_v3", "Standard_NC6s_v3", "Standard_DS3_v2", "Standard_NC4as_T4_v3")

# 20 VMs in a row take these sizes in turn (priced in all three regions).
SIZES: tuple[tuple[str, int], ...] = (
    ("Standard_NC4as_T4_v3", 6),
    ("Standard_NC8as_T4_v3", 3),
    ("Standard_NC6s_v3", 3),
    ("Standard_NC24ads_A100_v4", 3),
    ("Standard_NC48ads_A100_v4", 1),
    ("Standard_ND96asr_v4", 1),
    ("Standard_NV12ads_A10_v5", 2),
    ("Standard_NV36ads_A10_v5", 1),
)
_SIZE_CYCLE = tuple(size for size, weight in SIZES for _ in range(weight))

USERS = (
    "jdoe", "asmith", "mgarcia", "wchen", "pkumar", "lnguyen", "okafor", "sjohnson",
    "tmuller", "rrossi", "ykim", "abrown", "dlee", "fsilva", "hpatel", "kwalker",
)  # fmt: skip
TEAMS = ("vision", "nlp", "recsys", "speech", "platform")

POLICY_HEAD = """\
version: 1
defaults:
  notify_after: 30d
  stop_after: 60d
  warning: 7d
  owner_tags: [owner]
azure:
  subscriptions: [{subscriptions}]
owners:
  domain: example.com
notifier:
  type: console
rules:
"""
VM_RULE = f"""\
  - name: idle-gpu-vms
    kind: {VM}
"""
VM_RULE_AGENT = VM_RULE + (
    f"    gpu_metric: {{namespace: {AGENT_NAMESPACE}, name: {AGENT_METRIC}}}\n"
)
ENDPOINT_RULE = f"""\
  - name: idle-online-endpoints
    kind: {ENDPOINT}
"""

# Environment variables through which the machine's own Azure login could reach the scan
# (besides every AZURE_* variable).
LEAKY_AZURE_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "JANITOR_AZURE_ARM_ENDPOINT",
    "JANITOR_AZURE_ARM_AUDIENCE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
)

# How each counted REST operation is classed, and for which kind (operations not named here
# are "other", shared).
METRICS_OPS = frozenset({"Metrics_ListAtSubscriptionScope", "Metrics_List"})
LISTING: dict[str, str] = {
    "VirtualMachines_ListAll": VM,
    "Workspaces_ListBySubscription": ENDPOINT,
    "OnlineEndpoints_List": ENDPOINT,
    "OnlineDeployments_List": ENDPOINT,
}
# Other operations of a kind (reads a scan should not need; counted under the kind's "other").
KIND_PREFIXES = (
    ("VirtualMachines_", VM),
    ("Workspaces_", ENDPOINT),
    ("OnlineEndpoints_", ENDPOINT),
    ("OnlineDeployments_", ENDPOINT),
)
OTHER_WHY = {
    "ManagedIdentity_GetToken": "auth",
    "Subscriptions_Get": "subscription check",
    "Subscriptions_List": "subscription discovery",
    "AsyncOperation_Get": "long-running operation poll",
    "AsyncOperation_Location": "long-running operation poll",
}
TARGET_VM_METRICS = 0.01  # VM metrics calls per VM


# -- the emulator ----------------------------------------------------------------------------


def _namespace_of(path: str, query: Mapping[str, list[str]]) -> str:
    """The metric namespace a Metrics request reads: its `metricnamespace`, else (resource
    scope) the resource type in its path."""
    for key, values in query.items():
        if key.lower() == "metricnamespace" and values:
            return values[-1]
    parts = unquote(path).strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return ""
    index = lowered.index("providers")
    types = parts[index + 2 : -3 : 2]  # up to ".../providers/Microsoft.Insights/metrics"
    return "/".join([parts[index + 1], *types])


class TimedAzureServer(AzureDevServer):
    """`AzureDevServer` that also adds up the time it spends answering, and counts Metrics
    requests by (operation, metric namespace), to split them by kind. Call totals per operation
    are the server's own count."""

    def __init__(self) -> None:
        super().__init__()
        self._bench_lock = threading.Lock()
        self._busy = 0.0
        self._by_namespace: Counter[tuple[str, str]] = Counter()
        self._namespace_busy: dict[str, float] = {}

    @property
    def busy_s(self) -> float:
        with self._bench_lock:
            return self._busy

    def reset_busy(self) -> None:
        with self._bench_lock:
            self._busy = 0.0

    @property
    def metric_calls(self) -> Counter[tuple[str, str]]:
        """(operation, namespace) -> Metrics requests."""
        with self._bench_lock:
            return Counter(self._by_namespace)

    @property
    def namespace_busy_s(self) -> dict[str, float]:
        with self._bench_lock:
            return dict(self._namespace_busy)

    def reset_calls(self) -> None:
        super().reset_calls()
        with self._bench_lock:
            self._by_namespace.clear()
            self._namespace_busy.clear()

    def dispatch(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        started = time.perf_counter()
        try:
            return super().dispatch(method, raw_path, headers, body)
        finally:
            elapsed = time.perf_counter() - started
            path, _, query = raw_path.partition("?")
            operation = ""
            if unquote(path).rstrip("/").lower().endswith("/providers/microsoft.insights/metrics"):
                parts = unquote(path).strip("/").split("/")
                scoped = len(parts) <= 5  # subscriptions/{id}/providers/Microsoft.Insights/metrics
                operation = "Metrics_ListAtSubscriptionScope" if scoped else "Metrics_List"
            with self._bench_lock:
                self._busy += elapsed
                if operation:
                    namespace = _namespace_of(path, parse_qs(query))
                    self._by_namespace[(operation, namespace)] += 1
                    self._namespace_busy[namespace] = (
                        self._namespace_busy.get(namespace, 0.0) + elapsed
                    )


# -- the fleet -------------------------------------------------------------------------------


def spread(total: int, count: int, offset: int = 0) -> set[int]:
    """`count` indexes spread evenly over range(total), each moved by `offset` (kept inside)."""
    if count <= 0 or total <= 0:
        return set()
    step = max(1, total // count)
    return {min(total - 1, i + offset) for i in range(0, total, step)[:count]}


@dataclass
class Fleet:
    now: datetime
    where: dict[str, dict[str, str]] = field(default_factory=lambda: {k: {} for k in KINDS})
    idle: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    stopped: set[str] = field(default_factory=set)  # VMs stopped but allocated (idle)
    spot: set[str] = field(default_factory=set)  # idle Spot VMs: reported, never deallocated
    agent: set[str] = field(default_factory=set)  # VMs with the in-guest GPU metric
    deployments: dict[str, int] = field(default_factory=dict)  # endpoint -> deployments
    workspaces: int = 0
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


def _metric_days(now: datetime) -> list[date]:
    today = now.date()
    return [today - timedelta(days=back) for back in range(METRIC_DAYS, 0, -1)]


def cell(index: int) -> tuple[str, str]:
    """The (subscription, region) of the index-th resource: round the 6 cells."""
    return SUBSCRIPTIONS[index % len(SUBSCRIPTIONS)], REGIONS[index // 2 % len(REGIONS)]


def seed_vms(
    server: AzureDevServer, fleet: Fleet, count: int, idle: set[int], agent: set[int]
) -> None:
    created = fleet.now - timedelta(days=AGE_DAYS)
    days = _metric_days(fleet.now)
    idle_order = sorted(idle)
    stopped = set(idle_order[5::10])  # a tenth of the idle VMs: stopped, still allocated
    spot = set(idle_order[3::25])  # a few idle Spot VMs
    for index in range(count):
        subscription, region = cell(index)
        team = TEAMS[index % len(TEAMS)]
        name = f"{team}-gpu-{index:04d}"
        is_idle = index in idle
        is_stopped = index in stopped
        body = server.compute.add_vm(
            subscription, name, size=_SIZE_CYCLE[index % len(_SIZE_CYCLE)], location=region,
            resource_group=f"rg-{team}-{region}",
            power_state="stopped" if is_stopped else "running", spot=index in spot,
            tags={"owner": USERS[index % len(USERS)], "team": team,
                  "env": "dev" if index % 3 else "prod"},
            time_created=created,
        )  # fmt: skip
        vm_id = str(body["id"])
        cpu_days = days[:-30] if is_stopped else days  # stopped a month ago: no CPU since
        cpu = 2.0 if is_idle else 40.0 + index % 50
        net_in, net_out = (20e6, 10e6) if is_idle else (3e9 + index * 1e6, 8e8)
        for metric, value in (
            ("Percentage CPU", cpu),
            ("Network In Total", net_in),
            ("Network Out Total", net_out),
        ):
            server.monitor.add_daily(
                vm_id, metric, dict.fromkeys(cpu_days, value), region=region,
                namespace=VM_NAMESPACE,
            )  # fmt: skip
        if index in agent and not is_stopped:
            gpu = {day: (k % 3) * 0.5 if is_idle else 35.0 + (k * 7 + index) % 60
                   for k, day in enumerate(days)}  # fmt: skip
            server.monitor.add_daily(
                vm_id, AGENT_METRIC, gpu, region=region, namespace=AGENT_NAMESPACE,
                unit="Percent",
            )  # fmt: skip
            fleet.agent.add(name)
        fleet.add(VM, name, region, idle=is_idle)
        if is_stopped:
            fleet.stopped.add(name)
        if index in spot:
            fleet.spot.add(name)


def seed_endpoints(server: AzureDevServer, fleet: Fleet, count: int, idle: set[int]) -> None:
    """`count` managed online endpoints in `WORKSPACES_PER_CELL` workspaces per subscription and
    region, one deployment each or (every fourth) two, blue/green 90/10. Every deployment
    reports the `DeploymentCapacity` heartbeat every day; all but the idle endpoints count
    `RequestsPerMinute` (split by `deployment`) every day, the idle ones none at all."""
    if count <= 0:
        return
    ml = server.mount(MachineLearningService)
    created = fleet.now - timedelta(days=AGE_DAYS)
    days = _metric_days(fleet.now)
    workspaces: dict[tuple[str, str, int], str] = {}
    for subscription in SUBSCRIPTIONS:
        for region in REGIONS:
            for k in range(WORKSPACES_PER_CELL):
                team = TEAMS[(len(workspaces) + k) % len(TEAMS)]
                workspaces[(subscription, region, k)] = ml.add_workspace(
                    subscription, f"mlw-{team}-{region}", resource_group=f"rg-ml-{region}",
                    location=region, tags={"team": team}, created_at=created,
                )  # fmt: skip
    fleet.workspaces = len(workspaces)
    for index in range(count):
        subscription, region = cell(index)
        team = TEAMS[index % len(TEAMS)]
        name = f"{team}-ep-{index:03d}"
        ws_id = workspaces[(subscription, region, index // 6 % WORKSPACES_PER_CELL)]
        names = ["blue", "green"] if index % 4 == 0 else ["blue"]
        capacity = {"blue": 2, "green": 1}
        deployments = [
            {
                "name": deployment,
                "instance_type": SERVING[(index + position) % len(SERVING)],
                "capacity": capacity[deployment],
                "environment_variables": {"WORKERS": "2"},
                "tags": {"model": f"{team}-{index:03d}-v{position + 1}"},
            }
            for position, deployment in enumerate(names)
        ]
        traffic = {"blue": 90, "green": 10} if len(names) == 2 else {"blue": 100}
        ep_id = ml.add_endpoint(
            ws_id, name, deployments=deployments, traffic=traffic,
            tags={"owner": USERS[(index * 3) % len(USERS)], "team": team}, created_at=created,
        )  # fmt: skip
        for position, deployment in enumerate(names):
            server.monitor.add_daily(
                f"{ep_id}/deployments/{deployment}", "DeploymentCapacity",
                dict.fromkeys(days, float(capacity[deployment])),
                namespace=DEPLOYMENT_NAMESPACE, region=region,
            )  # fmt: skip
            if index in idle:
                continue
            served = 2_000.0 + index * 10 if position == 0 else 200.0
            server.monitor.add_daily(
                ep_id, "RequestsPerMinute", dict.fromkeys(days, served),
                namespace=ENDPOINT_NAMESPACE, region=region,
                dimensions={"deployment": deployment},
            )  # fmt: skip
        fleet.add(ENDPOINT, name, region, idle=index in idle)
        fleet.deployments[name] = len(names)


# -- the scan --------------------------------------------------------------------------------


def child_env(server: AzureDevServer, tmp: Path) -> dict[str, str]:
    """This process's environment without the machine's Azure login, with the server's
    managed-identity endpoint, its CA and its URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AZURE_") and key not in LEAKY_AZURE_VARS
    }
    # This file is named azure.py: with its folder on the path, `import azure` (the SDK's
    # namespace package) would find it instead.
    here = Path(__file__).resolve().parent
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    kept = [p for p in path if Path(p).resolve() != here]
    if kept != path:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env |= server.env()
    env |= {
        "AZURE_CONFIG_DIR": str(tmp / "azure-cli"),  # no Azure CLI login
        "JANITOR_STATE_URL": f"sqlite:///{tmp / 'state.db'}",
        "JANITOR_POLICY": "",
        "JANITOR_KILL_SWITCH": "",
    }
    return env


@dataclass
class Scan:
    measured: Measured
    by_namespace: Counter[tuple[str, str]]
    namespace_busy_s: dict[str, float]
    found: dict[str, set[str]]  # kind -> names reported idle
    statuses: dict[str, Counter[str]]  # kind -> status -> findings
    confidence: dict[str, Counter[str]]  # kind -> confidence of the idle findings
    errors: list[str]
    skipped: list[str]

    @property
    def calls(self) -> Counter[str]:
        return self.measured.calls


def write_policy(path: Path, *, agent: bool, endpoints: bool) -> None:
    text = POLICY_HEAD.format(subscriptions=", ".join(SUBSCRIPTIONS))
    text += VM_RULE_AGENT if agent else VM_RULE
    if endpoints:
        text += ENDPOINT_RULE
    path.write_text(text, encoding="utf-8")


def run_scan(server: TimedAzureServer, workdir: Path, *, agent: bool, endpoints: bool) -> Scan:
    tmp = Path(tempfile.mkdtemp(prefix="janitor-azure-", dir=workdir))
    (tmp / "azure-cli").mkdir()
    policy = tmp / "policy.yaml"
    write_policy(policy, agent=agent, endpoints=endpoints)
    report = tmp / "report.json"
    argv = [*janitor_command(), "scan", "--policy", str(policy), "--format", "json"]
    argv += ["--output", str(report)]
    measured = measure(server, argv, child_env(server, tmp), tmp / "janitor.log")
    found: dict[str, set[str]] = {k: set() for k in KINDS}
    statuses: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    confidence: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    errors: list[str] = []
    skipped: list[str] = []
    if report.exists():
        document = json.loads(report.read_text(encoding="utf-8"))
        for row in document.get("findings", []):
            kind = str(row.get("kind"))
            statuses.setdefault(kind, Counter())[str(row.get("status"))] += 1
            if row.get("status") == "idle":
                found.setdefault(kind, set()).add(str(row.get("name")))
                confidence.setdefault(kind, Counter())[str(row.get("confidence"))] += 1
        errors = [str(e.get("message", e)) for e in document.get("errors", [])]
        skipped = [str(line) for line in document.get("skipped", [])]
    return Scan(
        measured, server.metric_calls, server.namespace_busy_s, found, statuses, confidence,
        errors, skipped,
    )  # fmt: skip


# -- the report ------------------------------------------------------------------------------


def kind_of_namespace(namespace: str) -> str:
    return ENDPOINT if namespace.lower().startswith(ML_NAMESPACE_PREFIX) else VM


def class_of(operation: str) -> str:
    if operation in LISTING:
        return "listing"
    if operation in METRICS_OPS:
        return "metrics"
    return "other"


def split_calls(scan: Scan) -> dict[str, Counter[str]]:
    """kind (and "shared") -> class (listing / metrics / other) -> calls."""
    out: dict[str, Counter[str]] = {k: Counter() for k in (*KINDS, "shared")}
    seen: Counter[str] = Counter()
    for (operation, namespace), n in scan.by_namespace.items():
        out[kind_of_namespace(namespace)]["metrics"] += n
        seen[operation] += n
    for operation, n in scan.calls.items():
        if operation in METRICS_OPS:
            n -= seen[operation]  # any the namespace split missed (only if `dispatch` moved)
            if n > 0:
                out["shared"]["metrics"] += n
            continue
        if operation in LISTING:
            out[LISTING[operation]]["listing"] += n
            continue
        kind = next((k for prefix, k in KIND_PREFIXES if operation.startswith(prefix)), "shared")
        out[kind]["other"] += n
    return out


def print_report(scan: Scan, fleet: Fleet, *, agent: bool) -> None:
    m = scan.measured
    split = split_calls(scan)
    total = sum(scan.calls.values())
    vms, endpoints = fleet.sizes[VM], fleet.sizes[ENDPOINT]
    title = (
        f"== janitor scan: {vms:,} GPU VMs ({len(fleet.idle[VM])} idle: "
        f"{len(fleet.stopped)} of them stopped but allocated, {len(fleet.spot)} Spot; "
        f"{len(fleet.agent)} with the in-guest GPU metric)"
    )
    if endpoints:
        title += (
            f" and {endpoints} online endpoints ({len(fleet.idle[ENDPOINT])} idle; "
            f"{sum(fleet.deployments.values())} deployments in {fleet.workspaces} workspaces)"
        )
    print(
        f"{title}, {len(SUBSCRIPTIONS)} subscriptions x {len(REGIONS)} regions "
        f"({', '.join(REGIONS)}), local ARM server in-process =="
    )
    gpu = f"{AGENT_NAMESPACE} {AGENT_METRIC}" if agent else "none (platform metrics only)"
    print(f"rule gpu_metric: {gpu}")
    kinds: list[tuple[str, int]] = [(VM, vms)]
    if endpoints:
        kinds.append((ENDPOINT, endpoints))
    print(calls_table(split, kinds, "shared (auth, other)", fleet.total, total))
    print(
        "  (every request the server answered: pages, token requests and any long-running "
        "operation polls included)"
    )
    print()
    vm_metrics = split[VM]["metrics"] / vms if vms else 0.0
    print(
        f"VM metrics calls per VM: {vm_metrics:.4f}  ({verdict(vm_metrics, TARGET_VM_METRICS)}"
        f"; {len(SUBSCRIPTIONS)} subscriptions x {len(REGIONS)} regions x "
        f"{2 if agent else 1} metric namespace(s) = "
        f"{len(SUBSCRIPTIONS) * len(REGIONS) * (2 if agent else 1)} calls at least)"
    )
    if endpoints:
        print(endpoint_metrics_note(scan, fleet))
    print()
    print("calls by operation:")
    for operation, n in sorted(scan.calls.items(), key=lambda item: (-item[1], item[0])):
        why = OTHER_WHY.get(operation, "")
        label = f"{class_of(operation)}{f', {why}' if why else ''}"
        print(f"  {n:5d}  {operation}  ({label})")
    if scan.by_namespace:
        print("Metrics calls by operation and namespace (the server's time):")
        for (operation, namespace), n in sorted(scan.by_namespace.items()):
            busy = scan.namespace_busy_s.get(namespace, 0.0)
            print(f"  {n:5d}  {operation}  {namespace}  ({busy:.1f} s)")
    print()
    emulator = f"{m.emulator_s:.1f} s" if m.emulator_s > 0 else "n/a"
    print(
        f"wall time of the scan: {m.wall_s:.1f} s (local server answering: {emulator}, "
        f"summed over requests); peak RSS {m.peak_rss_mb:.0f} MB; exit {m.returncode}"
    )
    for kind, _ in kinds:
        expected = fleet.idle[kind]
        hits = len(scan.found.get(kind, set()) & expected)
        wrong = len(scan.found.get(kind, set()) - expected)
        verdicts = ", ".join(f"{s} {n}" for s, n in sorted(scan.statuses.get(kind, {}).items()))
        confidence = ", ".join(
            f"{c} {n}" for c, n in sorted(scan.confidence.get(kind, Counter()).items())
        )
        extra = f" (+{wrong} wrong)" if wrong else ""
        print(
            f"{kind}: idle found {hits}/{len(expected)}{extra}; verdicts: {verdicts or 'none'}"
            f"; idle by confidence: {confidence or 'none'}"
        )
    for line in scan.skipped:
        print(f"skipped: {line}")


def endpoint_metrics_note(scan: Scan, fleet: Fleet) -> str:
    """How the ML endpoint metrics were read: batched (subscription scope) or per endpoint."""
    endpoints = fleet.sizes[ENDPOINT]
    scoped = per_resource = requests = heartbeat = 0
    for (operation, namespace), n in scan.by_namespace.items():
        if kind_of_namespace(namespace) != ENDPOINT:
            continue
        if operation == "Metrics_ListAtSubscriptionScope":
            scoped += n
        else:
            per_resource += n
            if namespace.lower() == ENDPOINT_NAMESPACE.lower():
                requests += n
            else:
                heartbeat += n
    calls = scoped + per_resource
    idle = fleet.idle[ENDPOINT]
    idle_deployments = sum(fleet.deployments.get(name, 0) for name in idle)
    head = f"ML endpoint metrics calls per endpoint: {per(calls, endpoints)} ({calls} calls)"
    if scoped:
        return (
            f"{head}: batched, {scoped} Metrics - List At Subscription Scope call(s) for the "
            f"Azure ML namespaces, {per_resource} per-resource Metrics - List call(s)"
        )
    return (
        f"{head}: one call per endpoint, not batched: Metrics - List At Subscription Scope is "
        f"not asked for {ENDPOINT_NAMESPACE} (0 calls; the kind holds that it does not serve "
        f"Azure ML online endpoints), so each endpoint's RequestsPerMinute is one Metrics - List "
        f"({requests} calls), and each deployment of an endpoint its requests do not show "
        f"active adds one heartbeat call ({heartbeat} calls; the {len(idle)} idle endpoints "
        f"have {idle_deployments} deployments)"
    )


def failures(scan: Scan, fleet: Fleet) -> list[str]:
    out: list[str] = []
    if scan.measured.returncode != 0:
        out.append(f"janitor scan exited {scan.measured.returncode}")
    out += [f"scan error: {error}" for error in scan.errors]
    for kind in KINDS:
        if not fleet.sizes[kind]:
            continue
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
        "--endpoints", type=int, default=100, help="online endpoints (default 100; 0: no rule)"
    )
    parser.add_argument(
        "--idle-endpoints", type=int, default=10, help="idle endpoints (default 10)"
    )
    parser.add_argument(
        "--agent",
        type=int,
        default=0,
        help="VMs publishing the in-guest GPU metric; > 0 names it in the rule (default 0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        args.vms < 1
        or not 0 <= args.idle_vms <= args.vms
        or not 0 <= args.agent <= args.vms
        or args.endpoints < 0
        or not 0 <= args.idle_endpoints <= args.endpoints
    ):
        print(
            "azure: need --vms >= 1, 0 <= --idle-vms, --agent <= --vms and "
            "0 <= --idle-endpoints <= --endpoints",
            file=sys.stderr,
        )
        return 2
    print(
        f"python {platform.python_version()}, janitor {version('ml-janitor')}, "
        f"azure-mgmt-compute {version('azure-mgmt-compute')}, "
        f"azure-mgmt-monitor {version('azure-mgmt-monitor')}, "
        f"azure-identity {version('azure-identity')}"
    )
    with scratch_dir() as workdir, TimedAzureServer() as server:
        for subscription, display in zip(SUBSCRIPTIONS, SUBSCRIPTION_NAMES, strict=True):
            server.add_subscription(subscription, display)
        fleet = Fleet(now=datetime.now(UTC))
        started = time.perf_counter()
        idle_vms = spread(args.vms, args.idle_vms)
        seed_vms(server, fleet, args.vms, idle_vms, spread(args.vms, args.agent, offset=1))
        idle_endpoints = spread(args.endpoints, args.idle_endpoints, offset=2)
        seed_endpoints(server, fleet, args.endpoints, idle_endpoints)
        fleet.seconds = time.perf_counter() - started
        print(f"seeded {args.vms:,} VMs and {args.endpoints:,} endpoints in {fleet.seconds:.1f} s")
        scan = run_scan(server, workdir, agent=args.agent > 0, endpoints=args.endpoints > 0)
    print()
    print_report(scan, fleet, agent=args.agent > 0)
    problems = failures(scan, fleet)
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
