"""gcp-storage-emulator as the tests use it: in-process, reached by google-cloud-storage through
janitor's ADC credentials, objects backdated with the process clock, and every request recorded
so tests can assert what the emulator ignores (page size, storage-class changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import google.auth.exceptions
import google.cloud.storage as storage
import pytest
import requests
from google.auth.credentials import AnonymousCredentials

from janitor.devserver.gcs import GcsEmulator, at

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def test_starts_and_stops() -> None:
    with GcsEmulator() as emulator:
        url = emulator.url
        assert requests.get(f"{url}/storage/v1/b?project=p", timeout=5).json()["kind"] == (
            "storage#buckets"
        )
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/", timeout=5)
    assert not emulator.started


def test_bucket_upload_prefix_listing_and_metadata_through_adc(
    gcs_client: storage.Client, gcs_env: GcsEmulator
) -> None:
    bucket = gcs_client.create_bucket("checkpoints")
    bucket.labels = {"janitor-checkpoints": "true"}
    bucket.patch()
    blob = bucket.blob("runs/exp-42/checkpoint-1000/model.safetensors")
    blob.metadata = {"owner": "ana"}
    blob.upload_from_string(b"w" * 10)
    bucket.blob("runs/exp-42/checkpoint-2000/model.safetensors").upload_from_string(b"w" * 20)
    bucket.blob("runs/exp-7/config.json").upload_from_string(b"{}")

    listed = list(gcs_client.list_blobs("checkpoints", prefix="runs/exp-42/"))

    assert [(b.name, b.size) for b in listed] == [
        ("runs/exp-42/checkpoint-1000/model.safetensors", 10),
        ("runs/exp-42/checkpoint-2000/model.safetensors", 20),
    ]
    assert listed[0].metadata == {"owner": "ana"}
    assert listed[0].storage_class == "STANDARD"
    assert gcs_client.get_bucket("checkpoints").labels == {"janitor-checkpoints": "true"}
    # every request carried a bearer token the local GCP server issued through the key file
    assert {r.headers.get("authorization", "")[:7] for r in gcs_env.requests} == {"Bearer "}


def test_an_anonymous_client_is_refused(gcs_env: GcsEmulator) -> None:
    """google-cloud-storage falls back to AnonymousCredentials under STORAGE_EMULATOR_HOST when
    given no credentials; the emulator refuses such requests, so a kind that forgot to pass
    janitor's credentials fails its tests."""
    anonymous = storage.Client()
    assert isinstance(anonymous._credentials, AnonymousCredentials)

    # the 401 makes google-auth's session refresh the credentials, which anonymous ones cannot
    with pytest.raises(google.auth.exceptions.InvalidOperation, match="Anonymous"):
        anonymous.create_bucket("anonymous")

    [refused] = gcs_env.requests
    assert (refused.method, refused.path) == ("POST", "/storage/v1/b")
    assert refused.headers.get("authorization") is None


def test_objects_written_under_at_are_backdated(gcs_client: storage.Client) -> None:
    bucket = gcs_client.create_bucket("backdated")
    with at(WHEN):
        bucket.blob("runs/old/checkpoint-1/model.pt").upload_from_string(b"old")
        bucket.blob("runs/old/checkpoint-2/model.pt").upload_from_string(b"old")
    bucket.blob("runs/new/checkpoint-1/model.pt").upload_from_string(b"new")

    by_name = {b.name: b for b in gcs_client.list_blobs("backdated")}

    old = [by_name[f"runs/old/checkpoint-{i}/model.pt"] for i in (1, 2)]
    for blob in old:
        assert blob.updated is not None
        assert WHEN <= blob.updated < WHEN + timedelta(minutes=5)
        assert blob.time_created == blob.updated
    assert old[0].generation != old[1].generation
    new = by_name["runs/new/checkpoint-1/model.pt"].updated
    assert new is not None
    assert new > WHEN + timedelta(days=200)


def test_page_size_is_recorded_but_ignored(
    gcs_client: storage.Client, gcs_env: GcsEmulator
) -> None:
    bucket = gcs_client.create_bucket("pages")
    for i in range(5):
        bucket.blob(f"runs/r/epoch{i}.pt").upload_from_string(b"x")
    gcs_env.clear_requests()

    pages = [list(page) for page in gcs_client.list_blobs("pages", page_size=2).pages]

    assert [len(page) for page in pages] == [5]  # one page, whatever maxResults says
    [listing] = gcs_env.requests
    assert (listing.method, listing.path) == ("GET", "/storage/v1/b/pages/o")
    assert listing.param("maxResults") == "2"


def test_storage_class_rewrite_is_recorded_and_kept(
    gcs_client: storage.Client, gcs_env: GcsEmulator
) -> None:
    bucket = gcs_client.create_bucket("classes")
    blob = bucket.blob("runs/a/step_1/model.pt")
    blob.upload_from_string(b"weights")
    bucket.blob("runs/a/step_2/model.pt").upload_from_string(b"newest")
    gcs_env.clear_requests()

    blob.update_storage_class("COLDLINE")

    [rewrite] = gcs_env.requests
    assert rewrite.method == "POST"
    assert rewrite.path == (
        "/storage/v1/b/classes/o/runs/a/step_1/model.pt/rewriteTo/b/classes/o/runs/a/step_1/model.pt"
    )
    assert rewrite.json()["storageClass"] == "COLDLINE"
    assert rewrite.param("rewriteToken") is None
    assert blob.storage_class == "COLDLINE"  # the rewrite's answer
    listed = {b.name: b.storage_class for b in gcs_client.list_blobs("classes")}
    assert listed == {"runs/a/step_1/model.pt": "COLDLINE", "runs/a/step_2/model.pt": "STANDARD"}
    assert bucket.blob("runs/a/step_1/model.pt").download_as_bytes() == b"weights"

    blob.update_storage_class("STANDARD")  # a restore

    assert bucket.get_blob("runs/a/step_1/model.pt").storage_class == "STANDARD"


def test_rewrite_to_another_object_leaves_the_source_class(gcs_client: storage.Client) -> None:
    bucket = gcs_client.create_bucket("copies")
    source = bucket.blob("a.pt")
    source.upload_from_string(b"x")
    copy = bucket.blob("b.pt")
    copy.storage_class = "ARCHIVE"

    copy.rewrite(source)

    classes = {b.name: b.storage_class for b in gcs_client.list_blobs("copies")}
    assert classes == {"a.pt": "STANDARD", "b.pt": "ARCHIVE"}


def test_the_bare_emulator_ignores_storage_class_changes() -> None:
    """Why the wrapper exists: without it, a rewrite keeps the source's class."""
    with GcsEmulator(storage_class_rewrites=False) as emulator:
        client = storage.Client(
            project="p",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": emulator.url},
        )
        blob = client.create_bucket("bare").blob("a.pt")
        blob.upload_from_string(b"x")

        blob.update_storage_class("COLDLINE")

        assert emulator.requests[-1].json()["storageClass"] == "COLDLINE"
        assert client.bucket("bare").get_blob("a.pt").storage_class == "STANDARD"
