"""The policy's `owners:` section end to end: an owner tag that is a bare name (as GCP labels
must be) reaches its destination through `owners.map`, else through `owners.domain`."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from tests.e2e.conftest import Fleet, by_name, run_json

pytestmark = pytest.mark.e2e

OWNERS = "owners:\n  map:\n    ml-team: '#ml-alerts'\n  domain: corp.example\n"


def test_scan_maps_bare_owner_names_through_the_policy(
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    arn = sagemaker.describe_endpoint(EndpointName="churn-model-v3")["EndpointArn"]
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "ml-team"}])
    reservations = ec2.describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["train-box-p3"]}]
    )["Reservations"]
    (instance,) = [i for r in reservations for i in r["Instances"]]
    ec2.create_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": "Owner", "Value": "bob"}])
    ec2.delete_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": "owner"}])
    policy = tmp_path / "owners.yaml"
    policy.write_text(
        OWNERS + Path("policies/default.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    monkeypatch.setenv("JANITOR_POLICY", str(policy))

    code, report = run_json(capsys, "scan")

    assert code == 0, report["errors"]
    rows = by_name(report)
    assert rows["churn-model-v3"]["owner"] == "#ml-alerts"  # owners.map
    assert rows["train-box-p3"]["owner"] == "bob@corp.example"  # owners.domain
    assert rows["fraud-scorer-prod"]["owner"] == "alice@example.com"  # an email, as it is
    assert rows["untagged-gpu"]["owner"] is None
