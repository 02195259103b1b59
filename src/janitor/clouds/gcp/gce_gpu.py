"""`gcp.gce-gpu`: running Compute Engine VMs that carry GPUs.

Scan: one `instances.aggregatedList` per project (`status = RUNNING`, 500 a page, each page
retried on its own), kept when `guestAccelerators` is non-empty or the machine type is
accelerator-optimised (`ACCELERATOR_OPTIMISED`: the GPUs are built in). The policy's regions
filter the zones client-side. A zone the answer marks `UNREACHABLE` is reported
(`scan_warnings`) and the rest is used. A VM's `region` is its zone's region; its id is
`{zone}/{name}`; its numeric id (what Monitoring knows it by) is `details["instance_id"]`.

Usage, batched per project through `monitoring.py` (one query per metric type, never one per
VM), daily buckets:

* HIGH: the Ops Agent's `agent.googleapis.com/gpu/utilization`, ALIGN_MAX, max across the VM's
  GPUs; a day is active above `gpu_utilization_percent`. A VM that had GPU series in the window
  but whose newest point is more than three days old is unknown (the agent went silent), never
  judged by its CPU.
* LOW, for VMs with no GPU series: `compute.googleapis.com/instance/cpu/utilization` (a 0-1
  fraction) ALIGN_MAX above `cpu_utilization_percent`/100, or network received + sent bytes
  (ALIGN_SUM, two queries) above `network_mb_per_day`. Queried only when some VM needs them.
* No series at all: unknown. A failed query fails the scope (unknown, never idle).
* With the policy's regions, each query keeps only the series of VMs in their zones
  (`resource.labels.zone = starts_with("{region}-")`): the answer, and its pages, grow with the
  VMs scanned, not with the whole project.

Stop: `instances.stop`, then the zone operation is waited on with the scope's
`ZoneOperationsClient` (same client options), a bounded number of times. A VM with a local SSD
is never stopped (its data would be lost): `stop_refusal`, at most a notice.
Restore: `instances.start`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as core_exceptions
from google.cloud import compute_v1

from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.clouds.gcp.monitoring import Daily, MetricQuery, daily_values
from janitor.clouds.gcp.scope import GcpScope, zone_region
from janitor.clouds.gcp.session import aggregated_list_request, call, one_line
from janitor.evidence import (
    DAY,
    STALE_AFTER,
    daily_bounds,
    daily_streak,
    idle_since,
    in_use_on,
    is_stale,
)
from janitor.model import (
    Cloud,
    Confidence,
    Resource,
    ResourceRef,
    StopOutcome,
    StopPlan,
    StopResult,
    Verdict,
    Window,
    utc,
)

if TYPE_CHECKING:
    from janitor.policy import Rule

KIND = "gcp.gce-gpu"


def _instance_id(resource: Resource) -> str:
    """The VM's numeric id: the `instance_id` label of its Cloud Monitoring series."""
    return str(resource.details.get("instance_id"))


@dataclass(frozen=True, slots=True)
class BuiltIn:
    """The GPUs an accelerator-optimised machine family carries."""

    gpu: str  # accelerator type
    count_pattern: str = r"-(\d+)g$"  # the GPU count in the machine type's name, if it says
    counts: Mapping[str, int] | None = None  # machine type -> GPUs, where the name does not say


# Accelerator-optimised machine families (GPUs built in), the one list of them. The machine
# type's catalog price includes its GPUs, so they are not priced again.
ACCELERATOR_OPTIMISED: Mapping[str, BuiltIn] = {
    "a2-": BuiltIn("nvidia-tesla-a100"),  # a2-highgpu-Ng, a2-megagpu-16g (a2-ultragpu: 80GB)
    "a3-": BuiltIn("nvidia-h100-80gb"),
    "a4-": BuiltIn("nvidia-b200"),
    "a4x-": BuiltIn("nvidia-gb200"),
    "g2-": BuiltIn(
        "nvidia-l4",
        counts={
            "g2-standard-4": 1,
            "g2-standard-8": 1,
            "g2-standard-12": 1,
            "g2-standard-16": 1,
            "g2-standard-32": 1,
            "g2-standard-24": 2,
            "g2-standard-48": 4,
            "g2-standard-96": 8,
        },
    ),
    "g4-": BuiltIn("nvidia-rtx-pro-6000"),
}

GPU_METRIC = "agent.googleapis.com/gpu/utilization"
CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
RX_METRIC = "compute.googleapis.com/instance/network/received_bytes_count"
TX_METRIC = "compute.googleapis.com/instance/network/sent_bytes_count"
RESOURCE_TYPE = "gce_instance"

GPU_QUERY = MetricQuery(GPU_METRIC, RESOURCE_TYPE, "instance_id")
CPU_QUERY = MetricQuery(CPU_METRIC, RESOURCE_TYPE, "instance_id")
RX_QUERY = MetricQuery(RX_METRIC, RESOURCE_TYPE, "instance_id", "ALIGN_SUM", "sum")
TX_QUERY = MetricQuery(TX_METRIC, RESOURCE_TYPE, "instance_id", "ALIGN_SUM", "sum")

# Bounded wait on a zone operation: `zoneOperations.wait` returns when the operation is done
# or after about two minutes.
MAX_OPERATION_WAITS = 10
_POLL_PAUSE_SECONDS = 0.2

_STOPPED = frozenset({"TERMINATED", "STOPPING", "SUSPENDED", "SUSPENDING"})
_STARTING = frozenset({"RUNNING", "PROVISIONING", "STAGING"})


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def accelerator_optimised(machine_type: str) -> BuiltIn | None:
    # Longest prefix first: "a4x-" before "a4-".
    for prefix in sorted(ACCELERATOR_OPTIMISED, key=len, reverse=True):
        if machine_type.startswith(prefix):
            return ACCELERATOR_OPTIMISED[prefix]
    return None


def built_in_gpus(machine_type: str) -> tuple[str, int | None] | None:
    """(GPU type, count or None when unknown) of an accelerator-optimised machine type."""
    family = accelerator_optimised(machine_type)
    if family is None:
        return None
    if family.counts is not None and machine_type in family.counts:
        return family.gpu, family.counts[machine_type]
    found = re.search(family.count_pattern, machine_type)
    return family.gpu, int(found.group(1)) if found else None


def _attached(instance: compute_v1.Instance) -> list[tuple[str, int]]:
    return [
        (_last(a.accelerator_type), int(a.accelerator_count))
        for a in instance.guest_accelerators
        if a.accelerator_count
    ]


def carries_gpus(instance: compute_v1.Instance) -> bool:
    machine_type = _last(instance.machine_type)
    return bool(_attached(instance)) or accelerator_optimised(machine_type) is not None


def _is_spot(instance: compute_v1.Instance) -> bool:
    scheduling = instance.scheduling
    return bool(scheduling.preemptible) or scheduling.provisioning_model == "SPOT"


def _local_ssds(instance: compute_v1.Instance) -> int:
    return sum(1 for disk in instance.disks if disk.type_ == "SCRATCH")


def stop_refusal(instance: compute_v1.Instance) -> str | None:
    """Why janitor must never stop this VM, or None."""
    ssds = _local_ssds(instance)
    if ssds:
        return (
            f"{ssds} local SSD{'s' if ssds != 1 else ''} (a stop loses their data): "
            "never stopped by janitor"
        )
    return None


def _units(machine_type: str, attached: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    units: list[dict[str, Any]] = [{"service": "gce", "sku": machine_type, "count": 1}]
    if accelerator_optimised(machine_type) is None:
        units += [{"service": "gce-gpu", "sku": gpu, "count": n} for gpu, n in attached]
    return units


def _time(text: str) -> datetime | None:
    if not text:
        return None
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


# --- scan ------------------------------------------------------------------------------------


class GceGpuScanner:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope
        # Zones the aggregated list could not reach, as report lines (the rest is used).
        self.scan_warnings: list[str] = []

    def scan(self) -> Iterator[Resource]:
        self.scan_warnings = []
        request = aggregated_list_request(self._scope.project)
        while True:
            pager = call(self._scope.instances.aggregated_list, request=request)
            page = next(iter(pager.pages))
            for key, scoped in page.items.items():
                zone = _last(key)
                if not self._scope.zone_wanted(zone):
                    continue
                # The generated `Warning` type does not declare its fields to mypy.
                warning: Any = scoped.warning if "warning" in scoped else None
                if warning is not None and str(warning.code) == "UNREACHABLE":
                    self.scan_warnings.append(
                        f"zone {zone} unreachable, its VMs not scanned: {warning.message}"
                    )
                for instance in scoped.instances:
                    if instance.status == "RUNNING" and carries_gpus(instance):
                        yield self._resource(instance, zone)
            if not page.next_page_token:
                return
            request = aggregated_list_request(self._scope.project)
            request.page_token = page.next_page_token

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the aggregated list holds everything the pipeline needs

    def _resource(self, instance: compute_v1.Instance, zone: str) -> Resource:
        machine_type = _last(instance.machine_type)
        attached = _attached(instance)
        gpus = list(attached)
        built = built_in_gpus(machine_type)
        if not gpus and built is not None and built[1] is not None:
            gpus = [(built[0], built[1])]
        created = _time(instance.creation_timestamp)
        assert created is not None
        started = _time(instance.last_start_timestamp) or created
        return Resource(
            ref=ResourceRef(
                Cloud.GCP, KIND, self._scope.project, zone_region(zone), f"{zone}/{instance.name}"
            ),
            name=instance.name,
            state=instance.status,
            created_at=created,
            tags=dict(instance.labels),
            last_started_at=started,
            instance_type=machine_type,
            stop_refusal=stop_refusal(instance),
            details={
                "instance_id": str(instance.id),
                "zone": zone,
                "lifecycle": "spot" if _is_spot(instance) else "on-demand",
                "gpus": [{"type": gpu, "count": n} for gpu, n in gpus],
                "units": _units(machine_type, attached),
            },
        )


# --- usage -----------------------------------------------------------------------------------


def zone_filter(regions: Sequence[str]) -> str:
    """A Monitoring filter clause that keeps the series of `gce_instance`s in `regions`."""
    zones = " OR ".join(f'resource.labels.zone = starts_with("{region}-")' for region in regions)
    return f"({zones})"


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _in(days: Mapping[datetime, float], start: datetime, end: datetime) -> dict[datetime, float]:
    return {day: value for day, value in days.items() if start <= day < end}


class GceGpuProbe:
    def __init__(self, scope: GcpScope, *, thresholds: Mapping[str, float]) -> None:
        self._scope = scope
        self._gpu_pct = float(thresholds["gpu_utilization_percent"])
        self._cpu_pct = float(thresholds["cpu_utilization_percent"])
        self._net_bytes = float(thresholds["network_mb_per_day"]) * 1e6

    def _query(
        self, query: MetricQuery, start: datetime, end: datetime, wanted: Collection[str]
    ) -> Daily:
        if self._scope.regions:  # only the series of VMs in the policy's regions
            query = replace(query, extra_filter=zone_filter(self._scope.regions))
        return daily_values(
            self._scope.session, self._scope.project, query, start, end, wanted=wanted
        )

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        start, end = daily_bounds(window)
        gpu = self._query(GPU_QUERY, start, end, {_instance_id(r) for r in resources})

        def gpu_days(resource: Resource) -> dict[datetime, float]:
            return _in(gpu.get(_instance_id(resource), {}), start, end)

        fallback = [r for r in resources if not gpu_days(r)]
        cpu: Daily = {}
        rx: Daily = {}
        tx: Daily = {}
        if fallback:  # one query per metric type, only when some VM has no GPU series
            ids = {_instance_id(r) for r in fallback}  # and only their series are kept
            cpu = self._query(CPU_QUERY, start, end, ids)
            rx = self._query(RX_QUERY, start, end, ids)
            tx = self._query(TX_QUERY, start, end, ids)
        verdicts: dict[str, Verdict] = {}
        for resource in resources:
            days = gpu_days(resource)
            if days:
                verdicts[resource.ref.key] = self._gpu_verdict(resource, days, window, now)
                continue
            instance_id = _instance_id(resource)
            net: dict[datetime, float] = {}
            for series in (rx.get(instance_id, {}), tx.get(instance_id, {})):
                for day, value in _in(series, start, end).items():
                    net[day] = net.get(day, 0.0) + value
            verdicts[resource.ref.key] = self._fallback_verdict(
                resource, _in(cpu.get(instance_id, {}), start, end), net, window, now
            )
        return verdicts

    def _gpu_verdict(
        self, resource: Resource, daily: Mapping[datetime, float], window: Window, now: datetime
    ) -> Verdict:
        ref = resource.ref
        source = f"Ops Agent {GPU_METRIC}, daily max across GPUs, active above {self._gpu_pct:g}%"
        newest = max(daily)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"the Ops Agent stopped reporting on {_day(newest)}: newest {GPU_METRIC} point "
                f"more than {STALE_AFTER.days} days ago (agent or VM silent)",
            )
        streak = daily_streak({day: value > self._gpu_pct for day, value in daily.items()})
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"GPU utilisation {_pct(daily[last])} on {_day(last)} ({source})",
                last_activity=min(last + DAY, now),
            )
        since = min(idle_since(streak, resource, window, daily), now)
        idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
        peak = max(daily[day] for day in idle)
        evidence = f"max GPU utilisation {_pct(peak)} since {_day(since)} ({source})"
        if streak.last_active_day is not None:
            evidence += f"; last busy day {_day(streak.last_active_day)}"
        return Verdict.idle(
            ref, since, evidence, confidence=Confidence.HIGH, last_activity=streak.last_activity
        )

    def _fallback_verdict(
        self,
        resource: Resource,
        cpu: Mapping[datetime, float],
        net: Mapping[datetime, float],
        window: Window,
        now: datetime,
    ) -> Verdict:
        ref = resource.ref
        why = (
            f"fallback: no {GPU_METRIC} series for this VM (install the Ops Agent for a "
            "high-confidence verdict)"
        )
        source = (
            f"{CPU_METRIC} daily max and network received+sent bytes per day, active above "
            f"{self._cpu_pct:g}% CPU or {_mb(self._net_bytes)}/day"
        )
        days = set(cpu) | set(net)
        if not days:
            return Verdict.unknown(
                ref,
                f"no GPU, CPU or network series in Cloud Monitoring since {_day(window.start)}",
            )
        newest = max(days)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"newest CPU/network point is from {_day(newest)}, more than "
                f"{STALE_AFTER.days} days ago; {why}",
            )
        cpu_limit = self._cpu_pct / 100.0  # the metric is a 0-1 fraction
        streak = daily_streak(
            {
                day: cpu.get(day, 0.0) > cpu_limit or net.get(day, 0.0) > self._net_bytes
                for day in days
            }
        )
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"CPU {_pct(cpu.get(last, 0.0) * 100)}, network {_mb(net.get(last, 0.0))} on "
                f"{_day(last)} ({source}); {why}",
                last_activity=min(last + DAY, now),
                confidence=Confidence.LOW,
            )
        since = min(idle_since(streak, resource, window, days), now)
        idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
        peak_cpu = max((cpu[d] for d in idle if d in cpu), default=0.0) * 100
        peak_net = max((net[d] for d in idle if d in net), default=0.0)
        return Verdict.idle(
            ref,
            since,
            f"max CPU {_pct(peak_cpu)}, max network {_mb(peak_net)}/day since {_day(since)} "
            f"({source}); {why}",
            confidence=Confidence.LOW,
            last_activity=streak.last_activity,
        )


# --- stop / restore --------------------------------------------------------------------------


def _split(resource_id: str) -> tuple[str, str]:
    zone, _, name = resource_id.partition("/")
    return zone, name


def _operation_error(operation: compute_v1.Operation) -> str | None:
    if "error" not in operation or not operation.error.errors:
        return None
    return "; ".join(f"{e.code}: {e.message}" for e in operation.error.errors)


class GceGpuStopper:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope

    def _get(self, zone: str, name: str) -> compute_v1.Instance | None:
        try:
            return call(
                self._scope.instances.get, project=self._scope.project, zone=zone, instance=name
            )
        except core_exceptions.NotFound:
            return None

    def plan(self, resource: Resource) -> StopPlan:
        zone, name = _split(resource.ref.id)

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            instance = self._get(zone, name)
        except core_exceptions.GoogleAPICallError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if instance is None:
            return refuse(StopOutcome.NOT_FOUND, f"VM {name} in {zone} no longer exists")
        fresh = replace(resource, state=instance.status, tags=dict(instance.labels))
        status = instance.status
        if status in _STOPPED:
            return refuse(StopOutcome.ALREADY_STOPPED, f"VM {name} is {status}", fresh)
        if status != "RUNNING":
            return refuse(StopOutcome.REFUSED_STATE, f"VM {name} is {status}, not RUNNING", fresh)
        refusal = stop_refusal(instance)
        if refusal is not None:
            return refuse(StopOutcome.REFUSED_STATE, f"VM {name}: {refusal}", fresh)
        recipe = {
            "kind": KIND,
            "project": self._scope.project,
            "zone": zone,
            "name": name,
            "instance_id": str(instance.id),
            "machine_type": _last(instance.machine_type),
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        zone, name = str(recipe["zone"]), str(recipe["name"])
        project = str(recipe.get("project") or self._scope.project)
        try:
            operation = call(
                self._scope.instances.stop_unary, project=project, zone=zone, instance=name
            )
        except core_exceptions.NotFound:
            return StopResult(StopOutcome.NOT_FOUND, f"VM {name} in {zone} vanished")
        except core_exceptions.GoogleAPICallError as exc:
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        try:
            done = self._wait(project, zone, operation)
        except core_exceptions.GoogleAPICallError as exc:
            return StopResult(
                StopOutcome.FAILED,
                f"stop of {name} sent; waiting failed: {one_line(exc)}",
                restore=recipe,
            )
        if done is None:
            return StopResult(
                StopOutcome.FAILED,
                f"stop of {name} sent but its operation {operation.name} was not done after "
                f"{MAX_OPERATION_WAITS} waits",
                restore=recipe,
            )
        error = _operation_error(done)
        if error is not None:
            return StopResult(StopOutcome.FAILED, f"stop of {name} failed: {error}", restore=recipe)
        return StopResult(
            StopOutcome.STOPPED,
            f"stopped VM {name} in {zone} ({recipe['machine_type']}); its persistent disks are "
            "kept and still billed",
            restore=recipe,
        )

    def _wait(
        self, project: str, zone: str, operation: compute_v1.Operation
    ) -> compute_v1.Operation | None:
        """The operation once DONE, or None after `MAX_OPERATION_WAITS` waits."""
        for attempt in range(MAX_OPERATION_WAITS + 1):
            if operation.status == compute_v1.Operation.Status.DONE:
                return operation
            if attempt == MAX_OPERATION_WAITS:
                break
            if attempt:
                time.sleep(_POLL_PAUSE_SECONDS)
            operation = call(
                self._scope.zone_operations.wait,
                project=project,
                zone=zone,
                operation=operation.name,
            )
        return None

    def restore(self, recipe: Mapping[str, Any]) -> str:
        zone, name = str(recipe["zone"]), str(recipe["name"])
        project = str(recipe.get("project") or self._scope.project)
        label = f"VM {name} in {project}/{zone}"
        instance = self._get(zone, name)
        if instance is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        status = instance.status
        if status in _STARTING:
            return f"{label} is already {status}"
        if status in {"STOPPING", "SUSPENDING"}:
            raise RestoreFailed(f"{label} is still stopping: run restore again once it is stopped")
        operation = call(
            self._scope.instances.start_unary, project=project, zone=zone, instance=name
        )
        done = self._wait(project, zone, operation)
        if done is not None and (error := _operation_error(done)) is not None:
            raise RestoreFailed(f"{label}: start failed: {error}")
        return f"started {label} (was {status})"


def build(scope: GcpScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=GceGpuScanner(scope),
        probe=GceGpuProbe(scope, thresholds=rule.thresholds),
        stopper=GceGpuStopper(scope),
    )
