"""`azure.ml-compute`: Azure Machine Learning compute instances in state `Running`.

Scan: the scope's workspaces (`ml.workspaces`), then Compute - List per workspace (ARM through
`arm.ArmApi`: the stable management SDK drops `idleTimeBeforeShutdown`); compute instances
(`computeType` `ComputeInstance`) in state `Running` are findings. Clusters (`AmlCompute`)
scale to their minimum by themselves and are not.

Evidence, honestly labelled: the ARM API reports no kernel, terminal or user activity for a
compute instance, and Azure Monitor publishes no per-instance utilisation. The strongest sign
of use it offers is `lastOperation` (name, time, trigger): the last create, start, restart or
stop. The instance is idle since that time, at LOW confidence (someone who works on a running
instance every day without restarting it looks idle here), and active when it was within the
last 24 hours. No `lastOperation`: unknown.

Advice: when `idleTimeBeforeShutdown` is not set, the finding's `advice` says so: that setting
makes Azure ML stop the instance by itself after that long without activity.

Stop: Compute - Stop (long-running, waited on). Restore: Compute - Start (an instance already
running or starting is a success).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from janitor.clouds.azure.arm import ArmApi
from janitor.clouds.azure.ml import arm_time, price_unit, workspaces
from janitor.clouds.azure.scope import AzureScope
from janitor.clouds.azure.session import one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.evidence import RECENT
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

KIND = "azure.ml-compute"
COMPUTE_INSTANCE = "ComputeInstance"
RUNNING = "Running"
_STOPPED = frozenset({"Stopped", "Stopping"})
_STARTING = frozenset({"Running", "Starting", "Restarting", "Creating"})
_STARTS = frozenset({"create", "start", "restart"})

IDLE_SHUTDOWN_ADVICE = (
    "idle shutdown is off (idleTimeBeforeShutdown is not set): set it (e.g. PT60M) and Azure "
    "Machine Learning stops the compute instance itself after that long without activity"
)


def _inner(compute: Mapping[str, Any]) -> Mapping[str, Any]:
    props: Mapping[str, Any] = compute.get("properties") or {}
    inner: Mapping[str, Any] = props.get("properties") or {}
    return inner


def idle_shutdown_advice(inner: Mapping[str, Any]) -> str | None:
    """The advice when the instance has no idle shutdown, else None."""
    value = inner.get("idleTimeBeforeShutdown")
    return IDLE_SHUTDOWN_ADVICE if not value or not str(value).strip() else None


def _last_operation(inner: Mapping[str, Any]) -> dict[str, Any] | None:
    op: Mapping[str, Any] = inner.get("lastOperation") or {}
    when = arm_time(op.get("operationTime"))
    if not op or when is None:
        return None
    return {
        "name": str(op.get("operationName") or ""),
        "time": when.isoformat(),
        "status": str(op.get("operationStatus") or ""),
        "trigger": str(op.get("operationTrigger") or ""),
    }


# --- scan ------------------------------------------------------------------------------------


class MlComputeScanner:
    def __init__(self, scope: AzureScope, api: ArmApi) -> None:
        self._scope = scope
        self._api = api

    def scan(self) -> Iterator[Resource]:
        for workspace in workspaces(self._api, self._scope):
            for compute in self._api.pages(f"{workspace['id']}/computes"):
                props: Mapping[str, Any] = compute.get("properties") or {}
                if props.get("computeType") != COMPUTE_INSTANCE:
                    continue
                if _inner(compute).get("state") != RUNNING:
                    continue
                yield self._resource(workspace, compute)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the listing holds everything the pipeline needs

    def _resource(self, workspace: Mapping[str, Any], compute: Mapping[str, Any]) -> Resource:
        props: Mapping[str, Any] = compute.get("properties") or {}
        inner = _inner(compute)
        operation = _last_operation(inner)
        created = arm_time(props.get("createdOn")) or arm_time(
            (compute.get("systemData") or {}).get("createdAt")
        )
        started: datetime | None = None
        if operation is not None and operation["name"].lower() in _STARTS:
            started = datetime.fromisoformat(operation["time"])
        if created is None:
            created = started or utc(datetime.fromisoformat("1970-01-01T00:00:00+00:00"))
        size = str(inner.get("vmSize") or "") or None
        location = str(props.get("computeLocation") or compute.get("location") or "").lower()
        return Resource(
            ref=ResourceRef(
                Cloud.AZURE, KIND, self._scope.subscription, location, str(compute["id"])
            ),  # fmt: skip
            name=str(compute["name"]),
            state=str(inner.get("state")),
            created_at=created,
            tags=dict(compute.get("tags") or {}),
            last_started_at=started,
            instance_type=size,
            advice=idle_shutdown_advice(inner),
            details={
                "workspace": str(workspace.get("name", "")),
                "last_operation": operation,
                "idle_time_before_shutdown": inner.get("idleTimeBeforeShutdown"),
                "schedules": len(((inner.get("schedules") or {}).get("computeStartStop")) or []),
                "units": price_unit(size, 1),
            },
        )


# --- usage -----------------------------------------------------------------------------------


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


class MlComputeProbe:
    """Verdicts from the scan's `lastOperation`: no API call of its own."""

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        verdicts: dict[str, Verdict] = {}
        for resource in resources:
            verdicts[resource.ref.key] = self._verdict(resource, now)
        return verdicts

    def _verdict(self, resource: Resource, now: datetime) -> Verdict:
        ref = resource.ref
        operation: Mapping[str, Any] | None = resource.details.get("last_operation")
        if not operation:
            return Verdict.unknown(
                ref,
                "the compute instance reports no lastOperation, and Azure ML offers no other "
                "sign of use (no kernel, terminal or utilisation data through ARM or Azure "
                "Monitor)",
            )
        when = datetime.fromisoformat(str(operation["time"]))
        what = (
            f"lastOperation {operation['name'] or '?'} by {operation['trigger'] or '?'} at "
            f"{_day(when)} ({operation['status'] or 'status unknown'}); the strongest sign of "
            "use the API offers (no kernel, terminal or utilisation data): low confidence, "
            "work on a running instance without a restart does not show"
        )
        if when > now - RECENT:
            return Verdict.active(ref, what, last_activity=when, confidence=Confidence.LOW)
        return Verdict.idle(
            ref, max(when, resource.streak_floor), what, confidence=Confidence.LOW,
            last_activity=when,
        )  # fmt: skip


# --- stop / restore --------------------------------------------------------------------------


class MlComputeStopper:
    def __init__(self, scope: AzureScope, api: ArmApi) -> None:
        self._scope = scope
        self._api = api

    def plan(self, resource: Resource) -> StopPlan:
        compute_id = resource.ref.id

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            compute = self._api.find(compute_id)
        except HttpResponseError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if compute is None:
            return refuse(
                StopOutcome.NOT_FOUND, f"compute instance {resource.name} no longer exists"
            )
        inner = _inner(compute)
        state = str(inner.get("state"))
        fresh = replace(
            resource,
            state=state,
            tags=dict(compute.get("tags") or {}),
            advice=idle_shutdown_advice(inner),
        )
        if state in _STOPPED:
            return refuse(
                StopOutcome.ALREADY_STOPPED, f"compute instance {resource.name} is {state}", fresh
            )
        if state != RUNNING:
            return refuse(
                StopOutcome.REFUSED_STATE,
                f"compute instance {resource.name} is {state}, not {RUNNING}",
                fresh,
            )
        recipe = {
            "kind": KIND,
            "compute_id": str(compute["id"]),
            "name": str(compute["name"]),
            "vm_size": inner.get("vmSize"),
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        compute_id, name = str(recipe["compute_id"]), str(recipe["name"])
        try:
            self._api.run("POST", f"{compute_id}/stop")
        except ResourceNotFoundError:
            return StopResult(StopOutcome.NOT_FOUND, f"compute instance {name} vanished")
        except HttpResponseError as exc:
            return StopResult(
                StopOutcome.FAILED, f"stop of compute instance {name} failed: {one_line(exc)}"
            )
        return StopResult(
            StopOutcome.STOPPED,
            f"stopped compute instance {name}: its VM no longer bills; its disk is kept",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        compute_id, name = str(recipe["compute_id"]), str(recipe["name"])
        label = f"compute instance {name}"
        compute = self._api.find(compute_id)
        if compute is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        state = str(_inner(compute).get("state"))
        if state in _STARTING:
            return f"{label} is already {state}"
        if state == "Stopping":
            raise RestoreFailed(f"{label} is still stopping: run restore again once it is stopped")
        try:
            self._api.run("POST", f"{compute_id}/start")
        except HttpResponseError as exc:
            raise RestoreFailed(f"{label}: start failed: {one_line(exc)}") from exc
        return f"started {label} (was {state})"


def build(scope: AzureScope, rule: Rule) -> KindHandlers:
    api = ArmApi(scope.credentials)
    return KindHandlers(
        scanner=MlComputeScanner(scope, api),
        probe=MlComputeProbe(),
        stopper=MlComputeStopper(scope, api),
    )
