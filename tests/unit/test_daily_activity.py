"""The pure daily-activity helpers of `cloudwatch.py`: streak, staleness and idle-since.

`day(n)` is the daily bucket starting n days after T0 (00:00 UTC). No CloudWatch is involved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from janitor.evidence import (
    STALE_AFTER,
    CountedUse,
    Streak,
    counted_verdict,
    daily_streak,
    idle_since,
    is_stale,
    recently_active,
)
from janitor.model import Cloud, Resource, ResourceRef, Window

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def box(created: float, started: float | None = None) -> Resource:
    return Resource(
        ref=ResourceRef(Cloud.AWS, "aws.ec2-gpu", "123456789012", "us-east-1", "i-1"),
        name="box",
        state="running",
        created_at=day(created),
        last_started_at=None if started is None else day(started),
    )


def test_streak_of_an_active_newest_day() -> None:
    streak = daily_streak({day(2): False, day(0): True, day(1): False, day(3): True})
    assert streak == Streak(active=True, last_active_day=day(3), idle_days=())
    assert streak.last_activity == day(4)


def test_streak_idle_after_the_last_active_day() -> None:
    streak = daily_streak({day(3): False, day(1): True, day(0): False, day(2): False})
    assert streak == Streak(active=False, last_active_day=day(1), idle_days=(day(2), day(3)))
    assert streak.last_activity == day(2)


def test_streak_never_active() -> None:
    streak = daily_streak({day(1): False, day(0): False})
    assert streak == Streak(active=False, last_active_day=None, idle_days=(day(0), day(1)))
    assert streak.last_activity is None


def test_streak_of_no_days_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        daily_streak({})


@pytest.mark.parametrize(
    ("now", "stale"),
    [
        (day(1) + STALE_AFTER, False),  # exactly STALE_AFTER after the bucket's end
        (day(1) + STALE_AFTER + timedelta(seconds=1), True),
        (day(0) + timedelta(hours=5), False),  # the bucket is still being filled
    ],
)
def test_is_stale_counts_from_the_end_of_the_newest_bucket(now: datetime, stale: bool) -> None:
    assert is_stale(day(0), now) is stale


def test_is_stale_with_its_own_threshold() -> None:
    assert is_stale(day(0), day(3), stale_after=timedelta(days=1))
    assert not is_stale(day(0), day(3), stale_after=timedelta(days=2))


def test_idle_since_the_end_of_the_last_active_day() -> None:
    streak = daily_streak({day(5): True, day(6): False, day(7): False})
    assert idle_since(streak, box(created=0), Window(day(0), day(8))) == day(6)


def test_idle_since_no_earlier_than_the_streak_floor() -> None:
    streak = daily_streak({day(5): True, day(6): False, day(7): False})
    assert idle_since(streak, box(created=0, started=6.5), Window(day(0), day(8))) == day(6.5)


def test_never_active_is_idle_since_the_window_start_or_the_floor() -> None:
    streak = daily_streak({day(5): False, day(6): False})
    assert idle_since(streak, box(created=0), Window(day(2), day(8))) == day(2)
    assert idle_since(streak, box(created=4), Window(day(2), day(8))) == day(4)


def test_idle_since_is_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    streak = daily_streak({day(5): False})
    window = Window(day(2).astimezone(plus_two), day(8).astimezone(plus_two))
    since = idle_since(streak, box(created=0), window)
    assert since == day(2)
    assert since.tzinfo == UTC


# -- the current, incomplete day (issue 6, section 5) --------------------------------------


def test_used_five_hours_ago_across_midnight_is_recently_active() -> None:
    # invoked at 22:00 on day 1; at 03:00 on day 2 the newest (incomplete) day is still empty
    streak = daily_streak({day(0): False, day(1): True, day(2): False})
    assert not streak.active
    assert recently_active(streak, day(2) + timedelta(hours=3))


def test_a_day_ending_24_hours_ago_or_more_is_not_recent() -> None:
    streak = daily_streak({day(1): True, day(2): False, day(3): False})
    assert recently_active(streak, day(2) + timedelta(hours=23, minutes=59))
    assert not recently_active(streak, day(3))  # day 1's bucket ended 24 h before
    assert not recently_active(daily_streak({day(1): False}), day(1))


# -- never earlier than the evidence shows ------------------------------------------------


def test_idle_since_starts_after_a_gap_in_the_evidence() -> None:
    window = Window(day(0), day(10))
    # evidence on days 0..3 and 6..9; nothing at all on days 4 and 5
    evidence = [day(n) for n in (0, 1, 2, 3, 6, 7, 8, 9)]
    streak = daily_streak(dict.fromkeys(evidence, False))
    assert idle_since(streak, box(-30), window) == day(0)
    assert idle_since(streak, box(-30), window, evidence) == day(6)


def test_idle_since_with_evidence_stops_at_the_last_active_day() -> None:
    window = Window(day(0), day(10))
    evidence = [day(n) for n in range(10)]
    streak = daily_streak({d: d == day(3) for d in evidence})
    assert idle_since(streak, box(-30), window, evidence) == day(4)


def test_idle_since_with_evidence_only_late_in_the_window() -> None:
    # traffic stopped long ago; the only evidence is the last 5 days: the streak is 5 days old
    window = Window(day(0) + timedelta(hours=7), day(20))
    evidence = [day(n) for n in range(15, 20)]
    streak = daily_streak(dict.fromkeys(evidence, False))
    assert idle_since(streak, box(-30), window, evidence) == day(15)
    assert idle_since(streak, box(17.5), window, evidence) == day(17.5)  # floor still wins


USE = CountedUse(
    noun="requests", one="request", source="src", missing="no data", newest="datapoint"
)


@pytest.mark.parametrize(
    ("counts", "beat", "status", "evidence"),
    [
        ({}, {}, "unknown", "no data"),
        ({day(1): 0.0}, {day(1): 1.0}, "unknown", "newest datapoint is from 2024-03-02"),
        ({day(8): 5.0}, {d: 1.0 for d in map(day, range(9))}, "active", "5 requests on"),
        # heartbeat days without a count are days of zero use; the streak starts after the
        # last busy day, and the evidence counts the silent days
        ({day(2): 9.0, day(5): 0.0}, {d: 1.0 for d in map(day, range(9))}, "idle", "5 day(s)"),
    ],
)
def test_counted_verdict(
    counts: dict[datetime, float], beat: dict[datetime, float], status: str, evidence: str
) -> None:
    now = day(9) + timedelta(hours=6)
    window = Window(day(0), now)
    verdict = counted_verdict(box(-10), counts, beat, limit=0.0, use=USE, window=window, now=now)
    assert verdict.status.value == status
    assert evidence in verdict.evidence
    if status == "idle":
        assert verdict.idle_since == day(3)
        assert "0 requests since 2024-03-04 (src)" in verdict.evidence
        assert "last busy day 2024-03-03" in verdict.evidence
