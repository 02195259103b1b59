"""The local Azure Resource Manager, reached through the real `DefaultAzureCredential` chain.

`azure_server` is a fresh server per test, its TLS certificate from a test CA generated into the
test's tmp dir. `no_azure_credentials` isolates a test from the machine's Azure credentials (no
AZURE_* variables, no managed identity, an empty Azure CLI config dir). `azure_env` points the
App Service managed-identity variables (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) at the server's
token endpoint, trusts the test CA (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`) and sets
`JANITOR_AZURE_ARM_ENDPOINT`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import isolate_from_machine_azure

from janitor.devserver.azure import AzureDevServer, TestCa

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-000000000002"


@pytest.fixture
def azure_server(tmp_path: Path) -> Iterator[AzureDevServer]:
    """A fresh server per test (state, faults and counts start empty)."""
    with AzureDevServer(tls=TestCa.generate(tmp_path / "tls")) as server:
        yield server


@pytest.fixture
def no_azure_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Azure credentials from the machine: no AZURE_* variables (service principal, workload
    identity, AZURE_TOKEN_CREDENTIALS), no managed-identity variables, no Azure CLI login. The
    rest of the chain (IMDS, developer tools) finds nothing on a machine that is not in Azure.
    (Every test has this already, from tests/conftest.py; a test that names it says it relies
    on it.)"""
    isolate_from_machine_azure(monkeypatch, tmp_path)


@pytest.fixture
def azure_env(
    azure_server: AzureDevServer, no_azure_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> AzureDevServer:
    for name, value in azure_server.env().items():
        monkeypatch.setenv(name, value)
    return azure_server
