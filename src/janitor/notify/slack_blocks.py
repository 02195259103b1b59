"""Slack messages for a digest: Block Kit with a plain-text fallback, split to Slack's limits.

Every value that comes from a cloud (names, tags, owners, evidence) goes through `escape`, so a
tag value like `<!channel>` can never ping a channel or forge a link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from janitor.model import Action
from janitor.notify.base import Digest, DigestItem

MAX_BLOCKS = 50  # Slack's limit per message
MAX_SECTION_TEXT = 3000  # Slack's limit per section text
MAX_HEADER_TEXT = 150  # plain_text in a header block
MAX_FALLBACK_TEXT = 3000  # keep the notification text short; the blocks carry the detail

_STAGE_TITLES = {
    Action.WARN: ":warning: *Will be stopped unless used or exempted*",
    Action.STOP: ":octagonal_sign: *Stopped* (nothing was lost; undo with the command shown)",
    Action.NOTIFY: ":hourglass: *Idle*",
}
_STAGE_ORDER = (Action.WARN, Action.STOP, Action.NOTIFY)


def escape(text: str) -> str:
    """Slack mrkdwn escaping: the three characters Slack gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _money(value: float | None) -> str:
    return "cost unknown" if value is None else f"${value:,.2f}/month"


def local_time(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%a %d %b %Y %H:%M ") + (local.tzname() or "")


def item_text(item: DigestItem, zone: tzinfo) -> str:
    f = item.finding
    ref = f.resource.ref
    where = f"{escape(ref.scope)}/{escape(ref.region)}"
    lines = [f"*{escape(f.resource.name)}*  `{escape(ref.kind)}`  {where}"]
    facts = []
    if f.decision.idle_days is not None:
        facts.append(f"idle {f.decision.idle_days:.0f} days")
    facts.append(_money(f.monthly_cost_usd))
    if item.stage is Action.WARN and f.decision.stop_due is not None:
        facts.append(f"*stops on {local_time(f.decision.stop_due, zone)}*")
    lines.append(" · ".join(facts))
    if f.verdict.evidence:
        lines.append(f"_{escape(_clip(f.verdict.evidence, 300))}_")
    if item.stage is Action.STOP:
        lines.append(f"Undo: `janitor restore {escape(f.resource.name)}`")
    return _clip("\n".join(lines), MAX_SECTION_TEXT)


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_TEXT)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, 2000)}]}


def digest_messages(
    digest: Digest,
    *,
    zone: tzinfo,
    exempt_tag: str,
    note: str | None = None,
    max_blocks: int = MAX_BLOCKS,
) -> list[SlackMessage]:
    """One digest as one or more messages, none over Slack's block and text limits."""
    who = digest.owner or "resources with no reachable owner"
    counts = {stage: len(digest.stage(stage)) for stage in _STAGE_ORDER}
    summary = ", ".join(
        f"{n} {word}"
        for stage, word in (
            (Action.WARN, "to be stopped"),
            (Action.STOP, "stopped"),
            (Action.NOTIFY, "idle"),
        )
        if (n := counts[stage])
    )
    total = sum(i.finding.monthly_cost_usd or 0.0 for i in digest.items)
    header_text = _clip(f"janitor: idle cloud resources for {who}", MAX_HEADER_TEXT)
    head: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header_text}},
        _section(f"{escape(summary)}. Potential savings: *${total:,.2f}/month*."),
    ]
    if note:
        head.append(_context(escape(note)))
    foot = [
        _context(
            f"To keep a resource, use it, or tag it `{escape(exempt_tag)}=true` "
            f"(or `{escape(exempt_tag)}=YYYY-MM-DD` to keep it until that date)."
        )
    ]

    body: list[dict[str, Any]] = []
    for stage in _STAGE_ORDER:
        items = digest.stage(stage)
        if not items:
            continue
        body.append(_section(_STAGE_TITLES[stage]))
        body.extend(_section(item_text(item, zone)) for item in items)

    room = max_blocks - len(head) - len(foot)
    chunks = [body[i : i + room] for i in range(0, len(body), room)] or [[]]
    fallback = escape(
        _clip(
            f"janitor: {who}: {summary}; potential savings ${total:,.2f}/month", MAX_FALLBACK_TEXT
        )
    )
    messages = []
    for index, chunk in enumerate(chunks):
        part = f" (part {index + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        blocks = (head if index == 0 else [_context(escape(f"{who}{part}"))]) + chunk
        if index == len(chunks) - 1:
            blocks = blocks + foot
        messages.append(SlackMessage(fallback + part, blocks))
    return messages


def summary_messages(lines: Sequence[str], figures: Mapping[str, str]) -> SlackMessage:
    """The run summary for the admin (or fallback) channel."""
    facts = "\n".join(f"• {escape(k)}: *{escape(v)}*" for k, v in figures.items())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "janitor run summary"}},
        _section(facts),
    ]
    if lines:
        shown = list(lines[:20])
        more = f"\n…and {len(lines) - 20} more" if len(lines) > 20 else ""
        blocks.append(_section("\n".join(f"• {escape(line)}" for line in shown) + more))
    text = "janitor run summary: " + ", ".join(f"{k} {v}" for k, v in figures.items())
    return SlackMessage(escape(_clip(text, MAX_FALLBACK_TEXT)), blocks)
