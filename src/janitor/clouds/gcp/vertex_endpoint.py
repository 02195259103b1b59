"""`gcp.vertex-endpoint`: Vertex AI online prediction endpoints with deployed models.

Scan: `endpoints.list` per project and location (REST, `GET /v1/projects/{p}/locations/{l}/
endpoints`, every page), kept when at least one model is deployed. A scan is one task per project
(`provider.PROJECT_WIDE_KINDS`, so the Monitoring queries below are sent once per project): it
lists every location the Vertex AI Locations API answers for the project that passes the
policy's regions. A regional scope (a restore) lists its own location. One finding per endpoint:
`name` is the display name, `id` the full resource name.

Usage, batched per project through `monitoring.py` (one query per metric type, never one per
endpoint), daily buckets grouped by the resource label `endpoint_id`:

* `aiplatform.googleapis.com/prediction/online/prediction_count` (ALIGN_SUM), summed per day
  across the endpoint's deployed models: a day is active above `predictions_per_day`. The sum
  is read at endpoint level (the series' `deployed_model_id` label is not needed: the sum is
  zero only when every deployed model served nothing), so the endpoint is idle only when every
  deployed model is.
* Heartbeat: `prediction/online/replicas` (ALIGN_MAX), else `prediction/online/cpu/utilization`
  (queried only when some endpoint has no replicas series). A day with a heartbeat and no
  prediction counted is a zero day. No series at all: unknown. Newest point stale: unknown.

Stop: `plan` records the endpoint's traffic split and each deployed model's full spec; `act`
undeploys every model (traffic moved off a model before it goes, as the API requires), each
long-running operation waited on a bounded number of times. The endpoint and the models stay.
Restore: each model deployed again from its spec (never its old id; always with a
`trafficSplit` `{"0": percent}` for the model being deployed), old ids mapped to the new, then
the recorded split put back with `endpoints.patch` (`updateMask=trafficSplit`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as core_exceptions

from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.clouds.gcp.monitoring import Daily, MetricQuery, daily_values
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.clouds.gcp.session import AIPLATFORM, base_url, checked, one_line
from janitor.evidence import (
    CountedUse,
    counted_verdict,
    daily_bounds,
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
    from requests import Response

    from janitor.policy import Rule

KIND = "gcp.vertex-endpoint"
STATE = "DEPLOYED"  # an endpoint with at least one deployed model
RESOURCE_TYPE = "aiplatform.googleapis.com/Endpoint"
PREDICTIONS_METRIC = "aiplatform.googleapis.com/prediction/online/prediction_count"
REPLICAS_METRIC = "aiplatform.googleapis.com/prediction/online/replicas"
CPU_METRIC = "aiplatform.googleapis.com/prediction/online/cpu/utilization"

PREDICTIONS_QUERY = MetricQuery(
    PREDICTIONS_METRIC, RESOURCE_TYPE, "endpoint_id", "ALIGN_SUM", "sum"
)
REPLICAS_QUERY = MetricQuery(REPLICAS_METRIC, RESOURCE_TYPE, "endpoint_id")
CPU_QUERY = MetricQuery(CPU_METRIC, RESOURCE_TYPE, "endpoint_id")

# The DeployedModel fields a redeploy sends back (everything the caller may set; never `id`).
SPEC_FIELDS = (
    "model",
    "modelVersionId",
    "displayName",
    "dedicatedResources",
    "automaticResources",
    "sharedResources",
    "serviceAccount",
    "disableContainerLogging",
    "enableAccessLogging",
    "disableExplanations",
    "explanationSpec",
    "privateEndpoints",
    "fasterDeploymentConfig",
    "systemLabels",
)

MAX_OPERATION_POLLS = 60
_POLL_PAUSE_SECONDS = 0.2


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


def _location(name: str) -> str:
    return name.split("/")[3]


def _resources(model: Mapping[str, Any]) -> Mapping[str, Any]:
    found: Mapping[str, Any] = model.get("dedicatedResources") or {}
    return found


def _units(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`vertex-prediction` nodes by machine type x replicas, plus their accelerators."""
    units: list[dict[str, Any]] = []
    for model in models:
        dedicated = _resources(model)
        spec: Mapping[str, Any] = dedicated.get("machineSpec") or {}
        machine = spec.get("machineType")
        if not machine:
            continue  # automatic resources: Google picks the nodes, no price
        available = (model.get("status") or {}).get("availableReplicaCount")
        replicas = int(available or dedicated.get("minReplicaCount") or 1)
        units.append({"service": "vertex-prediction", "sku": machine, "count": replicas})
        gpu = spec.get("acceleratorType")
        count = int(spec.get("acceleratorCount") or 0)
        if gpu and count:
            units.append(
                {"service": "vertex-prediction-gpu", "sku": str(gpu), "count": count * replicas}
            )
    return units


def _model_summary(model: Mapping[str, Any]) -> dict[str, Any]:
    spec: Mapping[str, Any] = _resources(model).get("machineSpec") or {}
    return {
        "id": str(model.get("id", "")),
        "display_name": str(model.get("displayName", "")),
        "model": str(model.get("model", "")),
        "machine_type": spec.get("machineType"),
        "accelerator": spec.get("acceleratorType"),
        "accelerator_count": int(spec.get("acceleratorCount") or 0),
    }


def deployed_spec(model: Mapping[str, Any]) -> dict[str, Any]:
    """A DeployedModel as a deploy request takes it back: every settable field, no id."""
    return {key: model[key] for key in SPEC_FIELDS if key in model}


# --- REST ------------------------------------------------------------------------------------


class _Api:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope

    def url(self, location: str, path: str) -> str:
        return f"{base_url(AIPLATFORM, location)}/v1/{path}"

    def get(self, location: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        return checked(self._scope.session.get(self.url(location, path), params=params))

    def send(
        self, method: str, location: str, path: str, body: Mapping[str, Any], **kw: Any
    ) -> Any:
        response: Response = self._scope.session.request(  # type: ignore[no-untyped-call]
            method, self.url(location, path), json=body, **kw
        )
        return checked(response)

    def pages(self, location: str, path: str, key: str) -> Iterator[dict[str, Any]]:
        params: dict[str, str] = {}
        while True:
            body = self.get(location, path, params)
            yield from body.get(key, [])
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    def wait(self, location: str, operation: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The long-running operation once done, or None after `MAX_OPERATION_POLLS` polls."""
        for attempt in range(MAX_OPERATION_POLLS + 1):
            if operation.get("done"):
                return operation
            if attempt == MAX_OPERATION_POLLS:
                break
            if attempt:
                time.sleep(_POLL_PAUSE_SECONDS)
            operation = self.get(location, str(operation["name"]))
        return None


def _op_error(operation: Mapping[str, Any]) -> str | None:
    error = operation.get("error")
    if not error:
        return None
    return f"{error.get('code')}: {error.get('message', '')}"


# --- scan ------------------------------------------------------------------------------------


class VertexEndpointScanner:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope
        self._api = _Api(scope)

    def locations(self) -> list[str]:
        if self._scope.region != GLOBAL:
            return [self._scope.region]
        path = f"projects/{self._scope.project}/locations"
        found = [str(loc["locationId"]) for loc in self._api.pages("", path, "locations")]
        return [loc for loc in found if self._scope.in_regions(loc)]

    def scan(self) -> Iterator[Resource]:
        for location in self.locations():
            path = f"projects/{self._scope.project}/locations/{location}/endpoints"
            for endpoint in self._api.pages(location, path, "endpoints"):
                if endpoint.get("deployedModels"):
                    yield self._resource(endpoint, location)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)  # the list holds everything the pipeline needs

    def _resource(self, endpoint: Mapping[str, Any], location: str) -> Resource:
        name = str(endpoint["name"])
        models: list[Mapping[str, Any]] = list(endpoint.get("deployedModels", []))
        created = _time(endpoint.get("createTime"))
        assert created is not None
        deployed = [t for m in models if (t := _time(m.get("createTime"))) is not None]
        summaries = [_model_summary(m) for m in models]
        machine = next((s["machine_type"] for s in summaries if s["machine_type"]), None)
        return Resource(
            ref=ResourceRef(Cloud.GCP, KIND, self._scope.project, location, name),
            name=str(endpoint.get("displayName") or name.rsplit("/", 1)[-1]),
            state=STATE,
            created_at=created,
            tags=dict(endpoint.get("labels") or {}),
            # The streak cannot start before the newest model was deployed.
            last_started_at=max(deployed) if deployed else created,
            instance_type=machine,
            instance_count=len(models),
            details={
                "endpoint_id": name.rsplit("/", 1)[-1],
                "location": location,
                "deployed_models": summaries,
                "traffic_split": dict(endpoint.get("trafficSplit") or {}),
                "units": _units(models),
            },
        )


# --- usage -----------------------------------------------------------------------------------


def _in(days: Mapping[datetime, float], start: datetime, end: datetime) -> dict[datetime, float]:
    return {day: value for day, value in days.items() if start <= day < end}


class VertexEndpointProbe:
    def __init__(self, scope: GcpScope, *, thresholds: Mapping[str, float]) -> None:
        self._scope = scope
        self._limit = float(thresholds.get("predictions_per_day", 0.0))

    def _query(
        self, query: MetricQuery, start: datetime, end: datetime, wanted: Collection[str]
    ) -> Daily:
        return daily_values(
            self._scope.session, self._scope.project, query, start, end, wanted=wanted
        )

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        start, end = daily_bounds(window)

        def key(resource: Resource) -> str:
            return str(resource.details.get("endpoint_id"))

        ids = {key(r) for r in resources}
        predictions = self._query(PREDICTIONS_QUERY, start, end, ids)
        replicas = self._query(REPLICAS_QUERY, start, end, ids)
        cpu: Daily = {}
        silent = {key(r) for r in resources if not _in(replicas.get(key(r), {}), start, end)}
        if silent:
            cpu = self._query(CPU_QUERY, start, end, silent)  # one more query, only when needed
        verdicts: dict[str, Verdict] = {}
        for resource in resources:
            beat = _in(replicas.get(key(resource), {}), start, end)
            beat_name = "replicas"
            if not beat:
                beat = _in(cpu.get(key(resource), {}), start, end)
                beat_name = "cpu/utilization"
            counts = _in(predictions.get(key(resource), {}), start, end)
            verdicts[resource.ref.key] = self._verdict(
                resource, counts, beat, beat_name, window, now
            )
        return verdicts

    def _verdict(
        self,
        resource: Resource,
        counts: Mapping[datetime, float],
        beat: Mapping[datetime, float],
        beat_name: str,
        window: Window,
        now: datetime,
    ) -> Verdict:
        source = (
            f"{PREDICTIONS_METRIC} per day summed across deployed models (endpoint level: the "
            f"sum is zero only when every deployed model served nothing), active above "
            f"{self._limit:g}; heartbeat prediction/online/{beat_name}"
        )
        use = CountedUse(
            noun="predictions",
            one="prediction",
            source=source,
            missing="no prediction_count, replicas or cpu/utilization series in Cloud Monitoring "
            f"since {_day(window.start)}",
            newest="prediction/heartbeat point",
        )
        return counted_verdict(
            resource, counts, beat, limit=self._limit, use=use, window=window, now=now
        )


# --- stop / restore --------------------------------------------------------------------------


class VertexEndpointStopper:
    def __init__(self, scope: GcpScope) -> None:
        self._scope = scope
        self._api = _Api(scope)

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self._api.get(_location(name), name)
        except core_exceptions.NotFound:
            return None
        return body

    def plan(self, resource: Resource) -> StopPlan:
        name = resource.ref.id

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            endpoint = self._get(name)
        except core_exceptions.GoogleAPICallError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if endpoint is None:
            return refuse(StopOutcome.NOT_FOUND, f"endpoint {resource.name} no longer exists")
        models = list(endpoint.get("deployedModels") or [])
        fresh = replace(
            resource,
            state=STATE if models else "UNDEPLOYED",
            tags=dict(endpoint.get("labels") or {}),
        )
        if not models:
            return refuse(
                StopOutcome.ALREADY_STOPPED,
                f"endpoint {resource.name} has no deployed model",
                fresh,
            )
        recipe = {
            "kind": KIND,
            "project": name.split("/")[1],
            "location": _location(name),
            "endpoint": name,
            "display_name": str(endpoint.get("displayName", "")),
            "traffic_split": {
                str(k): int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()
            },
            "deployed_models": [{"id": str(m["id"]), "spec": deployed_spec(m)} for m in models],
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        name, location = str(recipe["endpoint"]), str(recipe["location"])
        label = f"endpoint {recipe.get('display_name') or name}"
        remaining = [str(m["id"]) for m in recipe["deployed_models"]]
        undeployed: list[str] = []
        while remaining:
            model_id = remaining.pop(0)
            body: dict[str, Any] = {"deployedModelId": model_id}
            if remaining:  # move its traffic to a model that stays, as the API requires
                body["trafficSplit"] = {remaining[-1]: 100}
            try:
                operation = self._api.send("POST", location, f"{name}:undeployModel", body)
                done = self._api.wait(location, operation)
            except core_exceptions.NotFound:
                if not undeployed:
                    return StopResult(StopOutcome.NOT_FOUND, f"{label} vanished")
                return StopResult(
                    StopOutcome.FAILED, f"{label} vanished while undeploying", restore=recipe
                )
            except core_exceptions.GoogleAPICallError as exc:
                return StopResult(
                    StopOutcome.FAILED,
                    f"undeploy of {model_id} from {label} failed: {one_line(exc)}"
                    f" (undeployed so far: {', '.join(undeployed) or 'none'})",
                    restore=recipe,
                )
            if done is None:
                return StopResult(
                    StopOutcome.FAILED,
                    f"undeploy of {model_id} from {label} was not done after "
                    f"{MAX_OPERATION_POLLS} polls",
                    restore=recipe,
                )
            error = _op_error(done)
            if error is not None:
                return StopResult(
                    StopOutcome.FAILED,
                    f"undeploy of {model_id} from {label} failed: {error}",
                    restore=recipe,
                )
            undeployed.append(model_id)
        return StopResult(
            StopOutcome.STOPPED,
            f"undeployed {len(undeployed)} model(s) from {label}: billing for its nodes stops; "
            "the endpoint and the models are kept",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        name, location = str(recipe["endpoint"]), str(recipe["location"])
        label = f"endpoint {recipe.get('display_name') or name}"
        endpoint = self._get(name)
        if endpoint is None:
            raise RestoreFailed(f"{label} no longer exists: nothing to restore")
        split: dict[str, int] = {str(k): int(v) for k, v in recipe["traffic_split"].items()}
        present = {
            str(m.get("displayName")): str(m["id"]) for m in endpoint.get("deployedModels") or []
        }
        new_ids: dict[str, str] = {}
        for entry in recipe["deployed_models"]:
            old_id, spec = str(entry["id"]), dict(entry["spec"])
            shown = str(spec.get("displayName", ""))
            if shown and shown in present and present[shown] not in new_ids.values():
                new_ids[old_id] = present[shown]  # deployed again by an earlier, partial restore
                continue
            traffic = {"0": split.get(old_id, 0)}
            traffic |= {new_ids[o]: split.get(o, 0) for o in new_ids}
            first = next(iter(traffic))
            traffic[first] += 100 - sum(traffic.values())  # the API wants 100 in all
            operation = self._api.send(
                "POST",
                location,
                f"{name}:deployModel",
                {"deployedModel": spec, "trafficSplit": traffic},
            )
            done = self._api.wait(location, operation)
            if done is None:
                raise RestoreFailed(f"{label}: deploy of {shown or old_id} did not finish")
            error = _op_error(done)
            if error is not None:
                raise RestoreFailed(f"{label}: deploy of {shown or old_id} failed: {error}")
            new_ids[old_id] = str(done["response"]["deployedModel"]["id"])
        target = {new_ids[o]: pct for o, pct in split.items() if o in new_ids}
        if target:
            self._api.send(
                "PATCH", location, name, {"trafficSplit": target},
                params={"updateMask": "traffic_split"},
            )  # fmt: skip
        mapping = ", ".join(f"{old} -> {new}" for old, new in new_ids.items())
        return f"redeployed {len(new_ids)} model(s) to {label} ({mapping}); traffic split restored"


def build(scope: GcpScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=VertexEndpointScanner(scope),
        probe=VertexEndpointProbe(scope, thresholds=rule.thresholds),
        stopper=VertexEndpointStopper(scope),
    )
