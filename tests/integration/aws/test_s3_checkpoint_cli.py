"""aws.s3-checkpoint through the `janitor` command on the moto server: scan (JSON), run --apply
over faked days (warned first, archived at the stop date), restore."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import time_machine

from janitor import cli
from janitor.devserver.aws import AwsDevServer
from janitor.devserver.timetravel import at

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
BUCKET = "ml-checkpoints"
RUN = f"s3://{BUCKET}/runs/exp-42/"
SIZE = 200 * 1024


def _policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n  notify_after: 30d\n  stop_after: 60d\n  warning: 7d\n  owner_tags: [owner]\n"
        "aws:\n  regions: [us-east-1]\n"
        "notifier:\n  type: console\n  counts_as_delivery: true\n"
        "rules:\n  - name: ckpt\n    kind: aws.s3-checkpoint\n",
        encoding="utf-8",
    )
    return path


def _classes(s3: S3Client) -> dict[str, str]:
    answer = s3.list_objects_v2(Bucket=BUCKET)
    return {o["Key"]: str(o.get("StorageClass", "STANDARD")) for o in answer.get("Contents", [])}


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main([*args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def s3(aws_env: AwsDevServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Client:
    import boto3

    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    client: S3Client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_tagging(
        Bucket=BUCKET,
        Tagging={
            "TagSet": [
                {"Key": "janitor-checkpoints", "Value": "true"},
                {"Key": "owner", "Value": "alice@example.com"},
            ]
        },
    )
    for step, days in ((1000, 82), (2000, 81), (3000, 80)):
        with at(NOW - timedelta(days=days)):
            client.put_object(
                Bucket=BUCKET,
                Key=f"runs/exp-42/checkpoint-{step}/model.safetensors",
                Body=b"w" * SIZE,
            )
    with at(NOW - timedelta(days=85)):
        client.put_object(Bucket=BUCKET, Key="runs/exp-42/config.json", Body=b"{}")
    return client


def test_scan_then_warn_then_archive_then_restore(
    s3: S3Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_policy(tmp_path))
    with time_machine.travel(NOW, tick=True):
        code, scan = _run_json(capsys, "scan", "--policy", path)
    assert code == 0
    rows = {f["name"]: f for f in scan["findings"]}
    assert set(rows) == {RUN}
    assert rows[RUN]["owner"] == "alice@example.com"
    assert rows[RUN]["monthly_cost_usd"] is not None

    with time_machine.travel(NOW, tick=True):
        code, day0 = _run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert {f["name"]: f for f in day0["findings"]}[RUN]["action"] == "warn"
    assert set(_classes(s3).values()) == {"STANDARD"}  # warned first, nothing moved

    with time_machine.travel(NOW + timedelta(days=7, hours=1), tick=True):
        code, day7 = _run_json(capsys, "run", "--apply", "--policy", path)
    assert code == 0
    assert {f["name"]: f for f in day7["findings"]}[RUN]["outcome"] == "stopped"
    assert _classes(s3) == {
        "runs/exp-42/checkpoint-1000/model.safetensors": "GLACIER_IR",
        "runs/exp-42/checkpoint-2000/model.safetensors": "GLACIER_IR",
        "runs/exp-42/checkpoint-3000/model.safetensors": "STANDARD",  # the newest is kept
        "runs/exp-42/config.json": "STANDARD",  # not a checkpoint: never touched
    }

    assert cli.main(["restore", RUN, "--policy", path]) == 0
    assert "moved 2 objects" in capsys.readouterr().out
    assert set(_classes(s3).values()) == {"STANDARD"}
