"""Azurite as the tests use it: started and stopped cleanly, reached by azure-storage-blob,
blobs backdated through libfaketime, and what it does with tiers, batches, paging and access
time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, StandardBlobTier

from janitor.devserver.azurite import MAX_BATCH_SUBREQUESTS, Azurite

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_starts_answers_and_stops_without_leaving_a_process() -> None:
    with Azurite() as azurite:
        pid = azurite.pid
        assert pid is not None
        assert _alive(pid)
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        assert list(service.list_containers()) == []
    assert not _alive(pid)
    assert azurite.pid is None


def _fail_inside(azurite: Azurite, pids: list[int]) -> None:
    with azurite:
        assert azurite.pid is not None
        pids.append(azurite.pid)
        raise RuntimeError("boom")


def test_stops_when_the_block_fails() -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        _fail_inside(Azurite(), pids)
    [pid] = pids
    assert not _alive(pid)


def test_container_upload_prefix_listing_and_metadata(blob_service: BlobServiceClient) -> None:
    container = blob_service.create_container("checkpoints")
    container.upload_blob("runs/exp-42/checkpoint-1000/model.safetensors", b"w" * 10)
    container.upload_blob(
        "runs/exp-42/checkpoint-2000/model.safetensors", b"w" * 20, metadata={"owner": "ana"}
    )
    container.upload_blob("runs/exp-7/config.json", b"{}")

    names = [b.name for b in container.list_blobs(name_starts_with="runs/exp-42/")]
    assert names == [
        "runs/exp-42/checkpoint-1000/model.safetensors",
        "runs/exp-42/checkpoint-2000/model.safetensors",
    ]
    props = container.get_blob_client(names[1]).get_blob_properties()
    assert props.size == 20
    assert props.metadata == {"owner": "ana"}
    assert props.blob_tier == "Hot"
    assert props.blob_tier_inferred is True
    listed = list(container.list_blobs(name_starts_with="runs/exp-42/", include=["metadata"]))
    assert [b.metadata for b in listed] == [{}, {"owner": "ana"}]


def test_clock_at_backdates_last_modified_then_returns_to_the_real_time(
    azurite: Azurite, blob_service: BlobServiceClient
) -> None:
    assert azurite.backdating, "libfaketime is missing: `apt-get install faketime`"
    container = blob_service.create_container("backdated")
    with azurite.clock_at(WHEN):
        container.upload_blob("runs/old/checkpoint-1/model.pt", b"old")
    container.upload_blob("runs/new/checkpoint-1/model.pt", b"new")

    by_name = {b.name: b for b in container.list_blobs()}
    old = by_name["runs/old/checkpoint-1/model.pt"]
    assert old.last_modified == WHEN
    assert old.creation_time == WHEN
    props = container.get_blob_client(old.name).get_blob_properties()
    assert props.last_modified == WHEN
    assert by_name["runs/new/checkpoint-1/model.pt"].last_modified > WHEN + timedelta(days=200)


def test_batch_set_tier_to_cold_keeps_last_modified_and_etag(
    azurite: Azurite, blob_service: BlobServiceClient
) -> None:
    container = blob_service.create_container("tiers")
    names = [f"runs/a/step_{i}/model.pt" for i in range(3)]
    with azurite.clock_at(WHEN):
        for name in names:
            container.upload_blob(name, b"x")
    before = {b.name: b.etag for b in container.list_blobs()}

    responses = list(container.set_standard_blob_tier_blobs(StandardBlobTier.COLD, *names[:2]))

    assert [r.status_code for r in responses] == [200, 200]
    after = {b.name: b for b in container.list_blobs()}
    assert [after[n].blob_tier for n in names] == ["Cold", "Cold", "Hot"]
    assert all(after[n].last_modified == WHEN for n in names)
    assert {n: after[n].etag for n in names} == before


def test_batch_of_more_than_256_is_refused_whole(blob_service: BlobServiceClient) -> None:
    container = blob_service.create_container("batch")
    container.upload_blob("a.pt", b"x")
    names = ["a.pt"] + [f"missing-{i}.pt" for i in range(MAX_BATCH_SUBREQUESTS)]

    with pytest.raises(HttpResponseError) as raised:
        list(container.set_standard_blob_tier_blobs(StandardBlobTier.COLD, *names))

    # Azurite answers one 400 part instead of 257 (azure-storage-blob: PartialBatchErrorException)
    parts = raised.value.parts  # type: ignore[attr-defined]
    assert [(p.status_code, p.headers.get("x-ms-error-code")) for p in parts] == [
        (400, "ExceedsMaxBatchRequestCount")
    ]
    assert container.get_blob_client("a.pt").get_blob_properties().blob_tier == "Hot"


def test_batch_reports_a_missing_blob_per_subrequest(blob_service: BlobServiceClient) -> None:
    container = blob_service.create_container("partial")
    container.upload_blob("there.pt", b"x")

    responses = list(
        container.set_standard_blob_tier_blobs(
            StandardBlobTier.COLD, "there.pt", "gone.pt", raise_on_any_failure=False
        )
    )

    assert [r.status_code for r in responses] == [200, 404]
    assert container.get_blob_client("there.pt").get_blob_properties().blob_tier == "Cold"


def test_archive_blocks_reads_and_leaving_it_is_immediate(
    blob_service: BlobServiceClient,
) -> None:
    container = blob_service.create_container("archive")
    blob = container.upload_blob("runs/a/model.ckpt", b"weights")
    responses = list(container.set_standard_blob_tier_blobs("Archive", "runs/a/model.ckpt"))
    assert [r.status_code for r in responses] == [200]
    with pytest.raises(ResourceExistsError) as raised:
        blob.download_blob().readall()
    assert raised.value.error_code == "BlobArchived"  # type: ignore[attr-defined]

    responses = list(container.set_standard_blob_tier_blobs("Cold", "runs/a/model.ckpt"))

    assert [r.status_code for r in responses] == [202]  # Azure: rehydration pending; Azurite: done
    props = blob.get_blob_properties()
    assert props.blob_tier == "Cold"
    assert props.archive_status is None
    assert blob.download_blob().readall() == b"weights"


def test_list_pages_by_maxresults_and_no_last_access_time(blob_service: BlobServiceClient) -> None:
    container = blob_service.create_container("pages")
    for i in range(5):
        container.upload_blob(f"runs/r/epoch{i}.pt", b"x")
        container.get_blob_client(f"runs/r/epoch{i}.pt").download_blob().readall()

    pages = [list(page) for page in container.list_blobs(results_per_page=2).by_page()]

    assert [len(page) for page in pages] == [2, 2, 1]
    assert {b.last_accessed_on for page in pages for b in page} == {None}


def test_no_azurite_outlives_a_killed_test_process() -> None:
    script = (
        "import sys, time\n"
        "from janitor.devserver.azurite import Azurite\n"
        "azurite = Azurite(backdating=False)\n"
        "azurite.start()\n"
        "print(azurite.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(timeout=10)
    for _ in range(200):
        if not _alive(pid):
            break
        time.sleep(0.05)
    orphan = _alive(pid)
    if orphan:  # do not leave it behind when this test fails
        os.killpg(pid, signal.SIGKILL)
    assert not orphan
