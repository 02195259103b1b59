"""`aws.s3-checkpoint`: training runs of checkpoints in S3 that nobody has touched.

Which buckets: those tagged `janitor-checkpoints=true` and those the rule lists
(`checkpoints.buckets`, each with an optional prefix); nothing else is listed. S3 is global, a
scope is a region: a scope lists the buckets located in its region. Buckets list concurrently;
each listing streams ListObjectsV2 pages of 1,000 keys (the maximum) through `RunGrouper`, so
memory holds one run, never a bucket. One finding per run.

Owner: the bucket's owner tag, then the newest checkpoint object's user metadata (one
HeadObject per run), then the shared `owners:` mapping (the pipeline's). Opt-out: the bucket's
exempt tag, or the run's marker object (its first 256 bytes, one ranged GET).

Action `archive` (the kind's own): every checkpoint object of the run but the newest
`keep_latest` (and any a live SageMaker model's ModelDataUrl points at) is copied in place to
the target class (GLACIER_IR unless the rule says otherwise): CopyObject with
`CopySourceIfMatch` on the scanned ETag (an object modified since the scan is skipped), or a
multipart copy (UploadPartCopy, each part conditional on the ETag) above 5 GB. Metadata and
tags are kept. The plan, recorded before the copies, lists every object and its former class:
`janitor restore` copies them back. `action: delete` deletes the same objects instead; deletes
cannot be restored.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from janitor import checkpoints as ckpt
from janitor.clouds.aws.session import AwsScope, is_access_denied, one_line
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.model import (
    Cloud,
    Resource,
    ResourceRef,
    StopOutcome,
    StopPlan,
    StopResult,
    Verdict,
    Window,
    utc,
)
from janitor.pricing import load_catalog

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

    from janitor.policy import Rule

KIND = "aws.s3-checkpoint"
PAGE_SIZE = 1000  # ListObjectsV2's maximum
PRICE_SERVICE = "s3-storage"  # the catalog table: region -> class -> USD per GB-month
MULTIPART_THRESHOLD = 5 * 1024**3  # CopyObject's limit: larger objects need UploadPartCopy
PART_SIZE = 512 * 1024**2
MAX_LISTERS = 8  # buckets listed at once

_GONE = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_CHANGED = frozenset({"PreconditionFailed", "412"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True, slots=True)
class Target:
    """One listing: a bucket and a prefix."""

    bucket: str
    prefix: str
    tags: Mapping[str, str]


def _bucket_tags(s3: S3Client, bucket: str) -> dict[str, str]:
    try:
        answer = s3.get_bucket_tagging(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in {"NoSuchTagSet", "NoSuchTagSetError"}:
            return {}
        raise
    return {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}


def _bucket_region(s3: S3Client, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return str(location or "us-east-1")


def model_references(sagemaker: SageMakerClient) -> dict[str, list[str]]:
    """bucket -> keys or key prefixes that a live SageMaker model's ModelDataUrl names."""
    refs: dict[str, list[str]] = {}
    for page in sagemaker.get_paginator("list_models").paginate(PaginationConfig={"PageSize": 100}):
        for summary in page.get("Models", []):
            model: Any = sagemaker.describe_model(ModelName=summary["ModelName"])
            containers = [model.get("PrimaryContainer") or {}, *model.get("Containers", [])]
            for container in containers:
                urls = [container.get("ModelDataUrl")]
                source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
                urls.append(source.get("S3Uri"))
                for url in urls:
                    if isinstance(url, str) and url.startswith("s3://"):
                        bucket, _, key = url[5:].partition("/")
                        refs.setdefault(bucket, []).append(key)
    return refs


def _objects(page: Mapping[str, Any]) -> Iterator[ckpt.StoredObject]:
    for item in page.get("Contents", []):
        yield ckpt.StoredObject(
            key=item["Key"],
            size=int(item.get("Size", 0)),
            modified=utc(item["LastModified"]),
            version=str(item.get("ETag", "")),
            storage_class=str(item.get("StorageClass") or "STANDARD"),
        )


def list_runs(
    s3: S3Client, bucket: str, prefix: str, recognizer: ckpt.Recognizer
) -> Iterator[ckpt.Run]:
    """The runs under `prefix`, streamed page by page (1,000 keys a page)."""
    grouper = ckpt.RunGrouper(recognizer)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE}
    )
    for page in pages:
        yield from grouper.feed(_objects(page))
    yield from grouper.finish()


def price_lookup(region: str) -> ckpt.PriceLookup:
    catalog = load_catalog()

    def price(name: str) -> float | None:
        return catalog.hourly(PRICE_SERVICE, region, name.strip().upper())

    return price


def _target(rule: Rule) -> ckpt.StorageClass:
    options = rule.checkpoints
    name = options.storage_class if options is not None else ckpt.DEFAULT_STORAGE_CLASS
    return ckpt.target_class(ckpt.Store.S3, name)


def _action(rule: Rule) -> ckpt.PlanAction:
    return ckpt.PlanAction.DELETE if rule.action == "delete" else ckpt.PlanAction.ARCHIVE


def _keep(rule: Rule) -> int:
    options = rule.checkpoints
    return options.keep_latest if options is not None else ckpt.DEFAULT_KEEP_LATEST


# --- scan ------------------------------------------------------------------------------------


class S3CheckpointScanner:
    def __init__(self, scope: AwsScope, rule: Rule) -> None:
        self._scope = scope
        self._rule = rule
        self._s3: S3Client = scope.client("s3")
        self._sagemaker: SageMakerClient = scope.client("sagemaker")
        self._recognizer = ckpt.recognizer_for(rule)
        self._price = price_lookup(scope.region)
        self.scan_warnings: list[str] = []

    def targets(self) -> list[Target]:
        """The listings of this region: tagged buckets (whole) and the rule's buckets."""
        listed: dict[str, list[str]] = {}
        options = self._rule.checkpoints
        for entry in options.buckets if options is not None else ():
            listed.setdefault(entry.name, []).append(entry.prefix)
        out: list[Target] = []
        names = [b["Name"] for b in self._s3.list_buckets().get("Buckets", [])]
        for name in sorted(set(names) | set(listed)):
            try:
                if _bucket_region(self._s3, name) != self._scope.region:
                    continue
                tags = _bucket_tags(self._s3, name)
            except ClientError as exc:
                if name in listed or _code(exc) not in _GONE:
                    self.scan_warnings.append(f"s3://{name}: {one_line(exc)}")
                continue
            except BotoCoreError as exc:
                self.scan_warnings.append(f"s3://{name}: {one_line(exc)}")
                continue
            tagged = any(
                k.lower() == ckpt.DISCOVERY_TAG and v.strip().lower() == "true"
                for k, v in tags.items()
            )
            if tagged:
                out.append(Target(name, "", tags))
            else:
                out.extend(Target(name, prefix, tags) for prefix in listed.get(name, []))
        return out

    def scan(self) -> Iterator[Resource]:
        targets = self.targets()
        if not targets:
            return
        try:
            refs = model_references(self._sagemaker)
        except (ClientError, BotoCoreError) as exc:
            refs = {}
            self.scan_warnings.append(
                f"SageMaker models unreadable ({one_line(exc)}): savings may be overstated; "
                "the action re-reads them and does not act without them"
            )
        with ThreadPoolExecutor(max_workers=min(MAX_LISTERS, len(targets))) as pool:
            futures = [pool.submit(self._scan_target, t, refs.get(t.bucket, [])) for t in targets]
            for target, future in zip(targets, futures, strict=True):
                try:
                    yield from future.result()
                except ClientError as exc:
                    why = "access denied" if is_access_denied(exc) else "failed"
                    self.scan_warnings.append(
                        f"s3://{target.bucket}/{target.prefix}: listing {why}: {one_line(exc)}"
                    )
                except BotoCoreError as exc:
                    self.scan_warnings.append(f"s3://{target.bucket}: {one_line(exc)}")

    def _scan_target(self, target: Target, refs: Sequence[str]) -> list[Resource]:
        return [
            self._resource(target, run, refs)
            for run in list_runs(self._s3, target.bucket, target.prefix, self._recognizer)
        ]

    def _resource(self, target: Target, run: ckpt.Run, refs: Sequence[str]) -> Resource:
        rule = self._rule
        now = utc(datetime.now().astimezone())
        marker = None
        if run.marker is not None:
            marker = read_marker(self._s3, target.bucket, run.marker)
        tags = ckpt.tags_with_marker(target.tags, rule.exempt_tag, marker, now)
        if not any(k.lower() in {t.lower() for t in rule.owner_tags} for k in tags):
            owner = self._metadata_owner(target.bucket, run)
            if owner:
                tags[rule.owner_tags[0]] = owner
        plan = ckpt.plan_run(
            run,
            store=ckpt.Store.S3,
            keep_latest=_keep(rule),
            target=_target(rule),
            action=_action(rule),
            references=refs,
        )
        cost = ckpt.monthly_cost(run, ckpt.Store.S3, self._price)
        saving = ckpt.monthly_saving(plan, ckpt.Store.S3, self._price)
        details = ckpt.run_details(run)
        details.update(
            bucket=target.bucket,
            listed_prefix=target.prefix,
            plan=plan.summary(),
            notes=list(plan.notes),
            monthly_storage_usd=None if cost is None else round(cost, 6),
            monthly_saving_usd=None if saving is None else round(saving, 6),
        )
        ident = f"s3://{target.bucket}/{run.prefix}"
        return Resource(
            ref=ResourceRef(Cloud.AWS, KIND, self._scope.account_id, self._scope.region, ident),
            name=ident,
            state="stored",
            created_at=min(o.modified for o in run.objects()),
            tags=tags,
            details=details,
        )

    def _metadata_owner(self, bucket: str, run: ckpt.Run) -> str | None:
        newest = max(run.objects(), key=lambda o: o.modified)
        try:
            head = self._s3.head_object(Bucket=bucket, Key=newest.key)
        except (ClientError, BotoCoreError):
            return None
        found = replace(newest, metadata=dict(head.get("Metadata", {})))
        single = replace(run, checkpoints=(ckpt.Checkpoint(found.key, False, (found,)),))
        return single.metadata_value(self._rule.owner_tags)

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        return list(resources)


def read_marker(s3: S3Client, bucket: str, key: str) -> str:
    """The marker's value: its first bytes (a bounded, ranged GET). Unreadable exempts."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{ckpt.MARKER_READ_BYTES - 1}")[
            "Body"
        ].read(ckpt.MARKER_READ_BYTES)
    except (ClientError, BotoCoreError):
        return "true"
    return ckpt.marker_value(body)


# --- usage -----------------------------------------------------------------------------------


class S3CheckpointProbe:
    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        out: dict[str, Verdict] = {}
        for r in resources:
            activity = ckpt.RunActivity.from_details(r.details["activity"])
            out[r.ref.key] = ckpt.run_verdict(r.ref, activity, now)
        return out


# --- archive / delete / restore --------------------------------------------------------------


def _split(name: str) -> tuple[str, str]:
    bucket, _, prefix = name.removeprefix("s3://").partition("/")
    return bucket, prefix


def copy_to_class(
    s3: S3Client,
    bucket: str,
    key: str,
    *,
    etag: str,
    size: int,
    storage_class: str,
    threshold: int = MULTIPART_THRESHOLD,
    part_size: int = PART_SIZE,
) -> None:
    """Change one object's class in place, conditional on `etag` (ClientError 412 if changed):
    CopyObject up to `threshold`, a multipart UploadPartCopy above it. Metadata and tags kept."""
    source: Any = {"Bucket": bucket, "Key": key}
    # Checked here and again by S3 itself (CopySourceIfMatch) on the copy.
    head = s3.head_object(Bucket=bucket, Key=key)
    if head.get("ETag") != etag:
        raise ObjectChanged(f"{key}: ETag {head.get('ETag')} is not the scanned {etag}")
    if size <= threshold:
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource=source,
            CopySourceIfMatch=etag,
            StorageClass=storage_class,  # type: ignore[arg-type]
            MetadataDirective="COPY",
            TaggingDirective="COPY",
        )
        return
    tagset = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    facts: Mapping[str, Any] = head
    extra: dict[str, Any] = {"Metadata": facts.get("Metadata", {}), "StorageClass": storage_class}
    for field in ("ContentType", "ContentEncoding", "ContentDisposition", "CacheControl"):
        if facts.get(field):
            extra[field] = facts[field]
    if tagset:
        extra["Tagging"] = urllib.parse.urlencode([(t["Key"], t["Value"]) for t in tagset])
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    upload_id = upload["UploadId"]
    try:
        parts: list[Any] = []
        for number, start in enumerate(range(0, size, part_size), start=1):
            end = min(start + part_size, size) - 1
            answer = s3.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceIfMatch=etag,
                CopySourceRange=f"bytes={start}-{end}",
            )
            parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class ObjectChanged(Exception):
    """The object is not the one the scan saw (its ETag differs): it is left alone."""


class S3CheckpointStopper:
    def __init__(
        self,
        scope: AwsScope,
        rule: Rule,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        self._scope = scope
        self._rule = rule
        self._s3: S3Client = scope.client("s3")
        self._sagemaker: SageMakerClient = scope.client("sagemaker")
        self._recognizer = ckpt.recognizer_for(rule)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    def plan(self, resource: Resource) -> StopPlan:
        bucket, prefix = _split(resource.name)

        def refuse(outcome: StopOutcome, message: str) -> StopPlan:
            return StopPlan(resource, refusal=StopResult(outcome, message))

        try:
            refs = model_references(self._sagemaker).get(bucket, [])
        except (ClientError, BotoCoreError) as exc:
            return refuse(
                StopOutcome.FAILED,
                f"SageMaker models unreadable, nothing moved: {one_line(exc)}",
            )
        try:
            run = None
            for found in list_runs(self._s3, bucket, prefix, self._recognizer):
                if found.prefix == prefix:
                    run = found
        except ClientError as exc:
            if _code(exc) in _GONE:
                return refuse(StopOutcome.NOT_FOUND, f"bucket {bucket} no longer exists")
            return refuse(StopOutcome.FAILED, one_line(exc))
        except BotoCoreError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        if run is None:
            return refuse(StopOutcome.NOT_FOUND, f"{resource.name} holds no checkpoint any more")
        scanned = ckpt.RunActivity.from_details(resource.details["activity"])
        if run.activity.newest_modified > scanned.newest_modified:
            return refuse(
                StopOutcome.STILL_ACTIVE,
                f"{run.activity.newest_key} was written since the scan",
            )
        plan = ckpt.plan_run(
            run,
            store=ckpt.Store.S3,
            keep_latest=_keep(self._rule),
            target=_target(self._rule),
            action=_action(self._rule),
            references=refs,
        )
        details = dict(resource.details)
        details.update(ckpt.run_details(run), plan=plan.summary())
        fresh = replace(resource, details=details)
        if plan.nothing_to_do:
            return StopPlan(
                fresh,
                refusal=StopResult(
                    StopOutcome.ALREADY_STOPPED, f"nothing to move: {plan.summary()}"
                ),
            )
        recipe = {
            "kind": KIND,
            "account": self._scope.account_id,
            "region": self._scope.region,
            "bucket": bucket,
            "prefix": prefix,
            "action": plan.action.value,
            "moves": [
                {
                    "key": m.key,
                    "from": m.from_class,
                    "to": m.to_class,
                    "etag": m.version,
                    "size": m.size,
                }
                for m in plan.moves
            ],
            "deletes": [
                {"key": o.key, "etag": o.version, "class": o.storage_class} for o in plan.deletes
            ],
        }
        return StopPlan(fresh, recipe)

    def _bucket_exists(self, bucket: str) -> bool:
        """HEAD answers a bare 404 for a missing key and a missing bucket alike."""
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in _GONE:
                return False
            raise
        return True

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        bucket = str(recipe["bucket"])
        done = skipped = 0
        notes: list[str] = []
        for move in recipe["moves"]:
            try:
                copy_to_class(
                    self._s3,
                    bucket,
                    str(move["key"]),
                    etag=str(move["etag"]),
                    size=int(move["size"]),
                    storage_class=str(move["to"]),
                    threshold=self.multipart_threshold,
                    part_size=self.part_size,
                )
                done += 1
            except ObjectChanged:
                skipped += 1
                notes.append(f"{move['key']}: modified since the scan, skipped")
            except ClientError as exc:
                code = _code(exc)
                if code in _GONE and not self._bucket_exists(bucket):
                    return StopResult(
                        StopOutcome.NOT_FOUND if not done else StopOutcome.FAILED,
                        f"bucket {bucket} vanished after {done} objects",
                        restore=recipe if done else None,
                    )
                if code in _CHANGED or code in _GONE:
                    skipped += 1
                    notes.append(f"{move['key']}: changed or gone since the scan, skipped")
                    continue
                return StopResult(
                    StopOutcome.FAILED, f"{move['key']}: {one_line(exc)}", restore=recipe
                )
        for obj in recipe["deletes"]:
            key = str(obj["key"])
            try:
                head = self._s3.head_object(Bucket=bucket, Key=key)
            except ClientError:
                if not self._bucket_exists(bucket):
                    return StopResult(StopOutcome.NOT_FOUND, f"bucket {bucket} vanished")
                skipped += 1
                continue
            if head.get("ETag") != obj["etag"]:
                skipped += 1
                notes.append(f"{key}: changed since the scan, skipped")
                continue
            self._s3.delete_object(Bucket=bucket, Key=key)
            done += 1
        verb = "deleted" if recipe["action"] == "delete" else "archived"
        message = f"{verb} {done} objects of s3://{bucket}/{recipe['prefix']}"
        if skipped:
            message += f"; {skipped} skipped ({'; '.join(notes[:5])})"
        if not done:
            return StopResult(StopOutcome.STILL_ACTIVE, message)
        return StopResult(StopOutcome.STOPPED, message, restore=recipe)

    def restore(self, recipe: Mapping[str, Any]) -> str:
        bucket = str(recipe["bucket"])
        if recipe.get("action") == "delete":
            raise RestoreFailed(
                f"s3://{bucket}/{recipe['prefix']}: deleted objects cannot be restored"
            )
        moved = skipped = 0
        for move in recipe["moves"]:
            key = str(move["key"])
            try:
                head = self._s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if not self._bucket_exists(bucket):
                    raise RestoreFailed(f"bucket {bucket} no longer exists") from None
                if _code(exc) in _GONE:
                    skipped += 1
                    continue
                raise
            current = str(head.get("StorageClass") or "STANDARD")
            if current.upper() != str(move["to"]).upper():
                skipped += 1  # already moved back, or changed by someone else
                continue
            copy_to_class(
                self._s3,
                bucket,
                key,
                etag=str(head["ETag"]),
                size=int(head.get("ContentLength", 0)),
                storage_class=str(move["from"]),
                threshold=self.multipart_threshold,
                part_size=self.part_size,
            )
            moved += 1
        message = f"moved {moved} objects of s3://{bucket}/{recipe['prefix']} back"
        if skipped:
            message += f"; {skipped} already back or gone"
        return message


def build(scope: AwsScope, rule: Rule) -> KindHandlers:
    return KindHandlers(
        scanner=S3CheckpointScanner(scope, rule),
        probe=S3CheckpointProbe(),
        stopper=S3CheckpointStopper(scope, rule),
    )
