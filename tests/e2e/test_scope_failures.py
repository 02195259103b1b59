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
