"""Cloud-neutral daily evidence: whole-day windows, the newest idle streak, staleness.

Every metrics service (CloudWatch, Cloud Monitoring, Azure Monitor) answers daily buckets;
these helpers turn "was the day active" per bucket into where the idle streak starts. They
depend on datetimes only, so every cloud's probes share them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from janitor.model import Confidence, Resource, Verdict, Window, require_aware, utc

DAY = timedelta(days=1)
# A newest datapoint older than this means the metrics stopped arriving: the verdict is unknown.
STALE_AFTER = timedelta(days=3)


def daily_bounds(window: Window) -> tuple[datetime, datetime]:
    """The window widened to whole UTC days: midnight on or before start, midnight after end."""
    start = _midnight(window.start)
    end = _midnight(window.end)
    if end < window.end.astimezone(UTC):
        end += DAY
    if end <= start:
        end = start + DAY
    return start, end


def _midnight(value: datetime) -> datetime:
    utc = require_aware(value, "window bound").astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Streak:
    """Where the newest run of inactive days starts, from per-day activity."""

    active: bool  # the newest day is active
    last_active_day: datetime | None  # start of the newest active day
    idle_days: tuple[datetime, ...]  # days after the last active one, oldest first

    @property
    def last_activity(self) -> datetime | None:
        """The end of the last active day, or None when no day was active."""
        return None if self.last_active_day is None else self.last_active_day + DAY


def daily_streak(active_by_day: Mapping[datetime, bool]) -> Streak:
    """The newest streak of `active_by_day` (daily bucket start -> was the day active)."""
    if not active_by_day:
        raise ValueError("daily_streak needs at least one day")
    days = sorted(active_by_day)
    active_days = [d for d in days if active_by_day[d]]
    last_active = active_days[-1] if active_days else None
    idle = tuple(d for d in days if last_active is None or d > last_active)
    return Streak(active_by_day[days[-1]], last_active, idle)


# Something used within this long before `now` is active, whatever the daily buckets say.
RECENT = timedelta(hours=24)


def recently_active(streak: Streak, now: datetime) -> bool:
    """The last active day may hold activity within the last 24 hours.

    Daily buckets cannot tell 00:01 from 23:59, so a day whose bucket ends after `now - 24h`
    counts: an endpoint last invoked 5 hours ago, before midnight UTC, is active today (its
    newest, incomplete day has no invocations yet), and one last used at 00:01 yesterday
    stays active until midnight. Never calls something idle that was used in the last day.
    """
    if streak.last_active_day is None:
        return False
    return streak.last_active_day + DAY > utc(now) - RECENT


def in_use_on(streak: Streak, now: datetime) -> datetime | None:
    """The last active day when the resource counts as in use (its streak is active, or it was
    used within the last 24 hours), else None: the one test every probe makes before `idle`."""
    if streak.active or recently_active(streak, now):
        return streak.last_active_day
    return None


def is_stale(newest_day: datetime, now: datetime, stale_after: timedelta = STALE_AFTER) -> bool:
    """Every datapoint of the newest daily bucket is more than `stale_after` old."""
    return now - (newest_day + DAY) > stale_after


def idle_since(
    streak: Streak,
    resource: Resource,
    window: Window,
    evidence_days: Collection[datetime] | None = None,
) -> datetime:
    """Start of the idle streak, in UTC: the end of the last active day, or the window's start
    when no day was active; never before `resource.streak_floor`. Not capped at now.

    With `evidence_days` (the daily buckets for which the probe holds evidence of inactivity),
    never earlier than the evidence shows either: the streak starts at the first day of the
    newest unbroken run of evidence days that ends on the newest idle day, so a gap (a day
    with no datapoint at all) ends the streak there instead of being read as idle."""
    floor = resource.streak_floor.astimezone(UTC)
    start = window.start.astimezone(UTC)
    if streak.last_active_day is None:
        since = max(floor, start)
    else:
        since = max(streak.last_active_day + DAY, floor)
    if evidence_days is not None and streak.idle_days:
        covered = set(evidence_days)
        first = streak.idle_days[-1]
        while first - DAY in covered and (
            streak.last_active_day is None or first - DAY > streak.last_active_day
        ):
            first -= DAY
        since = max(since, first, start)
    return since


@dataclass(frozen=True, slots=True)
class CountedUse:
    """How a daily count of use (an endpoint's requests, predictions) reads in the evidence."""

    noun: str  # plural: "requests"
    one: str  # singular: "request"
    source: str  # the metrics read and how, in parentheses after each figure
    missing: str  # the evidence when there is no datapoint at all
    newest: str  # what the newest datapoint is, for staleness: "request/heartbeat datapoint"


def counted_verdict(
    resource: Resource,
    counts: Mapping[datetime, float],
    beat: Mapping[datetime, float],
    *,
    limit: float,
    use: CountedUse,
    window: Window,
    now: datetime,
) -> Verdict:
    """An endpoint judged by a daily count of use with a heartbeat: a day counts as active
    when its count is above `limit`; a heartbeat day with no count is a day of zero use; no
    datapoint at all, or none for `STALE_AFTER`, is unknown. The idle streak starts where the
    evidence says (`idle_since`)."""
    ref = resource.ref
    days = set(counts) | set(beat)
    if not days:
        return Verdict.unknown(ref, use.missing)
    newest = max(days)
    if is_stale(newest, now):
        return Verdict.unknown(
            ref,
            f"newest {use.newest} is from {_day(newest)}, more than {STALE_AFTER.days} days ago",
        )
    streak = daily_streak({day: counts.get(day, 0.0) > limit for day in days})
    last = in_use_on(streak, now)
    if last is not None:
        return Verdict.active(
            ref,
            f"{counts.get(last, 0.0):g} {use.noun} on {_day(last)} ({use.source})",
            last_activity=min(last + DAY, now),
        )
    since = min(idle_since(streak, resource, window, days), now)
    idle = [day for day in streak.idle_days if day + DAY > since] or list(streak.idle_days)
    total = sum(counts.get(day, 0.0) for day in idle)
    silent = sum(1 for day in idle if day not in counts)
    evidence = f"{total:g} {use.noun} since {_day(since)} ({use.source})"
    if silent:
        evidence += f"; {silent} day(s) with a heartbeat and no {use.one} counted"
    if streak.last_active_day is not None:
        evidence += f"; last busy day {_day(streak.last_active_day)}"
    return Verdict.idle(
        ref, since, evidence, confidence=Confidence.HIGH, last_activity=streak.last_activity
    )


def _day(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d")
