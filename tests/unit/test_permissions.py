"""`janitor permissions`: generated from the kinds' declarations, and the shipped role files
are exactly its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from janitor import cli, permissions
from janitor.clouds.registry import KINDS
from janitor.model import Cloud

ROOT = Path(__file__).resolve().parents[2]


def declared(cloud: Cloud) -> set[str]:
    return {
        p for spec in KINDS.values() if spec.cloud is cloud
        for p in (*spec.read_permissions, *spec.action_permissions)
    }  # fmt: skip


def test_every_kind_has_a_row_and_act_never_repeats_read() -> None:
    rows = permissions.for_kinds()
    assert [r.kind for r in rows] == list(KINDS)
    for row in rows:
        spec = KINDS[row.kind]
        assert set(row.read) == set(spec.read_permissions)
        assert set(row.read) | set(row.act) == {*spec.read_permissions, *spec.action_permissions}
        assert not set(row.read) & set(row.act)


def test_the_markdown_lists_every_declared_permission_under_its_kind() -> None:
    text = permissions.markdown()
    for spec in KINDS.values():
        line = next(x for x in text.splitlines() if x.startswith(f"| `{spec.name}` |"))
        for permission in (*spec.read_permissions, *spec.action_permissions):
            assert f"`{permission}`" in line, (spec.name, permission)


def test_the_shipped_aws_policy_is_the_generated_one() -> None:
    shipped = (ROOT / "deploy/iam/janitor-aws.json").read_text(encoding="utf-8")
    assert shipped == permissions.aws_iam_policy(), (
        "run: janitor permissions --format aws-iam > deploy/iam/janitor-aws.json"
    )
    document = json.loads(shipped)
    granted = {a for statement in document["Statement"] for a in statement["Action"]}
    assert granted == declared(Cloud.AWS)
    pass_role = next(s for s in document["Statement"] if "iam:PassRole" in s["Action"])
    assert pass_role["Action"] == ["iam:PassRole"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_the_shipped_gcp_role_is_the_generated_one() -> None:
    shipped = (ROOT / "deploy/iam/janitor-gcp-role.yaml").read_text(encoding="utf-8")
    assert shipped == permissions.gcp_custom_role(), (
        "run: janitor permissions --format gcp-role > deploy/iam/janitor-gcp-role.yaml"
    )
    role = yaml.safe_load(shipped)
    assert set(role) == {"title", "description", "stage", "includedPermissions"}
    assert set(role["includedPermissions"]) == declared(Cloud.GCP)


def test_the_shipped_azure_role_is_the_generated_one() -> None:
    shipped = (ROOT / "deploy/iam/janitor-azure-role.json").read_text(encoding="utf-8")
    assert shipped == permissions.azure_custom_role(), (
        "run: janitor permissions --format azure-role > deploy/iam/janitor-azure-role.json"
    )
    role = json.loads(shipped)
    assert set(role["Actions"]) == declared(Cloud.AZURE)
    assert role["IsCustom"] is True
    read_only = json.loads(permissions.azure_custom_role(read_only=True))
    assert not any(a.endswith("/action") for a in read_only["Actions"])


def test_the_read_only_gcp_role_grants_no_action() -> None:
    role = yaml.safe_load(permissions.gcp_custom_role(read_only=True))
    read = {p for spec in KINDS.values() if spec.cloud is Cloud.GCP for p in spec.read_permissions}
    assert set(role["includedPermissions"]) == read
    assert "compute.instances.stop" not in role["includedPermissions"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], permissions.markdown),
        (["--format", "aws-iam"], permissions.aws_iam_policy),
        (["--format", "gcp-role"], permissions.gcp_custom_role),
        (["--format", "azure-role"], permissions.azure_custom_role),
    ],
)
def test_the_command_prints_each_format(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: object
) -> None:
    assert callable(expected)
    assert cli.main(["permissions", *args]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == str(expected()).strip()


def test_an_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["permissions", "--format", "oci-role"])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err
