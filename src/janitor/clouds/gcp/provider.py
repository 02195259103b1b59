"""GCP scopes for a policy: every GCP rule x project (x region for regional kinds).

Credentials come only from Application Default Credentials. None at all: GCP is skipped with
a line in the report, unless the policy names projects (then each is an error), as for AWS.
`gcp.projects` empty means the ADC project (`GOOGLE_CLOUD_PROJECT`, else the credentials').

Compute Engine lists a whole project in one aggregated list, so a GCE kind is one task per
project, with the policy's regions (a rule's own `regions` first) applied as a zone filter.
The kinds in `PROJECT_WIDE_KINDS` (today every GCP kind: their Monitoring queries are per
project) are one task per project, the regions a filter; any other kind would be one task per
region of the filter, or one project-wide task when the filter is empty.

The GCP libraries (the `gcp` extra) are imported only here, when a policy names GCP: without
them GCP is skipped with a line (an error for the projects a policy names), like no credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from janitor.clouds.base import Task
from janitor.clouds.gcp.scope import GLOBAL, GcpScope
from janitor.model import Cloud, ScopeError
from janitor.policy import Policy, Rule

# Kinds listed project-wide (one aggregated list per project), filtered by region client-side.
# gcp.workbench: Notebooks v2 lists every location of a project at once (location `-`), and its
# one CPU query is per project anyway; a task per region would repeat both per region.
# gcp.vertex-endpoint: its Monitoring queries are per project (one per metric type), so a task
# per region would send them once per region, each answering every region's endpoints; one task
# lists the policy's regions among the locations the Locations API answers instead.
PROJECT_WIDE_KINDS = frozenset({"gcp.gce-gpu", "gcp.vertex-endpoint", "gcp.workbench"})


def _regions(policy: Policy, rule: Rule) -> tuple[str, ...]:
    return tuple(rule.regions) if rule.regions is not None else tuple(policy.gcp.regions)


def _unavailable(
    policy: Policy, rules: list[Rule], why: str
) -> tuple[list[Task], list[str], list[ScopeError]]:
    """GCP cannot be reached at all: a skipped line, or an error per project the policy names
    (configured scopes: failing to reach them is an error)."""
    if policy.gcp.projects:
        errors = [
            ScopeError(Cloud.GCP, project, "-", "*", f"cannot open project: {why}")
            for project in policy.gcp.projects
        ]
        return [], [], errors
    kinds = ", ".join(sorted({r.kind for r in rules}))
    return [], [f"gcp: skipped, {why} ({kinds} not scanned)"], []


def tasks(policy: Policy) -> tuple[list[Task], list[str], list[ScopeError]]:
    rules = [r for r in policy.rules if r.cloud is Cloud.GCP]
    try:
        from janitor.clouds.gcp.session import (
            NoCredentials,
            NoProject,
            default_project,
            load_credentials,
        )
    except ImportError as exc:
        return _unavailable(
            policy,
            rules,
            f"the GCP libraries are not installed ({exc.name}): pip install 'ml-janitor[gcp]'",
        )
    try:
        credentials = load_credentials()
    except NoCredentials as exc:
        return _unavailable(policy, rules, str(exc))
    projects = list(policy.gcp.projects)
    if not projects:
        try:
            projects = [default_project(credentials)]
        except NoProject as exc:
            return [], [], [ScopeError(Cloud.GCP, "-", "-", "*", str(exc))]
    out: list[Task] = []
    for project in projects:
        for rule in rules:
            regions = _regions(policy, rule)
            if rule.kind in PROJECT_WIDE_KINDS or not regions:
                scope = GcpScope(project, GLOBAL, credentials, regions)
                out.append(Task(rule, scope, Cloud.GCP, project, GLOBAL))
                continue
            for region in regions:
                scope = GcpScope(project, region, credentials, (region,))
                out.append(Task(rule, scope, Cloud.GCP, project, region))
    return out, [], []


def restore_scope(info: Mapping[str, Any]) -> GcpScope:
    """The scope a recorded stop happened in, to undo it there."""
    from janitor.clouds.gcp.session import load_credentials

    return GcpScope(str(info["scope"]), str(info.get("region") or GLOBAL), load_credentials())
