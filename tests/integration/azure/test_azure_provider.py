"""The Azure provider: tasks per rule x subscription, credentials only through
DefaultAzureCredential, subscriptions listed when the policy names none."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.integration.azure.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION

from janitor.clouds.azure import provider
from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.devserver.azure import AzureDevServer
from janitor.model import Cloud
from janitor.policy import Policy, load_policy

pytestmark = pytest.mark.integration


def vm_policy(tmp_path: Path, azure: str = "") -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\n{azure}rules:\n  - name: gpu\n    kind: azure.vm-gpu\n", encoding="utf-8"
    )
    return load_policy(path, env={})


def test_no_credentials_skips_azure_with_a_line(no_azure_credentials: None, tmp_path: Path) -> None:
    tasks, skipped, errors = provider.tasks(vm_policy(tmp_path))
    assert (tasks, errors) == ([], [])
    (line,) = skipped
    assert line.startswith("azure: skipped, no Azure credentials")
    assert "azure.vm-gpu not scanned" in line


def test_no_credentials_for_subscriptions_the_policy_names_is_an_error(
    no_azure_credentials: None, tmp_path: Path
) -> None:
    policy = vm_policy(tmp_path, f"azure:\n  subscriptions: [{SUBSCRIPTION}]\n")
    tasks, skipped, errors = provider.tasks(policy)
    assert (tasks, skipped) == ([], [])
    assert [(e.cloud, e.scope) for e in errors] == [(Cloud.AZURE, SUBSCRIPTION)]


def test_empty_subscriptions_mean_every_one_the_credential_lists(
    azure_env: AzureDevServer, tmp_path: Path
) -> None:
    azure_env.add_subscription(SUBSCRIPTION)
    azure_env.add_subscription(OTHER_SUBSCRIPTION)
    tasks, skipped, errors = provider.tasks(vm_policy(tmp_path, "azure:\n  regions: [eastus]\n"))
    assert (skipped, errors) == ([], [])
    assert sorted((t.scope_id, t.region) for t in tasks) == [
        (SUBSCRIPTION, ALL_REGIONS),
        (OTHER_SUBSCRIPTION, ALL_REGIONS),
    ]
    scope = tasks[0].scope
    assert isinstance(scope, AzureScope)
    assert scope.in_regions("EastUS")
    assert not scope.in_regions("westeurope")
    restored = provider.restore_scope({"scope": SUBSCRIPTION, "region": ALL_REGIONS})
    assert (restored.subscription, restored.region) == (SUBSCRIPTION, ALL_REGIONS)


def test_named_subscriptions_are_not_listed(azure_env: AzureDevServer, tmp_path: Path) -> None:
    policy = vm_policy(tmp_path, f"azure:\n  subscriptions: [{OTHER_SUBSCRIPTION}]\n")
    tasks, _, _ = provider.tasks(policy)
    assert [t.scope_id for t in tasks] == [OTHER_SUBSCRIPTION]
    assert azure_env.calls["Subscriptions_List"] == 0


def test_without_the_azure_libraries_azure_is_skipped_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As if only `ml-janitor[aws]` were installed: importing azure.identity fails.
    monkeypatch.delitem(sys.modules, "janitor.clouds.azure.session", raising=False)
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    tasks, skipped, errors = provider.tasks(vm_policy(tmp_path))
    assert (tasks, errors) == ([], [])
    (line,) = skipped
    assert "pip install 'ml-janitor[azure]'" in line


def test_a_gpu_metric_is_only_for_kinds_that_read_one(tmp_path: Path) -> None:
    from janitor.policy import PolicyError

    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nrules:\n  - name: gpu\n    kind: gcp.gce-gpu\n"
        "    gpu_metric: {namespace: Telegraf/nvidia_smi, name: utilization_gpu}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="gpu_metric is not known for gcp.gce-gpu"):
        load_policy(path, env={})
    rule = vm_policy(tmp_path).rules[0]
    assert rule.gpu_metric is None
