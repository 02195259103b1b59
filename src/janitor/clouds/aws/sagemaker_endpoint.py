"""aws.sagemaker-endpoint: real-time SageMaker endpoints, judged by their invocations.

* scan: ListEndpoints (100 per page) and tags in bulk (Resource Groups Tagging API).
* describe (action candidates only): DescribeEndpoint per endpoint, DescribeEndpointConfig once
  per config name, 8 at a time, for the instance type and count of every production variant
  and the endpoint type (`details["variants"]`, `details["endpoint_type"]`: real-time, async,
  inference-components).
* usage: one ListMetrics pass for `AWS/SageMaker` `Invocations` and one for the
  `/aws/sagemaker/Endpoints` `CPUUtilization` heartbeat in the region, keeping the series whose
  dimensions are exactly EndpointName + VariantName. ListMetrics lists only series with a
  datapoint in the past two weeks, so an endpoint's variants are the union of both listings and
  of its described variants, and each variant's Invocations are queried whether listed or not
  (an unlisted heartbeat is not: it could show no recent day). Then GetMetricData, `Sum` per day
  of Invocations and `SampleCount` per day of the heartbeat, for every (endpoint, variant) at
  once, 500 series per call, an endpoint's series in the same call; each call's points are
  reduced to verdicts before the next call is made, so memory does not grow with the region's
  datapoints. A day is active when the sum across the endpoint's variants is above
  `invocations_per_day`; the endpoint is idle only when every variant is, every variant shows
  evidence (a variant that publishes nothing makes it unknown), and nothing may have been used
  in the last 24 hours (the current day is incomplete). SageMaker may publish no Invocations
  datapoint at all on a day without traffic: a day with a heartbeat (instance metrics are
  published for every InService instance, traffic or not) but no Invocations datapoint counts as
  a day of zero invocations. The idle streak starts no earlier than the newest unbroken run of
  days with evidence. With Invocations datapoints the verdict is high confidence; with only the
  heartbeat, medium. No metric, no datapoint, stale metrics or an error on either metric mean
  unknown.
  An endpoint the metrics would call idle is described first (through the scanner, which keeps
  the answer for the pipeline's own describe): an asynchronous endpoint is judged by
  `InvocationsProcesssed` and `ApproximateBacklogSize` instead (the heartbeat alone never makes
  it idle); one hosting inference components is unknown.
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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from janitor import evidence as daily
from janitor.clouds.aws import cloudwatch, tagging
from janitor.clouds.aws.session import AwsScope, one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.evidence import DAY
from janitor.model import (
    Cloud,
    Confidence,
    Resource,
    ResourceRef,
    Status,
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
# Asynchronous endpoints publish no Invocations; their queue metrics, per EndpointName. The
# name is spelt with three s's by SageMaker itself ("InvocationsProcesssed", SageMaker developer
# guide, "Alarms and logs for tracking metrics from asynchronous endpoints").
ASYNC_PROCESSED = "InvocationsProcesssed"
ASYNC_BACKLOG = "ApproximateBacklogSize"
_ASYNC_SOURCE = f"{NAMESPACE} {ASYNC_PROCESSED} Sum and {ASYNC_BACKLOG} Maximum per day"
# details["endpoint_type"], set by describe (see `endpoint_type`)
ENDPOINT_REAL_TIME = "real-time"
ENDPOINT_ASYNC = "async"
ENDPOINT_INFERENCE_COMPONENTS = "inference-components"
ENDPOINT_UNKNOWN = "unknown"


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
        # Endpoints the probe described this run, by key, until `describe` takes them.
        self._described: dict[str, Resource] = {}
        self._lock = threading.Lock()

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
        """Each resource with its variants and endpoint type filled in, in input order; a
        vanished endpoint is returned unchanged. DescribeEndpoint runs in a few threads at once
        (a boto3 client is thread-safe); DescribeEndpointConfig is asked once per config name.
        The first error, in input order, is raised once the calls already under way have
        finished.

        An endpoint the probe of the same run already described (to judge it: see
        `EndpointProbe`) is taken from that answer once, not described again."""
        with self._lock:
            ready = {r.ref.key: self._described.pop(r.ref.key, None) for r in resources}
        todo = [r for r in resources if ready[r.ref.key] is None]
        answers = dict(zip((r.ref.key for r in todo), self.describe_each(todo), strict=True))
        out: list[Resource] = []
        for resource in resources:
            answer = ready[resource.ref.key] or answers[resource.ref.key]
            if isinstance(answer, Exception):
                raise answer
            out.append(answer)
        return out

    def describe_for_probe(self, resources: Sequence[Resource]) -> list[Resource | Exception]:
        """`describe_each`, keeping each described answer for the next `describe()` of the same
        endpoint (the pipeline describes its non-active findings after the probe: an endpoint
        the probe had to describe is not described twice)."""
        answers = self.describe_each(resources)
        with self._lock:
            for answer in answers:
                if isinstance(answer, Resource) and is_described(answer):
                    self._described[answer.ref.key] = answer
        return answers

    def describe_each(self, resources: Sequence[Resource]) -> list[Resource | Exception]:
        """Each resource described, or the error describing it raised, in input order."""
        if not resources:
            return []
        configs = _ConfigCache(self._sagemaker)
        workers = min(DESCRIBE_WORKERS, len(resources))
        if workers == 1:
            return [self._describe_or_error(resource, configs) for resource in resources]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="janitor-describe-endpoint")
        try:
            futures = [pool.submit(self._describe_or_error, r, configs) for r in resources]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _describe_or_error(self, resource: Resource, configs: _ConfigCache) -> Resource | Exception:
        try:
            return self._describe_one(resource, configs)
        except (ClientError, BotoCoreError) as exc:
            return exc

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
                "endpoint_type": endpoint_type(config),
            },
        )


def endpoint_type(config: Mapping[str, Any] | None) -> str:
    """What kind of endpoint an endpoint config makes, for the probe: its metrics differ.

    * `async`: the config has an `AsyncInferenceConfig`. Asynchronous endpoints publish no
      `Invocations` (SageMaker developer guide, "Alarms and logs for tracking metrics from
      asynchronous endpoints": "Any metric not listed below is not published if the endpoint
      is enabled for asynchronous inference", Invocations among them) but
      `InvocationsProcesssed` (sic) and `ApproximateBacklogSize` per EndpointName.
    * `inference-components`: a production variant names no model (an endpoint that hosts
      inference components: each component is deployed with CreateInferenceComponent, and
      its traffic is published per `InferenceComponentName`).
    * `real-time` otherwise; `unknown` when the config could not be read (it is gone).
    """
    if config is None:
        return ENDPOINT_UNKNOWN
    if config.get("AsyncInferenceConfig"):
        return ENDPOINT_ASYNC
    variants = config.get("ProductionVariants") or []
    if any(not v.get("ModelName") for v in variants):
        return ENDPOINT_INFERENCE_COMPONENTS
    return ENDPOINT_REAL_TIME


def is_described(resource: Resource) -> bool:
    """The resource carries what `describe` adds: its variants and its endpoint type."""
    return "variants" in resource.details and "endpoint_type" in resource.details


def described_variants(resource: Resource) -> tuple[str, ...]:
    return tuple(
        str(v["name"]) for v in resource.details.get("variants", ()) if isinstance(v, Mapping)
    )


# -- usage probe -----------------------------------------------------------------------------

# Describes endpoints for the probe: each answer is the described resource or the error.
Describer = Callable[[Sequence[Resource]], Sequence[Resource | Exception]]


class EndpointProbe:
    """Verdicts for endpoints, batched for a whole region (see the module docstring).

    The series an endpoint is judged by are the dimension sets ListMetrics lists for it *and*
    those known otherwise: each variant seen in either metric is queried for both, and each
    variant its description names (`details["variants"]`) too, listed or not, because
    ListMetrics hides a series without a datapoint in the past two weeks (an endpoint whose
    traffic stopped 20 days ago has an unlisted Invocations series).

    An endpoint is called idle only once described: its variants must all show evidence, and
    its type decides the metrics (asynchronous endpoints are judged by their queue, endpoints
    with inference components are unknown). An undescribed endpoint the metrics would call
    idle is described through `describe` (the scanner's, so the pipeline does not describe it
    again) and judged again; active and unknown ones are never described here.
    """

    def __init__(
        self,
        cw: CloudWatchClient,
        *,
        describe: Describer | None = None,
        invocations_per_day: float = 0.0,
        stale_after: timedelta = daily.STALE_AFTER,
    ) -> None:
        self._cw = cw
        self._describe = describe
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

        listed = _Listed(_by_endpoint(invocation_sets), _by_endpoint(heartbeat_sets))
        unique = list({r.ref.key: r for r in resources}.values())
        verdicts = self._judge(unique, listed, window, utc(now))
        pending = [
            r for r in unique if verdicts[r.ref.key].status is Status.IDLE and not is_described(r)
        ]
        if pending:
            verdicts.update(self._judge_described(pending, verdicts, listed, window, utc(now)))
        return {resource.ref.key: verdicts[resource.ref.key] for resource in resources}

    def _judge_described(
        self,
        pending: Sequence[Resource],
        first: Mapping[str, Verdict],
        listed: _Listed,
        window: Window,
        now: datetime,
    ) -> dict[str, Verdict]:
        """Describe what the metrics alone would call idle, then judge it again where the
        description adds something (a variant not queried yet, another endpoint type)."""
        if self._describe is None:
            return {
                r.ref.key: Verdict.unknown(
                    r.ref,
                    f"endpoint {r.name} not described: its variants and type are unknown, so "
                    f"its metrics cannot show it idle ({first[r.ref.key].evidence})",
                )
                for r in pending
            }
        out: dict[str, Verdict] = {}
        again: list[Resource] = []
        for resource, answer in zip(pending, self._describe(pending), strict=True):
            ref = resource.ref
            if isinstance(answer, Exception):
                out[ref.key] = Verdict.unknown(
                    ref,
                    f"cannot describe endpoint {resource.name} to check its variants and type: "
                    f"{one_line(answer)}",
                )
            elif not is_described(answer):
                out[ref.key] = Verdict.unknown(
                    ref, f"endpoint {resource.name} could not be described (deleted meanwhile?)"
                )
            elif answer.details.get("endpoint_type") != ENDPOINT_REAL_TIME or set(
                described_variants(answer)
            ) != set(listed.variants(answer)):
                again.append(answer)
            else:
                out[ref.key] = first[ref.key]  # the same series would be read again
        out.update(self._judge(again, listed, window, now))
        return out

    def _judge(
        self, resources: Sequence[Resource], listed: _Listed, window: Window, now: datetime
    ) -> dict[str, Verdict]:
        start, end = daily.daily_bounds(window)
        verdicts: dict[str, Verdict] = {}
        queried: list[_Series] = []
        for resource in resources:
            kind = resource.details.get("endpoint_type", ENDPOINT_REAL_TIME)
            if kind == ENDPOINT_INFERENCE_COMPONENTS:
                verdicts[resource.ref.key] = Verdict.unknown(
                    resource.ref,
                    f"endpoint {resource.name} hosts inference components: their traffic is "
                    f"published per InferenceComponentName, which janitor does not read yet, "
                    f"and the instance heartbeat alone cannot show it idle",
                )
                continue
            if kind == ENDPOINT_UNKNOWN:
                verdicts[resource.ref.key] = Verdict.unknown(
                    resource.ref,
                    f"the endpoint config of {resource.name} cannot be read: its type and "
                    "variants are unknown",
                )
                continue
            series = _Series.of(resource, listed, asynchronous=kind == ENDPOINT_ASYNC)
            if series.variants or series.asynchronous:
                queried.append(series)
            else:
                verdicts[resource.ref.key] = Verdict.unknown(
                    resource.ref,
                    f"no {NAMESPACE} {METRIC} metric with exactly EndpointName + VariantName "
                    f"is listed for endpoint {resource.name}",
                )
        # One group per endpoint, so all its series share a GetMetricData call; each call's
        # points are reduced to verdicts, then dropped, before the next call is made.
        groups = ((series, series.requests()) for series in queried)
        for series, results in cloudwatch.stream_metric_data(self._cw, groups, start, end):
            if series.asynchronous:
                verdict = self._async_verdict(series, results, window, start, end, now)
            else:
                verdict = self._verdict(series, results, window, start, end, now)
            verdicts[series.resource.ref.key] = verdict
        return verdicts

    def _verdict(
        self,
        series: _Series,
        results: Sequence[cloudwatch.MetricResult],
        window: Window,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> Verdict:
        """A real-time endpoint's verdict from `results`, in the order of `series.requests()`:
        Invocations per variant, then the heartbeat per variant."""
        resource = series.resource
        ref = resource.ref
        count = len(series.variants)
        invocation_results = results[:count]
        beating = iter(results[count:])  # one per variant whose heartbeat is listed
        no_beat = cloudwatch.MetricResult("")
        heartbeat_results = [
            no_beat if dims is None else next(beating) for dims in series.heartbeat
        ]
        inv_by_variant: list[dict[datetime, float]] = []
        seen_by_variant: list[set[datetime]] = []  # days with any evidence, per variant
        for variant, inv, beat in zip(
            series.variants, invocation_results, heartbeat_results, strict=True
        ):
            if not inv.ok:
                return Verdict.unknown(
                    ref, f"{METRIC} for variant {variant} unreadable: {inv.error}"
                )
            if not beat.ok:
                return Verdict.unknown(
                    ref,
                    f"{HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} for variant {variant} "
                    f"unreadable: {beat.error}",
                )
            days: dict[datetime, float] = {}
            for ts, value in inv.points:
                if start <= ts < end:
                    days[ts] = days.get(ts, 0.0) + value
            beats = {ts for ts, value in beat.points if start <= ts < end and value > 0}
            inv_by_variant.append(days)
            seen_by_variant.append(set(days) | beats)

        # The variants that must each show evidence: the described ones (a listed variant the
        # description lacks was removed; its traffic still counts as the endpoint's), else all.
        required = [
            index
            for index, variant in enumerate(series.variants)
            if series.current is None or variant in series.current
        ] or list(range(count))
        n_variants = _plural(len(required), "variant")
        no_data = (
            f"no {METRIC} datapoints for {n_variants} between {_day(start)} and "
            f"{_day(end - DAY)} ({_SOURCE})"
        )
        if not any(seen_by_variant):
            return Verdict.unknown(ref, no_data)
        with_invocations = any(inv_by_variant)
        pairs = [(series.variants[index], seen_by_variant[index]) for index in required]
        if silent := [variant for variant, seen in pairs if not seen]:
            return Verdict.unknown(
                ref,
                f"variant(s) {', '.join(silent)} publish no {NAMESPACE} {METRIC} datapoint "
                f"and no {HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} heartbeat between "
                f"{_day(start)} and {_day(end - DAY)}: their use cannot be told",
            )
        for variant, seen in pairs:
            newest = max(seen)
            if daily.is_stale(newest, now, self._stale_after):
                what = (
                    f"{METRIC} metrics"
                    if with_invocations
                    else (f"{no_data}; the {HEARTBEAT_NAMESPACE} {HEARTBEAT_METRIC} heartbeat")
                )
                of = f" of variant {variant}" if len(required) > 1 else ""
                return Verdict.unknown(
                    ref, f"{what}{of} stopped arriving: newest datapoint on {_day(newest)}"
                )

        total: dict[datetime, float] = {}
        for days in inv_by_variant:
            for day, value in days.items():
                total[day] = total.get(day, 0.0) + value
        every = set.intersection(*(seen for _, seen in pairs))  # every variant shows evidence
        active = {day for day, value in total.items() if value > self._threshold}
        by_day = {day: day in active for day in every | active}
        if not by_day:
            return Verdict.unknown(
                ref, f"no day on which all {n_variants} published metrics ({_SOURCE})"
            )
        streak = daily.daily_streak(by_day)
        last = daily.in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"{total[last]:g} invocations on {_day(last)} across {n_variants} ({_SOURCE})",
                last_activity=min(last + DAY, now),
            )
        since = daily.idle_since(streak, resource, window, every)
        if not with_invocations:
            evidence = (
                f"no invocations recorded since {_day(since)} while its instances reported "
                f"{HEARTBEAT_METRIC} every day ({_HEARTBEAT_SOURCE})"
            )
            return Verdict.idle(ref, since, evidence, confidence=Confidence.MEDIUM)
        in_streak = sum(value for day, value in total.items() if day + DAY > since)
        evidence = f"{in_streak:g} invocations across {n_variants} since {_day(since)} ({_SOURCE})"
        if self._threshold > 0:
            evidence += f"; up to {self._threshold:g} a day counts as idle"
        return Verdict.idle(ref, since, evidence, last_activity=streak.last_activity)

    def _async_verdict(
        self,
        series: _Series,
        results: Sequence[cloudwatch.MetricResult],
        window: Window,
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> Verdict:
        """An asynchronous endpoint, by its queue: a day is active when it processed more than
        the threshold or had a backlog. Its instance heartbeat is not evidence here."""
        resource = series.resource
        ref = resource.ref
        processed, backlog = results[-2:]
        for name, result in ((ASYNC_PROCESSED, processed), (ASYNC_BACKLOG, backlog)):
            if not result.ok:
                return Verdict.unknown(ref, f"{NAMESPACE} {name} unreadable: {result.error}")
        done = {ts: value for ts, value in processed.points if start <= ts < end}
        queued = {ts: value for ts, value in backlog.points if start <= ts < end}
        seen = set(done) | set(queued)
        if not seen:
            return Verdict.unknown(
                ref,
                f"asynchronous endpoint with no {ASYNC_PROCESSED} or {ASYNC_BACKLOG} datapoints "
                f"between {_day(start)} and {_day(end - DAY)} ({_ASYNC_SOURCE}); its instance "
                "heartbeat alone cannot show it idle",
            )
        newest = max(seen)
        if daily.is_stale(newest, now, self._stale_after):
            return Verdict.unknown(
                ref,
                f"asynchronous endpoint metrics stopped arriving: newest datapoint on "
                f"{_day(newest)} ({_ASYNC_SOURCE})",
            )
        by_day = {
            day: done.get(day, 0.0) > self._threshold or queued.get(day, 0.0) > 0 for day in seen
        }
        streak = daily.daily_streak(by_day)
        last = daily.in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"{done.get(last, 0.0):g} asynchronous requests processed, backlog up to "
                f"{queued.get(last, 0.0):g} on {_day(last)} ({_ASYNC_SOURCE})",
                last_activity=min(last + DAY, now),
            )
        since = daily.idle_since(streak, resource, window, seen)
        in_streak = sum(value for day, value in done.items() if day + DAY > since)
        evidence = (
            f"{in_streak:g} asynchronous requests processed and an empty queue since "
            f"{_day(since)} ({_ASYNC_SOURCE})"
        )
        if self._threshold > 0:
            evidence += f"; up to {self._threshold:g} a day counts as idle"
        return Verdict.idle(
            ref,
            since,
            evidence,
            confidence=Confidence.HIGH if done else Confidence.MEDIUM,
            last_activity=streak.last_activity,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Listed:
    """What ListMetrics listed, by lower-cased endpoint name."""

    invocations: Mapping[str, Sequence[cloudwatch.Dimensions]]
    heartbeat: Mapping[str, Sequence[cloudwatch.Dimensions]]

    def variants(self, resource: Resource) -> tuple[str, ...]:
        name = resource.name.lower()
        found = [*self.invocations.get(name, ()), *self.heartbeat.get(name, ())]
        return tuple(dict.fromkeys(dict(dims)["VariantName"] for dims in found))


@dataclasses.dataclass(frozen=True, slots=True)
class _Series:
    """An endpoint and the series it is judged by: for each known variant its Invocations
    (listed or not) and its heartbeat where listed, and for an asynchronous endpoint its queue
    metrics. An unlisted heartbeat is not queried: it has had no datapoint for two weeks, so
    it could show no recent day of the streak."""

    resource: Resource
    variants: tuple[str, ...]
    invocations: tuple[cloudwatch.Dimensions, ...]  # one per variant
    heartbeat: tuple[cloudwatch.Dimensions | None, ...]  # one per variant, None: not listed
    asynchronous: bool = False
    current: frozenset[str] | None = None  # the described variants; None: not described

    @classmethod
    def of(cls, resource: Resource, listed: _Listed, *, asynchronous: bool = False) -> _Series:
        """Every variant ListMetrics lists in either metric, then those only described; each
        queried with its listed dimension set, else the other metric's, else EndpointName +
        VariantName (a GetMetricData query names the exact set; the names' order is kept as
        published, which matters to the emulator)."""
        name = resource.name.lower()
        inv = {dict(d)["VariantName"]: d for d in listed.invocations.get(name, ())}
        beat = {dict(d)["VariantName"]: d for d in listed.heartbeat.get(name, ())}
        variants = tuple(dict.fromkeys([*inv, *beat, *described_variants(resource)]))

        def invocations(variant: str) -> cloudwatch.Dimensions:
            known = inv.get(variant) or beat.get(variant)
            if known is not None:
                return known
            return (("EndpointName", resource.name), ("VariantName", variant))

        return cls(
            resource,
            variants,
            tuple(invocations(v) for v in variants),
            tuple(beat.get(v) for v in variants),
            asynchronous,
            frozenset(described_variants(resource)) if is_described(resource) else None,
        )

    def requests(self) -> list[cloudwatch.MetricRequest]:
        """Invocations Sum per variant, heartbeat SampleCount per listed one, then for an
        asynchronous endpoint InvocationsProcesssed Sum and ApproximateBacklogSize Maximum."""
        key = self.resource.ref.key
        out = [
            cloudwatch.MetricRequest(f"{key}|inv|{index}", NAMESPACE, METRIC, dims, "Sum")
            for index, dims in enumerate(self.invocations)
        ] + [
            cloudwatch.MetricRequest(
                f"{key}|hb|{index}", HEARTBEAT_NAMESPACE, HEARTBEAT_METRIC, dims, "SampleCount"
            )
            for index, dims in enumerate(self.heartbeat)
            if dims is not None
        ]
        if self.asynchronous:
            endpoint: cloudwatch.Dimensions = (("EndpointName", self.resource.name),)
            out += [
                cloudwatch.MetricRequest(
                    f"{key}|async|processed", NAMESPACE, ASYNC_PROCESSED, endpoint, "Sum"
                ),
                cloudwatch.MetricRequest(
                    f"{key}|async|backlog", NAMESPACE, ASYNC_BACKLOG, endpoint, "Maximum"
                ),
            ]
        return out


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
    scanner = EndpointScanner(
        sagemaker,
        scope.client("resourcegroupstaggingapi"),
        account_id=scope.account_id,
        region=scope.region,
    )
    return KindHandlers(
        scanner=scanner,
        probe=EndpointProbe(
            scope.client("cloudwatch"),
            describe=scanner.describe_for_probe,
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
