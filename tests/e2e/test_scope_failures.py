"""One failure stays local, through the CLI against the AWS emulator: a call that fails in one
scope makes that scope an error (exit 1), and every other scope is still scanned and acted on."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import Fleet, run_json

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("command", [["scan"], ["run"], ["run", "--apply"]])
def test_a_denied_describe_endpoint_fails_only_the_endpoint_scope(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    fleet.server.fail("sagemaker.DescribeEndpoint", 1000, "AccessDeniedException")

    code, report = run_json(capsys, *command)

    assert code == 1
    (error,) = report["errors"]
    assert error["kind"] == "aws.sagemaker-endpoint"
    assert "DescribeEndpoint" in error["message"]
    assert "AccessDenied" in error["message"]
    assert "\n" not in error["message"]
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"aws.ec2-gpu", "aws.sagemaker-notebook"}, "the other scopes still ran"
    assert "Traceback" not in capsys.readouterr().err


def test_a_date_out_of_range_on_one_resource_takes_down_nothing_else(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    arn = sagemaker.describe_endpoint(EndpointName="bert-embeddings-poc")["EndpointArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "janitor-exempt", "Value": "9999-12-31"}])

    code, report = run_json(capsys, "scan")

    names = {f["name"] for f in report["findings"]}
    assert {"llm-summarizer-canary", "churn-model-v3", "train-box-p3"} <= names
    for error in report["errors"]:  # if the date is not understood, it is that resource's error
        assert error["message"].startswith("bert-embeddings-poc: ")
        assert "\n" not in error["message"]
    assert code == (1 if report["errors"] else 0)
    assert "Traceback" not in capsys.readouterr().err
