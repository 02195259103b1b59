"""aws.s3-checkpoint against the local AWS (moto in server mode, real boto3 over HTTP).
Objects are backdated by travelling the process clock while they are written (moto runs in
this process and stamps LastModified from it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from janitor.clouds.aws.s3_checkpoint import KIND, S3CheckpointStopper, build
from janitor.clouds.base import KindHandlers
from janitor.devserver.aws import ACCOUNT_ID, AwsDevServer
from janitor.devserver.timetravel import at
from janitor.model import Resource, Status, StopOutcome, StopPlan, Window
from janitor.policy import parse_policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

    from janitor.clouds.aws.session import AwsScope

pytestmark = pytest.mark.integration

ScopeFactory = Callable[..., "AwsScope"]
REGION = "us-east-1"
KIB = 1024
BIG = 200 * KIB  # above GLACIER_IR's 128 KiB minimum billable size: worth moving


def _rule_yaml(extra: str = "") -> str:
    return f"rules:\n  - name: ck\n    kind: {KIND}\n{extra}"


class Env:
    def __init__(self, scope: AwsScope, server: AwsDevServer, extra: str = "") -> None:
        self.rule = parse_policy(_rule_yaml(extra), "test.yaml", env={}).rules[0]
        self.scope = scope
        self.server = server
        self.s3: S3Client = scope.client("s3")
        self.sagemaker: SageMakerClient = scope.client("sagemaker")
        self.handlers: KindHandlers = build(scope, self.rule)

    def bucket(
        self, name: str, *, tagged: bool = True, tags: Mapping[str, str] | None = None
    ) -> str:
        self.s3.create_bucket(Bucket=name)
        tag_set: dict[str, str] = dict(tags or {})
        if tagged:
            tag_set["janitor-checkpoints"] = "true"
        if tag_set:
            self.s3.put_bucket_tagging(
                Bucket=name,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tag_set.items()]},
            )
        return name

    def put(
        self,
        bucket: str,
        key: str,
        *,
        days_ago: float = 0,
        size: int = BIG,
        body: bytes | None = None,
        metadata: Mapping[str, str] | None = None,
        tagging: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if metadata:
            extra["Metadata"] = dict(metadata)
        if tagging:
            extra["Tagging"] = tagging
        with at(datetime.now(UTC) - timedelta(days=days_ago)):
            self.s3.put_object(
                Bucket=bucket, Key=key, Body=body if body is not None else b"x" * size, **extra
            )

    def classes(self, bucket: str) -> dict[str, str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {
            o["Key"]: str(o.get("StorageClass", "STANDARD"))
            for p in pages
            for o in p.get("Contents", [])
        }

    def scan(self) -> dict[str, Resource]:
        return {r.name: r for r in self.handlers.scanner.scan()}

    def plan(self, name: str) -> StopPlan:
        return self.handlers.stopper.plan(self.scan()[name])


@pytest.fixture
def env(scope: ScopeFactory, aws_env: AwsDevServer) -> Env:
    return Env(scope(REGION), aws_env)


def _run(env: Env, bucket: str, prefix: str, days: float, steps: tuple[int, ...]) -> None:
    for step in steps:
        env.put(
            bucket, f"{prefix}checkpoint-{step}/model.safetensors", days_ago=days + 1 - step / 1e4
        )
    env.put(bucket, f"{prefix}config.json", days_ago=days + 5, size=10)


# --- scan --------------------------------------------------------------------------------------


def test_one_finding_per_run_with_counts_bytes_cost_and_idle_evidence(env: Env) -> None:
    env.bucket("ml-ckpt", tags={"owner": "alice"})
    _run(env, "ml-ckpt", "runs/exp-42/", 70, (1000, 2000, 3000))
    env.bucket("not-listed", tagged=False)
    env.put("not-listed", "runs/x/checkpoint-1/model.pt", days_ago=90)

    found = env.scan()

    assert set(found) == {"s3://ml-ckpt/runs/exp-42/"}  # the untagged, unlisted bucket: never
    run = found["s3://ml-ckpt/runs/exp-42/"]
    assert run.details["objects"] == 3
    assert run.details["bytes"] == 3 * BIG
    assert run.details["other_objects"] == 1
    assert run.tags["owner"] == "alice"
    assert run.details["monthly_storage_usd"] is not None
    assert run.details["monthly_saving_usd"] > 0
    assert "move 2 objects" in run.details["plan"]
    now = datetime.now(UTC)
    verdicts = env.handlers.probe.usage([run], Window.ending(now, timedelta(days=74)), now)
    verdict = verdicts[run.ref.key]
    assert verdict.status is Status.IDLE
    assert "checkpoint-3000/model.safetensors" in verdict.evidence


def test_a_listed_bucket_with_a_prefix_and_an_owner_from_object_metadata(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    extra = "    checkpoints:\n      buckets:\n        - {name: team-data, prefix: training/}\n"
    env = Env(scope(REGION), aws_env, extra)
    env.bucket("team-data", tagged=False)
    env.put("team-data", "training/r1/ckpt-1/w.bin", days_ago=80, metadata={"owner": "bob"})
    env.put("team-data", "other/r2/ckpt-1/w.bin", days_ago=80)

    found = env.scan()

    assert set(found) == {"s3://team-data/training/r1/"}
    assert found["s3://team-data/training/r1/"].tags["owner"] == "bob"


def test_an_empty_bucket_has_no_finding(env: Env) -> None:
    env.bucket("empty")
    assert env.scan() == {}
    assert env.handlers.scanner.scan_warnings == []  # type: ignore[attr-defined]


def test_access_denied_on_one_bucket_is_reported_and_the_others_go_on(env: Env) -> None:
    env.bucket("locked")
    env.put("locked", "r/checkpoint-1/a.pt", days_ago=90)
    env.bucket("open")
    env.put("open", "r/checkpoint-1/a.pt", days_ago=90)
    # GetBucketLocation and GetBucketTagging go through; the listing (the third GET) is denied.
    env.server.fail("s3.GET /locked", 1, "AccessDenied", 403, after=2)
    found = env.scan()

    warnings = env.handlers.scanner.scan_warnings  # type: ignore[attr-defined]
    assert set(found) == {"s3://open/r/"}
    assert any("locked" in w and "denied" in w for w in warnings), warnings


def test_keys_with_spaces_unicode_percent_plus_and_a_long_prefix(env: Env) -> None:
    env.bucket("odd")
    long_prefix = ("del" * 99 + "/") * 9 + "x" * 90 + "/"  # 990 characters, then the run's keys
    prefixes = ["my run/", "Läufe ü/", "100%/", "a+b/", long_prefix]
    for prefix in prefixes:
        env.put("odd", f"{prefix}checkpoint-1/m.pt", days_ago=90)
        env.put("odd", f"{prefix}checkpoint-2/m.pt", days_ago=89)
    found = env.scan()
    assert set(found) == {f"s3://odd/{p}" for p in prefixes}
    assert len(long_prefix + "checkpoint-1/m.pt") >= 1000

    for prefix in prefixes:
        plan = env.handlers.stopper.plan(found[f"s3://odd/{prefix}"])
        assert plan.refusal is None
        result = env.handlers.stopper.act(plan)
        assert result.outcome is StopOutcome.STOPPED, result.message
    classes = env.classes("odd")
    for prefix in prefixes:
        assert classes[f"{prefix}checkpoint-1/m.pt"] == "GLACIER_IR"
        assert classes[f"{prefix}checkpoint-2/m.pt"] == "STANDARD"  # the newest is kept


def test_a_marker_object_exempts_the_run(env: Env) -> None:
    env.bucket("mkr")
    env.put("mkr", "r/checkpoint-1/a.pt", days_ago=90)
    env.put("mkr", "r/janitor-exempt", days_ago=90, body=b"2999-01-01\n")
    found = env.scan()
    assert found["s3://mkr/r/"].tags["janitor-exempt"] == "2999-01-01"


# --- action ------------------------------------------------------------------------------------


def test_archive_keeps_the_newest_and_other_files_then_restore_moves_back(env: Env) -> None:
    env.bucket("arc")
    _run(env, "arc", "r/", 70, (1, 2, 3))
    env.put("arc", "r/checkpoint-1/model.safetensors", days_ago=71, tagging="team=ml")
    env.s3.put_object_tagging(
        Bucket="arc",
        Key="r/checkpoint-2/model.safetensors",
        Tagging={"TagSet": [{"Key": "k", "Value": "v"}]},
    )
    plan = env.plan("s3://arc/r/")
    assert plan.recipe is not None
    moves = {m["key"]: m["from"] for m in plan.recipe["moves"]}
    assert moves == {
        "r/checkpoint-1/model.safetensors": "STANDARD",
        "r/checkpoint-2/model.safetensors": "STANDARD",
    }
    result = env.handlers.stopper.act(plan)
    assert result.outcome is StopOutcome.STOPPED, result.message
    classes = env.classes("arc")
    assert classes["r/checkpoint-1/model.safetensors"] == "GLACIER_IR"
    assert classes["r/checkpoint-2/model.safetensors"] == "GLACIER_IR"
    assert classes["r/checkpoint-3/model.safetensors"] == "STANDARD"
    assert classes["r/config.json"] == "STANDARD"
    tags = env.s3.get_object_tagging(Bucket="arc", Key="r/checkpoint-2/model.safetensors")["TagSet"]
    assert tags == [{"Key": "k", "Value": "v"}]

    message = env.handlers.stopper.restore(plan.recipe)
    assert "moved 2 objects" in message
    assert set(env.classes("arc").values()) == {"STANDARD"}


def test_a_run_all_newer_than_the_threshold_is_active(env: Env) -> None:
    env.bucket("fresh")
    _run(env, "fresh", "r/", 0, (1, 2))
    env.put("fresh", "r/checkpoint-3/model.safetensors", days_ago=0)
    run = env.scan()["s3://fresh/r/"]
    now = datetime.now(UTC)
    verdict = env.handlers.probe.usage([run], Window.ending(now, timedelta(days=74)), now)
    assert verdict[run.ref.key].status is Status.ACTIVE


def test_an_object_changed_between_scan_and_action_is_skipped(env: Env) -> None:
    env.bucket("chg")
    _run(env, "chg", "r/", 70, (1, 2, 3))
    plan = env.plan("s3://chg/r/")
    env.put("chg", "r/checkpoint-1/model.safetensors", body=b"rewritten" * 30000, days_ago=70)
    result = env.handlers.stopper.act(plan)
    assert result.outcome is StopOutcome.STOPPED
    assert "1 skipped" in result.message
    classes = env.classes("chg")
    assert classes["r/checkpoint-1/model.safetensors"] == "STANDARD"  # changed: untouched
    assert classes["r/checkpoint-2/model.safetensors"] == "GLACIER_IR"


def test_a_bucket_that_vanished_between_list_and_action(env: Env) -> None:
    env.bucket("gone")
    _run(env, "gone", "r/", 70, (1, 2))
    found = env.scan()
    for key in env.classes("gone"):
        env.s3.delete_object(Bucket="gone", Key=key)
    env.s3.delete_bucket(Bucket="gone")
    plan = env.handlers.stopper.plan(found["s3://gone/r/"])
    assert plan.refusal is not None
    assert plan.refusal.outcome is StopOutcome.NOT_FOUND


def test_a_bucket_that_vanished_between_plan_and_act(env: Env) -> None:
    env.bucket("gone2")
    _run(env, "gone2", "r/", 70, (1, 2))
    plan = env.plan("s3://gone2/r/")
    for key in env.classes("gone2"):
        env.s3.delete_object(Bucket="gone2", Key=key)
    env.s3.delete_bucket(Bucket="gone2")
    result = env.handlers.stopper.act(plan)
    assert result.outcome is StopOutcome.NOT_FOUND


def test_the_multipart_path_with_a_lowered_part_size(env: Env) -> None:
    env.bucket("mpart")
    env.put("mpart", "r/checkpoint-1/big.bin", days_ago=90, size=12 * 1024**2,
            metadata={"owner": "alice"}, tagging="team=ml")  # fmt: skip
    env.put("mpart", "r/checkpoint-2/big.bin", days_ago=80)
    stopper = S3CheckpointStopper(
        env.scope, env.rule, multipart_threshold=6 * 1024**2, part_size=5 * 1024**2
    )
    plan = stopper.plan(env.scan()["s3://mpart/r/"])
    result = stopper.act(plan)
    assert result.outcome is StopOutcome.STOPPED, result.message
    head = env.s3.head_object(Bucket="mpart", Key="r/checkpoint-1/big.bin")
    assert head["StorageClass"] == "GLACIER_IR"
    assert head["ContentLength"] == 12 * 1024**2
    assert head["ETag"].endswith('-3"')  # three parts: the multipart path was taken
    assert head["Metadata"] == {"owner": "alice"}
    tags = env.s3.get_object_tagging(Bucket="mpart", Key="r/checkpoint-1/big.bin")["TagSet"]
    assert tags == [{"Key": "team", "Value": "ml"}]


def test_a_run_whose_only_checkpoint_is_the_newest_has_nothing_to_move(env: Env) -> None:
    env.bucket("one")
    env.put("one", "r/checkpoint-1/m.pt", days_ago=90)
    plan = env.plan("s3://one/r/")
    assert plan.refusal is not None
    assert plan.refusal.outcome is StopOutcome.ALREADY_STOPPED
    assert "nothing to move" in plan.refusal.message
    assert env.classes("one") == {"r/checkpoint-1/m.pt": "STANDARD"}


def test_a_checkpoint_a_live_sagemaker_model_references_is_never_touched(env: Env) -> None:
    env.bucket("smref")
    _run(env, "smref", "r/", 70, (1, 2, 3))
    env.sagemaker.create_model(
        ModelName="served",
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker",
        PrimaryContainer={
            "Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "ModelDataUrl": "s3://smref/r/checkpoint-1/model.safetensors",
        },
    )
    plan = env.plan("s3://smref/r/")
    assert plan.recipe is not None
    assert [m["key"] for m in plan.recipe["moves"]] == ["r/checkpoint-2/model.safetensors"]
    env.handlers.stopper.act(plan)
    assert env.classes("smref")["r/checkpoint-1/model.safetensors"] == "STANDARD"


def test_delete_only_under_action_delete_and_never_the_newest(
    scope: ScopeFactory, aws_env: AwsDevServer
) -> None:
    env = Env(scope(REGION), aws_env, "    action: delete\n")
    env.bucket("del")
    _run(env, "del", "r/", 70, (1, 2, 3))
    plan = env.plan("s3://del/r/")
    result = env.handlers.stopper.act(plan)
    assert result.outcome is StopOutcome.STOPPED
    assert set(env.classes("del")) == {"r/checkpoint-3/model.safetensors", "r/config.json"}


def test_the_listing_streams_pages_of_a_thousand_keys(env: Env) -> None:
    env.bucket("paged")
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: env.s3.put_object(
                    Bucket="paged", Key=f"r/checkpoint-{i:04d}/m.pt", Body=b""
                ),
                range(1001),
            )
        )
    env.server.reset_calls()
    found = env.scan()
    assert found["s3://paged/r/"].details["checkpoint_count"] == 1001
    # GetBucketLocation, GetBucketTagging, then two ListObjectsV2 pages: 1,000 keys and 1.
    assert env.server.calls["s3.GET /paged"] == 4
