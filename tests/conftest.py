"""Shared fixtures: the local AWS (moto in server mode, reached by real boto3 over HTTP) and
the local Slack Web API server (reached by the real slack_sdk clients).

`aws_server` starts once per test process (one per xdist worker); `aws_env` points boto3 at it
and resets it before each test; `scope` builds an AwsScope for a region of the fake account.
moto is imported only when an AWS fixture is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from slack_sdk import WebClient

from janitor.devserver.slack import SlackDevServer, SlackUser

if TYPE_CHECKING:
    from janitor.clouds.aws.session import AwsScope
    from janitor.devserver.aws import AwsDevServer

ScopeFactory = Callable[..., "AwsScope"]

# Azurite and the Cloud Storage emulator (azurite, blob_service, gcs_env, gcs_client...).
pytest_plugins = ["tests.storage_fixtures"]


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


# --- Slack --------------------------------------------------------------------------------

SLACK_TOKEN = "xoxb-test-token"
ALICE = SlackUser(
    id="U0000000002",
    email="alice@example.com",
    name="alice",
    real_name="Alice Example",
    tz="Europe/London",
)
BOB = SlackUser(
    id="U0000000003",
    email="bob@example.com",
    name="bob",
    real_name="Bob Example",
    tz="America/Los_Angeles",
)
CAROL = SlackUser(  # deactivated
    id="U0000000004",
    email="carol@example.com",
    name="carol",
    real_name="Carol Example",
    deleted=True,
)
SEED_USERS = (ALICE, BOB, CAROL)


@pytest.fixture
def slack_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackDevServer]:
    """Started on a free port, stopped after the test (starting one takes about a millisecond).

    slack_sdk goes through urllib, which honours proxy variables: 127.0.0.1 is kept off them.
    """
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), "127.0.0.1,localhost") if p)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    with SlackDevServer(token=SLACK_TOKEN, users=SEED_USERS) as server:
        yield server


@pytest.fixture
def slack(slack_server: SlackDevServer) -> WebClient:
    """slack_sdk's WebClient pointed at `slack_server`, with the right token, no retries beyond
    the SDK's default (connection errors)."""
    return WebClient(token=SLACK_TOKEN, base_url=slack_server.url, timeout=10)


AZURE_MACHINE_VARS = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "JANITOR_AZURE_ARM_ENDPOINT",
    "JANITOR_AZURE_ARM_AUDIENCE",
)


def isolate_from_machine_azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Azure credentials from the machine: no AZURE_* variables (service principal, workload
    identity, AZURE_TOKEN_CREDENTIALS), no managed-identity variables, no Azure CLI login. The
    rest of the chain (IMDS, developer tools) finds nothing on a machine that is not in Azure."""
    for name in list(os.environ):
        if name.startswith("AZURE_") or name in AZURE_MACHINE_VARS:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))


@pytest.fixture(autouse=True)
def _no_machine_azure_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Policies that name Azure (the default one does) never find the machine's Azure login:
    Azure is skipped unless a test points the managed-identity variables at the local server
    (tests/integration/azure/conftest.py)."""
    isolate_from_machine_azure(monkeypatch, tmp_path)


@pytest.fixture(autouse=True)
def _no_machine_gcp_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Policies that name GCP (the default one does) never find the machine's Application
    Default Credentials, gcloud login or metadata server: GCP is skipped unless a test points
    `GOOGLE_APPLICATION_CREDENTIALS` at the local server (tests/integration/gcp/conftest.py)."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
