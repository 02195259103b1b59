"""Commit as you go: the run's writes to the state store, each fenced by the run's lease.

An applying run records each stop in three commits: an `intent` carrying the undo recipe
before the mutating call, the outcome (`action`) right after it, then the resource's lifecycle
state. A process that dies anywhere in between leaves at least the intent, which `restore`
accepts and the next run reconciles.

The run lock is a lease (`Lease`): renewed in a background thread while the run goes on, and
checked before each stop and each state write. A run that lost it raises `LockLost` and acts
no more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from janitor.model import AuditEvent, Finding, LifecycleState
from janitor.state.base import LockLost, StateStore

log = logging.getLogger(__name__)


class Lease:
    """The run lock held as a lease with a fencing token."""

    def __init__(
        self, store: StateStore, token: int, ttl: timedelta, *, renew_every: timedelta | None = None
    ) -> None:
        self._store = store
        self.token = token
        self._ttl = ttl
        # Renew well before expiry; a check within `margin` of expiry renews first.
        self._every = renew_every or ttl / 4
        self._margin = ttl / 8
        self._valid_until = datetime.now(UTC) + ttl
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._keep, name="janitor-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _keep(self) -> None:
        while not self._stop.wait(self._every.total_seconds()):
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: BLE001 - the next check renews or fails the run
                log.warning("could not renew the run lock", exc_info=True)

    def renew(self) -> bool:
        """Extend the lease; False (and lost for good) once another run holds the lock."""
        if self._lost:
            return False
        start = datetime.now(UTC)
        if self._store.renew_lock(self.token, self._ttl):
            self._valid_until = start + self._ttl
            return True
        self._lost = True
        return False

    def check(self) -> None:
        """Raise LockLost unless this run still holds the lock (renewing it when close to
        expiry, as after a long pause)."""
        if self._lost:
            raise LockLost("another run took over the run lock; this run stopped acting")
        if datetime.now(UTC) < self._valid_until - self._margin:
            return
        if not self.renew():
            raise LockLost(
                "the run lock expired and another run took it over; this run stopped acting"
            )


class Journal:
    """The run's writes: audit events and lifecycle state, committed one by one."""

    def __init__(
        self, store: StateStore, *, run_id: str, now: datetime, lease: Lease | None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.now = now
        self.lease = lease
        self.written: set[str] = set()  # keys whose lifecycle state this run committed

    def fence(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def event(self, event: str, key: str, name: str, **detail: Any) -> AuditEvent:
        return AuditEvent(self.now, self.run_id, event, key, name, detail)

    def intent(self, f: Finding, *, action: str, recipe: Mapping[str, Any] | None) -> None:
        """Before the mutating call: fenced, then committed."""
        self.fence()
        key, name = f.resource.ref.key, f.resource.name
        self.store.append(self.event("intent", key, name, action=action, restore=recipe))

    def outcome(self, f: Finding, **detail: Any) -> None:
        """Right after the mutating call. Not fenced: it records what already happened."""
        self.store.append(self.event("action", f.resource.ref.key, f.resource.name, **detail))

    def append(self, event: AuditEvent) -> None:
        self.store.append(event)

    def append_many(self, events: Iterable[AuditEvent]) -> None:
        self.store.append_many(events)

    def put_state(self, state: LifecycleState) -> None:
        self.fence()
        self.store.put_state(state)
        self.written.add(state.key)

    def delete_state(self, key: str) -> None:
        self.fence()
        self.store.delete_state(key)
        self.written.add(key)
