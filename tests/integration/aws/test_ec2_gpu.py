"""aws.ec2-gpu against the local AWS: real boto3 over HTTP to moto in server mode."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import time_machine

from janitor.clouds.aws.ec2_gpu import GPU_METRIC, build
from janitor.clouds.base import KindHandlers, RestoreFailed, stop_now
from janitor.devserver.aws import ACCOUNT_ID, AwsDevServer
from janitor.devserver.timetravel import at, put_daily_metric
from janitor.model import (
    Cloud,
    Confidence,
    Resource,
    ResourceRef,
    Status,
    StopOutcome,
    Verdict,
    Window,
)
from janitor.policy import Rule, parse_policy

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef
    from mypy_boto3_ec2 import EC2Client

    from janitor.clouds.aws.session import AwsScope

pytestmark = pytest.mark.integration

ScopeFactory = Callable[..., "AwsScope"]
DAY = timedelta(days=1)
WINDOW = timedelta(days=30)
AMI = "ami-12c6146b"  # moto's example AMI (DescribeImages costs a second per test)


def _rule(**thresholds: float) -> Rule:
    """A rule resolved by the real policy loader (defaults from the kind's spec)."""
    body = "".join(f"\n      {k}: {v}" for k, v in thresholds.items()) or " {}"
    text = f"rules:\n  - name: gpus\n    kind: aws.ec2-gpu\n    thresholds:{body}\n"
    return parse_policy(text, "test.yaml", env={}).rules[0]


def _midnight(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _noon(now: datetime, days_ago: int) -> datetime:
    """Noon UTC `days_ago` days before today (days_ago >= 1: always in the past)."""
    return _midnight(now) - days_ago * DAY + timedelta(hours=12)


class Env:
    """One test's view of the fake account: clients, handlers and seeding helpers."""

    def __init__(self, scope: AwsScope, server: AwsDevServer, rule: Rule) -> None:
        self.scope = scope
        self.server = server
        self.ec2: EC2Client = scope.client("ec2")
        self.cloudwatch: CloudWatchClient = scope.client("cloudwatch")
        self.handlers: KindHandlers = build(scope, rule)

    def launch(
        self,
        instance_type: str,
        *,
        days_ago: float = 0,
        tags: Mapping[str, str] | None = None,
        count: int = 1,
        spot: bool = False,
    ) -> list[str]:
        kwargs: dict[str, Any] = {
            "ImageId": AMI,
            "MinCount": count,
            "MaxCount": count,
            "InstanceType": instance_type,
        }
        if tags:
            kwargs["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        if spot:
            kwargs["InstanceMarketOptions"] = {"MarketType": "spot"}
        if days_ago:
            with at(datetime.now(UTC) - timedelta(days=days_ago)):
                answer = self.ec2.run_instances(**kwargs)
        else:
            answer = self.ec2.run_instances(**kwargs)
        return [i["InstanceId"] for i in answer["Instances"]]

    def gpu_metrics(
        self, instance_id: str, per_gpu: Sequence[Mapping[int, float]], now: datetime
    ) -> None:
        """One CWAgent series per GPU, with the dimensions the agent really adds."""
        for index, by_day in enumerate(per_gpu):
            put_daily_metric(
                self.cloudwatch,
                "CWAgent",
                GPU_METRIC,
                {
                    "InstanceId": instance_id,
                    "index": str(index),
                    "name": "NVIDIA A10G",
                    "arch": "Ampere",
                },
                [(_noon(now, d), v) for d, v in by_day.items()],
            )

    def ec2_metric(
        self, instance_id: str, metric: str, by_day: Mapping[int, float], now: datetime
    ) -> None:
        put_daily_metric(
            self.cloudwatch,
            "AWS/EC2",
            metric,
            {"InstanceId": instance_id},
            [(_noon(now, d), v) for d, v in by_day.items()],
        )

    def scan(self) -> dict[str, Resource]:
        return {r.ref.id: r for r in self.handlers.scanner.scan()}

    def usage(self, now: datetime, window: timedelta = WINDOW) -> dict[str, Verdict]:
        resources = list(self.scan().values())
        verdicts = self.handlers.probe.usage(resources, Window.ending(now, window), now)
        assert set(verdicts) == {r.ref.key for r in resources}
        return {v.ref.id: v for v in verdicts.values()}

    def state(self, instance_id: str) -> str:
        answer = self.ec2.describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.fixture
def env(scope: ScopeFactory, aws_env: AwsDevServer) -> Env:
    return Env(scope(), aws_env, _rule())


def _days(first: int, last: int, value: float) -> dict[int, float]:
    """{days_ago: value} for every day from `first` to `last` days ago (inclusive)."""
    return {d: value for d in range(min(first, last), max(first, last) + 1)}


# --- scan ------------------------------------------------------------------------------------


def test_scan_finds_only_running_gpu_families_with_their_tags(env: Env) -> None:
    gpu_types = [
        "p3.2xlarge",
        "p5.48xlarge",
        "g5.xlarge",
        "g4dn.12xlarge",
        "gr6.4xlarge",
        "trn1.32xlarge",
        "inf2.xlarge",
        "dl1.24xlarge",
    ]
    wanted = {}
    for instance_type in gpu_types:
        (iid,) = env.launch(instance_type, tags={"Name": f"box-{instance_type}", "owner": "ana"})
        wanted[iid] = instance_type
    (untagged,) = env.launch("g6.xlarge")
    wanted[untagged] = "g6.xlarge"
    env.launch("t3.micro", tags={"Name": "cpu"})
    env.launch("m5.large")
    env.launch("c6g.large")  # a "g" suffix is not a GPU family
    (stopped,) = env.launch("p4d.24xlarge")
    env.ec2.stop_instances(InstanceIds=[stopped])
    (gone,) = env.launch("g5.2xlarge")
    env.ec2.terminate_instances(InstanceIds=[gone])
    env.server.reset_calls()

    found = env.scan()

    assert {iid: r.instance_type for iid, r in found.items()} == wanted
    p3 = next(r for r in found.values() if r.instance_type == "p3.2xlarge")
    assert p3.name == "box-p3.2xlarge"
    assert dict(p3.tags) == {"Name": "box-p3.2xlarge", "owner": "ana"}
    assert p3.state == "running"
    assert p3.ref.kind == "aws.ec2-gpu"
    assert p3.ref.scope == ACCOUNT_ID
    assert p3.ref.region == "us-east-1"
    assert p3.created_at.tzinfo is not None
    assert p3.last_started_at == p3.created_at
    assert p3.details["lifecycle"] == "on-demand"
    assert p3.details["root_device_type"] == "ebs"
    assert str(p3.details["availability_zone"]).startswith("us-east-1")
    assert found[untagged].name == untagged  # no Name tag: the id
    assert dict(found[untagged].tags) == {}
    # Tags came with DescribeInstances: one call, nothing per instance.
    assert env.server.calls["ec2.DescribeInstances"] == 1
    assert env.server.calls["ec2.DescribeTags"] == 0
    assert env.handlers.scanner.describe(list(found.values())) == list(found.values())


def test_scan_reports_launch_time_and_spot_lifecycle(env: Env) -> None:
    (old,) = env.launch("g5.xlarge", days_ago=40)
    (spot,) = env.launch("g5.xlarge", spot=True)
    now = datetime.now(UTC)

    found = env.scan()

    assert now - timedelta(days=41) < found[old].created_at < now - timedelta(days=39)
    assert found[old].last_started_at == found[old].created_at
    assert found[spot].details["lifecycle"] == "spot"


# --- usage: GPU metrics (high confidence) ------------------------------------------------------


def test_gpu_idle_since_the_day_after_its_last_busy_day(env: Env) -> None:
    (iid,) = env.launch("g5.12xlarge", days_ago=40)
    now = datetime.now(UTC)
    busy_then_idle = {**_days(25, 21, 85.0), **_days(20, 1, 0.4)}
    env.gpu_metrics(
        iid, [busy_then_idle, _days(25, 1, 0.0), _days(25, 1, 0.2), _days(25, 1, 0.1)], now
    )

    verdict = env.usage(now)[iid]

    assert verdict.status is Status.IDLE
    assert verdict.confidence is Confidence.HIGH
    assert verdict.idle_since == _midnight(now) - 20 * DAY  # end of the day 21 days ago
    assert verdict.last_activity == verdict.idle_since
    assert "max GPU utilisation 0.4% across 4 GPUs since" in verdict.evidence
    assert "CWAgent nvidia_smi_utilization_gpu, Maximum per day" in verdict.evidence
    assert "85.0%" in verdict.evidence  # the last busy day is named


def test_one_busy_gpu_of_eight_keeps_the_instance_active(env: Env) -> None:
    (iid,) = env.launch("p4d.24xlarge", days_ago=30)
    now = datetime.now(UTC)
    quiet = _days(20, 1, 0.0)
    env.gpu_metrics(iid, [quiet] * 7 + [{**quiet, 1: 93.0}], now)

    verdict = env.usage(now)[iid]

    assert verdict.status is Status.ACTIVE
    assert verdict.confidence is Confidence.HIGH
    assert "93.0%" in verdict.evidence
    assert "max across 8 GPUs" in verdict.evidence


def test_gpu_never_busy_is_idle_since_launch_or_window_start(env: Env) -> None:
    (recent,) = env.launch("g5.xlarge", days_ago=10)
    (old,) = env.launch("g5.xlarge", days_ago=60)
    now = datetime.now(UTC)
    env.gpu_metrics(recent, [_days(10, 1, 1.0)], now)
    env.gpu_metrics(old, [_days(30, 1, 1.0)], now)
    found = env.scan()

    verdicts = env.usage(now)

    assert verdicts[recent].status is Status.IDLE
    assert verdicts[recent].idle_since == found[recent].last_started_at
    assert verdicts[recent].last_activity is None
    assert verdicts[old].status is Status.IDLE
    assert verdicts[old].idle_since == now - WINDOW
    assert "across 1 GPU since" in verdicts[old].evidence


def test_gpu_threshold_comes_from_the_rule(scope: ScopeFactory, aws_env: AwsDevServer) -> None:
    env = Env(scope(), aws_env, _rule(gpu_utilization_percent=50))
    (iid,) = env.launch("g5.xlarge", days_ago=10)
    now = datetime.now(UTC)
    env.gpu_metrics(iid, [_days(9, 1, 30.0)], now)  # busy by the default 5%, idle by 50%

    verdict = env.usage(now)[iid]

    assert verdict.status is Status.IDLE
    assert "active above 50%" in verdict.evidence


def test_gpu_series_without_recent_data_is_unknown(env: Env) -> None:
    (stale,) = env.launch("g5.xlarge", days_ago=30)
    (empty,) = env.launch("g5.xlarge", days_ago=60)
    now = datetime.now(UTC)
    env.gpu_metrics(stale, [_days(20, 5, 0.0)], now)  # the agent stopped five days ago
    env.gpu_metrics(empty, [_days(50, 45, 0.0)], now)  # a series, but nothing in the window

    verdicts = env.usage(now)

    assert verdicts[stale].status is Status.UNKNOWN
    assert "more than 3 days ago" in verdicts[stale].evidence
    assert verdicts[stale].idle_since is None
    assert verdicts[empty].status is Status.UNKNOWN
    # not listed (quiet for two weeks) and nothing in the window: the fallback, with no data
    assert "no CPUUtilization or network datapoints" in verdicts[empty].evidence


# --- usage: CPU + network fallback (low confidence) ----------------------------------------


def test_cpu_and_network_fallback_gives_low_confidence(env: Env) -> None:
    idle, cpu_busy, net_busy, silent = env.launch("g4dn.xlarge", days_ago=20, count=4)
    now = datetime.now(UTC)
    for iid in (idle, cpu_busy, net_busy):
        env.ec2_metric(iid, "CPUUtilization", _days(15, 1, 2.0), now)
        env.ec2_metric(iid, "NetworkIn", _days(15, 1, 20e6), now)
        env.ec2_metric(iid, "NetworkOut", _days(15, 1, 5e6), now)
    env.ec2_metric(cpu_busy, "CPUUtilization", {1: 64.0}, now)
    env.ec2_metric(net_busy, "NetworkOut", {2: 90e6}, now)  # 20 + 90 MB > 100 MB on that day

    verdicts = env.usage(now)

    assert verdicts[idle].status is Status.IDLE
    assert verdicts[idle].confidence is Confidence.LOW
    # never busy; the datapoints start 15 days ago, launched 20 days ago: no earlier than them
    assert verdicts[idle].idle_since == _midnight(now) - 15 * DAY
    assert "max CPU 2.0%, max network 25.0 MB/day" in verdicts[idle].evidence
    assert "fallback: no CWAgent nvidia_smi_utilization_gpu series" in verdicts[idle].evidence
    assert verdicts[cpu_busy].status is Status.ACTIVE
    assert verdicts[cpu_busy].confidence is Confidence.LOW
    assert "CPU 64.0%" in verdicts[cpu_busy].evidence
    assert verdicts[net_busy].status is Status.IDLE  # busy two days ago, quiet yesterday
    assert verdicts[net_busy].idle_since == _midnight(now) - DAY
    assert verdicts[net_busy].confidence is Confidence.LOW
    assert verdicts[silent].status is Status.UNKNOWN
    assert "no CPUUtilization or network datapoints" in verdicts[silent].evidence


def test_gpu_metrics_win_over_the_cpu_fallback(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge", days_ago=10)
    now = datetime.now(UTC)
    env.gpu_metrics(iid, [_days(9, 1, 0.0)], now)
    env.ec2_metric(iid, "CPUUtilization", _days(9, 1, 80.0), now)  # a busy CPU, an idle GPU

    verdict = env.usage(now)[iid]

    assert verdict.status is Status.IDLE
    assert verdict.confidence is Confidence.HIGH


# --- usage: failures are unknown, never idle ------------------------------------------------


def test_denied_metric_data_makes_every_instance_unknown(env: Env) -> None:
    (gpu,) = env.launch("g5.xlarge", days_ago=10)
    (cpu,) = env.launch("g4dn.xlarge", days_ago=10)  # no g4dn reports GPUs: the CPU fallback
    now = datetime.now(UTC)
    env.gpu_metrics(gpu, [_days(9, 1, 0.0)], now)
    env.ec2_metric(cpu, "CPUUtilization", _days(9, 1, 0.0), now)
    env.server.fail("monitoring.GetMetricData", 1, "AccessDenied", status=403)

    verdicts = env.usage(now)

    assert {v.status for v in verdicts.values()} == {Status.UNKNOWN}
    assert "was denied" in verdicts[gpu].evidence
    assert "AccessDenied" in verdicts[gpu].evidence
    assert "AWS/EC2 CPUUtilization query was denied" in verdicts[cpu].evidence


def test_denied_list_metrics_makes_every_instance_unknown(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge", days_ago=10)
    now = datetime.now(UTC)
    env.ec2_metric(iid, "CPUUtilization", _days(9, 1, 0.0), now)
    env.server.fail("monitoring.ListMetrics", 1, "AccessDenied", status=403)

    verdict = env.usage(now)[iid]

    assert verdict.status is Status.UNKNOWN
    assert "cannot list CWAgent nvidia_smi_utilization_gpu series" in verdict.evidence
    assert env.server.calls["monitoring.GetMetricData"] == 0


def test_usage_of_nothing_calls_nothing(env: Env) -> None:
    now = datetime.now(UTC)
    assert env.handlers.probe.usage([], Window.ending(now, WINDOW), now) == {}
    assert sum(env.server.calls.values()) == 0


# --- batching -------------------------------------------------------------------------------


def test_300_instances_with_4_gpus_take_ceil_1200_over_500_metric_calls(env: Env) -> None:
    ids = env.launch("g5.12xlarge", days_ago=5, count=300)
    now = datetime.now(UTC)
    busy = set(ids[::3])
    data: list[MetricDatumTypeDef] = [
        {
            "MetricName": GPU_METRIC,
            "Dimensions": [
                {"Name": "InstanceId", "Value": iid},
                {"Name": "index", "Value": str(i)},
            ],
            "Timestamp": _noon(now, 1),
            "Value": 70.0 if iid in busy and i == 3 else 0.5,
        }
        for iid in ids
        for i in range(4)
    ]
    for start in range(0, len(data), 1000):  # PutMetricData takes 1000 datapoints per call
        env.cloudwatch.put_metric_data(Namespace="CWAgent", MetricData=data[start : start + 1000])
    resources = list(env.scan().values())
    env.server.reset_calls()

    verdicts = env.handlers.probe.usage(resources, Window.ending(now, WINDOW), now)

    assert env.server.calls["monitoring.GetMetricData"] == math.ceil(300 * 4 / 500)
    assert env.server.calls["monitoring.ListMetrics"] <= math.ceil(300 * 4 / 500)
    assert sum(env.server.calls.values()) == (
        env.server.calls["monitoring.GetMetricData"] + env.server.calls["monitoring.ListMetrics"]
    )
    by_id = {v.ref.id: v for v in verdicts.values()}
    assert len(by_id) == 300
    assert {iid for iid, v in by_id.items() if v.status is Status.ACTIVE} == busy
    assert {v.status for iid, v in by_id.items() if iid not in busy} == {Status.IDLE}
    assert all("across 4 GPUs" in v.evidence for v in by_id.values())


# --- stop and restore -----------------------------------------------------------------------


def test_plan_reads_the_tags_as_they_are_now(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge", tags={"Name": "trainer"})
    resource = env.scan()[iid]
    env.ec2.create_tags(Resources=[iid], Tags=[{"Key": "janitor-exempt", "Value": "true"}])

    plan = env.handlers.stopper.plan(resource)

    assert plan.refusal is None
    assert plan.resource.tags == {"Name": "trainer", "janitor-exempt": "true"}
    assert env.state(iid) == "running"  # planning changes nothing


def test_stop_then_restore_round_trip(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge", tags={"Name": "trainer"})
    resource = env.scan()[iid]

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.STOPPED
    assert result.restore == {
        "kind": "aws.ec2-gpu",
        "account": ACCOUNT_ID,
        "region": "us-east-1",
        "instance_id": iid,
        "instance_type": "g5.xlarge",
        "name": "trainer",
    }
    assert env.state(iid) in {"stopping", "stopped"}
    assert stop_now(env.handlers.stopper, resource).outcome is StopOutcome.ALREADY_STOPPED

    message = env.handlers.stopper.restore(result.restore)

    assert message.startswith(f"started instance {iid} (trainer)")
    assert env.state(iid) in {"pending", "running"}
    assert "already" in env.handlers.stopper.restore(result.restore)


def test_spot_instances_are_refused(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge", spot=True)
    resource = env.scan()[iid]

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.REFUSED_STATE
    assert "spot instance" in result.message
    assert result.restore is None
    assert env.state(iid) == "running"
    assert env.server.calls["ec2.StopInstances"] == 0


def test_instance_store_root_volumes_are_refused(env: Env) -> None:
    (iid,) = env.launch("g4dn.xlarge")
    resource = env.scan()[iid]
    _set_root_device_type(iid, "instance-store")

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.REFUSED_STATE
    assert "instance-store root volume" in result.message
    assert env.state(iid) == "running"
    assert env.server.calls["ec2.StopInstances"] == 0


def test_stop_of_a_vanished_or_terminated_instance_is_not_found(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge")
    resource = env.scan()[iid]
    env.ec2.terminate_instances(InstanceIds=[iid])
    vanished = Resource(
        ref=ResourceRef(Cloud.AWS, "aws.ec2-gpu", ACCOUNT_ID, "us-east-1", "i-0123456789abcdef0"),
        name="gone",
        state="running",
        created_at=resource.created_at,
    )

    assert stop_now(env.handlers.stopper, resource).outcome is StopOutcome.NOT_FOUND
    assert stop_now(env.handlers.stopper, vanished).outcome is StopOutcome.NOT_FOUND
    assert env.server.calls["ec2.StopInstances"] == 0
    with pytest.raises(RestoreFailed, match="no longer exists"):
        env.handlers.stopper.restore(
            {"kind": "aws.ec2-gpu", "region": "us-east-1", "instance_id": "i-0123456789abcdef0"}
        )


def test_denied_stop_is_a_failure_with_the_reason(env: Env) -> None:
    (iid,) = env.launch("g5.xlarge")
    resource = env.scan()[iid]
    env.server.fail("ec2.StopInstances", 1, "UnauthorizedOperation", status=403)

    result = stop_now(env.handlers.stopper, resource)

    assert result.outcome is StopOutcome.FAILED
    assert "UnauthorizedOperation" in result.message
    assert env.state(iid) == "running"


def _set_root_device_type(instance_id: str, root_device_type: str) -> None:
    """moto reports every root volume as EBS; set the emulator's own record, as AWS would."""
    from moto.ec2.models import ec2_backends

    instance = ec2_backends[ACCOUNT_ID]["us-east-1"].get_instance(instance_id)
    instance.root_device_type = root_device_type


# --- evidence that cannot overstate idleness (issue 6, section 5) ----------------------------


def test_an_agent_silent_for_twenty_days_is_unknown_not_a_cpu_fallback(env: Env) -> None:
    silent, peer = env.launch("g5.xlarge", days_ago=60, count=2)
    now = datetime.now(UTC)
    env.gpu_metrics(silent, [_days(40, 20, 90.0)], now)  # the agent stopped 20 days ago
    env.gpu_metrics(peer, [_days(40, 1, 80.0)], now)  # another g5.xlarge still reports
    env.ec2_metric(silent, "CPUUtilization", _days(40, 1, 1.0), now)  # a quiet CPU
    env.ec2_metric(silent, "NetworkIn", _days(40, 1, 1e3), now)
    env.ec2_metric(silent, "NetworkOut", _days(40, 1, 1e3), now)
    listed = env.cloudwatch.list_metrics(Namespace="CWAgent")["Metrics"]
    assert {d["Value"] for m in listed for d in m["Dimensions"] if d["Name"] == "InstanceId"} == {
        peer
    }  # ListMetrics no longer lists the silent agent's series

    verdicts = env.usage(now, window=timedelta(days=74))

    assert verdicts[silent].status is Status.UNKNOWN  # was: idle by CPU, low confidence
    day = (_midnight(now) - 20 * DAY).strftime("%Y-%m-%d")
    assert f"the CloudWatch agent stopped reporting on {day}" in verdicts[silent].evidence
    assert verdicts[peer].status is Status.ACTIVE


def test_a_gpu_busy_late_yesterday_is_active_though_today_is_quiet(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    now = datetime(2026, 9, 30, 3, 0, tzinfo=UTC)  # 03:00 UTC: today has barely begun
    with time_machine.travel(now, tick=True):
        env = Env(scope(), aws_env, _rule())
        (iid,) = env.launch("g5.xlarge", days_ago=20)
        dims = {"InstanceId": iid, "index": "0", "name": "NVIDIA A10G", "arch": "Ampere"}
        points = [(_noon(now, d), 0.0) for d in range(15, 1, -1)]
        points += [(now - timedelta(hours=5), 95.0), (now - timedelta(minutes=5), 0.0)]
        put_daily_metric(env.cloudwatch, "CWAgent", GPU_METRIC, dims, points)

        verdict = env.usage(now)[iid]

    assert verdict.status is Status.ACTIVE  # was: idle since 00:00 today
    assert "GPU utilisation 95.0% on 2026-09-29" in verdict.evidence
