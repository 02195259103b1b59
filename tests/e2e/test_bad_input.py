"""Bad input: one line on stderr naming the problem, exit 2, no traceback, before anything is
done (issue 6, section 7). Every case goes through `janitor.cli.main`, in-process.

Where "before anything is done" matters (`run --apply`), the case runs against the seeded AWS
emulator and checks that no cloud call was made and no state file was written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.e2e.conftest import Fleet

from janitor import cli

pytestmark = pytest.mark.e2e

GPU_RULE = "rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n"
SKIPPED = "aws: skipped, no AWS credentials found"
SLACK_VARS = (
    "SLACK_BOT_TOKEN",
    "JANITOR_SLACK_WEBHOOK_URL",
    "JANITOR_SLACK_API_URL",
    "JANITOR_SLACK_FALLBACK_CHANNEL",
    "JANITOR_SLACK_MAX_RETRIES",
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state file in tmp_path, the embedded policy, no Slack, unless a test says otherwise."""
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    for name in ("JANITOR_POLICY", "JANITOR_REGIONS", *SLACK_VARS):
        monkeypatch.delenv(name, raising=False)


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    """Runs the command, asserts exit 2 and one stderr line holding every fragment; returns it."""
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, (captured.out, captured.err)
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    (line,) = lines
    assert line.startswith("janitor: "), line
    for fragment in fragments:
        assert fragment in line
    assert captured.out == ""
    return line


def untouched(fleet: Fleet) -> None:
    """Nothing was done: not a single cloud call, no state file."""
    assert dict(fleet.server.calls) == {}
    assert not fleet.state.exists()


# --- the policy file ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "scan", "run"])
def test_binary_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    refused(capsys, [command, "--policy", str(path)], str(path), "not UTF-8 text")


BAD_POLICIES = {
    "notify-after-overflows": (
        GPU_RULE + "    notify_after: 99999999999d\n",
        ["rule 'gpu' (rules[0]): notify_after:", "at most 3650d"],
    ),
    "threshold-nan": (
        GPU_RULE + "    thresholds: {gpu_utilization_percent: .nan}\n",
        ["rule 'gpu' (rules[0]): thresholds.gpu_utilization_percent:", "finite"],
    ),
    "threshold-infinite": (
        GPU_RULE + "    thresholds: {network_mb_per_day: .inf}\n",
        ["rule 'gpu' (rules[0]): thresholds.network_mb_per_day:", "finite"],
    ),
    "threshold-negative": (
        GPU_RULE + "    thresholds: {cpu_utilization_percent: -1}\n",
        ["rule 'gpu' (rules[0]): thresholds.cpu_utilization_percent:", "greater than or equal"],
    ),
    "lookback-shorter-than-stop-after": (
        GPU_RULE + "    lookback: 14d\n",
        ["rule 'gpu' (rules[0]):", "lookback (14d) is shorter than stop_after (60d)"],
    ),
    "role-arn": (
        "aws:\n  accounts:\n    - role_arn: arn:aws:iam::1234:role/janitor\n" + GPU_RULE,
        ["aws.accounts.0.role_arn:", "is not an IAM role ARN"],
    ),
    "policy-region": (
        "aws:\n  regions: [us-east-1, eu-west]\n" + GPU_RULE,
        ["aws.regions.1:", "'eu-west' is not an AWS region name"],
    ),
    "rule-region": (
        GPU_RULE + "    regions: [us_west_2]\n",
        ["rule 'gpu' (rules[0]): regions:", "'us_west_2' is not an AWS region name"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
@pytest.mark.parametrize("command", ["validate", "scan", "run"])
def test_bad_policy_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    text, fragments = BAD_POLICIES[case]
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    refused(capsys, [command, "--policy", str(path)], f"policy error: {path}: ", *fragments)


def test_malformed_region_in_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANITOR_REGIONS", "us-east-1,Frankfurt")
    refused(capsys, ["validate"], "JANITOR_REGIONS", "'Frankfurt' is not an AWS region name")


def test_run_with_a_bad_policy_does_nothing(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GPU_RULE + "    notify_after: 99999999999d\n", encoding="utf-8")
    refused(capsys, ["run", "--apply", "--policy", str(path)], "notify_after")
    untouched(fleet)


# --- --as-of -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "9999-12-31", "0001-01-01T00:00:00Z"])
@pytest.mark.parametrize("command", ["scan", "run"])
def test_as_of_out_of_range(capsys: pytest.CaptureFixture[str], command: str, value: str) -> None:
    refused(capsys, [command, "--as-of", value], f"--as-of {value!r}", "out of range")


def test_as_of_out_of_range_is_refused_before_any_call(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, ["scan", "--as-of", "9999-12-31T23:59:59Z"], "out of range")
    untouched(fleet)


# --- the state URL -----------------------------------------------------------------------------


def _not_a_database(tmp_path: Path) -> str:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, " * 100, encoding="utf-8")
    return f"sqlite:///{path}"


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    return f"sqlite:///{tmp_path / 'a-file' / 'state.db'}"


STATE_URLS: dict[str, tuple[Callable[[Path], str], str]] = {
    "empty-path": (lambda tmp: "sqlite:///", "no path"),
    "blank-path": (lambda tmp: "sqlite:///   ", "no path"),
    "directory": (lambda tmp: f"sqlite:///{tmp}", "is a directory"),
    "not-a-database": (_not_a_database, "file is not a database"),
    "under-a-file": (_under_a_file, "is a file, not a directory"),
    "two-slashes": (lambda tmp: "sqlite://state.db", "use sqlite:///"),
    "other-scheme": (lambda tmp: "postgres://db/janitor", "unsupported scheme"),
}


@pytest.mark.parametrize("case", sorted(STATE_URLS))
@pytest.mark.parametrize("command", ["scan", "run", "history", "restore"])
def test_state_url_that_cannot_be_used(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    command: str,
) -> None:
    make, expected = STATE_URLS[case]
    url = make(tmp_path)
    monkeypatch.setenv("JANITOR_STATE_URL", url)
    argv = [command, "some-endpoint"] if command == "restore" else [command]
    refused(capsys, argv, f"state URL {url!r}", expected)


def test_empty_state_url_in_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JANITOR_STATE_URL")
    path = tmp_path / "policy.yaml"
    path.write_text('state_url: ""\n' + GPU_RULE, encoding="utf-8")
    refused(capsys, ["validate", "--policy", str(path)], f"{path}: state_url:")


def test_state_url_that_cannot_be_opened_is_refused_before_any_call(
    fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JANITOR_STATE_URL", f"sqlite:///{tmp_path}")
    refused(capsys, ["run", "--apply"], "is a directory")
    assert dict(fleet.server.calls) == {}


# --- --output ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["scan", "run"])
def test_output_to_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    refused(capsys, [command, "--output", str(tmp_path)], str(tmp_path), "is a directory")


@pytest.mark.parametrize("command", ["scan", "run"])
def test_output_to_an_unwritable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    target = tmp_path / "a-file" / "report.csv"  # a path through a regular file
    refused(capsys, [command, "--output", str(target)], str(target), "cannot write here")
    refused(
        capsys,
        [command, "--output", str(tmp_path / "missing" / "report.csv")],
        "cannot write here",
        "No such file or directory",
    )


def test_output_empty(capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, ["scan", "--output", ""], "--output ''")


def test_unwritable_output_is_checked_before_acting(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, ["run", "--apply", "--output", str(tmp_path)], "is a directory")
    untouched(fleet)


def test_output_check_leaves_no_file_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check opens the file for real; a file it created is removed if the command fails."""
    target = tmp_path / "report.json"
    policy = tmp_path / "policy.yaml"
    policy.write_text(GPU_RULE + "    lookback: 1d\n", encoding="utf-8")
    refused(capsys, ["scan", "--policy", str(policy), "--output", str(target)], "lookback")
    assert not target.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_report_that_cannot_be_written_at_the_end_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Writable when checked, full when written: the command ran, so exit 1, not 2."""
    _no_aws_credentials(monkeypatch, tmp_path)
    assert cli.main(["scan", "--output", "/dev/full"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("janitor: --output /dev/full: cannot write the report")
    assert "Traceback" not in captured.err


# --- Slack settings in the environment ---------------------------------------------------------


SLACK_ENV = {
    "api-url-no-scheme": ("JANITOR_SLACK_API_URL", "slack.example.com/api/", "not an http(s) URL"),
    "api-url-ftp": ("JANITOR_SLACK_API_URL", "ftp://slack.example.com/api/", "not an http(s)"),
    "api-url-bad-port": ("JANITOR_SLACK_API_URL", "http://127.0.0.1:99999/api/", "port"),
    "api-url-no-host": ("JANITOR_SLACK_API_URL", "https:///api/", "no host name"),
    "api-url-space": ("JANITOR_SLACK_API_URL", "https://slack.com/a pi/", "white space"),
    "webhook-no-scheme": ("JANITOR_SLACK_WEBHOOK_URL", "hooks.slack.com/services/T/B/X", "http"),
    "webhook-bad-port": ("JANITOR_SLACK_WEBHOOK_URL", "https://hooks.slack.com:x/s", "port"),
    "retries-word": ("JANITOR_SLACK_MAX_RETRIES", "abc", "whole number from 0 to 10"),
    "retries-negative": ("JANITOR_SLACK_MAX_RETRIES", "-1", "whole number from 0 to 10"),
    "retries-huge": ("JANITOR_SLACK_MAX_RETRIES", "1000", "whole number from 0 to 10"),
}


@pytest.mark.parametrize("case", sorted(SLACK_ENV))
@pytest.mark.parametrize("argv", [["run"], ["run", "--apply"], ["validate"]], ids=" ".join)
def test_malformed_slack_settings_are_refused_at_start(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    argv: list[str],
) -> None:
    name, value, expected = SLACK_ENV[case]
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv(name, value)
    line = refused(capsys, argv, name, expected)
    if name == "JANITOR_SLACK_WEBHOOK_URL":
        assert value not in line, "the webhook URL is a secret"


def test_malformed_slack_url_is_refused_before_any_call(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("JANITOR_SLACK_API_URL", "localhost:3000/api")
    refused(capsys, ["run", "--apply"], "JANITOR_SLACK_API_URL")
    untouched(fleet)


def test_slack_retries_abc_is_refused_before_any_call(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JANITOR_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", "abc")
    refused(capsys, ["run", "--apply"], "JANITOR_SLACK_MAX_RETRIES='abc'")
    untouched(fleet)


@pytest.mark.parametrize("value", ["0", "3", "10", " 2 "])
def test_well_formed_slack_settings_pass_validate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JANITOR_SLACK_API_URL", "http://127.0.0.1:8080/api/")
    monkeypatch.setenv("JANITOR_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    monkeypatch.setenv("JANITOR_SLACK_MAX_RETRIES", value)
    assert cli.main(["validate"]) == 0
    assert capsys.readouterr().err == ""


# --- numbers on the command line ---------------------------------------------------------------


@pytest.mark.parametrize("days", ["-1", "366", "99999999999"])
def test_demo_days_out_of_range(capsys: pytest.CaptureFixture[str], days: str) -> None:
    refused(capsys, ["demo", "--days", days], f"demo --days {int(days)}", "from 0 to 365")


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_history_limit_below_one(capsys: pytest.CaptureFixture[str], limit: str) -> None:
    refused(capsys, ["history", "--limit", limit], f"history --limit {limit}", "1 or more")


def test_history_limit_one_is_fine(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["history", "--limit", "1"]) == 0
    assert "no audit events" in capsys.readouterr().out


# --- no credentials: the skipped line in every format ------------------------------------------


def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in list(os.environ):  # nor Azure credentials (the default policy names Azure too)
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
@pytest.mark.parametrize("command", ["scan", "run"])
def test_no_credentials_prints_the_skipped_line_in_every_format(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    fmt: str,
) -> None:
    _no_aws_credentials(monkeypatch, tmp_path)
    for name in list(os.environ):  # nor Azure's (the default policy names Azure ML kinds)
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))
    assert cli.main([command, "--format", fmt]) == 0
    captured = capsys.readouterr()
    if fmt == "json":
        # The default policy names AWS, Azure and GCP: none has credentials, all are skipped.
        aws, azure, gcp = sorted(json.loads(captured.out)["skipped"])
        assert aws.startswith(SKIPPED)
        assert azure.startswith("azure: skipped, ")
        assert gcp.startswith("gcp: skipped, ")
    elif fmt == "csv":
        # The CSV stays plain CSV (a header, then one row per finding); the line is on stderr.
        rows = list(csv.reader(io.StringIO(captured.out)))
        assert rows[0][:3] == ["cloud", "kind", "id"]
        assert rows[1:] == []
        lines = captured.err.strip().splitlines()
        assert any(line.startswith(f"janitor: {SKIPPED}") for line in lines), lines
    else:
        assert SKIPPED in captured.out


def test_csv_to_a_file_still_tells_the_skipped_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws_credentials(monkeypatch, tmp_path)
    target = tmp_path / "report.csv"
    assert cli.main(["scan", "--format", "csv", "--output", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert target.read_text(encoding="utf-8").startswith("cloud,kind,id,")
    assert SKIPPED in captured.err


def test_csv_tells_scope_errors_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws_credentials(monkeypatch, tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "aws:\n  accounts:\n    - name: research\n"
        "      role_arn: arn:aws:iam::111122223333:role/janitor\n" + GPU_RULE,
        encoding="utf-8",
    )
    assert cli.main(["scan", "--policy", str(policy), "--format", "csv"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("cloud,kind,id,")
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("janitor: error: aws research")
    assert "no AWS credentials found" in line
