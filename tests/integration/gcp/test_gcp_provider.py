"""The GCP provider: tasks per rule x project, credentials only through ADC."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from janitor.clouds.gcp import provider
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.devserver.gcp import GcpDevServer
from janitor.model import Cloud
from janitor.policy import Policy, load_policy

PROJECT = "example-project"


def gce_policy(tmp_path: Path, gcp: str = "") -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\n{gcp}rules:\n  - name: gpu\n    kind: gcp.gce-gpu\n", encoding="utf-8"
    )
    return load_policy(path, env={})


def test_no_credentials_skips_gcp_with_a_line(no_adc: None, tmp_path: Path) -> None:
    tasks, skipped, errors = provider.tasks(gce_policy(tmp_path))
    assert tasks == []
    assert errors == []
    (line,) = skipped
    assert line.startswith("gcp: skipped, ")
    assert "gcp.gce-gpu not scanned" in line


def test_no_credentials_for_projects_the_policy_names_is_an_error(
    no_adc: None, tmp_path: Path
) -> None:
    policy = gce_policy(tmp_path, "gcp:\n  projects: [proj-one, proj-two]\n")
    tasks, skipped, errors = provider.tasks(policy)
    assert tasks == []
    assert skipped == []
    assert [e.scope for e in errors] == ["proj-one", "proj-two"]
    assert all(e.cloud is Cloud.GCP for e in errors)


def test_one_gce_task_per_project_with_the_regions_as_a_zone_filter(
    gcp_env: GcpDevServer, tmp_path: Path
) -> None:
    policy = gce_policy(
        tmp_path, "gcp:\n  projects: [proj-one, proj-two]\n  regions: [us-central1]\n"
    )
    tasks, skipped, errors = provider.tasks(policy)
    assert (skipped, errors) == ([], [])
    assert [(t.scope_id, t.region) for t in tasks] == [("proj-one", GLOBAL), ("proj-two", GLOBAL)]
    scope = tasks[0].scope
    assert isinstance(scope, GcpScope)
    assert scope.regions == ("us-central1",)
    assert scope.zone_wanted("us-central1-f")
    assert not scope.zone_wanted("europe-west4-a")


def test_empty_projects_mean_the_adc_project(gcp_env: GcpDevServer, tmp_path: Path) -> None:
    tasks, _, _ = provider.tasks(gce_policy(tmp_path))
    assert [t.scope_id for t in tasks] == [PROJECT]
    restored = provider.restore_scope({"scope": PROJECT, "region": GLOBAL})
    assert (restored.project, restored.region) == (PROJECT, GLOBAL)


def test_without_the_gcp_libraries_gcp_is_skipped_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As if only `ml-janitor[aws]` were installed: importing google.auth fails.
    monkeypatch.delitem(sys.modules, "janitor.clouds.gcp.session", raising=False)
    monkeypatch.setitem(sys.modules, "google.auth", None)
    tasks, skipped, errors = provider.tasks(gce_policy(tmp_path))
    assert (tasks, errors) == ([], [])
    (line,) = skipped
    assert "pip install 'ml-janitor[gcp]'" in line
    named = gce_policy(tmp_path, "gcp:\n  projects: [proj-one]\n")
    _, skipped, errors = provider.tasks(named)
    assert skipped == []
    assert [e.scope for e in errors] == ["proj-one"]


def test_one_vertex_task_per_project_so_its_metrics_are_read_once_per_project(
    gcp_env: GcpDevServer, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\ngcp:\n  projects: [proj-one]\n  regions: [us-central1, europe-west4]\n"
        "rules:\n  - name: vertex\n    kind: gcp.vertex-endpoint\n",
        encoding="utf-8",
    )
    tasks, skipped, errors = provider.tasks(load_policy(path, env={}))
    assert (skipped, errors) == ([], [])
    assert [(t.scope_id, t.region) for t in tasks] == [("proj-one", GLOBAL)]
    scope = tasks[0].scope
    assert isinstance(scope, GcpScope)
    assert scope.regions == ("us-central1", "europe-west4")
