"""The `janitor` command. Parses flags, calls the pipeline, renders the report. Nothing else.

Exit codes: 0 all went well; 1 a scope, a stop or a delivery failed (the rest of the run still
completed), another run holds the lock (or took it over), or the report could not be written
at the end; 2 bad usage, a bad policy or a bad setting (state URL, --output, Slack variables),
found before anything is done; 128 + N an applying run stopped by signal N between two actions
(143 SIGTERM, 130 SIGINT).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from janitor import __version__, interrupts
from janitor.notify.base import Notifier
from janitor.pipeline import Progress
from janitor.policy import Policy, PolicyError, load_policy
from janitor.state import StateStore, open_store
from janitor.state.base import LockHeld, LockLost

if TYPE_CHECKING:
    from janitor.report import RunReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


AS_OF_RANGE = timedelta(days=36525)  # 100 years either side of now
MAX_DEMO_DAYS = 365


class UsageError(Exception):
    pass


class OutputError(Exception):
    """The report could not be written after the command ran (disk full): exit 1."""


def parse_as_of(text: str) -> datetime:
    """ISO 8601 with a time zone (`2026-12-01T09:00:00Z`), or a date (midnight UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--as-of {text!r}: not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--as-of {text!r}: give a time zone, e.g. {value}Z or {value}+00:00")
    # Dates are computed from it (stop dates, windows): far from today they overflow mid-run.
    if abs(moment - datetime.now(UTC)) > AS_OF_RANGE:
        raise UsageError(f"--as-of {text!r}: out of range: give a time within 100 years of now")
    return moment.astimezone(UTC)


def _now(args: argparse.Namespace) -> datetime:
    as_of: str | None = getattr(args, "as_of", None)
    return parse_as_of(as_of) if as_of else datetime.now(UTC)


def _policy(args: argparse.Namespace) -> Policy:
    return load_policy(args.policy)


@contextmanager
def _store(policy: Policy) -> Iterator[StateStore]:
    try:
        store = open_store(policy.state_url)
    except (ValueError, OSError) as exc:
        raise UsageError(f"state store: {exc}") from None
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _progress() -> Iterator[Progress | None]:
    """A progress bar on stderr for long scans, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task_id = progress.add_task("scanning", total=None)

        def update(done: int, total: int, label: str) -> None:
            progress.update(task_id, completed=done, total=total, description=label)

        yield update


def _emit(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(
                f"--output {output}: cannot write the report: {exc.strerror}"
            ) from None
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _emit_report(report: RunReport, args: argparse.Namespace) -> None:
    """The report in its format; what the format cannot carry (CSV: skipped clouds, errors)
    goes to stderr, one line each."""
    from janitor.report import render, stderr_lines

    _emit(render(report, args.format), args.output)
    for line in stderr_lines(report, args.format):
        print(f"janitor: {line}", file=sys.stderr)


def _check_output(output: str) -> None:
    """--output must be writable before anything is done: a report lost after a run has acted
    is an audit lost. Tried for real (opened for appending), and removed again if new."""
    if not output.strip():
        raise UsageError("--output '': give a file name")
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"--output {output}: is a directory; give a file name")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write here: {exc.strerror}") from None
    if not existed:
        path.unlink(missing_ok=True)


def _preflight(args: argparse.Namespace) -> None:
    """Bad input that needs no policy and no cloud: one line, exit 2, before anything is done."""
    as_of: str | None = getattr(args, "as_of", None)
    if as_of:
        parse_as_of(as_of)
    output: str | None = getattr(args, "output", None)
    if output is not None:
        _check_output(output)
    if args.command == "history" and args.limit < 1:
        raise UsageError(f"history --limit {args.limit}: give 1 or more events to show")
    if args.command == "demo" and not 0 <= args.days <= MAX_DEMO_DAYS:
        raise UsageError(
            f"demo --days {args.days}: give a number of days from 0 to {MAX_DEMO_DAYS}"
        )
    if args.command in ("run", "validate"):
        from janitor.notify.slack import SlackConfigError, check_environment

        try:
            check_environment(os.environ)
        except SlackConfigError as exc:
            raise UsageError(str(exc)) from None


def cmd_validate(args: argparse.Namespace) -> int:
    policy = _policy(args)
    kinds = ", ".join(f"{r.name} ({r.kind})" for r in policy.rules)
    print(f"{policy.source}: OK, {len(policy.rules)} rule(s): {kinds}")
    print(policy.notifier.describe())
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from janitor import pipeline

    policy = _policy(args)
    now = _now(args)
    with _store(policy) as store, _progress() as progress:
        report = pipeline.scan(policy, now=now, store=store, progress=progress)
    _emit_report(report, args)
    return report.exit_code()


def _notifier(policy: Policy, fmt: str, *, strict: bool = True) -> Notifier:
    """Slack when configured (or required by the policy), else digests on the console.

    The console counts as delivery only when the policy says so (`counts_as_delivery`).
    `strict=False` (a dry run, which sends nothing): a missing Slack token is no error.
    """
    settings = policy.notifier
    exempt_tag = policy.rules[0].exempt_tag
    if settings.type != "console":
        from janitor.notify.slack import (
            SlackNotifier,
            SlackSettings,
            SlackWebhookNotifier,
            web_client,
            webhook_client,
        )

        slack = SlackSettings.from_env(
            os.environ,
            fallback_channel=settings.slack.fallback_channel,
            summary_channel=settings.slack.summary_channel,
        )
        if slack.token:
            return SlackNotifier(
                web_client(slack),
                fallback_channel=slack.fallback_channel,
                summary_channel=slack.summary_channel,
                exempt_tag=exempt_tag,
            )
        if slack.webhook_url:
            return SlackWebhookNotifier(webhook_client(slack), exempt_tag=exempt_tag)
        if settings.type == "slack" and strict:
            raise UsageError(
                "the policy's notifier is slack: set SLACK_BOT_TOKEN "
                "(or JANITOR_SLACK_WEBHOOK_URL for a channel-only webhook)"
            )
    return _console(policy, fmt)


def _console(policy: Policy, fmt: str) -> Notifier:
    from janitor.notify.console import ConsoleNotifier

    # Digests go to stdout above a table report; with a machine-readable report, to stderr.
    stream: TextIO = sys.stdout if fmt == "table" else sys.stderr
    return ConsoleNotifier(
        stream,
        exempt_tag=policy.rules[0].exempt_tag,
        counts_as_delivery=policy.notifier.counts_as_delivery,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from janitor import pipeline

    if args.apply and args.as_of:
        # The lifecycle clock of a run that acts is the wall clock: a caller-chosen time could
        # stop something seconds after its warning, or something busy today.
        raise UsageError(
            "--as-of cannot be used with --apply: a run that acts uses the present time "
            "(use --as-of with a dry run or scan)"
        )
    policy = _policy(args)
    now = _now(args)
    # A dry run sends nothing, so it needs no notifier credentials either.
    notifier = _notifier(policy, args.format, strict=args.apply)
    # An applying run stops between two actions on SIGTERM or SIGINT, each action recorded.
    signals = interrupts.handling() if args.apply else nullcontext()
    with signals, _store(policy) as store, _progress() as progress:
        report = pipeline.run(
            policy,
            now=now,
            store=store,
            notifier=notifier,
            apply=args.apply,
            progress=progress,
        )
    _emit_report(report, args)
    return report.exit_code()


def cmd_restore(args: argparse.Namespace) -> int:
    from janitor import pipeline

    policy = _policy(args)
    with _store(policy) as store:
        try:
            message = pipeline.restore(args.resource, policy=policy, store=store, now=_now(args))
        except pipeline.RestoreError as exc:
            print(f"janitor: restore: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(message)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    policy = _policy(args)
    with _store(policy) as store:
        events = store.events(match=args.resource, limit=args.limit)
    if args.format == "json":
        rows = [
            {
                "at": e.at.isoformat(),
                "run_id": e.run_id,
                "event": e.event,
                "key": e.key,
                "name": e.name,
                "detail": dict(e.detail),
            }
            for e in events
        ]
        _emit(json.dumps(rows, indent=2, default=str), None)
        return EXIT_OK
    if not events:
        print("no audit events" + (f" for {args.resource!r}" if args.resource else ""))
        return EXIT_OK
    for e in reversed(events):
        print(f"{e.at:%Y-%m-%d %H:%M} {e.run_id} {e.event:<8} {e.name or '-':<28} {_summary(e)}")
    return EXIT_OK


def cmd_permissions(args: argparse.Namespace) -> int:
    from janitor import permissions

    if args.format == "aws-iam":
        _emit(permissions.aws_iam_policy().rstrip("\n"), None)
    elif args.format == "gcp-role":
        _emit(permissions.gcp_custom_role(read_only=args.read_only).rstrip("\n"), None)
    elif args.format == "azure-role":
        _emit(permissions.azure_custom_role(read_only=args.read_only).rstrip("\n"), None)
    else:
        _emit(permissions.markdown().rstrip("\n"), None)
    return EXIT_OK


def _summary(event: object) -> str:
    from janitor.model import AuditEvent

    assert isinstance(event, AuditEvent)
    d = event.detail
    if event.event == "decision":
        return f"{d.get('action')} ({d.get('status')}): {d.get('reason')}"
    if event.event in ("action", "reconciled"):
        return f"{d.get('action')} -> {d.get('outcome')}: {d.get('message')}"
    if event.event == "intent":
        return f"about to {d.get('action')} (undo recipe recorded)"
    if event.event == "delivery":
        state = "delivered" if d.get("ok") else "NOT delivered"
        return f"{state} to {d.get('destination')} ({len(d.get('items') or [])} resources)"
    if event.event == "restore":
        return str(d.get("message"))
    if event.event == "error":
        return f"{d.get('kind')} {d.get('scope')}/{d.get('region')}: {d.get('message')}"
    return ", ".join(f"{k}={v}" for k, v in d.items())


def cmd_demo(args: argparse.Namespace) -> int:
    from janitor.demo import run_demo

    return run_demo(days=args.days)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="janitor",
        description="Find idle ML cloud resources, warn their owners, then stop them safely.",
    )
    parser.add_argument(
        "--version", action="version", version=f"janitor {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (COMMAND -h: its help)"
    )

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        """A subcommand: `summary` is its line in `janitor -h` and the top of `janitor NAME -h`."""
        sentence = summary[0].upper() + summary[1:] + "."
        return sub.add_parser(name, help=summary, description=f"{sentence} {details}".strip())

    def with_policy(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--policy",
            metavar="P",
            help="policy file (default: $JANITOR_POLICY, else the embedded default policy)",
        )
        return p

    def with_as_of(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--as-of",
            metavar="ISO8601",
            help="evaluate as if now were this time (forecast, replay); evidence is read up "
            "to the present. Dry runs and scan only: refused with --apply",
        )

    def with_format(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format",
            choices=["table", "json", "csv", "markdown"],
            default="table",
            help="report format (default: table); with csv, skipped clouds and errors go to stderr",
        )
        p.add_argument("--output", metavar="FILE", help="write the report here, not stdout")

    with_policy(
        command(
            "validate",
            "check a policy without calling any cloud",
            "Also checks the Slack settings in the environment.",
        )
    )
    p = with_policy(
        command("scan", "report idle resources (read-only, always)", "Sends and stops nothing.")
    )
    with_as_of(p)
    with_format(p)
    p = with_policy(
        command(
            "run",
            "one lifecycle pass (a dry run unless --apply is given)",
            "Notices, warnings and stops, each only when due.",
        )
    )
    with_as_of(p)
    with_format(p)
    p.add_argument("--apply", action="store_true", help="really notify and stop (default: dry run)")
    p = with_policy(
        command(
            "restore",
            "undo the last stop of a resource",
            "It uses the recipe recorded at the stop.",
        )
    )
    p.add_argument(
        "resource", metavar="NAME_OR_ID", help="the resource's name, id or key, as in the report"
    )
    p = with_policy(command("history", "show the audit log"))
    p.add_argument(
        "resource",
        metavar="NAME_OR_ID",
        nargs="?",
        help="only the events of this resource (default: all)",
    )
    p.add_argument(
        "--limit", type=int, default=200, help="show at most this many events (default 200)"
    )
    p.add_argument(
        "--format", choices=["table", "json"], default="table", help="output (default: table)"
    )
    p = command(
        "permissions",
        "print the cloud permissions each kind needs",
        "Generated from the kinds' declarations: a table per cloud, or a role to create.",
    )
    p.add_argument(
        "--format",
        choices=["markdown", "aws-iam", "gcp-role", "azure-role"],
        default="markdown",
        help="markdown: a table per cloud (default); aws-iam: an IAM policy document; gcp-role: "
        "a custom role file for `gcloud iam roles create --file`; azure-role: a custom role "
        "for `az role definition create --role-definition`",
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        help="gcp-role, azure-role: only what scan and dry runs need",
    )
    p = command(
        "demo",
        "run a full cycle against local emulators (no cloud)",
        "Needs the demo extras; nothing leaves this machine.",
    )
    p.add_argument(
        "--days",
        type=int,
        default=10,
        help=f"simulated days to play, 0 to {MAX_DEMO_DAYS} (default 10)",
    )
    return parser


COMMANDS = {
    "validate": cmd_validate,
    "scan": cmd_scan,
    "run": cmd_run,
    "restore": cmd_restore,
    "history": cmd_history,
    "permissions": cmd_permissions,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _preflight(args)
        return COMMANDS[args.command](args)
    except PolicyError as exc:
        print(f"janitor: policy error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"janitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as exc:
        print(f"janitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except LockHeld as exc:
        print(f"janitor: {exc}; not acting", file=sys.stderr)
        return EXIT_FAILED
    except LockLost as exc:
        print(f"janitor: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except interrupts.Interrupted as exc:
        print(
            f"janitor: {exc.signal_name}: stopped after recording the last action; the lock is"
            " released and the next run carries on",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("janitor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
