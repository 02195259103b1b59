"""`aws.ec2-gpu`: running GPU / accelerator EC2 instances (p, g, gr, trn, inf, dl families).

Scan: one paged DescribeInstances pass (1000 per page) filtered server-side on
`instance-state-name=running`; the family check is a client-side regex. We do not send
`instance-type` wildcards (`p*`, `g*`...): AWS honours them but moto compares filter values
literally and would return nothing, and the regex is stricter than the wildcards anyway
(`g*` would also match a future non-GPU `g` family). Tags come with DescribeInstances.

EC2 has no creation time: `LaunchTime` is the time of the last start, so it is both
`created_at` and `last_started_at` (an idle streak can never start before it).

Usage, strongest first, batched through `cloudwatch.py` for every instance of the scope at once:

* HIGH: CWAgent `nvidia_smi_utilization_gpu`. One ListMetrics pass finds every series; each one
  carrying an `InstanceId` dimension is one GPU (the agent adds index, name, arch...). Each series
  is queried with its exact dimension set, Maximum per day; a day is active when the maximum
  across the instance's GPUs exceeds `gpu_utilization_percent`, so one busy GPU of eight keeps
  the instance active.
* LOW, for instances with no GPU series: AWS/EC2 `CPUUtilization` Maximum per day above
  `cpu_utilization_percent`, or NetworkIn + NetworkOut Sum per day above `network_mb_per_day`.
  A data loader or a CPU-bound preprocessing step looks the same as training here.

ListMetrics lists only series with a datapoint in the past two weeks: the GPU series of an
instance whose agent stopped reporting 20 days ago are no longer listed, and the instance would
look like one without the agent. So for an instance with no listed GPU series, the series its
agent would publish are queried too, by the dimension sets the agent uses on running
instances of the same type in the region (the InstanceId swapped for its own): if they hold
datapoints in the window, the instance is judged by them, and a newest one more than three
days old makes it unknown ("the CloudWatch agent stopped reporting on DATE"), never a CPU
fallback. Without a peer of the same type reporting, an agent silent for more than two weeks
cannot be told from no agent at all (a limit of ListMetrics).

Something used in the last 24 hours is active (the newest day is incomplete), and an idle
streak starts no earlier than the newest unbroken run of days with datapoints.

Each instance's series share one GetMetricData call (500 series per call), and each call's
points are reduced to verdicts before the next call is made: memory does not grow with the
region's datapoints.

Unknown, never idle: no datapoint in the window, a failed or denied query, or a newest datapoint
more than three days old (the agent or the instance stopped reporting).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from janitor.clouds.aws.cloudwatch import (
    Dimensions,
    MetricRequest,
    MetricResult,
    MetricsUnavailable,
    list_dimension_sets,
    stream_metric_data,
)
from janitor.clouds.aws.session import AwsScope, client_config, one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.evidence import (
    DAY,
    STALE_AFTER,
    Streak,
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
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import InstanceTypeDef

    from janitor.policy import Rule

KIND = "aws.ec2-gpu"

# GPU / accelerator families: p2..p5, g3..g6, gr6, trn1/2, inf1/2, dl1/dl2q.
GPU_FAMILY = re.compile(r"^(p\d|g\d|gr\d|trn\d|inf\d|dl\d)")

GPU_NAMESPACE = "CWAgent"
GPU_METRIC = "nvidia_smi_utilization_gpu"
EC2_NAMESPACE = "AWS/EC2"


_STOPPED_STATES = frozenset({"stopped", "stopping"})


def is_gpu_type(instance_type: str) -> bool:
    return GPU_FAMILY.match(instance_type) is not None


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


def _tags(raw: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or ()}


# --- scan ------------------------------------------------------------------------------------


def stop_refusal(instance: InstanceTypeDef) -> str | None:
    """Why janitor must never stop this instance, or None."""
    if instance.get("InstanceLifecycle") == "spot":
        return "spot instance (a stop may lose it): never stopped by janitor"
    if instance.get("RootDeviceType") == "instance-store":
        return "instance-store root (a stop loses its data): never stopped by janitor"
    return None


class Ec2GpuScanner:
    def __init__(self, ec2: EC2Client, *, account_id: str, region: str) -> None:
        self._ec2 = ec2
        self._account_id = account_id
        self._region = region

    def scan(self) -> Iterator[Resource]:
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}],
            PaginationConfig={"PageSize": 1000},
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    if instance.get("State", {}).get("Name") != "running":
                        continue
                    if not is_gpu_type(instance.get("InstanceType", "")):
                        continue
                    yield self._resource(instance)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        # DescribeInstances already returned everything the pipeline needs.
        return list(resources)

    def _resource(self, instance: InstanceTypeDef) -> Resource:
        instance_id = instance["InstanceId"]
        tags = _tags(instance.get("Tags"))
        launched = utc(instance["LaunchTime"])
        return Resource(
            ref=ResourceRef(Cloud.AWS, KIND, self._account_id, self._region, instance_id),
            name=tags.get("Name") or instance_id,
            state=instance.get("State", {}).get("Name", "unknown"),
            created_at=launched,
            tags=tags,
            last_started_at=launched,
            instance_type=instance.get("InstanceType"),
            stop_refusal=stop_refusal(instance),
            details={
                "lifecycle": instance.get("InstanceLifecycle") or "on-demand",
                "root_device_type": instance.get("RootDeviceType", "ebs"),
                "availability_zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
            },
        )


# --- stop / restore --------------------------------------------------------------------------


class Ec2GpuStopper:
    def __init__(self, scope: AwsScope) -> None:
        self._scope = scope
        self._ec2: EC2Client = scope.client("ec2")

    def plan(self, resource: Resource) -> StopPlan:
        instance_id = resource.ref.id

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            instance = _describe_one(self._ec2, instance_id)
        except ClientError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if instance is None:
            return refuse(StopOutcome.NOT_FOUND, f"instance {instance_id} no longer exists")
        fresh = replace(
            resource,
            state=instance.get("State", {}).get("Name", "unknown"),
            tags=_tags(instance.get("Tags")),
        )
        state = fresh.state
        if state in _STOPPED_STATES:
            return refuse(StopOutcome.ALREADY_STOPPED, f"instance {instance_id} is {state}", fresh)
        if state == "terminated":
            return refuse(StopOutcome.NOT_FOUND, f"instance {instance_id} was terminated", fresh)
        if state != "running":
            return refuse(
                StopOutcome.REFUSED_STATE, f"instance {instance_id} is {state}, not running", fresh
            )
        if instance.get("InstanceLifecycle") == "spot":
            return refuse(
                StopOutcome.REFUSED_STATE,
                f"instance {instance_id} is a spot instance: stopping it may lose it for good "
                "(a one-time spot request is not restarted); stop or terminate it by hand",
                fresh,
            )
        root = instance.get("RootDeviceType", "ebs")
        if root != "ebs":
            return refuse(
                StopOutcome.REFUSED_STATE,
                f"instance {instance_id} has an {root} root volume: stopping it would lose its "
                "data; not stopped",
                fresh,
            )
        recipe = {
            "kind": KIND,
            "account": self._scope.account_id,
            "region": self._scope.region,
            "instance_id": instance_id,
            "instance_type": instance.get("InstanceType", resource.instance_type or ""),
            "name": resource.name,
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        instance_id = str(recipe["instance_id"])
        try:
            self._ec2.stop_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidInstanceID.NotFound":
                return StopResult(StopOutcome.NOT_FOUND, f"instance {instance_id} vanished")
            if code in {"IncorrectInstanceState", "UnsupportedOperation", "OperationNotPermitted"}:
                # e.g. stop protection (DisableApiStop) or a state change since DescribeInstances
                return StopResult(StopOutcome.REFUSED_STATE, one_line(exc))
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        return StopResult(
            StopOutcome.STOPPED,
            f"stopped {instance_id} ({recipe['instance_type']}); EBS volumes are kept and still "
            "billed",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        instance_id = str(recipe["instance_id"])
        region = str(recipe.get("region") or self._scope.region)
        ec2 = self._ec2 if region == self._scope.region else _client_in(self._scope, region)
        label = f"{instance_id} ({recipe.get('name') or instance_id}) in {region}"
        instance = _describe_one(ec2, instance_id)
        if instance is None:
            raise RestoreFailed(f"instance {label} no longer exists: nothing to restore")
        state = instance.get("State", {}).get("Name", "unknown")
        if state in {"running", "pending"}:
            return f"instance {label} is already {state}"
        if state in {"terminated", "shutting-down"}:
            raise RestoreFailed(f"instance {label} is {state}: it cannot be started again")
        if state == "stopping":
            raise RestoreFailed(
                f"instance {label} is still stopping: run restore again once it is stopped"
            )
        ec2.start_instances(InstanceIds=[instance_id])
        return f"started instance {label} (was {state})"


def _client_in(scope: AwsScope, region: str) -> EC2Client:
    client: EC2Client = scope.session.client("ec2", region_name=region, config=client_config())
    return client


def _describe_one(ec2: EC2Client, instance_id: str) -> InstanceTypeDef | None:
    """The instance, or None when EC2 does not know it (any more)."""
    try:
        answer = ec2.describe_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return None
        raise
    for reservation in answer.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            if instance.get("InstanceId") == instance_id:
                return instance
    return None


# --- usage -----------------------------------------------------------------------------------


def _streak_days(streak: Streak, since: datetime) -> tuple[datetime, ...]:
    """The idle days whose bucket overlaps the idle streak (all idle days if none does)."""
    return tuple(day for day in streak.idle_days if day + DAY > since) or streak.idle_days


def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def _by_day(*series: Iterable[tuple[datetime, float]], combine: str) -> dict[datetime, float]:
    """Merge daily series: `max` (GPUs of one instance) or `sum` (NetworkIn + NetworkOut)."""
    out: dict[datetime, float] = {}
    for points in series:
        for day, value in points:
            if day not in out:
                out[day] = value
            elif combine == "max":
                out[day] = max(out[day], value)
            else:
                out[day] += value
    return out


def _failed(results: Sequence[MetricResult]) -> MetricResult | None:
    return next((r for r in results if not r.ok), None)


def _failure_evidence(what: str, result: MetricResult) -> str:
    why = "was denied" if result.denied else "failed"
    return f"{what} query {why}: {result.error}"


class Ec2GpuProbe:
    def __init__(
        self, cloudwatch: CloudWatchClient, *, region: str, thresholds: Mapping[str, float]
    ) -> None:
        self._cloudwatch = cloudwatch
        self._region = region
        self._gpu_pct = float(thresholds["gpu_utilization_percent"])
        self._cpu_pct = float(thresholds["cpu_utilization_percent"])
        self._net_bytes = float(thresholds["network_mb_per_day"]) * 1e6

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        try:
            gpu_sets = list_dimension_sets(self._cloudwatch, GPU_NAMESPACE, GPU_METRIC)
        except MetricsUnavailable as exc:
            # Without the list we cannot tell GPU instances from CPU-fallback ones: judging
            # a busy GPU by its CPU could call it idle, so nobody is judged.
            evidence = f"cannot list {GPU_NAMESPACE} {GPU_METRIC} series in {self._region}: {exc}"
            return {r.ref.key: Verdict.unknown(r.ref, evidence) for r in resources}

        gpus: dict[str, list[Dimensions]] = {r.ref.id: [] for r in resources}
        for dims in gpu_sets:
            instance_id = dict(dims).get("InstanceId")
            if instance_id in gpus:
                gpus[instance_id].append(dims)
        unlisted = _unlisted_gpu_series(resources, gpus)

        start, end = daily_bounds(window)
        verdicts: dict[str, Verdict] = {}
        for resource, results in stream_metric_data(
            self._cloudwatch, self._groups(resources, gpus, unlisted), start, end
        ):
            instance_id = resource.ref.id
            if gpus[instance_id]:
                verdict = self._gpu_verdict(resource, results, window, now)
            else:
                *guessed, cpu, net_in, net_out = results
                found = [r for r in guessed if not r.ok or _in_window(r, start, end)]
                if found:  # the agent did report for this instance: judge it by its GPUs
                    verdict = self._gpu_verdict(resource, found, window, now, unlisted=True)
                else:
                    verdict = self._fallback_verdict(resource, cpu, net_in, net_out, window, now)
            verdicts[resource.ref.key] = verdict
        return {resource.ref.key: verdicts[resource.ref.key] for resource in resources}

    @staticmethod
    def _groups(
        resources: Sequence[Resource],
        gpus: Mapping[str, Sequence[Dimensions]],
        unlisted: Mapping[str, Sequence[Dimensions]],
    ) -> Iterator[tuple[Resource, list[MetricRequest]]]:
        """One group per instance (its GPUs, or its unlisted GPU series then its CPU +
        network), so each one's series share a GetMetricData call and are reduced to its
        verdict as soon as that call is answered."""
        seen: set[str] = set()
        for resource in resources:
            if resource.ref.key in seen:
                continue
            seen.add(resource.ref.key)
            instance_id = resource.ref.id
            if gpus[instance_id]:
                yield (
                    resource,
                    [
                        MetricRequest(
                            f"gpu|{instance_id}|{i}", GPU_NAMESPACE, GPU_METRIC, d, "Maximum"
                        )
                        for i, d in enumerate(gpus[instance_id])
                    ],
                )
                continue
            one: Dimensions = (("InstanceId", instance_id),)
            yield (
                resource,
                [
                    MetricRequest(
                        f"gpu?|{instance_id}|{i}", GPU_NAMESPACE, GPU_METRIC, d, "Maximum"
                    )
                    for i, d in enumerate(unlisted.get(instance_id, ()))
                ]
                + [
                    MetricRequest(
                        f"cpu|{instance_id}", EC2_NAMESPACE, "CPUUtilization", one, "Maximum"
                    ),
                    MetricRequest(f"in|{instance_id}", EC2_NAMESPACE, "NetworkIn", one, "Sum"),
                    MetricRequest(f"out|{instance_id}", EC2_NAMESPACE, "NetworkOut", one, "Sum"),
                ],
            )

    def _gpu_verdict(
        self,
        resource: Resource,
        series: Sequence[MetricResult],
        window: Window,
        now: datetime,
        *,
        unlisted: bool = False,
    ) -> Verdict:
        ref = resource.ref
        count = f"{len(series)} GPU{'s' if len(series) != 1 else ''}"
        source = f"{GPU_NAMESPACE} {GPU_METRIC}, Maximum per day, active above {self._gpu_pct:g}%"
        failed = _failed(series)
        if failed is not None:
            return Verdict.unknown(ref, _failure_evidence(f"{GPU_NAMESPACE} {GPU_METRIC}", failed))
        daily = _by_day(*(r.points for r in series), combine="max")
        if not daily:
            return Verdict.unknown(
                ref,
                f"no {GPU_METRIC} datapoints for its {count} since {_day(window.start)} "
                f"({GPU_NAMESPACE} series exist but are empty in the window)",
            )
        newest = max(daily)
        if is_stale(newest, now):
            why = (
                f"its {GPU_NAMESPACE} series are no longer listed (no datapoint in two weeks)"
                if unlisted
                else "the CloudWatch agent or the instance stopped reporting"
            )
            return Verdict.unknown(
                ref,
                f"the CloudWatch agent stopped reporting on {_day(newest)}: newest "
                f"{GPU_METRIC} datapoint more than {STALE_AFTER.days} days ago; {why}",
            )
        streak = daily_streak({day: value > self._gpu_pct for day, value in daily.items()})
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"GPU utilisation {_pct(daily[last])} on {_day(last)} "
                f"(max across {count}; {source})",
                last_activity=min(last + DAY, now),
            )
        since = min(idle_since(streak, resource, window, daily), now)
        peak = max(daily[day] for day in _streak_days(streak, since))
        evidence = f"max GPU utilisation {_pct(peak)} across {count} since {_day(since)} ({source})"
        if streak.last_active_day is not None:
            last_day = streak.last_active_day
            evidence += f"; last busy day {_day(last_day)} ({_pct(daily[last_day])})"
        return Verdict.idle(
            ref, since, evidence, confidence=Confidence.HIGH, last_activity=streak.last_activity
        )

    def _fallback_verdict(
        self,
        resource: Resource,
        cpu: MetricResult,
        net_in: MetricResult,
        net_out: MetricResult,
        window: Window,
        now: datetime,
    ) -> Verdict:
        ref = resource.ref
        why = (
            f"fallback: no {GPU_NAMESPACE} {GPU_METRIC} series for this instance (install the "
            "CloudWatch agent with the nvidia_gpu plugin for a high-confidence verdict)"
        )
        source = (
            f"{EC2_NAMESPACE} CPUUtilization Maximum and NetworkIn+NetworkOut Sum per day, "
            f"active above {self._cpu_pct:g}% CPU or {_mb(self._net_bytes)}/day"
        )
        for name, result in (
            ("CPUUtilization", cpu),
            ("NetworkIn", net_in),
            ("NetworkOut", net_out),
        ):
            if not result.ok:
                return Verdict.unknown(
                    ref, _failure_evidence(f"{EC2_NAMESPACE} {name}", result) + f"; {why}"
                )
        cpu_daily = _by_day(cpu.points, combine="max")
        net_daily = _by_day(net_in.points, net_out.points, combine="sum")
        days = set(cpu_daily) | set(net_daily)
        if not days:
            return Verdict.unknown(
                ref,
                f"no CPUUtilization or network datapoints since {_day(window.start)}; {why}",
            )
        newest = max(days)
        if is_stale(newest, now):
            return Verdict.unknown(
                ref,
                f"newest CPUUtilization/network datapoint is from {_day(newest)}, more than "
                f"{STALE_AFTER.days} days ago; {why}",
            )
        streak = daily_streak(
            {
                day: cpu_daily.get(day, 0.0) > self._cpu_pct
                or net_daily.get(day, 0.0) > self._net_bytes
                for day in days
            }
        )
        last = in_use_on(streak, now)
        if last is not None:
            return Verdict.active(
                ref,
                f"CPU {_pct(cpu_daily.get(last, 0.0))}, network "
                f"{_mb(net_daily.get(last, 0.0))} on {_day(last)} ({source}); {why}",
                last_activity=min(last + DAY, now),
                confidence=Confidence.LOW,
            )
        since = min(idle_since(streak, resource, window, days), now)
        idle_days = _streak_days(streak, since)
        peak_cpu = max((cpu_daily[d] for d in idle_days if d in cpu_daily), default=0.0)
        peak_net = max((net_daily[d] for d in idle_days if d in net_daily), default=0.0)
        return Verdict.idle(
            ref,
            since,
            f"max CPU {_pct(peak_cpu)}, max network {_mb(peak_net)}/day since {_day(since)} "
            f"({source}); {why}",
            confidence=Confidence.LOW,
            last_activity=streak.last_activity,
        )


def _in_window(result: MetricResult, start: datetime, end: datetime) -> bool:
    return any(start <= ts < end for ts, _ in result.points)


def _unlisted_gpu_series(
    resources: Sequence[Resource], listed: Mapping[str, Sequence[Dimensions]]
) -> dict[str, list[Dimensions]]:
    """For each instance with no listed GPU series, the series the agent would publish for it:
    the listed dimension sets of the other instances of its type, with its own InstanceId
    (same type, so the same GPUs: index, name, arch... match). Empty when none is listed."""
    by_type: dict[str, dict[frozenset[tuple[str, str]], Dimensions]] = {}
    for resource in resources:
        for dims in listed.get(resource.ref.id, ()):
            shape = tuple((n, "" if n == "InstanceId" else v) for n, v in dims)
            by_type.setdefault(resource.instance_type or "", {})[frozenset(shape)] = shape
    out: dict[str, list[Dimensions]] = {}
    for resource in resources:
        instance_id = resource.ref.id
        if listed.get(instance_id) or out.get(instance_id):
            continue
        shapes = by_type.get(resource.instance_type or "", {}).values()
        out[instance_id] = [
            tuple((n, instance_id if n == "InstanceId" else v) for n, v in shape)
            for shape in shapes
        ]
    return out


def build(scope: AwsScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=Ec2GpuScanner(
            scope.client("ec2"), account_id=scope.account_id, region=scope.region
        ),
        probe=Ec2GpuProbe(
            scope.client("cloudwatch"), region=scope.region, thresholds=rule.thresholds
        ),
        stopper=Ec2GpuStopper(scope),
    )
