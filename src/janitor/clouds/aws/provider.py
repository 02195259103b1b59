"""AWS scopes for a policy: every configured account x region x AWS rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from janitor.clouds.aws.session import (
    AwsScope,
    NoCredentials,
    base_session,
    open_accounts,
    regions_for,
    session_for_recipe,
)
from janitor.clouds.base import Task
from janitor.model import Cloud, ScopeError
from janitor.policy import Policy


def tasks(policy: Policy) -> tuple[list[Task], list[str], list[ScopeError]]:
    rules = [r for r in policy.rules if r.cloud is Cloud.AWS]
    try:
        base = base_session()
    except NoCredentials as exc:
        if policy.aws.accounts:
            # Accounts the policy names are configured scopes: failing to reach them is an error.
            return (
                [],
                [],
                [
                    ScopeError(
                        Cloud.AWS,
                        account.name or account.role_arn or "?",
                        "-",
                        "*",
                        f"cannot open account: {exc}",
                    )
                    for account in policy.aws.accounts
                ],
            )
        kinds = ", ".join(sorted({r.kind for r in rules}))
        return [], [f"aws: skipped, {exc} ({kinds} not scanned)"], []
    accounts, failed = open_accounts(policy.aws, base)
    errors = [
        ScopeError(Cloud.AWS, label, "-", "*", f"cannot open account: {message}")
        for label, message in failed
    ]
    out: list[Task] = []
    for account in accounts:
        for rule in rules:
            for region in regions_for(policy.aws, rule.regions, account.session):
                scope = AwsScope(
                    account.account_id, region, account.session, account.name, account.role_arn
                )
                out.append(Task(rule, scope, Cloud.AWS, account.account_id, region))
    return out, [], errors


def restore_scope(info: Mapping[str, Any]) -> AwsScope:
    """The scope a recorded stop happened in, to undo it there."""
    role_arn = info.get("role_arn")
    session = session_for_recipe(str(info["scope"]), role_arn)
    return AwsScope(str(info["scope"]), str(info["region"]), session, role_arn=role_arn)
