"""SQLite state store: embedded, the default. Append-only audit enforced by triggers."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from janitor.model import AuditEvent, LifecycleState
from janitor.state.base import (
    OUTCOME_EVENTS,
    STOP_EVENTS,
    LockHeld,
    PendingNotice,
    intent_run,
    iter_chunks,
    matches,
    resource_id,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lifecycle (
    key TEXT PRIMARY KEY,
    streak_start TEXT NOT NULL,
    notified_at TEXT,
    warned_at TEXT,
    stop_due TEXT,
    stopped_at TEXT,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_key ON audit(key);
CREATE INDEX IF NOT EXISTS audit_name ON audit(name);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS pending_notice (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    owner TEXT,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_lock (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    token INTEGER NOT NULL DEFAULT 0
);
"""

# The index of stop histories: one row per audit event in STOP_EVENTS, by key, name and id, so
# `restore` finds a stop of any age without reading the log. Filled in the same transaction as
# the audit rows; a database from before it existed is backfilled once, when first opened.
_STOPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS stop_index (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT NOT NULL  -- the run of the intent an event belongs to
);
CREATE INDEX IF NOT EXISTS stop_index_key ON stop_index(key, seq);
CREATE INDEX IF NOT EXISTS stop_index_name ON stop_index(name);
CREATE INDEX IF NOT EXISTS stop_index_id ON stop_index(resource_id);
CREATE INDEX IF NOT EXISTS stop_index_event ON stop_index(event);
"""
_STOP_EVENT_MARKS = ",".join("?" * len(STOP_EVENTS))


_RELEASED = datetime(1970, 1, 1, tzinfo=UTC)  # a released lock's expiry


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _must_dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _event(row: tuple[Any, ...]) -> AuditEvent:
    return AuditEvent(
        at=_must_dt(row[0]),
        run_id=row[1],
        event=row[2],
        key=row[3],
        name=row[4],
        dry_run=bool(row[5]),
        detail=json.loads(row[6]),
    )


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection shared across the run's threads, serialised by a lock.
        self._conn = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._mutex = threading.Lock()
        with self._mutex:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Bring a database written by an older janitor up to this schema."""
        conn = self._conn
        columns = {row[1] for row in conn.execute("PRAGMA table_info(run_lock)")}
        if "token" not in columns:
            conn.execute("ALTER TABLE run_lock ADD COLUMN token INTEGER NOT NULL DEFAULT 0")
        had_index = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stop_index'"
        ).fetchone()
        conn.executescript(_STOPS_SCHEMA)
        if had_index:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT seq, key, name, event, run_id, detail FROM audit"
                f" WHERE key != '' AND event IN ({_STOP_EVENT_MARKS})",
                STOP_EVENTS,
            ).fetchall()
            conn.executemany(
                "INSERT OR IGNORE INTO stop_index VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (seq, key, name, resource_id(key), event, intent_run(run, json.loads(detail)))
                    for seq, key, name, event, run, detail in rows
                ],
            )
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def get_states(self, keys: Iterable[str]) -> dict[str, LifecycleState]:
        found: dict[str, LifecycleState] = {}
        with self._mutex:
            for chunk in iter_chunks(keys, 500):
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT key, streak_start, notified_at, warned_at, stop_due, stopped_at, owner"
                    f" FROM lifecycle WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for row in rows:
                    found[row[0]] = LifecycleState(
                        key=row[0],
                        streak_start=_must_dt(row[1]),
                        notified_at=_dt(row[2]),
                        warned_at=_dt(row[3]),
                        stop_due=_dt(row[4]),
                        stopped_at=_dt(row[5]),
                        owner=row[6],
                    )
        return found

    def put_state(self, state: LifecycleState) -> None:
        with self._mutex:
            self._conn.execute(
                "INSERT OR REPLACE INTO lifecycle VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    state.key,
                    _ts(state.streak_start),
                    _ts(state.notified_at),
                    _ts(state.warned_at),
                    _ts(state.stop_due),
                    _ts(state.stopped_at),
                    state.owner,
                ),
            )

    def delete_state(self, key: str) -> None:
        with self._mutex:
            self._conn.execute("DELETE FROM lifecycle WHERE key = ?", (key,))

    def append(self, event: AuditEvent) -> None:
        self.append_many([event])

    def append_many(self, events: Iterable[AuditEvent]) -> None:
        batch = list(events)
        rows = [
            (
                _ts(e.at),
                e.run_id,
                e.event,
                e.key,
                e.name,
                int(e.dry_run),
                json.dumps(dict(e.detail), default=str, sort_keys=True),
            )
            for e in batch
        ]
        with self._mutex:
            self._conn.execute("BEGIN")
            try:
                for e, row in zip(batch, rows, strict=True):
                    cursor = self._conn.execute(
                        "INSERT INTO audit (at, run_id, event, key, name, dry_run, detail)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    if e.key and e.event in STOP_EVENTS:
                        self._conn.execute(
                            "INSERT INTO stop_index VALUES (?, ?, ?, ?, ?, ?)",
                            (
                                cursor.lastrowid,
                                e.key,
                                e.name,
                                resource_id(e.key),
                                e.event,
                                intent_run(e.run_id, e.detail),
                            ),
                        )
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def stop_events(self, query: str, *, limit: int = 1000) -> list[AuditEvent]:
        with self._mutex:
            rows = self._conn.execute(
                "SELECT a.at, a.run_id, a.event, a.key, a.name, a.dry_run, a.detail"
                " FROM audit a JOIN stop_index s ON s.seq = a.seq"
                " WHERE s.key IN (SELECT key FROM stop_index"
                "   WHERE key = ? OR name = ? OR resource_id = ?)"
                " ORDER BY a.seq DESC LIMIT ?",
                (query, query, query, limit),
            ).fetchall()
        return [_event(row) for row in rows]

    def open_intents(self) -> list[AuditEvent]:
        outcome_marks = ",".join("?" * len(OUTCOME_EVENTS))
        with self._mutex:
            rows = self._conn.execute(
                "SELECT a.at, a.run_id, a.event, a.key, a.name, a.dry_run, a.detail"
                " FROM stop_index i JOIN audit a ON a.seq = i.seq"
                " WHERE i.event = 'intent' AND NOT EXISTS ("
                "   SELECT 1 FROM stop_index o WHERE o.key = i.key AND o.run_id = i.run_id"
                f"   AND o.seq > i.seq AND o.event IN ({outcome_marks}))"
                " ORDER BY i.seq",
                OUTCOME_EVENTS,
            ).fetchall()
        return [_event(row) for row in rows]

    def events(self, *, match: str | None = None, limit: int = 200) -> list[AuditEvent]:
        query = "SELECT at, run_id, event, key, name, dry_run, detail FROM audit"
        params: list[Any] = []
        if match:
            query += " WHERE name = ? OR key LIKE ?"
            params += [match, f"%{match}%"]
        query += " ORDER BY seq DESC"
        with self._mutex:
            rows = self._conn.execute(query, params).fetchall()
        out: list[AuditEvent] = []
        for row in rows:
            event = _event(row)
            if match is None or matches(event, match):
                out.append(event)
            if len(out) >= limit:
                break
        return out

    def put_notices(self, notices: Iterable[PendingNotice]) -> None:
        rows = [
            (
                n.key,
                n.stage,
                n.owner,
                _ts(n.created_at),
                n.attempts,
                json.dumps(dict(n.payload), default=str, sort_keys=True),
            )
            for n in notices
        ]
        with self._mutex:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO pending_notice VALUES (?, ?, ?, ?, ?, ?)", rows
                )
            except sqlite3.Error:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def pending_notices(self) -> list[PendingNotice]:
        with self._mutex:
            rows = self._conn.execute(
                "SELECT key, stage, owner, created_at, attempts, payload FROM pending_notice"
                " ORDER BY created_at, key"
            ).fetchall()
        return [
            PendingNotice(
                key=row[0],
                stage=row[1],
                owner=row[2],
                created_at=_must_dt(row[3]),
                attempts=row[4],
                payload=json.loads(row[5]),
            )
            for row in rows
        ]

    def delete_notices(self, keys: Iterable[str]) -> None:
        with self._mutex:
            for chunk in iter_chunks(keys, 500):
                marks = ",".join("?" * len(chunk))
                self._conn.execute(f"DELETE FROM pending_notice WHERE key IN ({marks})", chunk)

    @contextmanager
    def lock(self, holder: str, ttl: timedelta) -> Iterator[int]:
        now = datetime.now(UTC)
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            row = self._conn.execute(
                "SELECT holder, acquired_at, expires_at, token FROM run_lock WHERE name = 'run'"
            ).fetchone()
            if row is not None and _must_dt(row[2]) > now:
                self._conn.execute("ROLLBACK")
                raise LockHeld(row[0], _must_dt(row[1]))
            # The row stays when released (expired), so tokens only ever grow.
            token = (row[3] if row is not None else 0) + 1
            self._conn.execute(
                "INSERT OR REPLACE INTO run_lock VALUES ('run', ?, ?, ?, ?)",
                (holder, _ts(now), _ts(now + ttl), token),
            )
            self._conn.execute("COMMIT")
        try:
            yield token
        finally:
            with self._mutex:
                # Expired for any clock: a next run must not wait on clock skew (another host's,
                # or a process clock that was moved back).
                self._conn.execute(
                    "UPDATE run_lock SET expires_at = ? WHERE name = 'run' AND token = ?",
                    (_ts(_RELEASED), token),
                )

    def renew_lock(self, token: int, ttl: timedelta) -> bool:
        expires = _ts(datetime.now(UTC) + ttl)
        with self._mutex:
            cursor = self._conn.execute(
                "UPDATE run_lock SET expires_at = ? WHERE name = 'run' AND token = ?",
                (expires, token),
            )
        return cursor.rowcount == 1

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
