"""The AWS emulator itself: call counting, injected faults, CloudTrail LookupEvents, seeding."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from janitor.clouds.aws.session import AwsScope
from janitor.devserver.aws import ACCOUNT_ID, AwsDevServer
from janitor.devserver.timetravel import at, put_daily_metric

pytestmark = pytest.mark.integration

NOW = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


ClientFactory = Callable[..., Any]


@pytest.fixture
def client(scope: Callable[..., AwsScope]) -> ClientFactory:
    """`client("sagemaker", region=..., config=...)`: a real boto3 client aimed at the server."""

    def make(service: str, region: str = "us-east-1", config: Config | None = None) -> Any:
        session = scope(region).session
        return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]

    return make


def test_env_points_boto3_at_the_server_only(aws_env: AwsDevServer, client: ClientFactory) -> None:
    env = aws_env.env("eu-west-1")
    assert env["AWS_ENDPOINT_URL"] == aws_env.url
    assert aws_env.url.startswith("http://127.0.0.1:")
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"
    assert not Path(env["AWS_CONFIG_FILE"]).exists()
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()
    assert "AWS_PROFILE" not in os.environ
    identity = client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT_ID


def test_calls_are_counted_per_service_and_operation(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    sagemaker = client("sagemaker")
    sagemaker.list_endpoints()
    sagemaker.list_endpoints()
    client("cloudwatch").list_metrics(Namespace="AWS/SageMaker")
    client("sts").get_caller_identity()  # query protocol: the Action form field
    client("ec2").describe_instances()  # ec2 protocol

    calls = aws_env.calls
    assert calls["sagemaker.ListEndpoints"] == 2
    assert calls["monitoring.ListMetrics"] == 1
    assert calls["sts.GetCallerIdentity"] == 1
    assert calls["ec2.DescribeInstances"] == 1

    aws_env.reset_calls()
    assert sum(aws_env.calls.values()) == 0


def test_throttled_json_call_succeeds_after_botocore_retries(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudwatch = client("cloudwatch", config=Config(retries={"mode": "standard"}))
    aws_env.throttle("monitoring.ListMetrics", 2)
    response = cloudwatch.list_metrics(Namespace="AWS/SageMaker")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws_env.calls["monitoring.ListMetrics"] == 3


GET_METRIC_DATA_ARGS = {
    "MetricDataQueries": [{"Id": "q", "Expression": "SUM(METRICS())", "Period": 60}],
    "StartTime": NOW - timedelta(hours=1),
    "EndTime": NOW,
}


@pytest.mark.parametrize(
    ("service", "operation", "method", "kwargs", "code"),
    [
        (
            "cloudwatch",
            "monitoring.GetMetricData",
            "get_metric_data",
            GET_METRIC_DATA_ARGS,
            "ThrottlingException",
        ),  # JSON 1.0
        ("sts", "sts.GetCallerIdentity", "get_caller_identity", {}, "Throttling"),  # query XML
        ("ec2", "ec2.DescribeInstances", "describe_instances", {}, "RequestLimitExceeded"),
    ],
)
def test_throttling_is_shaped_like_the_services_protocol(
    aws_env: AwsDevServer,
    service: str,
    operation: str,
    method: str,
    kwargs: dict[str, Any],
    code: str,
    client: ClientFactory,
) -> None:
    aws_env.throttle(operation, 1)
    call = getattr(client(service, config=NO_RETRY), method)
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.operation_name == operation.split(".")[1]
    # the fault was used up: the next request reaches moto
    assert call(**kwargs)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert aws_env.calls[operation] == 2


def test_fail_injects_access_denied_then_recovers(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    sagemaker = client("sagemaker")
    aws_env.fail("sagemaker.ListEndpoints", 1)
    with pytest.raises(ClientError) as caught:
        sagemaker.list_endpoints()
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "sagemaker:ListEndpoints" in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_fail_with_a_custom_code_and_status(aws_env: AwsDevServer, client: ClientFactory) -> None:
    aws_env.fail("tagging.GetResources", 1, code="InternalServiceException", status=500)
    tagging = client("resourcegroupstaggingapi", config=NO_RETRY)
    with pytest.raises(ClientError) as caught:
        tagging.get_resources()
    assert caught.value.response["Error"]["Code"] == "InternalServiceException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_reset_clears_moto_state_events_and_faults(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudwatch = client("cloudwatch")
    put_daily_metric(cloudwatch, "Test", "M", {"K": "v"}, [(NOW, 1.0)])
    aws_env.add_cloudtrail_event(
        region="us-east-1", event_name="StartNotebookInstance", resource_name="nb", at=NOW
    )
    aws_env.fail("monitoring.ListMetrics", 5)

    aws_env.reset()

    assert sum(aws_env.calls.values()) == 0
    assert cloudwatch.list_metrics(Namespace="Test")["Metrics"] == []  # no fault left either
    assert client("cloudtrail").lookup_events()["Events"] == []


def _seed_notebook_events(server: AwsDevServer) -> None:
    for day in range(5):
        server.add_cloudtrail_event(
            region="us-east-1",
            event_name="CreatePresignedNotebookInstanceUrl",
            resource_name="nb-a",
            at=NOW - timedelta(days=day),
            username=f"user{day}",
        )
    server.add_cloudtrail_event(
        region="us-east-1",
        event_name="StartNotebookInstance",
        resource_name="nb-a",
        at=NOW - timedelta(days=10),
    )
    server.add_cloudtrail_event(
        region="us-east-1",
        event_name="StartNotebookInstance",
        resource_name="nb-b",
        at=NOW - timedelta(days=1),
    )
    server.add_cloudtrail_event(
        region="eu-west-1",
        event_name="StartNotebookInstance",
        resource_name="nb-a",
        at=NOW,
    )


def test_lookup_events_has_the_real_response_shape(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    aws_env.add_cloudtrail_event(
        region="us-east-1",
        event_name="CreatePresignedNotebookInstanceUrl",
        resource_name="nb-a",
        at=NOW,
        username="ann",
    )
    [event] = client("cloudtrail").lookup_events()["Events"]
    assert event["EventName"] == "CreatePresignedNotebookInstanceUrl"
    assert event["EventTime"] == NOW
    assert event["Username"] == "ann"
    assert event["EventSource"] == "sagemaker.amazonaws.com"
    assert event["Resources"] == [
        {"ResourceType": "AWS::SageMaker::NotebookInstance", "ResourceName": "nb-a"}
    ]
    record = json.loads(event["CloudTrailEvent"])
    assert record["eventName"] == "CreatePresignedNotebookInstanceUrl"
    assert record["eventTime"] == "2026-09-30T12:00:00Z"
    assert record["awsRegion"] == "us-east-1"
    assert record["requestParameters"] == {"notebookInstanceName": "nb-a"}
    assert record["eventID"] == event["EventId"]
    assert record["userIdentity"]["userName"] == "ann"


def test_lookup_events_filters_by_attribute_time_and_region(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    _seed_notebook_events(aws_env)
    cloudtrail = client("cloudtrail")

    by_resource = cloudtrail.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "nb-a"}]
    )["Events"]
    assert len(by_resource) == 6  # five opens and one start, not eu-west-1's event
    times = [e["EventTime"] for e in by_resource]
    assert times == sorted(times, reverse=True)  # newest first

    starts = cloudtrail.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "StartNotebookInstance"}]
    )["Events"]
    assert sorted(e["Resources"][0]["ResourceName"] for e in starts) == ["nb-a", "nb-b"]

    recent = cloudtrail.lookup_events(
        LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": "nb-a"}],
        StartTime=NOW - timedelta(days=2),
        EndTime=NOW - timedelta(days=1),
    )["Events"]
    assert [e["EventTime"] for e in recent] == [NOW - timedelta(days=1), NOW - timedelta(days=2)]

    eu = client("cloudtrail", region="eu-west-1").lookup_events()["Events"]
    assert [e["EventTime"] for e in eu] == [NOW]


def test_lookup_events_pages_with_next_token(aws_env: AwsDevServer, client: ClientFactory) -> None:
    for minute in range(7):
        aws_env.add_cloudtrail_event(
            region="us-east-1",
            event_name="CreatePresignedNotebookInstanceUrl",
            resource_name="nb",
            at=NOW - timedelta(minutes=minute),
        )
    cloudtrail = client("cloudtrail")
    first = cloudtrail.lookup_events(MaxResults=3)
    assert len(first["Events"]) == 3
    assert first["NextToken"]
    pages = cloudtrail.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 3})
    seen = [event["EventTime"] for page in pages for event in page["Events"]]
    assert seen == [NOW - timedelta(minutes=m) for m in range(7)]
    assert aws_env.calls["cloudtrail.LookupEvents"] == 1 + 3


def test_lookup_events_rejects_what_cloudtrail_rejects(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudtrail = client("cloudtrail", config=NO_RETRY)
    with pytest.raises(ClientError) as too_many:
        cloudtrail.lookup_events(MaxResults=51)
    assert too_many.value.response["Error"]["Code"] == "InvalidMaxResultsException"
    with pytest.raises(ClientError) as two:
        cloudtrail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "a"},
                {"AttributeKey": "ResourceName", "AttributeValue": "b"},
            ]
        )
    assert two.value.response["Error"]["Code"] == "InvalidLookupAttributesException"
    with pytest.raises(ClientError) as backwards:
        cloudtrail.lookup_events(StartTime=NOW, EndTime=NOW - timedelta(days=1))
    assert backwards.value.response["Error"]["Code"] == "InvalidTimeRangeException"
    with pytest.raises(ClientError) as bad_token:
        cloudtrail.lookup_events(NextToken="not-a-token")
    assert bad_token.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_time_travel_sets_creation_times_in_the_past(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    sagemaker = client("sagemaker")
    sagemaker.create_model(
        ModelName="m",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker",
        PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    created = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    with at(created):
        sagemaker.create_endpoint(EndpointName="old", EndpointConfigName="c")
    [endpoint] = sagemaker.list_endpoints()["Endpoints"]
    assert endpoint["CreationTime"] == created
    assert datetime.now(UTC) - created > timedelta(days=1)  # the clock came back


def test_at_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"), at(datetime(2026, 1, 1)):  # noqa: DTZ001
        pass


def test_put_daily_metric_batches_1000_per_call(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudwatch = client("cloudwatch")
    values = [(NOW - timedelta(minutes=i), 1.0) for i in range(1500)]
    calls = put_daily_metric(
        cloudwatch, "Test", "Hits", {"EndpointName": "e", "VariantName": "v"}, values
    )
    assert calls == 2
    assert aws_env.calls["monitoring.PutMetricData"] == 2
    day = NOW.replace(hour=0)
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Test",
                        "MetricName": "Hits",
                        "Dimensions": [
                            {"Name": "EndpointName", "Value": "e"},
                            {"Name": "VariantName", "Value": "v"},
                        ],
                    },
                    "Period": 86400,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=day - timedelta(days=2),
        EndTime=day + timedelta(days=1),
        ScanBy="TimestampAscending",
    )["MetricDataResults"][0]
    assert sum(result["Values"]) == 1500
    assert result["Timestamps"][-1] == day


def test_list_metrics_lists_each_series_once_and_pages_by_500(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudwatch = client("cloudwatch")
    days = [(NOW - timedelta(days=d), 1.0) for d in range(3)]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": f"ep-{i}"},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": NOW,
                "Value": 1.0,
            }
            for i in range(510)
        ],
    )
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        "Invocations",
        {"EndpointName": "ep-0", "VariantName": "AllTraffic"},
        days,
    )
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        "ModelLatency",
        {"EndpointName": "ep-0", "VariantName": "AllTraffic"},
        days,
    )
    aws_env.reset_calls()

    with at(NOW):  # ListMetrics lists series with a datapoint in the two weeks before now
        pages = list(
            cloudwatch.get_paginator("list_metrics").paginate(
                Namespace="AWS/SageMaker", MetricName="Invocations"
            )
        )

    assert [len(page["Metrics"]) for page in pages] == [500, 10]
    assert aws_env.calls["monitoring.ListMetrics"] == 2
    first = pages[0]["Metrics"][0]
    assert first["Dimensions"] == [  # in the order they were published
        {"Name": "EndpointName", "Value": "ep-0"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    with at(NOW):
        filtered = cloudwatch.list_metrics(
            Namespace="AWS/SageMaker",
            Dimensions=[{"Name": "EndpointName", "Value": "ep-0"}],
        )["Metrics"]
        by_name_only = cloudwatch.list_metrics(
            Namespace="AWS/SageMaker",
            MetricName="ModelLatency",
            Dimensions=[{"Name": "VariantName"}],
        )["Metrics"]
    assert sorted(m["MetricName"] for m in filtered) == ["Invocations", "ModelLatency"]
    assert len(by_name_only) == 1


def test_list_metrics_hides_series_quiet_for_two_weeks_but_get_metric_data_reads_them(
    aws_env: AwsDevServer, client: ClientFactory
) -> None:
    cloudwatch = client("cloudwatch")
    dims = {"EndpointName": "ep-quiet", "VariantName": "AllTraffic"}
    put_daily_metric(
        cloudwatch, "AWS/SageMaker", "Invocations", dims, [(NOW - timedelta(days=20), 7.0)]
    )
    put_daily_metric(
        cloudwatch,
        "AWS/SageMaker",
        "Invocations",
        {"EndpointName": "ep-recent", "VariantName": "AllTraffic"},
        [(NOW - timedelta(days=13), 1.0)],
    )

    def listed(when: datetime) -> list[str]:
        with at(when):
            metrics = cloudwatch.list_metrics(Namespace="AWS/SageMaker")["Metrics"]
        names = (d["Value"] for m in metrics for d in m["Dimensions"])
        return sorted(name for name in names if name.startswith("ep-"))

    assert listed(NOW) == ["ep-recent"]  # ep-quiet's last datapoint is 20 days old
    assert listed(NOW - timedelta(days=7)) == ["ep-quiet", "ep-recent"]  # 13 days old then
    with at(NOW):
        result = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "q",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SageMaker",
                            "MetricName": "Invocations",
                            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                        },
                        "Period": 86400,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=NOW - timedelta(days=30),
            EndTime=NOW,
        )["MetricDataResults"][0]
    assert result["Values"] == [7.0]  # still readable by its exact dimension set
