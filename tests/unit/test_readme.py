"""The README's safety table names the tests that show each promise: they must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _safety_rows() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Safety model", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows if "---" not in row][1:]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_safety_promise_names_tests_that_exist() -> None:
    rows = _safety_rows()
    assert len(rows) >= 10
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3, row
        shown_by = cells[2]
        files = re.findall(r"`((?:unit|integration|e2e)/[\w/]+\.py)", shown_by)
        assert files, f"no test named for: {cells[0]}"
        for file in files:
            assert (ROOT / "tests" / file).is_file(), file
        # `file.py::name`, `file.py` (`name`, ...), or `::name` after a named file.
        current = None
        for token in re.findall(r"`([^`]+)`", shown_by):
            if ".py" in token:
                current, _, name = token.partition("::")
            else:
                name = token.removeprefix("::")
            if name:
                assert current is not None, token
                assert name in _tests_in(ROOT / "tests" / current), f"{current}::{name}"


def test_the_permissions_section_lists_every_declared_permission() -> None:
    from janitor.clouds import registry

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Permissions", 1)[1].split("\n## ", 1)[0]
    # AWS actions (`ec2:StopInstances`), GCP IAM permissions (`compute.instances.stop`) and
    # Azure RBAC actions (`Microsoft.MachineLearningServices/workspaces/computes/stop/action`).
    listed = set(
        re.findall(
            r"`([a-z0-9-]+:[A-Za-z]+|[a-z]+(?:\.[A-Za-z]+){2}|Microsoft\.[A-Za-z]+(?:/[A-Za-z]+)+)`",
            section,
        )
    )
    declared = {
        permission
        for spec in registry.KINDS.values()
        for permission in (*spec.read_permissions, *spec.action_permissions)
    }
    assert declared - listed == set()


def test_the_policy_reference_is_a_valid_policy() -> None:
    from janitor.policy import parse_policy

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Policy reference", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(block, "README.md", env={})
    assert policy.gcp.projects
    assert policy.azure.subscriptions
    assert policy.owners.map
    assert policy.owners.domain
