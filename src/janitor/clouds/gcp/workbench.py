"""`gcp.workbench`: Vertex AI Workbench instances (Notebooks API v2) in state ACTIVE.

Scan: one `projects.locations.instances.list` per project with location `-` (every location
at once, pages followed), REST through google-auth's authorized session at
`base_url("notebooks")`. The policy's regions filter the instances' zones client-side. A
Workbench location is a zone: the finding's `region` is its region, its id is
`{zone}/{name}`.

Evidence: the Notebooks API reports no kernel or user activity, so the strongest honest
evidence is the underlying VM's `compute.googleapis.com/instance/cpu/utilization` (a 0-1
fraction, daily max) from Cloud Monitoring, one query per project (never one per instance).
The v2 instance maps to its VM exactly through `gceSetup.instanceId`, which is the
`gce_instance` resource label `instance_id`; an instance without it is unknown. CPU alone
misses a user who reads or edits without running code, so the confidence is LOW. No series:
unknown. A day above the threshold within the last 24 hours: active.

Advice: when idle shutdown is off (`gceSetup.metadata["idle-timeout-seconds"]` absent or 0),
the finding's `advice` says so: that setting would have stopped the instance by itself.

Owners: labels only (through the policy's `owner_tags` and `owners` mapping); the instance's
`creator` email is kept in `details["creator"]`, never used as the owner (the issue names
labels as the GCP owner source).

Stop: `:stop`, then the long-running operation is polled (bounded) at `/v2/{operation}`.
Restore: `:start` (an instance already ACTIVE is a success).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as core_exceptions

from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.clouds.gcp.monitoring import MetricQuery, daily_values
from janitor.clouds.gcp.scope import GcpScope, zone_region
from janitor.clouds.gcp.session import NOTEBOOKS, base_url, checked, one_line
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

KIND = "gcp.workbench"
CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
CPU_QUERY = MetricQuery(CPU_METRIC, "gce_instance", "instance_id")
IDLE_TIMEOUT_KEY = "idle-timeout-seconds"
PAGE_SIZE = 1000

MAX_OPERATION_POLLS = 30
_POLL_PAUSE_SECONDS = 0.2

_STOPPED = frozenset({"STOPPED", "STOPPING", "SUSPENDED", "SUSPENDING"})
_STARTING = frozenset({"ACTIVE", "STARTING", "PROVISIONING"})

IDLE_SHUTDOWN_ADVICE = (
    "idle shutdown is off (metadata idle-timeout-seconds {what}): set it (e.g. 10800 = 3 hours) "
    "and Workbench stops the instance itself when its kernels and terminals are idle"
)


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _gpu_type(accelerator: str) -> str:
    """Notebooks' accelerator enum ("NVIDIA_TESLA_T4") as a GCE accelerator type."""
    return accelerator.lower().replace("_", "-")


def idle_shutdown_advice(metadata: Mapping[str, Any]) -> str | None:
    """The advice when idle shutdown is switched off, else None."""
    raw = metadata.get(IDLE_TIMEOUT_KEY)
    if raw is None or str(raw).strip() == "":
        return IDLE_SHUTDOWN_ADVICE.format(what="absent")
    try:
        seconds = float(str(raw))
    except ValueError:
        return None  # set to something we cannot read: not ours to judge
    return IDLE_SHUTDOWN_ADVICE.format(what="0") if seconds <= 0 else None


def _split_name(full: str) -> tuple[str, str, str]:
    """projects/{p}/locations/{zone}/instances/{name} -> (project, zone, name)."""
    parts = full.split("/")
    return parts[1], parts[3], parts[5]


def _full_name(project: str, zone: str, name: str) -> str:
    return f"projects/{project}/locations/{zone}/instances/{name}"


# --- scan ------------------------------------------------------------------------------------


class WorkbenchScanner:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope

    def scan(self) -> Iterator[Resource]:
        url = f"{base_url(NOTEBOOKS)}/v2/projects/{self._scope.project}/locations/-/instances"
        params: dict[str, str] = {"pageSize": str(PAGE_SIZE)}
        while True:
            body = checked(self._scope.session.get(url, params=params))
            for instance in body.get("instances", []):
                if instance.get("state") != "ACTIVE":
                    continue
                _, zone, _ = _split_name(str(instance["name"]))
                if not self._scope.zone_wanted(zone):
                    continue
                yield self._resource(instance)
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the list holds everything the pipeline needs

    def _resource(self, instance: Mapping[str, Any]) -> Resource:
        project, zone, name = _split_name(str(instance["name"]))
        gce: Mapping[str, Any] = instance.get("gceSetup", {})
        machine_type = _last(str(gce.get("machineType", ""))) or None
        gpus = [
            (_gpu_type(str(a.get("type", ""))), int(a.get("coreCount", 0) or 0))
            for a in gce.get("acceleratorConfigs", [])
        ]
        gpus = [(t, n) for t, n in gpus if t and n]
        units: list[dict[str, Any]] = []
        if machine_type:
            units.append({"service": "gce", "sku": machine_type, "count": 1})
        units += [{"service": "gce-gpu", "sku": t, "count": n} for t, n in gpus]
        created = _time(instance.get("createTime"))
        assert created is not None
        metadata: Mapping[str, Any] = gce.get("metadata", {})
        return Resource(
            ref=ResourceRef(Cloud.GCP, KIND, project, zone_region(zone), f"{zone}/{name}"),
            name=name,
            state=str(instance.get("state")),
            created_at=created,
            tags=dict(instance.get("labels", {})),
            instance_type=machine_type,
            advice=idle_shutdown_advice(metadata),
            details={
                "zone": zone,
                "instance_id": str(gce.get("instanceId") or ""),
                "creator": instance.get("creator"),
                "gpus": [{"type": t, "count": n} for t, n in gpus],
                "units": units,
                "idle_timeout_seconds": metadata.get(IDLE_TIMEOUT_KEY),
            },
        )


# --- usage -----------------------------------------------------------------------------------


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


class WorkbenchProbe:
    def __init__(self, scope: GcpScope, *, thresholds: Mapping[str, float]) -> None:
        self._scope = scope
        self._cpu_pct = float(thresholds["cpu_utilization_percent"])

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        start, end = daily_bounds(window)
        ids = {str(r.details.get("instance_id") or "") for r in resources} - {""}
        cpu = daily_values(
            self._scope.session, self._scope.project, CPU_QUERY, start, end, wanted=ids
        )
        verdicts: dict[str, Verdict] = {}
        for resource in resources:
            instance_id = str(resource.details.get("instance_id") or "")
            if not instance_id:
                verdicts[resource.ref.key] = Verdict.unknown(
                    resource.ref,
                    "the Workbench instance names no VM (no gceSetup.instanceId): no "
                    "Cloud Monitoring series can be matched to it",
                )
                continue
            days = {d: v for d, v in cpu.get(instance_id, {}).items() if start <= d < end}
            verdicts[resource.ref.key] = self._verdict(resource, instance_id, days, window, now)
        return verdicts

    def _verdict(
        self,
        resource: Resource,
        instance_id: str,
        cpu: Mapping[datetime, float],
        window: Window,
        now: datetime,
    ) -> Verdict:
        ref = resource.ref
        source = (
            f"underlying VM's {CPU_METRIC} daily max, active above {self._cpu_pct:g}%; VM "
            f"matched by gceSetup.instanceId = gce_instance instance_id {instance_id}; low "
            "confidence: CPU misses reading or editing without running code"
        )
        if not cpu:
            return Verdict.unknown(
                ref,
                f"no {CPU_METRIC} series for VM {instance_id} in Cloud Monitoring since "
                f"{_day(window.start)}",
            )
        newest = max(cpu)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"newest CPU point is from {_day(newest)}, more than {STALE_AFTER.days} days "
                f"ago ({source})",
            )
        limit = self._cpu_pct / 100.0  # the metric is a 0-1 fraction
        streak = daily_streak({day: value > limit for day, value in cpu.items()})
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"CPU {cpu[last] * 100:.1f}% on {_day(last)} ({source})",
                last_activity=min(last + DAY, now),
                confidence=Confidence.LOW,
            )
        since = min(idle_since(streak, resource, window, cpu), now)
        idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
        peak = max(cpu[day] for day in idle) * 100
        return Verdict.idle(
            ref,
            since,
            f"max CPU {peak:.1f}% since {_day(since)} ({source})",
            confidence=Confidence.LOW,
            last_activity=streak.last_activity,
        )


# --- stop / restore --------------------------------------------------------------------------


def _operation_error(operation: Mapping[str, Any]) -> str | None:
    error = operation.get("error")
    if not error:
        return None
    return f"{error.get('code', '?')}: {error.get('message', '')}".strip()


class WorkbenchStopper:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope

    def _url(self, suffix: str) -> str:
        return f"{base_url(NOTEBOOKS)}/v2/{suffix}"

    def _get(self, full: str) -> dict[str, Any] | None:
        try:
            return checked(self._scope.session.get(self._url(full)))
        except core_exceptions.NotFound:
            return None

    def plan(self, resource: Resource) -> StopPlan:
        zone, _, name = resource.ref.id.partition("/")
        full = _full_name(self._scope.project, zone, name)

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            instance = self._get(full)
        except core_exceptions.GoogleAPICallError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if instance is None:
            return refuse(StopOutcome.NOT_FOUND, f"Workbench instance {name} no longer exists")
        metadata: Mapping[str, Any] = instance.get("gceSetup", {}).get("metadata", {})
        state = str(instance.get("state"))
        fresh = replace(
            resource,
            state=state,
            tags=dict(instance.get("labels", {})),
            advice=idle_shutdown_advice(metadata),
        )
        if state in _STOPPED:
            return refuse(
                StopOutcome.ALREADY_STOPPED, f"Workbench instance {name} is {state}", fresh
            )
        if state != "ACTIVE":
            return refuse(
                StopOutcome.REFUSED_STATE,
                f"Workbench instance {name} is {state}, not ACTIVE",
                fresh,
            )
        recipe = {
            "kind": KIND,
            "project": self._scope.project,
            "location": zone,
            "name": name,
            "machine_type": resource.instance_type,
        }
        return StopPlan(fresh, recipe)

    def _wait(self, operation: dict[str, Any]) -> dict[str, Any] | None:
        """The operation once done, or None after `MAX_OPERATION_POLLS` polls."""
        for attempt in range(MAX_OPERATION_POLLS + 1):
            if operation.get("done"):
                return operation
            if attempt == MAX_OPERATION_POLLS:
                break
            if attempt:
                time.sleep(_POLL_PAUSE_SECONDS)
            operation = checked(self._scope.session.get(self._url(str(operation["name"]))))
        return None

    def _run(self, full: str, verb: str) -> dict[str, Any] | None:
        operation = checked(self._scope.session.post(self._url(f"{full}:{verb}"), json={}))
        return self._wait(operation)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        project = str(recipe.get("project") or self._scope.project)
        zone, name = str(recipe["location"]), str(recipe["name"])
        full = _full_name(project, zone, name)
        try:
            done = self._run(full, "stop")
        except core_exceptions.NotFound:
            return StopResult(StopOutcome.NOT_FOUND, f"Workbench instance {name} vanished")
        except core_exceptions.GoogleAPICallError as exc:
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        if done is None:
            return StopResult(
                StopOutcome.FAILED,
                f"stop of Workbench instance {name} sent but not done after "
                f"{MAX_OPERATION_POLLS} polls",
                restore=recipe,
            )
        error = _operation_error(done)
        if error is not None:
            return StopResult(
                StopOutcome.FAILED, f"stop of Workbench instance {name} failed: {error}", recipe
            )
        return StopResult(
            StopOutcome.STOPPED,
            f"stopped Workbench instance {name} in {zone}; its disks are kept and still billed",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        project = str(recipe.get("project") or self._scope.project)
        zone, name = str(recipe["location"]), str(recipe["name"])
        full = _full_name(project, zone, name)
        label = f"Workbench instance {name} in {project}/{zone}"
        instance = self._get(full)
        if instance is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        state = str(instance.get("state"))
        if state in _STARTING:
            return f"{label} is already {state}"
        if state in {"STOPPING", "SUSPENDING"}:
            raise RestoreFailed(f"{label} is still stopping: run restore again once it is stopped")
        try:
            done = self._run(full, "start")
        except core_exceptions.GoogleAPICallError as exc:
            raise RestoreFailed(f"{label}: start failed: {one_line(exc)}") from exc
        if done is None:
            raise RestoreFailed(f"{label}: start sent but not done after {MAX_OPERATION_POLLS}")
        error = _operation_error(done)
        if error is not None:
            raise RestoreFailed(f"{label}: start failed: {error}")
        return f"started {label} (was {state})"


def build(scope: GcpScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=WorkbenchScanner(scope),
        probe=WorkbenchProbe(scope, thresholds=rule.thresholds),
        stopper=WorkbenchStopper(scope),
    )
