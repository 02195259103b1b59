"""The pipeline under faults, with in-memory fakes of our own protocols (see test_pipeline.py).

Nothing lost: each stop's intent and recipe are committed before the mutating call, its outcome
and state right after; a run that ends anywhere leaves a record `restore` accepts, and the next
run reconciles it. One failure stays local: a failing `describe`, a resource that cannot be
decided, a bug, each fail their own scope or resource only. The run lock is a lease that is
renewed while the run goes on and checked before each stop and each state write; a signal
ends the run between two actions.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from tests.unit.test_pipeline import (
    ACCOUNT,
    KIND,
    REGION,
    FakeNotifier,
    FakeStopper,
    InMemoryScope,
    day,
    denied,
    events_of,
    finding,
    gpu_box,
    make_policy,
    run_at,
    state_of,
    stop_day_setup,
)

from janitor import interrupts, pipeline
from janitor.clouds.base import KindHandlers
from janitor.model import (
    AuditEvent,
    LifecycleState,
    Resource,
    StopOutcome,
    StopPlan,
    StopResult,
)
from janitor.notify.base import Delivery, Digest
from janitor.state import LockHeld, LockLost
from janitor.state.base import PendingNotice
from janitor.state.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_kill_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JANITOR_KILL_SWITCH", raising=False)


class CloudStopper(FakeStopper):
    """A stopper with a memory of what it stopped: `plan` refuses what is already stopped (as
    the real stoppers do), `restore` starts it again. `during_act` runs inside each `act`, after
    the stop took effect (a fault at the worst moment)."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self.store = store
        self.down: set[str] = set()
        self.seen_at_act: list[list[tuple[str, str, str]]] = []
        self.during_act: list[Any] = []

    def plan(self, resource: Resource) -> StopPlan:
        if resource.ref.id in self.down:
            refusal = StopResult(StopOutcome.ALREADY_STOPPED, f"{resource.ref.id} is stopped")
            return StopPlan(resource, refusal=refusal)
        return super().plan(resource)

    def act(self, plan: StopPlan) -> StopResult:
        # What the audit log held at the moment of the mutating call.
        self.seen_at_act.append(
            [(e.event, e.name, str(e.detail.get("outcome"))) for e in self.store.events()]
        )
        result = super().act(plan)
        self.down.add(plan.resource.ref.id)
        if self.during_act:
            self.during_act.pop(0)(plan)
        return result

    def restore(self, recipe: Mapping[str, Any]) -> str:
        self.down.discard(str(recipe["instance_id"]))
        return super().restore(recipe)


def scope_with(store: SqliteStore, *boxes: Resource) -> tuple[InMemoryScope, CloudStopper]:
    stopper = CloudStopper(store)
    return InMemoryScope(*boxes, stopper=stopper), stopper


def restore(store: SqliteStore, query: str, cloud: InMemoryScope, at: float = 61) -> str:
    handlers = KindHandlers(cloud.scanner, cloud.probe, cloud.stopper)
    policy = make_policy()
    return pipeline.restore(query, policy=policy, store=store, now=day(at), handlers=handlers)


# -- record before you mutate -------------------------------------------------------------------


def test_the_intent_and_recipe_are_committed_before_each_stop_and_the_outcome_right_after(
    store: SqliteStore,
) -> None:
    one, two = gpu_box("box-1"), gpu_box("box-2")
    stop_day_setup(store, one, two)
    cloud, stopper = scope_with(store, one, two)

    run_at(60, [cloud], store, FakeNotifier())

    first, second = stopper.seen_at_act
    assert first == [("intent", "box-1", "None")]  # nothing else written yet
    # box-2's stop began only after box-1's outcome and intent of box-2 were on record.
    assert second == [
        ("intent", "box-2", "None"),
        ("action", "box-1", "stopped"),
        ("intent", "box-1", "None"),
    ]
    (intent,) = [e for e in events_of(store, "intent") if e.name == "box-1"]
    assert intent.detail["restore"]["instance_id"] == one.ref.id
    assert intent.detail["restore"]["scope_info"]["region"] == REGION


def test_the_stopped_state_is_committed_before_the_next_stop(store: SqliteStore) -> None:
    one, two = gpu_box("box-1"), gpu_box("box-2")
    stop_day_setup(store, one, two)
    cloud, stopper = scope_with(store, one, two)
    states_at_second_act: list[LifecycleState | None] = []
    stopper.during_act = [lambda plan: None, lambda plan: states_at_second_act.append(
        state_of(store, one))]  # fmt: skip

    run_at(60, [cloud], store, FakeNotifier())

    (state,) = states_at_second_act
    assert state is not None
    assert state.stopped_at == day(60)


class ExplodingNotifier(FakeNotifier):
    def deliver(self, digest: Digest) -> Delivery:
        raise ValueError("Expecting property name enclosed in double quotes: line 1 column 2")


def test_a_notifier_exception_after_the_stop_loses_nothing(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)

    report = run_at(60, [cloud], store, ExplodingNotifier())

    # A notifier that raises did not deliver: told in the report, the run ends, exit 1.
    assert report.exit_code() == 1
    assert any("double quotes" in line for line in report.delivery_failures)
    (owed,) = store.pending_notices()  # the stop notice is sent on a later run
    assert owed.key == box.ref.key

    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "stopped"
    assert action.detail["restore"]["instance_id"] == box.ref.id
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at == day(60)
    assert store.open_intents() == []
    with store.lock("next run", timedelta(hours=2)):  # the crashed run released the lock
        pass
    assert restore(store, "train-box", cloud) == f"started {box.ref.id}"
    assert stopper.down == set()


class FailingStore:
    """The project's StateStore over SQLite, whose writes fail (disk full) once `armed` has
    let `allowed` more appends through."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.allowed: int | None = None

    def _write(self) -> None:
        if self.allowed is None:
            return
        if self.allowed == 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.allowed -= 1

    def get_states(self, keys: Iterable[str]) -> dict[str, LifecycleState]:
        return self.inner.get_states(keys)

    def put_state(self, state: LifecycleState) -> None:
        if self.allowed == 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.inner.put_state(state)

    def delete_state(self, key: str) -> None:
        if self.allowed == 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.inner.delete_state(key)

    def append(self, event: AuditEvent) -> None:
        self._write()
        self.inner.append(event)

    def append_many(self, events: Iterable[AuditEvent]) -> None:
        self._write()
        self.inner.append_many(events)

    def events(self, *, match: str | None = None, limit: int = 200) -> list[AuditEvent]:
        return self.inner.events(match=match, limit=limit)

    def stop_events(self, query: str, *, limit: int = 1000) -> list[AuditEvent]:
        return self.inner.stop_events(query, limit=limit)

    def open_intents(self) -> list[AuditEvent]:
        return self.inner.open_intents()

    def put_notices(self, notices: Iterable[PendingNotice]) -> None:
        if self.allowed == 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.inner.put_notices(notices)

    def pending_notices(self) -> list[PendingNotice]:
        return self.inner.pending_notices()

    def delete_notices(self, keys: Iterable[str]) -> None:
        if self.allowed == 0:
            raise sqlite3.OperationalError("database or disk is full")
        self.inner.delete_notices(keys)

    def lock(self, holder: str, ttl: timedelta) -> AbstractContextManager[int]:
        return self.inner.lock(holder, ttl)

    def renew_lock(self, token: int, ttl: timedelta) -> bool:
        return self.inner.renew_lock(token, ttl)

    def close(self) -> None:
        self.inner.close()


def test_the_store_failing_after_the_stop_leaves_a_restorable_intent_reconciled_next_run(
    store: SqliteStore,
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)
    failing = FailingStore(store)
    failing.allowed = 1  # the intent goes through; the disk is full from then on

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        pipeline.run(
            make_policy(),
            now=day(60),
            store=failing,
            notifier=FakeNotifier(),
            apply=True,
            run_id="crashed",
            tasks=[cloud.task(make_policy())],
        )

    assert stopper.stopped == ["train-box"]
    (intent,) = store.open_intents()
    assert intent.key == box.ref.key
    assert events_of(store, "action") == []
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at is None  # the state write came after the failure

    # The next run settles it: the box is stopped, so the intent was carried out.
    notifier = FakeNotifier()
    report = run_at(61, [cloud], store, notifier)

    (reconciled,) = events_of(store, "reconciled")
    assert reconciled.detail["outcome"] == "stopped"
    assert reconciled.detail["intent_run_id"] == "crashed"
    assert reconciled.detail["restore"] == intent.detail["restore"]
    assert store.open_intents() == []
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at == intent.at
    assert stopper.stopped == ["train-box"]  # not stopped twice
    assert report.errors == []
    assert restore(store, "train-box", cloud, at=62) == f"started {box.ref.id}"


def crash_after_the_intent(store: SqliteStore, cloud: InMemoryScope) -> None:
    """A day-60 run whose store fails (disk full) right after the stop's intent is written."""
    failing = FailingStore(store)
    failing.allowed = 1
    with pytest.raises(sqlite3.OperationalError):
        pipeline.run(
            make_policy(),
            now=day(60),
            store=failing,
            notifier=FakeNotifier(),
            apply=True,
            tasks=[cloud.task(make_policy())],
        )


def test_restore_accepts_an_intent_whose_outcome_is_missing(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)
    crash_after_the_intent(store, cloud)

    assert restore(store, box.ref.id, cloud) == f"started {box.ref.id}"
    assert stopper.down == set()
    with pytest.raises(pipeline.RestoreError, match="already restored"):
        restore(store, "train-box", cloud)

    # The next run finds the box running: the interrupted stop is settled as not stopped.
    run_at(61, [cloud], store, FakeNotifier())
    (reconciled,) = events_of(store, "reconciled")
    assert reconciled.detail["outcome"] == "not-stopped"
    assert reconciled.detail["restore"] is None


def test_an_intent_that_cannot_be_checked_stays_open_and_is_an_error(
    store: SqliteStore,
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)
    crash_after_the_intent(store, cloud)

    def unreadable(resource: Resource) -> StopPlan:
        raise denied("DescribeInstances")

    stopper.plan = unreadable  # type: ignore[method-assign]
    report = run_at(61, [cloud], store, FakeNotifier())

    assert any("cannot tell whether the interrupted stop" in e.message for e in report.errors)
    assert len(store.open_intents()) == 1
    assert events_of(store, "reconciled") == []


# -- failed stops and retried deletes keep their recipe -----------------------------------------


def test_a_failed_stop_keeps_its_recipe_and_restore_accepts_it(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    stopper = FakeStopper(StopOutcome.FAILED)
    cloud = InMemoryScope(box, stopper=stopper)

    report = run_at(60, [cloud], store, FakeNotifier())

    assert finding(report, "train-box").outcome is StopOutcome.FAILED
    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "failed"
    assert action.detail["restore"]["instance_id"] == box.ref.id
    assert restore(store, "train-box", cloud) == f"started {box.ref.id}"


class DeleteThenTimeout(FakeStopper):
    """The delete went through, but its answer never came: the SDK gave up with a timeout."""

    def act(self, plan: StopPlan) -> StopResult:
        self.stopped.append(plan.resource.name)
        raise ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com/")


def test_a_delete_that_went_through_but_raised_keeps_its_recipe(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box, stopper=DeleteThenTimeout())

    report = run_at(60, [cloud], store, FakeNotifier())

    f = finding(report, "train-box")
    assert f.outcome is StopOutcome.FAILED
    assert "Read timeout" in f.outcome_message
    (action,) = events_of(store, "action")
    assert action.detail["restore"]["instance_id"] == box.ref.id
    assert restore(store, "train-box", cloud) == f"started {box.ref.id}"


def test_a_retried_delete_answered_not_found_is_a_stop_with_its_recipe(
    store: SqliteStore,
) -> None:
    """The stopper reports "not found right after our own delete" as stopped, with the recipe
    (clouds/aws/sagemaker_endpoint.py); the pipeline keeps the state and the recipe."""

    class RetriedDelete(FakeStopper):
        def act(self, plan: StopPlan) -> StopResult:
            message = "deleted (a retried delete found it already gone)"
            return StopResult(StopOutcome.STOPPED, message, plan.recipe)

    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box, stopper=RetriedDelete())

    run_at(60, [cloud], store, FakeNotifier())

    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at == day(60)
    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "stopped"
    assert action.detail["restore"]["instance_id"] == box.ref.id
    assert restore(store, "train-box", cloud) == f"started {box.ref.id}"


# -- finding the stop to undo -------------------------------------------------------------------


def test_restore_finds_a_stop_200_days_old_behind_50_similar_names(store: SqliteStore) -> None:
    box = gpu_box("train-box", resource_id="i-0old")
    stop_day_setup(store, box)
    cloud, _ = scope_with(store, box)
    run_at(60, [cloud], store, FakeNotifier())
    # 200 days of newer history for 50 look-alikes, each with many events naming them.
    others = [gpu_box(f"train-box-{n}", resource_id=f"i-0old{n}") for n in range(50)]
    noise = [
        AuditEvent(day(260) + timedelta(minutes=m), f"later-{m}", "decision", o.ref.key,
                   o.name, {"reason": "train-box idle"})
        for o in others
        for m in range(220)
    ]  # fmt: skip
    store.append_many(noise)
    assert len(store.events(match="train-box", limit=20_000)) < len(noise)  # exact name only
    assert len(store.events(match="i-0old", limit=20_000)) >= 10_000  # the old scan's blind spot

    for query in ("train-box", "i-0old", box.ref.key):
        assert restore(store, query, cloud, at=261) == "started i-0old"
        store.append(
            AuditEvent(day(261), "again", "action", box.ref.key, box.name,
                       {"outcome": "stopped", "restore": {"instance_id": "i-0old"}})
        )  # fmt: skip


# -- one failure stays local --------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        denied("DescribeEndpoint"),
        ResponseParserError("Unable to parse response (not well-formed), invalid XML"),
        OverflowError("date value out of range"),
        KeyError("ProductionVariants"),
    ],
    ids=["denied", "parser-error", "overflow", "bug"],
)
def test_a_failing_describe_fails_its_scope_only(store: SqliteStore, error: Exception) -> None:
    broken = InMemoryScope(gpu_box("west-box", region="us-west-2"), region="us-west-2")
    healthy = InMemoryScope(gpu_box("east-box"))

    def describe(resources: Sequence[Resource]) -> list[Resource]:
        raise error

    broken.scanner.describe = describe  # type: ignore[method-assign]
    notifier = FakeNotifier()

    for report in (
        pipeline.scan(
            make_policy(), now=day(30), store=store,
            tasks=[c.task(make_policy()) for c in (broken, healthy)],
        ),
        run_at(30, [broken, healthy], store, notifier),
    ):  # fmt: skip
        assert report.exit_code() == 1
        (failed,) = report.errors
        assert failed.region == "us-west-2"
        assert "\n" not in failed.message
        assert [f.resource.name for f in report.findings] == ["east-box"]
    assert notifier.staged() == [("alice@example.com", "notify", "east-box")]


class ExplodingTags(Mapping[str, str]):
    """Tags that cannot be read (a far-future date deep in a parser, say)."""

    def __getitem__(self, key: str) -> str:
        raise OverflowError("date value out of range")

    def __iter__(self) -> Iterator[str]:
        raise OverflowError("date value out of range")

    def __len__(self) -> int:
        return 1


def test_a_resource_that_cannot_be_decided_fails_alone(store: SqliteStore) -> None:
    odd = Resource(
        ref=gpu_box("odd-box").ref,
        name="odd-box",
        state="running",
        created_at=day(0),
        tags=ExplodingTags(),
    )
    cloud = InMemoryScope(odd, gpu_box("fine-box"))
    notifier = FakeNotifier()

    report = run_at(30, [cloud], store, notifier)

    (error,) = report.errors
    assert error.message.startswith("odd-box: a date or number out of range")
    assert [f.resource.name for f in report.findings] == ["fine-box"]
    assert notifier.staged() == [("alice@example.com", "notify", "fine-box")]


# -- the run lock as a lease --------------------------------------------------------------------


def test_a_run_that_lost_its_lease_stops_acting(store: SqliteStore, tmp_path: Path) -> None:
    one, two = gpu_box("box-1"), gpu_box("box-2")
    stop_day_setup(store, one, two)
    cloud, stopper = scope_with(store, one, two)
    other = SqliteStore(tmp_path / "state.db")
    travels: list[Any] = []
    taken: list[AbstractContextManager[int]] = []

    def paused_past_the_lease(plan: StopPlan) -> None:
        # The process stalls for 3 hours; meanwhile the next run takes the expired lock.
        travel = time_machine.travel(datetime.now(UTC) + timedelta(hours=3), tick=True)
        travel.start()
        travels.append(travel)
        lock = other.lock("the next run", timedelta(hours=2))
        lock.__enter__()
        taken.append(lock)

    stopper.during_act = [paused_past_the_lease]
    try:
        with pytest.raises(LockLost, match="another run took it over"):
            run_at(60, [cloud], store, FakeNotifier())
        assert stopper.stopped == ["box-1"]  # box-2 was not touched
        (action,) = events_of(store, "action")
        assert action.name == "box-1"  # what was done is on record
        with pytest.raises(LockHeld) as held, store.lock("third", timedelta(hours=2)):
            pass
        assert held.value.holder == "the next run"  # the lost run did not release it
    finally:
        for lock in taken:
            lock.__exit__(None, None, None)
        for travel in travels:
            travel.stop()
        other.close()


def test_the_lease_is_renewed_while_the_run_goes_on(store: SqliteStore, tmp_path: Path) -> None:
    box = gpu_box("box-1")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)
    other = SqliteStore(tmp_path / "state.db")
    outcomes: list[str] = []

    def longer_than_the_lease(plan: StopPlan) -> None:
        time.sleep(2.5)  # five lease lengths: renewed every 0.125 s meanwhile
        try:
            with other.lock("an overlapping run", timedelta(hours=2)):
                outcomes.append("overlapping run got the lock")
        except LockHeld:
            outcomes.append("held")

    stopper.during_act = [longer_than_the_lease]
    try:
        report = pipeline.run(
            make_policy(),
            now=day(60),
            store=store,
            notifier=FakeNotifier(),
            apply=True,
            tasks=[cloud.task(make_policy())],
            lock_ttl=timedelta(seconds=0.5),
        )
    finally:
        other.close()

    assert outcomes == ["held"]
    assert finding(report, "box-1").outcome is StopOutcome.STOPPED


# -- SIGTERM and SIGINT: finish the current action, record it, release the lock -----------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_stop_ends_the_run_after_recording_it(
    store: SqliteStore, signum: signal.Signals
) -> None:
    one, two = gpu_box("box-1"), gpu_box("box-2")
    stop_day_setup(store, one, two)
    cloud, stopper = scope_with(store, one, two)
    stopper.during_act = [lambda plan: signal.raise_signal(signum)]
    notifier = FakeNotifier()

    with interrupts.handling(), pytest.raises(interrupts.Interrupted) as raised:
        run_at(60, [cloud], store, notifier)

    assert raised.value.signum == signum
    assert stopper.stopped == ["box-1"]  # the stop under way was finished, no other begun
    (action,) = events_of(store, "action")
    assert (action.name, action.detail["outcome"]) == ("box-1", "stopped")
    state = state_of(store, one)
    assert state is not None
    assert state.stopped_at == day(60)
    assert store.open_intents() == []
    with store.lock("next run", timedelta(hours=2)):  # released
        pass
    assert signal.getsignal(signum) is not interrupts._handle  # handlers put back


class SignalledNotifier(FakeNotifier):
    """Slack is rate-limited: the delivery waits, and the process is told to terminate."""

    def deliver(self, digest: Digest) -> Delivery:
        signal.raise_signal(signal.SIGTERM)
        threading.Event().wait(30)  # not reached: the signal ends the wait
        return super().deliver(digest)


def test_sigterm_while_a_delivery_waits_ends_the_run_with_the_stops_recorded(
    store: SqliteStore,
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, stopper = scope_with(store, box)

    with interrupts.handling(), pytest.raises(interrupts.Interrupted):
        run_at(60, [cloud], store, SignalledNotifier())

    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "stopped"
    with store.lock("next run", timedelta(hours=2)):
        pass
    assert restore(store, "train-box", cloud) == f"started {box.ref.id}"


def test_failed_outcome_message_for_sdk_error_is_recorded(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    error: ClientError = denied("StopInstances")
    cloud = InMemoryScope(box, stopper=FakeStopper(error=error))

    run_at(60, [cloud], store, FakeNotifier())

    (intent,) = events_of(store, "intent")
    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "failed"
    assert action.detail["restore"] == intent.detail["restore"]
    assert intent.detail["restore"]["kind"] == KIND
    assert intent.detail["restore"]["scope_info"]["scope"] == ACCOUNT


class SecondDigestFails(FakeNotifier):
    """Records what the store held when each digest went out; the second one raises."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__()
        self.store = store
        self.seen: list[list[str]] = []

    def deliver(self, digest: Digest) -> Delivery:
        self.seen.append([e.event for e in self.store.events()])
        if len(self.digests) == 1:
            raise ValueError("the Slack client choked")
        return super().deliver(digest)


def test_each_delivered_digest_and_its_state_are_committed_before_the_next(
    store: SqliteStore,
) -> None:
    alice_box = gpu_box("alice-box")
    bob_box = gpu_box("bob-box", owner="bob@example.com")
    cloud = InMemoryScope(alice_box, bob_box)
    notifier = SecondDigestFails(store)

    report = run_at(53, [cloud], store, notifier)

    assert notifier.seen == [[], ["delivery"]]
    owners = [e for e in events_of(store, "delivery") if not e.detail.get("summary")]
    assert sorted(e.detail["ok"] for e in owners) == [False, True]
    assert any("choked" in line for line in report.delivery_failures)
    sent_first = notifier.digests[0].items[0].finding.resource.name
    first, other = (alice_box, bob_box) if sent_first == "alice-box" else (bob_box, alice_box)
    warned = state_of(store, first)
    assert warned is not None
    assert warned.warned_at == day(53)  # its warning counts: it will not be sent twice
    not_warned = state_of(store, other)
    assert not_warned is not None
    assert not_warned.warned_at is None  # sent again on the next run
