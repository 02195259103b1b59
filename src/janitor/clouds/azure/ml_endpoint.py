"""`azure.ml-endpoint`: Azure Machine Learning managed online endpoints with deployments.

Scan: the scope's workspaces (`ml.workspaces`), then per workspace Online Endpoints - List and,
per managed endpoint, Online Deployments - List (ARM through `arm.ArmApi`). An endpoint with at
least one deployment is one finding, named by the endpoint's name; its id is the endpoint's ARM
id. Each deployment's name, instance type, capacity and creation time are kept, so that a
deployment recreated by someone between the scan and the stop is recognised.

Usage: Azure Monitor `RequestsPerMinute` (namespace `Microsoft.MachineLearningServices/
workspaces/onlineEndpoints`), Total per day (`P1D`), split by the `deployment` dimension and
summed across deployments: a day is active above `requests_per_day`. Metrics - List At
Subscription Scope does not serve this namespace (the Azure Monitor docs list the resource
types that support multi-resource metric queries, and Azure ML online endpoints and deployments
are not among them), so this is one Metrics - List call per endpoint, never one per day or per
metric. A day without requests has no value at all, so a heartbeat tells an idle day from a day
without data: each deployment's `DeploymentCapacity` and `CpuUtilizationPercentage`
(`.../onlineEndpoints/deployments`, Maximum per day), read only for endpoints the requests do
not already show active (one call per deployment). No series at all: unknown.

Stop: managed deployments cannot be stopped or scaled to zero. `plan` records the endpoint's
`traffic` and `mirrorTraffic` and each deployment's full spec (sku name and capacity, instance
type, model, code configuration, environment and its variables, scale, request and probe
settings, tags...), and refuses when a deployment was recreated or added since the scan, or
when the endpoint or a deployment is being created, updated, scaled or deleted. `act`
checks the deployments again, sets the endpoint's traffic to zero (Online Endpoints - Create Or
Update, PUT: the PATCH takes only tags and identity), then deletes each deployment after
checking it is still the one recorded; the endpoint is kept. Restore: each recorded deployment
that is missing is created again (PUT), then the recorded traffic and mirror traffic are put
back.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from janitor.clouds.azure.arm import ArmApi
from janitor.clouds.azure.ml import created_at, price_unit, workspaces
from janitor.clouds.azure.scope import AzureScope
from janitor.clouds.azure.session import one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.evidence import (
    DAY,
    CountedUse,
    counted_verdict,
    daily_bounds,
    daily_streak,
    recently_active,
)
from janitor.model import (
    Cloud,
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
    from azure.mgmt.monitor.models import Response as MetricsResponse

    from janitor.policy import Rule

KIND = "azure.ml-endpoint"
STATE = "Deployed"  # an endpoint with at least one deployment
ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
REQUESTS_METRIC = "RequestsPerMinute"
HEARTBEAT_METRICS = ("DeploymentCapacity", "CpuUtilizationPercentage")

# Read-only or server-set parts of a resource, left out of what a PUT sends back.
_ENDPOINT_READ_ONLY = frozenset({"provisioningState", "scoringUri", "swaggerUri"})
_DEPLOYMENT_READ_ONLY = frozenset({"provisioningState"})
_TOP_LEVEL = ("location", "tags", "kind", "sku", "identity")
# Provisioning states of an endpoint or deployment that is being changed: never stopped then.
_TRANSITIONAL = frozenset({"creating", "updating", "scaling", "deleting"})


def _identity(identity: Any) -> dict[str, Any] | None:
    if not isinstance(identity, Mapping):
        return None
    out: dict[str, Any] = {"type": identity.get("type")}
    if identity.get("userAssignedIdentities"):
        out["userAssignedIdentities"] = {k: {} for k in identity["userAssignedIdentities"]}
    return out


def _put_body(resource: Mapping[str, Any], read_only: frozenset[str]) -> dict[str, Any]:
    """A resource as a create-or-update takes it back: its settable parts, no server fields."""
    body: dict[str, Any] = {}
    for key in _TOP_LEVEL:
        if resource.get(key) is None:
            continue
        body[key] = _identity(resource[key]) if key == "identity" else copy.deepcopy(resource[key])
    properties: Mapping[str, Any] = resource.get("properties") or {}
    body["properties"] = {k: copy.deepcopy(v) for k, v in properties.items() if k not in read_only}
    return body


def deployment_spec(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment's full spec, as Online Deployments - Create Or Update takes it."""
    return _put_body(deployment, _DEPLOYMENT_READ_ONLY)


def _shares(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in (value or {}).items()}


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _summary(deployment: Mapping[str, Any]) -> dict[str, Any]:
    props: Mapping[str, Any] = deployment.get("properties") or {}
    sku: Mapping[str, Any] = deployment.get("sku") or {}
    return {
        "name": str(deployment.get("name", "")),
        "id": str(deployment.get("id", "")),
        "instance_type": props.get("instanceType"),
        "capacity": int(sku.get("capacity") or 1),
        "created_at": _stamp(created_at(deployment)),
    }


# --- scan ------------------------------------------------------------------------------------


class MlEndpointScanner:
    def __init__(self, scope: AzureScope, api: ArmApi) -> None:
        self._scope = scope
        self._api = api

    def scan(self) -> Iterator[Resource]:
        for workspace in workspaces(self._api, self._scope):
            for endpoint in self._api.pages(f"{workspace['id']}/onlineEndpoints"):
                if str(endpoint.get("kind") or "Managed").lower() != "managed":
                    continue  # Kubernetes endpoints run on the user's own cluster
                deployments = list(self._api.pages(f"{endpoint['id']}/deployments"))
                if deployments:
                    yield self._resource(workspace, endpoint, deployments)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the listing holds everything the pipeline needs

    def _resource(
        self,
        workspace: Mapping[str, Any],
        endpoint: Mapping[str, Any],
        deployments: Sequence[Mapping[str, Any]],
    ) -> Resource:
        summaries = [_summary(d) for d in deployments]
        born = [t for d in deployments if (t := created_at(d)) is not None]
        created = created_at(endpoint) or (min(born) if born else None)
        if created is None:  # no creation time anywhere: the streak cannot start before now
            created = datetime.now(UTC)
        units: list[dict[str, Any]] = []
        for summary in summaries:
            units += price_unit(summary["instance_type"], summary["capacity"])
        props: Mapping[str, Any] = endpoint.get("properties") or {}
        return Resource(
            ref=ResourceRef(
                Cloud.AZURE,
                KIND,
                self._scope.subscription,
                str(endpoint.get("location") or workspace.get("location")).lower(),
                str(endpoint["id"]),
            ),
            name=str(endpoint["name"]),
            state=STATE,
            created_at=created,
            tags=dict(endpoint.get("tags") or {}),
            # The streak cannot start before the newest deployment was created.
            last_started_at=max(born) if born else None,
            instance_type=next((s["instance_type"] for s in summaries if s["instance_type"]), None),
            instance_count=sum(s["capacity"] for s in summaries),
            details={
                "workspace": str(workspace.get("name", "")),
                "deployments": summaries,
                "traffic": _shares(props.get("traffic")),
                "mirror_traffic": _shares(props.get("mirrorTraffic")),
                "units": units,
            },
        )


# --- usage -----------------------------------------------------------------------------------

Daily = dict[datetime, float]


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


def _timespan(start: datetime, end: datetime) -> str:
    return f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{end.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _uri(resource_id: str) -> str:
    return resource_id.lstrip("/")


def _daily(response: MetricsResponse, aggregation: str) -> dict[str, Daily]:
    """metric name -> day -> the aggregation's value, summed over the answer's series (days
    without a value are left out)."""
    out: dict[str, Daily] = {}
    for metric in response.value or []:
        name = str(metric.name.value if metric.name is not None else "")
        days = out.setdefault(name, {})
        for series in metric.timeseries or []:
            for point in series.data or []:
                value = getattr(point, aggregation, None)
                if value is None or point.time_stamp is None:
                    continue
                day = utc(point.time_stamp).replace(hour=0, minute=0, second=0, microsecond=0)
                days[day] = days.get(day, 0.0) + float(value)
    return out


class MlEndpointProbe:
    def __init__(self, scope: AzureScope, *, thresholds: Mapping[str, float]) -> None:
        self._scope = scope
        self._limit = float(thresholds.get("requests_per_day", 0.0))

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        start, end = daily_bounds(window)
        verdicts: dict[str, Verdict] = {}
        for resource in resources:
            try:
                verdicts[resource.ref.key] = self._one(resource, start, end, window, now)
            except HttpResponseError as exc:
                verdicts[resource.ref.key] = Verdict.unknown(
                    resource.ref, f"Azure Monitor could not be read: {one_line(exc)}"
                )
        return verdicts

    def _requests(self, resource: Resource, start: datetime, end: datetime) -> Daily:
        deployments = list(resource.details.get("deployments") or [])
        answer = self._scope.monitor.metrics.list(
            _uri(resource.ref.id),
            timespan=_timespan(start, end),
            interval="P1D",
            metricnames=REQUESTS_METRIC,
            aggregation="Total",
            metricnamespace=ENDPOINT_NAMESPACE,
            filter="deployment eq '*'",
            top=max(len(deployments), 10),
        )
        return _daily(answer, "total").get(REQUESTS_METRIC, {})

    def _heartbeat(self, resource: Resource, start: datetime, end: datetime) -> Daily:
        beat: Daily = {}
        for deployment in resource.details.get("deployments") or []:
            answer = self._scope.monitor.metrics.list(
                _uri(str(deployment["id"])),
                timespan=_timespan(start, end),
                interval="P1D",
                metricnames=",".join(HEARTBEAT_METRICS),
                aggregation="Maximum",
                metricnamespace=DEPLOYMENT_NAMESPACE,
            )
            for days in _daily(answer, "maximum").values():
                for day, value in days.items():
                    beat[day] = max(beat.get(day, 0.0), value)
        return beat

    def _one(
        self, resource: Resource, start: datetime, end: datetime, window: Window, now: datetime
    ) -> Verdict:
        ref = resource.ref
        counts = {d: v for d, v in self._requests(resource, start, end).items() if start <= d < end}
        source = (
            f"{REQUESTS_METRIC} Total per day summed across deployments (split by deployment), "
            f"active above {self._limit:g}; heartbeat {'/'.join(HEARTBEAT_METRICS)} per "
            "deployment; one Metrics - List per endpoint (the subscription-scope query does not "
            "serve online endpoints)"
        )
        if counts:
            # Days without requests have no count: only a request within the last 24 hours
            # settles it here; otherwise the heartbeat (in counted_verdict) tells the silent days.
            streak = daily_streak({day: value > self._limit for day, value in counts.items()})
            last = streak.last_active_day if recently_active(streak, now) else None
            if last is not None:
                return Verdict.active(
                    ref,
                    f"{counts[last]:g} requests on {_day(last)} ({source})",
                    last_activity=min(last + DAY, now),
                )
        beat = {d: v for d, v in self._heartbeat(resource, start, end).items() if start <= d < end}
        use = CountedUse(
            noun="requests",
            one="request",
            source=source,
            missing=f"no {REQUESTS_METRIC}, {' or '.join(HEARTBEAT_METRICS)} datapoints in Azure "
            f"Monitor since {_day(window.start)}",
            newest="request/heartbeat datapoint",
        )
        return counted_verdict(
            resource, counts, beat, limit=self._limit, use=use, window=window, now=now
        )


# --- stop / restore --------------------------------------------------------------------------


def _recorded(resource: Resource) -> dict[str, str | None]:
    """Deployment name (lower case) -> creation time, as the scan saw them (empty when the
    resource was not scanned, e.g. when an interrupted stop is reconciled)."""
    return {
        str(d["name"]).lower(): d.get("created_at")
        for d in resource.details.get("deployments") or []
    }


def _changed(
    expected: Mapping[str, str | None], deployments: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why the deployments are not the ones expected (name -> creation time), or None."""
    now_seen = {str(d["name"]).lower(): d for d in deployments}
    added = sorted(set(now_seen) - set(expected))
    if added:
        return f"deployment(s) {', '.join(added)} were added since"
    for name, when in expected.items():
        current = now_seen.get(name)
        if current is None:
            continue  # gone already: nothing to delete
        if when is not None and _stamp(created_at(current)) != when:
            return (
                f"deployment {current['name']} was recreated (created "
                f"{_stamp(created_at(current))}, not {when})"
            )
    return None


class MlEndpointStopper:
    def __init__(self, scope: AzureScope, api: ArmApi) -> None:
        self._scope = scope
        self._api = api

    def plan(self, resource: Resource) -> StopPlan:
        endpoint_id = resource.ref.id

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            endpoint = self._api.find(endpoint_id)
            if endpoint is None:
                return refuse(StopOutcome.NOT_FOUND, f"endpoint {resource.name} no longer exists")
            deployments = list(self._api.pages(f"{endpoint_id}/deployments"))
        except HttpResponseError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        fresh = replace(
            resource,
            state=STATE if deployments else "NoDeployments",
            tags=dict(endpoint.get("tags") or {}),
        )
        if not deployments:
            return refuse(
                StopOutcome.ALREADY_STOPPED, f"endpoint {resource.name} has no deployment", fresh
            )
        for what in (endpoint, *deployments):
            state = str((what.get("properties") or {}).get("provisioningState") or "")
            if state.lower() in _TRANSITIONAL:
                return refuse(
                    StopOutcome.REFUSED_STATE,
                    f"{what.get('name')} of endpoint {resource.name} is {state}: not stopped "
                    "while it changes",
                    fresh,
                )
        scanned = _recorded(resource)
        if scanned:
            why = _changed(scanned, deployments)
            if why is not None:
                return refuse(StopOutcome.REFUSED_STATE, f"{why} the scan: not stopped", fresh)
        props: Mapping[str, Any] = endpoint.get("properties") or {}
        recipe = {
            "kind": KIND,
            "endpoint_id": str(endpoint["id"]),
            "name": str(endpoint["name"]),
            "traffic": _shares(props.get("traffic")),
            "mirror_traffic": _shares(props.get("mirrorTraffic")),
            "deployments": [
                {
                    "name": str(d["name"]),
                    "created_at": _stamp(created_at(d)),
                    "spec": deployment_spec(d),
                }
                for d in deployments
            ],
        }
        return StopPlan(fresh, recipe)

    def _set_traffic(
        self, endpoint_id: str, traffic: Mapping[str, int], mirror: Mapping[str, int]
    ) -> None:
        endpoint = self._api.get(endpoint_id)
        body = _put_body(endpoint, _ENDPOINT_READ_ONLY)
        body["properties"]["traffic"] = dict(traffic)
        body["properties"]["mirrorTraffic"] = dict(mirror)
        self._api.run("PUT", endpoint_id, body)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        endpoint_id, name = str(recipe["endpoint_id"]), str(recipe["name"])
        expected = {str(d["name"]).lower(): d.get("created_at") for d in recipe["deployments"]}
        label = f"endpoint {name}"
        try:
            current = list(self._api.pages(f"{endpoint_id}/deployments"))
        except ResourceNotFoundError:
            return StopResult(StopOutcome.NOT_FOUND, f"{label} vanished")
        why = _changed(expected, current)
        if why is not None:
            return StopResult(StopOutcome.REFUSED_STATE, f"{why}: {label} not stopped")
        deleted: list[str] = []
        try:
            traffic = _shares(recipe["traffic"])
            if any(traffic.values()) or any(_shares(recipe["mirror_traffic"]).values()):
                self._set_traffic(endpoint_id, dict.fromkeys(traffic, 0), {})
            for entry in recipe["deployments"]:
                path = f"{endpoint_id}/deployments/{entry['name']}"
                deployment = self._api.find(path)
                if deployment is None:
                    continue
                if _stamp(created_at(deployment)) != entry.get("created_at"):
                    return StopResult(
                        StopOutcome.FAILED,
                        f"deployment {entry['name']} of {label} was recreated by someone during "
                        f"the stop: not deleted (deleted so far: {', '.join(deleted) or 'none'}"
                        "; traffic is at zero until restore)",
                        restore=recipe,
                    )
                self._api.run("DELETE", path)
                deleted.append(str(entry["name"]))
        except HttpResponseError as exc:
            return StopResult(
                StopOutcome.FAILED,
                f"{label}: {one_line(exc)} (deleted so far: {', '.join(deleted) or 'none'})",
                restore=recipe,
            )
        return StopResult(
            StopOutcome.STOPPED,
            f"deleted {len(deleted)} deployment(s) of {label} ({', '.join(deleted)}) after "
            "setting its traffic to zero: billing for their instances stops; the endpoint, its "
            "keys and scoring URI are kept",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        endpoint_id, name = str(recipe["endpoint_id"]), str(recipe["name"])
        label = f"endpoint {name}"
        if self._api.find(endpoint_id) is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        present = {str(d["name"]).lower() for d in self._api.pages(f"{endpoint_id}/deployments")}
        created: list[str] = []
        for entry in recipe["deployments"]:
            if str(entry["name"]).lower() in present:
                continue  # restored already (an earlier, partial restore) or never deleted
            path = f"{endpoint_id}/deployments/{entry['name']}"
            try:
                self._api.run("PUT", path, entry["spec"])
            except HttpResponseError as exc:
                raise RestoreFailed(
                    f"{label}: creating deployment {entry['name']} failed: {one_line(exc)}"
                ) from exc
            created.append(str(entry["name"]))
        try:
            self._set_traffic(
                endpoint_id, _shares(recipe["traffic"]), _shares(recipe["mirror_traffic"])
            )
        except HttpResponseError as exc:
            why = f"{label}: putting the traffic back failed: {one_line(exc)}"
            raise RestoreFailed(why) from exc
        traffic = ", ".join(f"{k} {v}%" for k, v in _shares(recipe["traffic"]).items())
        return (
            f"recreated {len(created)} deployment(s) of {label} "
            f"({', '.join(created) or 'none missing'}); traffic restored ({traffic or 'none'})"
        )


def build(scope: AzureScope, rule: Rule) -> KindHandlers:
    api = ArmApi(scope.credentials)
    return KindHandlers(
        scanner=MlEndpointScanner(scope, api),
        probe=MlEndpointProbe(scope, thresholds=rule.thresholds),
        stopper=MlEndpointStopper(scope, api),
    )
