"""The local GCP server, reached through the real Application Default Credentials path.

`gcp_server` starts once per test process; `gcp_env` generates a service-account key whose
`token_uri` is the server's token endpoint, registers its public key with the server, and points
`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_CLOUD_PROJECT` and `JANITOR_GCP_API_ENDPOINT` at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from janitor.devserver.gcp import GcpDevServer, write_service_account_key
from janitor.pricing import load_catalog

PROJECT = "example-project"


def list_price(service: str, sku: str, region: str = "us-central1") -> float:
    """The shipped catalog's on-demand hourly price: expected costs follow the catalog."""
    price = load_catalog().hourly(service, region, sku)
    assert price is not None, (service, region, sku)
    return price


@pytest.fixture
def gcp_server() -> Iterator[GcpDevServer]:
    """A fresh server per test (state, faults and counts start empty)."""
    with GcpDevServer() as server:
        yield server


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ADC from the machine: no gcloud login, no metadata server, no key file."""
    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCLOUD_PROJECT",
        "CLOUDSDK_CORE_PROJECT",
        "JANITOR_GCP_API_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")


@pytest.fixture
def gcp_env(
    gcp_server: GcpDevServer, no_adc: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> GcpDevServer:
    key_file = tmp_path / "service-account.json"
    write_service_account_key(gcp_server, key_file, project=PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("JANITOR_GCP_API_ENDPOINT", gcp_server.url)
    return gcp_server
