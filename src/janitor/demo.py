"""`janitor demo`: the whole product on this machine, with no cloud account and no network.

Starts the AWS emulator (moto in server mode), the local GCP server (Compute Engine, Cloud
Monitoring, Vertex AI and Notebooks REST APIs, reached through a generated service-account key
whose token endpoint is that server), the local Azure Resource Manager (Compute, Azure Monitor
and Azure Machine Learning over HTTPS, its certificate from a test CA generated into the demo's
temporary directory, reached through `DefaultAzureCredential`'s App Service managed identity
whose token endpoint is that server) and a local Slack Web API server, all on 127.0.0.1 in this
process,
seeds a realistic ML fleet in an AWS account, a GCP project and an Azure subscription with
histories in the past, shows the dry-run report, then plays the lifecycle over simulated days:
notices, warnings and stops as the Slack messages owners receive, and restores.

The emulators' environment (credentials, endpoints, the test CA) is set in this process only
while the demo runs; the machine's own AWS, GCP and Azure logins are never used.

The policy is the embedded default one plus an `owners:` section: GCP label values cannot hold
`@` or `.`, so the GCP project's owner labels are bare names that the policy maps.

The simulated days are the process clock, faked in-process (time_machine): the emulators run in
this process, so janitor's wall clock and the emulated cloud's move together, and `run --apply`
acts at "the present" as it always does. Nothing outside this process sees the faked clock.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule as RichRule

from janitor import cli
from janitor.policy import default_policy_text

if TYPE_CHECKING:
    from janitor.devserver.azure import AzureDevServer
    from janitor.devserver.slack import Received, SlackUser

DEMO_REGION = "us-east-1"
GCP_RESTORED = "summarizer-ab"  # the Vertex AI endpoint the demo restores (two models)
DEMO_SLACK_TOKEN = "xoxb-demo-token"  # the local server's own; nothing real
FALLBACK_CHANNEL = "#ml-spend"
# Appended to the embedded default policy: how the GCP project's owner labels (bare names, as
# GCP label values cannot hold "@" or ".") become Slack destinations. Applies to every cloud.
DEMO_OWNERS_POLICY = """
# janitor demo: GCP label values cannot hold "@" or ".", so owner labels are names mapped here.
owners:
  map:
    vision-team: "#ml-vision"   # a team label: its channel
  domain: example.com           # any other name: name@example.com
"""
# The GCP operations that change something (the local server's operation ids end in these).
GCP_MUTATING = frozenset({"stop", "start", "patch", "deployModel", "undeployModel"})
AZURE_RESTORED = "cv-train-nc24s"  # the Azure VM the demo starts again
AZURE_ML_RESTORED = "sentiment-online"  # the Azure ML online endpoint (two deployments)
# The local ARM counts calls per REST operation id: these verbs change something (POST
# deallocate/start/powerOff/stop, PUT CreateOrUpdate, PATCH Update, DELETE).
AZURE_MUTATING = frozenset(
    {"Deallocate", "Start", "PowerOff", "Stop", "Restart", "CreateOrUpdate", "Update", "Delete"}
)
AZURE_TOKEN_OPS = frozenset({"ManagedIdentity_GetToken"})  # the credential, not the cloud
# The machine's managed-identity and endpoint variables, removed in the demo like AZURE_*.
AZURE_MACHINE_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "JANITOR_AZURE_ARM_ENDPOINT",
    "JANITOR_AZURE_ARM_AUDIENCE",
)


def demo_slack_users() -> tuple[SlackUser, ...]:
    """The demo team in Slack: alice, bob and carol; dave has no Slack account."""
    from janitor.devserver.slack import SlackUser

    return (
        SlackUser("U0000000002", "alice@example.com", "alice", "Alice Example", "Europe/London"),
        SlackUser("U0000000003", "bob@example.com", "bob", "Bob Example", "America/Los_Angeles"),
        SlackUser("U0000000004", "carol@example.com", "carol", "Carol Example", "Asia/Tokyo"),
    )


@contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """`values` in this process's environment while the block runs (None: removed)."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


Publish = Callable[[datetime, datetime], int]  # publish the metrics of (since, until]


class _SimulatedClock:
    """The demo's days: the process clock moved on (it keeps ticking: SDK retries sleep on it),
    with every fleet's metrics published up to that moment."""

    def __init__(self, publishers: Sequence[Publish], *, seeded_at: datetime) -> None:
        self._publishers = publishers
        self._seeded_at = seeded_at
        self._published_until = seeded_at

    @contextmanager
    def on_day(self, day: int, hours: int = 1) -> Iterator[datetime]:
        import time_machine

        when = self._seeded_at + timedelta(days=day, hours=hours)
        with time_machine.travel(when, tick=True):
            if when > self._published_until:
                for publish in self._publishers:
                    publish(self._published_until, when)
                self._published_until = when
        # Entered again so that the day's run starts at its hour, whatever publishing took.
        with time_machine.travel(when, tick=True):
            yield when


def run_demo(days: int = 10) -> int:
    try:
        import azure.identity  # noqa: F401 - the Azure subscription's kinds need the azure extra
        import google.auth  # noqa: F401 - the GCP project's kinds need the gcp extra
        import time_machine  # noqa: F401 - the simulated days need it

        from janitor.devserver.aws import AwsDevServer
        from janitor.devserver.azure import AzureDevServer, TestCa
        from janitor.devserver.azure_fleet import (
            advance_azure_fleet,
            demo_azure_fleet,
            seed_azure_fleet,
        )
        from janitor.devserver.fleet import advance_fleet, demo_fleet, seed_fleet
        from janitor.devserver.gcp import GcpDevServer, write_service_account_key
        from janitor.devserver.gcp_fleet import advance_gcp_fleet, demo_gcp_fleet, seed_gcp_fleet
        from janitor.devserver.slack import SlackDevServer
    except ImportError as exc:
        print(f"janitor demo needs every extra: pip install 'ml-janitor[all]' ({exc})")
        return cli.EXIT_USAGE

    console = Console(highlight=False)
    now = datetime.now(UTC).replace(microsecond=0)
    users = demo_slack_users()
    with (
        tempfile.TemporaryDirectory(prefix="janitor-demo-") as tmp,
        AwsDevServer() as server,
        GcpDevServer(operation_polls=1) as gcp,  # an operation: RUNNING, then DONE when polled
        SlackDevServer(token=DEMO_SLACK_TOKEN, users=users) as slack,
        # HTTPS (the Azure SDK's bearer-token policy refuses http), its certificate from a test
        # CA generated into the demo's temporary directory and trusted only by this process.
        AzureDevServer(tls=TestCa.generate(os.path.join(tmp, "azure-tls"))) as arm,
    ):
        azure_fleet = demo_azure_fleet()
        gcp_fleet = demo_gcp_fleet()
        key_file = os.path.join(tmp, "gcp-service-account.json")
        write_service_account_key(gcp, key_file, project=gcp_fleet.project)
        policy_file = os.path.join(tmp, "policy.yaml")
        with open(policy_file, "w", encoding="utf-8") as handle:
            handle.write(default_policy_text() + DEMO_OWNERS_POLICY)
        env = {
            **server.env(DEMO_REGION),
            # The machine's own Application Default Credentials are never used: the key file
            # comes first, gcloud's configuration is an empty directory, no metadata server.
            "GOOGLE_APPLICATION_CREDENTIALS": key_file,
            "GOOGLE_CLOUD_PROJECT": gcp_fleet.project,
            "JANITOR_GCP_API_ENDPOINT": gcp.url,
            "CLOUDSDK_CONFIG": os.path.join(tmp, "gcloud"),
            "NO_GCE_CHECK": "True",
            "JANITOR_STATE_URL": f"sqlite:///{tmp}/state.db",
            "JANITOR_REGIONS": DEMO_REGION,
            "JANITOR_POLICY": policy_file,
            "JANITOR_KILL_SWITCH": "",
            "SLACK_BOT_TOKEN": DEMO_SLACK_TOKEN,
            "JANITOR_SLACK_API_URL": slack.url,
            "JANITOR_SLACK_FALLBACK_CHANNEL": FALLBACK_CHANNEL,
            "JANITOR_SLACK_WEBHOOK_URL": "",
            **azure_environment(arm, tmp),
        }
        with _environment(env):
            console.print(RichRule("janitor demo"))
            console.print(
                f"AWS emulator (moto, server mode) at {server.url}; a local GCP server "
                f"(Compute Engine, Cloud Monitoring, Vertex AI, Notebooks) at {gcp.url}, "
                f"project {gcp_fleet.project}, reached with a generated service-account key; "
                f"a local Slack Web API server at {slack.url} (alice, bob and carol are in "
                f"Slack, dave is not; fallback channel {FALLBACK_CHANNEL}); a local Azure Resource "
                f"Manager (Compute, Azure Monitor, Azure Machine Learning) at {arm.url}, "
                "subscription "
                f"{azure_fleet.subscription_name} ({azure_fleet.subscription}), over HTTPS with "
                "a generated test CA, reached through DefaultAzureCredential's managed identity; "
                "state in a "
                "temporary SQLite file; the embedded default policy (notice at 30 idle days, "
                "warning at 53, stop at 60) with an owners: section for GCP's owner labels:"
            )
            console.print(escape(DEMO_OWNERS_POLICY.strip("\n")), style="dim")
            fleet = demo_fleet(DEMO_REGION)
            seed_fleet(server, fleet, now)
            seed_gcp_fleet(gcp, gcp_fleet, now)
            seed_azure_fleet(arm, azure_fleet, now)
            console.print(
                f"\nSeeded, with their usage history: AWS {len(fleet.endpoints)} SageMaker "
                f"endpoints, {len(fleet.notebooks)} notebook instances and "
                f"{len(fleet.gpu_instances)} GPU instances; GCP {len(gcp_fleet.gpu_vms)} GPU "
                f"VMs, {len(gcp_fleet.endpoints)} Vertex AI endpoints and "
                f"{len(gcp_fleet.workbench)} Workbench instances; Azure "
                f"{len(azure_fleet.vms)} GPU VMs (one of them stopped but still allocated, one "
                f"Spot), {sum(len(w.endpoints) for w in azure_fleet.workspaces)} Azure ML online "
                f"endpoints and {sum(len(w.compute_instances) for w in azure_fleet.workspaces)} "
                "compute instances.\n"
            )

            console.print(RichRule("1. What is idle today: janitor scan (read-only)"))
            console.print("$ janitor scan\n")
            cli.main(["scan"])

            console.print(RichRule("2. The dry run changes nothing: janitor run"))
            console.print("$ janitor run   # no --apply: no stop, no message, no state\n")
            server.reset_calls()
            gcp.reset_calls()
            arm.reset_calls()
            cli.main(["run", "--format", "markdown", "--output", f"{tmp}/dry.md"])
            aws_writes = sum(n for op, n in server.calls.items() if _mutating(op))
            gcp_writes = sum(n for op, n in gcp.calls.items() if _gcp_mutating(op))
            azure_calls = {op: n for op, n in arm.calls.items() if op not in AZURE_TOKEN_OPS}
            azure_writes = sum(n for op, n in azure_calls.items() if _azure_mutating(op))
            console.print(
                f"(report written to a file; {sum(server.calls.values())} AWS API calls, "
                f"{aws_writes} of them mutating; {sum(gcp.calls.values())} GCP API calls, "
                f"{gcp_writes} of them mutating; {sum(azure_calls.values())} Azure API calls, "
                f"{azure_writes} of them mutating; {len(slack.messages())} Slack messages)\n"
            )

            console.print(RichRule(f"3. The lifecycle over {days} simulated days"))
            console.print(
                "(each day, this process's clock is moved a day on, the emulator's with it, and "
                "the fleet's metrics go on: the idle stay idle, the busy stay busy)"
            )
            clock = _SimulatedClock(
                (
                    partial(advance_fleet, server, fleet),
                    partial(advance_gcp_fleet, gcp, gcp_fleet, now),
                    partial(advance_azure_fleet, arm, azure_fleet, now),
                ),
                seeded_at=now,
            )
            for day in range(days + 1):
                with clock.on_day(day) as today:
                    console.print(
                        f"\n[bold]day {day}[/bold] ({today:%a %d %b %H:%M} UTC)  "
                        "$ janitor run --apply"
                    )
                    slack.clear()
                    report = f"{tmp}/day{day}.csv"
                    cli.main(["run", "--apply", "--format", "csv", "--output", report])
                console.print(_day_summary(report))
                for message in slack.messages():
                    console.print(slack_panel(message, users))

            with clock.on_day(days, hours=2):
                console.print(RichRule("4. Undo stops: janitor restore"))
                console.print("$ janitor restore llm-summarizer-canary")
                cli.main(["restore", "llm-summarizer-canary"])
                console.print("\n$ janitor history llm-summarizer-canary")
                cli.main(["history", "llm-summarizer-canary"])
                console.print(f"\n$ janitor restore {GCP_RESTORED}   # a Vertex AI endpoint")
                cli.main(["restore", GCP_RESTORED])
                console.print(f"\n$ janitor restore {AZURE_RESTORED}   # an Azure VM, started")
                cli.main(["restore", AZURE_RESTORED])
                console.print(
                    f"\n$ janitor restore {AZURE_ML_RESTORED}   # an Azure ML online endpoint"
                )
                cli.main(["restore", AZURE_ML_RESTORED])

                console.print(RichRule("5. The report after the simulated period"))
                console.print("$ janitor scan\n")
                cli.main(["scan"])
    console.print(RichRule("done: nothing left running, nothing touched outside this process"))
    return cli.EXIT_OK


def slack_panel(message: Received, users: tuple[SlackUser, ...]) -> Panel:
    """A message the local Slack server received, drawn roughly as Slack shows it."""
    channel = str(message.params.get("channel", ""))
    user = next((u for u in users if u.id == channel), None)
    title = f"Slack: DM to {user.real_name} ({user.tz})" if user else f"Slack: {channel}"
    lines: list[str] = []
    blocks: Any = message.params.get("blocks") or []
    for block in blocks if isinstance(blocks, list) else []:
        if block.get("type") == "header":
            lines.append(f"[bold]{_plain(block['text']['text'])}[/bold]")
        elif block.get("type") == "section":
            lines.append(_plain(block["text"]["text"]))
        elif block.get("type") == "context":
            text = " ".join(_plain(e.get("text", "")) for e in block["elements"])
            lines.append(f"[dim]{text}[/dim]")
    body = "\n".join(lines) or _plain(str(message.params.get("text", "")))
    return Panel(body, title=escape(title), title_align="left", width=110)


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn to terminal text: drop the emphasis marks, undo Slack's escaping."""
    text = re.sub(r"[*`]", "", mrkdwn)
    text = re.sub(r"(?m)^_(.*)_$", r"\1", text)  # a line in italics
    text = re.sub(r":[a-z_]+: ", "", text)  # emoji short codes
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return escape(text)


def _mutating(operation: str) -> bool:
    verb = operation.rsplit(".", 1)[-1]
    return verb.startswith(("Create", "Delete", "Stop", "Start", "Update", "Put", "Add", "Tag"))


def _gcp_mutating(operation: str) -> bool:
    return operation.rsplit(".", 1)[-1] in GCP_MUTATING


def _azure_mutating(operation: str) -> bool:
    return operation.rsplit("_", 1)[-1] in AZURE_MUTATING


def azure_environment(server: AzureDevServer, tmp: str) -> dict[str, str | None]:
    """What points DefaultAzureCredential and janitor at the demo's local ARM, and only there:
    the machine's own Azure login never reaches the demo (its AZURE_* and managed-identity
    variables removed, an empty Azure CLI configuration).

    REQUESTS_CA_BUNDLE and SSL_CERT_FILE trust the test CA alone, which is all the demo needs:
    every other emulator (moto, the GCP and Slack servers) speaks plain http on 127.0.0.1,
    where no certificate is checked."""
    machine: dict[str, str | None] = {
        name: None
        for name in os.environ
        if name.startswith("AZURE_") or name in AZURE_MACHINE_VARIABLES
    }
    return {
        **machine,
        **server.env(),  # IDENTITY_*, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, the ARM endpoint
        "AZURE_CONFIG_DIR": os.path.join(tmp, "azure-cli"),
    }


def _day_summary(csv_path: str) -> str:
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
