"""The pipeline driven end to end with in-memory implementations of our own protocols.

No cloud: each Task carries `KindHandlers` whose Scanner, UsageProbe and Stopper are the fakes
below; the state store is a real SQLite file. Time is day-based: `day(n)` is n days after T0,
and every resource was created at day 0 and has been idle since, unless a test says otherwise.
The default lifecycle applies: notice at 30 idle days, warning at 53, stop at 60.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from janitor import pipeline
from janitor.clouds.base import KindHandlers, Task
from janitor.model import (
    Action,
    AuditEvent,
    Cloud,
    Decision,
    Finding,
    LifecycleState,
    Resource,
    ResourceRef,
    Status,
    StopOutcome,
    StopPlan,
    StopResult,
    Verdict,
    Window,
)
from janitor.notify.base import Delivery, Digest
from janitor.notify.render import render_text
from janitor.pipeline import RestoreError, guard, kill_switch_on
from janitor.policy import Policy, parse_policy
from janitor.report import RunReport
from janitor.state import LockHeld
from janitor.state.sqlite import SqliteStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "us-east-1"
KIND = "aws.ec2-gpu"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def make_policy(max_stops: int = 25) -> Policy:
    text = (
        "defaults:\n"
        f"  max_stops_per_run: {max_stops}\n"
        "rules:\n"
        "  - name: idle-gpu-instances\n"
        f"    kind: {KIND}\n"
    )
    return parse_policy(text, "test-policy.yaml", env={})


def gpu_box(
    name: str,
    *,
    owner: str | None = "alice@example.com",
    created: float = 0,
    region: str = REGION,
    resource_id: str | None = None,
) -> Resource:
    """As listed: the instance type is filled in only by `describe`."""
    ref = ResourceRef(Cloud.AWS, KIND, ACCOUNT, region, resource_id or f"i-{name}")
    return Resource(
        ref=ref,
        name=name,
        state="running",
        created_at=day(created),
        tags={"owner": owner} if owner else {},
    )


# -- fakes of our protocols --------------------------------------------------------------------

VerdictRule = Callable[[Resource], Verdict | None]  # None: the probe has no verdict for it


def idle_since_creation(resource: Resource) -> Verdict:
    return Verdict.idle(resource.ref, resource.created_at, "0% GPU for the whole window")


def busy(resource: Resource) -> Verdict:
    return Verdict.active(resource.ref, "GPU at 87% yesterday", last_activity=day(59))


def unknown(resource: Resource) -> Verdict:
    return Verdict.unknown(resource.ref, "no GPU metrics published")


def no_verdict(resource: Resource) -> None:
    return None


def denied(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, operation)


class FakeScanner:
    def __init__(self, resources: Sequence[Resource], error: Exception | None = None) -> None:
        self.resources = list(resources)
        self.error = error
        self.described: list[list[str]] = []

    def scan(self) -> Iterator[Resource]:
        if self.error is not None:
            raise self.error
        yield from self.resources

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        self.described.append([r.name for r in resources])
        return [replace(r, instance_type="p3.2xlarge") for r in resources]


class FakeProbe:
    """Answers with `default`, except that each queued answer serves one call, in order."""

    def __init__(self, default: VerdictRule = idle_since_creation) -> None:
        self.default = default
        self.queued: list[VerdictRule | Exception] = []
        self.calls: list[tuple[list[str], Window, datetime]] = []

    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        self.calls.append(([r.name for r in resources], window, now))
        answer = self.queued.pop(0) if self.queued else self.default
        if isinstance(answer, Exception):
            raise answer
        out: dict[str, Verdict] = {}
        for r in resources:
            verdict = answer(r)
            if verdict is not None:
                out[r.ref.key] = verdict
        return out


class FakeStopper:
    def __init__(
        self,
        outcome: StopOutcome = StopOutcome.STOPPED,
        *,
        error: Exception | None = None,
        restore_error: Exception | None = None,
    ) -> None:
        self.outcome = outcome
        self.error = error
        self.restore_error = restore_error
        self.stopped: list[str] = []
        self.restored: list[Mapping[str, Any]] = []

    def plan(self, resource: Resource) -> StopPlan:
        return StopPlan(resource, {"instance_id": resource.ref.id, "was": resource.state})

    def act(self, plan: StopPlan) -> StopResult:
        if self.error is not None:
            raise self.error
        if self.outcome is not StopOutcome.STOPPED:
            return StopResult(self.outcome, "InsufficientInstanceCapacity: try later")
        self.stopped.append(plan.resource.name)
        return StopResult(StopOutcome.STOPPED, f"stopped {plan.resource.ref.id}", plan.recipe)

    def restore(self, recipe: Mapping[str, Any]) -> str:
        if self.restore_error is not None:
            raise self.restore_error
        self.restored.append(recipe)
        return f"started {recipe['instance_id']}"


@dataclass
class FakeNotifier:
    ok: bool = True
    name: str = "fake"
    digests: list[Digest] = field(default_factory=list)
    reaches_people: bool = True
    # Keys confirmed when `ok` is False (a digest delivered in part); None: none of them.
    partly: frozenset[str] | None = None

    summaries: list[Mapping[str, str]] = field(default_factory=list)
    prepared: list[list[str | None]] = field(default_factory=list)

    def prepare(self, owners: Iterable[str | None]) -> None:
        self.prepared.append(list(owners))

    def deliver(self, digest: Digest) -> Delivery:
        self.digests.append(digest)
        destination = f"fake:{digest.owner or 'fallback'}"
        detail = "" if self.ok else "channel_not_found"
        return Delivery(self.ok, destination, detail, None if self.ok else self.partly)

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        self.summaries.append(figures)
        return Delivery(self.ok, "fake:summary")

    def staged(self) -> list[tuple[str | None, str, str]]:
        """(owner, stage, resource name) for every item of every digest received."""
        return [
            (d.owner, i.stage.value, i.finding.resource.name) for d in self.digests for i in d.items
        ]


class InMemoryScope:
    """One rule in one scope, with its own fakes."""

    def __init__(
        self,
        *resources: Resource,
        region: str = REGION,
        scan_error: Exception | None = None,
        stopper: FakeStopper | None = None,
    ) -> None:
        self.scanner = FakeScanner(resources, scan_error)
        self.probe = FakeProbe()
        self.stopper = stopper or FakeStopper()
        self.region = region

    def task(self, policy: Policy) -> Task:
        handlers = KindHandlers(self.scanner, self.probe, self.stopper)
        return Task(policy.rules[0], None, Cloud.AWS, ACCOUNT, self.region, handlers)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_kill_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JANITOR_KILL_SWITCH", raising=False)


def run_at(
    n: float,
    clouds: Sequence[InMemoryScope],
    store: SqliteStore,
    notifier: FakeNotifier,
    *,
    apply: bool = True,
    policy: Policy | None = None,
) -> RunReport:
    policy = policy or make_policy()
    return pipeline.run(
        policy,
        now=day(n),
        store=store,
        notifier=notifier,
        apply=apply,
        run_id=f"day{n:g}",
        tasks=[c.task(policy) for c in clouds],
    )


def finding(report: RunReport, name: str) -> Finding:
    (found,) = [f for f in report.findings if f.resource.name == name]
    return found


def state_of(store: SqliteStore, resource: Resource) -> LifecycleState | None:
    return store.get_states([resource.ref.key]).get(resource.ref.key)


def events_of(store: SqliteStore, kind: str, run_id: str | None = None) -> list[AuditEvent]:
    return [
        e
        for e in store.events(limit=10_000)
        if e.event == kind
        and (run_id is None or e.run_id == run_id)
        and not e.detail.get("summary")  # the run summary is tested on its own
    ]


# -- evaluate ----------------------------------------------------------------------------------


def test_evaluate_reads_and_decides_and_describes_only_candidates(store: SqliteStore) -> None:
    idle_box, busy_box = gpu_box("idle-box"), gpu_box("busy-box")
    cloud = InMemoryScope(idle_box, busy_box)
    cloud.probe.default = lambda r: busy(r) if r.name == "busy-box" else idle_since_creation(r)
    policy = make_policy()

    ev = pipeline.evaluate(policy, now=day(30), store=store, tasks=[cloud.task(policy)])

    by_name = {f.resource.name: f for f in ev.findings}
    assert by_name["idle-box"].decision.action is Action.NOTIFY
    assert by_name["idle-box"].owner == "alice@example.com"
    assert by_name["busy-box"].decision.action is Action.NONE
    assert cloud.scanner.described == [["idle-box"]]  # the active one is not described
    assert by_name["idle-box"].resource.instance_type == "p3.2xlarge"
    assert by_name["idle-box"].monthly_cost_usd is not None
    assert by_name["idle-box"].monthly_cost_usd > 0
    assert by_name["busy-box"].monthly_cost_usd is None
    (names, window, until) = cloud.probe.calls[0]
    assert sorted(names) == ["busy-box", "idle-box"]  # one batched call for the scope
    assert until == day(30)
    assert window.end - window.start == policy.rules[0].lookback
    assert ev.errors == []
    assert store.events() == []  # evaluate only reads


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_stops_nothing_sends_nothing_writes_nothing(store: SqliteStore) -> None:
    due, fresh = gpu_box("due-box"), gpu_box("fresh-box", created=25)
    warned = LifecycleState(
        key=due.ref.key,
        streak_start=day(0),
        notified_at=day(30),
        warned_at=day(53),
        stop_due=day(60),
        owner="alice@example.com",
    )
    store.put_state(warned)
    cloud, notifier = InMemoryScope(due, fresh), FakeNotifier()

    report = run_at(60, [cloud], store, notifier, apply=False)

    assert report.dry_run is True
    assert finding(report, "due-box").decision.action is Action.STOP
    assert finding(report, "due-box").outcome is None
    assert finding(report, "fresh-box").decision.action is Action.NOTIFY
    assert report.deliveries == ["would send to alice@example.com: notify fresh-box"]
    assert cloud.stopper.stopped == []
    assert len(cloud.probe.calls) == 1  # no re-check: nothing is about to be stopped
    assert notifier.digests == []
    assert store.get_states([due.ref.key, fresh.ref.key]) == {due.ref.key: warned}
    assert store.events() == []


def test_dry_run_does_not_take_the_lock(store: SqliteStore) -> None:
    with store.lock("an applying run", timedelta(hours=2)):
        report = run_at(30, [InMemoryScope(gpu_box("box"))], store, FakeNotifier(), apply=False)
    assert finding(report, "box").decision.action is Action.NOTIFY


# -- apply: notice, warning, stop --------------------------------------------------------------


def test_apply_at_day_30_delivers_the_notice_and_records_it(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    cloud, notifier = InMemoryScope(box), FakeNotifier()

    report = run_at(30, [cloud], store, notifier)

    assert report.exit_code() == 0
    assert report.dry_run is False
    assert notifier.staged() == [("alice@example.com", "notify", "train-box")]
    assert report.deliveries == ["sent to fake:alice@example.com: notify train-box"]
    state = state_of(store, box)
    assert state is not None
    assert state.notified_at == day(30)
    assert state.streak_start == day(0)
    assert state.warned_at is None
    assert state.owner == "alice@example.com"
    (decision,) = events_of(store, "decision")
    assert decision.key == box.ref.key
    assert decision.detail["action"] == "notify"
    assert decision.detail["delivered"] is True
    (delivery,) = events_of(store, "delivery")
    assert delivery.detail["ok"] is True
    assert delivery.detail["items"] == [box.ref.key]
    (summary,) = events_of(store, "run")
    assert summary.detail["findings"] == 1
    assert {e.run_id for e in store.events()} == {"day30"}
    assert cloud.stopper.stopped == []


def test_undelivered_warning_is_not_a_warning(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    cloud = InMemoryScope(box)

    failed = run_at(53, [cloud], store, FakeNotifier(ok=False))

    assert finding(failed, "train-box").decision.action is Action.WARN
    assert failed.exit_code() == 1
    failure, summary_failure = failed.delivery_failures
    assert summary_failure.startswith("run summary: not delivered")
    assert "alice@example.com" in failure
    assert "channel_not_found" in failure
    assert "warn train-box" in failure
    state = state_of(store, box)
    assert state is not None
    assert state.warned_at is None
    assert state.stop_due is None
    (delivery,) = events_of(store, "delivery")
    assert delivery.detail["ok"] is False
    (decision,) = events_of(store, "decision")
    assert decision.detail["delivered"] is False

    # Eight days on, past the stop date that warning would have announced: warn again, no stop.
    notifier = FakeNotifier()
    later = run_at(61, [cloud], store, notifier)

    assert finding(later, "train-box").decision.action is Action.WARN
    assert cloud.stopper.stopped == []
    assert notifier.staged() == [("alice@example.com", "warn", "train-box")]
    assert later.exit_code() == 0
    state = state_of(store, box)
    assert state is not None
    assert state.warned_at == day(61)
    assert state.stop_due == day(68)  # a full warning period from the delivered warning


def test_notice_warning_then_stop_after_a_recheck(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    cloud, notifier = InMemoryScope(box), FakeNotifier()

    run_at(30, [cloud], store, notifier)
    warn = run_at(53, [cloud], store, notifier)
    assert finding(warn, "train-box").decision.stop_due == day(60)
    quiet = run_at(59, [cloud], store, notifier)
    assert finding(quiet, "train-box").decision.action is Action.NONE
    assert cloud.stopper.stopped == []
    calls_before = len(cloud.probe.calls)

    stop = run_at(60, [cloud], store, notifier)

    f = finding(stop, "train-box")
    assert f.decision.action is Action.STOP
    assert f.outcome is StopOutcome.STOPPED
    assert cloud.stopper.stopped == ["train-box"]
    # The scan's probe call, then the re-check of the stop candidates just before the stop.
    assert [names for names, _, _ in cloud.probe.calls[calls_before:]] == [
        ["train-box"],
        ["train-box"],
    ]
    assert notifier.staged() == [
        ("alice@example.com", "notify", "train-box"),
        ("alice@example.com", "warn", "train-box"),
        ("alice@example.com", "stop", "train-box"),
    ]
    assert stop.exit_code() == 0
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at == day(60)
    assert state.warned_at == day(53)
    (action,) = events_of(store, "action")
    assert action.run_id == "day60"
    assert action.detail["outcome"] == "stopped"
    assert action.detail["restore"] == {
        "instance_id": box.ref.id,
        "was": "running",
        "kind": KIND,
        "scope_info": {"cloud": "aws", "scope": ACCOUNT, "region": REGION, "role_arn": None},
    }


# -- no stop unless a person was warned ---------------------------------------------------------


def test_a_notifier_that_reaches_nobody_never_leads_to_a_stop(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    cloud = InMemoryScope(box)
    console = FakeNotifier(name="console", reaches_people=False)

    for n in (30, 53, 60, 61, 90):
        report = run_at(n, [cloud], store, console)
        assert report.exit_code() == 0
        assert any("stops are held until a notifier is configured" in x for x in report.notes)
        assert finding(report, "train-box").outcome is None
    assert finding(report, "train-box").decision.action is Action.WARN  # warned again, uncounted
    assert cloud.stopper.stopped == []
    state = state_of(store, box)
    assert state is not None
    assert (state.notified_at, state.warned_at, state.stop_due) == (None, None, None)
    assert console.staged()[-1] == ("alice@example.com", "warn", "train-box")  # still printed
    assert all(e.detail["delivered"] is False for e in events_of(store, "decision"))
    assert all(e.detail["counts"] is False for e in events_of(store, "delivery"))
    dry = run_at(91, [cloud], store, console, apply=False)
    assert any("stops are held" in x for x in dry.notes)


def test_a_notifier_that_reaches_people_has_no_held_note(store: SqliteStore) -> None:
    report = run_at(53, [InMemoryScope(gpu_box("train-box"))], store, FakeNotifier())
    assert report.notes == []


def test_an_undelivered_stop_notice_is_kept_and_sent_on_a_later_run(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box)

    stop = run_at(60, [cloud], store, FakeNotifier(ok=False))

    assert finding(stop, "train-box").outcome is StopOutcome.STOPPED
    (owed,) = store.pending_notices()
    assert (owed.key, owed.stage, owed.owner, owed.attempts) == (
        box.ref.key, "stop", "alice@example.com", 1,
    )  # fmt: skip
    assert owed.created_at == day(60)
    cloud.scanner.resources = []  # stopped: no longer listed as a running instance

    still_down = FakeNotifier(ok=False)
    run_at(61, [cloud], store, still_down)
    assert still_down.staged() == [("alice@example.com", "stop", "train-box")]
    (owed,) = store.pending_notices()
    assert (owed.attempts, owed.created_at) == (2, day(60))

    notifier = FakeNotifier()
    later = run_at(62, [cloud], store, notifier)

    assert notifier.staged() == [("alice@example.com", "stop", "train-box")]
    (digest,) = notifier.digests
    text = render_text(digest)
    assert re.search(r"janitor restore \S*train-box", text)  # by name or by id
    assert digest.items[0].finding.verdict.evidence.startswith("stopped on 2024-03-01 00:00 UTC")
    assert later.deliveries == ["sent to fake:alice@example.com: stop train-box"]
    assert store.pending_notices() == []
    assert cloud.stopper.stopped == ["train-box"], "the notice is re-sent, the stop is not redone"

    quiet = FakeNotifier()
    run_at(63, [cloud], store, quiet)
    assert quiet.digests == []


def test_a_digest_delivered_in_part_counts_the_items_that_got_through(
    store: SqliteStore,
) -> None:
    one, two = gpu_box("box-1"), gpu_box("box-2")
    cloud = InMemoryScope(one, two)

    run_at(53, [cloud], store, FakeNotifier(ok=False, partly=frozenset({one.ref.key})))

    first, second = state_of(store, one), state_of(store, two)
    assert first is not None
    assert second is not None
    assert (first.warned_at, first.stop_due) == (day(53), day(60))  # the date it showed
    assert (second.warned_at, second.stop_due) == (None, None)

    notifier = FakeNotifier()
    report = run_at(54, [cloud], store, notifier)
    assert notifier.staged() == [("alice@example.com", "warn", "box-2")]  # only the rest
    assert finding(report, "box-1").decision.stop_due == day(60)  # kept
    second = state_of(store, two)
    assert second is not None
    assert (second.warned_at, second.stop_due) == (day(54), day(61))

    run_at(60, [cloud], store, FakeNotifier())
    assert cloud.stopper.stopped == ["box-1"]


def stop_day_setup(store: SqliteStore, *boxes: Resource) -> None:
    """Each box warned (delivered) at day 53: its stop is due at day 60."""
    for box in boxes:
        store.put_state(
            LifecycleState(
                key=box.ref.key,
                streak_start=day(0),
                notified_at=day(30),
                warned_at=day(53),
                stop_due=day(60),
                owner="alice@example.com",
            )
        )


def test_the_recheck_reads_evidence_up_to_the_moment_of_the_stop(store: SqliteStore) -> None:
    import time_machine

    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, notifier = InMemoryScope(box), FakeNotifier()
    with time_machine.travel(day(60), tick=False) as clock:

        def a_long_scan(resource: Resource) -> Verdict:
            clock.shift(timedelta(hours=3))  # the rest of the run's scopes take three hours
            return idle_since_creation(resource)

        cloud.probe.queued = [a_long_scan, idle_since_creation]
        report = run_at(60, [cloud], store, notifier)

    (_, _, scanned_until), (_, recheck_window, rechecked_until) = cloud.probe.calls
    assert scanned_until == day(60)
    assert rechecked_until == recheck_window.end == day(60) + timedelta(hours=3)
    assert finding(report, "train-box").outcome is StopOutcome.STOPPED


class TaggedMeanwhile(FakeStopper):
    """The cloud as `plan` reads it right before the stop: the owner tagged it during the run."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        super().__init__()
        self.tags = tags

    def plan(self, resource: Resource) -> StopPlan:
        return super().plan(replace(resource, tags={**resource.tags, **self.tags}))


@pytest.mark.parametrize(
    "tags", [{"janitor-exempt": "true"}, {"Janitor-Exempt": ""}], ids=["true", "empty-any-case"]
)
def test_an_exempt_tag_added_during_the_run_is_honoured(
    store: SqliteStore, tags: Mapping[str, str]
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box, stopper=TaggedMeanwhile(tags))

    report = run_at(60, [cloud], store, FakeNotifier())

    f = finding(report, "train-box")
    assert f.decision.action is Action.STOP  # the scan saw no tag
    assert f.outcome is StopOutcome.STILL_ACTIVE
    assert "exempt" in f.outcome_message
    assert cloud.stopper.stopped == []


@pytest.mark.parametrize(
    "recheck",
    [busy, unknown, no_verdict, denied("GetMetricData")],
    ids=["active", "unknown", "no-verdict", "probe-denied"],
)
def test_stop_needs_the_recheck_to_confirm_idleness(
    store: SqliteStore, recheck: VerdictRule | Exception
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, notifier = InMemoryScope(box), FakeNotifier()
    cloud.probe.queued = [idle_since_creation, recheck]

    report = run_at(60, [cloud], store, notifier)

    f = finding(report, "train-box")
    assert f.decision.action is Action.STOP
    assert f.outcome is StopOutcome.STILL_ACTIVE
    assert f.outcome_message.startswith("re-check")
    assert len(cloud.probe.calls) == 2
    assert cloud.stopper.stopped == []
    assert notifier.staged() == []  # not reported as stopped to anyone
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at is None
    (action,) = events_of(store, "action")
    assert action.detail["outcome"] == "still-active"
    assert action.detail["restore"] is None


@pytest.mark.parametrize(
    "stopper",
    [
        FakeStopper(StopOutcome.FAILED),
        FakeStopper(error=denied("StopInstances")),
    ],
    ids=["failed-outcome", "sdk-error"],
)
def test_failed_stop_is_an_error_of_the_run(store: SqliteStore, stopper: FakeStopper) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box, stopper=stopper)

    report = run_at(60, [cloud], store, FakeNotifier())

    assert finding(report, "train-box").outcome is StopOutcome.FAILED
    assert report.exit_code() == 1
    (error,) = report.errors
    assert error.message.startswith("train-box: stop failed: ")
    assert (error.scope, error.region, error.kind) == (ACCOUNT, REGION, KIND)
    state = state_of(store, box)
    assert state is not None
    assert state.stopped_at is None
    assert [e.detail["message"] for e in events_of(store, "error")] == [error.message]


# -- guard: caps and the kill switch -----------------------------------------------------------


def decided(name: str, action: Action) -> Finding:
    box = gpu_box(name)
    verdict = idle_since_creation(box)
    decision = Decision(box.ref, action, Status.IDLE, f"{action.value} it")
    return Finding(box, verdict, decision, "alice@example.com", 100.0)


def test_guard_caps_stops_per_run_and_never_promotes() -> None:
    findings = [
        decided("a", Action.STOP),
        decided("b", Action.WARN),
        decided("c", Action.STOP),
        decided("d", Action.STOP),
        decided("e", Action.NOTIFY),
    ]

    out = guard(findings, max_stops=2, kill_switch=False)

    assert [(f.resource.name, f.decision.action) for f in out] == [
        ("a", Action.STOP),
        ("b", Action.WARN),
        ("c", Action.STOP),
        ("d", Action.SKIP),
        ("e", Action.NOTIFY),
    ]
    assert "per-run cap of 2 stops" in out[3].decision.reason
    assert out[0] == findings[0]  # untouched, reason and all


def test_guard_cap_of_zero_stops_nothing() -> None:
    out = guard([decided("a", Action.STOP)], max_stops=0, kill_switch=False)
    assert out[0].decision.action is Action.SKIP


def test_kill_switch_demotes_every_stop() -> None:
    findings = [decided("a", Action.STOP), decided("b", Action.WARN), decided("c", Action.STOP)]

    out = guard(findings, max_stops=25, kill_switch=True)

    assert [f.decision.action for f in out] == [Action.SKIP, Action.WARN, Action.SKIP]
    assert all("JANITOR_KILL_SWITCH" in f.decision.reason for f in (out[0], out[2]))


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"JANITOR_KILL_SWITCH": ""}, False),
        ({"JANITOR_KILL_SWITCH": "0"}, False),
        ({"JANITOR_KILL_SWITCH": " false "}, False),
        ({"JANITOR_KILL_SWITCH": "off"}, False),
        ({"JANITOR_KILL_SWITCH": "no"}, False),
        ({"JANITOR_KILL_SWITCH": "1"}, True),
        ({"JANITOR_KILL_SWITCH": "true"}, True),
        ({"JANITOR_KILL_SWITCH": "YES"}, True),
        ({"JANITOR_KILL_SWITCH": "incident-42"}, True),
    ],
)
def test_kill_switch_on(environ: dict[str, str], on: bool) -> None:
    assert kill_switch_on(environ) is on


def test_run_honours_the_cap(store: SqliteStore) -> None:
    boxes = [gpu_box("box-a"), gpu_box("box-b"), gpu_box("box-c")]
    stop_day_setup(store, *boxes)
    cloud = InMemoryScope(*boxes)

    report = run_at(60, [cloud], store, FakeNotifier(), policy=make_policy(max_stops=1))

    assert len(cloud.stopper.stopped) == 1
    skipped = [f for f in report.findings if f.decision.action is Action.SKIP]
    assert len(skipped) == 2
    assert all("cap of 1" in f.decision.reason for f in skipped)
    assert [names for names, _, _ in cloud.probe.calls][1] == cloud.stopper.stopped  # re-check


def test_run_honours_the_kill_switch_from_the_environment(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box)
    monkeypatch.setenv("JANITOR_KILL_SWITCH", "1")

    report = run_at(60, [cloud], store, FakeNotifier())

    assert finding(report, "train-box").decision.action is Action.SKIP
    assert cloud.stopper.stopped == []
    assert len(cloud.probe.calls) == 1  # no re-check either
    state = state_of(store, box)
    assert state is not None
    assert state.warned_at == day(53)  # the streak and its warning are kept for later


# -- failures per scope ------------------------------------------------------------------------


def test_a_failing_scope_is_reported_and_the_rest_goes_on(store: SqliteStore) -> None:
    broken = InMemoryScope(gpu_box("west-box", region="us-west-2"), region="us-west-2")
    broken.scanner.error = denied("DescribeInstances")
    healthy = InMemoryScope(gpu_box("east-box"))
    notifier = FakeNotifier()

    report = run_at(30, [broken, healthy], store, notifier)

    assert report.exit_code() == 1
    (error,) = report.errors
    assert (error.cloud, error.scope, error.region, error.kind) == (
        Cloud.AWS,
        ACCOUNT,
        "us-west-2",
        KIND,
    )
    assert "DescribeInstances" in error.message
    assert "AccessDenied" in error.message
    assert [f.resource.name for f in report.findings] == ["east-box"]
    assert notifier.staged() == [("alice@example.com", "notify", "east-box")]
    (recorded,) = events_of(store, "error")
    assert recorded.detail["region"] == "us-west-2"


def test_a_failing_probe_fails_its_scope_only(store: SqliteStore) -> None:
    broken, healthy = (
        InMemoryScope(gpu_box("box-1")),
        InMemoryScope(gpu_box("box-2"), region="eu-west-1"),
    )
    broken.probe.queued = [TimeoutError("metrics endpoint timed out")]

    report = run_at(30, [broken, healthy], store, FakeNotifier())

    assert [e.message for e in report.errors] == ["metrics endpoint timed out"]
    assert [f.resource.name for f in report.findings] == ["box-2"]


def test_a_bug_fails_its_scope_only_and_is_logged_with_its_traceback(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = InMemoryScope(gpu_box("box-1"), scan_error=KeyError("InstanceType"))
    healthy = InMemoryScope(gpu_box("box-2"), region="eu-west-1")
    notifier = FakeNotifier()

    report = run_at(30, [buggy, healthy], store, notifier)

    assert report.exit_code() == 1
    (error,) = report.errors
    assert error.region == REGION
    assert "unexpected KeyError: 'InstanceType'" in error.message
    assert "a bug in janitor" in error.message
    assert [f.resource.name for f in report.findings] == ["box-2"]
    assert notifier.staged() == [("alice@example.com", "notify", "box-2")]
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.exc_info is not None  # the traceback is visible
    assert [e.detail["message"] for e in events_of(store, "error")] == [error.message]


# -- the run lock ------------------------------------------------------------------------------


def test_apply_while_another_run_holds_the_lock_does_nothing(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud, notifier = InMemoryScope(box), FakeNotifier()

    with store.lock("run other pid 4242", timedelta(hours=2)):
        with pytest.raises(LockHeld) as raised:
            run_at(60, [cloud], store, notifier)
        assert raised.value.holder == "run other pid 4242"

    assert cloud.stopper.stopped == []
    assert cloud.probe.calls == []
    assert notifier.digests == []
    assert store.events() == []


# -- restore -----------------------------------------------------------------------------------


def stopped_box(
    store: SqliteStore, name: str = "train-box", **kw: Any
) -> tuple[InMemoryScope, Resource]:
    box = gpu_box(name, **kw)
    stop_day_setup(store, box)
    cloud = InMemoryScope(box)
    run_at(60, [cloud], store, FakeNotifier())
    assert cloud.stopper.stopped == [name]
    return cloud, box


def test_restore_undoes_the_recorded_stop(store: SqliteStore) -> None:
    cloud, box = stopped_box(store)
    (action,) = events_of(store, "action")
    handlers = KindHandlers(cloud.scanner, cloud.probe, cloud.stopper)

    message = pipeline.restore(
        "train-box", policy=make_policy(), store=store, now=day(61), handlers=handlers
    )

    assert message == f"started {box.ref.id}"
    assert cloud.stopper.restored == [action.detail["restore"]]
    assert state_of(store, box) is None  # it comes back with a fresh streak
    (restored,) = events_of(store, "restore")
    assert restored.key == box.ref.key
    assert restored.detail["stopped_at"] == day(60).isoformat()

    with pytest.raises(RestoreError, match="already restored"):
        pipeline.restore(
            box.ref.id, policy=make_policy(), store=store, now=day(62), handlers=handlers
        )
    assert len(cloud.stopper.restored) == 1


def test_restore_without_a_recorded_stop(store: SqliteStore) -> None:
    run_at(30, [InMemoryScope(gpu_box("noticed-box"))], store, FakeNotifier())
    for query in ("noticed-box", "never-seen"):
        with pytest.raises(RestoreError, match=f"{query}: no recorded stop to undo"):
            pipeline.restore(query, policy=make_policy(), store=store, now=day(31))


def test_restore_after_a_stop_that_did_not_happen(store: SqliteStore) -> None:
    box = gpu_box("train-box")
    stop_day_setup(store, box)
    cloud = InMemoryScope(box)
    cloud.probe.queued = [idle_since_creation, busy]
    run_at(60, [cloud], store, FakeNotifier())

    with pytest.raises(RestoreError, match="no recorded stop"):
        pipeline.restore("train-box", policy=make_policy(), store=store, now=day(61))


def test_restore_failure_is_one_line_and_records_nothing(store: SqliteStore) -> None:
    cloud, box = stopped_box(store)
    failing = FakeStopper(restore_error=denied("StartInstances"))
    handlers = KindHandlers(cloud.scanner, cloud.probe, failing)

    with pytest.raises(RestoreError, match="train-box: restore failed: StartInstances"):
        pipeline.restore(
            "train-box", policy=make_policy(), store=store, now=day(61), handlers=handlers
        )

    assert events_of(store, "restore") == []
    assert state_of(store, box) is not None


def test_restore_picks_the_resource_asked_for_not_a_lookalike(store: SqliteStore) -> None:
    """`i-1` is a substring of `i-10`'s key: restoring i-1 must not start i-10."""
    one, box_1 = stopped_box(store, "box-1", resource_id="i-1")
    ten, box_10 = stopped_box(store, "box-10", resource_id="i-10")

    handlers = KindHandlers(one.scanner, one.probe, one.stopper)
    pipeline.restore("i-1", policy=make_policy(), store=store, now=day(61), handlers=handlers)

    assert [r["instance_id"] for r in one.stopper.restored] == ["i-1"]
    assert [e.key for e in events_of(store, "restore")] == [box_1.ref.key]
    assert state_of(store, box_10) is not None  # i-10 is still stopped
    handlers = KindHandlers(ten.scanner, ten.probe, ten.stopper)
    pipeline.restore("box-10", policy=make_policy(), store=store, now=day(61), handlers=handlers)
    assert [r["instance_id"] for r in ten.stopper.restored] == ["i-10"]


def test_restore_refuses_an_ambiguous_query(store: SqliteStore) -> None:
    stopped_box(store, "box", resource_id="i-1")
    stopped_box(store, "box", resource_id="i-2", region="eu-west-1")
    handlers = KindHandlers(FakeScanner([]), FakeProbe(), FakeStopper())

    with pytest.raises(RestoreError, match="box: matches 2 stopped resources"):
        pipeline.restore("box", policy=make_policy(), store=store, now=day(61), handlers=handlers)
    # Neither a substring of keys nor a kind names a stop: only an exact key, name or id.
    for query in (KIND, "i-", ACCOUNT):
        with pytest.raises(RestoreError, match="no recorded stop"):
            pipeline.restore(query, policy=make_policy(), store=store, now=day(61))
    assert events_of(store, "restore") == []


def test_an_applied_run_sends_one_summary_with_its_figures(store: SqliteStore) -> None:
    notifier = FakeNotifier()
    run_at(30, [InMemoryScope(gpu_box("train-box"))], store, notifier)
    (figures,) = notifier.summaries
    assert figures["notices"] == "1"
    assert figures["warnings"] == "0"
    assert figures["owners not reached"] == "0"
    assert notifier.prepared == [["alice@example.com"]]
    summaries = [e for e in store.events() if e.event == "delivery" and e.detail.get("summary")]
    assert len(summaries) == 1
