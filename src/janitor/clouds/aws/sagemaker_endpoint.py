"""aws.sagemaker-endpoint: real-time SageMaker endpoints, judged by their invocations.

* scan: ListEndpoints (100 per page) and tags in bulk (Resource Groups Tagging API).
* describe (action candidates only): DescribeEndpoint per endpoint, DescribeEndpointConfig once
  per config name, 8 at a time, for the instance type and count of every production variant.
* usage: one ListMetrics pass for `AWS/SageMaker` `Invocations` and one for the
  `/aws/sagemaker/Endpoints` `CPUUtilization` heartbeat in the region, keeping the series whose
  dimensions are exactly EndpointName + VariantName; an endpoint's variants are the union of
  both. Then GetMetricData, `Sum` per day of Invocations and `SampleCount` per day of the
  heartbeat, for every (endpoint, variant) at once, 500 series per call, an endpoint's series in
  the same call; each call's points are reduced to verdicts before the next call is made, so
  memory does not grow with the region's datapoints. A day is active when the sum across the
  endpoint's variants is above `invocations_per_day`; the endpoint is idle only when every
  variant is. ListMetrics only lists series with datapoints in the last 14 days, and SageMaker
  may publish no Invocations datapoint at all on a day without traffic: a day with a heartbeat
  (instance metrics are published for every InService instance, traffic or not) but no
  Invocations datapoint counts as a day of zero invocations. With Invocations datapoints the
  verdict is high confidence; with only the heartbeat, an unbroken run of heartbeat days up to
  a fresh one makes the endpoint idle with medium confidence. No metric, no datapoint, stale
  metrics or an error on either metric mean unknown.
* stop: record the endpoint config and its models (as CreateEndpointConfig and CreateModel
  arguments, with their tags), the endpoint's tags, each variant's current instance count and
  weight, and the variants' Application Auto Scaling targets, policies and scheduled actions;
  then delete the endpoint (the config and models are kept) and deregister any of its scalable
  targets still registered. restore: recreate the models and the config if they are gone, then
  the endpoint; once it is InService, put back the counts and weights, then the auto scaling.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from janitor.clouds.aws import cloudwatch, tagging
from janitor.clouds.aws.cloudwatch import DAY
from janitor.clouds.aws.session import AwsScope, one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
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
    from botocore.model import Shape
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_sagemaker import SageMakerClient

    from janitor.policy import Rule

KIND = "aws.sagemaker-endpoint"
NAMESPACE = "AWS/SageMaker"
METRIC = "Invocations"
DIMENSION_NAMES = frozenset({"EndpointName", "VariantName"})
TAG_RESOURCE_TYPE = "sagemaker:endpoint"
DESCRIBE_WORKERS = 8  # concurrent DescribeEndpoint calls; the client pools 32 connections
_SOURCE = "Sum per day, AWS/SageMaker Invocations"
# Instance metrics, published for every InService endpoint instance whether it serves traffic
# or not: a day with a sample shows the endpoint's metrics were flowing that day.
HEARTBEAT_NAMESPACE = "/aws/sagemaker/Endpoints"
HEARTBEAT_METRIC = "CPUUtilization"
_HEARTBEAT_SOURCE = f"{NAMESPACE} {METRIC} absent; {HEARTBEAT_NAMESPACE} heartbeat"


def _day(value: datetime) -> str:
    return f"{utc(value):%Y-%m-%d}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _is_not_found(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    code = err.get("Code", "")
    message = err.get("Message", "")
    return code in {"ResourceNotFound", "ResourceNotFoundException"} or (
        code == "ValidationException" and "could not find" in message.lower()
    )


def _user_tags(tags: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Tags that can be set again: `aws:` tags belong to AWS and are refused on create."""
    return [
        {"Key": tag["Key"], "Value": tag["Value"]}
        for tag in tags
        if not tag["Key"].lower().startswith("aws:")
    ]


# -- scanner ---------------------------------------------------------------------------------


class _ConfigCache:
    """DescribeEndpointConfig once per config name, shared by the threads of one describe().

    The first thread to ask for a name makes the call; the others wait for its answer. None
    when the config is gone; any other error is raised to every thread that asks.
    """

    def __init__(self, sagemaker: SageMakerClient) -> None:
        self._sagemaker = sagemaker
        self._lock = threading.Lock()
        self._answers: dict[str, Future[Mapping[str, Any] | None]] = {}

    def get(self, name: str) -> Mapping[str, Any] | None:
        with self._lock:
            answer = self._answers.get(name)
            first = answer is None
            if answer is None:
                answer = self._answers[name] = Future()
        if first:
            try:
                answer.set_result(self._fetch(name))
            except Exception as exc:  # noqa: BLE001 - raised to every thread that asks for it
                answer.set_exception(exc)
        return answer.result()

    def _fetch(self, name: str) -> Mapping[str, Any] | None:
        try:
            return self._sagemaker.describe_endpoint_config(EndpointConfigName=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise


class EndpointScanner:
    def __init__(
        self,
        sagemaker: SageMakerClient,
        tagger: ResourceGroupsTaggingAPIClient,
        *,
        account_id: str,
        region: str,
    ) -> None:
        self._sagemaker = sagemaker
        self._tagger = tagger
        self._account_id = account_id
        self._region = region

    def scan(self) -> Iterator[Resource]:
        summaries: list[Any] = []
        kwargs: dict[str, Any] = {"MaxResults": 100}
        while True:
            page = self._sagemaker.list_endpoints(**kwargs)
            summaries.extend(page.get("Endpoints", []))
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        if not summaries:
            return
        tags = tagging.by_lower_arn(tagging.tags_by_arn(self._tagger, [TAG_RESOURCE_TYPE]))
        for ep in summaries:
            arn = ep["EndpointArn"]
            yield Resource(
                ref=ResourceRef(Cloud.AWS, KIND, self._account_id, self._region, arn),
                name=ep["EndpointName"],
                state=ep["EndpointStatus"],
                created_at=utc(ep["CreationTime"]),
                tags=dict(tags.get(arn.lower(), {})),
            )

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        """Each resource with its variants filled in, in input order; a vanished endpoint is
        returned unchanged. DescribeEndpoint runs in a few threads at once (a boto3 client is
        thread-safe); DescribeEndpointConfig is asked once per config name. The first error, in
        input order, is raised once the calls already under way have finished."""
        if not resources:
            return []
        configs = _ConfigCache(self._sagemaker)
        workers = min(DESCRIBE_WORKERS, len(resources))
        if workers == 1:
            return [self._describe_one(resource, configs) for resource in resources]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="janitor-describe-endpoint")
        try:
            futures = [pool.submit(self._describe_one, r, configs) for r in resources]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _describe_one(self, resource: Resource, configs: _ConfigCache) -> Resource:
        try:
            endpoint = self._sagemaker.describe_endpoint(EndpointName=resource.name)
        except ClientError as exc:
            if _is_not_found(exc):
                return resource
            raise
        config_name = endpoint["EndpointConfigName"]
        config = configs.get(config_name)
        config_variants: dict[str, Any] = {
            v["VariantName"]: v for v in (config or {}).get("ProductionVariants", [])
        }
        live = {v["VariantName"]: v for v in endpoint.get("ProductionVariants", [])}
        variants: list[dict[str, Any]] = []
        for name in list(live) + [n for n in config_variants if n not in live]:
            configured: Mapping[str, Any] = config_variants.get(name, {})
            running: Mapping[str, Any] = live.get(name, {})
            count = running.get("CurrentInstanceCount", configured.get("InitialInstanceCount", 0))
            variants.append(
                {
                    "name": name,
                    "instance_type": configured.get("InstanceType"),
                    "count": int(count or 0),
                }
            )
        first_type = next((v["instance_type"] for v in variants if v["instance_type"]), None)
        return dataclasses.replace(
            resource,
            state=endpoint.get("EndpointStatus", resource.state),
            instance_type=first_type,
            instance_count=sum(v["count"] for v in variants),
            details={
                **resource.details,
                "variants": tuple(variants),
                "endpoint_config_name": config_name,
            },
        )


# -- usage probe -----------------------------------------------------------------------------


class EndpointProbe:
    def __init__(
        self,
        cw: CloudWatchClient,
        *,
        invocations_per_day: float = 0.0,
        stale_after: timedelta = cloudwatch.STALE_AFTER,
    ) -> None:
        self._cw = cw
        self._threshold = invocations_per_day
        self._stale_after = stale_after

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        try:
            invocation_sets = cloudwatch.list_dimension_sets(
                self._cw, NAMESPACE, METRIC, exact_names=DIMENSION_NAMES
            )
        except cloudwatch.MetricsUnavailable as exc:
            evidence = f"cannot list {NAMESPACE} {METRIC} metrics: {exc}"
            return {r.ref.key: Verdict.unknown(r.ref, evidence) for r in resources}
        try:
            heartbeat_sets = cloudwatch.list_dimension_sets(
                self._cw, HEARTBEAT_NAMESPACE, HEARTBEAT_METRIC, exact_names=DIMENSION_NAMES
            )
        except cloudwatch.MetricsUnavailable as exc:
            evidence = f"cannot list {HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} metrics: {exc}"
            return {r.ref.key: Verdict.unknown(r.ref, evidence) for r in resources}

        invocation_series = _by_endpoint(invocation_sets)
        heartbeat_series = _by_endpoint(heartbeat_sets)
        start, end = cloudwatch.daily_bounds(window)
        verdicts: dict[str, Verdict] = {}
        queried: dict[str, _Series] = {}
        for resource in resources:
            key = resource.ref.key
            if key in verdicts or key in queried:
                continue  # the same endpoint twice: one set of queries serves both
            name = resource.name.lower()
            series = _Series(
                resource, invocation_series.get(name, ()), heartbeat_series.get(name, ())
            )
            if series.invocations or series.heartbeat:
                queried[key] = series
            else:
                verdicts[key] = self._verdict(series, (), window, start, end, now)
        # One group per endpoint, so its variants' Invocations and heartbeat share a
        # GetMetricData call; each call's points are reduced to verdicts, then dropped, before
        # the next call is made.
        groups = ((series, series.requests()) for series in queried.values())
        for series, results in cloudwatch.stream_metric_data(self._cw, groups, start, end):
            verdicts[series.resource.ref.key] = self._verdict(
                series, results, window, start, end, now
            )
        return {resource.ref.key: verdicts[resource.ref.key] for resource in resources}

    def _verdict(
        self,
        series: _Series,
        results: Sequence[cloudwatch.MetricResult],
        window: Window,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> Verdict:
        """The verdict from the endpoint's listed series, read by `results` in the order of
        `series.requests()`."""
        resource = series.resource
        ref = resource.ref
        listed = set(series.variants)
        if not listed:
            return Verdict.unknown(
                ref,
                f"no {NAMESPACE} {METRIC} metric with exactly EndpointName + VariantName "
                f"is listed for endpoint {resource.name}",
            )
        known = {
            str(v["name"]) for v in resource.details.get("variants", ()) if isinstance(v, Mapping)
        }
        if missing := sorted(known - listed):
            return Verdict.unknown(
                ref,
                f"variant(s) {', '.join(missing)} publish no {NAMESPACE} {METRIC} metric "
                f"and no {HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} heartbeat",
            )
        n_inv = len(series.invocations)
        daily: dict[datetime, float] = {}
        for variant, result in zip(series.invocation_variants, results[:n_inv], strict=True):
            if not result.ok:
                return Verdict.unknown(
                    ref, f"{METRIC} for variant {variant} unreadable: {result.error}"
                )
            for ts, value in result.points:
                if start <= ts < end:
                    daily[ts] = daily.get(ts, 0.0) + value
        heartbeat: set[datetime] = set()
        for variant, result in zip(series.heartbeat_variants, results[n_inv:], strict=True):
            if not result.ok:
                return Verdict.unknown(
                    ref,
                    f"{HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} for variant {variant} "
                    f"unreadable: {result.error}",
                )
            heartbeat.update(ts for ts, value in result.points if start <= ts < end and value > 0)
        n_variants = _plural(len(listed), "variant")
        if not daily:
            return self._heartbeat_verdict(resource, heartbeat, n_variants, window, start, end, now)
        for day in heartbeat:
            daily.setdefault(day, 0.0)  # metrics flowed, no Invocations datapoint: no traffic
        newest = max(daily)
        if cloudwatch.is_stale(newest, utc(now), self._stale_after):
            return Verdict.unknown(
                ref, f"{METRIC} metrics stopped arriving: newest datapoint on {_day(newest)}"
            )
        streak = cloudwatch.daily_streak(
            {day: total > self._threshold for day, total in daily.items()}
        )
        if streak.active:
            return Verdict.active(
                ref,
                f"{daily[newest]:g} invocations on {_day(newest)} across {n_variants} ({_SOURCE})",
                last_activity=min(newest + DAY, utc(now)),
            )
        since = cloudwatch.idle_since(streak, resource, window)
        total = sum(value for day, value in daily.items() if day + DAY > since)
        evidence = f"{total:g} invocations across {n_variants} since {_day(since)} ({_SOURCE})"
        if self._threshold > 0:
            evidence += f"; up to {self._threshold:g} a day counts as idle"
        return Verdict.idle(ref, since, evidence, last_activity=streak.last_activity)

    def _heartbeat_verdict(
        self,
        resource: Resource,
        heartbeat: set[datetime],
        n_variants: str,
        window: Window,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> Verdict:
        """No Invocations datapoint in the window: idle only while the heartbeat shows the
        endpoint's metrics were flowing, every day of the newest unbroken run of heartbeat days
        up to a fresh one; the streak starts no earlier than that run."""
        ref = resource.ref
        no_data = (
            f"no {METRIC} datapoints for {n_variants} between {_day(start)} and "
            f"{_day(end - DAY)} ({_SOURCE})"
        )
        if not heartbeat:
            return Verdict.unknown(ref, no_data)
        newest = max(heartbeat)
        if cloudwatch.is_stale(newest, utc(now), self._stale_after):
            return Verdict.unknown(
                ref,
                f"{no_data}; the {HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} heartbeat stopped "
                f"arriving: newest datapoint on {_day(newest)}",
            )
        first = newest
        while first - DAY in heartbeat:
            first -= DAY
        since = max(first, window.start.astimezone(UTC), resource.streak_floor.astimezone(UTC))
        evidence = (
            f"no invocations recorded since {_day(since)} while its instances reported "
            f"{HEARTBEAT_METRIC} every day ({_HEARTBEAT_SOURCE})"
        )
        return Verdict.idle(ref, since, evidence, confidence=Confidence.MEDIUM)


@dataclasses.dataclass(frozen=True, slots=True)
class _Series:
    """An endpoint and its listed series: Invocations and heartbeat, one per variant each."""

    resource: Resource
    invocations: Sequence[cloudwatch.Dimensions]
    heartbeat: Sequence[cloudwatch.Dimensions]

    @property
    def invocation_variants(self) -> tuple[str, ...]:
        return tuple(dict(dims)["VariantName"] for dims in self.invocations)

    @property
    def heartbeat_variants(self) -> tuple[str, ...]:
        return tuple(dict(dims)["VariantName"] for dims in self.heartbeat)

    @property
    def variants(self) -> tuple[str, ...]:
        """The endpoint's variants, Invocations first, then those seen only in the heartbeat."""
        return tuple(dict.fromkeys(self.invocation_variants + self.heartbeat_variants))

    def requests(self) -> list[cloudwatch.MetricRequest]:
        """Invocations Sum per variant, then heartbeat SampleCount per variant."""
        key = self.resource.ref.key
        return [
            cloudwatch.MetricRequest(f"{key}|inv|{index}", NAMESPACE, METRIC, dims, "Sum")
            for index, dims in enumerate(self.invocations)
        ] + [
            cloudwatch.MetricRequest(
                f"{key}|hb|{index}",
                HEARTBEAT_NAMESPACE,
                HEARTBEAT_METRIC,
                dims,
                "SampleCount",
            )
            for index, dims in enumerate(self.heartbeat)
        ]


def _by_endpoint(
    dimension_sets: Sequence[cloudwatch.Dimensions],
) -> dict[str, list[cloudwatch.Dimensions]]:
    """Listed series by lower-cased endpoint name, in ListMetrics order."""
    found: dict[str, list[cloudwatch.Dimensions]] = {}
    for dims in dimension_sets:
        found.setdefault(dict(dims)["EndpointName"].lower(), []).append(dims)
    return found


# -- stopper ---------------------------------------------------------------------------------


def _fit_to_shape(value: Any, shape: Shape) -> Any:
    """Keep only what `shape` (an operation's input) accepts: drops read-only answer fields,
    and empty structures and lists (an absent optional member means the same, and some inputs
    refuse an empty list)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        members = shape.members  # type: ignore[attr-defined]
        fitted = {
            key: _fit_to_shape(item, members[key])
            for key, item in value.items()
            if key in members and item is not None
        }
        return {key: item for key, item in fitted.items() if item != {} and item != []}
    if kind == "list" and isinstance(value, list | tuple):
        return [_fit_to_shape(item, shape.member) for item in value]  # type: ignore[attr-defined]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _fit_to_shape(v, shape.value) for k, v in value.items()}  # type: ignore[attr-defined]
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return value


def _input_shape(client: Any, operation: str) -> Shape:
    shape: Shape | None = client.meta.service_model.operation_model(operation).input_shape
    assert shape is not None
    return shape


# Application Auto Scaling names a SageMaker variant by this resource id, in this namespace.
SCALING_NAMESPACE: Final = "sagemaker"
_SCALING_IDS_PER_CALL = 50  # DescribeScalableTargets accepts up to 50 ResourceIds
_SCALING_KEYS = ("ServiceNamespace", "ResourceId", "ScalableDimension")


def _variant_resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def _is_scaling_not_found(exc: ClientError) -> bool:
    """Application Auto Scaling's "no such target, policy or action": ObjectNotFoundException,
    or (moto) a ValidationException saying none was found."""
    err = exc.response.get("Error", {})
    code = err.get("Code", "")
    message = err.get("Message", "").lower()
    return code == "ObjectNotFoundException" or (
        code == "ValidationException" and message.startswith("no scal")
    )


def _names(items: Sequence[str]) -> str:
    return ", ".join(items)


def _model_names(config: Mapping[str, Any]) -> list[str]:
    """The models the config's variants (production and shadow) serve, in order, once each."""
    variants = [*config.get("ProductionVariants", []), *config.get("ShadowProductionVariants", [])]
    return list(dict.fromkeys(str(v["ModelName"]) for v in variants if v.get("ModelName")))


class _ModelGone(Exception):
    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model


class EndpointStopper:
    """Deletes an endpoint after recording everything needed to bring it back as it was.

    The recipe holds the endpoint config and its models (as CreateEndpointConfig and
    CreateModel arguments, with their tags), each variant's current instance count and weight,
    and the variants' Application Auto Scaling targets, scaling policies and scheduled actions.
    `restore` recreates what is missing (models, then config, then endpoint), waits for the
    endpoint to be InService (at most `in_service_wait`), then puts the counts and the auto
    scaling back.
    """

    def __init__(
        self,
        sagemaker: SageMakerClient,
        autoscaling: ApplicationAutoScalingClient,
        *,
        account_id: str,
        region: str,
        role_arn: str | None = None,
        in_service_wait: timedelta = timedelta(minutes=30),
        poll_every: timedelta = timedelta(seconds=30),
    ) -> None:
        self._sagemaker = sagemaker
        self._autoscaling = autoscaling
        self._account_id = account_id
        self._region = region
        self._role_arn = role_arn
        self._in_service_wait = in_service_wait
        self._poll_every = poll_every

    def plan(self, resource: Resource) -> StopPlan:
        name = resource.name

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            endpoint = self._sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return refuse(StopOutcome.NOT_FOUND, f"endpoint {name} no longer exists")
            return refuse(StopOutcome.FAILED, one_line(exc))
        except BotoCoreError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        status = endpoint["EndpointStatus"]
        fresh = dataclasses.replace(resource, state=status)
        if status == "Deleting":
            return refuse(
                StopOutcome.ALREADY_STOPPED, f"endpoint {name} is already Deleting", fresh
            )
        if status != "InService":
            return refuse(
                StopOutcome.REFUSED_STATE, f"endpoint {name} is {status}, not InService", fresh
            )
        try:
            tags = self._tags(endpoint["EndpointArn"])
            recipe = self._recipe(endpoint, tags)
        except _ModelGone as gone:
            return refuse(
                StopOutcome.REFUSED_STATE,
                f"model {gone.model} of endpoint {name} is gone: cannot record how to restore "
                "the endpoint, so it is left running",
                fresh,
            )
        except ClientError as exc:
            if _is_not_found(exc):
                return refuse(
                    StopOutcome.REFUSED_STATE,
                    f"endpoint config {endpoint['EndpointConfigName']} of {name} is gone: "
                    "cannot record how to restore the endpoint, so it is left running",
                    fresh,
                )
            return refuse(StopOutcome.FAILED, one_line(exc), fresh)
        except BotoCoreError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc), fresh)
        fresh = dataclasses.replace(fresh, tags={t["Key"]: t["Value"] for t in tags})
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        name = str(recipe["endpoint_name"])
        kept = f"endpoint config {recipe['endpoint_config_name']} kept"
        try:
            self._sagemaker.delete_endpoint(EndpointName=name)
        except ClientError as exc:
            if not _is_not_found(exc):
                return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
            # `plan` saw it InService a moment ago: "not found" now means our own delete
            # went through and a retry of it (after a read timeout or a 5xx) found it gone.
            deleted = f"deleted endpoint {name} (a retried delete found it already gone)"
        except BotoCoreError as exc:
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        else:
            deleted = f"deleted endpoint {name}"
        return StopResult(
            StopOutcome.STOPPED,
            "; ".join([deleted, kept, *self._deregister(recipe)]),
            restore=recipe,
        )

    def _deregister(self, recipe: Mapping[str, Any]) -> list[str]:
        """Take the deleted endpoint's recorded auto scaling down: its scheduled actions and
        scaling policies, then its scalable targets.

        SageMaker's guide ("Delete endpoints configured for auto scaling") says that deleting an
        endpoint makes Application Auto Scaling deregister its variants' targets itself, when
        the caller may call DeregisterScalableTarget (and that the delete fails without that
        permission, which janitor's policy therefore grants). What is still there (an
        emulator, or that clean-up not yet done) is removed here, in the order the guide gives
        for updating such an endpoint (policies, then the target), so no policy or alarm is
        left acting on an endpoint that is gone. "Not found" is the normal answer. A failure
        here does not undo the stop: it is said in the result.
        """
        scaling: Mapping[str, Any] = recipe.get("scaling") or {}
        client = self._autoscaling
        calls: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            (
                f"scheduled action {action['ScheduledActionName']}",
                client.delete_scheduled_action,
                {k: action[k] for k in (*_SCALING_KEYS, "ScheduledActionName")},
            )
            for action in scaling.get("scheduled_actions", [])
        ]
        calls += [
            (
                f"scaling policy {policy['PolicyName']}",
                client.delete_scaling_policy,
                {k: policy[k] for k in (*_SCALING_KEYS, "PolicyName")},
            )
            for policy in scaling.get("policies", [])
        ]
        calls += [
            (
                f"scalable target {target['ResourceId']}",
                client.deregister_scalable_target,
                {k: target[k] for k in _SCALING_KEYS},
            )
            for target in scaling.get("targets", [])
        ]
        notes: list[str] = []
        for label, call, kwargs in calls:
            try:
                call(**kwargs)
            except ClientError as exc:
                if not _is_scaling_not_found(exc):
                    notes.append(f"{label} left in place: {one_line(exc)}")
            except BotoCoreError as exc:
                notes.append(f"{label} left in place: {one_line(exc)}")
        return notes

    def _recipe(self, endpoint: Any, endpoint_tags: list[dict[str, str]]) -> dict[str, Any]:
        config_name = endpoint["EndpointConfigName"]
        config = self._sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        create_args = _fit_to_shape(
            dict(config), _input_shape(self._sagemaker, "CreateEndpointConfig")
        )
        create_args.pop("Tags", None)
        create_args["EndpointConfigName"] = config_name
        name = str(endpoint["EndpointName"])
        live_variants = endpoint.get("ProductionVariants", [])
        return {
            "kind": KIND,
            "account": self._account_id,
            "region": self._region,
            "role_arn": self._role_arn,
            "endpoint_name": name,
            "endpoint_arn": endpoint["EndpointArn"],
            "endpoint_config_name": config_name,
            "endpoint_config": create_args,
            "endpoint_tags": _user_tags(endpoint_tags),
            "config_tags": _user_tags(self._tags(config["EndpointConfigArn"])),
            "models": [self._model_args(model) for model in _model_names(config)],
            # What the variants run now: autoscaling or an operator may have moved these away
            # from the config's InitialInstanceCount and InitialVariantWeight.
            "variants": [
                {
                    key: variant[key]
                    for key in ("VariantName", "CurrentInstanceCount", "CurrentWeight")
                    if variant.get(key) is not None
                }
                for variant in live_variants
            ],
            "scaling": self._scaling(name, [str(v["VariantName"]) for v in live_variants]),
        }

    def _model_args(self, model_name: str) -> dict[str, Any]:
        """DescribeModel as CreateModel arguments: containers (image, model data URL,
        environment), execution role, VPC config, network isolation, and the model's tags."""
        try:
            model = self._sagemaker.describe_model(ModelName=model_name)
        except ClientError as exc:
            if _is_not_found(exc):
                raise _ModelGone(model_name) from None
            raise
        args: dict[str, Any] = _fit_to_shape(
            dict(model), _input_shape(self._sagemaker, "CreateModel")
        )
        args["ModelName"] = model_name
        args.pop("Tags", None)
        if tags := _user_tags(self._tags(model["ModelArn"])):
            args["Tags"] = tags
        return args

    def _scaling(self, endpoint: str, variants: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The variants' scalable targets, scaling policies and scheduled actions, as
        RegisterScalableTarget, PutScalingPolicy and PutScheduledAction arguments."""
        client = self._autoscaling
        wanted = [_variant_resource_id(endpoint, v) for v in variants]
        found: list[Any] = []
        for start in range(0, len(wanted), _SCALING_IDS_PER_CALL):
            ids = wanted[start : start + _SCALING_IDS_PER_CALL]
            for page in client.get_paginator("describe_scalable_targets").paginate(
                ServiceNamespace=SCALING_NAMESPACE, ResourceIds=ids
            ):
                found.extend(t for t in page["ScalableTargets"] if t["ResourceId"] in ids)
        target_shape = _input_shape(client, "RegisterScalableTarget")
        policy_shape = _input_shape(client, "PutScalingPolicy")
        action_shape = _input_shape(client, "PutScheduledAction")
        targets: list[dict[str, Any]] = []
        policies: list[dict[str, Any]] = []
        actions: list[dict[str, Any]] = []
        for target in found:
            args = _fit_to_shape(dict(target), target_shape)
            # SageMaker targets use Application Auto Scaling's service-linked role, which it
            # picks itself: a RoleARN would only ask for iam:PassRole.
            args.pop("RoleARN", None)
            targets.append(args)
            key = (target["ResourceId"], target["ScalableDimension"])
            for policy_page in client.get_paginator("describe_scaling_policies").paginate(
                ServiceNamespace=SCALING_NAMESPACE, ResourceId=key[0], ScalableDimension=key[1]
            ):
                policies.extend(
                    _fit_to_shape(dict(p), policy_shape)
                    for p in policy_page["ScalingPolicies"]
                    if (p["ResourceId"], p["ScalableDimension"]) == key
                )
            for action_page in client.get_paginator("describe_scheduled_actions").paginate(
                ServiceNamespace=SCALING_NAMESPACE, ResourceId=key[0], ScalableDimension=key[1]
            ):
                actions.extend(
                    _fit_to_shape(dict(a), action_shape)
                    for a in action_page["ScheduledActions"]
                    if (a["ResourceId"], a.get("ScalableDimension")) == key
                )
        return {"targets": targets, "policies": policies, "scheduled_actions": actions}

    def _tags(self, arn: str) -> list[dict[str, str]]:
        tags: list[dict[str, str]] = []
        kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
        while True:
            page = self._sagemaker.list_tags(**kwargs)
            tags.extend({"Key": t["Key"], "Value": t["Value"]} for t in page.get("Tags", []))
            token = page.get("NextToken")
            if not token:
                return tags
            kwargs["NextToken"] = token

    # -- restore -----------------------------------------------------------------------------

    def restore(self, recipe: Mapping[str, Any]) -> str:
        """Recreate what is missing (models, then the config, then the endpoint); once the
        endpoint is InService, put back the variants' counts and weights, then their auto
        scaling. Safe to run again: a second run after a wait that ran out picks up where the
        first stopped (RestoreFailed says so, so the stop stays restorable)."""
        if recipe.get("kind") != KIND:
            raise ValueError(f"not a {KIND} recipe: kind is {recipe.get('kind')!r}")
        if (recipe.get("account"), recipe.get("region")) != (self._account_id, self._region):
            raise ValueError(
                f"recipe is for {recipe.get('account')}/{recipe.get('region')}, this stopper "
                f"works in {self._account_id}/{self._region}"
            )
        name = str(recipe["endpoint_name"])
        config_name = str(recipe["endpoint_config_name"])
        existing = self._describe_endpoint(name)
        scaling: Mapping[str, Any] = recipe.get("scaling") or {}
        follow_up = bool(scaling.get("targets")) or self._counts_differ(recipe)
        done: list[str] = []
        if existing is None:
            models = self._recreate_models(recipe)
            config = self._recreate_config(recipe)
            endpoint_args: dict[str, Any] = {
                "EndpointName": name,
                "EndpointConfigName": config_name,
            }
            if recipe.get("endpoint_tags"):
                endpoint_args["Tags"] = list(recipe["endpoint_tags"])
            self._sagemaker.create_endpoint(**endpoint_args)
            parts = [f"model {m}" for m in models]
            if config:
                parts.append(f"endpoint config {config_name}")
            if parts:
                done.append(f"recreated {_names(parts)} and endpoint {name}")
            else:
                done.append(f"recreated endpoint {name} from endpoint config {config_name}")
        elif existing.get("EndpointConfigName") != config_name or not follow_up:
            return f"endpoint {name} already exists ({existing['EndpointStatus']}); nothing to do"
        else:
            done.append(f"endpoint {name} already exists")
        if not follow_up:
            return done[0]
        self._wait_in_service(name, done)
        done.extend(self._put_back_counts(recipe, done))
        done.extend(self._put_back_scaling(scaling))
        return "; ".join(done)

    def _describe_endpoint(self, name: str) -> Any:
        try:
            return self._sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
            return None

    def _recreate_models(self, recipe: Mapping[str, Any]) -> list[str]:
        """CreateModel for each recorded model that is gone; returns their names."""
        created: list[str] = []
        for args in recipe.get("models", []):
            model_name = str(args["ModelName"])
            try:
                self._sagemaker.describe_model(ModelName=model_name)
            except ClientError as exc:
                if not _is_not_found(exc):
                    raise
                self._sagemaker.create_model(**args)
                created.append(model_name)
        return created

    def _recreate_config(self, recipe: Mapping[str, Any]) -> bool:
        config_name = str(recipe["endpoint_config_name"])
        try:
            self._sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
        else:
            return False
        config_args: dict[str, Any] = dict(recipe["endpoint_config"])
        config_args["EndpointConfigName"] = config_name
        if recipe.get("config_tags"):
            config_args["Tags"] = list(recipe["config_tags"])
        self._sagemaker.create_endpoint_config(**config_args)
        return True

    def _wait_in_service(self, name: str, done: Sequence[str]) -> None:
        """Wait (bounded) for the endpoint to be InService: counts and auto scaling can only
        be set on a deployed endpoint. RestoreFailed, saying to run restore again, if it is
        not InService in time."""
        attempts = max(1, math.ceil(self._in_service_wait / self._poll_every))
        delay = max(1, round(self._poll_every.total_seconds()))
        try:
            self._sagemaker.get_waiter("endpoint_in_service").wait(
                EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
            )
        except WaiterError:
            endpoint = self._describe_endpoint(name)
            status = endpoint["EndpointStatus"] if endpoint else "gone"
            so_far = "; ".join(done)
            if status == "Failed":
                reason = endpoint.get("FailureReason", "no reason given")
                raise RestoreFailed(
                    f"{so_far}; endpoint {name} Failed: {reason}. Its instance counts and auto "
                    "scaling were not put back"
                ) from None
            raise RestoreFailed(
                f"{so_far}; endpoint {name} is {status}, not InService, after waiting "
                f"{self._in_service_wait}: run restore again once it is InService to put back "
                "its instance counts and auto scaling"
            ) from None

    def _counts_differ(self, recipe: Mapping[str, Any]) -> bool:
        initial = self._initial_values(recipe)
        return any(
            _recorded_values(variant) != initial.get(str(variant["VariantName"]))
            for variant in recipe.get("variants", [])
        )

    @staticmethod
    def _initial_values(recipe: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {
            str(v["VariantName"]): (
                v.get("InitialInstanceCount"),
                float(v.get("InitialVariantWeight", 1.0)),  # 1.0 when not given (API default)
            )
            for v in recipe["endpoint_config"].get("ProductionVariants", [])
        }

    def _put_back_counts(self, recipe: Mapping[str, Any], done: list[str]) -> list[str]:
        """Each variant's recorded instance count and weight, where the endpoint still runs
        the config's initial values (so a second run does not undo later scaling).

        UpdateEndpointWeightsAndCapacities on the recreated endpoint, rather than recreating
        it from a config that carries the recorded counts: the endpoint comes back on its own
        config, unchanged (configs cannot be edited, and a second config would be a new thing
        to clean up), and the counts are set before the auto scaling target is registered, so
        they lie within its limits and its policies take over from there. The call changes
        the capacity of one variant at a time, so it is made once per variant, each followed
        by the wait for InService.
        """
        initial = self._initial_values(recipe)
        name = str(recipe["endpoint_name"])
        endpoint = self._describe_endpoint(name) or {}
        live = {v["VariantName"]: v for v in endpoint.get("ProductionVariants", [])}
        changed: list[str] = []
        for variant in recipe.get("variants", []):
            variant_name = str(variant["VariantName"])
            want = _recorded_values(variant)
            now = live.get(variant_name)
            if now is None or want == initial.get(variant_name):
                continue
            if _recorded_values(now) != initial.get(variant_name):
                continue  # scaled since it was recreated: leave it
            desired: Any = {"VariantName": variant_name}  # DesiredWeightAndCapacityTypeDef
            if want[0] is not None:
                desired["DesiredInstanceCount"] = want[0]
            if want[1] is not None:
                desired["DesiredWeight"] = want[1]
            self._sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=name, DesiredWeightsAndCapacities=[desired]
            )
            changed.append(
                f"{variant_name} ({_plural(int(want[0] or 0), 'instance')}, weight {want[1]:g})"
                if want[1] is not None
                else f"{variant_name} ({_plural(int(want[0] or 0), 'instance')})"
            )
            done_now = [*done, f"set variant(s) {_names(changed)}"]
            self._wait_in_service(name, done_now)
        return (
            [f"put back instance counts and weights of variant(s) {_names(changed)}"]
            if changed
            else []
        )

    def _put_back_scaling(self, scaling: Mapping[str, Any]) -> list[str]:
        """Register the targets, then put their policies and scheduled actions back; each call
        creates or updates, so a second run is harmless."""
        targets = scaling.get("targets", [])
        if not targets:
            return []
        for target in targets:
            self._autoscaling.register_scalable_target(**target)
        for policy in scaling.get("policies", []):
            self._autoscaling.put_scaling_policy(**policy)
        for action in scaling.get("scheduled_actions", []):
            self._autoscaling.put_scheduled_action(**action)
        variants = [str(t["ResourceId"]).rsplit("/", 1)[-1] for t in targets]
        n_policies = len(scaling.get("policies", []))
        text = (
            f"registered auto scaling of variant(s) {_names(variants)} with "
            f"{n_policies} scaling polic{'y' if n_policies == 1 else 'ies'}"
        )
        if n_actions := len(scaling.get("scheduled_actions", [])):
            text += f" and {_plural(n_actions, 'scheduled action')}"
        return [text]


def _recorded_values(variant: Mapping[str, Any]) -> tuple[Any, Any]:
    """(instance count, weight) of a DescribeEndpoint variant or a recorded one."""
    weight = variant.get("CurrentWeight")
    return (variant.get("CurrentInstanceCount"), float(weight) if weight is not None else None)


def build(scope: AwsScope, rule: Rule) -> KindHandlers:
    sagemaker: SageMakerClient = scope.client("sagemaker")
    return KindHandlers(
        scanner=EndpointScanner(
            sagemaker,
            scope.client("resourcegroupstaggingapi"),
            account_id=scope.account_id,
            region=scope.region,
        ),
        probe=EndpointProbe(
            scope.client("cloudwatch"),
            invocations_per_day=float(rule.thresholds.get("invocations_per_day", 0.0)),
        ),
        stopper=EndpointStopper(
            sagemaker,
            scope.client("application-autoscaling"),
            account_id=scope.account_id,
            region=scope.region,
            role_arn=scope.role_arn,
        ),
    )
