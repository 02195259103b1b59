from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from janitor.model import (
    Action,
    Cloud,
    Decision,
    Finding,
    Resource,
    ResourceRef,
    ScopeError,
    Status,
    StopOutcome,
    Verdict,
)
from janitor.report import ROW_FIELDS, Format, RunReport, finding_row, render, sorted_findings

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


def make_finding(
    name: str,
    *,
    status: Status = Status.IDLE,
    action: Action = Action.NOTIFY,
    idle_days: float | None = 40.0,
    owner: str | None = "alice@example.com",
    cost: float | None = 100.0,
    kind: str = "aws.sagemaker-endpoint",
    region: str = "us-east-1",
    evidence: str = "0 Invocations in 30 days",
    outcome: StopOutcome | None = None,
    outcome_message: str = "",
    stop_due: datetime | None = None,
    decision_idle_days: bool = True,
) -> Finding:
    ref = ResourceRef(Cloud.AWS, kind, ACCOUNT, region, f"arn:aws:sagemaker:{region}:{name}")
    resource = Resource(
        ref=ref,
        name=name,
        state="InService",
        created_at=NOW - timedelta(days=400),
        instance_type="ml.g5.xlarge",
    )
    since = NOW - timedelta(days=idle_days) if idle_days is not None else None
    if status is Status.IDLE and since is not None:
        verdict = Verdict.idle(ref, since, evidence)
    elif status is Status.ACTIVE:
        verdict = Verdict.active(ref, evidence, last_activity=NOW - timedelta(hours=2))
    else:
        verdict = Verdict.unknown(ref, evidence)
    decision = Decision(
        ref=ref,
        action=action,
        status=status,
        reason=f"{status.value}: {action.value}",
        idle_since=since,
        idle_days=idle_days if decision_idle_days else None,
        stop_due=stop_due,
        streak_start=since,
    )
    return Finding(
        resource=resource,
        verdict=verdict,
        decision=decision,
        owner=owner,
        monthly_cost_usd=cost,
        outcome=outcome,
        outcome_message=outcome_message,
    )


def make_report(findings: list[Finding] | None = None, **kwargs: Any) -> RunReport:
    fields: dict[str, Any] = {
        "as_of": NOW,
        "dry_run": True,
        "command": "scan",
        "policy_source": "policies/default.yaml",
        "findings": findings if findings is not None else sample_findings(),
        "errors": [],
        "skipped": [],
        "delivery_failures": [],
    }
    fields.update(kwargs)
    return RunReport(**fields)


def sample_findings() -> list[Finding]:
    return [
        make_finding("active-ep", status=Status.ACTIVE, action=Action.NONE, idle_days=None),
        make_finding("idle-short", idle_days=12.25, cost=1027.84),
        make_finding(
            "idle-long",
            idle_days=65.0,
            action=Action.STOP,
            cost=500.0,
            owner="bob@example.com",
            stop_due=NOW - timedelta(days=1),
            outcome=StopOutcome.STOPPED,
            outcome_message="deleted endpoint; config recorded",
        ),
        make_finding("idle-unpriced", idle_days=33.0, cost=None, owner=None, kind="aws.ec2-gpu"),
        make_finding("mystery", status=Status.UNKNOWN, action=Action.SKIP, idle_days=None),
        make_finding(
            "pinned", status=Status.EXEMPT, action=Action.SKIP, idle_days=None, cost=9999.0
        ),
    ]


SCOPE_ERROR = ScopeError(
    Cloud.AWS, ACCOUNT, "eu-west-1", "aws.ec2-gpu", "AccessDenied: ec2:DescribeInstances"
)


# --- finding_row -----------------------------------------------------------------------------


def test_finding_row_has_every_field_and_is_json_serialisable() -> None:
    finding = make_finding("ep-1", action=Action.WARN, stop_due=NOW + timedelta(days=7))
    row = finding_row(finding, NOW)
    assert tuple(row) == ROW_FIELDS
    assert json.loads(json.dumps(row)) == row
    assert row["cloud"] == "aws"
    assert row["kind"] == "aws.sagemaker-endpoint"
    assert row["id"] == "arn:aws:sagemaker:us-east-1:ep-1"
    assert row["scope"] == ACCOUNT
    assert row["region"] == "us-east-1"
    assert row["status"] == "idle"
    assert row["action"] == "warn"
    assert row["reason"] == "idle: warn"
    assert row["idle_since"] == "2024-04-22T12:00:00+00:00"
    assert row["idle_days"] == 40.0
    assert row["stop_due"] == "2024-06-08T12:00:00+00:00"
    assert row["monthly_cost_usd"] == 100.0
    assert row["confidence"] == "high"
    assert row["evidence"] == "0 Invocations in 30 days"
    assert row["instance_type"] == "ml.g5.xlarge"
    assert row["outcome"] is None
    assert row["outcome_message"] == ""


def test_finding_row_rounds_idle_days_and_falls_back_to_idle_since() -> None:
    assert finding_row(make_finding("a", idle_days=12.25), NOW)["idle_days"] == 12.2
    row = finding_row(make_finding("b", idle_days=3.04, decision_idle_days=False), NOW)
    assert row["idle_days"] == 3.0
    active = finding_row(make_finding("c", status=Status.ACTIVE, idle_days=None), NOW)
    assert active["idle_days"] is None
    assert active["idle_since"] is None


def test_finding_row_writes_datetimes_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    finding = make_finding("a", stop_due=datetime(2024, 6, 8, 14, 0, tzinfo=plus_two))
    assert finding_row(finding, NOW)["stop_due"] == "2024-06-08T12:00:00+00:00"


def test_finding_row_carries_the_outcome() -> None:
    finding = make_finding(
        "a", action=Action.STOP, outcome=StopOutcome.REFUSED_STATE, outcome_message="Updating"
    )
    row = finding_row(finding, NOW)
    assert row["outcome"] == "refused-state"
    assert row["outcome_message"] == "Updating"


def test_a_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_report(as_of=datetime(2024, 6, 1))  # noqa: DTZ001 - the point of the test


# --- summary and exit code -------------------------------------------------------------------


def test_summary_counts_and_savings() -> None:
    summary = make_report().summary()
    assert summary["findings"] == 6
    assert summary["by_status"] == {"idle": 3, "unknown": 1, "active": 1, "exempt": 1}
    assert summary["by_action"] == {"none": 1, "notify": 2, "warn": 0, "stop": 1, "skip": 2}
    # idle only: the exempt 9999 and the active endpoint do not count; unpriced counts 0
    assert summary["potential_monthly_savings_usd"] == 1527.84
    assert summary["idle_without_price"] == 1
    assert summary["potential_savings_by_owner"] == {
        "alice@example.com": 1027.84,
        "bob@example.com": 500.0,
        "(no owner)": 0.0,
    }
    assert summary["potential_savings_by_kind"] == {
        "aws.sagemaker-endpoint": 1527.84,
        "aws.ec2-gpu": 0.0,
    }
    assert summary["realised_monthly_savings_usd"] == 500.0
    assert summary["stopped"] == 1
    assert summary["errors"] == 0
    assert summary["skipped"] == 0
    assert summary["delivery_failures"] == 0


def test_summary_rounds_to_cents() -> None:
    findings = [make_finding(f"ep-{i}", cost=0.1) for i in range(3)]
    assert make_report(findings).summary()["potential_monthly_savings_usd"] == 0.3


def test_summary_of_an_empty_run() -> None:
    summary = make_report([]).summary()
    assert summary["findings"] == 0
    assert summary["potential_monthly_savings_usd"] == 0.0
    assert summary["potential_savings_by_owner"] == {}
    assert summary["realised_monthly_savings_usd"] == 0.0


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({}, 0),
        ({"skipped": ["aws: skipped, no credentials found"]}, 0),
        ({"deliveries": ["alice@example.com: 2 resources (slack)"]}, 0),
        ({"errors": [SCOPE_ERROR]}, 1),
        ({"delivery_failures": ["bob@example.com: slack user not found"]}, 1),
        ({"errors": [SCOPE_ERROR], "skipped": ["gcp: skipped, no credentials found"]}, 1),
    ],
)
def test_exit_code(extra: dict[str, Any], code: int) -> None:
    assert make_report(**extra).exit_code() == code


# --- ordering --------------------------------------------------------------------------------


def test_findings_sort_by_status_then_longest_idle_first() -> None:
    names = [f.resource.name for f in sorted_findings(sample_findings(), NOW)]
    assert names == ["idle-long", "idle-unpriced", "idle-short", "mystery", "active-ep", "pinned"]


# --- json ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "table", "markdown"])
def test_notes_are_in_the_report(fmt: Format) -> None:
    note = "stops are held until a notifier is configured: the console notifier reaches nobody"
    text = render(make_report(notes=[note]), fmt)
    assert note in (json.loads(text)["notes"][0] if fmt == "json" else " ".join(text.split()))


def test_json_document() -> None:
    report = make_report(
        errors=[SCOPE_ERROR],
        skipped=["gcp: skipped, no credentials found"],
        delivery_failures=["bob@example.com: slack user not found"],
        deliveries=["alice@example.com: 2 resources (would send)"],
    )
    doc = json.loads(render(report, "json"))
    assert set(doc) == {
        "as_of",
        "dry_run",
        "command",
        "policy",
        "findings",
        "summary",
        "errors",
        "skipped",
        "delivery_failures",
        "deliveries",
        "notes",
    }
    assert doc["notes"] == []
    assert doc["as_of"] == "2024-06-01T12:00:00+00:00"
    assert doc["dry_run"] is True
    assert doc["command"] == "scan"
    assert doc["policy"] == "policies/default.yaml"
    assert [f["name"] for f in doc["findings"]] == [
        "idle-long",
        "idle-unpriced",
        "idle-short",
        "mystery",
        "active-ep",
        "pinned",
    ]
    assert doc["findings"][0]["outcome"] == "stopped"
    assert doc["findings"][1]["monthly_cost_usd"] is None
    assert doc["findings"][1]["owner"] is None
    assert doc["summary"]["potential_monthly_savings_usd"] == 1527.84
    assert doc["summary"]["errors"] == 1
    assert doc["errors"] == [
        {
            "cloud": "aws",
            "scope": ACCOUNT,
            "region": "eu-west-1",
            "kind": "aws.ec2-gpu",
            "message": "AccessDenied: ec2:DescribeInstances",
        }
    ]
    assert doc["skipped"] == ["gcp: skipped, no credentials found"]
    assert doc["delivery_failures"] == ["bob@example.com: slack user not found"]
    assert doc["deliveries"] == ["alice@example.com: 2 resources (would send)"]


def test_json_is_indented() -> None:
    assert render(make_report(), "json").startswith('{\n  "as_of"')


# --- csv -------------------------------------------------------------------------------------


def test_csv_header_and_rows() -> None:
    text = render(make_report(), "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == ROW_FIELDS
    assert len(rows) == 7
    records = list(csv.DictReader(io.StringIO(text)))
    assert records[0]["name"] == "idle-long"
    assert records[0]["monthly_cost_usd"] == "500.0"
    assert records[0]["outcome"] == "stopped"
    assert records[1]["monthly_cost_usd"] == ""  # None is an empty cell
    assert records[1]["owner"] == ""


def test_csv_quotes_awkward_values() -> None:
    finding = make_finding("a,b", evidence='said "none",\nthen left')
    records = list(csv.DictReader(io.StringIO(render(make_report([finding]), "csv"))))
    assert records[0]["name"] == "a,b"
    assert records[0]["evidence"] == 'said "none",\nthen left'


def test_csv_of_an_empty_run_is_just_the_header() -> None:
    assert render(make_report([]), "csv") == ",".join(ROW_FIELDS) + "\n"


# --- markdown --------------------------------------------------------------------------------


def test_markdown_has_header_rows_and_summary() -> None:
    report = make_report(
        errors=[SCOPE_ERROR], skipped=["gcp: skipped, no credentials found"], dry_run=True
    )
    text = render(report, "markdown")
    lines = text.splitlines()
    assert lines[0].startswith("# janitor scan")
    assert "dry run" in lines[2]
    assert (
        "| Name | Kind | Owner | Status | Idle days | Action | Stop due | $/month | Evidence |"
        in (lines)
    )
    row = next(line for line in lines if line.startswith("| idle-long |"))
    assert "| 65.0 |" in row
    assert "| stopped |" in row
    assert "| 2024-05-31 |" in row
    assert "| $500.00 |" in row
    assert any(line.startswith("| idle-unpriced |") and "| - |" in line for line in lines)
    assert "$1,527.84/month" in text
    assert "## Errors" in text
    assert "AccessDenied: ec2:DescribeInstances" in text
    assert "## Skipped" in text
    assert "- gcp: skipped, no credentials found" in text


def test_markdown_says_applied_for_a_real_run() -> None:
    text = render(make_report(dry_run=False, command="run"), "markdown")
    assert text.splitlines()[0].startswith("# janitor run")
    assert "**applied**" in text
    assert "Realised savings: $500.00/month" in text


def test_markdown_escapes_pipes_and_line_breaks() -> None:
    finding = make_finding("a|b", evidence="p50 | p99\nboth zero", owner="team|ml")
    text = render(make_report([finding]), "markdown")
    row = next(line for line in text.splitlines() if line.startswith("| a"))
    assert row.startswith("| a\\|b |")
    assert "p50 \\| p99 both zero" in row
    assert "team\\|ml" in row
    # the row still has exactly the table's 9 cells (10 unescaped pipes)
    unescaped = row.replace("\\|", "")
    assert unescaped.count("|") == 10


def test_markdown_of_an_empty_run() -> None:
    text = render(make_report([]), "markdown")
    assert "No resources found." in text
    assert "| Name |" not in text


# --- table -----------------------------------------------------------------------------------


def test_table_has_columns_rows_totals_and_sections() -> None:
    report = make_report(
        errors=[SCOPE_ERROR],
        skipped=["gcp: skipped, no credentials found"],
        delivery_failures=["bob@example.com: slack user not found"],
    )
    text = render(report, "table")
    for column in ("Name", "Kind", "Owner", "Status", "Idle days", "Action", "Stop due"):
        assert column in text
    assert "$/month" in text
    assert "Evidence" in text
    for name in ("idle-long", "idle-short", "active-ep", "mystery", "pinned"):
        assert name in text
    assert "$1,027.84" in text
    assert "Potential savings: $1,527.84/month" in text
    assert "alice@example.com" in text
    lines = text.splitlines()
    owner_line = next(line for line in lines if line.strip().startswith("bob@example.com"))
    assert "$500.00" in owner_line
    assert "Errors:" in lines
    assert "Skipped:" in lines
    assert "Delivery failures:" in lines
    assert any("AccessDenied" in line for line in lines)
    assert "\x1b" not in text  # no colour codes


def test_table_stays_one_line_per_row_for_many_rows() -> None:
    findings = [
        make_finding(
            f"endpoint-with-a-rather-long-name-for-team-{i:03d}-production-canary",
            idle_days=float(i),
            owner=f"someone-with-a-long-address-{i}@example.com",
            evidence="0 Invocations per day for 30 days on every variant (AllTraffic, shadow) " * 3,
            action=Action.STOP,
            outcome=StopOutcome.ALREADY_STOPPED,
        )
        for i in range(60)
    ]
    text = render(make_report(findings), "table")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 160
    row_lines = [line for line in lines if "endpoint-with" in line]
    assert len(row_lines) == 60  # nothing wrapped onto a second line
    assert all("…" in line for line in row_lines)  # long cells are cut, not wrapped
    assert all("already-stopped" in line for line in row_lines)


def test_table_never_cuts_money_and_ignores_markup_in_cells() -> None:
    finding = make_finding(
        "[bold]ep[/bold]",
        cost=165079.28,
        evidence="[red]GPU 0[/red] " * 20,
        owner="a-very-long-owner-name@example.com",
    )
    text = render(make_report([finding]), "table")
    assert "$165,079.28" in text
    assert "[bold]ep[/bold]" in text
    assert "[red]GPU 0[/red]" in text


def test_table_of_an_empty_run() -> None:
    text = render(make_report([]), "table")
    assert "No resources found." in text
    assert "Potential savings: $0.00/month across 0 idle resources" in text


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        render(make_report(), "html")  # type: ignore[arg-type]


# --- advice ----------------------------------------------------------------------------------


def test_advice_is_a_json_field_and_a_line_of_the_text_reports() -> None:
    from dataclasses import replace

    plain = make_finding("plain-nb", kind="gcp.workbench")
    advised = make_finding("lazy-nb", kind="gcp.workbench")
    advised = replace(advised, resource=replace(advised.resource, advice="turn on idle shutdown"))
    report = make_report([plain, advised])

    rows = {r["name"]: r for r in json.loads(render(report, "json"))["findings"]}
    assert rows["lazy-nb"]["advice"] == "turn on idle shutdown"
    assert rows["plain-nb"]["advice"] is None
    line = "lazy-nb (gcp.workbench, us-east-1): turn on idle shutdown"
    assert f"  - {line}" in render(report, "table").splitlines()
    assert f"- {line}" in render(report, "markdown").splitlines()
    assert "plain-nb (gcp.workbench" not in render(report, "table")
    # No advice at all: no Advice section.
    assert "Advice" not in render(make_report([plain]), "table")
