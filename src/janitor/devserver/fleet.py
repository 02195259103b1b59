"""A realistic ML fleet for the demo and the end-to-end tests, seeded into the local emulator.

Every resource is created in the past (the emulator runs in-process under time travel) with
daily metrics or CloudTrail events that tell its story: busy, idle for N days, exempt, without
an owner, without any metrics at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from janitor.devserver.aws import AwsDevServer
from janitor.devserver.timetravel import at, put_daily_metric

ROLE_ARN = "arn:aws:iam::123456789012:role/sagemaker-demo"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3-gpu-py311"


@dataclass(frozen=True)
class Endpoint:
    name: str
    owner: str | None
    age_days: int
    idle_days: int | None  # None: busy every day; an int: no invocation for that many days
    variants: Sequence[tuple[str, str, int]] = (("AllTraffic", "ml.g4dn.xlarge", 1),)
    extra_tags: dict[str, str] = field(default_factory=dict)
    metrics: bool = True  # False: the endpoint publishes nothing (an unknown verdict)


@dataclass(frozen=True)
class Notebook:
    name: str
    owner: str | None
    age_days: int
    opened_days_ago: int | None  # None: never opened since creation
    instance_type: str = "ml.t3.xlarge"
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GpuInstance:
    name: str
    owner: str | None
    instance_type: str
    launched_days_ago: int
    idle_days: int | None
    gpus: int = 1  # 0: no CloudWatch agent, only CPU/network metrics
    spot: bool = False
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fleet:
    region: str
    endpoints: Sequence[Endpoint]
    notebooks: Sequence[Notebook]
    gpu_instances: Sequence[GpuInstance]


def demo_fleet(region: str = "us-east-1") -> Fleet:
    """The fleet `janitor demo` shows: a team's month of ML leftovers."""
    return Fleet(
        region=region,
        endpoints=(
            Endpoint(
                "fraud-scorer-prod",
                "alice@example.com",
                200,
                None,
                (("AllTraffic", "ml.g4dn.2xlarge", 2),),
            ),
            Endpoint(
                "llm-summarizer-canary",
                "bob@example.com",
                120,
                75,
                (("primary", "ml.g4dn.12xlarge", 1), ("shadow", "ml.g4dn.12xlarge", 1)),
            ),
            Endpoint(
                "churn-model-v3", "alice@example.com", 90, 52, (("AllTraffic", "ml.m5.xlarge", 1),)
            ),
            Endpoint(
                "recsys-ab-test", "carol@example.com", 80, 40, (("AllTraffic", "ml.p3.2xlarge", 1),)
            ),
            Endpoint(
                "bert-embeddings-poc",
                "dave@example.com",
                100,
                64,
                extra_tags={"janitor-exempt": "2027-03-31"},
            ),
            Endpoint("legacy-ranker", None, 300, None, metrics=False),
        ),
        notebooks=(
            Notebook("alice-exploration", "alice@example.com", 60, 1),
            Notebook("bob-finetune-llama", "bob@example.com", 90, 54, "ml.p3.2xlarge"),
            Notebook("team-shared-eda", "carol@example.com", 58, None, "ml.t3.2xlarge"),
        ),
        gpu_instances=(
            GpuInstance("train-box-p3", "bob@example.com", "p3.8xlarge", 70, 61, gpus=4),
            GpuInstance("inference-g5", "carol@example.com", "g5.2xlarge", 30, None, gpus=1),
            GpuInstance("dev-g4dn", "dave@example.com", "g4dn.xlarge", 45, 44, gpus=0),
            GpuInstance("spot-trainer", "alice@example.com", "p3.2xlarge", 90, 80, spot=True),
            GpuInstance("untagged-gpu", None, "g4dn.xlarge", 40, 33),
        ),
    )


def _tags(owner: str | None, extra: dict[str, str]) -> list[dict[str, str]]:
    tags = {"team": "ml-platform", **extra}
    if owner:
        tags["owner"] = owner
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _daily(
    now: datetime, start: datetime, idle_days: int | None, busy: float, idle: float = 0.0
) -> list[tuple[datetime, float]]:
    """One value a day from `start` to today: `busy` until the idle streak, then `idle`."""
    points = []
    day = start.replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
    last_busy = None if idle_days is None else now - timedelta(days=idle_days)
    while day <= now:
        quiet = last_busy is not None and day > last_busy
        points.append((day, idle if quiet else busy))
        day += timedelta(days=1)
    return points


def _days_after(since: datetime, until: datetime) -> list[datetime]:
    """Noon of each day after `since`'s last published noon, up to `until`."""
    day = since.replace(hour=12, minute=0, second=0, microsecond=0)
    if day > since:
        day -= timedelta(days=1)
    out = []
    day += timedelta(days=1)
    while day <= until:
        out.append(day)
        day += timedelta(days=1)
    return out


def advance_fleet(server: AwsDevServer, fleet: Fleet, seeded_at: datetime, until: datetime) -> int:
    """The story goes on: publish the daily metrics of the days from `seeded_at` to `until`.

    Busy resources stay busy, idle ones stay idle (CloudWatch keeps receiving their zeros),
    as if the fleet had lived on since it was seeded at `seeded_at`. Call it with the process
    clock at `until` or later (timestamps in the future are not what CloudWatch accepts).
    Returns the number of datapoints published.
    """
    days = _days_after(seeded_at, until)
    if not days:
        return 0
    env = server.env(fleet.region)
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=fleet.region,
    )
    make: Any = session.client
    cloudwatch = make("cloudwatch", endpoint_url=server.url)
    ec2 = make("ec2", endpoint_url=server.url)
    published = 0

    def put(namespace: str, metric: str, dims: dict[str, str], value: float) -> None:
        nonlocal published
        put_daily_metric(cloudwatch, namespace, metric, dims, [(d, value) for d in days])
        published += len(days)

    for ep in fleet.endpoints:
        if ep.metrics:
            for variant, _, _ in ep.variants:
                value = 1800.0 if ep.idle_days is None else 0.0
                dims = {"EndpointName": ep.name, "VariantName": variant}
                put("AWS/SageMaker", "Invocations", dims, value)
    ids = {
        tag["Value"]: instance["InstanceId"]
        for reservation in ec2.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
        for tag in instance.get("Tags", [])
        if tag["Key"] == "Name"
    }
    for gi in fleet.gpu_instances:
        instance_id = ids.get(gi.name)
        if instance_id is None:
            continue
        busy = gi.idle_days is None
        if gi.gpus:
            for index in range(gi.gpus):
                dims = {
                    "InstanceId": instance_id,
                    "index": str(index),
                    "name": "Tesla V100-SXM2-16GB",
                }
                put("CWAgent", "nvidia_smi_utilization_gpu", dims, 87.0 if busy else 0.0)
        else:
            put("AWS/EC2", "CPUUtilization", {"InstanceId": instance_id}, 71.0 if busy else 1.5)
            for metric in ("NetworkIn", "NetworkOut"):
                put("AWS/EC2", metric, {"InstanceId": instance_id}, 9e9 if busy else 2e5)
    return published


def seed_fleet(server: AwsDevServer, fleet: Fleet, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    env = server.env(fleet.region)
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=fleet.region,
    )

    def client(name: str) -> Any:
        make: Any = session.client
        return make(name, endpoint_url=server.url)

    sagemaker = client("sagemaker")
    cloudwatch = client("cloudwatch")
    ec2 = client("ec2")

    for ep in fleet.endpoints:
        created = now - timedelta(days=ep.age_days)
        with at(created):
            variants = []
            for variant, instance_type, count in ep.variants:
                model = f"{ep.name}-{variant}-model"
                sagemaker.create_model(
                    ModelName=model, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": IMAGE}
                )
                variants.append(
                    {
                        "VariantName": variant,
                        "ModelName": model,
                        "InitialInstanceCount": count,
                        "InstanceType": instance_type,
                        "InitialVariantWeight": 1.0,
                    }
                )
            sagemaker.create_endpoint_config(
                EndpointConfigName=f"{ep.name}-config", ProductionVariants=variants
            )
            sagemaker.create_endpoint(
                EndpointName=ep.name,
                EndpointConfigName=f"{ep.name}-config",
                Tags=_tags(ep.owner, ep.extra_tags),
            )
        if not ep.metrics:
            continue
        for variant, _, _ in ep.variants:
            put_daily_metric(
                cloudwatch,
                "AWS/SageMaker",
                "Invocations",
                {"EndpointName": ep.name, "VariantName": variant},
                _daily(now, created, ep.idle_days, busy=1800.0),
            )

    for nb in fleet.notebooks:
        created = now - timedelta(days=nb.age_days)
        with at(created):
            sagemaker.create_notebook_instance(
                NotebookInstanceName=nb.name,
                InstanceType=nb.instance_type,
                RoleArn=ROLE_ARN,
                Tags=_tags(nb.owner, nb.extra_tags),
            )
        if nb.opened_days_ago is not None:
            for extra in (7, 3, 0):  # a few opens, the newest `opened_days_ago` days ago
                when = now - timedelta(days=nb.opened_days_ago + extra, hours=2)
                if when > created:
                    server.add_cloudtrail_event(
                        region=fleet.region,
                        event_name="CreatePresignedNotebookInstanceUrl",
                        resource_name=nb.name,
                        at=when,
                        username=nb.owner or "someone",
                    )

    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for gi in fleet.gpu_instances:
        launched = now - timedelta(days=gi.launched_days_ago)
        kwargs: dict[str, Any] = {}
        if gi.spot:
            kwargs["InstanceMarketOptions"] = {"MarketType": "spot"}
        with at(launched):
            reservation = ec2.run_instances(
                ImageId=image_id,
                InstanceType=gi.instance_type,
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": "Name", "Value": gi.name},
                            *_tags(gi.owner, gi.extra_tags),
                        ],
                    }
                ],
                **kwargs,
            )
        instance_id = reservation["Instances"][0]["InstanceId"]
        if gi.gpus:
            for index in range(gi.gpus):
                put_daily_metric(
                    cloudwatch,
                    "CWAgent",
                    "nvidia_smi_utilization_gpu",
                    {
                        "InstanceId": instance_id,
                        "index": str(index),
                        "name": "Tesla V100-SXM2-16GB",
                    },
                    _daily(now, launched, gi.idle_days, busy=87.0, idle=0.0),
                )
        else:
            put_daily_metric(
                cloudwatch,
                "AWS/EC2",
                "CPUUtilization",
                {"InstanceId": instance_id},
                _daily(now, launched, gi.idle_days, busy=71.0, idle=1.5),
            )
            for metric in ("NetworkIn", "NetworkOut"):
                put_daily_metric(
                    cloudwatch,
                    "AWS/EC2",
                    metric,
                    {"InstanceId": instance_id},
                    _daily(now, launched, gi.idle_days, busy=9e9, idle=2e5),
                )
