"""The policy file: the embedded default, durations, error messages, environment overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from janitor.clouds import registry
from janitor.model import Cloud
from janitor.policy import (
    DEFAULT_OWNER_TAGS,
    DEFAULT_POLICY,
    Policy,
    PolicyError,
    default_policy_text,
    format_duration,
    load_policy,
    parse_duration,
    parse_policy,
)

AWS_KINDS = {"aws.sagemaker-endpoint", "aws.sagemaker-notebook", "aws.ec2-gpu"}

GPU_RULE = "  - name: gpu\n    kind: aws.ec2-gpu\n"
NOTEBOOK_RULE = "  - name: nb\n    kind: aws.sagemaker-notebook\n"


def write(tmp_path: Path, text: str, name: str = "team.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Policy:
    return load_policy(write(tmp_path, text), env={})


# --- the embedded default policy ----------------------------------------------------------------


def test_default_policy_parses_with_every_kind_of_every_cloud() -> None:
    policy = load_policy(env={})

    assert policy.source == DEFAULT_POLICY
    assert {rule.kind for rule in policy.rules} == set(registry.KINDS)
    assert policy.clouds() == {Cloud.AWS, Cloud.GCP, Cloud.AZURE}
    for rule in policy.rules:
        assert rule.notify_after == timedelta(days=30), rule.name
        assert rule.stop_after == timedelta(days=60), rule.name
        assert rule.warning == timedelta(days=7), rule.name
        assert rule.may_stop, rule.name
        assert rule.owner_tags == DEFAULT_OWNER_TAGS
        assert rule.exempt_tag == "janitor-exempt"
    assert policy.state_url is None
    assert policy.aws.regions == ()
    assert policy.notifier.type == "auto"  # Slack when configured, else the console
    assert policy.max_stops_per_run == 25


def test_default_policy_actions_and_thresholds() -> None:
    rules = {rule.kind: rule for rule in load_policy(env={}).rules}

    assert rules["aws.sagemaker-endpoint"].action == "delete"
    assert rules["aws.sagemaker-notebook"].action == "stop"
    assert rules["aws.ec2-gpu"].action == "stop"
    assert rules["aws.ec2-gpu"].thresholds == {
        "gpu_utilization_percent": 5.0,
        "cpu_utilization_percent": 10.0,
        "network_mb_per_day": 100.0,
    }
    # lookback: stop_after + 14 days, within what the evidence can reach
    assert rules["aws.ec2-gpu"].lookback == timedelta(days=74)
    assert rules["aws.sagemaker-notebook"].lookback == timedelta(days=74)


def test_default_policy_text_is_the_packaged_file() -> None:
    text = default_policy_text()
    assert "rules:" in text
    assert parse_policy(text, "x", env={}).rules == load_policy(env={}).rules


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("30d", timedelta(days=30), id="days"),
        pytest.param("12h", timedelta(hours=12), id="hours"),
        pytest.param("90m", timedelta(minutes=90), id="minutes"),
        pytest.param("2w", timedelta(weeks=2), id="weeks"),
        pytest.param("1.5d", timedelta(hours=36), id="fractional"),
        pytest.param(" 7 d ", timedelta(days=7), id="spaces"),
        pytest.param(45, timedelta(days=45), id="bare-int-is-days"),
        pytest.param(0.5, timedelta(hours=12), id="bare-float-is-days"),
        pytest.param(timedelta(hours=3), timedelta(hours=3), id="timedelta"),
    ],
)
def test_parse_duration(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("-5d", "is not a duration", id="negative-string"),
        pytest.param(-5, "must be positive", id="negative-number"),
        pytest.param("0d", "must be positive", id="zero-string"),
        pytest.param(0, "must be positive", id="zero-number"),
        pytest.param("5x", "is not a duration", id="unknown-unit"),
        pytest.param("30 days", "is not a duration", id="word-unit"),
        pytest.param("", "is not a duration", id="empty"),
        pytest.param(True, "duration like 30d", id="bool"),
        pytest.param(None, "duration like 30d", id="none"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(timedelta(days=30), "30d", id="days"),
        pytest.param(timedelta(hours=12), "12h", id="hours"),
        pytest.param(timedelta(minutes=90), "90m", id="minutes"),
        pytest.param(timedelta(weeks=2), "14d", id="weeks-as-days"),
    ],
)
def test_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_durations_in_a_policy(tmp_path: Path) -> None:
    policy = load_text(
        tmp_path,
        "defaults:\n  warning: 90m\n"
        "rules:\n"
        "  - name: gpu\n    kind: aws.ec2-gpu\n    notify_after: 12h\n    stop_after: 2w\n"
        "  - name: nb\n    kind: aws.sagemaker-notebook\n    notify_after: 10\n"
        "    lookback: 200d\n",
    )
    gpu, nb = policy.rules

    assert (gpu.notify_after, gpu.stop_after, gpu.warning) == (
        timedelta(hours=12),
        timedelta(weeks=2),
        timedelta(minutes=90),
    )
    assert gpu.lookback == timedelta(days=28)  # stop_after + 14 days
    assert (nb.notify_after, nb.stop_after, nb.warning) == (
        timedelta(days=10),
        timedelta(days=60),
        timedelta(minutes=90),
    )
    assert nb.lookback == timedelta(days=90)  # clamped to CloudTrail's retention


def test_rule_settings_override_defaults(tmp_path: Path) -> None:
    policy = load_text(
        tmp_path,
        "defaults:\n  owner_tags: [team-lead]\n  exempt_tag: keep-me\n  max_stops_per_run: 3\n"
        "rules:\n"
        "  - name: gpu\n    kind: aws.ec2-gpu\n    action: notify-only\n"
        "    thresholds: {gpu_utilization_percent: 1}\n    owner_tags: [owner]\n"
        "    regions: [us-west-2]\n"
        "  - name: nb\n    kind: aws.sagemaker-notebook\n"
        "  - name: spare\n    kind: aws.sagemaker-endpoint\n    enabled: false\n",
    )
    gpu, nb = policy.rules

    assert [rule.name for rule in policy.rules] == ["gpu", "nb"]  # the disabled rule is dropped
    assert gpu.action == "notify-only"
    assert not gpu.may_stop
    assert gpu.thresholds == {
        "gpu_utilization_percent": 1.0,
        "cpu_utilization_percent": 10.0,
        "network_mb_per_day": 100.0,
    }
    assert gpu.owner_tags == ("owner",)
    assert gpu.regions == ("us-west-2",)
    assert nb.owner_tags == ("team-lead",)
    assert nb.regions is None
    assert nb.exempt_tag == gpu.exempt_tag == "keep-me"
    assert policy.max_stops_per_run == 3


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            "version: 1\nrules:\n  - name: gpu\n    kind: aws.ec2-gpu: oops\n",
            ["line 4, column 22", "not valid YAML", "mapping values are not allowed"],
            id="broken-yaml-line-number",
        ),
        pytest.param(
            "rules:\n  - name: gpu\n\tkind: aws.ec2-gpu\n",
            ["line 3", "not valid YAML"],
            id="broken-yaml-tab",
        ),
        pytest.param(
            "- just\n- a list\n",
            ["a policy is a YAML mapping with a 'rules' list"],
            id="not-a-mapping",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "  - name: tpu\n    kind: aws.tpu\n",
            [
                "rule 'tpu' (rules[1]): kind:",
                "unknown kind 'aws.tpu'",
                "known kinds: aws.ec2-gpu, aws.s3-checkpoint, aws.sagemaker-endpoint,",
            ],
            id="unknown-kind-lists-known",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: 40d\n    stop_after: 30d\n",
            [
                "rule 'gpu' (rules[0])",
                "stop_after (30d) must be later than notify_after (40d)",
            ],
            id="stop-before-notice",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: 30d\n    stop_after: 30d\n",
            ["rule 'gpu' (rules[0])", "stop_after (30d) must be later than notify_after (30d)"],
            id="stop-equal-notice",
        ),
        pytest.param(
            "defaults:\n  stop_after: 20d\nrules:\n" + GPU_RULE,
            ["rule 'gpu' (rules[0])", "stop_after (20d) must be later than notify_after (30d)"],
            id="stop-before-notice-from-defaults",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    warning: 40d\n",
            ["rule 'gpu' (rules[0])", "warning (40d) must fit between notify_after and stop_after"],
            id="warning-too-long",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: -5\n",
            ["rule 'gpu' (rules[0]): notify_after:", "must be positive"],
            id="negative-duration",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    stop_after: -5d\n",
            ["rule 'gpu' (rules[0]): stop_after:", "'-5d' is not a duration"],
            id="negative-duration-string",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    warning: 0d\n",
            ["rule 'gpu' (rules[0]): warning:", "must be positive"],
            id="zero-duration",
        ),
        pytest.param(
            "defaults:\n  notify_after: 0\nrules:\n" + GPU_RULE,
            ["defaults.notify_after:", "must be positive"],
            id="zero-duration-in-defaults",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: soon\n",
            ["rule 'gpu' (rules[0]): notify_after:", "'soon' is not a duration"],
            id="word-duration",
        ),
        pytest.param(
            "colour: red\nrules:\n" + GPU_RULE,
            ["colour: unknown field"],
            id="unknown-top-level-field",
        ),
        pytest.param(
            "defaults:\n  notify_afer: 10d\nrules:\n" + GPU_RULE,
            ["defaults.notify_afer: unknown field"],
            id="unknown-defaults-field",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + NOTEBOOK_RULE + "    colour: red\n",
            ["rule 'nb' (rules[1]): colour: unknown field"],
            id="unknown-rule-field",
        ),
        pytest.param(
            "rules:\n"
            + GPU_RULE
            + NOTEBOOK_RULE
            + "    thresholds: {gpu_utilization_percent: 1}\n",
            [
                "rule 'nb' (rules[1])",
                "thresholds ['gpu_utilization_percent'] are not known for aws.sagemaker-notebook",
                "(allowed: none)",
            ],
            id="threshold-unknown-for-kind",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    thresholds: {invocations_per_day: 1}\n",
            [
                "rule 'gpu' (rules[0])",
                "thresholds ['invocations_per_day'] are not known for aws.ec2-gpu",
                "allowed: cpu_utilization_percent, gpu_utilization_percent, network_mb_per_day",
            ],
            id="threshold-of-another-kind",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    action: terminate\n",
            [
                "rule 'gpu' (rules[0])",
                "action 'terminate' is not available for aws.ec2-gpu",
                "use 'stop' or 'notify-only'",
            ],
            id="action-not-available",
        ),
        pytest.param(
            "rules:\n  - name: gpu\n    kind: aws.sagemaker-endpoint\n    action: stop\n",
            ["rule 'gpu' (rules[0])", "action 'stop' is not available for aws.sagemaker-endpoint"],
            id="action-of-another-kind",
        ),
        pytest.param(
            "rules:\n"
            + GPU_RULE
            + NOTEBOOK_RULE
            + "  - name: gpu\n    kind: aws.sagemaker-endpoint\n",
            ["rule 'gpu' (rules[2])", "already used by rules[0]"],
            id="duplicate-rule-names",
        ),
        pytest.param("rules: []\n", ["rules: at least one rule is required"], id="empty-rules"),
        pytest.param("version: 1\n", ["rules: Field required"], id="no-rules"),
        pytest.param(
            "rules:\n" + GPU_RULE + "    enabled: false\n",
            ["every rule is disabled; nothing to do"],
            id="all-rules-disabled",
        ),
        pytest.param(
            "version: 2\nrules:\n" + GPU_RULE,
            ["version:"],
            id="unknown-version",
        ),
        # --- bad input that used to crash or pass silently (issue 6, section 7) ---
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: 99999999999d\n",
            ["rule 'gpu' (rules[0]): notify_after:", "must be at most 3650d"],
            id="duration-overflows-timedelta",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    stop_after: 99999999999h\n",
            ["rule 'gpu' (rules[0]): stop_after:", "must be at most 3650d"],
            id="duration-overflows-timedelta-hours",
        ),
        pytest.param(
            "defaults:\n  stop_after: 999999d\nrules:\n" + GPU_RULE,
            ["defaults.stop_after:", "must be at most 3650d"],
            id="duration-would-overflow-a-date",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    warning: .nan\n",
            ["rule 'gpu' (rules[0]): warning:", "is not a duration"],
            id="duration-nan",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    notify_after: .inf\n",
            ["rule 'gpu' (rules[0]): notify_after:", "is not a duration"],
            id="duration-infinite",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    thresholds: {gpu_utilization_percent: .nan}\n",
            ["rule 'gpu' (rules[0]): thresholds.gpu_utilization_percent:", "finite number"],
            id="threshold-nan",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    thresholds: {network_mb_per_day: .inf}\n",
            ["rule 'gpu' (rules[0]): thresholds.network_mb_per_day:", "finite number"],
            id="threshold-infinite",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    thresholds: {cpu_utilization_percent: -.inf}\n",
            ["rule 'gpu' (rules[0]): thresholds.cpu_utilization_percent:", "finite number"],
            id="threshold-minus-infinite",
        ),
        pytest.param(
            "rules:\n  - name: ep\n    kind: aws.sagemaker-endpoint\n"
            "    thresholds: {invocations_per_day: -1}\n",
            ["rule 'ep' (rules[0]): thresholds.invocations_per_day:", "greater than or equal to 0"],
            id="threshold-negative",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    lookback: 10d\n",
            [
                "rule 'gpu' (rules[0])",
                "lookback (10d) is shorter than stop_after (60d)",
                "could never show the idle time a stop needs",
            ],
            id="lookback-shorter-than-stop-after",
        ),
        pytest.param(
            "defaults:\n  stop_after: 90d\nrules:\n"
            + GPU_RULE
            + NOTEBOOK_RULE
            + "    lookback: 89d\n",
            ["rule 'nb' (rules[1])", "lookback (89d) is shorter than stop_after (90d)"],
            id="lookback-shorter-than-default-stop-after",
        ),
        pytest.param(
            "aws:\n  accounts:\n    - role_arn: arn:aws:iam::12345:role/janitor\n"
            "rules:\n" + GPU_RULE,
            [
                "aws.accounts.0.role_arn:",
                "'arn:aws:iam::12345:role/janitor' is not an IAM role ARN",
            ],
            id="role-arn-short-account",
        ),
        pytest.param(
            "aws:\n  accounts:\n    - role_arn: janitor\nrules:\n" + GPU_RULE,
            ["aws.accounts.0.role_arn:", "'janitor' is not an IAM role ARN"],
            id="role-arn-a-bare-name",
        ),
        pytest.param(
            "aws:\n  accounts:\n    - role_arn: arn:aws:iam::123456789012:user/bob\n"
            "rules:\n" + GPU_RULE,
            ["aws.accounts.0.role_arn:", "is not an IAM role ARN"],
            id="role-arn-of-a-user",
        ),
        pytest.param(
            "aws:\n  regions: [us-east-1, us-east1]\nrules:\n" + GPU_RULE,
            ["aws.regions.1:", "'us-east1' is not an AWS region name"],
            id="region-policy",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    regions: ['US-EAST-1']\n",
            ["rule 'gpu' (rules[0]): regions:", "'US-EAST-1' is not an AWS region name"],
            id="region-rule",
        ),
        pytest.param(
            "rules:\n  - name: gce\n    kind: gcp.gce-gpu\n    regions: [us-east-1, US-CENTRAL1]\n",
            ["rule 'gce' (rules[0]): regions:", "'US-CENTRAL1' is not a region name"],
            id="region-rule-gcp",
        ),
        pytest.param(
            "rules:\n" + GPU_RULE + "    regions: ['us east 1']\n",
            ["rule 'gpu' (rules[0]): regions:", "'us east 1' is not an AWS region name"],
            id="region-rule-spaces",
        ),
    ],
)
def test_policy_errors_name_file_rule_and_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env={})

    message = str(caught.value)
    lines = message.splitlines()
    assert lines, "an error message is required"
    for line in lines:
        assert line.startswith(f"{path}:"), line
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("rules:\n" + GPU_RULE + "    colour: red\n", id="unknown-field"),
        pytest.param("rules:\n  - name: gpu\n    kind: aws.tpu\n", id="unknown-kind"),
        pytest.param("rules:\n" + GPU_RULE + "    warning: 0d\n", id="zero-duration"),
        pytest.param("rules:\n" + GPU_RULE + "    action: terminate\n", id="bad-action"),
    ],
)
def test_one_broken_rule_gives_exactly_one_line(tmp_path: Path, text: str) -> None:
    """No spurious 'rules: at least one item' on top of the real problem."""
    with pytest.raises(PolicyError) as caught:
        load_text(tmp_path, text)
    assert len(str(caught.value).splitlines()) == 1, str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "rules:\n"
        "  - name: a\n    kind: aws.ec2-gpu\n    colour: red\n"
        "  - name: b\n    kind: aws.sagemaker-notebook\n    warning: 0d\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_text(tmp_path, text)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert "rule 'a' (rules[0]): colour: unknown field" in lines[0]
    assert "rule 'b' (rules[1]): warning:" in lines[1]


def test_unnamed_rule_is_named_by_index(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_text(tmp_path, "rules:\n  - kind: aws.ec2-gpu\n")
    assert str(caught.value) == f"{tmp_path / 'team.yaml'}: rules[0]: name: Field required"


def test_parse_policy_names_the_given_source() -> None:
    with pytest.raises(PolicyError, match=r"^inline\.yaml: colour: unknown field$"):
        parse_policy("colour: red\nrules:\n" + GPU_RULE, "inline.yaml", env={})


def test_missing_policy_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(missing, env={})

    message = str(caught.value)
    assert message == f"{missing}: cannot read policy file: No such file or directory"
    assert caught.value.__cause__ is None  # no chained traceback for the user


def test_policy_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path, env={})
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}: cannot read policy file")
    assert len(message.splitlines()) == 1


# --- environment overrides ----------------------------------------------------------------------

TEAM_POLICY = (
    "state_url: sqlite:///from-file.db\n"
    "aws:\n  regions: [ap-south-1]\n  max_concurrency: 4\n"
    "rules:\n" + GPU_RULE
)


def test_env_state_url_overrides_file() -> None:
    policy = parse_policy(TEAM_POLICY, "team.yaml", env={"JANITOR_STATE_URL": "sqlite:///env.db"})
    assert policy.state_url == "sqlite:///env.db"


def test_env_regions_override_file_and_keep_other_aws_settings() -> None:
    policy = parse_policy(TEAM_POLICY, "team.yaml", env={"JANITOR_REGIONS": "us-east-1, eu-west-1"})
    assert policy.aws.regions == ("us-east-1", "eu-west-1")
    assert policy.aws.max_concurrency == 4
    assert policy.state_url == "sqlite:///from-file.db"


def test_env_regions_without_aws_section() -> None:
    policy = parse_policy(
        "rules:\n" + GPU_RULE, "team.yaml", env={"JANITOR_REGIONS": " us-east-1,,eu-west-1 ,"}
    )
    assert policy.aws.regions == ("us-east-1", "eu-west-1")


def test_empty_env_values_are_ignored() -> None:
    policy = parse_policy(
        TEAM_POLICY, "team.yaml", env={"JANITOR_STATE_URL": "", "JANITOR_REGIONS": ""}
    )
    assert policy.state_url == "sqlite:///from-file.db"
    assert policy.aws.regions == ("ap-south-1",)


def test_env_regions_with_broken_aws_section_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match=r"^team\.yaml: aws: "):
        parse_policy(
            "aws: oops\nrules:\n" + GPU_RULE, "team.yaml", env={"JANITOR_REGIONS": "us-east-1"}
        )


def test_env_policy_file(tmp_path: Path) -> None:
    path = write(tmp_path, TEAM_POLICY)
    policy = load_policy(env={"JANITOR_POLICY": str(path), "JANITOR_REGIONS": "us-east-2"})

    assert policy.source == str(path)
    assert [rule.name for rule in policy.rules] == ["gpu"]
    assert policy.aws.regions == ("us-east-2",)


def test_explicit_path_beats_env_policy(tmp_path: Path) -> None:
    explicit = write(tmp_path, "rules:\n" + NOTEBOOK_RULE, "explicit.yaml")
    policy = load_policy(explicit, env={"JANITOR_POLICY": str(tmp_path / "missing.yaml")})

    assert policy.source == str(explicit)
    assert [rule.name for rule in policy.rules] == ["nb"]


def test_env_policy_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PolicyError, match="cannot read policy file") as caught:
        load_policy(env={"JANITOR_POLICY": str(missing)})
    assert str(caught.value).startswith(f"{missing}:")


def test_process_environment_used_when_env_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, TEAM_POLICY)
    monkeypatch.setenv("JANITOR_POLICY", str(path))
    monkeypatch.setenv("JANITOR_STATE_URL", "sqlite:///process.db")

    policy = load_policy()

    assert policy.source == str(path)
    assert policy.state_url == "sqlite:///process.db"


def test_explicit_env_ignores_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JANITOR_REGIONS", "us-west-1")
    monkeypatch.setenv("JANITOR_STATE_URL", "sqlite:///process.db")

    policy = load_policy(env={})

    assert policy.source == DEFAULT_POLICY
    assert policy.aws.regions == ()
    assert policy.state_url is None


# --- bad input (issue 6, section 7) -------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="png"),
        pytest.param(bytes(range(256)), id="all-bytes"),
        pytest.param(b"rules:\n  - name: gpu\x00\x01\n", id="nul-bytes"),
    ],
)
def test_a_binary_policy_file_is_a_one_line_policy_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(content)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env={})

    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{path}: ")
    assert "::" not in message


def test_a_lookback_as_long_as_stop_after_is_accepted(tmp_path: Path) -> None:
    (gpu,) = load_text(tmp_path, "rules:\n" + GPU_RULE + "    lookback: 60d\n").rules
    assert gpu.lookback == gpu.stop_after == timedelta(days=60)


def test_the_longest_duration_is_accepted(tmp_path: Path) -> None:
    policy = load_text(tmp_path, "defaults:\n  stop_after: 3650d\nrules:\n" + GPU_RULE)
    assert policy.rules[0].stop_after == timedelta(days=3650)


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::123456789012:role/janitor",
        "arn:aws:iam::123456789012:role/service/ml/janitor-read+stop@team.x",
        "arn:aws-cn:iam::123456789012:role/janitor",
        "arn:aws-us-gov:iam::123456789012:role/janitor",
        "arn:aws-iso-b:iam::123456789012:role/janitor",
    ],
)
def test_well_formed_role_arns_are_accepted(role_arn: str) -> None:
    policy = parse_policy(
        f"aws:\n  accounts:\n    - role_arn: '{role_arn}'\nrules:\n" + GPU_RULE, "t", env={}
    )
    assert policy.aws.accounts[0].role_arn == role_arn


def test_a_gcp_rule_takes_gcp_region_names() -> None:
    policy = parse_policy(
        "rules:\n  - name: gce\n    kind: gcp.gce-gpu\n    regions: [us-central1, europe-west4]\n",
        "t",
        env={},
    )
    assert policy.rules[0].regions == ("us-central1", "europe-west4")


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-central-2", "ap-southeast-4", "us-gov-west-1", "us-isob-east-1"]
)
def test_well_formed_regions_are_accepted(region: str) -> None:
    policy = parse_policy(
        f"aws:\n  regions: [{region}]\nrules:\n" + GPU_RULE + f"    regions: [{region}]\n",
        "t",
        env={"JANITOR_REGIONS": f"{region},us-west-2"},
    )
    assert policy.aws.regions == (region, "us-west-2")
    assert policy.rules[0].regions == (region,)


@pytest.mark.parametrize("value", ["us-east-1,eu_west_1", "us-east-1 eu-west-1", "useast1"])
def test_a_malformed_region_in_the_environment_names_the_variable(value: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy("rules:\n" + GPU_RULE, "team.yaml", env={"JANITOR_REGIONS": value})
    message = str(caught.value)
    assert message.startswith("JANITOR_REGIONS: ")
    assert "is not an AWS region name" in message
    assert len(message.splitlines()) == 1


def test_console_deliveries_count_only_when_the_policy_says_so() -> None:
    rules = "rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n"
    default = parse_policy(rules, "p.yaml", env={})
    assert default.notifier.counts_as_delivery is False
    counting = parse_policy(
        "notifier: {type: console, counts_as_delivery: true}\n" + rules, "p.yaml", env={}
    )
    assert (counting.notifier.type, counting.notifier.counts_as_delivery) == ("console", True)
    assert parse_policy("notifier: auto\n" + rules, "p.yaml", env={}).notifier.type == "auto"
    for kind in ("auto", "slack"):
        with pytest.raises(PolicyError, match="counts_as_delivery is for `type: console` only"):
            parse_policy(
                f"notifier: {{type: {kind}, counts_as_delivery: true}}\n" + rules, "p.yaml", env={}
            )


# --- gcp:, azure: and owners: sections ----------------------------------------------------------

PROJECT = "ml-research-42"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"


def test_gcp_azure_and_owners_sections_are_accepted() -> None:
    policy = parse_policy(
        f"gcp:\n  projects: [{PROJECT}, my-other-project]\n  regions: [us-central1]\n"
        "  max_concurrency: 3\n"
        f"azure:\n  subscriptions: ['{SUBSCRIPTION}']\n  regions: [westeurope, eastus2]\n"
        "  max_concurrency: 5\n"
        "owners:\n  map: {ml-team: '#ml-alerts', bob: robert@corp.example}\n"
        "  domain: example.com\n"
        "rules:\n" + GPU_RULE,
        "team.yaml",
        env={},
    )
    assert policy.gcp.projects == (PROJECT, "my-other-project")
    assert policy.gcp.regions == ("us-central1",)
    assert policy.azure.subscriptions == (SUBSCRIPTION,)
    assert policy.azure.regions == ("westeurope", "eastus2")
    assert policy.owners.map == {"ml-team": "#ml-alerts", "bob": "robert@corp.example"}
    assert policy.owners.domain == "example.com"
    assert policy.max_concurrency(Cloud.AWS) == 8
    assert policy.max_concurrency(Cloud.GCP) == 3
    assert policy.max_concurrency(Cloud.AZURE) == 5


def test_gcp_azure_and_owners_default_to_empty() -> None:
    policy = parse_policy("rules:\n" + GPU_RULE, "team.yaml", env={})
    assert (policy.gcp.projects, policy.gcp.regions) == ((), ())
    assert (policy.azure.subscriptions, policy.azure.regions) == ((), ())
    assert (policy.owners.map, policy.owners.domain) == ({}, None)
    assert policy.max_concurrency(Cloud.GCP) == policy.max_concurrency(Cloud.AZURE) == 8


@pytest.mark.parametrize(
    ("section", "field", "message"),
    [
        pytest.param("gcp:\n  projects: [My-Project]\n", "gcp.projects.0", "GCP project id"),
        pytest.param("gcp:\n  projects: [abc]\n", "gcp.projects.0", "GCP project id", id="short"),
        pytest.param(
            "gcp:\n  projects: [my-project-]\n", "gcp.projects.0", "GCP project id", id="dash-end"
        ),
        pytest.param(
            "gcp:\n  projects: [1project-x]\n", "gcp.projects.0", "GCP project id", id="digit"
        ),
        pytest.param(
            "gcp:\n  projects: [12345678]\n", "gcp.projects.0", "valid string", id="number"
        ),
        pytest.param("gcp:\n  regions: [US-Central1]\n", "gcp.regions.0", "region name"),
        pytest.param("gcp:\n  regions: ['']\n", "gcp.regions.0", "region name", id="empty-region"),
        pytest.param("gcp:\n  max_concurrency: 0\n", "gcp.max_concurrency", "greater than"),
        pytest.param("gcp:\n  zones: [a]\n", "gcp.zones", "unknown field"),
        pytest.param(
            "azure:\n  subscriptions: [not-a-guid]\n",
            "azure.subscriptions.0",
            "Azure subscription id",
        ),
        pytest.param("azure:\n  regions: [West Europe]\n", "azure.regions.0", "region name"),
        pytest.param("azure:\n  max_concurrency: 65\n", "azure.max_concurrency", "less than"),
        pytest.param("owners:\n  domain: not a domain\n", "owners.domain", "domain name"),
        pytest.param("owners:\n  map: {alice: ''}\n", "owners.map.alice", "at least 1"),
        pytest.param("owners:\n  map: [alice]\n", "owners.map", "dictionary"),
        pytest.param("owners:\n  teams: {}\n", "owners.teams", "unknown field"),
    ],
)
def test_cloud_and_owner_sections_errors_name_file_and_field(
    section: str, field: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(section + "rules:\n" + GPU_RULE, "team.yaml", env={})
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"team.yaml: {field}: ") and message in line for line in lines), (
        lines
    )
