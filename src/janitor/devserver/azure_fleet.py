"""A realistic small Azure subscription for the demo and the end-to-end tests, seeded into the
local Azure Resource Manager (`janitor.devserver.azure.AzureDevServer`).

The Azure counterpart of `fleet.py` and `gcp_fleet.py`: GPU VMs and an Azure Machine Learning
workspace (managed online endpoints with their deployments, compute instances), each created in
the past with the daily Azure Monitor values that tell its story (busy, idle for N days,
stopped but still allocated, Spot, exempt, no idle shutdown), and `advance_azure_fleet` to keep
the story going as the demo's simulated days pass.

Azure has no platform GPU metric for VMs: their stories are told in `Percentage CPU` (daily
maximum) and `Network In Total` / `Network Out Total` (daily totals), what janitor reads without
an in-guest agent. An online endpoint's in `RequestsPerMinute` per deployment (no value on a
day without requests, as Azure Monitor answers) with each deployment's
`CpuUtilizationPercentage` as the heartbeat. A compute instance's in its `lastOperation`. Owner
tags hold email addresses (Azure tag values can hold `@`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from janitor.devserver.azure import AzureDevServer
from janitor.devserver.azure.ml import MachineLearningService

DEMO_SUBSCRIPTION = "3f2c8a1e-5b7d-4c9e-a1f0-6d2b8e4c7a90"
DEMO_SUBSCRIPTION_NAME = "ml-research"

# Azure Monitor names, as janitor's azure.vm-gpu kind reads them (janitor.clouds.azure.vm_gpu).
VM_NAMESPACE = "Microsoft.Compute/virtualMachines"
CPU = "Percentage CPU"
NETWORK = ("Network In Total", "Network Out Total")
BUSY_CPU, IDLE_CPU = 78.0, 1.5  # percent, the day's maximum
BUSY_NET, IDLE_NET = 9e9, 2e5  # bytes a day, each direction
# Azure ML online endpoints (janitor.clouds.azure.ml_endpoint).
ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
REQUESTS = "RequestsPerMinute"  # the day's total
HEARTBEAT = "CpuUtilizationPercentage"  # a deployment's, the day's maximum
BUSY_REQUESTS = 86_400.0  # a day's requests per deployment when busy (a minute's worth: 60)
BUSY_DEPLOYMENT_CPU, IDLE_DEPLOYMENT_CPU = 64.0, 3.0


@dataclass(frozen=True)
class AzureVm:
    name: str
    owner: str | None  # the `owner` tag: an email address
    size: str
    location: str
    age_days: int
    # None: busy every day. An int: no work for that many days: for a running VM its CPU and
    # network went quiet then; for a stopped one (`stopped`), it was stopped then.
    idle_days: int | None
    resource_group: str = "ml-research-rg"
    stopped: bool = False  # stopped but not deallocated: its compute is still billed
    spot: bool = False
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlDeployment:
    name: str
    instance_type: str
    capacity: int
    traffic_percent: int


@dataclass(frozen=True)
class MlEndpoint:
    name: str  # what janitor reports and `restore` takes
    owner: str | None
    age_days: int
    idle_days: int | None  # None: requests every day
    deployments: Sequence[MlDeployment]


@dataclass(frozen=True)
class MlComputeInstance:
    name: str
    owner: str | None
    vm_size: str
    age_days: int
    last_started_days_ago: float  # its lastOperation: a Start this long ago
    idle_time_before_shutdown: str | None = None  # None: idle shutdown off (janitor advises)


@dataclass(frozen=True)
class MlWorkspace:
    name: str
    location: str
    age_days: int
    endpoints: Sequence[MlEndpoint]
    compute_instances: Sequence[MlComputeInstance]
    resource_group: str = "ml-research-rg"


@dataclass(frozen=True)
class AzureFleet:
    subscription: str
    subscription_name: str
    vms: Sequence[AzureVm]
    workspaces: Sequence[MlWorkspace] = ()


def demo_azure_fleet(subscription: str = DEMO_SUBSCRIPTION) -> AzureFleet:
    """The Azure subscription `janitor demo` shows next to the AWS account and the GCP project.

    On the demo's days (default policy: notice at 30 idle days, warning at 53, stop at 60):
    cv-train-nc24s (idle, no CPU or network for 57 days) and bert-nc6s-stopped (stopped, not
    deallocated, 55 days ago: still billing) are warned on day 0 and deallocated on day 7;
    viz-nv12s gets a notice, a warning two or three days later and is deallocated a week after
    that; spot-a100-sweep (a Spot VM: deallocating gives up its capacity) gets a notice only;
    nd-h100-benchmark is idle but exempt; llm-finetune-nd96 is busy.

    In the Azure ML workspace research-ws: the online endpoint sentiment-online (two
    deployments, traffic 80/20, no request for 56 days) is warned on day 0 and, on day 7, its
    traffic set to zero and its deployments deleted (the endpoint kept); fraud-score-online
    serves requests; the compute instance carol-gpu-ci (started 40 days ago, idle shutdown off)
    gets a notice with the advice to set idleTimeBeforeShutdown; alice-ci has it and was started
    yesterday.
    """
    return AzureFleet(
        subscription=subscription,
        subscription_name=DEMO_SUBSCRIPTION_NAME,
        vms=(
            AzureVm(
                "llm-finetune-nd96", "alice@example.com", "Standard_ND96asr_v4", "eastus", 45, None
            ),
            AzureVm("cv-train-nc24s", "bob@example.com", "Standard_NC24s_v3", "eastus", 100, 57),
            AzureVm(
                "bert-nc6s-stopped", "dave@example.com", "Standard_NC6s_v3", "eastus", 120, 55,
                stopped=True,
            ),
            AzureVm("viz-nv12s", "carol@example.com", "Standard_NV12s_v3", "westeurope", 80, 51),
            AzureVm(
                "spot-a100-sweep", "alice@example.com", "Standard_NC24ads_A100_v4", "eastus", 90,
                70, spot=True,
            ),
            AzureVm(
                "nd-h100-benchmark", "carol@example.com", "Standard_ND96isr_H100_v5", "eastus",
                100, 65, extra_tags={"janitor-exempt": "2027-06-30"},
            ),
        ),
        workspaces=(
            MlWorkspace(
                "research-ws", "eastus", 200,
                endpoints=(
                    MlEndpoint(
                        "sentiment-online", "carol@example.com", 110, 56,
                        (
                            MlDeployment("blue", "Standard_NC4as_T4_v3", 2, 80),
                            MlDeployment("green", "Standard_DS3_v2", 1, 20),
                        ),
                    ),
                    MlEndpoint(
                        "fraud-score-online", "alice@example.com", 150, None,
                        (MlDeployment("main", "Standard_DS3_v2", 2, 100),),
                    ),
                ),
                compute_instances=(
                    MlComputeInstance(
                        "carol-gpu-ci", "carol@example.com", "STANDARD_NC4AS_T4_V3", 90, 40
                    ),
                    MlComputeInstance(
                        "alice-ci", "alice@example.com", "STANDARD_DS3_V2", 30, 0.8,
                        idle_time_before_shutdown="PT60M",
                    ),
                ),
            ),
        ),
    )  # fmt: skip


def _tags(owner: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    tags = {"team": "ml-platform", "project": "research", **extra}
    if owner:
        tags["owner"] = owner
    return tags


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _days(since: datetime, until: datetime) -> list[date]:
    """The UTC days from `since`'s to `until`'s, both included (Azure Monitor's daily grain:
    the current day's value is the day so far)."""
    day, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


def _quiet_from(vm: AzureVm, seeded_at: datetime) -> datetime | None:
    return None if vm.idle_days is None else seeded_at - timedelta(days=vm.idle_days)


def _busy_on(day: date, quiet_from: datetime | None) -> bool:
    """Busy on the days that ended before the VM went quiet; idle from the day it did."""
    return quiet_from is None or _midnight(day) + timedelta(days=1) <= quiet_from


@dataclass
class _Publisher:
    server: AzureDevServer
    seeded_at: datetime
    published: int = 0

    def vm(self, vm: AzureVm, resource_id: str, days: Sequence[date]) -> None:
        quiet = _quiet_from(vm, self.seeded_at)
        if vm.stopped:  # a stopped VM has no metrics since it stopped
            days = [d for d in days if _busy_on(d, quiet)]
        if not days:
            return

        def story(busy: float, idle: float) -> dict[date, float]:
            return {d: busy if _busy_on(d, quiet) else idle for d in days}

        add = self.server.monitor.add_daily
        add(resource_id, CPU, story(BUSY_CPU, IDLE_CPU), namespace=VM_NAMESPACE,
            region=vm.location)  # fmt: skip
        for metric in NETWORK:
            add(resource_id, metric, story(BUSY_NET, IDLE_NET), namespace=VM_NAMESPACE,
                region=vm.location)  # fmt: skip
        self.published += len(days) * (1 + len(NETWORK))

    def endpoint(
        self,
        ep: MlEndpoint,
        endpoint_id: str,
        location: str,
        deployments: Sequence[str],
        days: Sequence[date],
    ) -> None:
        """The days' values of the endpoint's `deployments` (those that exist)."""
        quiet = None if ep.idle_days is None else self.seeded_at - timedelta(days=ep.idle_days)
        add = self.server.monitor.add_daily
        for deployment in deployments:
            heartbeat = {
                d: BUSY_DEPLOYMENT_CPU if _busy_on(d, quiet) else IDLE_DEPLOYMENT_CPU for d in days
            }
            add(f"{endpoint_id}/deployments/{deployment}", HEARTBEAT, heartbeat,
                namespace=DEPLOYMENT_NAMESPACE, region=location, unit="Percent")  # fmt: skip
            # No value at all on a day without requests, as Azure Monitor answers.
            busy = {d: BUSY_REQUESTS for d in days if _busy_on(d, quiet)}
            if busy:
                add(endpoint_id, REQUESTS, busy, namespace=ENDPOINT_NAMESPACE, region=location,
                    dimensions={"deployment": deployment})  # fmt: skip
            self.published += len(heartbeat) + len(busy)


def seed_azure_fleet(server: AzureDevServer, fleet: AzureFleet, now: datetime | None = None) -> int:
    """Create the fleet in `server` as of `now`, with its Azure Monitor history up to `now`.
    Returns the number of daily values published."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    server.add_subscription(fleet.subscription, fleet.subscription_name)
    publish = _Publisher(server, now)
    for vm in fleet.vms:
        created = now - timedelta(days=vm.age_days)
        body = server.compute.add_vm(
            fleet.subscription, vm.name, size=vm.size, location=vm.location,
            resource_group=vm.resource_group, power_state="stopped" if vm.stopped else "running",
            spot=vm.spot, tags=_tags(vm.owner, vm.extra_tags), time_created=created,
            # The ProvisioningState status time: the last operation's end (the stop, if any).
            provisioned_at=_quiet_from(vm, now) if vm.stopped else created,
        )  # fmt: skip
        publish.vm(vm, str(body["id"]), _days(created, now))
    if fleet.workspaces:
        ml = server.mount(MachineLearningService)
        for ws in fleet.workspaces:
            _seed_workspace(ml, publish, fleet.subscription, ws, now)
    return publish.published


def _seed_workspace(
    ml: MachineLearningService,
    publish: _Publisher,
    subscription: str,
    ws: MlWorkspace,
    now: datetime,
) -> None:
    ws_id = ml.add_workspace(
        subscription, ws.name, resource_group=ws.resource_group, location=ws.location,
        tags={"team": "ml-platform"}, created_at=now - timedelta(days=ws.age_days),
    )  # fmt: skip
    for ep in ws.endpoints:
        created = now - timedelta(days=ep.age_days)
        ep_id = ml.add_endpoint(
            ws_id, ep.name,
            deployments=[
                {"name": d.name, "instance_type": d.instance_type, "capacity": d.capacity}
                for d in ep.deployments
            ],
            traffic={d.name: d.traffic_percent for d in ep.deployments},
            tags=_tags(ep.owner, {}), created_at=created,
        )  # fmt: skip
        names = [d.name for d in ep.deployments]
        publish.endpoint(ep, ep_id, ws.location, names, _days(created, now))
    for ci in ws.compute_instances:
        started = now - timedelta(days=ci.last_started_days_ago)
        ml.add_compute_instance(
            ws_id, ci.name, vm_size=ci.vm_size,
            idle_time_before_shutdown=ci.idle_time_before_shutdown,
            last_operation=("Start", started, "User"), tags=_tags(ci.owner, {}),
            created_at=now - timedelta(days=ci.age_days),
        )  # fmt: skip


def advance_azure_fleet(
    server: AzureDevServer, fleet: AzureFleet, seeded_at: datetime, since: datetime,
    until: datetime,
) -> int:  # fmt: skip
    """The story goes on: publish the daily values of the days from `since` to `until`.

    Busy resources stay busy and idle ones idle, relative to the seeding time `seeded_at`. Only
    what runs publishes: a stopped or deallocated VM has no metrics, an online endpoint only
    for the deployments it has (none once janitor deleted them, until `restore`). Returns the
    number of daily values published."""
    publish = _Publisher(server, seeded_at.astimezone(UTC))
    days = _days(since, until)
    for vm in fleet.vms:
        body = server.compute.vm(fleet.subscription, vm.resource_group, vm.name)
        state = server.compute.power_state(fleet.subscription, vm.resource_group, vm.name)
        if body is not None and state == "running":
            publish.vm(vm, str(body["id"]), days)
    if fleet.workspaces:
        ml = server.mount(MachineLearningService)
        for ws in fleet.workspaces:
            for ep in ws.endpoints:
                ep_id = endpoint_id(fleet.subscription, ws, ep.name)
                body = ml.endpoint(ep_id)
                if body is not None:
                    deployed = [str(d["name"]) for d in ml.deployments(ep_id).values()]
                    publish.endpoint(ep, ep_id, ws.location, deployed, days)
    return publish.published


def endpoint_id(subscription: str, ws: MlWorkspace, name: str) -> str:
    """The ARM id of the workspace's online endpoint `name`."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{ws.resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{ws.name}/onlineEndpoints/{name}"
    )
