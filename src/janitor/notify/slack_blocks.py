"""Slack messages for a digest: Block Kit with a plain-text fallback, split to Slack's limits.

Every value that comes from a cloud (names, tags, owners, evidence, error messages) goes through
`literal`, and every mrkdwn text object is `verbatim`, so a value is shown as it is: a tag value
like `<!channel>` can never ping a channel or forge a link, `#general` or a URL is not linked,
and a resource called `*prod*_model` is not turned bold or italic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from janitor.model import Action
from janitor.notify.base import Digest, DigestItem
from janitor.notify.render import restore_command

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
    """Slack's control characters as the HTML entities Slack documents: `&`, `<` and `>`.

    Enough for text janitor writes itself; a value from a cloud goes through `literal`.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


ZERO_WIDTH_SPACE = "\u200b"
# mrkdwn's formatting characters: *bold*, _italic_, ~strike~, `code`.
_FORMATTING = "*_~`"


def literal(value: str) -> str:
    """A value from a cloud, for a mrkdwn text object, so that Slack shows it as it is.

    Slack documents escapes only for its control characters `&`, `<` and `>` (HTML entities,
    see "Formatting text for app surfaces"), and has no escape for the formatting characters
    `*`, `_`, `~` and backtick (a backslash is shown, not honoured). Formatting applies only
    where such a character opens or closes a span at a word boundary, so each one is wrapped
    in zero-width spaces: whether a renderer takes the zero-width space for a space or for a
    letter, the character then neither opens (a space follows it) nor closes (a space precedes
    it) nor sits on a word boundary (letters either side), and is shown literally. The cost is
    an invisible character in what a reader copies, which is why the restore command is given
    in a code span (where Slack formats nothing) and not through this function.

    `>` quotes only at the start of a line: line breaks in a value become spaces, and a value
    starting with `>` is preceded by a zero-width space, so a value never starts a quote.
    """
    out = escape(" ".join(value.splitlines()))
    for char in _FORMATTING:
        out = out.replace(char, f"{ZERO_WIDTH_SPACE}{char}{ZERO_WIDTH_SPACE}")
    if out.startswith("&gt;"):
        out = ZERO_WIDTH_SPACE + out
    return out


def code(text: str) -> str:
    """`text` in a code span, where Slack applies no formatting; only `&`, `<`, `>` need the
    entities there. A backtick would end a single-backtick span (it has no escape), so text
    with one goes in a triple-backtick block, which a single backtick cannot end."""
    fence = "```" if "`" in text else "`"
    return f"{fence}{escape(text)}{fence}"


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
    where = f"{literal(ref.scope)}/{literal(ref.region)}"
    lines = [f"*{literal(f.resource.name)}*  `{escape(ref.kind)}`  {where}"]
    facts = []
    if f.decision.idle_days is not None:
        facts.append(f"idle {f.decision.idle_days:.0f} days")
    facts.append(_money(f.monthly_cost_usd))
    if item.stage is Action.WARN and f.decision.stop_due is not None:
        facts.append(f"*stops on {local_time(f.decision.stop_due, zone)}*")
    lines.append(" · ".join(facts))
    if f.verdict.evidence:
        lines.append(f"_{literal(_clip(f.verdict.evidence, 300))}_")
    if f.resource.advice:
        lines.append(f"Tip: {literal(_clip(f.resource.advice, 300))}")
    if item.stage is Action.STOP:
        lines.append(f"Undo: {code(restore_command(ref))}")
    return _clip("\n".join(lines), MAX_SECTION_TEXT)


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # the plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    # verbatim: Slack does not turn URLs, channel names or mentions in the plain text into links
    # (markdown and the entities janitor writes still apply). Every mrkdwn object here may
    # carry a cloud's value, so every one is verbatim.
    return {"type": "mrkdwn", "text": _clip(text, limit), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text, MAX_SECTION_TEXT)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text, 2000)]}


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
        head.append(_context(literal(note)))
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
    # The top-level text is mrkdwn too (chat.postMessage formats it by default).
    fallback = _clip(
        f"janitor: {literal(who)}: {summary}; potential savings ${total:,.2f}/month",
        MAX_FALLBACK_TEXT,
    )
    messages = []
    for index, chunk in enumerate(chunks):
        part = f" (part {index + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        blocks = (head if index == 0 else [_context(f"{literal(who)}{part}")]) + chunk
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
        blocks.append(_section("\n".join(f"• {literal(line)}" for line in shown) + more))
    text = "janitor run summary: " + ", ".join(f"{k} {v}" for k, v in figures.items())
    return SlackMessage(escape(_clip(text, MAX_FALLBACK_TEXT)), blocks)
