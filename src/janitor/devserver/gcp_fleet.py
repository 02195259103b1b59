"""A realistic small GCP project for the demo and the end-to-end tests, seeded into the local
GCP server (`janitor.devserver.gcp.GcpDevServer`).

The GCP counterpart of `fleet.py`: GPU VMs, Vertex AI endpoints and a Workbench instance, each
created in the past with the daily Cloud Monitoring points that tell its story (busy, idle for
N days, exempt, without the Ops Agent), and `advance_gcp_fleet` to keep the story going as the
demo's simulated days pass.

Owner labels hold bare names (`alice`, `vision-team`): GCP label values cannot hold `@` or `.`,
so a policy's `owners:` section maps them to emails and channels: `domain: example.com` for the
people, and `vision-team` to a channel (the demo's policy, `janitor.demo.DEMO_OWNERS_POLICY`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from janitor.devserver.gcp import GcpDevServer

DEMO_PROJECT = "example-ml-project"
DEMO_LOCATIONS = ("us-central1", "europe-west4")  # what the Vertex Locations API answers

# Cloud Monitoring names, as janitor's GCP kinds read them (see janitor.clouds.gcp).
GCE = "gce_instance"
VERTEX_ENDPOINT = "aiplatform.googleapis.com/Endpoint"
GPU_UTILIZATION = "agent.googleapis.com/gpu/utilization"  # the Ops Agent's, in %
CPU_UTILIZATION = "compute.googleapis.com/instance/cpu/utilization"  # a 0-1 fraction
NETWORK = (
    "compute.googleapis.com/instance/network/received_bytes_count",
    "compute.googleapis.com/instance/network/sent_bytes_count",
)
PREDICTIONS = "aiplatform.googleapis.com/prediction/online/prediction_count"
REPLICAS = "aiplatform.googleapis.com/prediction/online/replicas"


@dataclass(frozen=True)
class GpuVm:
    name: str
    owner: str | None  # the `owner` label: a bare name, mapped by the policy
    zone: str
    machine_type: str
    age_days: int
    idle_days: int | None  # None: busy every day; an int: no GPU (or CPU) work for that long
    accelerators: Sequence[tuple[str, int]] = ()  # attached GPUs; a2-/g2- types have them built in
    gpu_model: str = "NVIDIA L4"
    ops_agent: bool = True  # False: no GPU metric, only CPU and network (low confidence)
    extra_labels: dict[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        attached = sum(count for _, count in self.accelerators)
        if attached:
            return attached
        built_in = self.machine_type.rsplit("-", 1)[-1]  # a2-highgpu-2g -> 2g
        return int(built_in[:-1]) if built_in.endswith("g") and built_in[:-1].isdigit() else 1


@dataclass(frozen=True)
class DeployedModel:
    display_name: str
    machine_type: str
    accelerator: tuple[str, int] | None = None  # e.g. ("NVIDIA_TESLA_T4", 1)
    min_replicas: int = 1
    max_replicas: int = 1
    traffic_percent: int = 100


@dataclass(frozen=True)
class VertexEndpoint:
    endpoint_id: str  # the numeric id of the resource name
    display_name: str  # what janitor reports as its name (`restore` takes either)
    owner: str | None
    location: str
    age_days: int
    idle_days: int | None  # None: predictions every day
    models: Sequence[DeployedModel]
    extra_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workbench:
    name: str
    owner: str | None
    zone: str  # a Workbench instance's location is its zone
    age_days: int
    idle_days: int | None  # None: busy every day
    machine_type: str = "n1-standard-8"
    idle_timeout_seconds: int | None = None  # None: idle shutdown off (janitor advises it)
    accelerators: Sequence[tuple[str, int]] = ()
    extra_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GcpFleet:
    project: str
    locations: Sequence[str]
    gpu_vms: Sequence[GpuVm]
    endpoints: Sequence[VertexEndpoint]
    workbench: Sequence[Workbench]


def demo_gcp_fleet(project: str = DEMO_PROJECT) -> GcpFleet:
    """The GCP project `janitor demo` shows next to the AWS account.

    On the demo's days (default policy: notice at 30 idle days, warning at 53, stop at 60):
    vision-train-v100 and summarizer-ab are warned on day 0 and stopped (the endpoint's two
    models undeployed) on day 7; shared-t4-sandbox gets a notice, a warning on day 3 and is
    stopped on day 10; l4-dev-box (no Ops Agent) and carol-workbench (idle shutdown off) get
    notices; a100-benchmark is idle but exempt; the rest are busy.
    """
    return GcpFleet(
        project=project,
        locations=DEMO_LOCATIONS,
        gpu_vms=(
            GpuVm(
                "llm-pretrain-a100", "alice", "us-central1-a", "a2-highgpu-2g", 40, None,
                gpu_model="NVIDIA A100-SXM4-40GB",
            ),
            GpuVm(
                "vision-train-v100", "bob", "us-central1-a", "n1-standard-16", 95, 56,
                accelerators=(("nvidia-tesla-v100", 4),), gpu_model="Tesla V100-SXM2-16GB",
            ),
            GpuVm(
                "shared-t4-sandbox", "vision-team", "us-central1-b", "n1-standard-8", 70, 50,
                accelerators=(("nvidia-tesla-t4", 1),), gpu_model="Tesla T4",
            ),
            GpuVm(
                "l4-dev-box", "carol", "europe-west4-a", "g2-standard-8", 60, 45, ops_agent=False
            ),
            GpuVm(
                "a100-benchmark", "dave", "us-central1-a", "a2-highgpu-1g", 100, 70,
                gpu_model="NVIDIA A100-SXM4-40GB", extra_labels={"janitor-exempt": "2027-06-30"},
            ),
        ),
        endpoints=(
            VertexEndpoint(
                "1284559301044346880", "fraud-scorer-vertex", "alice", "us-central1", 150, None,
                (DeployedModel("fraud-xgb-v7", "n1-standard-4", min_replicas=2, max_replicas=4),),
            ),
            VertexEndpoint(
                "5727437217830305792", "summarizer-ab", "bob", "us-central1", 110, 54,
                (
                    DeployedModel(
                        "summarizer-gemma-7b", "g2-standard-8", min_replicas=1, max_replicas=2,
                        traffic_percent=80,
                    ),
                    DeployedModel(
                        "summarizer-distilled", "n1-standard-4", ("NVIDIA_TESLA_T4", 1),
                        traffic_percent=20,
                    ),
                ),
            ),
        ),
        workbench=(
            Workbench("carol-workbench", "carol", "us-central1-a", 80, 38),
            Workbench(
                "alice-workbench", "alice", "us-central1-a", 30, None, idle_timeout_seconds=10800
            ),
        ),
    )  # fmt: skip


def _labels(owner: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    labels = {"team": "ml-platform", **extra}
    if owner:
        labels["owner"] = owner
    return labels


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


def _days(start: datetime, until: datetime) -> list[date]:
    """The days whose noon (where the server puts a daily point) is after `start`, up to
    `until`."""
    day = start.astimezone(UTC).date()
    if _noon(day) <= start:
        day += timedelta(days=1)
    out = []
    while _noon(day) <= until:
        out.append(day)
        day += timedelta(days=1)
    return out


def _busy_on(day: date, idle_days: int | None, seeded_at: datetime) -> bool:
    """Busy until the idle streak began (`idle_days` before the seeding time), idle after."""
    return idle_days is None or _noon(day) <= seeded_at - timedelta(days=idle_days)


@dataclass
class _Publisher:
    server: GcpDevServer
    fleet: GcpFleet
    seeded_at: datetime
    published: int = 0

    def daily(
        self,
        metric: str,
        resource_type: str,
        resource: Mapping[str, str],
        days: Mapping[date, float],
        *,
        labels: Mapping[str, str] | None = None,
        kind: str = "GAUGE",
        value_type: str = "DOUBLE",
    ) -> None:
        if not days:
            return
        self.server.add_daily(
            self.fleet.project, metric, resource_type=resource_type,
            resource_labels=resource, days=days, metric_labels=labels, metric_kind=kind,
            value_type=value_type,
        )  # fmt: skip
        self.published += len(days)

    def vm(self, vm: GpuVm, instance_id: str, days: Sequence[date]) -> None:
        resource = {"instance_id": instance_id, "zone": vm.zone}

        def story(busy: float, idle: float) -> dict[date, float]:
            return {d: busy if _busy_on(d, vm.idle_days, self.seeded_at) else idle for d in days}

        if vm.ops_agent:
            for gpu in range(vm.gpus):
                labels = {"gpu_number": str(gpu), "model": vm.gpu_model}
                self.daily(GPU_UTILIZATION, GCE, resource, story(87.0, 0.0), labels=labels)
        # The hypervisor's CPU and network metrics exist for every VM, agent or not.
        self.daily(CPU_UTILIZATION, GCE, resource, story(0.71, 0.015))
        for metric in NETWORK:
            self.daily(metric, GCE, resource, story(4.5e9, 1e5), kind="DELTA", value_type="INT64")

    def endpoint(self, ep: VertexEndpoint, deployed: Sequence[Mapping[str, Any]]) -> None:
        days = _days(self.seeded_at - timedelta(days=ep.age_days), self.seeded_at)
        self.endpoint_days(ep, deployed, days)

    def endpoint_days(
        self, ep: VertexEndpoint, deployed: Sequence[Mapping[str, Any]], days: Sequence[date]
    ) -> None:
        resource = {
            "endpoint_id": ep.endpoint_id,
            "location": ep.location,
            "resource_container": self.fleet.project,
        }
        for model in deployed:
            labels = {"deployed_model_id": str(model["id"])}
            replicas = float(_replicas(model))
            self.daily(
                REPLICAS, VERTEX_ENDPOINT, resource, dict.fromkeys(days, replicas),
                labels=labels, value_type="INT64",
            )  # fmt: skip
            # Monitoring has no prediction_count point for a day without predictions.
            busy = {d: 2400.0 for d in days if _busy_on(d, ep.idle_days, self.seeded_at)}
            self.daily(
                PREDICTIONS, VERTEX_ENDPOINT, resource, busy, labels=labels, kind="DELTA",
                value_type="INT64",
            )  # fmt: skip

    def workbench(self, nb: Workbench, instance_id: str, days: Sequence[date]) -> None:
        resource = {"instance_id": instance_id, "zone": nb.zone}
        values = {d: 0.6 if _busy_on(d, nb.idle_days, self.seeded_at) else 0.01 for d in days}
        self.daily(CPU_UTILIZATION, GCE, resource, values)


def _replicas(model: Mapping[str, Any]) -> int:
    for key in ("dedicatedResources", "automaticResources"):
        if key in model:
            return int(model[key].get("minReplicaCount", 1))
    return 1


def _deployed_model(
    project: str, location: str, model: DeployedModel, deployed_id: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {"machineType": model.machine_type}
    if model.accelerator:
        spec["acceleratorType"], spec["acceleratorCount"] = model.accelerator
    return {
        "id": deployed_id,
        "model": f"projects/{project}/locations/{location}/models/{model.display_name}",
        "displayName": model.display_name,
        "dedicatedResources": {
            "machineSpec": spec,
            "minReplicaCount": model.min_replicas,
            "maxReplicaCount": model.max_replicas,
        },
    }


def seed_gcp_fleet(server: GcpDevServer, fleet: GcpFleet, now: datetime | None = None) -> int:
    """Create the fleet in `server` as of `now`, with its Monitoring history up to `now`.
    Returns the number of daily points published."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    publish = _Publisher(server, fleet, now)
    server.set_locations(fleet.project, fleet.locations)
    for vm in fleet.gpu_vms:
        created = now - timedelta(days=vm.age_days)
        body = server.add_instance(
            fleet.project, vm.zone, vm.name, machine_type=vm.machine_type,
            accelerators=vm.accelerators, labels=_labels(vm.owner, vm.extra_labels),
            created_at=created,
        )  # fmt: skip
        publish.vm(vm, str(body["id"]), _days(created, now))
    for ep in fleet.endpoints:
        created = now - timedelta(days=ep.age_days)
        models = [
            _deployed_model(fleet.project, ep.location, m, f"{ep.endpoint_id[:10]}{index:09d}")
            for index, m in enumerate(ep.models, start=1)
        ]
        split = {str(d["id"]): m.traffic_percent for d, m in zip(models, ep.models, strict=True)}
        body = server.add_endpoint(
            fleet.project, ep.location, ep.endpoint_id, display_name=ep.display_name,
            deployed_models=models, traffic_split=split,
            labels=_labels(ep.owner, ep.extra_labels), created_at=created,
        )  # fmt: skip
        deployed = body["deployedModels"]
        publish.endpoint(ep, deployed)
    for nb in fleet.workbench:
        created = now - timedelta(days=nb.age_days)
        metadata = {}
        if nb.idle_timeout_seconds is not None:
            metadata["idle-timeout-seconds"] = str(nb.idle_timeout_seconds)
        body = server.add_workbench(
            fleet.project, nb.zone, nb.name, machine_type=nb.machine_type, metadata=metadata,
            labels=_labels(nb.owner, nb.extra_labels),
            creator=f"{nb.owner or 'someone'}@example.com", accelerators=nb.accelerators,
            created_at=created,
        )  # fmt: skip
        publish.workbench(nb, str(body["gceSetup"]["instanceId"]), _days(created, now))
    return publish.published


def advance_gcp_fleet(
    server: GcpDevServer, fleet: GcpFleet, seeded_at: datetime, since: datetime, until: datetime
) -> int:
    """The story goes on: publish the daily points of the days after `since` up to `until`.

    Busy resources stay busy and idle ones idle, relative to the seeding time `seeded_at`.
    Only what still runs publishes: a stopped VM or Workbench instance has no metrics, an
    endpoint without deployed models has no replicas. Returns the number of points published.
    """
    days = _days(since, until)
    if not days:
        return 0
    publish = _Publisher(server, fleet, seeded_at.astimezone(UTC))
    for vm in fleet.gpu_vms:
        body = server.instance(fleet.project, vm.zone, vm.name)
        if body is not None and body["status"] == "RUNNING":
            publish.vm(vm, str(body["id"]), days)
    for ep in fleet.endpoints:
        endpoint = server.endpoint(fleet.project, ep.location, ep.endpoint_id)
        if endpoint is not None:
            publish.endpoint_days(ep, endpoint.get("deployedModels", []), days)
    for nb in fleet.workbench:
        instance = server.workbench(fleet.project, nb.zone, nb.name)
        if instance is not None and instance["state"] == "ACTIVE":
            publish.workbench(nb, str(instance["gceSetup"]["instanceId"]), days)
    return publish.published
