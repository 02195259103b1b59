"""`janitor demo` end to end: its simulated days move the process clock, not `--as-of`.

In a subprocess: the demo starts its own emulator, and moto's backends are per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_plays_the_lifecycle_with_the_wall_clock() -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    for name in ("SLACK_BOT_TOKEN", "JANITOR_POLICY", "JANITOR_STATE_URL", "JANITOR_KILL_SWITCH"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "janitor.cli", "demo", "--days", "7"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    applied = [line for line in out.splitlines() if "janitor run --apply" in line]
    assert len(applied) == 8  # days 0 to 7
    assert not any("--as-of" in line for line in applied)
    assert "llm-summarizer-canary -> stopped" in " ".join(out.split())
    assert "recreated endpoint llm-summarizer-canary" in out
    assert "Traceback" not in result.stderr
