"""`aws.sagemaker-notebook`: SageMaker notebook instances that are InService.

Scan: ListNotebookInstances(StatusEquals=InService), 100 per page; tags in one bulk pass through
the Resource Groups Tagging API. `last_started_at` is LastModifiedTime when it is later than
CreationTime: SageMaker updates LastModifiedTime on every status change, so for an InService
notebook it is the end of its last start (or of an update, which also needs a stop and a start).

Usage: CloudTrail event history, one paged LookupEvents pass per event name for the whole region
(not one per notebook):

* `CreatePresignedNotebookInstanceUrl` is logged every time someone opens the notebook, from the
  console ("Open JupyterLab") or through the API. The newest one is the last activity; an open
  within the last day makes the notebook active.
* `StartNotebookInstance` marks a start: it raises the floor of the idle streak.

What this cannot see: work that needs nobody to open the notebook. A training loop or a long
`nohup` job started in a terminal keeps the instance busy for days without a single new open, and
an already-open browser tab (a JupyterLab session stays connected) makes no new event either.
That is why an idle verdict here has MEDIUM confidence, and why the lifecycle warns before it
stops. CloudTrail keeps 90 days of event history, so the window never reaches further back
(the kind's `max_lookback`). If CloudTrail cannot be read (denied, failing), every notebook of the
region is unknown: "no open seen" must not be mistaken for "not opened".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from janitor.clouds import registry
from janitor.clouds.aws.session import AwsScope, client_config, is_access_denied, one_line
from janitor.clouds.aws.tagging import by_lower_arn, tags_by_arn
from janitor.clouds.base import KindHandlers, RestoreFailed
from janitor.model import (
    Cloud,
    Confidence,
    Resource,
    ResourceRef,
    StopOutcome,
    StopPlan,
    StopResult,
    Verdict,
    Window,
    utc,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudtrail import CloudTrailClient
    from mypy_boto3_cloudtrail.type_defs import EventTypeDef
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient
    from mypy_boto3_sagemaker import SageMakerClient

    from janitor.policy import Rule

KIND = "aws.sagemaker-notebook"
OPEN_EVENT = "CreatePresignedNotebookInstanceUrl"
START_EVENT = "StartNotebookInstance"
TAG_RESOURCE_TYPE = "sagemaker:notebook-instance"
# An open this recent means somebody is using the notebook.
ACTIVE_WITHIN = timedelta(days=1)

_STOPPED_STATES = frozenset({"Stopped", "Stopping"})


def _when(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")


# --- scan ------------------------------------------------------------------------------------


class NotebookScanner:
    def __init__(self, scope: AwsScope) -> None:
        self._scope = scope
        self._sagemaker: SageMakerClient = scope.client("sagemaker")
        self._tagging: ResourceGroupsTaggingAPIClient = scope.client("resourcegroupstaggingapi")

    def scan(self) -> Iterator[Resource]:
        pages = self._sagemaker.get_paginator("list_notebook_instances").paginate(
            StatusEquals="InService", PaginationConfig={"PageSize": 100}
        )
        listed = [nb for page in pages for nb in page.get("NotebookInstances", [])]
        if not listed:
            return
        tags = by_lower_arn(tags_by_arn(self._tagging, [TAG_RESOURCE_TYPE]))
        for nb in listed:
            arn = nb["NotebookInstanceArn"]
            created = utc(nb["CreationTime"])
            modified = nb.get("LastModifiedTime")
            # A start (or any status change) updates LastModifiedTime; creation does not count.
            started = utc(modified) if modified is not None and modified > created else None
            yield Resource(
                ref=ResourceRef(Cloud.AWS, KIND, self._scope.account_id, self._scope.region, arn),
                name=nb["NotebookInstanceName"],
                state=nb.get("NotebookInstanceStatus", "unknown"),
                created_at=created,
                tags=tags.get(arn.lower(), {}),
                last_started_at=started,
                instance_type=nb.get("InstanceType"),
            )

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        # ListNotebookInstances already returned everything the pipeline needs.
        return list(resources)


# --- usage -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    at: datetime
    user: str | None


def _event_notebooks(event: EventTypeDef) -> set[str]:
    """Lower-cased notebook names an event is about (ARNs carry the name lower-cased)."""
    names: set[str] = set()
    for res in event.get("Resources", []):
        name = res.get("ResourceName")
        if name:
            names.add(name.rsplit("/", 1)[-1].lower())
    raw = event.get("CloudTrailEvent")
    if raw:
        try:
            detail = json.loads(raw)
        except ValueError:
            detail = None
        params = detail.get("requestParameters") if isinstance(detail, dict) else None
        name = params.get("notebookInstanceName") if isinstance(params, dict) else None
        if isinstance(name, str) and name:
            names.add(name.lower())
    return names


class NotebookProbe:
    def __init__(
        self, cloudtrail: CloudTrailClient, *, region: str, max_lookback: timedelta
    ) -> None:
        self._cloudtrail = cloudtrail
        self._region = region
        self._max_lookback = max_lookback

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        if not resources:
            return {}
        start = max(window.start, now - self._max_lookback)
        try:
            opens = self._newest(OPEN_EVENT, start, window.end)
            starts = self._newest(START_EVENT, start, window.end)
        except ClientError as exc:
            why = "denied" if is_access_denied(exc) else "failed"
            return self._all_unknown(resources, f"CloudTrail LookupEvents {why}", exc)
        except BotoCoreError as exc:
            return self._all_unknown(resources, "CloudTrail LookupEvents failed", exc)
        return {
            r.ref.key: self._verdict(
                r, opens.get(r.name.lower()), starts.get(r.name.lower()), start, now
            )
            for r in resources
        }

    def _all_unknown(
        self, resources: Sequence[Resource], why: str, exc: Exception
    ) -> dict[str, Verdict]:
        evidence = f"{why} in {self._region} ({one_line(exc)}): notebook opens cannot be seen"
        return {r.ref.key: Verdict.unknown(r.ref, evidence) for r in resources}

    def _newest(self, event_name: str, start: datetime, end: datetime) -> dict[str, _Event]:
        """The newest event of this name per notebook name (lower-cased), over one paged pass."""
        newest: dict[str, _Event] = {}
        pages = self._cloudtrail.get_paginator("lookup_events").paginate(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": event_name}],
            StartTime=start,
            EndTime=end,
            PaginationConfig={"PageSize": 50},
        )
        for page in pages:
            for event in page.get("Events", []):
                at_raw = event.get("EventTime")
                if at_raw is None:
                    continue
                found = _Event(utc(at_raw), event.get("Username"))
                for name in _event_notebooks(event):
                    if name not in newest or newest[name].at < found.at:
                        newest[name] = found
        return newest

    def _verdict(
        self,
        resource: Resource,
        last_open: _Event | None,
        last_start: _Event | None,
        start: datetime,
        now: datetime,
    ) -> Verdict:
        ref = resource.ref
        last_activity = max((e.at for e in (last_open, last_start) if e is not None), default=None)
        if last_open is not None and now - last_open.at <= ACTIVE_WITHIN:
            return Verdict.active(
                ref,
                f"opened {_when(last_open.at)}{_by(last_open)} (CloudTrail {OPEN_EVENT})",
                last_activity=last_open.at,
                confidence=Confidence.MEDIUM,
            )
        floor = max(resource.streak_floor, start)
        floor_why = "the start of the CloudTrail history searched"
        if resource.streak_floor >= start:
            floor_why = "its last start" if resource.last_started_at else "its creation"
        if last_start is not None and last_start.at > floor:
            floor, floor_why = last_start.at, f"its last start{_by(last_start)}"
        if last_open is not None and last_open.at >= floor:
            since = last_open.at
            evidence = f"last opened {_when(last_open.at)}{_by(last_open)}"
        else:
            since = floor
            evidence = f"not opened since {floor_why} on {_when(floor)}"
            if last_open is not None:
                evidence += f" (last opened {_when(last_open.at)}, before that)"
        evidence += (
            f" (CloudTrail {OPEN_EVENT} and {START_EVENT} since {_day(start)}; "
            "work that runs without anyone opening the notebook is not seen)"
        )
        return Verdict.idle(
            ref,
            min(since, now),
            evidence,
            confidence=Confidence.MEDIUM,
            last_activity=last_activity,
        )


def _by(event: _Event) -> str:
    return f" by {event.user}" if event.user else ""


# --- stop / restore --------------------------------------------------------------------------


def _not_found(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    code, message = err.get("Code", ""), err.get("Message", "")
    if code in {"ResourceNotFound", "ResourceNotFoundException"}:
        return True
    return code == "ValidationException" and (
        "RecordNotFound" in message or "does not exist" in message.lower()
    )


def _all_tags(sagemaker: SageMakerClient, arn: str) -> dict[str, str]:
    """The resource's tags as they are now (ListTags, every page)."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    while True:
        page = sagemaker.list_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        token = page.get("NextToken")
        if not token:
            return tags
        kwargs["NextToken"] = token


class NotebookStopper:
    def __init__(self, scope: AwsScope) -> None:
        self._scope = scope
        self._sagemaker: SageMakerClient = scope.client("sagemaker")

    def plan(self, resource: Resource) -> StopPlan:
        name = resource.name

        def refuse(outcome: StopOutcome, message: str, now: Resource = resource) -> StopPlan:
            return StopPlan(now, refusal=StopResult(outcome, message))

        try:
            notebook = self._sagemaker.describe_notebook_instance(NotebookInstanceName=name)
            tags = _all_tags(self._sagemaker, notebook["NotebookInstanceArn"])
        except ClientError as exc:
            if _not_found(exc):
                return refuse(StopOutcome.NOT_FOUND, f"notebook {name} no longer exists")
            return refuse(StopOutcome.FAILED, one_line(exc))
        except BotoCoreError as exc:
            return refuse(StopOutcome.FAILED, one_line(exc))
        status = notebook["NotebookInstanceStatus"]
        fresh = replace(resource, state=status, tags=tags)
        if status in _STOPPED_STATES:
            return refuse(StopOutcome.ALREADY_STOPPED, f"notebook {name} is {status}", fresh)
        if status != "InService":
            return refuse(
                StopOutcome.REFUSED_STATE, f"notebook {name} is {status}, not InService", fresh
            )
        recipe = {
            "kind": KIND,
            "account": self._scope.account_id,
            "region": self._scope.region,
            "notebook_name": name,
            "instance_type": resource.instance_type,
        }
        return StopPlan(fresh, recipe)

    def act(self, plan: StopPlan) -> StopResult:
        assert plan.recipe is not None
        recipe = plan.recipe
        name = str(recipe["notebook_name"])
        try:
            self._sagemaker.stop_notebook_instance(NotebookInstanceName=name)
        except ClientError as exc:
            if _not_found(exc):
                return StopResult(StopOutcome.NOT_FOUND, f"notebook {name} vanished")
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        except BotoCoreError as exc:
            return StopResult(StopOutcome.FAILED, one_line(exc), restore=recipe)
        return StopResult(
            StopOutcome.STOPPED,
            f"stopped notebook {name} ({recipe['instance_type']}); its ML storage volume is kept",
            restore=recipe,
        )

    def restore(self, recipe: Mapping[str, Any]) -> str:
        name = str(recipe["notebook_name"])
        region = str(recipe.get("region") or self._scope.region)
        sagemaker = self._sagemaker
        if region != self._scope.region:
            sagemaker = self._scope.session.client(
                "sagemaker", region_name=region, config=client_config()
            )
        label = f"notebook {name} in {region}"
        try:
            status = sagemaker.describe_notebook_instance(NotebookInstanceName=name)[
                "NotebookInstanceStatus"
            ]
        except ClientError as exc:
            if _not_found(exc):
                raise RestoreFailed(f"{label} no longer exists: nothing to restore") from None
            raise
        if status in {"InService", "Pending"}:
            return f"{label} is already {status}"
        if status == "Stopping":
            raise RestoreFailed(f"{label} is still stopping: run restore again once it is Stopped")
        sagemaker.start_notebook_instance(NotebookInstanceName=name)
        return f"started {label} (was {status}); it takes a few minutes to be InService"


def build(scope: AwsScope, rule: Rule) -> KindHandlers:
    spec = registry.get(KIND)
    return KindHandlers(
        scanner=NotebookScanner(scope),
        probe=NotebookProbe(
            scope.client("cloudtrail"), region=scope.region, max_lookback=spec.max_lookback
        ),
        stopper=NotebookStopper(scope),
    )
