"""Digests: one per owner per run, what each stage says, and the console notifier."""

from __future__ import annotations

import io
import shlex
from datetime import UTC, datetime, timedelta, timezone

import pytest

from janitor.model import (
    Action,
    Cloud,
    Decision,
    Finding,
    Resource,
    ResourceRef,
    Status,
    StopOutcome,
    Verdict,
)
from janitor.notify.base import Digest
from janitor.notify.console import ConsoleNotifier
from janitor.notify.render import (
    build_digests,
    digest_stage,
    item_line,
    render_text,
    restore_command,
)

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
ALICE = "alice@example.com"
BOB = "bob@example.com"


def make_finding(
    name: str,
    action: Action = Action.NOTIFY,
    *,
    owner: str | None = ALICE,
    outcome: StopOutcome | None = None,
    stop_due: datetime | None = None,
    cost: float | None = 100.0,
    idle_days: float | None = 40.0,
    status: Status = Status.IDLE,
) -> Finding:
    ref = ResourceRef(Cloud.AWS, "aws.ec2-gpu", ACCOUNT, "us-east-1", f"i-{name}")
    resource = Resource(ref, name, "running", NOW - timedelta(days=90), {"owner": owner or ""})
    verdict = Verdict.idle(ref, NOW - timedelta(days=40), "0% GPU")
    decision = Decision(
        ref, action, status, f"{action.value} it", idle_days=idle_days, stop_due=stop_due
    )
    return Finding(resource, verdict, decision, owner, cost, outcome)


def stopped(name: str, **kw: object) -> Finding:
    return make_finding(name, Action.STOP, outcome=StopOutcome.STOPPED, **kw)  # type: ignore[arg-type]


def names(digest: Digest) -> list[tuple[str, str]]:
    return [(item.stage.value, item.finding.resource.name) for item in digest.items]


# -- build_digests -----------------------------------------------------------------------------


def test_two_resources_of_one_owner_make_one_digest_naming_both() -> None:
    (digest,) = build_digests([make_finding("box-b"), make_finding("box-a")], NOW)

    assert digest.owner == ALICE
    assert digest.as_of == NOW
    assert names(digest) == [("notify", "box-a"), ("notify", "box-b")]
    text = render_text(digest)
    assert "box-a (aws.ec2-gpu, 123456789012/us-east-1)" in text
    assert "box-b (aws.ec2-gpu, 123456789012/us-east-1)" in text


def test_one_digest_per_owner_and_unowned_last_under_none() -> None:
    findings = [
        make_finding("orphan-1", owner=None),
        make_finding("bobs", Action.WARN, owner=BOB, stop_due=NOW + timedelta(days=7)),
        make_finding("alices", owner=ALICE),
        make_finding("orphan-2", Action.WARN, owner=None, stop_due=NOW + timedelta(days=7)),
    ]

    digests = build_digests(findings, NOW)

    assert [d.owner for d in digests] == [ALICE, BOB, None]
    assert names(digests[2]) == [("warn", "orphan-2"), ("notify", "orphan-1")]
    assert "for resources with no reachable owner" in render_text(digests[2])


def test_stages_are_ordered_warn_stop_notify_then_by_name() -> None:
    findings = [
        make_finding("n-2"),
        stopped("s-1"),
        make_finding("w-2", Action.WARN, stop_due=NOW + timedelta(days=7)),
        make_finding("n-1"),
        make_finding("w-1", Action.WARN, stop_due=NOW + timedelta(days=7)),
    ]

    (digest,) = build_digests(findings, NOW)

    assert names(digest) == [
        ("warn", "w-1"),
        ("warn", "w-2"),
        ("stop", "s-1"),
        ("notify", "n-1"),
        ("notify", "n-2"),
    ]
    assert [i.finding.resource.name for i in digest.stage(Action.NOTIFY)] == ["n-1", "n-2"]
    text = render_text(digest)
    positions = [
        text.index("Will be stopped unless used or exempted:"),
        text.index("Stopped (undo with the restore command shown):"),
        text.index("Idle: notice:"),
    ]
    assert positions == sorted(positions)
    assert text.index("w-2") < text.index("s-1") < text.index("n-1")


@pytest.mark.parametrize("action", [Action.NONE, Action.SKIP])
def test_none_and_skip_are_in_no_digest(action: Action) -> None:
    quiet = [
        make_finding("quiet", action),
        make_finding("exempt", Action.SKIP, status=Status.EXEMPT),
        make_finding("busy", Action.NONE, status=Status.ACTIVE, owner=BOB),
    ]
    assert build_digests(quiet, NOW) == []

    (digest,) = build_digests([*quiet, make_finding("noticed")], NOW)
    assert names(digest) == [("notify", "noticed")]


@pytest.mark.parametrize(
    "outcome",
    [None, *(o for o in StopOutcome if o is not StopOutcome.STOPPED)],
    ids=lambda o: "not-executed" if o is None else o.value,
)
def test_a_stop_that_did_not_happen_is_not_reported_as_stopped(
    outcome: StopOutcome | None,
) -> None:
    attempted = make_finding("kept-running", Action.STOP, outcome=outcome)
    assert digest_stage(attempted) is None
    assert build_digests([attempted], NOW) == []

    (digest,) = build_digests([attempted, stopped("really-stopped")], NOW)
    assert names(digest) == [("stop", "really-stopped")]
    assert "kept-running" not in render_text(digest)


def test_digest_stage_per_action() -> None:
    assert digest_stage(make_finding("a", Action.NOTIFY)) is Action.NOTIFY
    assert digest_stage(make_finding("b", Action.WARN)) is Action.WARN
    assert digest_stage(stopped("c")) is Action.STOP


# -- the text ----------------------------------------------------------------------------------


def test_warning_line_carries_the_exact_stop_date() -> None:
    due = datetime(2024, 6, 8, 14, 30, tzinfo=UTC)
    (digest,) = build_digests([make_finding("gpu-1", Action.WARN, stop_due=due)], NOW)

    (line,) = [ln for ln in render_text(digest).splitlines() if "gpu-1" in ln]

    assert "stops on 2024-06-08 14:30 UTC" in line
    assert "janitor restore" not in line


def test_stop_date_is_written_in_utc_whatever_the_offset() -> None:
    due = datetime(2024, 6, 8, 16, 30, tzinfo=timezone(timedelta(hours=2)))
    (digest,) = build_digests([make_finding("gpu-1", Action.WARN, stop_due=due)], NOW)
    assert "stops on 2024-06-08 14:30 UTC" in item_line(digest.items[0])


def test_stopped_line_says_how_to_undo_it() -> None:
    (digest,) = build_digests([stopped("gpu-2", stop_due=NOW)], NOW)

    (line,) = [ln for ln in render_text(digest).splitlines() if "gpu-2" in ln]

    assert line.endswith("undo: janitor restore i-gpu-2")  # by id: a name need not be unique
    assert "stops on" not in line


@pytest.mark.parametrize(
    "resource_id",
    [
        "i-0123456789abcdef0",
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/llm-canary",
        "bob's gpu box",
        "$(touch pwned) `id` *; rm -rf ~",
        'say "hi" \\ now',
    ],
)
def test_the_undo_command_pastes_into_a_shell_as_one_argument(resource_id: str) -> None:
    ref = ResourceRef(Cloud.AWS, "aws.ec2-gpu", ACCOUNT, "us-east-1", resource_id)
    resource = Resource(ref, "gpu box", "running", NOW - timedelta(days=90))
    verdict = Verdict.idle(ref, NOW - timedelta(days=40), "0% GPU")
    decision = Decision(ref, Action.STOP, Status.IDLE, "stop it", idle_days=40.0)
    finding = Finding(resource, verdict, decision, ALICE, 1.0, StopOutcome.STOPPED)
    (digest,) = build_digests([finding], NOW)

    command = item_line(digest.items[0]).rsplit("undo: ", 1)[1]

    assert shlex.split(command) == ["janitor", "restore", resource_id]
    assert restore_command(ref) == command


def test_notice_line_has_idle_days_and_cost_but_no_date_or_undo() -> None:
    finding = make_finding("gpu-3", idle_days=31.6, cost=2234.5, stop_due=NOW + timedelta(days=29))
    (digest,) = build_digests([finding], NOW)

    line = item_line(digest.items[0])

    assert line == "gpu-3 (aws.ec2-gpu, 123456789012/us-east-1) | idle 32 days | $2,234.50/month"


def test_unknown_cost_and_idle_days_are_said_so() -> None:
    (digest,) = build_digests([make_finding("gpu-4", cost=None, idle_days=None)], NOW)
    assert (
        item_line(digest.items[0])
        == "gpu-4 (aws.ec2-gpu, 123456789012/us-east-1) | idle | cost unknown"
    )


def test_render_text_header_savings_and_how_to_keep() -> None:
    findings = [
        make_finding("a", cost=1000.0),
        make_finding("b", Action.WARN, cost=234.56, stop_due=NOW + timedelta(days=7)),
        make_finding("c", cost=None),
    ]
    (digest,) = build_digests(findings, NOW)

    lines = render_text(digest, exempt_tag="keep-me").splitlines()

    assert lines[0] == f"janitor: idle cloud resources for {ALICE} (2024-06-01)"
    assert "Potential savings: $1,234.56/month." in lines
    assert lines[-1] == (
        "To keep a resource, use it, or tag it keep-me=true "
        "(or keep-me=YYYY-MM-DD to keep it until that date)."
    )


# -- console notifier --------------------------------------------------------------------------


def test_console_notifier_writes_the_digest_and_confirms() -> None:
    (digest,) = build_digests([make_finding("gpu-1"), stopped("gpu-2")], NOW)
    stream = io.StringIO()

    notifier = ConsoleNotifier(stream, exempt_tag="keep-me", counts_as_delivery=True)
    delivery = notifier.deliver(digest)

    assert notifier.reaches_people is True  # the policy said so
    assert delivery.ok is True
    assert delivery.destination == f"console:{ALICE}"
    assert stream.getvalue() == render_text(digest, "keep-me") + "\n\n"
    assert "janitor restore i-gpu-2" in stream.getvalue()


def test_the_console_reaches_nobody_unless_the_policy_says_it_counts() -> None:
    (digest,) = build_digests([make_finding("gpu-1")], NOW)
    stream = io.StringIO()

    notifier = ConsoleNotifier(stream)
    notifier.deliver(digest)

    assert notifier.reaches_people is False
    assert stream.getvalue().startswith(render_text(digest))
    assert "stops are held until a notifier is configured" in stream.getvalue()


def test_console_notifier_names_the_unowned_destination() -> None:
    (digest,) = build_digests([make_finding("orphan", owner=None)], NOW)
    stream = io.StringIO()

    notifier = ConsoleNotifier(stream)
    delivery = notifier.deliver(digest)

    assert notifier.name == "console"
    assert delivery.ok is True
    assert delivery.destination == "console:unowned"
    assert "orphan" in stream.getvalue()
