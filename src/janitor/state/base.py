"""The state store contract: lifecycle state per resource, an append-only audit log, a run lock,
and the notices still owed to owners (a stop notice that could not be delivered yet).

The run lock is a lease with a fencing token: `lock` yields a token that grows with every
acquisition; the holder renews the lease with that token while it runs, and a renewal that
finds another token in place means the lease was lost.

Every backend (SQLite now, DynamoDB later) must pass tests/unit/test_state_contract.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from janitor.model import AuditEvent, LifecycleState


class LockHeld(Exception):
    """Another run holds the lock: this run must not act."""

    def __init__(self, holder: str, since: datetime) -> None:
        super().__init__(
            f"another janitor run ({holder}) holds the lock since {since:%Y-%m-%d %H:%M:%S} UTC"
        )
        self.holder = holder
        self.since = since


class LockLost(Exception):
    """This run's lease on the lock expired and another run took it: this run must stop acting."""


# The audit events that make up a resource's stop history, found through an index by
# `stop_events` and `open_intents`: the intent (committed before the mutating call), its
# outcome (`action`, or `reconciled` by a later run), and the `restore` that undid it.
STOP_EVENTS = ("intent", "action", "reconciled", "restore")
OUTCOME_EVENTS = ("action", "reconciled")


def intent_run(run_id: str, detail: Mapping[str, Any]) -> str:
    """The run whose intent a stop event belongs to: its own, except for `reconciled`, which
    a later run writes for an earlier run's intent (`intent_run_id`)."""
    return str(detail.get("intent_run_id") or run_id)


@dataclass(frozen=True, slots=True)
class PendingNotice:
    """A message an owner is owed and has not received yet, kept until it gets through.

    One per resource key (a newer notice for the same resource replaces the older one).
    `payload` is JSON-serialisable: what the message needs to be written again (the pipeline
    decides its shape; the store keeps it as is).
    """

    key: str  # the resource key
    stage: str  # the digest stage, e.g. "stop"
    owner: str | None
    created_at: datetime  # when the event it tells of happened (the stop)
    attempts: int = 0  # deliveries tried and failed so far
    payload: Mapping[str, Any] = field(default_factory=dict)


class StateStore(Protocol):
    def get_states(self, keys: Iterable[str]) -> dict[str, LifecycleState]: ...

    def put_state(self, state: LifecycleState) -> None: ...

    def delete_state(self, key: str) -> None: ...

    def append(self, event: AuditEvent) -> None:
        """Append to the audit log. Events are never changed or removed."""
        ...

    def append_many(self, events: Iterable[AuditEvent]) -> None:
        """Append several events atomically (one transaction where the backend has them)."""
        ...

    def events(self, *, match: str | None = None, limit: int = 200) -> list[AuditEvent]:
        """Newest first. `match`: a resource name, an id, or a substring of the key."""
        ...

    def put_notices(self, notices: Iterable[PendingNotice]) -> None:
        """Keep these notices (insert, or replace the one with the same key)."""
        ...

    def pending_notices(self) -> list[PendingNotice]:
        """Every notice still owed, oldest first."""
        ...

    def delete_notices(self, keys: Iterable[str]) -> None:
        """Forget the notices of these resource keys (delivered); unknown keys are ignored."""
        ...

    def stop_events(self, query: str, *, limit: int = 1000) -> list[AuditEvent]:
        """Newest first: the STOP_EVENTS of every resource whose exact key, name or id (the
        key's last part) is `query`, found through an index however old they are."""
        ...

    def open_intents(self) -> list[AuditEvent]:
        """Oldest first: every `intent` with no outcome (OUTCOME_EVENTS) of the same key and
        `intent_run` after it; what a run that ended between the mutating call and its record
        left behind."""
        ...

    def lock(self, holder: str, ttl: timedelta) -> AbstractContextManager[int]:
        """Hold the run lock for the block; raises LockHeld if another unexpired run has it.

        Yields the lease's fencing token, larger than any token handed out before."""
        ...

    def renew_lock(self, token: int, ttl: timedelta) -> bool:
        """Extend the lease to `ttl` from now if `token` still holds it (even expired, as long as
        nobody took it over since); False when another holder has taken the lock."""
        ...

    def close(self) -> None: ...


def resource_id(key: str) -> str:
    """The cloud's id: the last part of a resource key (`kind|scope|region|id`)."""
    return key.rsplit("|", 1)[-1] if key else ""


def matches(event: AuditEvent, query: str) -> bool:
    resource_id = event.key.rsplit("|", 1)[-1] if event.key else ""
    return query in (event.name, resource_id) or (bool(event.key) and query in event.key)


def iter_chunks(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
