"""The run report: what a scan or run found and did, its totals, its exit code, its renderers.

Every renderer reads the same rows (`finding_row`) in the same order (`sorted_findings`), so the
table, JSON, CSV and Markdown always agree.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from janitor.model import Action, Finding, ScopeError, Status, StopOutcome, require_aware

Format = Literal["table", "json", "csv", "markdown"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv", "markdown")

UNOWNED = "(no owner)"

# Report order: what needs attention first.
STATUS_ORDER: tuple[Status, ...] = (Status.IDLE, Status.UNKNOWN, Status.ACTIVE, Status.EXEMPT)

ROW_FIELDS: tuple[str, ...] = (
    "cloud",
    "kind",
    "id",
    "name",
    "scope",
    "region",
    "owner",
    "status",
    "idle_since",
    "idle_days",
    "action",
    "reason",
    "stop_due",
    "monthly_cost_usd",
    "confidence",
    "evidence",
    "instance_type",
    "outcome",
    "outcome_message",
    "advice",
)

_COLUMNS: tuple[str, ...] = (
    "Name",
    "Kind",
    "Owner",
    "Status",
    "Idle days",
    "Action",
    "Stop due",
    "$/month",
    "Evidence",
)


@dataclass
class RunReport:
    as_of: datetime
    dry_run: bool
    command: str  # "scan" or "run"
    policy_source: str
    findings: list[Finding]
    errors: list[ScopeError]  # a scope (account/region/kind) failed: exit 1
    skipped: list[str]  # e.g. "aws: skipped, no credentials found": not an error
    delivery_failures: list[str]  # owners not reached: exit 1
    deliveries: list[str] = field(default_factory=list)  # one line per digest (to be) sent
    # What the reader must know about the run as a whole (e.g. stops held: no notifier).
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        require_aware(self.as_of, "as_of")

    def exit_code(self) -> int:
        return 1 if self.errors or self.delivery_failures else 0

    def summary(self) -> dict[str, Any]:
        """Counters over the findings; every amount in USD per month, rounded to cents.

        Potential savings: what the idle findings cost (a finding without a price counts 0 and is
        counted in `idle_without_price`). Realised savings: what the findings actually stopped in
        this run cost.
        """
        by_status = Counter(f.status for f in self.findings)
        by_action = Counter(f.decision.action for f in self.findings)
        potential = 0.0
        unpriced = 0
        by_owner: defaultdict[str, float] = defaultdict(float)
        by_kind: defaultdict[str, float] = defaultdict(float)
        for finding in self.findings:
            if finding.status is not Status.IDLE:
                continue
            if finding.monthly_cost_usd is None:
                unpriced += 1
            cost = finding.monthly_cost_usd or 0.0
            potential += cost
            by_owner[finding.owner or UNOWNED] += cost
            by_kind[finding.resource.ref.kind] += cost
        realised = sum(
            f.monthly_cost_usd or 0.0 for f in self.findings if f.outcome is StopOutcome.STOPPED
        )
        return {
            "findings": len(self.findings),
            "by_status": {s.value: by_status.get(s, 0) for s in STATUS_ORDER},
            "by_action": {a.value: by_action.get(a, 0) for a in Action},
            "currency": "USD",
            "potential_monthly_savings_usd": round(potential, 2),
            "idle_without_price": unpriced,
            "potential_savings_by_owner": _ranked(by_owner),
            "potential_savings_by_kind": _ranked(by_kind),
            "realised_monthly_savings_usd": round(realised, 2),
            "stopped": sum(1 for f in self.findings if f.outcome is StopOutcome.STOPPED),
            "errors": len(self.errors),
            "skipped": len(self.skipped),
            "delivery_failures": len(self.delivery_failures),
        }


def _ranked(amounts: Mapping[str, float]) -> dict[str, float]:
    """Largest first, then by name; rounded to cents."""
    ordered = sorted(amounts.items(), key=lambda item: (-item[1], item[0]))
    return {name: round(amount, 2) for name, amount in ordered}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _idle_since(finding: Finding) -> datetime | None:
    return finding.decision.idle_since or finding.verdict.idle_since


def _idle_days(finding: Finding, as_of: datetime) -> float | None:
    if finding.decision.idle_days is not None:
        return round(finding.decision.idle_days, 1)
    since = _idle_since(finding)
    if since is None:
        return None
    return round((as_of - since) / timedelta(days=1), 1)


def finding_row(finding: Finding, as_of: datetime) -> dict[str, Any]:
    """One finding as a flat, JSON-serialisable mapping with the keys of `ROW_FIELDS`."""
    ref = finding.resource.ref
    decision = finding.decision
    return {
        "cloud": ref.cloud.value,
        "kind": ref.kind,
        "id": ref.id,
        "name": finding.resource.name,
        "scope": ref.scope,
        "region": ref.region,
        "owner": finding.owner,
        "status": decision.status.value,
        "idle_since": _iso(_idle_since(finding)),
        "idle_days": _idle_days(finding, as_of),
        "action": decision.action.value,
        "reason": decision.reason,
        "stop_due": _iso(decision.stop_due),
        "monthly_cost_usd": finding.monthly_cost_usd,
        "confidence": finding.verdict.confidence.value,
        "evidence": finding.verdict.evidence,
        "instance_type": finding.resource.instance_type,
        "outcome": None if finding.outcome is None else finding.outcome.value,
        "outcome_message": finding.outcome_message,
        "advice": finding.resource.advice,
    }


def sorted_findings(findings: Iterable[Finding], as_of: datetime) -> list[Finding]:
    """By status (idle, unknown, active, exempt), then longest idle first, then by name."""
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}

    def key(finding: Finding) -> tuple[int, float, str, str]:
        days = _idle_days(finding, as_of)
        return (
            rank.get(finding.status, len(rank)),
            -days if days is not None else float("inf"),
            finding.resource.name,
            finding.resource.ref.key,
        )

    return sorted(findings, key=key)


def _rows(report: RunReport) -> list[dict[str, Any]]:
    return [finding_row(f, report.as_of) for f in sorted_findings(report.findings, report.as_of)]


def _error_dict(error: ScopeError) -> dict[str, str]:
    return {
        "cloud": error.cloud.value,
        "scope": error.scope,
        "region": error.region,
        "kind": error.kind,
        "message": error.message,
    }


def _error_line(error: ScopeError) -> str:
    where = " ".join(p for p in (error.cloud.value, error.scope, error.region, error.kind) if p)
    return f"{where}: {error.message}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _date(value: str | None) -> str:
    return "-" if value is None else value[:10]


def _mode(report: RunReport) -> str:
    return "dry run" if report.dry_run else "applied"


def _cells(row: Mapping[str, Any]) -> list[str]:
    """The human columns (`_COLUMNS`) of one row."""
    # what happened, when something was attempted; else what was decided
    action = row["outcome"] if row["outcome"] is not None else row["action"]
    return [
        row["name"],
        row["kind"],
        row["owner"] or UNOWNED,
        row["status"],
        _days(row["idle_days"]),
        action,
        _date(row["stop_due"]),
        _money(row["monthly_cost_usd"]),
        row["evidence"],
    ]


def _savings_lines(summary: Mapping[str, Any], dry_run: bool) -> list[str]:
    counts = summary["by_status"]
    idle = counts[Status.IDLE.value]
    line = (
        f"Potential savings: {_money(summary['potential_monthly_savings_usd'])}/month "
        f"across {idle} idle resource{'' if idle == 1 else 's'}"
    )
    if summary["idle_without_price"]:
        line += f" ({summary['idle_without_price']} without a price, counted as $0)"
    lines = [line]
    if not dry_run or summary["stopped"]:
        lines.append(
            f"Realised savings: {_money(summary['realised_monthly_savings_usd'])}/month "
            f"from {summary['stopped']} stopped"
        )
    lines.append(
        "Findings: "
        + ", ".join(f"{count} {status}" for status, count in counts.items())
        + f"; errors: {summary['errors']}, skipped: {summary['skipped']}, "
        f"delivery failures: {summary['delivery_failures']}"
    )
    return lines


def _advice_lines(report: RunReport) -> list[str]:
    """One line per finding that carries advice (the setting that would have prevented it)."""
    return [
        f"{row['name']} ({row['kind']}, {row['region']}): {row['advice']}"
        for row in _rows(report)
        if row.get("advice")
    ]


def _sections(report: RunReport) -> list[tuple[str, list[str]]]:
    """The non-empty trailing sections, in order: errors first, deliveries last."""
    sections = [
        ("Advice", _advice_lines(report)),
        ("Notes", list(report.notes)),
        ("Errors", [_error_line(e) for e in report.errors]),
        ("Delivery failures", list(report.delivery_failures)),
        ("Skipped", list(report.skipped)),
        ("Deliveries", list(report.deliveries)),
    ]
    return [(title, items) for title, items in sections if items]


# --- renderers -----------------------------------------------------------------------------


def render_json(report: RunReport) -> str:
    document = {
        "as_of": _iso(report.as_of),
        "dry_run": report.dry_run,
        "command": report.command,
        "policy": report.policy_source,
        "findings": _rows(report),
        "summary": report.summary(),
        "errors": [_error_dict(e) for e in report.errors],
        "skipped": list(report.skipped),
        "delivery_failures": list(report.delivery_failures),
        "deliveries": list(report.deliveries),
        "notes": list(report.notes),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render_csv(report: RunReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in _rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def _md(text: str) -> str:
    """One Markdown table cell: pipes escaped, line breaks flattened."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def render_markdown(report: RunReport) -> str:
    summary = report.summary()
    lines = [
        f"# janitor {report.command}: {report.as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"**{_mode(report)}** · policy `{report.policy_source}` · "
        f"{len(report.findings)} finding{'' if len(report.findings) == 1 else 's'}",
        "",
    ]
    rows = _rows(report)
    if rows:
        lines.append("| " + " | ".join(_COLUMNS) + " |")
        lines.append(
            "|"
            + "|".join("---:" if c in {"Idle days", "$/month"} else "---" for c in _COLUMNS)
            + "|"
        )
        lines.extend("| " + " | ".join(_md(c) for c in _cells(row)) + " |" for row in rows)
    else:
        lines.append("No resources found.")
    lines += ["", "## Savings", ""]
    lines += [f"- {line}" for line in _savings_lines(summary, report.dry_run)]
    by_owner = summary["potential_savings_by_owner"]
    if by_owner:
        lines += ["", "| Owner | Potential $/month |", "|---|---:|"]
        lines += [f"| {_md(owner)} | {_money(amount)} |" for owner, amount in by_owner.items()]
    for title, items in _sections(report):
        lines += ["", f"## {title}", ""]
        lines += [f"- {_md(item)}" for item in items]
    return "\n".join(lines) + "\n"


# Widths for the table: a finding stays on one line whatever its cells hold. The capped columns
# plus the gaps leave the evidence at least _EVIDENCE_MIN at the default width of 160.
_TABLE_CAPS: Mapping[str, int] = {
    "Name": 24,
    "Kind": 22,
    "Owner": 18,
    "Status": 7,
    "Idle days": 9,
    "Action": 15,
    "Stop due": 10,
    "$/month": 12,  # never cut: "$165,079.28" is 11
}
_EVIDENCE_MIN = 18


def render_table(report: RunReport, *, width: int = 160) -> str:
    """Plain text: one line per finding, long cells cut with an ellipsis, then the totals."""
    summary = report.summary()
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=False,
        color_system=None,
        markup=False,
        highlight=False,
        emoji=False,
    )
    console.print(
        f"janitor {report.command} ({_mode(report)}) as of "
        f"{report.as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC, policy {report.policy_source}",
        soft_wrap=True,
    )
    rows = _rows(report)
    if rows:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
        for column in _COLUMNS:
            table.add_column(
                column,
                justify="right" if column in {"Idle days", "$/month"} else "left",
                no_wrap=True,
                overflow="ellipsis",
                max_width=_TABLE_CAPS.get(column),
                min_width=_EVIDENCE_MIN if column == "Evidence" else None,
                ratio=1 if column == "Evidence" else None,
            )
        for row in rows:
            table.add_row(*(Text(cell) for cell in _cells(row)))
        console.print(table)
    else:
        console.print("No resources found.")
    lines = ["", *_savings_lines(summary, report.dry_run)]
    by_owner = summary["potential_savings_by_owner"]
    if by_owner:
        lines.append("Potential savings by owner:")
        name_width = max(len(owner) for owner in by_owner)
        lines += [
            f"  {owner:<{name_width}}  {_money(amount):>12}" for owner, amount in by_owner.items()
        ]
    for title, items in _sections(report):
        lines += ["", f"{title}:"]
        lines += [f"  - {item}" for item in items]
    for line in lines:
        console.print(line, soft_wrap=True)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def stderr_lines(report: RunReport, fmt: Format) -> list[str]:
    """What `fmt` cannot carry, for stderr. A CSV holds one row per finding and nothing else
    (a comment line would break CSV readers), so its notes, errors, delivery failures and skipped
    clouds ("aws: skipped, no AWS credentials found ...") are told on stderr instead."""
    if fmt != "csv":
        return []
    return [
        *report.notes,
        *(f"error: {_error_line(e)}" for e in report.errors),
        *(f"delivery failure: {line}" for line in report.delivery_failures),
        *report.skipped,
    ]


def render(report: RunReport, fmt: Format) -> str:
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
