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


def test_the_demo_plays_the_lifecycle_with_the_wall_clock() -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    for name in ("SLACK_BOT_TOKEN", "JANITOR_POLICY", "JANITOR_STATE_URL", "JANITOR_KILL_SWITCH"):
        env.pop(name, None)
    # The machine's own GCP setup never reaches the demo: it brings its own project and key.
    env |= {
        "GOOGLE_APPLICATION_CREDENTIALS": os.devnull,
        "GOOGLE_CLOUD_PROJECT": "someone-elses-project",
        "JANITOR_GCP_API_ENDPOINT": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "janitor.cli", "demo", "--days", "7"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    applied = [line for line in out.splitlines() if "janitor run --apply" in line]
    assert len(applied) == 8  # days 0 to 7
    assert not any("--as-of" in line for line in applied)
    assert "llm-summarizer-canary -> stopped" in flat(out)
    assert "recreated endpoint llm-summarizer-canary" in out
    assert "Traceback" not in result.stderr

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
