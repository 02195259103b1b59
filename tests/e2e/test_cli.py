"""The `janitor` command end to end, against the local AWS emulator seeded with the demo fleet.

Each test drives the real CLI (in-process, or as a subprocess where the environment itself is
under test) over real boto3 clients talking HTTP to moto in server mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.e2e.conftest import Fleet, by_name, run_json

from janitor import cli
from janitor.state import open_store

pytestmark = pytest.mark.e2e


def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1")


# --- scan -------------------------------------------------------------------------------------


def test_scan_reports_every_kind_with_owner_cost_and_status(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_json(capsys, "scan")
    assert code == 0
    assert report["dry_run"] is True
    rows = by_name(report)
    required = {
        "cloud", "kind", "id", "name", "scope", "region", "owner", "status", "idle_since",
        "idle_days", "action", "stop_due", "monthly_cost_usd", "confidence", "evidence",
    }  # fmt: skip
    for row in rows.values():
        assert required <= row.keys()
    canary = rows["llm-summarizer-canary"]
    assert (canary["status"], canary["action"], canary["owner"]) == (
        "idle", "warn", "bob@example.com",
    )  # fmt: skip
    assert 74 <= canary["idle_days"] <= 76
    assert canary["confidence"] == "high"
    assert canary["monthly_cost_usd"] > 0  # two ml.g4dn.12xlarge variants
    assert rows["fraud-scorer-prod"]["status"] == "active"
    assert rows["legacy-ranker"]["status"] == "unknown"
    assert rows["legacy-ranker"]["action"] == "skip"
    assert rows["bert-embeddings-poc"]["status"] == "exempt"
    assert rows["churn-model-v3"]["action"] == "notify"
    assert rows["train-box-p3"]["kind"] == "aws.ec2-gpu"
    assert rows["dev-g4dn"]["confidence"] == "low"  # CPU fallback: no GPU metrics
    assert rows["team-shared-eda"]["kind"] == "aws.sagemaker-notebook"
    assert report["summary"]["potential_monthly_savings_usd"] > 0
    assert fleet.mutating_calls() == {}


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_scan_other_formats(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], fmt: str, tmp_path: Path
) -> None:
    target = tmp_path / f"report.{fmt}"
    assert cli.main(["scan", "--format", fmt, "--output", str(target)]) == 0
    text = target.read_text()
    assert "llm-summarizer-canary" in text
    assert capsys.readouterr().out == ""


# --- the dry-run gate -------------------------------------------------------------------------


def test_dry_run_calls_no_mutating_api_sends_nothing_and_writes_no_state(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in (0, 10, 100):  # even when stops would be due
        code, report = run_json(capsys, "run", "--as-of", fleet.as_of(day))
        assert code == 0
        assert report["dry_run"] is True
    assert fleet.mutating_calls() == {}
    assert any(f["action"] == "warn" for f in report["findings"])
    assert report["deliveries"], "a dry run says what it would send"
    assert all(line.startswith("would send") for line in report["deliveries"])
    with sqlite3.connect(fleet.state) as db:
        assert db.execute("SELECT COUNT(*) FROM lifecycle").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM audit").fetchone() == (0,)


# --- the lifecycle ----------------------------------------------------------------------------


def test_lifecycle_warns_then_stops_then_restores(
    fleet: Fleet, counting_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet.travel(0):
        code, day0 = run_json(capsys, "run", "--apply")
    assert code == 0
    rows = by_name(day0)
    assert rows["llm-summarizer-canary"]["action"] == "warn"  # 75 days idle: warn, not stop
    assert rows["churn-model-v3"]["action"] == "notify"
    assert rows["spot-trainer"]["action"] == "notify", "a spot instance is never warned of a stop"
    assert all(f["outcome"] is None for f in day0["findings"]), "nothing stopped on day 0"

    # churn-model-v3 was last used 52 days ago: its warning comes on day 1 or 2 (metrics are
    # read in whole-day buckets), and its stop exactly 7 days after that warning.
    warned_on = None
    for day in range(1, 7):
        with fleet.travel(day):
            code, report = run_json(capsys, "run", "--apply")
        assert code == 0
        rows = by_name(report)
        assert rows["llm-summarizer-canary"]["action"] == "none", "each stage once per streak"
        assert all(f["outcome"] is None for f in report["findings"]), "not before 7 days"
        if rows["churn-model-v3"]["action"] == "warn":
            assert warned_on is None, "warned once"
            warned_on = day
    assert warned_on in (1, 2)

    with fleet.travel(7):
        code, day7 = run_json(capsys, "run", "--apply")
    assert code == 0
    rows = by_name(day7)
    assert rows["llm-summarizer-canary"]["outcome"] == "stopped"
    assert rows["train-box-p3"]["outcome"] == "stopped"
    assert rows["spot-trainer"]["outcome"] is None  # spot: never stopped, never warned
    assert "spot instance" in rows["spot-trainer"]["reason"]
    assert rows["churn-model-v3"]["outcome"] is None
    assert rows["bert-embeddings-poc"]["status"] == "exempt"
    assert rows["legacy-ranker"]["status"] == "unknown"
    names = {e["EndpointName"] for e in sagemaker().list_endpoints()["Endpoints"]}
    assert "llm-summarizer-canary" not in names
    assert {"bert-embeddings-poc", "legacy-ranker", "fraud-scorer-prod"} <= names
    ec2 = boto3.client("ec2", region_name="us-east-1")
    states = {
        tag["Value"]: i["State"]["Name"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        for tag in i.get("Tags", [])
        if tag["Key"] == "Name"
    }
    assert states["train-box-p3"] == "stopped"
    assert states["spot-trainer"] == "running"
    assert states["inference-g5"] == "running"

    for day in range(8, warned_on + 8):
        with fleet.travel(day):
            code, report = run_json(capsys, "run", "--apply")
        expected = "stopped" if day == warned_on + 7 else None
        assert by_name(report)["churn-model-v3"]["outcome"] == expected

    assert cli.main(["restore", "llm-summarizer-canary"]) == 0
    assert "llm-summarizer-canary" in capsys.readouterr().out
    endpoint = sagemaker().describe_endpoint(EndpointName="llm-summarizer-canary")
    assert endpoint["EndpointConfigName"] == "llm-summarizer-canary-config"
    tags = sagemaker().list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {"Key": "owner", "Value": "bob@example.com"} in tags
    assert cli.main(["restore", "llm-summarizer-canary"]) == 1, "a second restore refuses"
    assert "already restored" in capsys.readouterr().err

    assert cli.main(["history", "llm-summarizer-canary"]) == 0
    history = capsys.readouterr().out
    assert "warn" in history
    assert "stopped" in history
    assert "restore" in history


def test_exempt_and_unknown_are_never_touched_however_long(
    fleet: Fleet, counting_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for day in (0, 7, 14, 30):
        with fleet.travel(day):
            code, report = run_json(capsys, "run", "--apply")
        rows = by_name(report)
        assert rows["legacy-ranker"]["action"] == "skip"
        assert rows["bert-embeddings-poc"]["action"] == "skip"
    names = {e["EndpointName"] for e in sagemaker().list_endpoints()["Endpoints"]}
    assert {"legacy-ranker", "bert-embeddings-poc"} <= names


def test_an_exemption_that_expired_starts_the_lifecycle(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = sagemaker().describe_endpoint(EndpointName="bert-embeddings-poc")["EndpointArn"]
    yesterday = (fleet.now - timedelta(days=1)).date().isoformat()
    sagemaker().add_tags(ResourceArn=arn, Tags=[{"Key": "janitor-exempt", "Value": yesterday}])
    _, report = run_json(capsys, "scan")
    row = by_name(report)["bert-embeddings-poc"]
    assert row["status"] == "idle"
    assert row["action"] == "warn"  # 64 idle days: warned first, never stopped straight away


def test_denied_permission_means_unknown_and_no_stop(
    fleet: Fleet, counting_console: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet.travel(0):
        run_json(capsys, "run", "--apply")
    fleet.server.fail("cloudtrail.LookupEvents", 50, "AccessDeniedException")
    with fleet.travel(8):
        code, report = run_json(capsys, "run", "--apply")
    rows = by_name(report)
    assert rows["team-shared-eda"]["status"] == "unknown"
    assert rows["team-shared-eda"]["outcome"] is None
    described = sagemaker().describe_notebook_instance(NotebookInstanceName="team-shared-eda")
    assert described["NotebookInstanceStatus"] == "InService"


def test_throttling_is_retried(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.server.throttle("monitoring.GetMetricData", 2)
    fleet.server.throttle("sagemaker.ListEndpoints", 1)
    code, report = run_json(capsys, "scan")
    assert code == 0
    assert report["errors"] == []
    assert by_name(report)["llm-summarizer-canary"]["status"] == "idle"


def test_kill_switch_holds_every_stop(
    fleet: Fleet,
    counting_console: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fleet.travel(0):
        run_json(capsys, "run", "--apply")
    monkeypatch.setenv("JANITOR_KILL_SWITCH", "1")
    with fleet.travel(8):
        code, report = run_json(capsys, "run", "--apply")
    assert code == 0
    row = by_name(report)["llm-summarizer-canary"]
    assert (row["action"], row["outcome"]) == ("skip", None)
    assert "JANITOR_KILL_SWITCH" in row["reason"]
    assert not any("Delete" in op or "Stop" in op for op in fleet.mutating_calls())


def test_two_runs_never_act_at_once(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(f"sqlite:///{fleet.state}")
    try:
        with fleet.travel(8), store.lock("another run", timedelta(minutes=5)):
            code = cli.main(["run", "--apply"])
    finally:
        store.close()
    err = capsys.readouterr().err
    assert code == 1
    assert "holds the lock" in err
    assert fleet.mutating_calls() == {}


def test_a_failing_scope_is_reported_and_the_rest_of_the_run_goes_on(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with fleet.travel(8):
        code, report = run_json(capsys, "run", "--apply")
    assert code == 1
    failed = {e["kind"] for e in report["errors"]}
    assert failed == {"aws.sagemaker-endpoint", "aws.sagemaker-notebook"}
    assert all("\n" not in e["message"] for e in report["errors"])
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds == {"aws.ec2-gpu"}, "the GPU scope still ran"
    assert fleet.mutating_calls() == {}, "first run on these resources: warnings only"


# --- usage errors: exit 2, one clear line, no traceback ----------------------------------------


BAD_POLICIES = {
    "broken-yaml": ("rules: [\n  - name: x\n    kind: aws.ec2-gpu\n  oops", "not valid YAML"),
    "unknown-kind": (
        "rules:\n  - name: x\n    kind: aws.lambda\n",
        "unknown kind 'aws.lambda'",
    ),
    "stop-before-notice": (
        "rules:\n  - name: x\n    kind: aws.ec2-gpu\n    notify_after: 30d\n    stop_after: 20d\n",
        "stop_after (20d) must be later than notify_after (30d)",
    ),
    "negative-duration": (
        "rules:\n  - name: x\n    kind: aws.ec2-gpu\n    warning: -3d\n",
        "warning",
    ),
    "unknown-field": (
        "rules:\n  - name: x\n    kind: aws.ec2-gpu\n    colour: red\n",
        "unknown field",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
@pytest.mark.parametrize("command", ["validate", "scan", "run"])
def test_bad_policy_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    text, expected = BAD_POLICIES[case]
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert cli.main([command, "--policy", str(path)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert str(path) in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_validate_accepts_the_default_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--policy", "policies/default.yaml"]) == 0
    out = capsys.readouterr().out
    for kind in ("aws.sagemaker-endpoint", "aws.sagemaker-notebook", "aws.ec2-gpu"):
        assert kind in out


def test_missing_policy_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["validate", "--policy", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read policy file" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["2026-13-01", "2026-12-01T10:00:00", "yesterday"])
def test_bad_as_of(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert cli.main(["scan", "--as-of", value]) == 2
    assert "--as-of" in capsys.readouterr().err


def test_restore_without_a_recorded_stop(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["restore", "nothing-like-this"]) == 1
    err = capsys.readouterr().err
    assert "no recorded stop" in err
    assert "Traceback" not in err


def test_history_is_empty_before_any_applied_run(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["history"]) == 0
    assert "no audit events" in capsys.readouterr().out


# --- the environment itself under test: subprocesses -------------------------------------------


def _clean_env(tmp_path: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
        "NO_GCE_CHECK": "True",
        "AZURE_CONFIG_DIR": str(tmp_path / "no-azure-cli"),
        "JANITOR_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
    })  # fmt: skip
    return env


def _janitor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "janitor.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_no_credentials_skips_the_cloud_with_a_line(tmp_path: Path) -> None:
    result = _janitor(_clean_env(tmp_path), "scan", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["findings"] == []
    assert report["errors"] == []
    aws, azure, gcp = sorted(report["skipped"])  # the default policy names AWS, Azure and GCP
    assert aws.startswith("aws: skipped, no AWS credentials found")
    assert azure.startswith("azure: skipped, no Azure credentials")
    assert "azure.vm-gpu not scanned" in azure
    assert gcp.startswith("gcp: skipped, ")
    assert "gcp.gce-gpu" in gcp
    assert "gcp.vertex-endpoint" in gcp
    assert "gcp.workbench" in gcp
    assert "not scanned" in gcp
    assert azure.startswith("azure: skipped, ")
    assert "azure.ml-endpoint" in azure
    assert "azure.ml-compute" in azure


def test_unreachable_endpoint_is_one_line_per_scope_and_exit_1(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    })  # fmt: skip
    result = _janitor(env, "run", "--apply", "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["findings"] == []
    assert len(report["errors"]) == 1
    assert "cannot open account" in report["errors"][0]["message"]
    assert "\n" not in report["errors"][0]["message"]
    assert "Traceback" not in result.stderr


def test_no_credentials_for_accounts_the_policy_names_is_an_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "aws:\n"
        "  accounts:\n"
        "    - name: research\n"
        "      role_arn: arn:aws:iam::111122223333:role/janitor\n"
        "rules:\n"
        "  - name: gpu\n"
        "    kind: aws.ec2-gpu\n"
    )
    result = _janitor(_clean_env(tmp_path), "scan", "--policy", str(policy), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["skipped"] == []
    assert [e["scope"] for e in report["errors"]] == ["research"]
    assert "no AWS credentials found" in report["errors"][0]["message"]


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["restore"], ["scan", "--format", "yaml"], ["run", "--apply", "now"]],
    ids=["no-command", "unknown-command", "restore-without-name", "bad-format", "stray-arg"],
)
def test_bad_usage_exits_2_with_a_usage_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: janitor")
    assert "Traceback" not in err


# --- the lifecycle clock is the wall clock whenever janitor acts -------------------------------


def test_apply_with_as_of_is_refused_before_anything_is_done(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    acting = ["run", "--apply"]
    for day in (-30, 8):  # a past or a future lifecycle clock
        moved = ["--as-of", fleet.as_of(day)]
        assert cli.main(acting + moved) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.strip().splitlines()
        assert line.startswith("janitor: --as-of cannot be used with")
        assert "a run that acts uses the present time" in line
    assert fleet.server.calls == {}
    assert not fleet.state.exists(), "refused before the state store was even opened"
    # A dry run and a scan still forecast with it.
    assert cli.main(["run", "--as-of", fleet.as_of(8), "--format", "json"]) == 0
    assert cli.main(["scan", "--as-of", fleet.as_of(8), "--format", "json"]) == 0


# --- no stop unless a person was warned --------------------------------------------------------


def test_without_a_notifier_that_reaches_people_nothing_is_ever_stopped(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default policy, no Slack token, no webhook: the console prints, and that is all."""
    for day in (0, 8, 30):
        with fleet.travel(day):
            code, report = run_json(capsys, "run", "--apply")
        assert code == 0
        assert all(f["outcome"] is None for f in report["findings"]), "no stop, however late"
        (note,) = report["notes"]
        assert note.startswith("stops are held until a notifier is configured")
        assert by_name(report)["llm-summarizer-canary"]["action"] == "warn"  # every run anew
    assert fleet.mutating_calls() == {}
    with sqlite3.connect(fleet.state) as db:
        counted = db.execute(
            "SELECT COUNT(*) FROM lifecycle WHERE warned_at IS NOT NULL OR notified_at IS NOT NULL"
        ).fetchone()
    assert counted == (0,)

    with fleet.travel(31):
        assert cli.main(["run", "--apply"]) == 0  # table: digests, then the report
        table = capsys.readouterr().out
        assert "stops are held until a notifier is configured" in table  # the digests say so
        assert "Notes:" in table
        assert cli.main(["run", "--apply", "--format", "csv"]) == 0
        captured = capsys.readouterr()
        assert "janitor: stops are held until a notifier is configured" in captured.err
        assert cli.main(["run", "--apply", "--format", "markdown"]) == 0
        assert "## Notes" in capsys.readouterr().out


def test_validate_prints_the_notifier_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["validate", "--policy", "policies/default.yaml"]) == 0
    assert "stops are held until a notifier is configured" in capsys.readouterr().out
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "notifier: {type: console, counts_as_delivery: true}\n"
        "rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n"
    )
    assert cli.main(["validate", "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "counts_as_delivery: true" in out
    assert "stops follow without any message to the owner" in out
