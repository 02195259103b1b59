"""Meta-tests over the kind registry: every kind is complete and the IAM policy covers it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from janitor.clouds.registry import KINDS
from janitor.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_declares_what_it_needs(kind: str) -> None:
    spec = KINDS[kind]
    assert spec.name == kind
    assert kind.startswith(f"{spec.cloud.value}.")
    assert spec.read_permissions, "read permissions"
    assert spec.action_permissions, "action permissions"
    assert spec.stoppable_states
    assert spec.evidence
    assert spec.factory.count(":") == 1


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_factory_resolves(kind: str) -> None:
    import importlib

    module_name, _, func = KINDS[kind].factory.partition(":")
    assert callable(getattr(importlib.import_module(module_name), func))


def test_the_shipped_iam_policy_grants_every_declared_permission() -> None:
    document = json.loads((ROOT / "deploy/iam/janitor-aws.json").read_text())
    granted = {action for st in document["Statement"] for action in st["Action"]}
    needed = {
        p for spec in KINDS.values() if spec.cloud.value == "aws"
        for p in (*spec.read_permissions, *spec.action_permissions)
    }  # fmt: skip
    assert needed - granted == set()


def test_the_shipped_azure_role_grants_every_declared_action() -> None:
    document = json.loads((ROOT / "deploy/iam/janitor-azure-role.json").read_text())
    granted = set(document["Actions"])
    needed = {
        p for spec in KINDS.values() if spec.cloud.value == "azure"
        for p in (*spec.read_permissions, *spec.action_permissions)
    }  # fmt: skip
    assert needed
    assert needed - granted == set()


def test_the_default_policy_turns_on_every_kind() -> None:
    policy = load_policy(ROOT / "policies/default.yaml", env={})
    assert {r.kind for r in policy.rules} == set(KINDS)
    assert (ROOT / "policies/default.yaml").read_text() == (
        ROOT / "src/janitor/data/default.yaml"
    ).read_text()


@pytest.mark.parametrize(
    "path", sorted((ROOT / "policies/examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_policy_is_valid(path: Path) -> None:
    policy = load_policy(path, env={})
    assert policy.rules
