"""`azure.vm-gpu`: Azure virtual machines of a GPU size, running or stopped but still allocated.

Scan: one `virtual_machines.list_all(status_only="true")` per subscription (pages followed):
every VM with its instance-view statuses, so the power state comes without one instance-view
call per VM. A GPU VM whose `PowerState` status is missing (ARM leaves it out while a VM's
state is being updated) makes the listing be read again, up to `LIST_ATTEMPTS` times; one still
without a power state is reported (`scan_warnings`) and left out. GPU sizes: `is_gpu_size`, the
one rule. The policy's regions filter locations client-side. Kept: `running`, and `stopped`:
a VM that is stopped but not deallocated still bills for its compute, so it is a finding
itself and goes through the same lifecycle to deallocation.

Usage, batched through `monitor.py`: Metrics - List At Subscription Scope, one call per region
and metric namespace (never one per VM), daily grain, `top` covering every VM of the region.

* HIGH, when the rule names an in-guest GPU metric (`gpu_metric: {namespace, name}`, e.g.
  Telegraf's `nvidia_smi` `utilization_gpu`) and the VM has its series: daily maximum above
  `gpu_utilization_percent`. A namespace nobody publishes in the region (a 400) means no VM
  there has the agent.
* LOW otherwise: Azure has no platform GPU metric for VMs. `Percentage CPU` (daily maximum)
  above `cpu_utilization_percent`, or `Network In Total` + `Network Out Total` (daily total)
  above `network_mb_per_day`.
* A running VM with no series at all: unknown. A stopped VM does not run: idle (high
  confidence), since it stopped.

The idle streak starts at the latest time the evidence supports: the end of the last day its
CPU crossed the threshold, else the `ProvisioningState` status time (the `PowerState` status
carries no time), else `timeCreated`; the evidence says which was used.

Action: deallocate (`begin_deallocate`), never power off (a stopped VM still bills). Spot VMs
and VMs with an ephemeral OS disk lose their state when deallocated: `stop_refusal`, so at
most a notice. Restore: `begin_start`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from janitor.clouds.azure.monitor import Daily, MetricSpec, daily_values, top_for
from janitor.clouds.azure.scope import AzureScope
from janitor.clouds.azure.session import one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
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
    from azure.mgmt.compute.models import VirtualMachine

    from janitor.policy import GpuMetric, Rule

KIND = "azure.vm-gpu"
PRICE_SERVICE = "azure-vm"

# GPU VM sizes, the one rule: the N families (NC, ND, NV and the newer NG, NCC...). Not NP
# (FPGA). Case-insensitive: ARM answers sizes as created.
GPU_SIZE = re.compile(r"^Standard_N(?:C|D|V|G)", re.IGNORECASE)

VM_NAMESPACE = "Microsoft.Compute/virtualMachines"
CPU_METRIC = "Percentage CPU"
NET_IN_METRIC = "Network In Total"
NET_OUT_METRIC = "Network Out Total"
PLATFORM_METRICS = (
    MetricSpec(CPU_METRIC, "maximum"),
    MetricSpec(NET_IN_METRIC, "total"),
    MetricSpec(NET_OUT_METRIC, "total"),
)

LIST_ATTEMPTS = 3
_LIST_PAUSE_SECONDS = 1.0

RUNNING = "running"
STOPPED = "stopped"
FINDING_STATES = frozenset({RUNNING, STOPPED})
_GONE_STATES = frozenset({"deallocated", "deallocating"})


def is_gpu_size(size: str) -> bool:
    return GPU_SIZE.match(size) is not None


def _value(raw: Any) -> str:
    """An SDK enum (a str subclass) or a string, as its plain value."""
    return str(getattr(raw, "value", raw) or "")


def power_state(vm: VirtualMachine) -> str | None:
    """`running`, `stopped`, `deallocated`... from the instance-view statuses, or None."""
    view = vm.instance_view
    for status in (view.statuses if view is not None else None) or []:
        code = str(status.code or "")
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


def provisioning_time(vm: VirtualMachine) -> datetime | None:
    """The time of the `ProvisioningState/...` status: when the last operation completed."""
    view = vm.instance_view
    for status in (view.statuses if view is not None else None) or []:
        code = str(status.code or "")
        if code.lower().startswith("provisioningstate/") and status.time is not None:
            return utc(status.time)
    return None


def _resource_group(vm_id: str) -> str:
    parts = vm_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1]


def stop_refusal(vm: VirtualMachine) -> str | None:
    """Why janitor must never deallocate this VM, or None."""
    if _value(vm.priority).lower() == "spot":
        return "a Spot VM (deallocating gives up its capacity and state): never deallocated"
    storage = vm.storage_profile
    os_disk = storage.os_disk if storage is not None else None
    if os_disk is not None and os_disk.diff_disk_settings is not None:
        return "an ephemeral OS disk (deallocating loses its state): never deallocated"
    return None


def _size(vm: VirtualMachine) -> str:
    profile = vm.hardware_profile
    return _value(profile.vm_size if profile is not None else "")


# --- scan ------------------------------------------------------------------------------------


class VmGpuScanner:
    def __init__(self, scope: AzureScope) -> None:
        self._scope = scope
        # GPU VMs without a power state after every attempt, as report lines.
        self.scan_warnings: list[str] = []

    def _list(self) -> list[VirtualMachine]:
        return list(self._scope.compute.virtual_machines.list_all(status_only="true"))

    def scan(self) -> Iterator[Resource]:
        self.scan_warnings = []
        vms: list[VirtualMachine] = []
        for attempt in range(LIST_ATTEMPTS):
            if attempt:
                time.sleep(_LIST_PAUSE_SECONDS)
            vms = self._list()
            missing = [vm for vm in vms if self._wanted(vm) and power_state(vm) is None]
            if not missing:
                break
        per_region: dict[str, int] = {}
        for vm in vms:
            region = str(vm.location or "").lower()
            per_region[region] = per_region.get(region, 0) + 1
        for vm in vms:
            if not self._wanted(vm):
                continue
            state = power_state(vm)
            if state is None:
                self.scan_warnings.append(
                    f"VM {vm.name}: no power state in {LIST_ATTEMPTS} listings, not scanned"
                )
                continue
            if state not in FINDING_STATES:
                continue
            if vm.time_created is None and provisioning_time(vm) is None:
                self.scan_warnings.append(
                    f"VM {vm.name}: neither timeCreated nor a status time, not scanned"
                )
                continue
            yield self._resource(vm, state, per_region[str(vm.location or "").lower()])

    def _wanted(self, vm: VirtualMachine) -> bool:
        return is_gpu_size(_size(vm)) and self._scope.in_regions(str(vm.location or ""))

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the listing holds everything the pipeline needs

    def _resource(self, vm: VirtualMachine, state: str, vms_in_region: int) -> Resource:
        vm_id = str(vm.id)
        size = _size(vm)
        region = str(vm.location or "").lower()
        created = utc(vm.time_created) if vm.time_created is not None else None
        provisioned = provisioning_time(vm)
        floor = created or provisioned
        if floor is None:  # checked by `scan`
            raise ValueError(f"VM {vm.name} has neither timeCreated nor a status time")
        return Resource(
            ref=ResourceRef(Cloud.AZURE, KIND, self._scope.subscription, region, vm_id),
            name=str(vm.name),
            state=state,
            created_at=created or floor,
            tags=dict(vm.tags or {}),
            last_started_at=provisioned,
            instance_type=size,
            stop_refusal=stop_refusal(vm),
            details={
                "resource_group": _resource_group(vm_id),
                "vm_id": str(vm.vm_id or ""),
                "lifecycle": "spot" if _value(vm.priority).lower() == "spot" else "on-demand",
                "time_created": created.isoformat() if created else None,
                "provisioning_status_time": provisioned.isoformat() if provisioned else None,
                "vms_in_region": vms_in_region,
                "units": [{"service": PRICE_SERVICE, "sku": size, "count": 1}],
            },
        )


# --- usage -----------------------------------------------------------------------------------


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _in(days: Mapping[datetime, float], start: datetime, end: datetime) -> dict[datetime, float]:
    return {day: value for day, value in days.items() if start <= day < end}


def _streak_origin(since: datetime, resource: Resource, last_active: datetime | None) -> str:
    """Which evidence an idle streak starting at `since` rests on."""
    if last_active is not None and since == last_active + DAY:
        return f"the end of the last day CPU crossed the threshold ({_day(last_active)})"
    if resource.last_started_at is not None and since == resource.last_started_at:
        return f"the ProvisioningState status time ({resource.last_started_at:%Y-%m-%d %H:%M}Z)"
    if since == resource.created_at:
        return f"timeCreated ({resource.created_at:%Y-%m-%d %H:%M}Z)"
    return "the first day of the evidence"


class VmGpuProbe:
    def __init__(
        self,
        scope: AzureScope,
        *,
        thresholds: Mapping[str, float],
        gpu_metric: GpuMetric | None = None,
    ) -> None:
        self._scope = scope
        self._gpu_metric = gpu_metric
        self._gpu_pct = float(thresholds["gpu_utilization_percent"])
        self._cpu_pct = float(thresholds["cpu_utilization_percent"])
        self._net_bytes = float(thresholds["network_mb_per_day"]) * 1e6

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        start, end = daily_bounds(window)
        by_region: dict[str, list[Resource]] = {}
        for resource in resources:
            by_region.setdefault(resource.ref.region, []).append(resource)
        verdicts: dict[str, Verdict] = {}
        for region, members in sorted(by_region.items()):
            top = top_for(max(int(r.details.get("vms_in_region", 0)) for r in members))
            running = [r for r in members if r.state == RUNNING]
            gpu = self._gpu(region, running, start, end, top)
            fallback = [r for r in running if not _in(gpu.get(_key(r), {}), start, end)]
            platform: Daily = {}
            if fallback or any(r.state == STOPPED for r in members):
                platform = daily_values(
                    self._scope.monitor, region=region, namespace=VM_NAMESPACE,
                    metrics=PLATFORM_METRICS, start=start, end=end, top=top,
                )  # fmt: skip
            for resource in members:
                key = _key(resource)
                cpu = _in(platform.get(CPU_METRIC, {}).get(key, {}), start, end)
                if resource.state == STOPPED:
                    verdicts[resource.ref.key] = self._stopped_verdict(resource, cpu, now)
                    continue
                days = _in(gpu.get(key, {}), start, end)
                if days:
                    verdicts[resource.ref.key] = self._gpu_verdict(resource, days, window, now)
                    continue
                net: dict[datetime, float] = {}
                for name in (NET_IN_METRIC, NET_OUT_METRIC):
                    for day, value in _in(platform.get(name, {}).get(key, {}), start, end).items():
                        net[day] = net.get(day, 0.0) + value
                verdicts[resource.ref.key] = self._fallback_verdict(resource, cpu, net, window, now)
        return verdicts

    def _gpu(
        self, region: str, running: Sequence[Resource], start: datetime, end: datetime, top: int
    ) -> dict[str, dict[datetime, float]]:
        if self._gpu_metric is None or not running:
            return {}
        metric = MetricSpec(self._gpu_metric.name, "maximum")
        try:
            answer = daily_values(
                self._scope.monitor, region=region, namespace=self._gpu_metric.namespace,
                metrics=(metric,), start=start, end=end, top=top,
            )  # fmt: skip
        except HttpResponseError as exc:
            if exc.status_code == 400:  # nobody publishes the namespace in this region
                return {}
            raise
        return answer.get(metric.name, {})

    def _gpu_source(self) -> str:
        assert self._gpu_metric is not None
        return (
            f"in-guest {self._gpu_metric.namespace} {self._gpu_metric.name}, daily max, "
            f"active above {self._gpu_pct:g}%"
        )

    def _gpu_verdict(
        self, resource: Resource, daily: Mapping[datetime, float], window: Window, now: datetime
    ) -> Verdict:
        ref = resource.ref
        assert self._gpu_metric is not None
        newest = max(daily)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"the in-guest GPU metric {self._gpu_metric.name} stopped on {_day(newest)}: "
                f"newest point more than {STALE_AFTER.days} days ago (agent or VM silent)",
            )
        streak = daily_streak({day: value > self._gpu_pct for day, value in daily.items()})
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"GPU utilisation {_pct(daily[last])} on {_day(last)} ({self._gpu_source()})",
                last_activity=min(last + DAY, now),
            )
        since = min(idle_since(streak, resource, window, daily), now)
        idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
        peak = max(daily[day] for day in idle)
        return Verdict.idle(
            ref,
            since,
            f"max GPU utilisation {_pct(peak)} since {_day(since)} ({self._gpu_source()})",
            confidence=Confidence.HIGH,
            last_activity=streak.last_activity,
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
            "no platform GPU metric exists for Azure VMs"
            if self._gpu_metric is None
            else f"no {self._gpu_metric.name} series for this VM (install the in-guest agent)"
        )
        source = (
            f"{CPU_METRIC} daily max and {NET_IN_METRIC} + {NET_OUT_METRIC} per day, active "
            f"above {self._cpu_pct:g}% CPU or {_mb(self._net_bytes)}/day; {why}"
        )
        days = set(cpu) | set(net)
        if not days:
            return Verdict.unknown(
                ref, f"no {CPU_METRIC} or network series in Azure Monitor since "
                f"{_day(window.start)}",
            )  # fmt: skip
        newest = max(days)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"newest CPU/network point is from {_day(newest)}, more than "
                f"{STALE_AFTER.days} days ago",
            )
        streak = daily_streak(
            {
                day: cpu.get(day, 0.0) > self._cpu_pct or net.get(day, 0.0) > self._net_bytes
                for day in days
            }
        )
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"CPU {_pct(cpu.get(last, 0.0))}, network {_mb(net.get(last, 0.0))} on "
                f"{_day(last)} ({source})",
                last_activity=min(last + DAY, now),
                confidence=Confidence.LOW,
            )
        since = min(idle_since(streak, resource, window, days), now)
        idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
        peak_cpu = max((cpu[d] for d in idle if d in cpu), default=0.0)
        peak_net = max((net[d] for d in idle if d in net), default=0.0)
        origin = _streak_origin(since, resource, streak.last_active_day)
        return Verdict.idle(
            ref,
            since,
            f"max CPU {_pct(peak_cpu)}, max network {_mb(peak_net)}/day since {_day(since)}, "
            f"the idle streak starting at {origin} ({source})",
            confidence=Confidence.LOW,
            last_activity=streak.last_activity,
        )

    def _stopped_verdict(
        self, resource: Resource, cpu: Mapping[datetime, float], now: datetime
    ) -> Verdict:
        """Stopped but allocated: it does no work and still bills its compute. Idle since the
        latest the evidence supports: its last day with any CPU point (it ran then), else the
        ProvisioningState status time (the stop), else timeCreated."""
        candidates: list[tuple[datetime, str]] = []
        if cpu:
            last = max(cpu)
            candidates.append((last + DAY, f"the end of its last day with CPU data ({_day(last)})"))
        started = resource.last_started_at
        if started is not None:
            candidates.append(
                (started, f"the ProvisioningState status time ({started:%Y-%m-%d %H:%M}Z)")
            )
        candidates.append(
            (resource.created_at, f"timeCreated ({resource.created_at:%Y-%m-%d %H:%M}Z)")
        )
        since, origin = max(candidates, key=lambda c: c[0])
        since = min(since, now)
        return Verdict.idle(
            resource.ref,
            since,
            f"stopped but not deallocated (its compute is still billed) since {_day(since)}, "
            f"the idle streak starting at {origin}",
            confidence=Confidence.HIGH,
        )


def _key(resource: Resource) -> str:
    return resource.ref.id.lower()


# --- stop / restore --------------------------------------------------------------------------


class VmGpuStopper:
    def __init__(self, scope: AzureScope) -> None:
        self._scope = scope

    def _get(self, group: str, name: str) -> VirtualMachine | None:
        try:
            return self._scope.compute.virtual_machines.get(group, name, expand="instanceView")
        except ResourceNotFoundError:
            return None

    def plan(self, resource: Resource) -> StopPlan:
        group = str(resource.details["resource_group"])
        name = resource.name

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            vm = self._get(group, name)
        except HttpResponseError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if vm is None:
            return refuse(StopOutcome.NOT_FOUND, f"VM {name} in {group} no longer exists")
        state = power_state(vm) or "unknown"
        fresh = replace(resource, state=state, tags=dict(vm.tags or {}))
        if state in _GONE_STATES:
            return refuse(StopOutcome.ALREADY_STOPPED, f"VM {name} is {state}", fresh)
        if state not in FINDING_STATES:
            return refuse(
                StopOutcome.REFUSED_STATE, f"VM {name} is {state}, not running or stopped", fresh
            )
        refusal = stop_refusal(vm)
        if refusal is not None:
            return refuse(StopOutcome.REFUSED_STATE, f"VM {name}: {refusal}", fresh)
        recipe = {
            "kind": KIND,
            "subscription": self._scope.subscription,
            "resource_group": group,
            "name": name,
            "id": str(vm.id),
            "size": _size(vm),
            "power_state": state,
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        group, name = str(recipe["resource_group"]), str(recipe["name"])
        try:
            poller = self._scope.compute.virtual_machines.begin_deallocate(group, name)
        except ResourceNotFoundError:
            return StopResult(StopOutcome.NOT_FOUND, f"VM {name} in {group} vanished")
        except HttpResponseError as exc:
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        try:
            poller.result()
        except HttpResponseError as exc:
            return StopResult(
                StopOutcome.FAILED, f"deallocate of {name} failed: {one_line(exc)}", restore=recipe
            )
        return StopResult(
            StopOutcome.STOPPED,
            f"deallocated VM {name} in {group} ({recipe['size']}); its disks are kept and "
            "still billed",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        group, name = str(recipe["resource_group"]), str(recipe["name"])
        label = f"VM {name} in {recipe.get('subscription', self._scope.subscription)}/{group}"
        vm = self._get(group, name)
        if vm is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        state = power_state(vm) or "unknown"
        if state in ("running", "starting"):
            return f"{label} is already {state}"
        if state in ("deallocating", "stopping"):
            raise RestoreFailed(f"{label} is still {state}: run restore again once it is done")
        self._scope.compute.virtual_machines.begin_start(group, name).result()
        before = recipe.get("power_state")
        note = " (it was stopped, not deallocated, before janitor)" if before == STOPPED else ""
        return f"started {label} (was {state}){note}"


def build(scope: AzureScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=VmGpuScanner(scope),
        probe=VmGpuProbe(scope, thresholds=rule.thresholds, gpu_metric=rule.gpu_metric),
        stopper=VmGpuStopper(scope),
    )
