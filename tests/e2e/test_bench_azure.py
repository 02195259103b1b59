"""`bench/azure.py` at a small size: it seeds the local ARM, runs `janitor scan` in a fresh
process, finds exactly the idle VMs and endpoints, and counts the calls by kind as the issue
asks (VM metrics: one Metrics - List At Subscription Scope call per subscription and region,
never one per VM; ML endpoint metrics: one Metrics - List per endpoint, said so).

In a subprocess: the benchmark is a script, named `azure.py` (importing it would hide the SDK's
`azure` package), that starts its own server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "azure.py"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def calls(out: str, operation: str, namespace: str = "") -> int:
    """The count printed for `operation` (and, in the namespace table, `namespace`)."""
    pattern = rf"(?m)^\s+(\d+)\s+{re.escape(operation)}\s+" + (
        re.escape(namespace) + r"\s" if namespace else r"\("
    )
    found = re.search(pattern, out)
    assert found, f"no count for {operation} {namespace}"
    return int(found.group(1))


def test_the_azure_benchmark_finds_the_idle_resources_and_batches_vm_metrics() -> None:
    # 36 VMs (6 per subscription and region), 4 idle; 6 endpoints (one per cell), 2 idle, the
    # first with two deployments.
    sizes = ["--vms", "36", "--idle-vms", "4", "--endpoints", "6", "--idle-endpoints", "2"]
    result = run_bench(*sizes)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-2000:]
    assert "azure.vm-gpu: idle found 4/4;" in out
    assert "azure.ml-endpoint: idle found 2/2;" in out
    assert "wrong" not in out
    # VM metrics: 2 subscriptions x 3 regions, one call each, whatever the number of VMs.
    assert calls(out, "Metrics_ListAtSubscriptionScope", "Microsoft.Compute/virtualMachines") == 6
    assert calls(out, "VirtualMachines_ListAll") == 2  # one page per subscription
    # ML endpoints: one RequestsPerMinute query per endpoint, and one heartbeat query per
    # deployment of the endpoints the requests do not show active.
    namespace = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert calls(out, "Metrics_List", namespace) == 6
    assert calls(out, "Metrics_List", f"{namespace}/deployments") >= 2
    assert "one call per endpoint, not batched" in out
    assert "ManagedIdentity_GetToken" in out  # every request counted, the token included
    assert re.search(r"wall time of the scan: [\d.]+ s", out)
    assert re.search(r"peak RSS \d+ MB", out)
