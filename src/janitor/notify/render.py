"""Digests: one per owner per run, naming every resource of that owner at each stage."""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from janitor.model import Action, Finding, ResourceRef, StopOutcome
from janitor.notify.base import Digest, DigestItem

_STAGES = (Action.WARN, Action.STOP, Action.NOTIFY)
_TITLES = {
    Action.WARN: "Will be stopped unless used or exempted",
    Action.STOP: "Stopped (undo with the restore command shown)",
    Action.NOTIFY: "Idle: notice",
}


def digest_stage(finding: Finding) -> Action | None:
    """The stage a finding contributes to a digest, if any."""
    action = finding.decision.action
    if action in (Action.NOTIFY, Action.WARN):
        return action
    if action is Action.STOP and finding.outcome is StopOutcome.STOPPED:
        return Action.STOP
    return None


def build_digests(findings: Iterable[Finding], as_of: datetime) -> list[Digest]:
    by_owner: dict[str | None, list[DigestItem]] = defaultdict(list)
    for finding in findings:
        stage = digest_stage(finding)
        if stage is not None:
            by_owner[finding.owner].append(DigestItem(finding, stage))
    digests = []
    for owner in sorted(by_owner, key=lambda o: (o is None, o or "")):
        items = sorted(
            by_owner[owner], key=lambda i: (_STAGES.index(i.stage), i.finding.resource.name)
        )
        digests.append(Digest(owner, tuple(items), as_of))
    return digests


def restore_command(ref: ResourceRef) -> str:
    """The command that undoes a stop, ready to paste into a shell.

    It names the resource by its id (unique, unlike a name) and shell-quotes it, so an id like
    `bob's gpu box` reaches `janitor restore` as one argument.
    """
    return f"janitor restore {shlex.quote(ref.id)}"


def _money(value: float | None) -> str:
    return "cost unknown" if value is None else f"${value:,.2f}/month"


def item_line(item: DigestItem) -> str:
    f = item.finding
    ref = f.resource.ref
    parts = [
        f"{f.resource.name} ({ref.kind}, {ref.scope}/{ref.region})",
        f"idle {f.decision.idle_days:.0f} days" if f.decision.idle_days is not None else "idle",
        _money(f.monthly_cost_usd),
    ]
    if item.stage is Action.WARN and f.decision.stop_due is not None:
        parts.append(f"stops on {f.decision.stop_due.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if item.stage is Action.STOP:
        parts.append(f"undo: {restore_command(ref)}")
    if f.resource.advice:
        parts.append(f"tip: {f.resource.advice}")
    return " | ".join(parts)


def render_text(digest: Digest, exempt_tag: str = "janitor-exempt") -> str:
    """The plain-text form of a digest (console, logs, Slack's notification fallback)."""
    who = digest.owner or "resources with no reachable owner"
    lines = [f"janitor: idle cloud resources for {who} ({digest.as_of:%Y-%m-%d})"]
    for stage in _STAGES:
        items = digest.stage(stage)
        if not items:
            continue
        lines.append(f"{_TITLES[stage]}:")
        lines.extend(f"  - {item_line(item)}" for item in items)
    total = sum(i.finding.monthly_cost_usd or 0.0 for i in digest.items)
    lines.append(f"Potential savings: ${total:,.2f}/month.")
    lines.append(
        f"To keep a resource, use it, or tag it {exempt_tag}=true "
        f"(or {exempt_tag}=YYYY-MM-DD to keep it until that date)."
    )
    return "\n".join(lines)
