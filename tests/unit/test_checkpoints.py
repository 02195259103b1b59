"""The cloud-neutral checkpoint core: recognition, the streaming run grouper, the action plan,
storage classes, idleness, the opt-out marker and the rule's `checkpoints:` options."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from janitor import checkpoints as ck
from janitor.checkpoints import (
    ListingOrder,
    ListingOrderError,
    Placement,
    PlanAction,
    Recognizer,
    Run,
    RunActivity,
    RunGrouper,
    Store,
    StoredObject,
    group_runs,
    plan_run,
    target_class,
)
from janitor.clouds import registry
from janitor.clouds.base import KindSpec
from janitor.lifecycle import exemption
from janitor.model import Cloud, Confidence, ResourceRef, Status
from janitor.policy import CheckpointOptions, PolicyError, parse_policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MB = 1024**2


def obj(
    key: str,
    day: float = 0,
    *,
    size: int = MB,
    cls: str = "STANDARD",
    access: float | None = None,
    metadata: dict[str, str] | None = None,
) -> StoredObject:
    return StoredObject(
        key=key,
        size=size,
        modified=T0 + timedelta(days=day),
        version=f"etag-{key}",
        storage_class=cls,
        last_access=None if access is None else T0 + timedelta(days=access),
        metadata=metadata,
    )


def runs_of(objects: Sequence[StoredObject], **kwargs: object) -> dict[str, Run]:
    ordered = sorted(objects, key=lambda o: o.key)
    found: dict[str, Run] = {}
    for run in group_runs(ordered, **kwargs):  # type: ignore[arg-type]
        assert run.prefix not in found, f"run {run.prefix!r} yielded twice"
        found[run.prefix] = run
    return found


def names(run: Run) -> list[str]:
    return [c.label for c in run.checkpoints]


# --- recognition -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "run", "checkpoint"),
    [
        ("runs/exp-42/checkpoint-1000/model.safetensors", "runs/exp-42/", "checkpoint-1000/"),
        ("runs/exp-42/checkpoint_7/optimizer.pt", "runs/exp-42/", "checkpoint_7/"),
        ("runs/exp-42/ckpt-3/config.json", "runs/exp-42/", "ckpt-3/"),  # in a checkpoint dir
        ("runs/exp-42/step_500/x", "runs/exp-42/", "step_500/"),
        ("runs/exp-42/global_step9/mp_rank_00_model_states.pt", "runs/exp-42/", "global_step9/"),
        ("runs/exp-42/epoch3/weights", "runs/exp-42/", "epoch3/"),
        ("runs/exp-42/final.ckpt", "runs/exp-42/", "runs/exp-42/final"),
        ("runs/exp-42/final.pth", "runs/exp-42/", "runs/exp-42/final"),
        ("runs/exp-42/pytorch_model.bin", "runs/exp-42/", "runs/exp-42/pytorch_model"),
        ("runs/exp-42/__0_0.distcp", "runs/exp-42/", "runs/exp-42/"),
        ("runs/exp-42/keras.h5", "runs/exp-42/", "runs/exp-42/keras"),
        ("runs/exp-42/flax.msgpack", "runs/exp-42/", "runs/exp-42/flax"),
        ("runs/exp-42/model.ckpt-5.index", "runs/exp-42/", "runs/exp-42/model.ckpt-5"),
        (
            "runs/exp-42/model.ckpt-5.data-00000-of-00002",
            "runs/exp-42/",
            "runs/exp-42/model.ckpt-5",
        ),
        ("model.pt", "", "model"),  # a run at the bucket root
    ],
)
def test_default_recognition(key: str, run: str, checkpoint: str) -> None:
    found = Recognizer().classify(key)
    assert found.placement is Placement.CHECKPOINT
    assert found.run == run
    assert found.checkpoint is not None
    if found.directory:
        assert found.checkpoint == run + checkpoint
    else:
        assert found.checkpoint == checkpoint


@pytest.mark.parametrize(
    "key",
    [
        "runs/exp-42/config.json",
        "runs/exp-42/logs/events.out.tfevents.1",
        "runs/exp-42/tokenizer.json",
        "runs/exp-42/metrics.csv",
        "runs/exp-42/model.safetensors.index.json",  # HF shard index: a config, not weights
        "runs/exp-42/checkpoint-notes.txt",  # a file named like a directory pattern
        "runs/exp-42/MODEL.PT",  # patterns are case-sensitive
    ],
)
def test_files_that_are_not_checkpoints(key: str) -> None:
    assert Recognizer().classify(key).placement is Placement.OTHER


def test_the_outermost_checkpoint_directory_is_the_checkpoint() -> None:
    # DeepSpeed under the HF Trainer: checkpoint-1000/global_step1000/...
    found = Recognizer().classify("r/checkpoint-1000/global_step1000/zero_pp_rank_0.pt")
    assert found.checkpoint == "r/checkpoint-1000/"
    assert found.run == "r/"


def test_markers_and_placeholders() -> None:
    rec = Recognizer()
    assert rec.classify("runs/a/janitor-exempt").placement is Placement.MARKER
    inside = rec.classify("runs/a/checkpoint-1/janitor-exempt")
    assert inside.placement is Placement.MARKER
    assert inside.checkpoint == "runs/a/checkpoint-1/"
    assert rec.classify("runs/a/").placement is Placement.PLACEHOLDER
    custom = Recognizer(marker_name="keep-me")
    assert custom.classify("runs/a/keep-me").placement is Placement.MARKER
    assert custom.classify("runs/a/janitor-exempt").placement is Placement.OTHER


def test_patterns_are_configurable() -> None:
    rec = Recognizer(file_patterns=("*.npz",), dir_patterns=("iter-*",))
    assert rec.classify("r/iter-5/a.txt").checkpoint == "r/iter-5/"
    assert rec.classify("r/w.npz").placement is Placement.CHECKPOINT
    assert rec.classify("r/w.pt").placement is Placement.OTHER
    assert rec.classify("r/checkpoint-1/w.txt").placement is Placement.OTHER
    only_dirs = Recognizer(file_patterns=())
    assert only_dirs.classify("r/w.pt").placement is Placement.OTHER


@pytest.mark.parametrize(
    ("files", "stem"),
    [
        (["model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"], "model"),
        (["model.ckpt-1000.index", "model.ckpt-1000.data-00000-of-00001"], "model.ckpt-1000"),
        (["__0_0.distcp", "__1_0.distcp"], ""),
        (["mp_rank_00.pt", "mp_rank_01.pt"], ""),
        (["weights_rank0.pt", "weights_rank7.pt"], "weights"),
        (["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"], "pytorch_model"),
    ],
)
def test_shards_of_one_save_share_a_stem(files: list[str], stem: str) -> None:
    rec = Recognizer()
    assert {rec.stem(name) for name in files} == {stem}


def test_different_steps_are_different_checkpoints() -> None:
    rec = Recognizer()
    stems = {rec.stem(n) for n in ["epoch=1-step=100.ckpt", "epoch=2-step=200.ckpt", "last.ckpt"]}
    assert len(stems) == 3


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("*", "matches any name"),
        ("?*", "matches any name"),
        ("a/*.pt", "without '/'"),
        ("", "empty"),
    ],
)
def test_patterns_that_cannot_be(pattern: str, problem: str) -> None:
    message = ck.pattern_problem(pattern)
    assert message is not None
    assert problem in message
    with pytest.raises(ValueError, match=problem):
        Recognizer(file_patterns=(pattern,))


ODD_PREFIX = ("runs/" + "ü %+ä" * 200)[:999] + "/"  # 1,000 characters of unicode, space, % and +


@pytest.mark.parametrize(
    "prefix",
    [
        "runs/my run/",
        "runs/expérience-β/",
        "runs/100%/",
        "runs/a+b/",
        "runs/日本語 %2F+/",
        ODD_PREFIX,
    ],
)
def test_odd_keys_group_like_any_other(prefix: str) -> None:
    assert len(ODD_PREFIX) == 1000
    found = runs_of(
        [
            obj(prefix + "checkpoint-1/model weights+%.safetensors", 1),
            obj(prefix + "checkpoint-2/model weights+%.safetensors", 2),
            obj(prefix + "notes + 100%.txt", 3),
            obj(prefix + "janitor-exempt", 3),
        ]
    )
    assert list(found) == [prefix]
    run = found[prefix]
    assert names(run) == ["checkpoint-1/", "checkpoint-2/"]
    assert run.other_objects == 1
    assert run.marker == prefix + "janitor-exempt"
    plan = plan_run(run, store=Store.S3)
    assert [m.key for m in plan.moves] == [prefix + "checkpoint-1/model weights+%.safetensors"]


# --- the streaming grouper -------------------------------------------------------------------


def test_a_run_and_its_counts() -> None:
    run = runs_of(
        [
            obj("runs/exp-42/checkpoint-1000/model.safetensors", 1, size=3 * MB),
            obj("runs/exp-42/checkpoint-1000/config.json", 1, size=1000),
            obj("runs/exp-42/checkpoint-2000/model.safetensors", 5, size=3 * MB),
            obj("runs/exp-42/train.log", 9, size=500),
            obj("runs/exp-42/logs/tb/events.out", 11, size=700),
        ]
    )["runs/exp-42/"]
    assert names(run) == ["checkpoint-1000/", "checkpoint-2000/"]
    assert run.object_count == 3
    assert run.total_bytes == 6 * MB + 1000
    assert run.other_objects == 2
    assert run.other_bytes == 1200
    # Logs written after the last checkpoint are activity of the run.
    assert run.newest_modified == T0 + timedelta(days=11)
    assert run.activity.newest_key == "runs/exp-42/logs/tb/events.out"
    assert run.activity.objects == 5
    assert run.checkpoints[0].size == 3 * MB + 1000
    assert run.checkpoints[1].newest_modified == T0 + timedelta(days=5)


def test_siblings_that_sort_around_the_slash() -> None:
    # '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f), '0' after it: runs/a/ is listed
    # between runs/a.b/ and runs/a0/, and none of them absorbs another.
    found = runs_of(
        [
            obj("runs/a-b/checkpoint-1/w.pt", 1),
            obj("runs/a.b/checkpoint-1/w.pt", 2),
            obj("runs/a/checkpoint-1/w.pt", 3),
            obj("runs/a/checkpoint-2/w.pt", 4),
            obj("runs/a0/checkpoint-1/w.pt", 5),
            obj("runs/a-b/checkpoint-2/w.pt", 6),
        ]
    )
    assert sorted(found) == ["runs/a-b/", "runs/a.b/", "runs/a/", "runs/a0/"]
    assert names(found["runs/a-b/"]) == ["checkpoint-1/", "checkpoint-2/"]
    assert names(found["runs/a/"]) == ["checkpoint-1/", "checkpoint-2/"]
    assert found["runs/a/"].newest_modified == T0 + timedelta(days=4)
    assert found["runs/a0/"].object_count == 1


def test_a_run_nested_in_a_run_is_its_own_run() -> None:
    ordered = sorted(
        [
            obj("runs/a/checkpoint-1/w.pt", 1),
            obj("runs/a/eval/checkpoint-9/w.pt", 30),  # listed between a's checkpoints
            obj("runs/a/eval/results.json", 31),
            obj("runs/a/step_2/w.pt", 2),
            obj("runs/a/z-final.pt", 3),
        ],
        key=lambda o: o.key,
    )
    runs = list(group_runs(ordered))
    assert [r.prefix for r in runs] == ["runs/a/eval/", "runs/a/"]  # the inner one first
    inner, outer = runs
    assert names(inner) == ["checkpoint-9/"]
    assert inner.other_objects == 1
    assert names(outer) == ["checkpoint-1/", "step_2/", "z-final.pt"]
    # The nested run's objects are not the outer run's activity.
    assert outer.newest_modified == T0 + timedelta(days=3)
    assert outer.other_objects == 0


def test_runs_are_yielded_as_soon_as_the_listing_moves_past_them() -> None:
    pulled = 0
    layout = [(f"runs/r{i:04d}/", [f"checkpoint-{s}/w.pt" for s in range(5)]) for i in range(300)]

    def listing() -> Iterator[StoredObject]:
        nonlocal pulled
        for prefix, files in layout:
            for name in files:
                pulled += 1
                yield obj(prefix + name, 1)

    first_keys = {prefix: 5 * i for i, (prefix, _) in enumerate(layout)}
    for run in group_runs(listing()):
        index = first_keys[run.prefix] // 5
        # Yielded while reading the first object of the next run: one run held at a time.
        assert pulled <= 5 * (index + 1) + 1, run.prefix
        assert run.object_count == 5


def test_pages_feed_the_grouper_and_finish_flushes() -> None:
    grouper = RunGrouper()
    page1 = [obj("a/checkpoint-1/w.pt"), obj("a/checkpoint-2/w.pt")]
    page2 = [obj("a/checkpoint-3/w.pt"), obj("b/checkpoint-1/w.pt")]
    assert list(grouper.feed(page1)) == []  # a/ may continue on the next page
    assert [r.prefix for r in grouper.feed(page2)] == ["a/"]
    assert [r.prefix for r in grouper.finish()] == ["b/"]
    assert grouper.objects_seen == 4
    with pytest.raises(RuntimeError, match="finished"):
        grouper.add(obj("c/checkpoint-1/w.pt"))


def test_memory_holds_one_run_not_the_bucket() -> None:
    grouper = RunGrouper()
    deepest = 0
    for i in range(2000):
        for step in range(3):
            list(grouper.add(obj(f"team/runs/r{i:05d}/checkpoint-{step}/w.pt")))
        deepest = max(deepest, len(grouper._stack))
        held = sum(len(g.objects) for f in grouper._stack for g in (f.groups or {}).values())
        assert held == 3  # only the current run's objects
    assert deepest == 4  # "", team/, team/runs/, the run
    assert len(grouper.finish()) == 1


def test_out_of_order_listing_is_refused() -> None:
    grouper = RunGrouper()
    grouper.add(obj("runs/b/checkpoint-1/w.pt"))
    with pytest.raises(ListingOrderError, match="lexicographic"):
        grouper.add(obj("runs/a/checkpoint-1/w.pt"))
    repeat = RunGrouper()
    repeat.add(obj("runs/a/checkpoint-1/w.pt"))
    with pytest.raises(ListingOrderError):
        repeat.add(obj("runs/a/checkpoint-1/w.pt"))


HNS_ORDER = [  # how an Azure account with a hierarchical namespace lists (depth-first)
    "runs/a/checkpoint-1/w.pt",
    "runs/a/checkpoint-2/w.pt",
    "runs/a-b/checkpoint-1/w.pt",
    "runs/a.b/checkpoint-1/w.pt",
]


def test_tree_order_for_hierarchical_namespaces() -> None:
    objects = [obj(k, i) for i, k in enumerate(HNS_ORDER)]
    found = {r.prefix: r for r in group_runs(objects, order=ListingOrder.TREE)}
    assert sorted(found) == ["runs/a-b/", "runs/a.b/", "runs/a/"]
    assert names(found["runs/a/"]) == ["checkpoint-1/", "checkpoint-2/"]
    with pytest.raises(ListingOrderError):
        list(group_runs(objects))  # not code-point order


def test_other_files_belong_to_the_nearest_enclosing_run_only() -> None:
    found = runs_of(
        [
            obj("README.md", 50),  # above every run: nobody's
            obj("runs/index.html", 50),
            obj("runs/a/checkpoint-1/w.pt", 1),
            obj("runs/a/wandb/run-1/files/output.log", 20),
            obj("data/train/shard-0.parquet", 60),  # a directory with no run at all
        ]
    )
    assert list(found) == ["runs/a/"]
    assert found["runs/a/"].other_objects == 1
    assert found["runs/a/"].newest_modified == T0 + timedelta(days=20)


def test_markers() -> None:
    found = runs_of(
        [
            obj("runs/a/checkpoint-1/w.pt", 1),
            obj("runs/a/janitor-exempt", 2),
            obj("runs/b/checkpoint-1/w.pt", 1),
            obj("runs/b/checkpoint-1/janitor-exempt", 1),
            obj("runs/b/checkpoint-2/w.pt", 2),
            obj("runs/b/checkpoint-3/w.pt", 3),
            obj("runs/janitor-exempt", 0),  # not in a run's own prefix: exempts nothing
            obj("runs/c/checkpoint-9/janitor-exempt", 0),  # a marker alone is no checkpoint
        ]
    )
    assert sorted(found) == ["runs/a/", "runs/b/"]
    assert found["runs/a/"].marker == "runs/a/janitor-exempt"
    assert found["runs/a/"].activity.objects == 1  # the marker is not activity
    b = found["runs/b/"]
    assert b.marker is None
    assert b.checkpoints[0].marker == "runs/b/checkpoint-1/janitor-exempt"
    assert all(o.key.endswith("w.pt") for o in b.objects())  # never part of a checkpoint
    plan = plan_run(b, store=Store.S3)
    assert [m.key for m in plan.moves] == ["runs/b/checkpoint-2/w.pt"]
    assert any("exempt marker" in k.reason for k in plan.kept)


def test_placeholders_are_ignored() -> None:
    objects = [obj("runs/", 90), obj("runs/a/", 90), obj("runs/a/checkpoint-1/w.pt", 1)]
    hns_dir = StoredObject("runs/b", 0, T0, "e", "Hot", placeholder=True)
    found = runs_of([*objects, hns_dir])
    assert found["runs/a/"].newest_modified == T0 + timedelta(days=1)
    assert found["runs/a/"].other_objects == 0


def test_empty_listings() -> None:
    assert list(group_runs([])) == []
    assert runs_of([obj("logs/a.txt"), obj("config.yaml")]) == {}


def test_find_run_reads_one_prefix() -> None:
    listing = [obj("runs/a/checkpoint-1/w.pt"), obj("runs/a/sub/checkpoint-1/w.pt")]
    run = ck.find_run(listing, "runs/a/")
    assert run is not None
    assert run.object_count == 1
    assert ck.find_run(listing, "runs/zzz/") is None


def test_last_access_and_metadata() -> None:
    run = runs_of(
        [
            obj("r/checkpoint-1/w.pt", 1, access=40, metadata={"Owner": "old@x"}),
            obj("r/checkpoint-2/w.pt", 2, access=10, metadata={"owner": "ana@x"}),
            obj("r/checkpoint-2/b.pt", 2),
        ]
    )["r/"]
    assert run.activity.newest_access == T0 + timedelta(days=40)
    assert run.activity.accessed_objects == 2
    assert run.metadata_value(["owner"]) in {"ana@x", "old@x"}
    assert run.metadata_value(["created-by"]) is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StoredObject("k", 1, datetime(2026, 1, 1), "e", "STANDARD")  # noqa: DTZ001


# --- the plan --------------------------------------------------------------------------------


def three_steps(cls: str = "STANDARD") -> Run:
    return runs_of(
        [
            obj("r/checkpoint-1/w.pt", 1, cls=cls),
            obj("r/checkpoint-1/tiny.json", 1, size=100, cls=cls),
            obj("r/checkpoint-2/w.pt", 2, cls=cls),
            obj("r/checkpoint-3/w.pt", 3, cls=cls),
            obj("r/config.json", 4),
        ]
    )["r/"]


def test_archive_moves_all_but_the_newest() -> None:
    plan = plan_run(three_steps(), store=Store.S3)
    assert plan.target.name == "GLACIER_IR"
    assert [m.key for m in plan.moves] == ["r/checkpoint-1/w.pt", "r/checkpoint-2/w.pt"]
    assert all(m.from_class == "STANDARD" for m in plan.moves)
    assert all(m.version == f"etag-{m.key}" for m in plan.moves)
    assert [k.checkpoint for k in plan.kept] == ["r/checkpoint-3/"]
    untouched = {u.key: u.reason for u in plan.untouched}
    assert "minimum billable" in untouched["r/checkpoint-1/tiny.json"]
    assert untouched["r/checkpoint-3/w.pt"].startswith("kept")
    assert plan.other_objects == 1  # config.json: counted, never in moves or deletes
    assert "r/config.json" not in {m.key for m in plan.moves}
    assert plan.deletes == ()
    assert plan.bytes_moved == 2 * MB
    assert plan.notes == ()  # cold is read at once: nothing to warn about
    assert plan.restore_entries()[0] == {
        "key": "r/checkpoint-1/w.pt",
        "from": "STANDARD",
        "to": "GLACIER_IR",
    }
    assert "move 2 objects" in plan.summary()


def test_keep_latest_two() -> None:
    plan = plan_run(three_steps(), store=Store.S3, keep_latest=2)
    assert [m.key for m in plan.moves] == ["r/checkpoint-1/w.pt"]
    with pytest.raises(ValueError, match="at least 1"):
        plan_run(three_steps(), store=Store.S3, keep_latest=0)


def test_only_the_newest_checkpoint_means_nothing_to_move() -> None:
    run = runs_of([obj("r/checkpoint-1/w.pt", 1), obj("r/notes.txt", 2)])["r/"]
    plan = plan_run(run, store=Store.S3)
    assert plan.nothing_to_do
    delete = plan_run(run, store=Store.S3, action=PlanAction.DELETE)
    assert delete.nothing_to_do


@pytest.mark.parametrize(
    ("store", "warm", "cold"),
    [
        (Store.S3, "STANDARD", "GLACIER_IR"),
        (Store.GCS, "STANDARD", "COLDLINE"),
        (Store.AZURE_BLOB, "Hot", "Cold"),
    ],
)
def test_default_targets_per_store(store: Store, warm: str, cold: str) -> None:
    plan = plan_run(three_steps(warm), store=store)
    assert {m.to_class for m in plan.moves} == {cold}
    assert plan.target.instant
    small = "r/checkpoint-1/tiny.json"
    # Only S3 bills small objects as 128 KiB in its colder classes.
    assert (small in {m.key for m in plan.moves}) is (store is not Store.S3)


def test_objects_already_cold_or_unmanaged_are_not_moved() -> None:
    run = runs_of(
        [
            obj("r/checkpoint-1/a.pt", 1, cls="GLACIER_IR"),
            obj("r/checkpoint-1/b.pt", 1, cls="DEEP_ARCHIVE"),
            obj("r/checkpoint-1/c.pt", 1, cls="INTELLIGENT_TIERING"),
            obj("r/checkpoint-1/d.pt", 1, cls="STANDARD_IA"),
            obj("r/checkpoint-2/w.pt", 2),
        ]
    )["r/"]
    plan = plan_run(run, store=Store.S3)
    assert [m.key for m in plan.moves] == ["r/checkpoint-1/d.pt"]
    reasons = {u.key: u.reason for u in plan.untouched}
    assert reasons["r/checkpoint-1/a.pt"] == "already in GLACIER_IR"
    assert reasons["r/checkpoint-1/b.pt"] == "already in DEEP_ARCHIVE"
    assert "not one janitor moves" in reasons["r/checkpoint-1/c.pt"]


def test_after_an_archive_the_moved_checkpoints_look_newest_and_are_not_chosen() -> None:
    # S3 CopyObject in place (and a GCS rewrite) dates the moved objects at the move: the
    # archived checkpoint-1 and -2 now look newer than checkpoint-3, still in STANDARD.
    run = runs_of(
        [
            obj("r/checkpoint-1/w.pt", 70, cls="GLACIER_IR"),
            obj("r/checkpoint-2/w.pt", 70, cls="GLACIER_IR"),
            obj("r/checkpoint-3/w.pt", 3),
        ]
    )["r/"]
    archive = plan_run(run, store=Store.S3)
    assert archive.nothing_to_do
    delete = plan_run(run, store=Store.S3, action=PlanAction.DELETE)
    assert "r/checkpoint-3/w.pt" not in {o.key for o in delete.deletes}
    kept = {k.checkpoint for k in delete.kept}
    assert "r/checkpoint-3/" in kept


def test_delete_never_touches_the_newest_and_moves_nothing() -> None:
    plan = plan_run(three_steps(), store=Store.S3, action=PlanAction.DELETE, keep_latest=1)
    assert plan.moves == ()
    assert {o.key for o in plan.deletes} == {
        "r/checkpoint-1/w.pt",
        "r/checkpoint-1/tiny.json",
        "r/checkpoint-2/w.pt",
    }
    assert plan.bytes_deleted == 2 * MB + 100
    assert "delete 3 objects" in plan.summary()


def test_delete_keeps_every_file_of_the_newest_tensorflow_checkpoint() -> None:
    run = runs_of(
        [
            obj("r/model.ckpt-1.data-00000-of-00001", 1),
            obj("r/model.ckpt-1.index", 1),
            obj("r/model.ckpt-2.data-00000-of-00001", 2),
            obj("r/model.ckpt-2.index", 2.01),  # the index is written after the data
        ]
    )["r/"]
    plan = plan_run(run, store=Store.GCS, action=PlanAction.DELETE)
    assert {o.key for o in plan.deletes} == {
        "r/model.ckpt-1.data-00000-of-00001",
        "r/model.ckpt-1.index",
    }


def test_deleting_young_cold_objects_names_the_early_deletion_charge() -> None:
    run = runs_of([obj("r/step_1/w.pt", 1, cls="COLDLINE"), obj("r/step_2/w.pt", 2)])["r/"]
    plan = plan_run(run, store=Store.GCS, action=PlanAction.DELETE)
    assert any("COLDLINE" in note and "minimum storage" in note for note in plan.notes)


def test_checkpoints_a_live_model_references_are_never_touched() -> None:
    run = three_steps()
    by_prefix = plan_run(run, store=Store.S3, references=["r/checkpoint-1/"])
    assert [m.key for m in by_prefix.moves] == ["r/checkpoint-2/w.pt"]
    by_key = plan_run(
        run, store=Store.S3, references=["r/checkpoint-2/w.pt"], action=PlanAction.DELETE
    )
    assert {o.key for o in by_key.deletes} == {"r/checkpoint-1/w.pt", "r/checkpoint-1/tiny.json"}
    assert any("referenced by a live model" in k.reason for k in by_key.kept)


@pytest.mark.parametrize(
    ("store", "name", "expected", "instant", "days"),
    [
        (Store.S3, "cold", "GLACIER_IR", True, 90),
        (Store.S3, "archive", "GLACIER", False, 90),
        (Store.S3, "deep-archive", "DEEP_ARCHIVE", False, 180),
        (Store.S3, "glacier_ir", "GLACIER_IR", True, 90),
        (Store.GCS, "archive", "ARCHIVE", True, 365),
        (Store.GCS, "NEARLINE", "NEARLINE", True, 30),
        (Store.AZURE_BLOB, "archive", "Archive", False, 180),
        (Store.AZURE_BLOB, "cool", "Cool", True, 30),
    ],
)
def test_target_classes(store: Store, name: str, expected: str, instant: bool, days: int) -> None:
    cls = target_class(store, name)
    assert cls.name == expected
    assert cls.instant is instant
    assert cls.min_storage_days == days


@pytest.mark.parametrize(
    ("store", "name", "message"),
    [
        (Store.GCS, "deep-archive", "not available on gcs"),
        (Store.AZURE_BLOB, "deep-archive", "not available on azure-blob"),
        (Store.S3, "STANDARD", "not a storage class janitor can move"),
        (Store.S3, "COLDLINE", "not a storage class janitor can move"),
        (Store.AZURE_BLOB, "Hot", "not a storage class janitor can move"),
    ],
)
def test_target_classes_refused(store: Store, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        target_class(store, name)


def test_a_colder_target_puts_its_duration_and_retrieval_delay_in_the_plan() -> None:
    glacier = plan_run(three_steps(), store=Store.S3, target=target_class(Store.S3, "archive"))
    assert {m.to_class for m in glacier.moves} == {"GLACIER"}
    (note,) = glacier.notes
    assert "minimum storage 90 days" in note
    assert "3-5 hours" in note
    azure = plan_run(
        three_steps("Hot"), store=Store.AZURE_BLOB, target=target_class(Store.AZURE_BLOB, "archive")
    )
    assert "15 hours" in azure.notes[0]
    with pytest.raises(ValueError, match="not s3"):
        plan_run(three_steps(), store=Store.S3, target=target_class(Store.GCS, "cold"))


def test_cost_and_saving() -> None:
    prices = {"STANDARD": 0.023, "GLACIER_IR": 0.004}
    run = three_steps()
    cost = ck.monthly_cost(run, Store.S3, prices.get)
    assert cost == pytest.approx((3 * MB + 100) / 1024**3 * 0.023)
    plan = plan_run(run, store=Store.S3)
    saving = ck.monthly_saving(plan, Store.S3, prices.get)
    assert saving == pytest.approx(2 * MB / 1024**3 * (0.023 - 0.004))
    assert ck.monthly_saving(plan, Store.S3, {"STANDARD": 0.023}.get) is None
    # An object under 128 KiB in GLACIER_IR is billed as 128 KiB.
    assert ck.billable_bytes(100, target_class(Store.S3, "cold")) == 128 * 1024
    assert ck.billable_bytes(MB, target_class(Store.S3, "archive")) == MB + 40 * 1024


# --- idleness --------------------------------------------------------------------------------

REF = ResourceRef(Cloud.AWS, "aws.s3-checkpoint", "123456789012", "us-east-1", "bucket/r/")


def test_idle_from_the_newest_modification() -> None:
    run = three_steps()
    verdict = ck.run_verdict(REF, run.activity, T0 + timedelta(days=70))
    assert verdict.status is Status.IDLE
    assert verdict.idle_since == T0 + timedelta(days=4)  # config.json, the newest object
    assert verdict.confidence is Confidence.MEDIUM
    assert "r/config.json" in verdict.evidence
    assert "modification time" in verdict.evidence


def test_idle_from_the_last_access_where_tracked() -> None:
    run = runs_of([obj("r/step_1/w.pt", 1, access=50), obj("r/step_2/w.pt", 2)])["r/"]
    now = T0 + timedelta(days=90)
    tracked = ck.run_verdict(REF, run.activity, now, access_tracking=True)
    assert tracked.idle_since == T0 + timedelta(days=50)
    assert tracked.confidence is Confidence.HIGH
    assert "last access time" in tracked.evidence
    assert "1 of 2 objects" in tracked.evidence
    untracked = ck.run_verdict(REF, run.activity, now)
    assert untracked.idle_since == T0 + timedelta(days=2)
    bare = runs_of([obj("r/step_1/w.pt", 1)])["r/"]
    nothing = ck.run_verdict(REF, bare.activity, now, access_tracking=True)
    assert nothing.idle_since == T0 + timedelta(days=1)
    assert "no object carries a last access time" in nothing.evidence


def test_recent_or_future_activity_is_active() -> None:
    run = runs_of([obj("r/step_1/w.pt", 10)])["r/"]
    recent = ck.run_verdict(REF, run.activity, T0 + timedelta(days=10, hours=5))
    assert recent.status is Status.ACTIVE
    future = ck.run_verdict(REF, run.activity, T0 + timedelta(days=9))
    assert future.status is Status.ACTIVE
    assert "future" in future.evidence


def test_activity_round_trips_through_details() -> None:
    run = runs_of([obj("r/step_1/w.pt", 1, access=3), obj("r/step_2/w.pt", 2)])["r/"]
    details = ck.run_details(run)
    assert details["checkpoints"] == ["step_2/", "step_1/"]  # newest first
    assert details["objects"] == 2
    assert RunActivity.from_details(details["activity"]) == run.activity


# --- the opt-out marker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"", ""),
        (b"\n", ""),
        (b"2026-12-31\n", "2026-12-31"),
        (b"\xef\xbb\xbf2026-12-31", "2026-12-31"),
        (b"  true  \nwhy: demo\n", "true"),
        (b"\xff\xfe\x00", "true"),
    ],
)
def test_marker_value(body: bytes, value: str) -> None:
    assert ck.marker_value(body) == value


def test_tags_with_marker() -> None:
    now = T0 + timedelta(days=400)
    key = "janitor-exempt"
    marked = ck.tags_with_marker({"owner": "ana"}, key, "", now)
    assert exemption(marked, key, now).exempt
    assert marked["owner"] == "ana"
    until = ck.tags_with_marker({}, key, "2027-12-31", now)
    assert exemption(until, key, now).until is not None
    expired = ck.tags_with_marker({}, key, "2026-01-02", now)
    assert not exemption(expired, key, now).exempt
    # Either opting out is enough: an expired marker does not undo the bucket's tag.
    bucket = ck.tags_with_marker({"Janitor-Exempt": "true"}, key, "2026-01-02", now)
    assert exemption(bucket, key, now).exempt
    # A bucket tag that does not exempt is overruled by a marker that does.
    overruled = ck.tags_with_marker({"JANITOR-EXEMPT": "false"}, key, "", now)
    assert overruled == {key: ""}
    assert ck.tags_with_marker({"a": "b"}, key, None, now) == {"a": "b"}


# --- the rule's options ----------------------------------------------------------------------

TEST_KINDS = {
    Cloud.AWS: "aws.test-checkpoint",
    Cloud.GCP: "gcp.test-checkpoint",
    Cloud.AZURE: "azure.test-checkpoint",
}


@pytest.fixture
def checkpoint_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint-like kinds in the registry (the real ones are registered by their modules)."""
    for cloud, name in TEST_KINDS.items():
        spec = KindSpec(
            name=name,
            cloud=cloud,
            title="test checkpoints",
            evidence="newest modification",
            confidence=Confidence.MEDIUM,
            action="archive",
            read_permissions=(),
            action_permissions=(),
            stoppable_states=(),
            options=("checkpoints",),
            actions=("delete",),
        )
        monkeypatch.setitem(registry.KINDS, name, spec)


def policy(rule: str, kind: str = TEST_KINDS[Cloud.AWS]) -> str:
    return f"rules:\n  - name: ckpt\n    kind: {kind}\n" + rule


@pytest.mark.usefixtures("checkpoint_kinds")
def test_defaults_are_filled_in() -> None:
    (rule,) = parse_policy(policy(""), "p.yaml", env={}).rules
    assert rule.checkpoints == CheckpointOptions()
    options = rule.checkpoints
    assert options.file_patterns == ck.DEFAULT_FILE_PATTERNS
    assert options.dir_patterns == ck.DEFAULT_DIR_PATTERNS
    assert options.keep_latest == 1
    assert options.storage_class == "cold"
    assert options.buckets == ()
    assert rule.action == "archive"
    recognizer = ck.recognizer_for(rule)
    assert recognizer.marker_name == "janitor-exempt"
    assert recognizer.classify("r/checkpoint-1/w").placement is Placement.CHECKPOINT


@pytest.mark.usefixtures("checkpoint_kinds")
def test_a_full_checkpoints_section() -> None:
    text = policy(
        "    action: delete\n"
        "    checkpoints:\n"
        "      buckets:\n"
        "        - {name: ml-ckpts, prefix: runs/}\n"
        "        - {name: ml-ckpts, prefix: archive/}\n"
        "        - name: other.bucket\n"
        "      file_patterns: ['*.npz']\n"
        "      dir_patterns: ['iter-*']\n"
        "      keep_latest: 3\n"
        "      storage_class: DEEP_ARCHIVE\n"
    )
    (rule,) = parse_policy(text, "p.yaml", env={}).rules
    assert rule.action == "delete"
    options = rule.checkpoints
    assert options is not None
    assert [(b.name, b.prefix) for b in options.buckets] == [
        ("ml-ckpts", "runs/"),
        ("ml-ckpts", "archive/"),
        ("other.bucket", ""),
    ]
    assert options.keep_latest == 3
    assert target_class(Store.S3, options.storage_class).name == "DEEP_ARCHIVE"
    assert ck.recognizer_for(rule).classify("r/w.npz").placement is Placement.CHECKPOINT


@pytest.mark.usefixtures("checkpoint_kinds")
@pytest.mark.parametrize(
    ("kind", "section", "message"),
    [
        (
            Cloud.AWS,
            "      keep_latest: 0\n",
            "keep_latest: Input should be greater than or equal to 1",
        ),
        (Cloud.AWS, "      keep_latest: '2'\n", "keep_latest: Input should be a valid integer"),
        (Cloud.AWS, "      file_patterns: ['*']\n", "matches any name"),
        (Cloud.AWS, "      dir_patterns: ['runs/*']\n", "without '/'"),
        (Cloud.AWS, "      file_patterns: []\n      dir_patterns: []\n", "nothing is a checkpoint"),
        (Cloud.AWS, "      storage_class: COLDLINE\n", "checkpoints.storage_class: 'COLDLINE'"),
        (Cloud.GCP, "      storage_class: deep-archive\n", "not available on gcs"),
        (Cloud.AZURE, "      storage_class: Hot\n", "not a storage class janitor can move"),
        (Cloud.AWS, "      buckets: [{name: Bad_Bucket}]\n", "not an S3 bucket name"),
        (Cloud.AZURE, "      buckets: [{name: container-only}]\n", "account/container"),
        (Cloud.GCP, "      buckets: [{name: x}]\n", "not a Cloud Storage bucket name"),
        (
            Cloud.AWS,
            "      buckets: [{name: b1, prefix: runs/}, {name: b1, prefix: runs/a/}]\n",
            "overlaps checkpoints.buckets[0]",
        ),
        (Cloud.AWS, "      bukets: []\n", "checkpoints.bukets: unknown field"),
    ],
)
def test_bad_options_are_one_line_errors(kind: Cloud, section: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(policy("    checkpoints:\n" + section, TEST_KINDS[kind]), "p.yaml", env={})
    text = str(caught.value)
    assert message in text
    assert text.startswith("p.yaml: rule 'ckpt' (rules[0])")
    assert "\n" not in text


@pytest.mark.usefixtures("checkpoint_kinds")
def test_azure_buckets_name_the_account() -> None:
    text = policy(
        "    checkpoints:\n      buckets: [{name: mlstore/checkpoints, prefix: team-a/}]\n",
        TEST_KINDS[Cloud.AZURE],
    )
    (rule,) = parse_policy(text, "p.yaml", env={}).rules
    assert rule.checkpoints is not None
    assert rule.checkpoints.buckets[0].name == "mlstore/checkpoints"


@pytest.mark.usefixtures("checkpoint_kinds")
def test_actions_a_checkpoint_rule_may_choose() -> None:
    with pytest.raises(PolicyError, match="use 'archive', 'delete' or 'notify-only'"):
        parse_policy(policy("    action: stop\n"), "p.yaml", env={})
    (rule,) = parse_policy(policy("    action: notify-only\n"), "p.yaml", env={}).rules
    assert not rule.may_stop


def test_other_kinds_take_no_checkpoints_section() -> None:
    text = "rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n    checkpoints: {keep_latest: 2}\n"
    with pytest.raises(PolicyError, match="checkpoints is not known for aws.ec2-gpu"):
        parse_policy(text, "p.yaml", env={})
    (rule,) = parse_policy("rules:\n  - name: gpu\n    kind: aws.ec2-gpu\n", "p", env={}).rules
    assert rule.checkpoints is None
    with pytest.raises(PolicyError, match="action 'delete' is not available for aws.ec2-gpu"):
        parse_policy("rules:\n  - {name: g, kind: aws.ec2-gpu, action: delete}\n", "p", env={})


def test_store_of_each_cloud() -> None:
    assert [ck.store_of(c) for c in (Cloud.AWS, Cloud.GCP, Cloud.AZURE)] == [
        Store.S3,
        Store.GCS,
        Store.AZURE_BLOB,
    ]


def test_the_module_is_pure() -> None:
    """No SDK and no pipeline: the three kinds and the policy can import it."""
    import ast
    from pathlib import Path

    source = Path(ck.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {m for m in imported if m.startswith(("boto", "google", "azure"))}
    assert "janitor.pipeline" not in imported
    assert imported & {"janitor.model", "janitor.evidence"}
