"""Shared fixtures: the local AWS (moto in server mode, reached by real boto3 over HTTP).

`aws_server` starts once per test process (one per xdist worker); `aws_env` points boto3 at it
and resets it before each test; `scope` builds an AwsScope for a region of the fake account.
moto is imported only when an AWS fixture is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from janitor.clouds.aws.session import AwsScope
    from janitor.devserver.aws import AwsDevServer

ScopeFactory = Callable[..., "AwsScope"]


@pytest.fixture(scope="session")
def aws_server() -> Iterator[AwsDevServer]:
    from janitor.devserver.aws import AwsDevServer

    with AwsDevServer() as server:
        yield server


@pytest.fixture
def aws_env(aws_server: AwsDevServer, monkeypatch: pytest.MonkeyPatch) -> AwsDevServer:
    """The server, freshly reset, with the environment pointing boto3 at it and nowhere else."""
    from janitor.devserver.aws import LEAKY_ENV_VARS

    aws_server.reset()
    for name in LEAKY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name)
    for name, value in aws_server.env().items():
        monkeypatch.setenv(name, value)
    return aws_server


@pytest.fixture(scope="session")
def _botocore_loader() -> Any:
    """One loader of botocore's data files per process: a fresh session then costs ~40 ms."""
    import botocore.loaders

    return botocore.loaders.create_loader()


@pytest.fixture
def scope(aws_env: AwsDevServer, _botocore_loader: Any) -> ScopeFactory:
    """`scope()` or `scope("eu-west-1")`: an AwsScope of moto's account in that region.

    Each test gets fresh sessions (credentials and endpoint come from `aws_env`'s environment),
    one per region, reused within the test.
    """
    import boto3
    import botocore.session

    from janitor.clouds.aws.session import AwsScope
    from janitor.devserver.aws import ACCOUNT_ID

    scopes: dict[str, AwsScope] = {}

    def make(region: str = "us-east-1") -> AwsScope:
        if region not in scopes:
            core = botocore.session.get_session()
            core.register_component("data_loader", _botocore_loader)
            session = boto3.Session(botocore_session=core, region_name=region)
            scopes[region] = AwsScope(account_id=ACCOUNT_ID, region=region, session=session)
        return scopes[region]

    return make
