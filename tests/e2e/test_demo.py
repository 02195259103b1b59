"""`janitor demo` end to end: its simulated days move the process clock, not `--as-of`.

In a subprocess: the demo starts its own emulators, and moto's backends are per process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def flat(text: str) -> str:
    """The output as one line of words: Rich's panel borders and wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def days(out: str) -> dict[int, str]:
    """Each simulated day's part of the output (its summary line and Slack messages)."""
    parts = re.split(r"(?m)^day (\d+) \(", out)
    return {int(parts[i]): flat(parts[i + 1]) for i in range(1, len(parts) - 1, 2)}


def summaries(out: str) -> dict[int, str]:
    """Each simulated day's summary line (notices, warnings, stops, outcomes), without the
    Slack messages that follow it."""
    parts = re.split(r"(?m)^day (\d+) \(", out)
    return {
        int(parts[i]): flat(re.split(r"[╭─]{3}|╭", parts[i + 1].split("\n", 1)[1], maxsplit=1)[0])
        for i in range(1, len(parts) - 1, 2)
    }


def listed(summary: str, label: str) -> list[str]:
    """The names a summary line lists after `label` ("notices", "warnings", "stops")."""
    match = re.search(rf"\b{label}: ([^;]*)", summary)
    return [] if match is None else [name.strip() for name in match.group(1).split(",")]


def run_demo(days: int) -> str:
    """`janitor demo --days N` in a subprocess, kept from the machine's cloud logins; its
    output."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    for name in ("SLACK_BOT_TOKEN", "JANITOR_POLICY", "JANITOR_STATE_URL", "JANITOR_KILL_SWITCH"):
        env.pop(name, None)
    # The machine's own GCP setup never reaches the demo: it brings its own project and key.
    env |= {
        "GOOGLE_APPLICATION_CREDENTIALS": os.devnull,
        "GOOGLE_CLOUD_PROJECT": "someone-elses-project",
        "JANITOR_GCP_API_ENDPOINT": "http://127.0.0.1:9",
    }
    # Nor the machine's Azure login (a service principal, a managed identity, another ARM): it
    # brings its own subscription, server and test CA.
    env |= {
        "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
        "AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222",
        "AZURE_CLIENT_SECRET": "not-a-secret",
        "AZURE_AUTHORITY_HOST": "https://127.0.0.1:9",
        "IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token",
        "IDENTITY_HEADER": "not-the-demo-server",
        "JANITOR_AZURE_ARM_ENDPOINT": "https://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "janitor.cli", "demo", "--days", str(days)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def test_the_demo_plays_the_lifecycle_with_the_wall_clock() -> None:
    # One run of the demo (it takes a while) for its AWS, GCP and Azure parts.
    out = run_demo(days=7)
    applied = [line for line in out.splitlines() if "janitor run --apply" in line]
    assert len(applied) == 8  # days 0 to 7
    assert not any("--as-of" in line for line in applied)
    assert "llm-summarizer-canary -> stopped" in flat(out)
    assert "recreated endpoint llm-summarizer-canary" in out

    # The GCP project is part of it: its server is introduced, nothing of GCP is skipped.
    assert "local GCP server" in out
    assert "example-ml-project" in out
    assert "gcp: skipped" not in out
    errors = re.findall(r"errors: (\d+)", flat(out))
    assert errors
    assert set(errors) == {"0"}  # every report and run summary

    # The dry run reads GCP and changes nothing there.
    dry = re.search(r"(\d+) GCP API calls, (\d+) of them mutating", flat(out))
    assert dry, "the dry run counts GCP calls"
    assert int(dry.group(1)) > 0
    assert int(dry.group(2)) == 0

    by_day = days(out)
    assert set(by_day) == set(range(8))
    # A GPU VM and a Vertex endpoint: warned on day 0, in Bob's DM, stopped on day 7.
    day0 = by_day[0]
    warnings = day0.split("warnings:", 1)[1].split("Slack:", 1)[0]
    assert "vision-train-v100" in warnings
    assert "summarizer-ab" in warnings
    bob0 = day0.split("Slack: DM to Bob Example", 1)[1].split("Slack:", 1)[0]
    assert "vision-train-v100 gcp.gce-gpu example-ml-project/us-central1" in bob0
    assert "Will be stopped unless used or exempted" in bob0
    # The team label reached its channel through the owners map.
    assert "Slack: #ml-vision" in day0
    assert "shared-t4-sandbox gcp.gce-gpu" in day0.split("Slack: #ml-vision", 1)[1]
    for day in range(1, 7):
        assert "vision-train-v100 ->" not in by_day[day]
    day7 = by_day[7]
    assert "vision-train-v100 -> stopped" in day7
    assert "summarizer-ab -> stopped" in day7
    bob7 = day7.split("Slack: DM to Bob Example", 1)[1].split("Slack:", 1)[0]
    assert "Undo: janitor restore us-central1-a/vision-train-v100" in bob7
    # The Vertex endpoint's two models are deployed again, traffic split and all.
    assert "redeployed 2 model(s) to endpoint summarizer-ab" in out
    assert "traffic split restored" in out

    check_azure_part(out)


AZURE_SUBSCRIPTION = "3f2c8a1e-5b7d-4c9e-a1f0-6d2b8e4c7a90"  # the demo's (azure_fleet.py)


def check_azure_part(out: str) -> None:
    """The demo's Azure subscription, over the same 7 days."""
    flat_out = flat(out)
    # The local ARM is introduced and scanned; nothing of Azure is skipped.
    assert "local Azure Resource Manager" in flat_out
    assert f"subscription ml-research ({AZURE_SUBSCRIPTION})" in flat_out
    assert "azure: skipped" not in out
    scan = flat(out.split("1. What is idle today", 1)[1].split("2. The dry run", 1)[0])
    assert "cv-train-nc24s azure.vm-gpu bob@example.com idle" in scan
    # Stopped but still allocated (still billing): a finding, warned like any idle VM.
    assert "bert-nc6s-stopped azure.vm-gpu dave@example.com idle" in scan
    assert "llm-finetune-nd96 azure.vm-gpu alice@example.com active" in scan
    assert "nd-h100-benchmark azure.vm-gpu carol@example.com exempt" in scan

    # The dry run reads Azure and changes nothing there.
    dry = re.search(r"(\d+) Azure API calls, (\d+) of them mutating", flat_out)
    assert dry, "the dry run counts Azure calls"
    assert int(dry.group(1)) > 0
    assert int(dry.group(2)) == 0

    by_day = days(out)
    lines = summaries(out)
    day0 = by_day[0]
    assert "cv-train-nc24s" in listed(lines[0], "warnings")
    assert "bert-nc6s-stopped" in listed(lines[0], "warnings")
    assert "viz-nv12s" in listed(lines[0], "notices")  # 51 idle days: a notice first
    assert "viz-nv12s" not in listed(lines[0], "warnings")
    bob0 = day0.split("Slack: DM to Bob Example", 1)[1].split("Slack:", 1)[0]
    assert f"cv-train-nc24s azure.vm-gpu {AZURE_SUBSCRIPTION}/eastus" in bob0
    assert "Will be stopped unless used or exempted" in bob0
    # dave has no Slack account: his stopped VM's warning reaches the fallback channel.
    fallback0 = [part for part in day0.split("Slack: ")[1:] if "bert-nc6s-stopped" in part]
    assert fallback0
    assert fallback0[0].startswith("#ml-spend")
    assert "stopped but not deallocated (its compute is still billed)" in fallback0[0]

    # Deallocated on day 7, a week after the warning, and not a day before.
    for day in range(1, 7):
        assert "cv-train-nc24s" not in lines[day], day
        assert "bert-nc6s-stopped" not in lines[day], day
    assert "cv-train-nc24s -> stopped" in lines[7]
    assert "bert-nc6s-stopped -> stopped" in lines[7]
    bob7 = by_day[7].split("Slack: DM to Bob Example", 1)[1].split("Slack:", 1)[0]
    assert "cv-train-nc24s azure.vm-gpu" in bob7
    assert "Undo: janitor restore /subscriptions/" in bob7

    # The Spot VM: a notice at most, never a warning, never deallocated.
    assert "spot-a100-sweep" in listed(lines[0], "notices")
    for day, line in lines.items():
        assert "spot-a100-sweep" not in listed(line, "warnings"), day
        assert "spot-a100-sweep" not in listed(line, "stops"), day
        assert "spot-a100-sweep ->" not in line, day

    # Azure ML: the idle online endpoint is warned on day 0 (in Carol's DM), its deployments
    # deleted on day 7 (the endpoint kept); the compute instance without idle shutdown gets a
    # notice, and its advice shows in the report and in Carol's DM.
    assert "sentiment-online" in listed(lines[0], "warnings")
    assert "carol-gpu-ci" in listed(lines[0], "notices")
    carol0 = day0.split("Slack: DM to Carol Example", 1)[1].split("Slack:", 1)[0]
    assert f"sentiment-online azure.ml-endpoint {AZURE_SUBSCRIPTION}/eastus" in carol0
    assert "Tip: idle shutdown is off (idleTimeBeforeShutdown is not set)" in carol0
    advice = flat(scan.split("Advice:", 1)[1])
    assert "carol-gpu-ci (azure.ml-compute, eastus): idle shutdown is off" in advice
    for day in range(1, 7):
        assert "sentiment-online" not in lines[day], day
    assert "sentiment-online -> stopped" in lines[7]
    assert "fraud-score-online" not in " ".join(lines.values())  # busy: nothing due

    # Restore: the deallocated VM is started again, the endpoint's deployments recreated with
    # their traffic.
    restore = flat(out.split("4. Undo stops", 1)[1].split("5. The report", 1)[0])
    assert "$ janitor restore cv-train-nc24s" in restore
    assert (
        f"started VM cv-train-nc24s in {AZURE_SUBSCRIPTION}/ml-research-rg (was deallocated)"
        in restore
    )
    assert "$ janitor restore sentiment-online" in restore
    assert (
        "recreated 2 deployment(s) of endpoint sentiment-online (blue, green); traffic "
        "restored (blue 80%, green 20%)" in restore
    )
