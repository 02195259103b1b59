"""Fixtures for the object-store emulators, loaded for the whole suite by tests/conftest.py.

Azure Blob (Azurite, a Node process; `make test` installs it from package.json):
* `azurite_server`: one Azurite per test process (per xdist worker), started on first use and
  stopped (its process group ended) when the session ends, also after failures.
* `azurite`: that server with every container deleted first and its clock at the real time:
  `azurite.connection_string`, `azurite.account_url`, `azurite.account_key`,
  `with azurite.clock_at(when): ...` to write blobs with `Last-Modified` = `when`.
* `blob_service`: an azure-storage-blob `BlobServiceClient` on `azurite`.
A missing Azurite (or Node) FAILS the test with how to install it; it never skips.

Cloud Storage (gcp-storage-emulator, in this process):
* `gcs_emulator`: a fresh in-memory emulator per test that accepts only requests whose bearer
  token the local GCP server (`gcp_server`) issued or can verify, and records every request.
* `gcs_env`: a service-account key file for the local GCP server, and the environment
  (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_CLOUD_PROJECT`, `JANITOR_GCP_API_ENDPOINT`,
  `STORAGE_EMULATOR_HOST`) pointing at both; returns the emulator.
* `gcs_client`: a google-cloud-storage `Client` built from janitor's ADC credentials
  (`load_credentials()`), as the GCP kinds build theirs. Backdate with
  `janitor.devserver.gcs.at(when)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from azure.storage.blob import BlobServiceClient

    from janitor.devserver.azurite import Azurite
    from janitor.devserver.gcp import GcpDevServer
    from janitor.devserver.gcs import GcsEmulator

GCS_PROJECT = "example-project"


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    from janitor.devserver.azurite import Azurite, AzuriteNotInstalled

    try:
        server = Azurite()
        server.start()
    except AzuriteNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_server: Azurite) -> Azurite:
    """The worker's Azurite, emptied: no containers, the clock at the real time."""
    from azure.storage.blob import BlobServiceClient

    if azurite_server.backdating:
        azurite_server.reset_clock()
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    for container in service.list_containers():
        service.delete_container(container.name)
    return azurite_server


@pytest.fixture
def blob_service(azurite: Azurite) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def gcs_auth_server() -> Iterator[GcpDevServer]:
    """The local GCP server, here only as the token endpoint of the ADC key file."""
    from janitor.devserver.gcp import GcpDevServer

    with GcpDevServer() as server:
        yield server


@pytest.fixture
def gcs_emulator(gcs_auth_server: GcpDevServer) -> Iterator[GcsEmulator]:
    from janitor.devserver.gcs import GcsEmulator

    with GcsEmulator(auth=gcs_auth_server) as emulator:
        yield emulator


@pytest.fixture
def gcs_env(
    gcs_emulator: GcsEmulator,
    gcs_auth_server: GcpDevServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> GcsEmulator:
    from janitor.devserver.gcp import write_service_account_key

    key_file = tmp_path / "gcs-service-account.json"
    write_service_account_key(gcs_auth_server, key_file, project=GCS_PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", GCS_PROJECT)
    monkeypatch.setenv("JANITOR_GCP_API_ENDPOINT", gcs_auth_server.url)
    for name, value in gcs_emulator.env().items():
        monkeypatch.setenv(name, value)
    return gcs_emulator


@pytest.fixture
def gcs_client(gcs_env: GcsEmulator) -> storage.Client:
    import google.cloud.storage as storage

    from janitor.clouds.gcp.session import default_project, load_credentials

    credentials = load_credentials()
    return storage.Client(project=default_project(credentials), credentials=credentials.credentials)
