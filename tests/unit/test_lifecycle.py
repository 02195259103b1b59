"""Table-driven tests of the pure lifecycle: notice, warning, stop, streak resets, exemptions.

Time is day-based: `day(n)` is n days after T0 (00:00 UTC). Unless a row says otherwise the
resource was created at day 0 and has been idle ever since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from janitor.lifecycle import (
    current_streak,
    decide,
    exemption,
    next_state,
    owner_destination,
    owner_of,
)
from janitor.model import (
    Action,
    Cloud,
    Decision,
    LifecycleState,
    Resource,
    ResourceRef,
    Status,
    Verdict,
)
from janitor.policy import DEFAULT_OWNER_TAGS, Rule, parse_policy

T0 = datetime(2024, 1, 1, tzinfo=UTC)
REF = ResourceRef(Cloud.AWS, "aws.ec2-gpu", "123456789012", "us-east-1", "i-0123456789abcdef0")
KEY = REF.key
EXEMPT_TAG = "janitor-exempt"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def make_rule(
    notify_after: str = "30d",
    stop_after: str = "60d",
    warning: str = "7d",
    action: str | None = None,
) -> Rule:
    """A rule as the pipeline sees it: parsed and resolved from a tiny policy."""
    text = (
        "rules:\n"
        "  - name: gpu\n"
        "    kind: aws.ec2-gpu\n"
        f"    notify_after: {notify_after}\n"
        f"    stop_after: {stop_after}\n"
        f"    warning: {warning}\n"
    )
    if action is not None:
        text += f"    action: {action}\n"
    return parse_policy(text, "test-policy.yaml", env={}).rules[0]


DEFAULT_RULE = make_rule()
NOTIFY_ONLY = make_rule(action="notify-only")
SHORT_RULE = make_rule(notify_after="1d", stop_after="3d", warning="1d")


def make_resource(
    *, started: datetime | None = None, tags: Mapping[str, str] | None = None
) -> Resource:
    return Resource(
        ref=REF,
        name="train-box",
        state="running",
        created_at=day(0),
        tags=dict(tags or {"owner": "alice"}),
        last_started_at=started,
        instance_type="p3.2xlarge",
    )


def idle(since: float, *, last_activity: float | None = None) -> Verdict:
    activity = None if last_activity is None else day(last_activity)
    return Verdict.idle(REF, day(since), "no GPU use", last_activity=activity)


def state(
    start: float = 0,
    *,
    notified: float | None = None,
    warned: float | None = None,
    stop_due: float | None = None,
    stopped: float | None = None,
) -> LifecycleState:
    def at(n: float | None) -> datetime | None:
        return None if n is None else day(n)

    return LifecycleState(
        key=KEY,
        streak_start=day(start),
        notified_at=at(notified),
        warned_at=at(warned),
        stop_due=at(stop_due),
        stopped_at=at(stopped),
        owner="alice",
    )


@dataclass(frozen=True)
class Row:
    now: float
    expect: Action
    status: Status = Status.IDLE
    verdict: Verdict = field(default_factory=lambda: idle(0))
    prior: LifecycleState | None = None
    rule: Rule = DEFAULT_RULE
    started: float | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: {"owner": "alice"})
    stop_due: float | None = None  # the decision's stop date, in days
    streak_start: float | None = 0  # None: the decision carries no streak


ROWS = [
    pytest.param(Row(now=29, expect=Action.NONE, stop_due=60), id="fresh-idle-below-notice"),
    pytest.param(Row(now=30, expect=Action.NOTIFY, stop_due=60), id="exactly-at-notice-notifies"),
    pytest.param(
        Row(now=31, expect=Action.NONE, prior=state(notified=30), stop_due=60),
        id="notice-already-delivered-none",
    ),
    pytest.param(
        Row(now=31, expect=Action.NOTIFY, prior=state(), stop_due=60),
        id="notice-never-delivered-notifies-again",
    ),
    pytest.param(
        Row(now=52.9, expect=Action.NONE, prior=state(notified=30), stop_due=60),
        id="just-before-warning-none",
    ),
    pytest.param(
        Row(now=53, expect=Action.WARN, prior=state(notified=30), stop_due=60),
        id="day-53-warns-with-stop-at-start-plus-60",
    ),
    pytest.param(
        Row(now=100, expect=Action.WARN, stop_due=107),
        id="first-run-100-days-warns-only-stop-in-7-days",
    ),
    pytest.param(
        Row(
            now=60,
            expect=Action.STOP,
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=60,
        ),
        id="warned-7-days-ago-idle-60-stops",
    ),
    pytest.param(
        Row(
            now=59.9,
            expect=Action.NONE,
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=60,
        ),
        id="warned-but-stop-date-not-reached",
    ),
    pytest.param(
        Row(now=70, expect=Action.NONE, prior=state(warned=64, stop_due=71), stop_due=71),
        id="warned-6-days-ago-idle-70-waits",
    ),
    pytest.param(
        Row(now=70, expect=Action.NONE, prior=state(warned=64), stop_due=71),
        id="warned-6-days-ago-no-recorded-due-waits-7-days",
    ),
    pytest.param(
        Row(now=71, expect=Action.STOP, prior=state(warned=64), stop_due=71),
        id="warned-7-days-ago-idle-71-stops",
    ),
    pytest.param(
        Row(now=65, expect=Action.WARN, prior=state(notified=30), stop_due=72),
        id="warning-never-delivered-day-65-warns-never-stops",
    ),
    pytest.param(
        Row(
            now=70,
            expect=Action.NOTIFY,
            verdict=idle(40, last_activity=40),
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=100,
            streak_start=40,
        ),
        id="activity-after-streak-start-new-streak",
    ),
    pytest.param(
        Row(
            now=69,
            expect=Action.NONE,
            verdict=idle(40, last_activity=40),
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=100,
            streak_start=40,
        ),
        id="activity-after-streak-start-no-notice-before-30-days",
    ),
    pytest.param(
        Row(
            now=70,
            expect=Action.NOTIFY,
            verdict=idle(40),
            started=40,
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=100,
            streak_start=40,
        ),
        id="restarted-new-streak",
    ),
    pytest.param(
        Row(
            now=45,
            expect=Action.NONE,
            verdict=idle(0),
            started=40,
            prior=state(notified=30),
            stop_due=100,
            streak_start=40,
        ),
        id="restarted-stale-verdict-streak-starts-at-restart",
    ),
    pytest.param(
        Row(
            now=62,
            expect=Action.NONE,
            prior=state(notified=30, warned=53, stop_due=60, stopped=60),
            stop_due=120,
            streak_start=60,
        ),
        id="prior-stopped-new-streak-starts-at-the-stop",
    ),
    pytest.param(
        Row(
            now=53,
            expect=Action.WARN,
            verdict=idle(20),
            prior=state(notified=30),
            stop_due=60,
        ),
        id="censored-window-keeps-earlier-streak-start",
    ),
    pytest.param(
        Row(
            now=45,
            expect=Action.NONE,
            verdict=idle(5),
            prior=state(10, notified=40),
            stop_due=65,
            streak_start=5,
        ),
        id="earlier-verdict-same-streak-keeps-notice",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.UNKNOWN,
            verdict=Verdict.unknown(REF, "AccessDenied: cloudwatch:GetMetricData"),
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="unknown-skips-even-when-stop-due",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.NONE,
            status=Status.ACTIVE,
            verdict=Verdict.active(REF, "GPU 80%", last_activity=day(61)),
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="active-none",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={"owner": "alice", EXEMPT_TAG: "true"},
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="exempt-true-skips",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={EXEMPT_TAG: day(61).date().isoformat()},
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="exempt-until-today-inclusive-skips",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={EXEMPT_TAG: day(90).date().isoformat()},
            streak_start=None,
        ),
        id="exempt-future-date-skips",
    ),
    pytest.param(
        Row(
            now=30,
            expect=Action.NOTIFY,
            tags={EXEMPT_TAG: day(29).date().isoformat()},
            stop_due=60,
        ),
        id="exempt-expired-date-no-longer-exempt",
    ),
    pytest.param(
        Row(
            now=71,
            expect=Action.WARN,
            tags={EXEMPT_TAG: day(69).date().isoformat()},
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=78,
        ),
        id="warned-before-a-dated-exemption-ended-is-warned-again-never-stopped",
    ),
    pytest.param(
        Row(
            now=77,
            expect=Action.STOP,
            tags={EXEMPT_TAG: day(69).date().isoformat()},
            prior=state(notified=30, warned=70, stop_due=77),
            stop_due=77,
        ),
        id="warned-after-the-exemption-ended-stops-on-the-new-date",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={"owner": "alice", EXEMPT_TAG: ""},
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="exempt-empty-value-skips",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={"owner": "alice", EXEMPT_TAG: "9999-12-31"},
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="exempt-until-9999-12-31-skips",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={EXEMPT_TAG: "until the paper deadline"},
            prior=state(notified=30, warned=53, stop_due=60),
            streak_start=None,
        ),
        id="exempt-garbage-value-treated-as-exempt",
    ),
    pytest.param(
        Row(
            now=61,
            expect=Action.SKIP,
            status=Status.EXEMPT,
            tags={"Janitor-Exempt": "TRUE"},
            streak_start=None,
        ),
        id="exempt-tag-key-and-value-case-insensitive",
    ),
    pytest.param(
        Row(now=30, expect=Action.NOTIFY, rule=NOTIFY_ONLY, stop_due=None),
        id="notify-only-notifies",
    ),
    pytest.param(
        Row(now=100, expect=Action.NOTIFY, rule=NOTIFY_ONLY, stop_due=None),
        id="notify-only-first-run-old-resource-notifies-not-warns",
    ),
    pytest.param(
        Row(now=53, expect=Action.NONE, rule=NOTIFY_ONLY, prior=state(notified=30), stop_due=None),
        id="notify-only-never-warns",
    ),
    pytest.param(
        Row(
            now=100,
            expect=Action.NONE,
            rule=NOTIFY_ONLY,
            prior=state(notified=30, warned=53, stop_due=60),
            stop_due=None,
        ),
        id="notify-only-never-stops-even-after-warning",
    ),
    pytest.param(
        Row(now=0.9, expect=Action.NONE, rule=SHORT_RULE, stop_due=3),
        id="custom-below-1d-notice",
    ),
    pytest.param(
        Row(now=1, expect=Action.NOTIFY, rule=SHORT_RULE, stop_due=3),
        id="custom-1d-notice",
    ),
    pytest.param(
        Row(now=2, expect=Action.WARN, rule=SHORT_RULE, prior=state(notified=1), stop_due=3),
        id="custom-2d-warns",
    ),
    pytest.param(
        Row(
            now=3,
            expect=Action.STOP,
            rule=SHORT_RULE,
            prior=state(notified=1, warned=2, stop_due=3),
            stop_due=3,
        ),
        id="custom-3d-stops",
    ),
    pytest.param(
        Row(now=-1, expect=Action.NONE, stop_due=None),
        id="streak-starting-in-the-future-none",
    ),
]


@pytest.mark.parametrize("row", ROWS)
def test_decide(row: Row) -> None:
    resource = make_resource(
        started=None if row.started is None else day(row.started), tags=row.tags
    )
    decision = decide(
        resource=resource, verdict=row.verdict, prior=row.prior, rule=row.rule, now=day(row.now)
    )

    assert decision.ref == REF
    assert (decision.action, decision.status) == (row.expect, row.status), decision.reason
    assert decision.stop_due == (None if row.stop_due is None else day(row.stop_due))
    expected_start = None if row.streak_start is None else day(row.streak_start)
    assert decision.streak_start == expected_start
    assert decision.reason


def test_decide_warning_reason_names_exact_stop_date() -> None:
    decision = decide(
        resource=make_resource(),
        verdict=idle(0),
        prior=state(notified=30),
        rule=DEFAULT_RULE,
        now=day(53),
    )
    assert decision.action is Action.WARN
    assert "2024-03-01 00:00 UTC" in decision.reason  # day 60 = 2024-03-01
    assert decision.idle_days == pytest.approx(53)


def test_decide_exempt_is_reported_with_idle_facts() -> None:
    decision = decide(
        resource=make_resource(tags={EXEMPT_TAG: "true"}),
        verdict=idle(0),
        prior=None,
        rule=DEFAULT_RULE,
        now=day(61),
    )
    assert decision.status is Status.EXEMPT
    assert "janitor-exempt" in decision.reason
    assert decision.idle_since == day(0)
    assert decision.idle_days == pytest.approx(61)


def test_decide_unknown_reason_carries_evidence() -> None:
    decision = decide(
        resource=make_resource(),
        verdict=Verdict.unknown(REF, "no datapoints"),
        prior=None,
        rule=DEFAULT_RULE,
        now=day(61),
    )
    assert decision.action is Action.SKIP
    assert "no datapoints" in decision.reason


def test_decide_rejects_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            resource=make_resource(),
            verdict=idle(0),
            prior=None,
            rule=DEFAULT_RULE,
            now=datetime(2024, 3, 1),  # noqa: DTZ001 (the point of the test)
        )


# --- next_state ---------------------------------------------------------------------------------


def _decision(
    action: Action,
    status: Status = Status.IDLE,
    *,
    start: float | None = 0,
    stop_due: float | None = None,
) -> Decision:
    return Decision(
        REF,
        action,
        status,
        "test",
        stop_due=None if stop_due is None else day(stop_due),
        streak_start=None if start is None else day(start),
    )


@dataclass(frozen=True)
class StateRow:
    prior: LifecycleState | None
    decision: Decision
    delivered: bool
    stopped: bool
    expect: LifecycleState | None


NOW = 40  # the day next_state runs in STATE_ROWS
OWNED = {"owner": "alice"}

STATE_ROWS = [
    pytest.param(
        StateRow(None, _decision(Action.NOTIFY), True, False, state(notified=NOW)),
        id="notice-delivered-remembered",
    ),
    pytest.param(
        StateRow(None, _decision(Action.NOTIFY), False, False, state()),
        id="notice-not-delivered-not-remembered",
    ),
    pytest.param(
        StateRow(
            state(notified=30),
            _decision(Action.WARN, stop_due=60),
            True,
            False,
            state(notified=30, warned=NOW, stop_due=60),
        ),
        id="warning-delivered-remembered-with-stop-date",
    ),
    pytest.param(
        StateRow(
            state(notified=30),
            _decision(Action.WARN, stop_due=60),
            False,
            False,
            state(notified=30),
        ),
        id="warning-not-delivered-not-remembered",
    ),
    pytest.param(
        StateRow(
            state(warned=30, stop_due=37),
            _decision(Action.STOP, stop_due=37),
            False,
            True,
            state(warned=30, stop_due=37, stopped=NOW),
        ),
        id="stop-done-remembered",
    ),
    pytest.param(
        StateRow(
            state(warned=30, stop_due=37),
            _decision(Action.STOP, stop_due=37),
            False,
            False,
            state(warned=30, stop_due=37),
        ),
        id="stop-not-done-not-remembered",
    ),
    pytest.param(
        StateRow(
            state(notified=30),
            _decision(Action.NONE, Status.ACTIVE, start=None),
            False,
            False,
            None,
        ),
        id="active-ends-streak",
    ),
    pytest.param(
        StateRow(
            state(notified=30),
            _decision(Action.SKIP, Status.UNKNOWN, start=None),
            False,
            False,
            state(notified=30),
        ),
        id="unknown-keeps-prior",
    ),
    pytest.param(
        StateRow(
            state(notified=30),
            _decision(Action.SKIP, Status.EXEMPT, start=None),
            False,
            False,
            state(notified=30),
        ),
        id="exempt-keeps-notice",
    ),
    pytest.param(
        StateRow(
            state(notified=30, warned=33, stop_due=40),
            _decision(Action.SKIP, Status.EXEMPT, start=None),
            False,
            False,
            state(notified=30),
        ),
        id="exempt-clears-warning-and-stop-date",
    ),
    pytest.param(
        StateRow(None, _decision(Action.SKIP, Status.EXEMPT, start=None), False, False, None),
        id="exempt-without-prior-stores-nothing",
    ),
    pytest.param(
        StateRow(None, _decision(Action.SKIP, Status.UNKNOWN, start=None), False, False, None),
        id="unknown-without-prior-stores-nothing",
    ),
    pytest.param(
        StateRow(
            state(notified=30, warned=33, stop_due=40),
            _decision(Action.NONE, start=35),
            False,
            False,
            state(35),
        ),
        id="new-streak-forgets-old-notice-and-warning",
    ),
    pytest.param(
        StateRow(
            state(0, notified=30, warned=33, stop_due=40, stopped=40),
            _decision(Action.NONE, start=0),
            False,
            False,
            state(0),
        ),
        id="after-stop-fresh-state",
    ),
    pytest.param(
        StateRow(
            state(10, notified=30),
            _decision(Action.NONE, start=5),
            False,
            False,
            state(5, notified=30),
        ),
        id="earlier-start-same-streak-keeps-notice",
    ),
]


@pytest.mark.parametrize("row", STATE_ROWS)
def test_next_state(row: StateRow) -> None:
    result = next_state(
        row.prior,
        row.decision,
        key=KEY,
        owner="alice",
        delivered=row.delivered,
        stopped=row.stopped,
        now=day(NOW),
    )
    assert result == row.expect


def test_next_state_updates_owner() -> None:
    result = next_state(
        state(notified=30),
        _decision(Action.NONE),
        key=KEY,
        owner="bob",
        delivered=False,
        stopped=False,
        now=day(31),
    )
    assert result == LifecycleState(KEY, day(0), notified_at=day(30), owner="bob")


# --- current_streak -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prior", "verdict", "started", "continues"),
    [
        pytest.param(None, idle(0), None, False, id="no-prior"),
        pytest.param(state(notified=30), idle(0), None, True, id="same-streak"),
        pytest.param(state(notified=30), idle(20), None, True, id="censored-window-same-streak"),
        pytest.param(state(0), idle(0, last_activity=0), None, True, id="activity-at-start"),
        pytest.param(state(0), idle(5, last_activity=5), None, False, id="activity-after-start"),
        pytest.param(state(0), idle(5), 5, False, id="restarted-after-start"),
        pytest.param(state(0, stopped=60), idle(0), None, False, id="stopped"),
    ],
)
def test_current_streak(
    prior: LifecycleState | None, verdict: Verdict, started: float | None, continues: bool
) -> None:
    resource = make_resource(started=None if started is None else day(started))
    result = current_streak(resource, verdict, prior)
    assert result is (prior if continues else None)


# --- day-by-day simulation ----------------------------------------------------------------------


def simulate(
    rule: Rule,
    *,
    delivered: Callable[[int], bool],
    days: int = 70,
    tags: Callable[[int], Mapping[str, str]] | None = None,
) -> tuple[list[tuple[int, Action]], dict[int, Decision]]:
    """One idle resource (created day 0, never used), one run per day, state fed back.

    Once stopped the resource is no longer listed by the scanner, so it is not decided on.
    `tags(n)`: the resource's tags on day n (default: an owner tag only).
    """
    resource = make_resource()
    verdict = idle(0)
    prior: LifecycleState | None = None
    actions: list[tuple[int, Action]] = []
    decisions: dict[int, Decision] = {}
    for n in range(days + 1):
        if prior is not None and prior.stopped_at is not None:
            continue
        now = day(n)
        if tags is not None:
            resource = make_resource(tags=tags(n))
        decision = decide(resource=resource, verdict=verdict, prior=prior, rule=rule, now=now)
        decisions[n] = decision
        if decision.action is not Action.NONE:
            actions.append((n, decision.action))
        prior = next_state(
            prior,
            decision,
            key=KEY,
            owner=owner_of(resource.tags, rule.owner_tags),
            delivered=delivered(n),
            stopped=True,
            now=now,
        )
    return actions, decisions


def test_simulation_notice_warning_stop() -> None:
    actions, decisions = simulate(DEFAULT_RULE, delivered=lambda n: True)

    assert actions == [(30, Action.NOTIFY), (53, Action.WARN), (60, Action.STOP)]
    assert decisions[53].stop_due == day(60)
    assert decisions[60].stop_due == day(60)
    assert max(decisions) == 60  # stopped, then no longer listed


def test_simulation_failed_warning_delivery_postpones_stop() -> None:
    actions, decisions = simulate(DEFAULT_RULE, delivered=lambda n: n not in (53, 54, 55))

    assert actions == [
        (30, Action.NOTIFY),
        (53, Action.WARN),
        (54, Action.WARN),
        (55, Action.WARN),
        (56, Action.WARN),
        (63, Action.STOP),
    ]
    assert decisions[56].stop_due == day(63)  # the date the delivered warning announced
    assert all(decisions[n].action is Action.NONE for n in range(57, 63))


def test_simulation_failed_notice_delivery_retries_next_day() -> None:
    actions, _ = simulate(DEFAULT_RULE, delivered=lambda n: n != 30)

    assert actions == [
        (30, Action.NOTIFY),
        (31, Action.NOTIFY),
        (53, Action.WARN),
        (60, Action.STOP),
    ]


def test_simulation_a_dated_exemption_resets_the_warning() -> None:
    """Warned on day 53, exempted on day 55 until day 80 inclusive: on day 81 the owner is warned
    again (stop 7 days later), never stopped on the old warning."""
    until = day(80).date().isoformat()

    def tags(n: int) -> Mapping[str, str]:
        return {"owner": "alice", EXEMPT_TAG: until} if n >= 55 else {"owner": "alice"}

    actions, decisions = simulate(DEFAULT_RULE, delivered=lambda n: True, days=100, tags=tags)

    assert actions[:2] == [(30, Action.NOTIFY), (53, Action.WARN)]
    assert all(decisions[n].status is Status.EXEMPT for n in range(55, 81))
    assert decisions[81].action is Action.WARN
    assert decisions[81].stop_due == day(88)
    assert actions[2:] == [*((n, Action.SKIP) for n in range(55, 81)), (81, Action.WARN),
                           (88, Action.STOP)]  # fmt: skip


def test_simulation_an_exemption_removed_early_also_resets_the_warning() -> None:
    """`true` set on day 55 and removed on day 58: warned again on day 58, stop on day 65."""

    def tags(n: int) -> Mapping[str, str]:
        return {"owner": "alice", EXEMPT_TAG: "true"} if 55 <= n < 58 else {"owner": "alice"}

    actions, _ = simulate(DEFAULT_RULE, delivered=lambda n: True, days=100, tags=tags)

    assert [a for a in actions if a[1] is not Action.SKIP] == [
        (30, Action.NOTIFY),
        (53, Action.WARN),
        (58, Action.WARN),
        (65, Action.STOP),
    ]


def test_simulation_notify_only_rule() -> None:
    actions, _ = simulate(NOTIFY_ONLY, delivered=lambda n: True, days=200)

    assert actions == [(30, Action.NOTIFY)]


def test_simulation_custom_durations() -> None:
    actions, _ = simulate(SHORT_RULE, delivered=lambda n: True, days=10)

    assert actions == [(1, Action.NOTIFY), (2, Action.WARN), (3, Action.STOP)]


# --- exemption() and owner_of() -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "now", "exempt", "until"),
    [
        pytest.param({}, day(0), False, None, id="no-tag"),
        pytest.param({"other": "true"}, day(0), False, None, id="other-tag"),
        pytest.param({EXEMPT_TAG: "true"}, day(0), True, None, id="true"),
        pytest.param({EXEMPT_TAG: " True "}, day(0), True, None, id="true-padded"),
        pytest.param({"JANITOR-EXEMPT": "yes"}, day(0), True, None, id="key-case-insensitive"),
        pytest.param({EXEMPT_TAG: "false"}, day(0), False, None, id="false"),
        pytest.param({EXEMPT_TAG: ""}, day(0), True, None, id="empty-value-exempts"),
        pytest.param({EXEMPT_TAG: "  "}, day(0), True, None, id="blank-value-exempts"),
        pytest.param({"Janitor-Exempt": ""}, day(0), True, None, id="empty-any-key-case"),
        pytest.param({EXEMPT_TAG: "off"}, day(0), False, None, id="off"),
        pytest.param({EXEMPT_TAG: "9999-12-31"}, day(0), True, None, id="far-future-date"),
        pytest.param(
            {EXEMPT_TAG: "9999-12-31T23:59:59Z"}, day(0), True, None, id="far-future-datetime"
        ),
        pytest.param(
            {EXEMPT_TAG: "9999-12-30"},
            day(0),
            True,
            datetime(9999, 12, 31, tzinfo=UTC),
            id="day-before-far-future",
        ),
        pytest.param(
            {EXEMPT_TAG: "2024-01-10"},
            day(9) - timedelta(seconds=1),
            True,
            day(10),
            id="date-before",
        ),
        pytest.param(
            {EXEMPT_TAG: "2024-01-10"},
            datetime(2024, 1, 10, 23, 59, 59, tzinfo=UTC),
            True,
            day(10),
            id="date-last-second-inclusive",
        ),
        pytest.param({EXEMPT_TAG: "2024-01-10"}, day(10), False, None, id="date-expired"),
        pytest.param(
            {EXEMPT_TAG: "2024-01-10T12:00:00Z"}, day(9), True, day(10), id="datetime-uses-date"
        ),
        pytest.param({EXEMPT_TAG: "soon"}, day(0), True, None, id="garbage-is-exempt"),
        pytest.param({EXEMPT_TAG: "2024-13-45"}, day(0), True, None, id="bad-date-is-exempt"),
    ],
)
def test_exemption(
    tags: dict[str, str], now: datetime, exempt: bool, until: datetime | None
) -> None:
    result = exemption(tags, EXEMPT_TAG, now)
    assert result.exempt is exempt
    assert result.until == until
    if tags.get(EXEMPT_TAG) is not None:
        assert EXEMPT_TAG in result.reason or "expired" in result.reason


def test_an_expired_exemption_says_when_it_ended() -> None:
    assert exemption({EXEMPT_TAG: "2024-01-10"}, EXEMPT_TAG, day(11)).ended == day(10)
    assert exemption({EXEMPT_TAG: "2024-01-10"}, EXEMPT_TAG, day(9)).ended is None
    assert exemption({EXEMPT_TAG: "true"}, EXEMPT_TAG, day(9)).ended is None


def test_a_far_future_exemption_names_its_date() -> None:
    result = exemption({EXEMPT_TAG: "9999-12-31"}, EXEMPT_TAG, day(0))
    assert result.reason == "tag janitor-exempt until 9999-12-31"


def test_exemption_garbage_reason_explains() -> None:
    result = exemption({EXEMPT_TAG: "soon"}, EXEMPT_TAG, day(0))
    assert "treated as exempt" in result.reason


def test_exemption_expired_reason_names_date() -> None:
    result = exemption({EXEMPT_TAG: "2024-01-10"}, EXEMPT_TAG, day(11))
    assert result.reason == "exemption expired on 2024-01-10"


@pytest.mark.parametrize(
    ("tags", "owner_tags", "expected"),
    [
        pytest.param(
            {"created-by": "ci", "Owner": "bob", "owner": "alice"},
            DEFAULT_OWNER_TAGS,
            "alice",
            id="first-in-policy-order",
        ),
        pytest.param(
            {"created-by": "ci", "Owner": "bob", "owner": "  "},
            DEFAULT_OWNER_TAGS,
            "bob",
            id="blank-skipped",
        ),
        pytest.param(
            {"created-by": "ci", "owner": "alice"},
            ("created-by", "owner"),
            "ci",
            id="policy-order-not-tag-order",
        ),
        pytest.param({"owner-email": " a@x.io "}, DEFAULT_OWNER_TAGS, "a@x.io", id="stripped"),
        pytest.param({"team": "ml"}, DEFAULT_OWNER_TAGS, None, id="none"),
        pytest.param({"owner": "alice"}, (), None, id="no-owner-tags"),
        pytest.param({"OWNER": "carol"}, DEFAULT_OWNER_TAGS, "carol", id="key-upper-case"),
        pytest.param({"Owner-Email": "c@x.io"}, DEFAULT_OWNER_TAGS, "c@x.io", id="key-mixed-case"),
        pytest.param(
            {"OWNER": "carol", "owner": "alice"}, ("owner",), "alice", id="exact-key-first"
        ),
        pytest.param(
            {"owner": " ", "OWNER": "carol"}, ("owner",), "carol", id="blank-exact-skipped"
        ),
        pytest.param({"Created-By": "ci"}, ("created-by",), "ci", id="policy-key-any-case"),
    ],
)
def test_owner_of(tags: dict[str, str], owner_tags: tuple[str, ...], expected: str | None) -> None:
    assert owner_of(tags, owner_tags) == expected


@pytest.mark.parametrize("idle_days", [30, 53, 60, 400])
def test_a_resource_that_must_never_be_stopped_is_only_ever_notified(idle_days: int) -> None:
    """A kind's stop_refusal (spot, instance-store) turns every warn/stop into a notice."""
    from dataclasses import replace as _replace

    now = T0 + timedelta(days=idle_days)
    resource = _replace(make_resource(), stop_refusal="spot instance: never stopped by janitor")
    verdict = Verdict.idle(REF, T0, "idle")
    decision = decide(resource=resource, verdict=verdict, prior=None, rule=make_rule(), now=now)
    assert decision.action is Action.NOTIFY
    assert decision.stop_due is None
    notified = next_state(
        None, decision, key=REF.key, owner=None, delivered=True, stopped=False, now=now
    )
    again = decide(
        resource=resource,
        verdict=verdict,
        prior=notified,
        rule=make_rule(),
        now=now + timedelta(days=30),
    )
    assert again.action is Action.NONE
    assert "spot instance" in again.reason


# --- owner_destination(): the policy's `owners:` for every cloud --------------------------------

OWNER_MAP = {"ml-team": "#ml-alerts", "Bob": "robert@corp.example", "carol": "U0CAROL01"}


@pytest.mark.parametrize(
    ("value", "owner_map", "domain", "expected"),
    [
        pytest.param("ml-team", OWNER_MAP, "example.com", "#ml-alerts", id="map-first"),
        pytest.param("bob", OWNER_MAP, "example.com", "robert@corp.example", id="map-any-case"),
        pytest.param("carol", OWNER_MAP, None, "U0CAROL01", id="map-without-domain"),
        pytest.param("alice", OWNER_MAP, "example.com", "alice@example.com", id="domain"),
        pytest.param(" alice ", {}, "example.com", "alice@example.com", id="domain-stripped"),
        pytest.param("a@x.io", {}, "example.com", "a@x.io", id="email-as-is"),
        pytest.param("U0ALICE01", {}, "example.com", "U0ALICE01", id="slack-user-id"),
        pytest.param("W0ALICE01", {}, "example.com", "W0ALICE01", id="slack-enterprise-user"),
        pytest.param("C0TEAM001", {}, "example.com", "C0TEAM001", id="slack-channel-id"),
        pytest.param("#ml", {}, "example.com", "#ml", id="channel"),
        pytest.param("u0alice01", {}, "example.com", "u0alice01@example.com", id="gcp-lower-id"),
        pytest.param("alice", {}, None, "alice", id="no-domain-as-is"),
        pytest.param("alice", OWNER_MAP, None, "alice", id="unmapped-as-is"),
        pytest.param(None, OWNER_MAP, "example.com", None, id="no-owner"),
        pytest.param("  ", OWNER_MAP, "example.com", None, id="blank"),
    ],
)
def test_owner_destination(
    value: str | None, owner_map: dict[str, str], domain: str | None, expected: str | None
) -> None:
    assert owner_destination(value, owner_map=owner_map, domain=domain) == expected
