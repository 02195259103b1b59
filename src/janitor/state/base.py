"""The state store contract: lifecycle state per resource, an append-only audit log, a run lock,
and the notices still owed to owners (a stop notice that could not be delivered yet).

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

    def lock(self, holder: str, ttl: timedelta) -> AbstractContextManager[None]:
        """Hold the run lock for the block; raises LockHeld if another unexpired run has it."""
        ...

    def close(self) -> None: ...


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
