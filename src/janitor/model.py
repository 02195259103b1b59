"""Frozen records every stage of the pipeline shares.

Scanners normalise SDK answers into these once, at the edge; nothing past a scanner sees an SDK
object or a raw dict. All datetimes are timezone-aware (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class Cloud(StrEnum):
    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


class Status(StrEnum):
    """What the usage evidence says about a resource (plus `exempt`, decided from tags)."""

    ACTIVE = "active"
    IDLE = "idle"
    UNKNOWN = "unknown"
    EXEMPT = "exempt"


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Action(StrEnum):
    NONE = "none"
    NOTIFY = "notify"
    WARN = "warn"
    STOP = "stop"
    SKIP = "skip"


class StopOutcome(StrEnum):
    """The closed set of things a stopper can report."""

    STOPPED = "stopped"
    ALREADY_STOPPED = "already-stopped"
    NOT_FOUND = "not-found"
    REFUSED_STATE = "refused-state"
    WOULD_STOP = "would-stop"
    STILL_ACTIVE = "still-active"  # the re-check just before the stop did not confirm idleness
    FAILED = "failed"


def require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC (SDKs answer in local or offset time)."""
    return require_aware(value, "datetime").astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """Identity of a resource: enough to find it again in the cloud and in the state store."""

    cloud: Cloud
    kind: str  # e.g. "aws.sagemaker-endpoint"
    scope: str  # account id, project id or subscription id
    region: str
    id: str  # the cloud's id (ARN, instance id, ...)

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.scope}|{self.region}|{self.id}"


@dataclass(frozen=True, slots=True)
class Resource:
    ref: ResourceRef
    name: str
    state: str  # the cloud's own state word: InService, running, ...
    created_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    last_started_at: datetime | None = None
    instance_type: str | None = None
    instance_count: int = 1
    # Kind-specific, already-normalised facts (variant names, spot lifecycle, root device type...).
    details: Mapping[str, Any] = field(default_factory=dict)
    # Why this resource must never be stopped (spot, instance-store root...): it is still
    # reported and its owner notified, but it is never warned of a stop that would not happen.
    stop_refusal: str | None = None
    # Cloud-neutral advice for the owner: the setting that would have prevented the waste
    # (e.g. a Workbench instance with idle shutdown off). Shown as `advice` in the report.
    advice: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")
        if self.last_started_at is not None:
            require_aware(self.last_started_at, "last_started_at")

    @property
    def streak_floor(self) -> datetime:
        """The earliest an idle streak can start: the last start, else creation."""
        return self.last_started_at or self.created_at


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the usage probe concluded. `unknown` is never idle."""

    ref: ResourceRef
    status: Status  # ACTIVE, IDLE or UNKNOWN only
    confidence: Confidence
    evidence: str
    idle_since: datetime | None = None  # set when IDLE
    last_activity: datetime | None = None  # newest observed activity, if any

    @classmethod
    def idle(
        cls,
        ref: ResourceRef,
        since: datetime,
        evidence: str,
        *,
        confidence: Confidence = Confidence.HIGH,
        last_activity: datetime | None = None,
    ) -> Verdict:
        require_aware(since, "idle_since")
        return cls(ref, Status.IDLE, confidence, evidence, since, last_activity)

    @classmethod
    def active(
        cls,
        ref: ResourceRef,
        evidence: str,
        *,
        last_activity: datetime | None = None,
        confidence: Confidence = Confidence.HIGH,
    ) -> Verdict:
        return cls(ref, Status.ACTIVE, confidence, evidence, None, last_activity)

    @classmethod
    def unknown(cls, ref: ResourceRef, evidence: str) -> Verdict:
        return cls(ref, Status.UNKNOWN, Confidence.LOW, evidence)


@dataclass(frozen=True, slots=True)
class LifecycleState:
    """What janitor remembers about one resource's current idle streak."""

    key: str
    streak_start: datetime
    notified_at: datetime | None = None  # notice delivered
    warned_at: datetime | None = None  # warning delivered
    stop_due: datetime | None = None  # the date the delivered warning announced
    stopped_at: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    ref: ResourceRef
    action: Action
    status: Status
    reason: str
    idle_since: datetime | None = None
    idle_days: float | None = None
    stop_due: datetime | None = None
    streak_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class StopResult:
    outcome: StopOutcome
    message: str = ""
    # How to undo the stop: a JSON-serialisable recipe the kind's stopper can `restore`.
    restore: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StopPlan:
    """What a stopper found right before a stop, read-only: the resource as it is now (state
    and tags re-read from the cloud) and how to undo the stop. The recipe is committed to the
    audit log before `Stopper.act` makes the mutating call."""

    resource: Resource
    recipe: Mapping[str, Any] | None = None
    # Set when the stop must not go ahead (gone, already stopped, wrong state, spot...).
    refusal: StopResult | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    run_id: str
    event: str  # decision | delivery | action | restore | error | run
    key: str  # resource key, or "" for run-level events
    name: str
    detail: Mapping[str, Any]
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Finding:
    """One resource's row in the report: everything the user sees about it."""

    resource: Resource
    verdict: Verdict
    decision: Decision
    owner: str | None
    monthly_cost_usd: float | None
    outcome: StopOutcome | None = None
    outcome_message: str = ""

    @property
    def status(self) -> Status:
        return self.decision.status


@dataclass(frozen=True, slots=True)
class ScopeError:
    cloud: Cloud
    scope: str
    region: str
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Window:
    """The lookback window a probe reads evidence from."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, now: datetime, length: timedelta) -> Window:
        require_aware(now, "now")
        return cls(now - length, now)
