"""The StateStore contract, run against every backend.

A backend is a `Backend` row: how to open a store on some storage (`tmp_path` names the
storage; opening twice on the same `tmp_path` gives two clients of the same storage, as two
processes would have), and how to try to change the audit log behind the store's back. A new
backend (DynamoDB) is one more row in `BACKENDS` and must pass every test here unchanged.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from janitor.model import AuditEvent, LifecycleState
from janitor.state import LockHeld, StateStore, default_state_url, open_store
from janitor.state.base import PendingNotice
from janitor.state.sqlite import SqliteStore

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
KIND = "aws.ec2-gpu"
ACCOUNT = "123456789012"


def key_of(resource_id: str, region: str = "us-east-1", kind: str = KIND) -> str:
    return f"{kind}|{ACCOUNT}|{region}|{resource_id}"


@dataclass(frozen=True)
class Backend:
    name: str
    open: Callable[[Path], StateStore]
    # Attempts to change or remove audit rows without the store's API; each must raise
    # `tamper_error`. Empty for a backend whose append-only guarantee lives elsewhere (IAM).
    tampering: Callable[[Path], Sequence[Callable[[], object]]]
    tamper_error: type[BaseException]


def _sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "janitor.db"


def _sqlite_tampering(tmp_path: Path) -> list[Callable[[], object]]:
    def run(sql: str) -> Callable[[], object]:
        def attempt() -> object:
            conn = sqlite3.connect(_sqlite_file(tmp_path), isolation_level=None)
            try:
                return conn.execute(sql).rowcount
            finally:
                conn.close()

        return attempt

    return [
        run("UPDATE audit SET event = 'forged'"),
        run("UPDATE audit SET detail = '{}' WHERE seq = 1"),
        run("DELETE FROM audit"),
        run("DELETE FROM audit WHERE seq = 1"),
    ]


BACKENDS = [
    Backend(
        "sqlite-file",
        lambda tmp_path: SqliteStore(_sqlite_file(tmp_path)),
        _sqlite_tampering,
        sqlite3.DatabaseError,
    ),
    Backend(
        "sqlite-url",
        lambda tmp_path: open_store("sqlite:///" + str(_sqlite_file(tmp_path))),
        _sqlite_tampering,
        sqlite3.DatabaseError,
    ),
]


@pytest.fixture(params=BACKENDS, ids=[b.name for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    return chosen


@pytest.fixture
def opener(backend: Backend, tmp_path: Path) -> Iterator[Callable[[], StateStore]]:
    """Opens clients of one storage; every client opened is closed after the test."""
    opened: list[StateStore] = []

    def open_one() -> StateStore:
        store = backend.open(tmp_path)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], StateStore]) -> StateStore:
    return opener()


def full_state(key: str) -> LifecycleState:
    """Every field set, none equal to another, with microseconds and a non-UTC offset."""
    plus_two = timezone(timedelta(hours=2))
    return LifecycleState(
        key=key,
        streak_start=T0,
        notified_at=T0 + timedelta(days=30, microseconds=123_456),
        warned_at=(T0 + timedelta(days=53, hours=1)).astimezone(plus_two),
        stop_due=T0 + timedelta(days=60, hours=1),
        stopped_at=T0 + timedelta(days=60, hours=2, seconds=7),
        owner="alice@example.com",
    )


def event(n: int, key: str, name: str, kind: str = "decision") -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(minutes=n),
        run_id=f"run-{n}",
        event=kind,
        key=key,
        name=name,
        detail={"n": n, "action": "notify", "nested": {"owners": ["alice", "bob"]}},
    )


# -- lifecycle state ---------------------------------------------------------------------------


def test_missing_keys_give_an_empty_mapping(store: StateStore) -> None:
    assert store.get_states([]) == {}
    assert store.get_states([key_of("i-missing"), key_of("i-also-missing")]) == {}


def test_put_then_get_preserves_every_field_tz_aware(store: StateStore) -> None:
    state = full_state(key_of("i-0abc"))
    store.put_state(state)

    got = store.get_states([state.key, key_of("i-other")])

    assert got == {state.key: state}
    stored = got[state.key]
    for moment in (
        stored.streak_start,
        stored.notified_at,
        stored.warned_at,
        stored.stop_due,
        stored.stopped_at,
    ):
        assert moment is not None
        assert moment.utcoffset() is not None  # aware, comparable with the pipeline's `now`
    assert stored.notified_at is not None
    assert stored.notified_at.microsecond == 123_456


def test_minimal_state_keeps_its_nones(store: StateStore) -> None:
    state = LifecycleState(key=key_of("i-min"), streak_start=T0)
    store.put_state(state)
    assert store.get_states([state.key]) == {state.key: state}


def test_put_overwrites(store: StateStore) -> None:
    key = key_of("i-0abc")
    store.put_state(LifecycleState(key=key, streak_start=T0, owner="alice"))
    later = LifecycleState(
        key=key,
        streak_start=T0 - timedelta(days=2),
        warned_at=T0 + timedelta(days=53),
        stop_due=T0 + timedelta(days=60),
        owner="bob",
    )
    store.put_state(later)
    assert store.get_states([key]) == {key: later}


def test_delete_removes_only_that_key(store: StateStore) -> None:
    gone, kept = key_of("i-gone"), key_of("i-kept")
    store.put_state(LifecycleState(key=gone, streak_start=T0))
    store.put_state(LifecycleState(key=kept, streak_start=T0))

    store.delete_state(gone)
    store.delete_state(key_of("i-never-existed"))  # deleting nothing is not an error

    assert set(store.get_states([gone, kept])) == {kept}


def test_get_states_of_1200_keys_spans_every_chunk(store: StateStore) -> None:
    keys = [key_of(f"i-{n:05d}") for n in range(1200)]
    stored = keys[::25]  # present in every chunk of 25 keys or more
    for n, key in enumerate(stored):
        store.put_state(LifecycleState(key=key, streak_start=T0 + timedelta(hours=n)))

    got = store.get_states(keys)

    assert set(got) == set(stored)
    assert got[keys[1175]].streak_start == T0 + timedelta(hours=1175 // 25)
    assert got[keys[0]].streak_start == T0


def test_get_states_accepts_any_iterable_and_duplicates(store: StateStore) -> None:
    key = key_of("i-dup")
    store.put_state(LifecycleState(key=key, streak_start=T0))
    assert set(store.get_states(k for k in [key, key, key_of("i-x")])) == {key}


# -- audit log ---------------------------------------------------------------------------------


def test_events_are_newest_first_and_round_trip(store: StateStore) -> None:
    first = event(1, key_of("i-1"), "box-1")
    store.append(first)
    store.append_many([event(2, key_of("i-2"), "box-2"), event(3, "", "", kind="run")])
    store.append(event(4, key_of("i-1"), "box-1", kind="action"))

    got = store.events()

    assert [e.run_id for e in got] == ["run-4", "run-3", "run-2", "run-1"]
    assert got[-1] == first  # every field, detail (nested JSON) included
    assert got[-1].at.utcoffset() is not None
    assert got[-1].dry_run is False


def test_events_limit_keeps_the_newest(store: StateStore) -> None:
    store.append_many(event(n, key_of(f"i-{n}"), f"box-{n}") for n in range(10))
    assert [e.run_id for e in store.events(limit=3)] == ["run-9", "run-8", "run-7"]
    assert len(store.events(limit=200)) == 10


def test_append_many_of_nothing_is_harmless(store: StateStore) -> None:
    store.append_many([])
    assert store.events() == []


def test_dry_run_flag_round_trips(store: StateStore) -> None:
    base = event(1, key_of("i-1"), "box-1")
    store.append(AuditEvent(base.at, base.run_id, base.event, base.key, base.name, {}, True))
    assert store.events()[0].dry_run is True


@pytest.fixture
def fleet_log(store: StateStore) -> StateStore:
    store.append_many(
        [
            event(1, key_of("i-0aaa"), "train-box"),
            event(2, key_of("i-0bbb"), "train-box-2"),
            event(3, key_of("i-0aaa", region="eu-west-1"), "eu-box"),
            event(4, key_of("ep-1", kind="aws.sagemaker-endpoint"), "serve"),
            event(5, "", "", kind="run"),
            event(6, key_of("i-0aaa"), "train-box", kind="action"),
        ]
    )
    return store


def test_match_by_name_is_exact(fleet_log: StateStore) -> None:
    got = fleet_log.events(match="train-box")
    assert [e.run_id for e in got] == ["run-6", "run-1"]  # not train-box-2


def test_match_by_resource_id(fleet_log: StateStore) -> None:
    got = fleet_log.events(match="i-0aaa")
    assert [e.run_id for e in got] == ["run-6", "run-3", "run-1"]  # both regions


def test_match_by_substring_of_the_key(fleet_log: StateStore) -> None:
    assert [e.run_id for e in fleet_log.events(match="eu-west-1")] == ["run-3"]
    assert [e.run_id for e in fleet_log.events(match="aws.sagemaker-endpoint|")] == ["run-4"]
    assert [e.name for e in fleet_log.events(match=key_of("i-0bbb"))] == ["train-box-2"]


def test_match_is_literal_and_limited(fleet_log: StateStore) -> None:
    assert fleet_log.events(match="i-0%") == []  # no SQL wildcards leak through
    assert fleet_log.events(match="I-0AAA") == []  # ids are case-sensitive
    assert fleet_log.events(match="nothing-like-this") == []
    assert [e.run_id for e in fleet_log.events(match="i-0aaa", limit=2)] == ["run-6", "run-3"]


def test_audit_log_is_append_only_below_the_api(
    backend: Backend, store: StateStore, tmp_path: Path
) -> None:
    store.append_many([event(1, key_of("i-1"), "box-1"), event(2, key_of("i-2"), "box-2")])
    before = store.events()

    attempts = backend.tampering(tmp_path)
    for attempt in attempts:
        with pytest.raises(backend.tamper_error, match="append-only"):
            attempt()

    assert store.events() == before
    store.append(event(3, key_of("i-3"), "box-3"))  # appending still works
    assert len(store.events()) == 3


# -- run lock ----------------------------------------------------------------------------------


def test_second_lock_while_held_names_the_holder(store: StateStore) -> None:
    with store.lock("run aaa pid 1", timedelta(hours=2)):
        with pytest.raises(LockHeld) as raised, store.lock("run bbb pid 2", timedelta(hours=2)):
            pytest.fail("two holders at once")
        assert raised.value.holder == "run aaa pid 1"
        assert "run aaa pid 1" in str(raised.value)
        assert raised.value.since.utcoffset() is not None


def test_lock_is_free_after_the_block(store: StateStore) -> None:
    entered: list[str] = []
    with store.lock("first", timedelta(hours=2)):
        entered.append("first")
    with store.lock("second", timedelta(hours=2)):
        entered.append("second")
    assert entered == ["first", "second"]


def test_a_released_lock_is_free_to_a_clock_behind_the_releasing_one(store: StateStore) -> None:
    """Another host's clock may run behind, and a released lock must not wait for it."""
    import time_machine

    later = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(later, tick=False), store.lock("first", timedelta(hours=2)):
        pass
    earlier = time_machine.travel(later - timedelta(minutes=5), tick=False)
    with earlier, store.lock("second", timedelta(hours=2)) as token:
        assert token >= 2


def test_lock_is_released_when_the_block_raises(store: StateStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.lock("crashing run", timedelta(hours=2)):
        raise RuntimeError("boom")
    with store.lock("next run", timedelta(hours=2)):
        pass


def test_expired_lock_can_be_taken_over(store: StateStore) -> None:
    taken_over: list[str] = []
    # The first lock expired the moment it was taken (a crashed run's leftover).
    with (
        store.lock("crashed run", timedelta(seconds=-1)),
        store.lock("new run", timedelta(hours=2)),
    ):
        taken_over.append("new run")
        # The new holder's unexpired lock holds against a third run.
        with pytest.raises(LockHeld) as raised, store.lock("third", timedelta(hours=2)):
            pass
        assert raised.value.holder == "new run"
    assert taken_over == ["new run"]
    with store.lock("after both", timedelta(hours=2)):  # neither left the lock behind
        pass


def test_the_stale_holder_leaving_does_not_free_the_new_holders_lock(
    store: StateStore,
) -> None:
    stale = store.lock("stale", timedelta(seconds=-1))
    stale.__enter__()
    with store.lock("fresh", timedelta(hours=2)):
        stale.__exit__(None, None, None)  # the stale run finishes late
        with pytest.raises(LockHeld) as raised, store.lock("third", timedelta(hours=2)):
            pass
        assert raised.value.holder == "fresh"


def test_two_clients_of_one_storage_share_the_lock(opener: Callable[[], StateStore]) -> None:
    one, two = opener(), opener()
    with one.lock("process one", timedelta(hours=2)):
        with pytest.raises(LockHeld) as raised, two.lock("process two", timedelta(hours=2)):
            pass
        assert raised.value.holder == "process one"
    with (
        two.lock("process two", timedelta(hours=2)),
        pytest.raises(LockHeld),
        one.lock("process one", timedelta(hours=2)),
    ):
        pass


def test_two_clients_of_one_storage_share_state_and_audit(
    opener: Callable[[], StateStore],
) -> None:
    one, two = opener(), opener()
    state = full_state(key_of("i-shared"))
    one.put_state(state)
    one.append(event(1, state.key, "shared"))
    assert two.get_states([state.key]) == {state.key: state}
    assert [e.name for e in two.events()] == ["shared"]


# -- notices still owed to owners ---------------------------------------------------------------


def notice(resource_id: str, at: datetime, **changes: Any) -> PendingNotice:
    base = PendingNotice(
        key=key_of(resource_id),
        stage="stop",
        owner="bob@example.com",
        created_at=at,
        attempts=1,
        payload={"name": resource_id, "monthly_cost_usd": 1234.5, "nested": {"a": [1, "two"]}},
    )
    return replace(base, **changes)


def test_no_pending_notices_at_first(store: StateStore) -> None:
    assert store.pending_notices() == []


def test_pending_notices_round_trip_oldest_first_tz_aware(store: StateStore) -> None:
    later = notice("i-late", T0 + timedelta(days=2), owner=None, attempts=0)
    plus_two = timezone(timedelta(hours=2))
    early = notice("i-early", T0.astimezone(plus_two))
    store.put_notices([later, early])
    got = store.pending_notices()
    assert [n.key for n in got] == [early.key, later.key]
    assert got[0] == replace(early, created_at=T0)
    assert got[0].created_at.utcoffset() == timedelta(0)
    assert got[1] == later


def test_a_pending_notice_is_replaced_by_key(store: StateStore) -> None:
    store.put_notices([notice("i-1", T0)])
    store.put_notices([notice("i-1", T0, attempts=3, payload={"name": "renamed"})])
    (only,) = store.pending_notices()
    assert (only.attempts, only.payload) == (3, {"name": "renamed"})


def test_delete_notices_removes_only_those_keys(store: StateStore) -> None:
    store.put_notices([notice(f"i-{n}", T0 + timedelta(minutes=n)) for n in range(3)])
    store.delete_notices([key_of("i-0"), key_of("i-2"), key_of("i-unknown")])
    assert [n.key for n in store.pending_notices()] == [key_of("i-1")]
    store.delete_notices([])
    store.put_notices([])
    assert len(store.pending_notices()) == 1


def test_pending_notices_of_1200_keys_delete_across_chunks(store: StateStore) -> None:
    keys = [f"i-{n:05d}" for n in range(1200)]
    store.put_notices(notice(k, T0) for k in keys)
    assert len(store.pending_notices()) == 1200
    store.delete_notices(key_of(k) for k in keys[:1100])
    assert [n.key for n in store.pending_notices()] == [key_of(k) for k in keys[1100:]]


def test_pending_notices_survive_reopening(opener: Callable[[], StateStore]) -> None:
    one = opener()
    one.put_notices([notice("i-kept", T0)])
    two = opener()
    assert [n.key for n in two.pending_notices()] == [key_of("i-kept")]


# -- opening a store by URL --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("dynamodb://janitor-state", "dynamodb"),
        ("postgresql://db/janitor", "postgresql"),
        ("file:///tmp/state.db", "file"),
    ],
)
def test_unknown_scheme_is_a_value_error_naming_it(url: str, scheme: str) -> None:
    with pytest.raises(ValueError, match=f"unsupported scheme '{scheme}'"):
        open_store(url)


def test_sqlite_url_opens_that_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "s.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(store, SqliteStore)
        store.put_state(LifecycleState(key=key_of("i-1"), streak_start=T0))
    finally:
        store.close()
    assert path.is_file()  # parent directories are created


def test_in_memory_url_is_a_working_store() -> None:
    store = open_store("sqlite:///:memory:")
    try:
        store.put_state(LifecycleState(key=key_of("i-1"), streak_start=T0))
        assert set(store.get_states([key_of("i-1")])) == {key_of("i-1")}
    finally:
        store.close()


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_DATA_HOME is honoured on Linux")
def test_default_state_url_is_in_the_users_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "janitor" / "state.db"

    assert default_state_url() == f"sqlite:///{expected}"
    for url in (None, ""):
        store = open_store(url)
        try:
            store.put_state(LifecycleState(key=key_of("i-1"), streak_start=T0))
        finally:
            store.close()
    assert expected.is_file()


# -- the stop index: finding a stop to undo, and intents left without an outcome ----------------


def stop_event(n: int, key: str, name: str, kind: str, **detail: object) -> AuditEvent:
    return AuditEvent(T0 + timedelta(minutes=n), f"run-{n}", kind, key, name, dict(detail))


def test_stop_events_find_exact_key_name_or_id_only(store: StateStore) -> None:
    key, other = key_of("i-1"), key_of("i-10")
    store.append_many(
        [
            event(1, key, "box-1"),  # a decision: not part of the stop history
            stop_event(2, key, "box-1", "intent", restore={"instance_id": "i-1"}),
            stop_event(3, key, "box-1", "action", outcome="stopped"),
            stop_event(4, other, "box-10", "intent"),
            stop_event(5, other, "box-10", "action", outcome="stopped"),
            stop_event(6, key, "box-1", "restore", message="started"),
            stop_event(7, "", "", "run"),
        ]
    )

    for query in (key, "box-1", "i-1"):
        got = store.stop_events(query)
        assert [(e.run_id, e.event) for e in got] == [
            ("run-6", "restore"),
            ("run-3", "action"),
            ("run-2", "intent"),
        ], query
    assert store.stop_events("i-1")[-1].detail == {"restore": {"instance_id": "i-1"}}
    for not_exact in ("box", "i-", KIND, ACCOUNT, "us-east-1", "%", "box-1%"):
        assert store.stop_events(not_exact) == [], not_exact


def test_stop_events_find_a_resource_renamed_by_its_id(store: StateStore) -> None:
    key = key_of("i-renamed")
    store.append(stop_event(1, key, "old-name", "intent"))
    store.append(stop_event(2, key, "new-name", "action", outcome="stopped"))
    assert [e.name for e in store.stop_events("old-name")] == ["new-name", "old-name"]


def test_a_stop_200_days_old_behind_50_similar_names_is_found(store: StateStore) -> None:
    old_key = key_of("i-0old")
    store.append(stop_event(0, old_key, "train-box", "intent", restore={"id": "i-0old"}))
    store.append(stop_event(1, old_key, "train-box", "action", outcome="stopped"))
    later = T0 + timedelta(days=200)
    for n in range(50):
        name = f"train-box-{n}"
        key = key_of(f"i-{n:04d}")
        store.append_many(
            AuditEvent(later + timedelta(minutes=m), f"late-{n}-{m}", kind, key, name, {})
            for m, kind in enumerate(["decision"] * 200 + ["intent", "action"])
        )

    got = store.stop_events("train-box")

    assert [e.event for e in got] == ["action", "intent"]
    assert {e.key for e in got} == {old_key}
    assert got[-1].at == T0


def in_run(run: str, n: int, key: str, name: str, kind: str, **detail: object) -> AuditEvent:
    return AuditEvent(T0 + timedelta(minutes=n), run, kind, key, name, dict(detail))


def test_open_intents_are_those_without_an_outcome_of_their_run(store: StateStore) -> None:
    done, crashed, rec = key_of("i-done"), key_of("i-crashed"), key_of("i-rec")
    store.append_many(
        [
            in_run("a", 1, done, "done", "intent"),
            in_run("a", 2, done, "done", "action", outcome="stopped"),
            in_run("a", 3, crashed, "crashed", "intent", restore={"id": "i-crashed"}),
            in_run("a", 4, rec, "rec", "intent"),
            in_run("b", 5, rec, "rec", "reconciled", outcome="stopped", intent_run_id="a"),
            in_run("c", 6, done, "done", "intent"),  # a later stop of the same resource
            in_run("d", 7, crashed, "crashed", "action", outcome="already-stopped"),
        ]
    )

    got = store.open_intents()

    # The outcome of run d's own attempt on `crashed` does not settle run a's intent.
    assert [(e.run_id, e.key) for e in got] == [("a", crashed), ("c", done)]
    assert got[0].detail == {"restore": {"id": "i-crashed"}}


# -- the run lock as a lease with a fencing token -----------------------------------------------


def test_lock_tokens_grow_with_every_acquisition(opener: Callable[[], StateStore]) -> None:
    one, two = opener(), opener()
    tokens = []
    for client in (one, two, one):
        with client.lock("a run", timedelta(hours=2)) as token:
            tokens.append(token)
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 3


def test_renewal_keeps_the_lease_until_someone_else_takes_it(
    opener: Callable[[], StateStore],
) -> None:
    one, two = opener(), opener()
    with one.lock("slow run", timedelta(seconds=-1)) as token:
        # Expired but nobody took it: the holder may renew it, and then it holds again.
        assert one.renew_lock(token, timedelta(hours=2)) is True
        with pytest.raises(LockHeld), two.lock("next run", timedelta(hours=2)):
            pass
        assert one.renew_lock(token, timedelta(seconds=-1)) is True  # expire it again
        with two.lock("next run", timedelta(hours=2)) as newer:
            assert newer > token
            assert one.renew_lock(token, timedelta(hours=2)) is False  # taken over: lost
            with pytest.raises(LockHeld) as raised, one.lock("third", timedelta(hours=2)):
                pass
            assert raised.value.holder == "next run"


# -- SQLite: a database from an older janitor ----------------------------------------------------


def test_an_older_sqlite_database_is_migrated_and_its_stops_indexed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        """
        CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
            run_id TEXT NOT NULL, event TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            dry_run INTEGER NOT NULL, detail TEXT NOT NULL);
        CREATE TABLE run_lock (name TEXT PRIMARY KEY, holder TEXT NOT NULL,
            acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL);
        """
    )
    key = key_of("i-0abc")
    conn.executemany(
        "INSERT INTO audit (at, run_id, event, key, name, dry_run, detail)"
        " VALUES (?, ?, ?, ?, ?, 0, ?)",
        [
            (T0.isoformat(), "old", "decision", key, "old-box", "{}"),
            (T0.isoformat(), "old", "action", key, "old-box", '{"outcome": "stopped"}'),
        ],
    )
    conn.close()

    for _ in range(2):  # opening again does not index twice
        store = SqliteStore(path)
        try:
            (found,) = store.stop_events("i-0abc")
            assert found.detail == {"outcome": "stopped"}
            with store.lock("new run", timedelta(hours=2)) as token:
                assert store.renew_lock(token, timedelta(hours=2))
        finally:
            store.close()
