"""The state store contract: lifecycle state per resource, an append-only audit log, a run lock.

Every backend (SQLite now, DynamoDB later) must pass tests/unit/test_state_contract.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from janitor.model import AuditEvent, LifecycleState


class LockHeld(Exception):
    """Another run holds the lock: this run must not act."""

    def __init__(self, holder: str, since: datetime) -> None:
        super().__init__(
            f"another janitor run ({holder}) holds the lock since {since:%Y-%m-%d %H:%M:%S} UTC"
        )
        self.holder = holder
        self.since = since


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
