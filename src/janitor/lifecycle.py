"""Pure lifecycle decisions: notice, warning, stop, streak resets and exemptions.

No I/O here and no clock: `now` is always a parameter. The pipeline calls `decide` for every
resource and, once a side effect really happened (a message delivered, a stop done), calls
`next_state` to learn what to remember.

The rules:
- An idle streak starts at the last activity, else at the resource's last start or creation.
  Activity (or a new start) ends the streak; the next idle period starts fresh.
- At `notify_after` idle: one notice. At `stop_after - warning`: one warning naming the stop date.
  When both are due at once (first run on an old resource) only the warning is sent.
- Stop at `stop_after`, and never sooner than `warning` after a warning that was delivered.
- Unknown is never idle. Exempt resources are skipped, and reported; an exemption clears any
  warning and stop date, so after a dated exemption ends a new warning comes before any stop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from janitor.model import (
    Action,
    Decision,
    LifecycleState,
    Resource,
    Status,
    Verdict,
    require_aware,
)
from janitor.policy import Rule

_TRUE_WORDS = frozenset({"true", "yes", "1", "on", "forever", "permanent"})
_FALSE_WORDS = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True, slots=True)
class Exemption:
    exempt: bool
    reason: str
    until: datetime | None = None  # the moment a dated exemption ends (None: no end, or none)
    # When a dated exemption is over: the moment it ended. A warning delivered before then was
    # given before (or during) the exemption and no longer counts: a new one is needed.
    ended: datetime | None = None


def exemption(tags: Mapping[str, str], tag_key: str, now: datetime) -> Exemption:
    """Read the opt-out tag: `true`, or an ISO date the exemption lasts until (inclusive).

    Any value other than `false` (or `no`, `0`, `off`) exempts, the empty value included (the
    cloud consoles' "add tag" gives an empty value by default): somebody meant to opt out, and
    guessing otherwise could stop something in use.
    """
    value = _tag(tags, tag_key)
    if value is None:
        return Exemption(False, "")
    text = value.strip()
    if text == "":
        return Exemption(True, f"tag {tag_key} (empty value)")
    if text.lower() in _TRUE_WORDS:
        return Exemption(True, f"tag {tag_key}={text}")
    if text.lower() in _FALSE_WORDS:
        return Exemption(False, f"tag {tag_key}={text} does not exempt")
    try:
        until_date = date.fromisoformat(text[:10])
    except ValueError:
        return Exemption(True, f"tag {tag_key}={text!r} is not 'true' or a date; treated as exempt")
    if until_date >= date.max:
        # 9999-12-31: the day after cannot be represented; the exemption never ends.
        return Exemption(True, f"tag {tag_key} until {until_date.isoformat()}")
    until = datetime.combine(until_date + timedelta(days=1), time.min, tzinfo=UTC)
    if now < until:
        return Exemption(True, f"tag {tag_key} until {until_date.isoformat()}", until)
    return Exemption(False, f"exemption expired on {until_date.isoformat()}", ended=until)


def _tag(tags: Mapping[str, str], key: str) -> str | None:
    values = _tag_values(tags, key)
    return values[0] if values else None


def _tag_values(tags: Mapping[str, str], key: str) -> list[str]:
    """Values of the tags named `key`, case-insensitively; an exact match first."""
    lowered = key.lower()
    exact = [tags[key]] if key in tags else []
    return exact + [v for k, v in tags.items() if k != key and k.lower() == lowered]


def owner_of(tags: Mapping[str, str], owner_tags: tuple[str, ...]) -> str | None:
    """The first non-empty owner tag, in the policy's order; tag keys match case-insensitively
    (`OWNER=...` is an owner tag), an exact match first."""
    for key in owner_tags:
        for value in _tag_values(tags, key):
            if value.strip():
                return value.strip()
    return None


# Values that already name a Slack destination: a user id (U.../W...), a channel id (C.../G...),
# or a #channel. The same forms the Slack notifier recognises.
_SLACK_ID = re.compile(r"^[UWCG][A-Z0-9]{6,}$")


def owner_destination(
    value: str | None, *, owner_map: Mapping[str, str], domain: str | None
) -> str | None:
    """Where an owner tag or label value is delivered, the same for every cloud (the policy's
    `owners:`): `owner_map` first (exact, else case-insensitive key), then `value@domain` for a
    bare name (no `@`, not a Slack user or channel id, not a `#channel`), else the value as it is.

    GCP label values cannot hold `@` or `.`, so there an owner label is a bare name by necessity.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value in owner_map:
        return owner_map[value]
    lowered = value.lower()
    for key, destination in owner_map.items():
        if key.lower() == lowered:
            return destination
    if domain and "@" not in value and not value.startswith("#") and not _SLACK_ID.match(value):
        return f"{value}@{domain}"
    return value


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def current_streak(
    resource: Resource, verdict: Verdict, prior: LifecycleState | None
) -> LifecycleState | None:
    """The prior state if it still describes the current idle streak, else None."""
    if prior is None or prior.stopped_at is not None:
        return None
    if verdict.last_activity is not None and verdict.last_activity > prior.streak_start:
        return None  # activity since the streak began: it ended
    if resource.streak_floor > prior.streak_start:
        return None  # (re)started since: a new streak
    return prior


def decide(
    *,
    resource: Resource,
    verdict: Verdict,
    prior: LifecycleState | None,
    rule: Rule,
    now: datetime,
) -> Decision:
    require_aware(now, "now")
    ref = resource.ref

    exempt = exemption(resource.tags, rule.exempt_tag, now)
    if exempt.exempt:
        return Decision(
            ref,
            Action.SKIP,
            Status.EXEMPT,
            f"exempt: {exempt.reason}",
            idle_since=verdict.idle_since,
            idle_days=_idle_days(verdict.idle_since, now),
        )

    if verdict.status is Status.UNKNOWN:
        reason = f"unknown, never idle: {verdict.evidence}"
        return Decision(ref, Action.SKIP, Status.UNKNOWN, reason)

    if verdict.status is Status.ACTIVE:
        reason = "active"
        if prior is not None and prior.stopped_at is None:
            reason = "active again: the idle streak ended"
        return Decision(ref, Action.NONE, Status.ACTIVE, reason)

    if verdict.status is not Status.IDLE or verdict.idle_since is None:
        return Decision(ref, Action.SKIP, Status.UNKNOWN, "no usable verdict")

    streak = current_streak(resource, verdict, prior)
    # Idle cannot begin before the last start/creation nor before the last activity, whatever
    # the probe's window saw (a restart must give a fresh streak, not inherit stale idleness).
    streak_start = max(verdict.idle_since, resource.streak_floor)
    if verdict.last_activity is not None:
        streak_start = max(streak_start, verdict.last_activity)
    if streak is None and prior is not None and prior.stopped_at is not None:
        # A stop ends a streak: whatever comes after it cannot have been idle before it.
        streak_start = max(streak_start, prior.stopped_at)
    if streak is not None:
        # Same streak: a window that cannot see as far back must not shorten it.
        streak_start = min(streak.streak_start, streak_start)
    idle = now - streak_start
    idle_days = _days(idle)
    warn_at = rule.stop_after - rule.warning

    def idle_decision(action: Action, reason: str, stop_due: datetime | None = None) -> Decision:
        return Decision(
            ref,
            action,
            Status.IDLE,
            reason,
            idle_since=streak_start,
            idle_days=idle_days,
            stop_due=stop_due,
            streak_start=streak_start,
        )

    if idle < timedelta(0):
        return idle_decision(Action.NONE, "idle streak starts in the future")

    warned_at = streak.warned_at if streak else None
    if warned_at is not None and exempt.ended is not None and warned_at < exempt.ended:
        # Warned before a dated exemption ended: that warning was overtaken by the exemption
        # (the owner was told "exempt", not "stopping"), so a new one must be delivered first.
        warned_at = None
    notified_at = streak.notified_at if streak else None
    refusal = resource.stop_refusal or (None if rule.may_stop else "notify-only rule")
    may_stop = refusal is None

    if warned_at is not None:
        due = max(
            streak.stop_due if streak and streak.stop_due else streak_start + rule.stop_after,
            warned_at + rule.warning,
        )
        if not may_stop:
            return idle_decision(Action.NONE, f"{refusal}: never stopped")
        if now >= due:
            reason = f"idle {idle_days:.0f} days; warned {_fmt(warned_at)}"
            return idle_decision(Action.STOP, reason, due)
        return idle_decision(Action.NONE, f"warned {_fmt(warned_at)}; stop due {_fmt(due)}", due)

    if may_stop and idle >= warn_at:
        due = max(streak_start + rule.stop_after, now + rule.warning)
        return idle_decision(
            Action.WARN,
            f"idle {idle_days:.0f} days; stop on {_fmt(due)} unless used or exempted",
            due,
        )

    projected = max(streak_start + rule.stop_after, now + rule.warning) if may_stop else None
    if idle >= rule.notify_after and notified_at is None:
        return idle_decision(
            Action.NOTIFY,
            f"idle {idle_days:.0f} days (notice at {_days(rule.notify_after):.0f})",
            projected,
        )

    if notified_at is not None:
        reason = f"notified {_fmt(notified_at)}; warning at {_days(warn_at):.0f} idle days"
    else:
        reason = f"idle {idle_days:.0f} days; notice at {_days(rule.notify_after):.0f}"
    if not may_stop:
        reason = f"{reason}; {refusal}" if notified_at is None else f"notified; {refusal}"
    return idle_decision(Action.NONE, reason, projected)


def _idle_days(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else _days(now - since)


def next_state(
    prior: LifecycleState | None,
    decision: Decision,
    *,
    key: str,
    owner: str | None,
    delivered: bool,
    stopped: bool,
    now: datetime,
) -> LifecycleState | None:
    """What to remember after a decision was carried out (or not).

    Returns None when nothing should be stored (the streak ended, or the resource is unknown
    and nothing is known yet). A notice or warning only counts when it was delivered.
    """
    if decision.status is Status.ACTIVE:
        return None
    if decision.status is Status.EXEMPT:
        # An exemption voids any warning and stop date: once it ends, the owner is warned
        # afresh before anything is stopped. The streak and a delivered notice are kept.
        if prior is None or prior.stopped_at is not None:
            return prior
        return replace(prior, warned_at=None, stop_due=None)
    if decision.status is Status.UNKNOWN or decision.streak_start is None:
        return prior
    start = decision.streak_start
    # `decide` folds a continuing streak into decision.streak_start (the earlier of the prior's
    # and the verdict's), so a continuing streak starts no later than the prior's; a new streak
    # (after activity or a restart) always starts later than the prior's.
    same = prior is not None and prior.stopped_at is None and start <= prior.streak_start
    if same and prior is not None:
        base = replace(prior, streak_start=start)  # keep what was delivered; the earliest start
    else:
        base = LifecycleState(key=key, streak_start=start)
    base = replace(base, owner=owner)
    if decision.action is Action.NOTIFY and delivered:
        return replace(base, notified_at=now)
    if decision.action is Action.WARN and delivered:
        return replace(base, warned_at=now, stop_due=decision.stop_due)
    if decision.action is Action.STOP and stopped:
        return replace(base, stopped_at=now)
    return base
