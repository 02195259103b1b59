"""Azure scopes for a policy: every Azure rule x subscription (x region for regional kinds).

Credentials come only from `DefaultAzureCredential`. None at all: Azure is skipped with a line
in the report, unless the policy names subscriptions (then each is an error). `azure.
subscriptions` empty means every subscription the credential can list (Subscriptions - List).
Subscriptions run concurrently, up to `azure.max_concurrency` at once; one that cannot be read
(403 `AuthorizationFailed`) fails as its own scope and the rest go on.

Kinds listed subscription-wide (Compute's list all VMs is one call per subscription) are one
task per subscription, with the policy's regions (a rule's own `regions` first) as a filter.
Other kinds are one task per subscription and region of the filter, or one subscription-wide
task when the filter is empty.

The Azure libraries (the `azure` extra) are imported only here, when a policy names Azure:
without them Azure is skipped with a line (an error for the subscriptions a policy names).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from janitor.clouds.azure.scope import ALL_REGIONS, AzureScope
from janitor.clouds.base import Task
from janitor.model import Cloud, ScopeError
from janitor.policy import Policy, Rule

# Kinds listed subscription-wide, filtered by region client-side.
SUBSCRIPTION_WIDE_KINDS = frozenset({"azure.vm-gpu"})
# Azure ML: Workspaces - List By Subscription is one call per subscription.
SUBSCRIPTION_WIDE_KINDS |= {"azure.ml-endpoint", "azure.ml-compute"}


def _regions(policy: Policy, rule: Rule) -> tuple[str, ...]:
    return tuple(rule.regions) if rule.regions is not None else tuple(policy.azure.regions)


def _unavailable(
    policy: Policy, rules: list[Rule], why: str
) -> tuple[list[Task], list[str], list[ScopeError]]:
    if policy.azure.subscriptions:
        errors = [
            ScopeError(Cloud.AZURE, sub, "-", "*", f"cannot open subscription: {why}")
            for sub in policy.azure.subscriptions
        ]
        return [], [], errors
    kinds = ", ".join(sorted({r.kind for r in rules}))
    return [], [f"azure: skipped, {why} ({kinds} not scanned)"], []


def tasks(policy: Policy) -> tuple[list[Task], list[str], list[ScopeError]]:
    rules = [r for r in policy.rules if r.cloud is Cloud.AZURE]
    try:
        from azure.core.exceptions import AzureError

        from janitor.clouds.azure.session import (
            NoCredentials,
            list_subscriptions,
            load_credentials,
            one_line,
        )
    except ImportError as exc:
        return _unavailable(
            policy,
            rules,
            f"the Azure libraries are not installed ({exc.name}): pip install 'ml-janitor[azure]'",
        )
    try:
        credentials = load_credentials()
    except NoCredentials as exc:
        return _unavailable(policy, rules, str(exc))
    skipped: list[str] = []
    subscriptions = list(policy.azure.subscriptions)
    if not subscriptions:
        try:
            subscriptions, skipped = list_subscriptions(credentials)
        except AzureError as exc:
            message = f"cannot list subscriptions: {one_line(exc)}"
            return [], [], [ScopeError(Cloud.AZURE, "-", "-", "*", message)]
        if not subscriptions:
            kinds = ", ".join(sorted({r.kind for r in rules}))
            skipped.append(f"azure: no subscription the credentials can list ({kinds} not scanned)")
    out: list[Task] = []
    for subscription in subscriptions:
        for rule in rules:
            regions = _regions(policy, rule)
            if rule.kind in SUBSCRIPTION_WIDE_KINDS or not regions:
                scope = AzureScope(subscription, ALL_REGIONS, credentials, regions)
                out.append(Task(rule, scope, Cloud.AZURE, subscription, ALL_REGIONS))
                continue
            for region in regions:
                scope = AzureScope(subscription, region, credentials, (region,))
                out.append(Task(rule, scope, Cloud.AZURE, subscription, region))
    return out, skipped, []


def restore_scope(info: Mapping[str, Any]) -> AzureScope:
    """The scope a recorded stop happened in, to undo it there."""
    from janitor.clouds.azure.session import load_credentials

    return AzureScope(
        str(info["scope"]), str(info.get("region") or ALL_REGIONS), load_credentials()
    )
