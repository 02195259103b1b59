"""Stop notices still owed to owners: what the state store keeps until one gets through.

A stop notice carries the restore command; losing it after one failed delivery would leave an
owner with a stopped resource and no word of how to undo it. The pipeline keeps the undelivered
ones in the state store (`PendingNotice`) and adds them to the owner's digest on every later run
until a delivery succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from janitor.model import (
    Action,
    Cloud,
    Confidence,
    Decision,
    Finding,
    Resource,
    ResourceRef,
    Status,
    StopOutcome,
    Verdict,
)
from janitor.state.base import PendingNotice

STOP_STAGE = "stop"


def stop_notice(finding: Finding, *, stopped_at: datetime, attempts: int) -> PendingNotice:
    """The notice of a stop, as the store keeps it (everything its message shows)."""
    r = finding.resource
    ref = r.ref
    payload: dict[str, Any] = {
        "cloud": ref.cloud.value,
        "kind": ref.kind,
        "scope": ref.scope,
        "region": ref.region,
        "id": ref.id,
        "name": r.name,
        "state": r.state,
        "created_at": r.created_at.astimezone(UTC).isoformat(),
        "instance_type": r.instance_type,
        "instance_count": r.instance_count,
        "idle_days": finding.decision.idle_days,
        "monthly_cost_usd": finding.monthly_cost_usd,
        "evidence": finding.verdict.evidence,
        "confidence": finding.verdict.confidence.value,
        "outcome_message": finding.outcome_message,
    }
    return PendingNotice(
        key=ref.key,
        stage=STOP_STAGE,
        owner=finding.owner,
        created_at=stopped_at,
        attempts=attempts,
        payload=payload,
    )


def notice_finding(notice: PendingNotice) -> Finding:
    """The finding a kept stop notice stands for, as a digest item (stage: stopped)."""
    p: Mapping[str, Any] = notice.payload
    ref = ResourceRef(Cloud(p["cloud"]), p["kind"], p["scope"], p["region"], p["id"])
    resource = Resource(
        ref=ref,
        name=str(p["name"]),
        state=str(p.get("state") or ""),
        created_at=datetime.fromisoformat(p["created_at"]),
        instance_type=p.get("instance_type"),
        instance_count=int(p.get("instance_count") or 1),
    )
    when = notice.created_at.astimezone(UTC)
    evidence = f"stopped on {when:%Y-%m-%d %H:%M} UTC; {p.get('evidence') or ''}".rstrip("; ")
    verdict = Verdict(ref, Status.IDLE, Confidence(p.get("confidence", "low")), evidence)
    idle_days = p.get("idle_days")
    decision = Decision(
        ref,
        Action.STOP,
        Status.IDLE,
        f"stop notice not yet delivered (stopped {when:%Y-%m-%d %H:%M} UTC)",
        idle_days=None if idle_days is None else float(idle_days),
    )
    cost = p.get("monthly_cost_usd")
    return Finding(
        resource=resource,
        verdict=verdict,
        decision=decision,
        owner=notice.owner,
        monthly_cost_usd=None if cost is None else float(cost),
        outcome=StopOutcome.STOPPED,
        outcome_message=str(p.get("outcome_message") or ""),
    )
