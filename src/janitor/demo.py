"""`janitor demo`: the whole product on this machine, with no cloud account and no network.

Starts the AWS emulator (moto in server mode, on 127.0.0.1) in this process, seeds a realistic
ML fleet with histories in the past, shows the dry-run report, then plays the lifecycle over
simulated days with `--as-of`: notices, warnings, stops, and a restore.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.rule import Rule as RichRule

from janitor import cli

DEMO_REGION = "us-east-1"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_demo(days: int = 10) -> int:
    try:
        from janitor.devserver.aws import AwsDevServer
        from janitor.devserver.fleet import demo_fleet, seed_fleet
    except ImportError as exc:
        print(f"janitor demo needs the emulator extras: pip install 'janitor[demo]' ({exc})")
        return cli.EXIT_USAGE

    console = Console(highlight=False)
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="janitor-demo-") as tmp, AwsDevServer() as server:
        env = {
            **server.env(DEMO_REGION),
            "JANITOR_STATE_URL": f"sqlite:///{tmp}/state.db",
            "JANITOR_REGIONS": DEMO_REGION,
            "JANITOR_POLICY": "",
            "JANITOR_KILL_SWITCH": "",
        }
        with _environment(env):
            console.print(RichRule("janitor demo"))
            console.print(
                f"AWS emulator (moto, server mode) at {server.url}; state in a temporary SQLite "
                "file; the embedded default policy (notice at 30 idle days, warning at 53, "
                "stop at 60)."
            )
            fleet = demo_fleet(DEMO_REGION)
            seed_fleet(server, fleet, now)
            console.print(
                f"Seeded {len(fleet.endpoints)} SageMaker endpoints, {len(fleet.notebooks)} "
                f"notebook instances and {len(fleet.gpu_instances)} GPU instances with "
                "their usage history.\n"
            )

            console.print(RichRule("1. What is idle today: janitor scan (read-only)"))
            console.print("$ janitor scan\n")
            cli.main(["scan"])

            console.print(RichRule("2. The dry run changes nothing: janitor run"))
            console.print("$ janitor run   # no --apply: no stop, no message, no state\n")
            server.reset_calls()
            cli.main(["run", "--format", "markdown", "--output", f"{tmp}/dry.md"])
            writes = sum(n for op, n in server.calls.items() if _mutating(op))
            console.print(
                f"(report written to a file; {sum(server.calls.values())} API calls, "
                f"{writes} of them mutating)\n"
            )

            console.print(RichRule(f"3. The lifecycle over {days} simulated days"))
            for day in range(days + 1):
                as_of = _iso(now + timedelta(days=day, hours=1))
                console.print(f"\n[bold]day {day}[/bold]  $ janitor run --apply --as-of {as_of}")
                cli.main(
                    [
                        "run",
                        "--apply",
                        "--as-of",
                        as_of,
                        "--format",
                        "csv",
                        "--output",
                        f"{tmp}/day{day}.csv",
                    ]
                )
                console.print(_day_summary(f"{tmp}/day{day}.csv"))

            console.print(RichRule("4. Undo a stop: janitor restore"))
            console.print("$ janitor restore llm-summarizer-canary")
            cli.main(["restore", "llm-summarizer-canary"])
            console.print("\n$ janitor history llm-summarizer-canary")
            cli.main(["history", "llm-summarizer-canary"])

            console.print(RichRule("5. The report after the simulated period"))
            final = _iso(now + timedelta(days=days, hours=2))
            console.print(f"$ janitor scan --as-of {final}\n")
            cli.main(["scan", "--as-of", final])
    console.print(RichRule("done: nothing left running, nothing touched outside this process"))
    return cli.EXIT_OK


def _mutating(operation: str) -> bool:
    verb = operation.rsplit(".", 1)[-1]
    return verb.startswith(("Create", "Delete", "Stop", "Start", "Update", "Put", "Add", "Tag"))


def _day_summary(csv_path: str) -> str:
    import csv

    with open(csv_path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parts = []
    for label, action in (("notices", "notify"), ("warnings", "warn"), ("stops", "stop")):
        names = [r["name"] for r in rows if r["action"] == action]
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    stopped = [f"{r['name']} -> {r['outcome']}" for r in rows if r["outcome"]]
    if stopped:
        parts.append("outcomes: " + ", ".join(stopped))
    return "  " + ("; ".join(parts) if parts else "nothing due")
