"""aws.sagemaker-endpoint against moto in server mode, through the real SDK."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from botocore.exceptions import ClientError

from janitor.clouds import registry
from janitor.clouds.aws import sagemaker_endpoint
from janitor.clouds.aws.sagemaker_endpoint import KIND
from janitor.clouds.aws.session import AwsScope
from janitor.clouds.base import KindHandlers, RestoreFailed, stop_now
from janitor.devserver.aws import ACCOUNT_ID, AwsDevServer
from janitor.devserver.timetravel import at, put_daily_metric
from janitor.model import Cloud, Confidence, Resource, ResourceRef, Status, StopOutcome, Window
from janitor.policy import Rule

pytestmark = pytest.mark.integration

ScopeFactory = Callable[..., AwsScope]

NOW = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
TODAY = NOW.replace(hour=0)
CREATED = NOW - timedelta(days=90)
WINDOW = Window.ending(NOW, timedelta(days=30))
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker"


def rule(invocations_per_day: float = 0.0) -> Rule:
    return Rule(
        name="endpoints",
        kind=KIND,
        cloud=Cloud.AWS,
        action="delete",
        notify_after=timedelta(days=30),
        stop_after=timedelta(days=60),
        warning=timedelta(days=7),
        lookback=timedelta(days=30),
        thresholds={"invocations_per_day": invocations_per_day},
        regions=None,
        owner_tags=("owner",),
        exempt_tag="janitor-exempt",
    )


def handlers(scope: ScopeFactory, threshold: float = 0.0) -> KindHandlers:
    return registry.get(KIND).build(scope(), rule(threshold))


def make_endpoint(
    sagemaker: Any,
    name: str,
    *,
    variants: Sequence[tuple[str, str, int]] = (("AllTraffic", "ml.g4dn.xlarge", 1),),
    tags: dict[str, str] | None = None,
    config_tags: dict[str, str] | None = None,
    created: datetime = CREATED,
    extra_config: dict[str, Any] | None = None,
) -> str:
    """Model + endpoint config + endpoint, created at `created`; returns the endpoint ARN."""
    sagemaker.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": f"{name}-model",
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
                "InitialVariantWeight": 1.0,
            }
            for variant, instance_type, count in variants
        ],
        Tags=[{"Key": k, "Value": v} for k, v in (config_tags or {}).items()],
        **(extra_config or {}),
    )
    with at(created):
        response = sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName=f"{name}-config",
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
    return str(response["EndpointArn"])


def invocations(
    cloudwatch: Any,
    endpoint: str,
    by_days_ago: dict[int, float],
    *,
    variant: str = "AllTraffic",
    extra: dict[str, str] | None = None,
) -> None:
    """Daily Invocations sums, keyed by days before NOW, published at noon of that day."""
    dims = {"EndpointName": endpoint, "VariantName": variant, **(extra or {})}
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        "Invocations",
        dims,
        [(NOW - timedelta(days=days), value) for days, value in sorted(by_days_ago.items())],
    )


def heartbeat(
    cloudwatch: Any, endpoint: str, days_ago: Sequence[int], *, variant: str = "AllTraffic"
) -> None:
    """CPUUtilization of the endpoint's instances (the heartbeat) on each of `days_ago`, at
    noon; a few samples a day, as instance metrics arrive every minute."""
    dims = {"EndpointName": endpoint, "VariantName": variant}
    put_daily_metric(
        cloudwatch,
        "/aws/sagemaker/Endpoints",
        "CPUUtilization",
        dims,
        [
            (NOW - timedelta(days=days, minutes=minute), 3.0)
            for days in sorted(days_ago)
            for minute in (0, 1, 2)
        ],
    )


def zeros(days: int, start: int = 0) -> dict[int, float]:
    return {d: 0.0 for d in range(start, days)}


ALL_TRAFFIC = ({"name": "AllTraffic", "instance_type": "ml.g4dn.xlarge", "count": 1},)


def resource(
    name: str, created: datetime = CREATED, *, described: bool = True, **details: Any
) -> Resource:
    """An endpoint record; `described` (the default) as `describe` leaves it: one real-time
    variant AllTraffic unless `details` say otherwise. Undescribed, as `scan` yields it."""
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:endpoint/{name}"
    if described:
        details = {"variants": ALL_TRAFFIC, "endpoint_type": "real-time", **details}
    return Resource(
        ref=ResourceRef(Cloud.AWS, KIND, ACCOUNT_ID, "us-east-1", arn),
        name=name,
        state="InService",
        created_at=created,
        details=details,
    )


def named(*variants: str) -> tuple[dict[str, Any], ...]:
    """`details["variants"]` for variants of these names."""
    return tuple({"name": v, "instance_type": "ml.m5.large", "count": 1} for v in variants)


@pytest.fixture(autouse=True)
def _clock_at_now() -> Iterator[None]:
    """The process clock at NOW (ticking: calls may retry), so the emulator's ListMetrics
    window (series with a datapoint in the past two weeks) is the one the tests read."""
    with time_machine.travel(NOW, tick=True):
        yield


# -- scan and describe -----------------------------------------------------------------------


def test_scan_lists_endpoints_with_tags_fetched_in_bulk(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    sagemaker = s.client("sagemaker")
    arn_a = make_endpoint(sagemaker, "ep-a", tags={"owner": "ann@example.com", "team": "nlp"})
    make_endpoint(sagemaker, "ep-b", created=NOW - timedelta(days=3))
    make_endpoint(sagemaker, "ep-c", tags={"janitor-exempt": "true"})
    aws_env.reset_calls()

    found = {r.name: r for r in handlers(scope).scanner.scan()}

    assert sorted(found) == ["ep-a", "ep-b", "ep-c"]
    a = found["ep-a"]
    assert a.ref == ResourceRef(Cloud.AWS, KIND, ACCOUNT_ID, "us-east-1", arn_a)
    assert a.state == "InService"
    assert a.created_at == CREATED
    assert a.created_at.tzinfo is not None
    assert a.tags == {"owner": "ann@example.com", "team": "nlp"}
    assert found["ep-b"].tags == {}
    assert found["ep-b"].created_at == NOW - timedelta(days=3)
    assert found["ep-c"].tags == {"janitor-exempt": "true"}
    calls = aws_env.calls
    assert calls["sagemaker.ListEndpoints"] == 1
    assert calls["tagging.GetResources"] == 1
    assert calls["sagemaker.DescribeEndpoint"] == calls["sagemaker.ListTags"] == 0


def test_scan_pages_through_endpoints_and_tags(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    sagemaker = scope().client("sagemaker")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "x"})
    sagemaker.create_endpoint_config(
        EndpointConfigName="shared",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    with at(CREATED):
        for i in range(130):
            sagemaker.create_endpoint(
                EndpointName=f"ep-{i:03d}",
                EndpointConfigName="shared",
                Tags=[{"Key": "owner", "Value": f"user{i}"}],
            )
    aws_env.reset_calls()

    found = list(handlers(scope).scanner.scan())

    assert len(found) == 130
    assert all(r.tags == {"owner": f"user{int(r.name[3:])}"} for r in found)
    assert aws_env.calls["sagemaker.ListEndpoints"] == 2  # 100 per page
    assert aws_env.calls["tagging.GetResources"] >= 2


def test_scan_of_an_empty_region_makes_one_call(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    assert list(handlers(scope).scanner.scan()) == []
    assert aws_env.calls == {"sagemaker.ListEndpoints": 1}


def test_scan_fails_loudly_when_tags_cannot_be_read(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    make_endpoint(scope().client("sagemaker"), "ep-a", tags={"janitor-exempt": "true"})
    aws_env.fail("tagging.GetResources", 1)
    with pytest.raises(ClientError, match="AccessDenied"):
        list(handlers(scope).scanner.scan())


def test_describe_fills_in_variants_instance_type_and_count(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(
        sagemaker,
        "ep-multi",
        variants=[("blue", "ml.g4dn.xlarge", 2), ("green", "ml.m5.large", 1)],
        tags={"owner": "ann"},
    )
    h = handlers(scope)
    [listed] = list(h.scanner.scan())
    gone = resource("ep-gone", described=False)
    aws_env.reset_calls()

    described, unchanged = h.scanner.describe([listed, gone])

    assert described.instance_type == "ml.g4dn.xlarge"
    assert described.instance_count == 3
    assert described.details == {
        "variants": (
            {"name": "blue", "instance_type": "ml.g4dn.xlarge", "count": 2},
            {"name": "green", "instance_type": "ml.m5.large", "count": 1},
        ),
        "endpoint_config_name": "ep-multi-config",
        "endpoint_type": "real-time",
    }
    assert (described.ref, described.tags, described.created_at) == (
        listed.ref,
        listed.tags,
        listed.created_at,
    )
    assert unchanged is gone
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 2
    assert aws_env.calls["sagemaker.DescribeEndpointConfig"] == 1


def make_shared_endpoints(sagemaker: Any, names: Sequence[str], config: str = "shared") -> None:
    """Endpoints `names`, all on one endpoint config (one variant of 2 x ml.g4dn.2xlarge)."""
    sagemaker.create_model(
        ModelName=f"{config}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{config}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{config}-model",
                "InstanceType": "ml.g4dn.2xlarge",
                "InitialInstanceCount": 2,
            }
        ],
    )
    with at(CREATED):
        for name in names:
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{config}-config")


def test_describe_asks_once_per_config_and_keeps_the_input_order(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    sagemaker = scope().client("sagemaker")
    make_shared_endpoints(sagemaker, [f"ep-{i:02d}" for i in range(20)])
    make_endpoint(sagemaker, "ep-own")
    h = handlers(scope)
    listed = sorted(h.scanner.scan(), key=lambda r: r.name, reverse=True)
    wanted = [*listed[:5], resource("ep-gone-1"), *listed[5:15], resource("ep-gone-2")]
    wanted += listed[15:]
    aws_env.reset_calls()

    described = h.scanner.describe(wanted)

    assert [r.name for r in described] == [r.name for r in wanted]
    assert [r for r in described if r.name.startswith("ep-gone")] == [wanted[5], wanted[16]]
    assert described[5] is wanted[5]
    assert described[16] is wanted[16]
    shared = [r for r in described if r.details.get("endpoint_config_name") == "shared-config"]
    assert len(shared) == 20
    assert {(r.instance_type, r.instance_count) for r in shared} == {("ml.g4dn.2xlarge", 2)}
    own = next(r for r in described if r.name == "ep-own")
    assert (own.instance_type, own.details["endpoint_config_name"]) == (
        "ml.g4dn.xlarge",
        "ep-own-config",
    )
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 23
    assert aws_env.calls["sagemaker.DescribeEndpointConfig"] == 2


def test_describe_runs_describe_endpoint_calls_at_once(scope: ScopeFactory) -> None:
    names = [f"ep-{i:02d}" for i in range(sagemaker_endpoint.DESCRIBE_WORKERS * 2)]
    sagemaker = scope().client("sagemaker")
    make_shared_endpoints(sagemaker, names)
    # Every DescribeEndpoint waits until DESCRIBE_WORKERS of them are under way together: one
    # at a time, the first would wait in vain and the barrier would break.
    barrier = threading.Barrier(sagemaker_endpoint.DESCRIBE_WORKERS, timeout=10)

    class Gated:
        def __getattr__(self, name: str) -> Any:
            return getattr(sagemaker, name)

        def describe_endpoint(self, **kwargs: Any) -> Any:
            barrier.wait()
            return sagemaker.describe_endpoint(**kwargs)

    scanner = sagemaker_endpoint.EndpointScanner(
        Gated(),  # type: ignore[arg-type]
        scope().client("resourcegroupstaggingapi"),
        account_id=ACCOUNT_ID,
        region="us-east-1",
    )

    described = scanner.describe([resource(name) for name in names])

    assert [r.name for r in described] == names
    assert all(r.instance_count == 2 for r in described)


def test_describe_raises_what_is_not_a_vanished_endpoint(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    names = [f"ep-{i:02d}" for i in range(12)]
    make_shared_endpoints(scope().client("sagemaker"), names)
    eps = [resource(name) for name in names]
    scanner = handlers(scope).scanner

    aws_env.fail("sagemaker.DescribeEndpoint", 1)
    with pytest.raises(ClientError, match="AccessDenied"):
        scanner.describe(eps)

    aws_env.reset_calls()
    aws_env.fail("sagemaker.DescribeEndpointConfig", 1)
    with pytest.raises(ClientError, match="AccessDenied"):
        scanner.describe(eps)
    assert aws_env.calls["sagemaker.DescribeEndpointConfig"] == 1  # asked once, for everyone


# -- usage -----------------------------------------------------------------------------------


def usage(scope: ScopeFactory, resources: Sequence[Resource], threshold: float = 0.0) -> Any:
    return handlers(scope, threshold).probe.usage(resources, WINDOW, NOW)


def test_idle_endpoint_with_zero_invocations_every_day(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep-idle", zeros(30))
    ep = resource("ep-idle")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE
    # created long before the window; the first datapoint is on 09-01: never earlier than that
    assert verdict.idle_since == TODAY - timedelta(days=29)
    assert verdict.last_activity is None
    assert verdict.confidence.value == "high"
    assert verdict.evidence == (
        "0 invocations across 1 variant since 2026-09-01 (Sum per day, AWS/SageMaker Invocations)"
    )


def test_idle_since_the_end_of_the_last_active_day(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep", {**zeros(30), 10: 42.0})
    ep = resource("ep")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE
    last_day_end = TODAY - timedelta(days=9)
    assert verdict.idle_since == last_day_end
    assert verdict.last_activity == last_day_end
    assert "0 invocations across 1 variant since 2026-09-21" in verdict.evidence


def test_idle_streak_starts_no_earlier_than_creation(scope: ScopeFactory) -> None:
    created = NOW - timedelta(days=5, hours=3)
    invocations(scope().client("cloudwatch"), "ep-new", zeros(6))
    ep = resource("ep-new", created=created)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE
    assert verdict.idle_since == created


def test_active_when_the_newest_day_has_invocations(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep-busy", {**zeros(30), 0: 3.0, 1: 0.0})
    ep = resource("ep-busy")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.ACTIVE
    assert verdict.last_activity == NOW
    assert verdict.evidence.startswith("3 invocations on 2026-09-30 across 1 variant")


def test_threshold_counts_light_traffic_as_idle(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep", {d: 2.0 for d in range(30)})
    ep = resource("ep")

    assert usage(scope, [ep], threshold=0.0)[ep.ref.key].status is Status.ACTIVE
    verdict = usage(scope, [ep], threshold=5.0)[ep.ref.key]
    assert verdict.status is Status.IDLE
    assert "up to 5 a day counts as idle" in verdict.evidence


def test_unknown_when_no_metric_is_listed(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "someone-else", zeros(3))
    ep = resource("ep-silent", described=False)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "no AWS/SageMaker Invocations metric" in verdict.evidence


def test_unknown_when_no_datapoint_falls_in_the_window(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep-old", {60: 0.0, 61: 5.0})
    ep = resource("ep-old")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert verdict.evidence.startswith("no Invocations datapoints")


def test_unknown_when_metrics_stopped_arriving(scope: ScopeFactory) -> None:
    invocations(scope().client("cloudwatch"), "ep-stale", zeros(30, start=5))
    ep = resource("ep-stale")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "stopped arriving" in verdict.evidence
    assert "2026-09-25" in verdict.evidence


def test_unknown_when_get_metric_data_is_denied(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    invocations(scope().client("cloudwatch"), "ep", zeros(30))
    ep = resource("ep")
    aws_env.fail("monitoring.GetMetricData", 1)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "AccessDenied" in verdict.evidence


# -- usage: the /aws/sagemaker/Endpoints heartbeat when Invocations are absent ----------------


def test_heartbeat_only_is_idle_with_medium_confidence_since_the_window_start(
    scope: ScopeFactory,
) -> None:
    heartbeat(scope().client("cloudwatch"), "ep", range(40))
    ep = resource("ep")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE
    assert verdict.confidence is Confidence.MEDIUM
    assert verdict.idle_since == WINDOW.start  # heartbeat before the window: the window start
    assert verdict.last_activity is None
    assert verdict.evidence == (
        "no invocations recorded since 2026-08-31 while its instances reported CPUUtilization "
        "every day (AWS/SageMaker Invocations absent; /aws/sagemaker/Endpoints heartbeat)"
    )


def test_heartbeat_only_is_idle_since_the_first_heartbeat_day(scope: ScopeFactory) -> None:
    cloudwatch = scope().client("cloudwatch")
    heartbeat(cloudwatch, "ep-late", range(20))  # metrics from 2026-09-11 on
    heartbeat(cloudwatch, "ep-gap", [*range(12), *range(15, 30)])  # none on 09-16..09-18
    created = NOW - timedelta(days=8, hours=3)
    heartbeat(cloudwatch, "ep-new", range(9))
    late, gap, new = resource("ep-late"), resource("ep-gap"), resource("ep-new", created=created)

    verdicts = usage(scope, [late, gap, new])

    assert {v.confidence for v in verdicts.values()} == {Confidence.MEDIUM}
    assert verdicts[late.ref.key].idle_since == TODAY - timedelta(days=19)
    assert "since 2026-09-11 while" in verdicts[late.ref.key].evidence
    # a day without heartbeat breaks the run: the streak starts after the gap
    assert verdicts[gap.ref.key].idle_since == TODAY - timedelta(days=11)
    # never before the endpoint's creation
    assert verdicts[new.ref.key].status is Status.IDLE
    assert verdicts[new.ref.key].idle_since == created


def test_stale_heartbeat_is_unknown(scope: ScopeFactory) -> None:
    heartbeat(scope().client("cloudwatch"), "ep", range(5, 30))
    ep = resource("ep")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert verdict.evidence.startswith("no Invocations datapoints")
    assert "heartbeat stopped arriving: newest datapoint on 2026-09-25" in verdict.evidence


def test_heartbeat_days_without_invocations_count_as_zero_days(scope: ScopeFactory) -> None:
    cloudwatch = scope().client("cloudwatch")
    # Invocations only on the days with traffic, as when SageMaker publishes no zeros
    invocations(cloudwatch, "ep", {25: 7.0, 10: 42.0})
    heartbeat(cloudwatch, "ep", range(30))
    invocations(cloudwatch, "ep-busy", {20: 3.0, 1: 5.0})
    heartbeat(cloudwatch, "ep-busy", range(30))
    invocations(cloudwatch, "ep-stale", {20: 3.0})  # no heartbeat: the newest day is stale
    ep, busy, stale = resource("ep"), resource("ep-busy"), resource("ep-stale")

    verdicts = usage(scope, [ep, busy, stale])

    verdict = verdicts[ep.ref.key]
    assert verdict.status is Status.IDLE
    assert verdict.confidence is Confidence.HIGH
    last_day_end = TODAY - timedelta(days=9)
    assert verdict.idle_since == verdict.last_activity == last_day_end
    assert verdict.evidence == (
        "0 invocations across 1 variant since 2026-09-21 (Sum per day, AWS/SageMaker Invocations)"
    )
    # a newest day of heartbeat only is a zero day, but today is not over: traffic yesterday
    # (within the last 24 hours) is activity (issue 6: it was idle since today 00:00)
    assert verdicts[busy.ref.key].status is Status.ACTIVE
    assert verdicts[busy.ref.key].evidence.startswith("5 invocations on 2026-09-29")
    assert verdicts[stale.ref.key].status is Status.UNKNOWN
    assert "stopped arriving" in verdicts[stale.ref.key].evidence


def test_an_endpoint_found_only_through_its_heartbeat(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep-a", zeros(30))
    heartbeat(cloudwatch, "ep-a", range(30))
    heartbeat(cloudwatch, "ep-b", range(30))
    heartbeat(cloudwatch, "ep-c", range(30), variant="blue")  # blue's Invocations are absent
    invocations(cloudwatch, "ep-c", {**zeros(30), 0: 4.0}, variant="green")
    variants = (
        {"name": "blue", "instance_type": "ml.m5.large", "count": 1},
        {"name": "green", "instance_type": "ml.m5.large", "count": 1},
    )
    a, b, c = resource("ep-a"), resource("ep-b"), resource("ep-c", variants=variants)
    aws_env.reset_calls()

    verdicts = usage(scope, [a, b, c])

    assert aws_env.calls["monitoring.ListMetrics"] == 2  # Invocations, then the heartbeat
    assert aws_env.calls["monitoring.GetMetricData"] == 1  # every series of the three at once
    assert verdicts[a.ref.key].status is Status.IDLE
    assert verdicts[a.ref.key].confidence is Confidence.HIGH
    assert verdicts[b.ref.key].status is Status.IDLE
    assert verdicts[b.ref.key].confidence is Confidence.MEDIUM
    # a described variant known only through its heartbeat is still one of the endpoint's
    assert verdicts[c.ref.key].status is Status.ACTIVE
    assert "across 2 variants" in verdicts[c.ref.key].evidence


def test_unknown_when_get_metric_data_is_denied_for_a_heartbeat_only_endpoint(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    heartbeat(scope().client("cloudwatch"), "ep", range(30))
    ep = resource("ep")
    aws_env.fail("monitoring.GetMetricData", 1)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    # the Invocations series is queried too, though not listed: its denial comes first
    assert "Invocations for variant AllTraffic unreadable" in verdict.evidence
    assert "AccessDenied" in verdict.evidence


def test_unknown_when_the_heartbeat_cannot_be_listed(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep", zeros(30))
    heartbeat(cloudwatch, "ep", range(30))
    ep = resource("ep")

    probe = sagemaker_endpoint.EndpointProbe(cloudwatch)
    aws_env.reset_calls()
    # The probe lists Invocations first, then the heartbeat: the second ListMetrics is denied.
    aws_env.fail("monitoring.ListMetrics", 1, after=1)

    verdict = probe.usage([ep], WINDOW, NOW)[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "cannot list /aws/sagemaker/Endpoints CPUUtilization metrics" in verdict.evidence
    assert "permission denied" in verdict.evidence
    assert aws_env.calls["monitoring.GetMetricData"] == 0


def test_unknown_for_every_endpoint_when_list_metrics_is_denied(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep-1", zeros(30))
    invocations(cloudwatch, "ep-2", zeros(30))
    eps = [resource("ep-1"), resource("ep-2")]
    aws_env.fail("monitoring.ListMetrics", 1)

    verdicts = usage(scope, eps)

    assert {v.status for v in verdicts.values()} == {Status.UNKNOWN}
    assert all("permission denied" in v.evidence for v in verdicts.values())
    assert aws_env.calls["monitoring.GetMetricData"] == 0


def test_a_series_with_an_extra_dimension_does_not_count(scope: ScopeFactory) -> None:
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep", zeros(30))
    invocations(cloudwatch, "ep", {d: 500.0 for d in range(30)}, extra={"Shadow": "yes"})
    invocations(cloudwatch, "ep-extra-only", {d: 500.0 for d in range(30)}, extra={"Shadow": "x"})
    ep, extra_only = resource("ep"), resource("ep-extra-only")

    verdicts = usage(scope, [ep, extra_only])

    assert verdicts[ep.ref.key].status is Status.IDLE
    assert verdicts[extra_only.ref.key].status is Status.UNKNOWN


def test_multi_variant_endpoint_is_idle_only_if_every_variant_is(scope: ScopeFactory) -> None:
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep-ab", zeros(30), variant="a")
    invocations(cloudwatch, "ep-ab", {**zeros(30), 0: 7.0}, variant="b")
    invocations(cloudwatch, "ep-cd", zeros(30), variant="c")
    invocations(cloudwatch, "ep-cd", zeros(30), variant="d")
    ab, cd = (
        resource("ep-ab", variants=named("a", "b")),
        resource("ep-cd", variants=named("c", "d")),
    )

    verdicts = usage(scope, [ab, cd])

    assert verdicts[ab.ref.key].status is Status.ACTIVE
    assert verdicts[cd.ref.key].status is Status.IDLE
    assert "across 2 variants" in verdicts[cd.ref.key].evidence


def test_a_described_variant_without_metrics_makes_the_endpoint_unknown(
    scope: ScopeFactory,
) -> None:
    invocations(scope().client("cloudwatch"), "ep", zeros(30), variant="a")
    variants = (
        {"name": "a", "instance_type": "ml.m5.large", "count": 1},
        {"name": "b", "instance_type": "ml.m5.large", "count": 1},
    )
    ep = resource("ep", variants=variants)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "variant(s) b" in verdict.evidence


def test_six_hundred_endpoints_take_two_get_metric_data_calls(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    cloudwatch = scope().client("cloudwatch")
    names = [f"ep-{i:03d}" for i in range(600)]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": NOW - timedelta(days=1),
                "Value": 1.0 if i % 100 == 0 else 0.0,
            }
            for i, name in enumerate(names)
        ],
    )
    eps = [resource(name) for name in names]
    aws_env.reset_calls()

    verdicts = handlers(scope).probe.usage(eps, Window.ending(NOW, timedelta(days=5)), NOW)

    assert aws_env.calls["monitoring.GetMetricData"] == 2
    # 500 metrics per page: two pages of Invocations, one (empty) page of the heartbeat
    assert aws_env.calls["monitoring.ListMetrics"] == 3
    statuses = [verdicts[ep.ref.key].status for ep in eps]
    assert statuses.count(Status.IDLE) == 594
    assert statuses.count(Status.UNKNOWN) == 0
    # activity on the newest day seen
    assert [eps[i].name for i, s in enumerate(statuses) if s is Status.ACTIVE] == [
        f"ep-{i:03d}" for i in range(0, 600, 100)
    ]


def test_an_endpoints_variants_are_never_split_across_get_metric_data_calls(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    cloudwatch = scope().client("cloudwatch")
    singles = [f"ep-{i:03d}" for i in range(499)]
    data: list[Any] = [
        {
            "MetricName": "Invocations",
            "Dimensions": [
                {"Name": "EndpointName", "Value": name},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            "Timestamp": NOW - timedelta(days=1),
            "Value": 0.0,
        }
        for name in singles
    ]
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=data[start : start + 1000])
    invocations(cloudwatch, "ep-two", {1: 0.0}, variant="a")
    invocations(cloudwatch, "ep-two", {1: 5.0}, variant="b")  # the 501st series
    eps = [resource(name) for name in singles] + [resource("ep-two", variants=named("a", "b"))]
    aws_env.reset_calls()

    verdicts = handlers(scope).probe.usage(eps, Window.ending(NOW, timedelta(days=5)), NOW)

    assert aws_env.calls["monitoring.GetMetricData"] == 2
    two = verdicts[eps[-1].ref.key]
    assert two.status is Status.ACTIVE
    assert "5 invocations on" in two.evidence
    assert "across 2 variants" in two.evidence
    assert list(verdicts) == [ep.ref.key for ep in eps]
    assert {verdicts[ep.ref.key].status for ep in eps[:-1]} == {Status.IDLE}


def test_throttled_get_metric_data_succeeds_after_retries(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    invocations(scope().client("cloudwatch"), "ep", zeros(30))
    ep = resource("ep")
    aws_env.throttle("monitoring.GetMetricData", 2)

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE
    assert aws_env.calls["monitoring.GetMetricData"] == 3


def test_no_resources_no_calls(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    assert usage(scope, []) == {}
    assert sum(aws_env.calls.values()) == 0


# -- stop and restore ------------------------------------------------------------------------


def _not_found(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError as exc:
        return "Could not find" in exc.response["Error"]["Message"]
    return False


def test_stop_records_the_recipe_then_deletes_the_endpoint(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    sagemaker = scope().client("sagemaker")
    arn = make_endpoint(
        sagemaker,
        "ep",
        variants=[("blue", "ml.g4dn.xlarge", 2), ("green", "ml.p3.2xlarge", 1)],
        tags={"owner": "ann", "cost-center": "42"},
        config_tags={"team": "nlp"},
        extra_config={"KmsKeyId": "alias/sagemaker"},
    )
    [found] = list(handlers(scope).scanner.scan())
    aws_env.reset_calls()

    result = stop_now(handlers(scope).stopper, found)

    assert result.outcome is StopOutcome.STOPPED
    assert "ep" in result.message
    recipe = result.restore
    assert recipe is not None
    assert json.loads(json.dumps(recipe)) == recipe  # JSON-serialisable as is
    assert recipe["kind"] == KIND
    assert (recipe["account"], recipe["region"]) == (ACCOUNT_ID, "us-east-1")
    assert recipe["endpoint_name"] == "ep"
    assert recipe["endpoint_arn"] == arn
    assert recipe["endpoint_config_name"] == "ep-config"
    assert recipe["endpoint_tags"] == [
        {"Key": "owner", "Value": "ann"},
        {"Key": "cost-center", "Value": "42"},
    ]
    assert recipe["config_tags"] == [{"Key": "team", "Value": "nlp"}]
    config = recipe["endpoint_config"]
    assert config["EndpointConfigName"] == "ep-config"
    assert config["KmsKeyId"] == "alias/sagemaker"
    assert "Tags" not in config
    assert "EndpointConfigArn" not in config
    assert "CreationTime" not in config
    assert [
        (v["VariantName"], v["InstanceType"], v["InitialInstanceCount"], v["ModelName"])
        for v in config["ProductionVariants"]
    ] == [("blue", "ml.g4dn.xlarge", 2, "ep-model"), ("green", "ml.p3.2xlarge", 1, "ep-model")]
    # the endpoint is gone, its config is kept
    assert _not_found(lambda: sagemaker.describe_endpoint(EndpointName="ep"))
    assert sagemaker.describe_endpoint_config(EndpointConfigName="ep-config")
    calls = aws_env.calls
    assert calls["sagemaker.DeleteEndpoint"] == 1
    assert calls["sagemaker.DeleteEndpointConfig"] == 0


def test_plan_reads_the_tags_as_they_are_now(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    sagemaker = scope().client("sagemaker")
    arn = make_endpoint(sagemaker, "ep", tags={"owner": "ann"})
    [found] = list(handlers(scope).scanner.scan())
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "janitor-exempt", "Value": "2099-01-01"}])

    plan = handlers(scope).stopper.plan(found)

    assert plan.refusal is None
    assert plan.resource.tags == {"owner": "ann", "janitor-exempt": "2099-01-01"}
    assert aws_env.calls["sagemaker.DeleteEndpoint"] == 0


def test_stop_of_a_missing_endpoint_is_not_found(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    result = stop_now(handlers(scope).stopper, resource("ep-gone"))
    assert result.outcome is StopOutcome.NOT_FOUND
    assert result.restore is None
    assert aws_env.calls["sagemaker.DeleteEndpoint"] == 0


def test_stop_refuses_when_the_config_is_gone(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep")
    sagemaker.delete_endpoint_config(EndpointConfigName="ep-config")

    result = stop_now(handlers(scope).stopper, resource("ep"))

    assert result.outcome is StopOutcome.REFUSED_STATE
    assert "cannot record how to restore" in result.message
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"
    assert aws_env.calls["sagemaker.DeleteEndpoint"] == 0


def test_stop_reports_a_denied_delete_as_failed(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep")
    aws_env.fail("sagemaker.DeleteEndpoint", 1)

    result = stop_now(handlers(scope).stopper, resource("ep"))

    assert result.outcome is StopOutcome.FAILED
    assert "AccessDenied" in result.message
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


def test_restore_recreates_the_endpoint_from_its_kept_config(scope: ScopeFactory) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep", tags={"owner": "ann"})
    h = handlers(scope)
    recipe = stop_now(h.stopper, resource("ep")).restore
    assert recipe is not None

    message = h.stopper.restore(json.loads(json.dumps(recipe)))

    assert message == "recreated endpoint ep from endpoint config ep-config"
    endpoint = sagemaker.describe_endpoint(EndpointName="ep")
    assert endpoint["EndpointConfigName"] == "ep-config"
    assert sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"] == [
        {"Key": "owner", "Value": "ann"}
    ]
    # restoring twice is harmless
    assert "already exists" in h.stopper.restore(recipe)


def test_restore_recreates_a_deleted_config_first(scope: ScopeFactory) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(
        sagemaker,
        "ep",
        variants=[("blue", "ml.g4dn.xlarge", 2), ("green", "ml.m5.large", 1)],
        tags={"owner": "ann"},
        config_tags={"team": "nlp"},
    )
    h = handlers(scope)
    recipe = stop_now(h.stopper, resource("ep")).restore
    assert recipe is not None
    sagemaker.delete_endpoint_config(EndpointConfigName="ep-config")

    message = h.stopper.restore(recipe)

    assert message == "recreated endpoint config ep-config and endpoint ep"
    config = sagemaker.describe_endpoint_config(EndpointConfigName="ep-config")
    assert [
        (v["VariantName"], v["InstanceType"], v["InitialInstanceCount"])
        for v in config["ProductionVariants"]
    ] == [
        ("blue", "ml.g4dn.xlarge", 2),
        ("green", "ml.m5.large", 1),
    ]
    assert sagemaker.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"] == [
        {"Key": "team", "Value": "nlp"}
    ]
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


def test_restore_refuses_a_recipe_from_another_region(scope: ScopeFactory) -> None:
    make_endpoint(scope().client("sagemaker"), "ep")
    recipe = dict(stop_now(handlers(scope).stopper, resource("ep")).restore or {})
    recipe["region"] = "eu-west-1"
    with pytest.raises(ValueError, match="eu-west-1"):
        handlers(scope).stopper.restore(recipe)


def test_the_whole_cycle_through_the_registry(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    s = scope()
    sagemaker, cloudwatch = s.client("sagemaker"), s.client("cloudwatch")
    make_endpoint(sagemaker, "ep-idle", tags={"owner": "ann"})
    make_endpoint(sagemaker, "ep-busy")
    invocations(cloudwatch, "ep-idle", zeros(30))
    invocations(cloudwatch, "ep-busy", {**zeros(30), 0: 12.0})
    h = sagemaker_endpoint.build(s, rule())

    found = list(h.scanner.scan())
    verdicts = h.probe.usage(found, WINDOW, NOW)
    idle = [r for r in found if verdicts[r.ref.key].status is Status.IDLE]
    assert [r.name for r in idle] == ["ep-idle"]
    [candidate] = h.scanner.describe(idle)
    assert (candidate.instance_type, candidate.instance_count) == ("ml.g4dn.xlarge", 1)
    result = stop_now(h.stopper, candidate)
    assert result.outcome is StopOutcome.STOPPED
    assert [r.name for r in h.scanner.scan()] == ["ep-busy"]
    assert result.restore is not None
    h.stopper.restore(result.restore)
    assert sorted(r.name for r in h.scanner.scan()) == ["ep-busy", "ep-idle"]


# -- the whole endpoint in the recipe: models, current counts, auto scaling -----------------


IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:2"
MODEL_DATA = "s3://models/ep/model.tar.gz"
SCALING_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def make_full_model(sagemaker: Any, name: str) -> None:
    """A model as a user deploys one: image, model data, environment, VPC, tags."""
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": MODEL_DATA,
            "Environment": {"SAGEMAKER_PROGRAM": "serve.py", "MAX_BATCH": "8"},
        },
        VpcConfig={"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-0a", "subnet-0b"]},
        Tags=[{"Key": "team", "Value": "nlp"}],
    )


def make_endpoint_on(sagemaker: Any, name: str, model: str, variants: Sequence[str]) -> None:
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": model,
                "InstanceType": "ml.g4dn.xlarge",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
            for variant in variants
        ],
    )
    with at(CREATED):
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def add_auto_scaling(autoscaling: Any, endpoint: str, variant: str) -> None:
    """A scalable target (1 to 4 instances), a target tracking policy, a step policy and a
    scheduled action on the variant."""
    resource_id = f"endpoint/{endpoint}/variant/{variant}"
    common = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id,
        "ScalableDimension": SCALING_DIMENSION,
    }
    autoscaling.register_scalable_target(**common, MinCapacity=1, MaxCapacity=4)
    autoscaling.put_scaling_policy(
        **common,
        PolicyName="invocations-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    )
    autoscaling.put_scaling_policy(
        **common,
        PolicyName="step-out",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            "Cooldown": 120,
        },
    )
    autoscaling.put_scheduled_action(
        **common,
        ScheduledActionName="nightly-low",
        Schedule="cron(0 22 * * ? *)",
        ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 2},
    )


def scaling_state(autoscaling: Any, endpoint: str, variant: str) -> dict[str, Any]:
    """What Application Auto Scaling holds for the variant, without ARNs and dates."""
    resource_id = f"endpoint/{endpoint}/variant/{variant}"
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource_id]
    )["ScalableTargets"]
    policies = autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource_id
    )["ScalingPolicies"]
    actions = autoscaling.describe_scheduled_actions(
        ServiceNamespace="sagemaker", ResourceId=resource_id
    )["ScheduledActions"]
    return {
        "targets": [(t["MinCapacity"], t["MaxCapacity"]) for t in targets],
        "policies": sorted(
            (
                p["PolicyName"],
                p["PolicyType"],
                p.get("TargetTrackingScalingPolicyConfiguration"),
                p.get("StepScalingPolicyConfiguration"),
            )
            for p in policies
            if p["ResourceId"] == resource_id
        ),
        "actions": [
            (a["ScheduledActionName"], a["Schedule"], a["ScalableTargetAction"]) for a in actions
        ],
    }


def current_variants(sagemaker: Any, endpoint: str) -> dict[str, tuple[int, float]]:
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    return {
        v["VariantName"]: (v["CurrentInstanceCount"], v["CurrentWeight"])
        for v in described["ProductionVariants"]
    }


def test_stop_records_the_model_and_restore_recreates_it_once_cleaned_up(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    sagemaker = scope().client("sagemaker")
    make_full_model(sagemaker, "ep-model")
    make_endpoint_on(sagemaker, "ep", "ep-model", ["AllTraffic"])
    h = handlers(scope)

    result = stop_now(h.stopper, resource("ep"))

    assert result.outcome is StopOutcome.STOPPED
    recipe = json.loads(json.dumps(result.restore))
    [model] = recipe["models"]
    assert model["ModelName"] == "ep-model"
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_PROGRAM": "serve.py",
        "MAX_BATCH": "8",
    }
    assert model["VpcConfig"]["Subnets"] == ["subnet-0a", "subnet-0b"]
    assert model["Tags"] == [{"Key": "team", "Value": "nlp"}]
    assert "ModelArn" not in model
    assert "CreationTime" not in model
    # Once the endpoint is gone its model and config look unused; a cleaner deletes them.
    sagemaker.delete_model(ModelName="ep-model")
    sagemaker.delete_endpoint_config(EndpointConfigName="ep-config")

    message = h.stopper.restore(recipe)

    assert message == "recreated model ep-model, endpoint config ep-config and endpoint ep"
    again = sagemaker.describe_model(ModelName="ep-model")
    assert again["ExecutionRoleArn"] == ROLE
    assert again["PrimaryContainer"]["Image"] == IMAGE
    assert again["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert again["PrimaryContainer"]["Environment"]["MAX_BATCH"] == "8"
    assert again["VpcConfig"]["SecurityGroupIds"] == ["sg-0123"]
    assert sagemaker.list_tags(ResourceArn=again["ModelArn"])["Tags"] == [
        {"Key": "team", "Value": "nlp"}
    ]
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


def test_restore_recreates_only_the_missing_model_of_a_kept_config(scope: ScopeFactory) -> None:
    sagemaker = scope().client("sagemaker")
    make_full_model(sagemaker, "ep-model")
    make_endpoint_on(sagemaker, "ep", "ep-model", ["AllTraffic"])
    h = handlers(scope)
    recipe = stop_now(h.stopper, resource("ep")).restore
    assert recipe is not None
    sagemaker.delete_model(ModelName="ep-model")

    message = h.stopper.restore(recipe)

    assert message == "recreated model ep-model and endpoint ep"
    assert sagemaker.describe_model(ModelName="ep-model")["PrimaryContainer"]["Image"] == IMAGE


def test_stop_refuses_when_the_model_is_gone(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep")
    sagemaker.delete_model(ModelName="ep-model")  # SageMaker allows it under a live endpoint

    result = stop_now(handlers(scope).stopper, resource("ep"))

    assert result.outcome is StopOutcome.REFUSED_STATE
    assert "model ep-model" in result.message
    assert "cannot record how to restore" in result.message
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"
    assert aws_env.calls["sagemaker.DeleteEndpoint"] == 0


def test_restore_puts_back_auto_scaling_and_the_current_counts_and_weights(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    sagemaker, autoscaling = s.client("sagemaker"), s.client("application-autoscaling")
    make_full_model(sagemaker, "ep-model")
    make_endpoint_on(sagemaker, "ep", "ep-model", ["blue", "green"])
    add_auto_scaling(autoscaling, "ep", "blue")
    # Scaled out since it was created: the config still says 1 instance and weight 1.
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="ep",
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredInstanceCount": 3, "DesiredWeight": 2.0}
        ],
    )
    before_counts = current_variants(sagemaker, "ep")
    assert before_counts == {"blue": (3, 2.0), "green": (1, 1.0)}
    before_scaling = scaling_state(autoscaling, "ep", "blue")
    assert before_scaling["targets"] == [(1, 4)]
    assert len(before_scaling["policies"]) == 2
    h = handlers(scope)

    result = stop_now(h.stopper, resource("ep"))

    assert result.outcome is StopOutcome.STOPPED, result.message
    assert result.message == "deleted endpoint ep; endpoint config ep-config kept", result.message
    recipe = json.loads(json.dumps(result.restore))
    assert recipe["variants"] == [
        {"VariantName": "blue", "CurrentInstanceCount": 3, "CurrentWeight": 2.0},
        {"VariantName": "green", "CurrentInstanceCount": 1, "CurrentWeight": 1.0},
    ]
    assert [t["ResourceId"] for t in recipe["scaling"]["targets"]] == ["endpoint/ep/variant/blue"]
    assert "RoleARN" not in recipe["scaling"]["targets"][0]
    assert sorted(p["PolicyName"] for p in recipe["scaling"]["policies"]) == [
        "invocations-per-instance",
        "step-out",
    ]
    assert [a["ScheduledActionName"] for a in recipe["scaling"]["scheduled_actions"]] == [
        "nightly-low"
    ]
    # The endpoint's scalable target does not outlive it.
    assert scaling_state(autoscaling, "ep", "blue") == {
        "targets": [],
        "policies": [],
        "actions": [],
    }
    assert aws_env.calls["application-autoscaling.DeregisterScalableTarget"] == 1

    message = h.stopper.restore(recipe)

    assert message == (
        "recreated endpoint ep from endpoint config ep-config; put back instance counts and "
        "weights of variant(s) blue (3 instances, weight 2); registered auto scaling of "
        "variant(s) blue with 2 scaling policies and 1 scheduled action"
    )
    assert current_variants(sagemaker, "ep") == before_counts
    assert scaling_state(autoscaling, "ep", "blue") == before_scaling


def test_a_delete_retried_after_it_succeeded_is_a_stop_with_its_recipe(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep", tags={"owner": "ann"})
    h = handlers(scope)
    # The delete goes through, but its answer is a 500: botocore retries, and the retry
    # finds the endpoint gone.
    aws_env.fail_after_applying("sagemaker.DeleteEndpoint")

    result = stop_now(h.stopper, resource("ep"))

    assert aws_env.calls["sagemaker.DeleteEndpoint"] == 2
    assert result.outcome is StopOutcome.STOPPED
    assert "retried delete found it already gone" in result.message
    assert result.restore is not None
    assert result.restore["endpoint_config_name"] == "ep-config"
    assert _not_found(lambda: sagemaker.describe_endpoint(EndpointName="ep"))

    assert h.stopper.restore(result.restore) == (
        "recreated endpoint ep from endpoint config ep-config"
    )
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


def _set_endpoint_status(name: str, status: str) -> None:
    """Move the dev server's endpoint to `status` (moto makes every endpoint InService at once;
    a real one is Creating for minutes)."""
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[ACCOUNT_ID]["us-east-1"].endpoints[name].endpoint_status = status


def test_restore_says_to_run_again_when_the_endpoint_is_not_in_service_in_time(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    sagemaker, autoscaling = s.client("sagemaker"), s.client("application-autoscaling")
    make_full_model(sagemaker, "ep-model")
    make_endpoint_on(sagemaker, "ep", "ep-model", ["blue"])
    add_auto_scaling(autoscaling, "ep", "blue")
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="ep",
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredInstanceCount": 2, "DesiredWeight": 1.0}
        ],
    )
    stopper = sagemaker_endpoint.EndpointStopper(
        sagemaker,
        autoscaling,
        account_id=ACCOUNT_ID,
        region="us-east-1",
        in_service_wait=timedelta(0),  # one look, no sleep
    )
    recipe = stop_now(stopper, resource("ep")).restore
    assert recipe is not None
    # A first restore recreated the endpoint; it is still being created.
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="ep-config")
    _set_endpoint_status("ep", "Creating")
    aws_env.reset_calls()

    with pytest.raises(RestoreFailed, match="is Creating, not InService.*run restore again"):
        stopper.restore(recipe)
    assert scaling_state(autoscaling, "ep", "blue")["targets"] == []
    assert aws_env.calls["sagemaker.UpdateEndpointWeightsAndCapacities"] == 0

    _set_endpoint_status("ep", "InService")
    message = stopper.restore(recipe)

    assert message.startswith("endpoint ep already exists; put back instance counts")
    assert current_variants(sagemaker, "ep") == {"blue": (2, 1.0)}
    assert scaling_state(autoscaling, "ep", "blue")["targets"] == [(1, 4)]


def test_restore_of_an_endpoint_that_failed_to_come_up_says_why(scope: ScopeFactory) -> None:
    s = scope()
    sagemaker, autoscaling = s.client("sagemaker"), s.client("application-autoscaling")
    make_endpoint(sagemaker, "ep")
    add_auto_scaling(autoscaling, "ep", "AllTraffic")
    h = handlers(scope)
    recipe = stop_now(h.stopper, resource("ep")).restore
    assert recipe is not None
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="ep-config")
    _set_endpoint_status("ep", "Failed")

    with pytest.raises(RestoreFailed, match="endpoint ep Failed"):
        h.stopper.restore(recipe)
    assert scaling_state(autoscaling, "ep", "AllTraffic")["targets"] == []


def test_restore_of_an_old_recipe_without_models_or_scaling(scope: ScopeFactory) -> None:
    """Recipes recorded before models and auto scaling were: restore as before."""
    sagemaker = scope().client("sagemaker")
    make_endpoint(sagemaker, "ep")
    h = handlers(scope)
    recipe = dict(stop_now(h.stopper, resource("ep")).restore or {})
    for key in ("models", "variants", "scaling"):
        del recipe[key]

    assert h.stopper.restore(recipe) == "recreated endpoint ep from endpoint config ep-config"


# -- evidence that cannot overstate idleness (issue 6, section 5) ----------------------------


def scanned(scope: ScopeFactory, name: str) -> Resource:
    """The endpoint `name` as `scan` yields it (not described)."""
    [found] = [r for r in handlers(scope).scanner.scan() if r.name == name]
    return found


def test_invoked_five_hours_ago_across_midnight_is_active_and_not_described(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    make_endpoint(s.client("sagemaker"), "ep-night")
    cloudwatch = s.client("cloudwatch")
    early = TODAY + timedelta(hours=3)  # 03:00 UTC; last invoked at 22:00 the day before
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        "Invocations",
        {"EndpointName": "ep-night", "VariantName": "AllTraffic"},
        [
            *((TODAY - timedelta(days=d, hours=12), 0.0) for d in range(1, 30)),
            (TODAY - timedelta(hours=2), 40.0),
        ],
    )
    put_daily_metric(  # the instances report all along, today included
        cloudwatch,
        "/aws/sagemaker/Endpoints",
        "CPUUtilization",
        {"EndpointName": "ep-night", "VariantName": "AllTraffic"},
        [(early - timedelta(hours=h), 2.0) for h in range(1, 24 * 30, 6)],
    )
    with time_machine.travel(early, tick=True):
        ep = scanned(scope, "ep-night")
        aws_env.reset_calls()
        verdicts = handlers(scope).probe.usage([ep], Window.ending(early, WINDOW_LENGTH), early)
    verdict = verdicts[ep.ref.key]

    assert verdict.status is Status.ACTIVE  # was: idle since 00:00 today
    assert verdict.evidence.startswith("40 invocations on 2026-09-29")
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 0  # active: never described


WINDOW_LENGTH = timedelta(days=74)


def test_traffic_stopped_twenty_days_ago_is_idle_since_then_though_not_listed(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    make_endpoint(s.client("sagemaker"), "ep-quiet")
    cloudwatch = s.client("cloudwatch")
    # traffic (published only on days with traffic) until 20 days ago; heartbeat every day
    invocations(cloudwatch, "ep-quiet", {d: 250.0 for d in range(20, 80)})
    heartbeat(cloudwatch, "ep-quiet", range(85))
    ep = scanned(scope, "ep-quiet")
    listed = s.client("cloudwatch").list_metrics(Namespace="AWS/SageMaker")["Metrics"]
    assert listed == []  # no Invocations datapoint in two weeks: ListMetrics hides the series
    window = Window.ending(NOW, WINDOW_LENGTH)

    verdict = handlers(scope).probe.usage([ep], window, NOW)[ep.ref.key]

    assert verdict.status is Status.IDLE
    assert verdict.idle_since == TODAY - timedelta(days=19)  # was: the window start, 74 days
    assert verdict.last_activity == TODAY - timedelta(days=19)
    assert verdict.confidence is Confidence.HIGH
    assert verdict.evidence == (
        "0 invocations across 1 variant since 2026-09-11 (Sum per day, AWS/SageMaker Invocations)"
    )


def test_a_variant_without_metrics_is_unknown_when_first_judged(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    make_endpoint(
        s.client("sagemaker"),
        "ep-ab",
        variants=(("a", "ml.m5.large", 1), ("b", "ml.m5.large", 1)),
    )
    cloudwatch = s.client("cloudwatch")
    invocations(cloudwatch, "ep-ab", zeros(30), variant="a")
    heartbeat(cloudwatch, "ep-ab", range(30), variant="a")  # b publishes nothing at all
    h = handlers(scope)
    [ep] = list(h.scanner.scan())
    aws_env.reset_calls()

    verdict = h.probe.usage([ep], WINDOW, NOW)[ep.ref.key]

    assert verdict.status is Status.UNKNOWN  # was: idle, high confidence, until described
    assert "variant(s) b publish no AWS/SageMaker Invocations datapoint" in verdict.evidence
    # the probe described it; the pipeline's describe of the same finding reuses that answer
    [described] = h.scanner.describe([ep])
    assert [v["name"] for v in described.details["variants"]] == ["a", "b"]
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 1
    [again] = h.scanner.describe([ep])  # a later describe asks again
    assert again.details == described.details
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 2


def test_an_idle_endpoint_is_described_once_and_judged_with_its_variants(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    s = scope()
    make_endpoint(
        s.client("sagemaker"),
        "ep-cd",
        variants=(("c", "ml.m5.large", 1), ("d", "ml.m5.large", 1)),
    )
    cloudwatch = s.client("cloudwatch")
    invocations(cloudwatch, "ep-cd", zeros(30), variant="c")
    invocations(cloudwatch, "ep-cd", zeros(30), variant="d")
    h = handlers(scope)
    [ep] = list(h.scanner.scan())
    aws_env.reset_calls()

    verdict = h.probe.usage([ep], WINDOW, NOW)[ep.ref.key]

    assert verdict.status is Status.IDLE
    assert "across 2 variants" in verdict.evidence
    # nothing new in the description: the first GetMetricData answer stands
    assert aws_env.calls["monitoring.GetMetricData"] == 1
    assert aws_env.calls["sagemaker.DescribeEndpoint"] == 1


ASYNC_CONFIG = {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://out/async/"}}}


def queue(cloudwatch: Any, endpoint: str, metric: str, by_days_ago: dict[int, float]) -> None:
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        metric,
        {"EndpointName": endpoint},
        [(NOW - timedelta(days=days), value) for days, value in sorted(by_days_ago.items())],
    )


def test_an_asynchronous_endpoint_is_never_idle_on_its_heartbeat_alone(
    scope: ScopeFactory,
) -> None:
    s = scope()
    cloudwatch = s.client("cloudwatch")
    for name in ("ep-async-silent", "ep-async-idle", "ep-async-busy"):
        make_endpoint(s.client("sagemaker"), name, extra_config=ASYNC_CONFIG)
        heartbeat(
            cloudwatch, name, range(30)
        )  # instances up; async endpoints publish no Invocations
    queue(cloudwatch, "ep-async-idle", "InvocationsProcesssed", zeros(30))
    queue(cloudwatch, "ep-async-idle", "ApproximateBacklogSize", zeros(30))
    queue(cloudwatch, "ep-async-busy", "ApproximateBacklogSize", {**zeros(30), 2: 3.0})
    h = handlers(scope)
    found = {r.name: r for r in h.scanner.scan()}

    verdicts = h.probe.usage(list(found.values()), WINDOW, NOW)

    silent = verdicts[found["ep-async-silent"].ref.key]
    assert silent.status is Status.UNKNOWN  # was: idle (heartbeat only), medium confidence
    assert silent.evidence.startswith("asynchronous endpoint with no InvocationsProcesssed")
    idle = verdicts[found["ep-async-idle"].ref.key]
    assert idle.status is Status.IDLE
    assert idle.confidence is Confidence.HIGH
    assert idle.idle_since == TODAY - timedelta(days=29)
    assert "asynchronous requests processed and an empty queue since 2026-09-01" in idle.evidence
    busy = verdicts[found["ep-async-busy"].ref.key]
    assert busy.status is Status.IDLE  # a queue 2 days ago, nothing since
    assert busy.idle_since == TODAY - timedelta(days=1)


def test_the_endpoint_type_comes_from_its_config() -> None:
    model = {"VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large"}
    components = {"VariantName": "v", "InstanceType": "ml.g5.2xlarge"}  # no ModelName
    assert sagemaker_endpoint.endpoint_type({"ProductionVariants": [model]}) == "real-time"
    assert (
        sagemaker_endpoint.endpoint_type({"ProductionVariants": [model], **ASYNC_CONFIG}) == "async"
    )
    assert (
        sagemaker_endpoint.endpoint_type({"ProductionVariants": [components]})
        == "inference-components"
    )
    assert sagemaker_endpoint.endpoint_type(None) == "unknown"


def test_an_endpoint_with_inference_components_is_unknown(scope: ScopeFactory) -> None:
    # moto cannot create inference components: the endpoint is given as `describe` leaves it
    cloudwatch = scope().client("cloudwatch")
    invocations(cloudwatch, "ep-ic", zeros(30))
    heartbeat(cloudwatch, "ep-ic", range(30))
    ep = resource("ep-ic", endpoint_type="inference-components")

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.UNKNOWN
    assert "hosts inference components" in verdict.evidence


def test_a_removed_variants_traffic_counts_but_its_silence_does_not(scope: ScopeFactory) -> None:
    cloudwatch = scope().client("cloudwatch")
    # "blue" served until 5 days ago, then the endpoint was updated to a config with "green" only
    invocations(cloudwatch, "ep-swap", {d: 10.0 for d in range(5, 20)}, variant="blue")
    invocations(cloudwatch, "ep-swap", zeros(5), variant="green")
    heartbeat(cloudwatch, "ep-swap", range(5), variant="green")
    ep = resource("ep-swap", variants=named("green"))

    verdict = usage(scope, [ep])[ep.ref.key]

    assert verdict.status is Status.IDLE  # blue's stale series is not a variant of it any more
    assert verdict.idle_since == TODAY - timedelta(days=4)  # blue's last traffic still counts
    assert "across 1 variant since 2026-09-26" in verdict.evidence
