"""AWS credentials, accounts and regions: turns policy settings into concrete scopes.

`AWS_ENDPOINT_URL` (honoured by botocore itself) points every client at a local emulator.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from janitor.policy import AwsAccount, AwsSettings

if TYPE_CHECKING:
    from botocore.config import _RetryDict


def client_config() -> Config:
    """Adaptive retries: client-side rate limiting plus retries on throttling, 429 and 5xx.

    The standard AWS_MAX_ATTEMPTS (and AWS_RETRY_MODE=standard) still apply: botocore lets an
    explicit Config win over them, so they are read here.
    """
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    max_attempts = int(attempts) if attempts.isdigit() else 8
    if os.environ.get("AWS_RETRY_MODE") == "standard":
        retries: _RetryDict = {"mode": "standard", "max_attempts": max_attempts}
    else:
        retries = {"mode": "adaptive", "max_attempts": max_attempts}
    return Config(
        retries=retries,
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
        user_agent_extra="janitor",
    )


DEFAULT_REGION = "us-east-1"


class NoCredentials(Exception):
    """No AWS credentials at all: the cloud is skipped, not failed."""


class ScopeFailure(Exception):
    """A configured account could not be reached or assumed; reported per scope."""


@dataclass(frozen=True)
class AwsScope:
    account_id: str
    region: str
    session: boto3.Session = field(repr=False, compare=False)
    account_name: str | None = None
    role_arn: str | None = None

    @property
    def label(self) -> str:
        return self.account_name or self.account_id

    def client(self, service: str) -> Any:
        make: Any = self.session.client  # typed per service by the stubs; callers annotate
        return make(service, region_name=self.region, config=client_config())


def base_session() -> boto3.Session:
    session = boto3.Session()
    if session.get_credentials() is None:
        raise NoCredentials("no AWS credentials found (environment, profile, or instance role)")
    return session


def _assume(base: boto3.Session, account: AwsAccount) -> boto3.Session:
    assert account.role_arn is not None
    sts = base.client("sts", region_name=base.region_name or DEFAULT_REGION, config=client_config())
    kwargs: dict[str, Any] = {"RoleArn": account.role_arn, "RoleSessionName": "janitor"}
    if account.external_id:
        kwargs["ExternalId"] = account.external_id
    creds = sts.assume_role(**kwargs)["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=base.region_name,
    )


@dataclass(frozen=True)
class AccountSession:
    account_id: str
    session: boto3.Session = field(repr=False)
    name: str | None = None
    role_arn: str | None = None


def open_accounts(
    settings: AwsSettings, base: boto3.Session
) -> tuple[list[AccountSession], list[tuple[str, str]]]:
    """Sessions for every configured account, and (account label, error) for those that failed."""
    accounts: Sequence[AwsAccount] = settings.accounts or (AwsAccount(),)
    opened: list[AccountSession] = []
    failed: list[tuple[str, str]] = []
    for account in accounts:
        label = account.name or account.role_arn or "default credentials"
        try:
            session = _assume(base, account) if account.role_arn else base
            sts = session.client(
                "sts", region_name=session.region_name or DEFAULT_REGION, config=client_config()
            )
            account_id = sts.get_caller_identity()["Account"]
        except (ClientError, BotoCoreError) as exc:
            failed.append((label, one_line(exc)))
            continue
        opened.append(AccountSession(account_id, session, account.name, account.role_arn))
    return opened, failed


def regions_for(
    settings: AwsSettings, rule_regions: Sequence[str] | None, session: boto3.Session
) -> tuple[str, ...]:
    if rule_regions:
        return tuple(rule_regions)
    if settings.regions:
        return tuple(settings.regions)
    return (session.region_name or DEFAULT_REGION,)


def session_for_recipe(recipe_account: str, role_arn: str | None) -> boto3.Session:
    base = base_session()
    if role_arn:
        return _assume(base, AwsAccount(role_arn=role_arn))
    return base


def one_line(exc: BaseException) -> str:
    """A single line describing an SDK error, without a traceback."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Error")
        message = err.get("Message", "")
        op = exc.operation_name
        return f"{op}: {code}: {message}".strip().rstrip(":")
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_access_denied(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "AuthFailure",
    }
