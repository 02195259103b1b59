"""Cloud-neutral checkpoint logic shared by `aws.s3-checkpoint`, `gcp.gcs-checkpoint` and
`azure.blob-checkpoint`: recognition, streaming grouping into training runs, the action plan,
storage classes as data, and idleness. Pure: no I/O, no SDK; the kinds list, read and act.

Vocabulary:

* an **object** (`StoredObject`) is one listed key with its size, modification time, version
  (S3/Azure ETag, GCS generation), storage class and, where the store tracks it, last access;
* a **checkpoint** is a directory whose name matches a directory pattern (every object under
  it, the outermost such directory when they nest: `checkpoint-1000/global_step1000/`), or
  loose files matching a file pattern outside such a directory. Loose files of one directory
  that differ only in their checkpoint suffix or a shard/rank number are one checkpoint:
  TensorFlow's `model.ckpt-1000.index` + `model.ckpt-1000.data-00000-of-00001`, sharded
  `model-00001-of-00002.safetensors`, `__0_0.distcp`, `mp_rank_01.pt`;
* a **run** is the prefix that directly holds checkpoints (`runs/exp-42/` for
  `runs/exp-42/checkpoint-1000/model.safetensors`). A run nested in another run is its own
  run. Other files (configs, logs, tokenizers) belong to no checkpoint and are never touched;
  they count towards the nearest enclosing run's activity and size, reported separately;
* the opt-out **marker** is an object named `janitor-exempt` (the policy's exempt tag) directly
  in the run's prefix; it may hold an ISO date. One inside a checkpoint directory keeps that
  checkpoint. A marker is never part of a checkpoint and never touched.

Listing order: keys must arrive in the store's listing order, strictly increasing; the grouper
refuses anything else (`ListingOrderError`), because a run seen in two pieces could be judged
idle from the older piece. S3, GCS and flat-namespace Azure list in code-point (UTF-8 byte)
order; Azure accounts with a hierarchical namespace list depth-first (`a/x` before `a-b`):
`ListingOrder.TREE`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from janitor.evidence import RECENT
from janitor.model import Confidence, ResourceRef, Verdict, utc

if TYPE_CHECKING:
    from janitor.policy import Rule

DEFAULT_FILE_PATTERNS: tuple[str, ...] = (
    "*.ckpt",
    "*.pt",
    "*.pth",
    "*.safetensors",
    "*.bin",
    "*.distcp",
    "*.h5",
    "*.msgpack",
    "*.index",
    "*.data-*",
)
DEFAULT_DIR_PATTERNS: tuple[str, ...] = (
    "checkpoint-*",
    "checkpoint_*",
    "ckpt-*",
    "step_*",
    "global_step*",
    "epoch*",
)
DEFAULT_KEEP_LATEST = 1
DEFAULT_STORAGE_CLASS = "cold"
MARKER_NAME = "janitor-exempt"
# A bucket or container carrying this tag (label) with the value `true` is listed.
DISCOVERY_TAG = "janitor-checkpoints"
# How much of a marker object the kinds read: an ISO date, or `true`, fits with room to spare.
MARKER_READ_BYTES = 256
GIB = 1024**3


class ListingOrderError(ValueError):
    """Objects arrived out of the listing order the grouper was told to expect."""


class ListingOrder(StrEnum):
    LEXICOGRAPHIC = "lexicographic"  # S3, GCS, flat-namespace Azure: code-point order
    TREE = "tree"  # hierarchical-namespace Azure: depth-first, a directory before `a-b`


def _tree_key(key: str) -> str:
    return key.replace("/", "\x00")


# --- objects, checkpoints, runs --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One listed object, normalised by the kind at the edge. `key` is the decoded name."""

    key: str
    size: int
    modified: datetime
    version: str  # S3 / Azure ETag, GCS generation: re-checked right before a change
    storage_class: str  # the store's own name: STANDARD, GLACIER_IR, COLDLINE, Hot, Cool...
    last_access: datetime | None = None  # Azure, where last-access tracking is on
    metadata: Mapping[str, str] | None = None  # user metadata, where the listing returns it
    # A directory entry, not data: an S3 console "folder" (`runs/`), an HNS directory blob.
    placeholder: bool = False

    def __post_init__(self) -> None:
        if self.modified.tzinfo is None:
            raise ValueError(f"{self.key!r}: modified must be timezone-aware")
        if self.last_access is not None and self.last_access.tzinfo is None:
            raise ValueError(f"{self.key!r}: last_access must be timezone-aware")
        if self.size < 0:
            raise ValueError(f"{self.key!r}: negative size {self.size}")


_NUMBER = re.compile(r"\d+")


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in _NUMBER.findall(text))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One checkpoint: a directory (`name` ends with `/`) or a group of loose files."""

    name: str  # full key prefix of a directory, the key of a single file, or `prefix + stem*`
    directory: bool
    objects: tuple[StoredObject, ...]  # in listing order
    marker: str | None = None  # a `janitor-exempt` object inside the directory: keep it

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def newest_modified(self) -> datetime:
        return max(o.modified for o in self.objects)

    @property
    def step(self) -> tuple[int, ...]:
        """The numbers in the checkpoint's own name (`checkpoint-1000` -> (1000,)): the
        tie-break between checkpoints written in the same second."""
        return _numbers(self.label)

    @property
    def label(self) -> str:
        """The name relative to its run: `checkpoint-1000/`, `final.pt`."""
        base = self.name.rstrip("/") if self.directory else self.name
        cut = base.rfind("/") + 1
        return self.name[cut:]

    def referenced_by(self, references: Collection[str]) -> str | None:
        """The first reference (a key or key prefix in the same bucket: SageMaker ModelDataUrl,
        Vertex artifactUri, Azure ML model path) that points into or at this checkpoint."""
        for ref in references:
            if not ref:
                continue
            if self.directory and (ref.startswith(self.name) or self.name.startswith(ref)):
                return ref
            if any(o.key.startswith(ref) or ref.startswith(o.key) for o in self.objects):
                return ref
        return None


@dataclass(frozen=True, slots=True)
class RunActivity:
    """What idleness is judged from: the newest modification (and last access, where the store
    tracks it) of every object in the run's prefix, nested runs excluded. JSON round-trips
    through `Resource.details` (`to_details` / `from_details`)."""

    newest_modified: datetime
    newest_key: str  # the object modified last
    objects: int  # every object counted (checkpoints and other files)
    newest_access: datetime | None = None
    accessed_objects: int = 0  # objects that carried a last-access time

    def to_details(self) -> dict[str, Any]:
        return {
            "newest_modified": self.newest_modified.isoformat(),
            "newest_key": self.newest_key,
            "objects": self.objects,
            "newest_access": None if self.newest_access is None else self.newest_access.isoformat(),
            "accessed_objects": self.accessed_objects,
        }

    @classmethod
    def from_details(cls, data: Mapping[str, Any]) -> RunActivity:
        access = data.get("newest_access")
        return cls(
            newest_modified=utc(datetime.fromisoformat(str(data["newest_modified"]))),
            newest_key=str(data["newest_key"]),
            objects=int(data["objects"]),
            newest_access=None if access is None else utc(datetime.fromisoformat(str(access))),
            accessed_objects=int(data.get("accessed_objects", 0)),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One training run, complete: every object under its prefix was seen."""

    prefix: str
    checkpoints: tuple[Checkpoint, ...]  # oldest first (newest modification, then step)
    activity: RunActivity
    other_objects: int  # files that are no checkpoint (configs, logs...): never touched
    other_bytes: int
    marker: str | None = None  # key of the `janitor-exempt` object in the run's own prefix

    @property
    def object_count(self) -> int:
        """Objects in the run's checkpoints."""
        return sum(len(c.objects) for c in self.checkpoints)

    @property
    def total_bytes(self) -> int:
        """Bytes in the run's checkpoints."""
        return sum(c.size for c in self.checkpoints)

    @property
    def newest_modified(self) -> datetime:
        return self.activity.newest_modified

    def objects(self) -> Iterator[StoredObject]:
        for checkpoint in self.checkpoints:
            yield from checkpoint.objects

    def metadata_value(self, keys: Sequence[str]) -> str | None:
        """The first of `keys` (case-insensitive) found in the user metadata of the run's
        checkpoint objects, newest object first: the owner after the bucket's tags."""
        wanted = [k.lower() for k in keys]
        for obj in sorted(self.objects(), key=lambda o: o.modified, reverse=True):
            if not obj.metadata:
                continue
            lowered = {k.lower(): v for k, v in obj.metadata.items()}
            for key in wanted:
                value = lowered.get(key, "").strip()
                if value:
                    return value
        return None


# --- recognition -----------------------------------------------------------------------------


class Placement(StrEnum):
    CHECKPOINT = "checkpoint"  # part of a checkpoint directory or a loose checkpoint file
    MARKER = "marker"  # the opt-out marker
    OTHER = "other"  # no checkpoint: never touched
    PLACEHOLDER = "placeholder"  # a directory entry (`runs/`): ignored


@dataclass(frozen=True, slots=True)
class Classified:
    placement: Placement
    run: str  # the run prefix (CHECKPOINT), the marker's directory, the file's directory
    checkpoint: str | None = None  # Checkpoint.name of the group (CHECKPOINT; MARKER inside one)
    directory: bool = False  # the checkpoint is a directory


_SHARD = re.compile(r"[-_.]?\d+[-_]of[-_]\d+$", re.IGNORECASE)
_RANK = re.compile(r"(?:^|[-_.])(?:(?:mp|tp|pp|dp)_)?rank[-_]?\d+(?=$|[-_.])", re.IGNORECASE)
_DISTCP_SHARD = re.compile(r"^__\d+_\d+$")
_WILDCARDS = frozenset("*?[")


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _suffix_rule(pattern: str) -> tuple[str, bool] | None:
    """(literal, trailing star) for `*.pt` and `*.data-*` shapes, else None."""
    if not pattern.startswith("*"):
        return None
    body = pattern[1:]
    trailing = body.endswith("*")
    literal = body[:-1] if trailing else body
    if not literal or any(c in _WILDCARDS for c in literal):
        return None
    return literal, trailing


@dataclass(frozen=True)
class Recognizer:
    """Which keys are checkpoints. Patterns are shell globs matched, case-sensitively, against
    one path segment: the file name (file patterns) or a directory name (directory ones)."""

    file_patterns: tuple[str, ...] = DEFAULT_FILE_PATTERNS
    dir_patterns: tuple[str, ...] = DEFAULT_DIR_PATTERNS
    marker_name: str = MARKER_NAME
    _files: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _dirs: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _suffixes: tuple[tuple[str, bool] | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for pattern in (*self.file_patterns, *self.dir_patterns):
            problem = pattern_problem(pattern)
            if problem:
                raise ValueError(problem)
        object.__setattr__(self, "_files", _compile(self.file_patterns))
        object.__setattr__(self, "_dirs", _compile(self.dir_patterns))
        object.__setattr__(self, "_suffixes", tuple(_suffix_rule(p) for p in self.file_patterns))

    def checkpoint_dir(self, key: str) -> str | None:
        """The outermost checkpoint directory holding `key` (its prefix, ending with `/`)."""
        dirs = self._dirs
        if dirs is None:
            return None
        start = 0
        while True:
            slash = key.find("/", start)
            if slash < 0:
                return None
            if dirs.fullmatch(key, start, slash) is not None:
                return key[: slash + 1]
            start = slash + 1

    def is_checkpoint_file(self, name: str) -> bool:
        return self._files is not None and self._files.fullmatch(name) is not None

    def stem(self, name: str) -> str:
        """The group a loose checkpoint file belongs to: its name without the checkpoint suffix
        and without shard or rank numbers (`model-00001-of-00002.safetensors` -> `model`)."""
        stem = name
        for pattern, rule in zip(self.file_patterns, self._suffixes, strict=True):
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            if rule is not None:
                literal, trailing = rule
                cut = name.rfind(literal) if trailing else len(name) - len(literal)
                if cut >= 0:
                    stem = name[:cut]
            break
        stem = _SHARD.sub("", stem)
        stem = _RANK.sub("", stem)
        return "" if _DISTCP_SHARD.match(stem) else stem

    def classify(self, key: str) -> Classified:
        """Where `key` belongs. Pure: the kinds use it to re-check an object before acting."""
        if key.endswith("/"):
            return Classified(Placement.PLACEHOLDER, key)
        directory = self.checkpoint_dir(key)
        cut = key.rfind("/") + 1
        name = key[cut:]
        if directory is not None:
            run = directory[: directory.rstrip("/").rfind("/") + 1]
            if name == self.marker_name:
                return Classified(Placement.MARKER, run, directory, True)
            return Classified(Placement.CHECKPOINT, run, directory, True)
        folder = key[:cut]
        if name == self.marker_name:
            return Classified(Placement.MARKER, folder)
        if self.is_checkpoint_file(name):
            return Classified(Placement.CHECKPOINT, folder, folder + self.stem(name))
        return Classified(Placement.OTHER, folder)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a recognition pattern, or None: one path segment, with at least
    one literal character (`*` alone would make every file a checkpoint)."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "a pattern must not be empty"
    if "/" in pattern:
        return f"{pattern!r}: a pattern matches one name, without '/'"
    if not any(c not in "*?[]!" for c in pattern):
        return f"{pattern!r} matches any name: a pattern needs a literal part, like *.pt"
    return None


def recognizer_for(rule: Rule) -> Recognizer:
    """The recognizer of a checkpoint rule (its `checkpoints` options, its exempt tag)."""
    options = rule.checkpoints
    if options is None:
        return Recognizer(marker_name=rule.exempt_tag)
    return Recognizer(
        file_patterns=tuple(options.file_patterns),
        dir_patterns=tuple(options.dir_patterns),
        marker_name=rule.exempt_tag,
    )


# --- streaming grouper -----------------------------------------------------------------------


class _Group:
    __slots__ = ("directory", "marker", "name", "objects")

    def __init__(self, name: str, directory: bool) -> None:
        self.name = name
        self.directory = directory
        self.objects: list[StoredObject] = []
        self.marker: str | None = None

    def freeze(self) -> Checkpoint:
        name = self.name
        if not self.directory:
            name = self.objects[0].key if len(self.objects) == 1 else self.name + "*"
        return Checkpoint(name, self.directory, tuple(self.objects), self.marker)


class _Frame:
    """One open directory along the current key's path."""

    __slots__ = (
        "accessed",
        "count",
        "groups",
        "marker",
        "newest",
        "newest_access",
        "newest_key",
        "other_bytes",
        "other_count",
        "prefix",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.groups: dict[tuple[bool, str], _Group] | None = None
        self.marker: str | None = None
        self.count = 0
        self.other_count = 0
        self.other_bytes = 0
        self.newest: datetime | None = None
        self.newest_key = ""
        self.newest_access: datetime | None = None
        self.accessed = 0

    def touch(self, obj: StoredObject) -> None:
        self.count += 1
        if self.newest is None or obj.modified > self.newest:
            self.newest = obj.modified
            self.newest_key = obj.key
        if obj.last_access is not None:
            self.accessed += 1
            if self.newest_access is None or obj.last_access > self.newest_access:
                self.newest_access = obj.last_access

    def absorb(self, child: _Frame) -> None:
        """A finished directory that is no run: its files count for this one."""
        self.count += child.count
        self.other_count += child.other_count
        self.other_bytes += child.other_bytes
        self.accessed += child.accessed
        if child.newest is not None and (self.newest is None or child.newest > self.newest):
            self.newest = child.newest
            self.newest_key = child.newest_key
        if child.newest_access is not None and (
            self.newest_access is None or child.newest_access > self.newest_access
        ):
            self.newest_access = child.newest_access

    def run(self) -> Run:
        assert self.groups is not None
        assert self.newest is not None
        checkpoints = sorted(
            (group.freeze() for group in self.groups.values() if group.objects),
            key=lambda c: (c.newest_modified, c.step, c.name),
        )
        activity = RunActivity(
            newest_modified=self.newest,
            newest_key=self.newest_key,
            objects=self.count,
            newest_access=self.newest_access,
            accessed_objects=self.accessed,
        )
        return Run(
            self.prefix,
            tuple(checkpoints),
            activity,
            self.other_count,
            self.other_bytes,
            self.marker,
        )


class RunGrouper:
    """Groups a listing into runs while it streams. Feed objects in listing order, page by
    page (`feed`), then `finish`; each run is yielded as soon as the listing has moved past its
    prefix. Memory holds the open directories of the current key and the checkpoints of the
    runs among them: one run (and the runs it is nested in), never the bucket."""

    def __init__(
        self,
        recognizer: Recognizer | None = None,
        *,
        order: ListingOrder = ListingOrder.LEXICOGRAPHIC,
    ) -> None:
        self._recognizer = recognizer or Recognizer()
        self._tree = order is ListingOrder.TREE
        self._stack: list[_Frame] = [_Frame("")]
        self._last: str | None = None
        self._last_sort: str = ""
        self._finished = False
        # One-entry cache: consecutive keys nearly always share their directory.
        self._cached_dir: str | None = None
        self._cached_ckpt: str | None = None
        self.objects_seen = 0

    def feed(self, objects: Iterable[StoredObject]) -> Iterator[Run]:
        """Add one page (or any run of objects); yields the runs it finishes."""
        for obj in objects:
            yield from self.add(obj)

    def add(self, obj: StoredObject) -> list[Run]:
        if self._finished:
            raise RuntimeError("the grouper has finished; start a new one")
        key = obj.key
        sort = _tree_key(key) if self._tree else key
        if self._last is not None and sort <= self._last_sort:
            raise ListingOrderError(
                f"listing out of {'tree' if self._tree else 'lexicographic'} order: "
                f"{key!r} after {self._last!r}"
            )
        self._last, self._last_sort = key, sort
        self.objects_seen += 1
        if obj.placeholder or key.endswith("/"):
            return []
        finished: list[Run] = []
        stack = self._stack
        while len(stack) > 1 and not key.startswith(stack[-1].prefix):
            self._pop(finished)
        cut = key.rfind("/") + 1
        folder = key[:cut]
        if folder == self._cached_dir:
            directory = self._cached_ckpt
        else:
            directory = self._recognizer.checkpoint_dir(key)
            self._cached_dir, self._cached_ckpt = folder, directory
        name = key[cut:]
        recognizer = self._recognizer
        if directory is not None:
            run_prefix = directory[: directory.rstrip("/").rfind("/") + 1]
            frame = self._open(key, run_prefix)
            group = self._group(frame, (True, directory), directory, True)
            if name == recognizer.marker_name:
                group.marker = key
                return finished
            group.objects.append(obj)
            frame.touch(obj)
            return finished
        frame = self._open(key, folder)
        if name == recognizer.marker_name:
            frame.marker = key
        elif recognizer.is_checkpoint_file(name):
            stem = recognizer.stem(name)
            self._group(frame, (False, stem), folder + stem, False).objects.append(obj)
            frame.touch(obj)
        else:
            frame.other_count += 1
            frame.other_bytes += obj.size
            frame.touch(obj)
        return finished

    def finish(self) -> list[Run]:
        """Close every open directory: the runs still held. The grouper is then spent."""
        finished: list[Run] = []
        while self._stack:
            self._pop(finished)
        self._finished = True
        return finished

    @staticmethod
    def _group(frame: _Frame, ident: tuple[bool, str], name: str, directory: bool) -> _Group:
        if frame.groups is None:
            frame.groups = {}
        group = frame.groups.get(ident)
        if group is None:
            group = frame.groups[ident] = _Group(name, directory)
        return group

    def _open(self, key: str, prefix: str) -> _Frame:
        """The frame of directory `prefix` (a prefix of `key`), opening every directory between
        the deepest open one and it."""
        stack = self._stack
        top = stack[-1]
        while len(top.prefix) < len(prefix):
            slash = key.find("/", len(top.prefix))
            top = _Frame(key[: slash + 1])
            stack.append(top)
        return top

    def _pop(self, finished: list[Run]) -> None:
        frame = self._stack.pop()
        if frame.groups and any(group.objects for group in frame.groups.values()):
            finished.append(frame.run())
        elif self._stack:
            self._stack[-1].absorb(frame)


def group_runs(
    objects: Iterable[StoredObject],
    recognizer: Recognizer | None = None,
    *,
    order: ListingOrder = ListingOrder.LEXICOGRAPHIC,
) -> Iterator[Run]:
    """Every run in a listing, streamed: `group_runs(chain.from_iterable(pages), ...)`."""
    grouper = RunGrouper(recognizer, order=order)
    yield from grouper.feed(objects)
    yield from grouper.finish()


def find_run(
    objects: Iterable[StoredObject],
    prefix: str,
    recognizer: Recognizer | None = None,
    *,
    order: ListingOrder = ListingOrder.LEXICOGRAPHIC,
) -> Run | None:
    """The run whose prefix is exactly `prefix` in a fresh listing of it (the re-read before
    an action); None when it holds no checkpoint any more. Nested runs are left out."""
    found = None
    for run in group_runs(objects, recognizer, order=order):
        if run.prefix == prefix:
            found = run
    return found


# --- storage classes, as data ----------------------------------------------------------------


class Store(StrEnum):
    S3 = "s3"
    GCS = "gcs"
    AZURE_BLOB = "azure-blob"


class Tier(StrEnum):
    """Cloud-neutral targets. `cold` (the default) is read at once, with no restore; the
    others only when the policy names them."""

    COLD = "cold"
    ARCHIVE = "archive"
    DEEP_ARCHIVE = "deep-archive"


@dataclass(frozen=True, slots=True)
class StorageClass:
    """One storage class of one store, with what the report must say about it."""

    store: Store
    name: str  # the store's own spelling: GLACIER_IR, COLDLINE, Cold
    title: str
    rank: int  # 0 is the warmest; only compared within one store
    instant: bool  # readable at once, with no restore or rehydration
    min_storage_days: int  # deleted or moved earlier: billed as if kept that long
    retrieval: str  # how long a read takes to start
    # Objects smaller than this are billed as this size: moving them costs more than it saves.
    min_billable_bytes: int = 0
    # Billed on top of every object (S3 Glacier Flexible Retrieval, Deep Archive: 40 KiB index).
    overhead_bytes: int = 0

    def describe(self) -> str:
        """One line for the report: what choosing this class means."""
        parts = [f"{self.name} ({self.title})"]
        if self.min_storage_days:
            parts.append(f"minimum storage {self.min_storage_days} days")
        parts.append(
            f"read at once ({self.retrieval})" if self.instant else f"retrieval: {self.retrieval}"
        )
        if self.min_billable_bytes:
            parts.append(f"objects under {self.min_billable_bytes // 1024} KiB billed as that")
        return ", ".join(parts)


_KIB = 1024
_INSTANT = "milliseconds"
_S3_FLEX = (
    "restore first: expedited 1-5 minutes, standard 3-5 hours, bulk 5-12 hours, then readable "
    "for the days the restore asked for"
)
_S3_DEEP = "restore first: standard within 12 hours, bulk within 48 hours"
_AZURE_ARCHIVE = (
    "offline: rehydrate first, standard priority up to 15 hours, high priority under 1 hour "
    "for blobs under 10 GiB"
)

_CLASSES: tuple[StorageClass, ...] = (
    # S3 (names as ListObjectsV2 and CopyObject spell them)
    StorageClass(Store.S3, "STANDARD", "S3 Standard", 0, True, 0, _INSTANT),
    StorageClass(Store.S3, "REDUCED_REDUNDANCY", "S3 Reduced Redundancy", 0, True, 0, _INSTANT),
    StorageClass(Store.S3, "STANDARD_IA", "S3 Standard-IA", 1, True, 30, _INSTANT, 128 * _KIB),
    StorageClass(Store.S3, "ONEZONE_IA", "S3 One Zone-IA", 1, True, 30, _INSTANT, 128 * _KIB),
    StorageClass(
        Store.S3,
        "GLACIER_IR",
        "S3 Glacier Instant Retrieval",
        2,
        True,
        90,
        _INSTANT,
        128 * _KIB,
    ),
    StorageClass(
        Store.S3,
        "GLACIER",
        "S3 Glacier Flexible Retrieval",
        3,
        False,
        90,
        _S3_FLEX,
        128 * _KIB,
        40 * _KIB,
    ),
    StorageClass(
        Store.S3,
        "DEEP_ARCHIVE",
        "S3 Glacier Deep Archive",
        4,
        False,
        180,
        _S3_DEEP,
        128 * _KIB,
        40 * _KIB,
    ),
    # Cloud Storage: every class is read at once; the colder ones charge per GB read.
    StorageClass(Store.GCS, "STANDARD", "Standard storage", 0, True, 0, _INSTANT),
    StorageClass(Store.GCS, "MULTI_REGIONAL", "Multi-Regional (legacy)", 0, True, 0, _INSTANT),
    StorageClass(Store.GCS, "REGIONAL", "Regional (legacy)", 0, True, 0, _INSTANT),
    StorageClass(
        Store.GCS,
        "DURABLE_REDUCED_AVAILABILITY",
        "Durable Reduced Availability (legacy)",
        0,
        True,
        0,
        _INSTANT,
    ),
    StorageClass(Store.GCS, "NEARLINE", "Nearline storage", 1, True, 30, _INSTANT),
    StorageClass(Store.GCS, "COLDLINE", "Coldline storage", 2, True, 90, _INSTANT),
    StorageClass(
        Store.GCS, "ARCHIVE", "Archive storage", 3, True, 365, f"{_INSTANT}, per-GB retrieval fee"
    ),
    # Azure Blob access tiers (block blobs)
    StorageClass(Store.AZURE_BLOB, "Hot", "Hot tier", 0, True, 0, _INSTANT),
    StorageClass(Store.AZURE_BLOB, "Cool", "Cool tier", 1, True, 30, _INSTANT),
    StorageClass(Store.AZURE_BLOB, "Cold", "Cold tier", 2, True, 90, _INSTANT),
    StorageClass(Store.AZURE_BLOB, "Archive", "Archive tier", 3, False, 180, _AZURE_ARCHIVE),
)
CLASSES: dict[Store, dict[str, StorageClass]] = {}
for _class in _CLASSES:
    CLASSES.setdefault(_class.store, {})[_class.name.upper()] = _class

TIERS: dict[Store, dict[Tier, str]] = {
    Store.S3: {Tier.COLD: "GLACIER_IR", Tier.ARCHIVE: "GLACIER", Tier.DEEP_ARCHIVE: "DEEP_ARCHIVE"},
    Store.GCS: {Tier.COLD: "COLDLINE", Tier.ARCHIVE: "ARCHIVE"},
    Store.AZURE_BLOB: {Tier.COLD: "Cold", Tier.ARCHIVE: "Archive"},
}

_STORE_OF_CLOUD = {"aws": Store.S3, "gcp": Store.GCS, "azure": Store.AZURE_BLOB}


def store_of(cloud: str) -> Store:
    """The object store of a cloud (`Cloud.AWS` -> S3)."""
    return _STORE_OF_CLOUD[str(cloud)]


def storage_class(store: Store, name: str) -> StorageClass | None:
    """A class the store reported (case-insensitive), or None when janitor does not manage it
    (S3 INTELLIGENT_TIERING, Outposts, Azure premium tiers...): such objects are never moved."""
    return CLASSES[store].get(name.strip().upper())


def target_class(store: Store, name: str) -> StorageClass:
    """The class a rule's `storage_class` names: a tier (`cold`, `archive`, `deep-archive`) or
    the store's own name of a class colder than its warmest. ValueError, one line, otherwise."""
    text = name.strip()
    try:
        tier = Tier(text.lower())
    except ValueError:
        tier = None
    if tier is not None:
        mapped = TIERS[store].get(tier)
        if mapped is None:
            offered = ", ".join(t.value for t in TIERS[store])
            raise ValueError(f"{text!r} is not available on {store.value} (use {offered})")
        return CLASSES[store][mapped.upper()]
    found = storage_class(store, text)
    if found is None or found.rank == 0:
        tiers = ", ".join(t.value for t in TIERS[store])
        names = ", ".join(c.name for c in CLASSES[store].values() if c.rank > 0)
        raise ValueError(
            f"{text!r} is not a storage class janitor can move {store.value} objects to "
            f"(use {tiers}, or one of {names})"
        )
    return found


# --- bucket names ----------------------------------------------------------------------------

_S3_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_AZURE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_AZURE_CONTAINER = re.compile(r"^(?:\$root|[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9])$")
MAX_PREFIX = 1024


def bucket_problem(store: Store, name: str) -> str | None:
    """Why `name` cannot be a bucket (Azure: `account/container`) of `store`, or None."""
    if store is Store.AZURE_BLOB:
        account, slash, container = name.partition("/")
        if not slash or not _AZURE_ACCOUNT.match(account) or not _AZURE_CONTAINER.match(container):
            return (
                f"{name!r} is not an Azure storage account and container "
                "(account/container, like mlstore/checkpoints)"
            )
        return None
    if store is Store.S3:
        if not _S3_BUCKET.match(name):
            return f"{name!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.' and '-')"
        return None
    if (
        not _GCS_BUCKET.match(name)
        or ("." not in name and len(name) > 63)
        or any(len(part) > 63 for part in name.split("."))
    ):
        return f"{name!r} is not a Cloud Storage bucket name (3-63 of a-z, 0-9, '.', '_', '-')"
    return None


# --- the action plan -------------------------------------------------------------------------


class PlanAction(StrEnum):
    ARCHIVE = "archive"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ObjectMove:
    """One class change, with what the re-check and the restore need."""

    key: str
    size: int
    version: str  # the scan's ETag / generation: skip the object if it changed since
    from_class: str  # restore moves it back here
    to_class: str


@dataclass(frozen=True, slots=True)
class Kept:
    checkpoint: str  # Checkpoint.name
    reason: str


@dataclass(frozen=True, slots=True)
class Untouched:
    key: str
    storage_class: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What the action would do to one run. Only checkpoint objects ever appear in `moves` or
    `deletes`; the run's other files are counted in `other_objects`, and never touched."""

    prefix: str
    action: PlanAction
    target: StorageClass
    keep_latest: int
    kept: tuple[Kept, ...]
    moves: tuple[ObjectMove, ...] = ()
    deletes: tuple[StoredObject, ...] = ()
    untouched: tuple[Untouched, ...] = ()
    other_objects: int = 0
    other_bytes: int = 0
    notes: tuple[str, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return not self.moves and not self.deletes

    @property
    def bytes_moved(self) -> int:
        return sum(m.size for m in self.moves)

    @property
    def bytes_deleted(self) -> int:
        return sum(o.size for o in self.deletes)

    def summary(self) -> str:
        """One line for the finding."""
        kept = ", ".join(f"{_label(k.checkpoint)} ({k.reason})" for k in self.kept) or "none"
        if self.action is PlanAction.DELETE:
            head = (
                f"delete {len(self.deletes)} objects ({_size(self.bytes_deleted)}) of "
                f"{self.prefix or '(bucket root)'}"
            )
        else:
            head = (
                f"move {len(self.moves)} objects ({_size(self.bytes_moved)}) of "
                f"{self.prefix or '(bucket root)'} to {self.target.name}"
            )
        tail = f"; keep {kept}; {len(self.untouched)} checkpoint objects untouched"
        if self.other_objects:
            tail += f"; {self.other_objects} other files never touched"
        return head + tail

    def restore_entries(self) -> list[dict[str, str]]:
        """For the audit log: every object moved and its former class."""
        return [{"key": m.key, "from": m.from_class, "to": m.to_class} for m in self.moves]


def _label(name: str) -> str:
    base = name.rstrip("/")
    return name[base.rfind("/") + 1 :]


def _size(size: int) -> str:
    if size >= GIB:
        return f"{size / GIB:.1f} GiB"
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MiB"
    return f"{size} bytes"


def _warmer(store: Store, obj: StoredObject, target: StorageClass) -> bool:
    """The object is in a managed class warmer than `target`."""
    current = storage_class(store, obj.storage_class)
    return current is not None and current.rank < target.rank


def kept_checkpoints(
    run: Run,
    *,
    store: Store,
    keep_latest: int,
    target: StorageClass,
    references: Collection[str] = (),
) -> dict[str, str]:
    """Checkpoint name -> why it is kept: the newest `keep_latest` by modification time, and
    the newest `keep_latest` of those not yet in `target` or colder (an in-place class change
    gives an S3 or GCS object a new modification time, so after an archive the moved ones look
    newest; both sets are kept), those a live model references, those holding a marker."""
    if keep_latest < 1:
        raise ValueError(f"keep_latest must be at least 1, got {keep_latest}")
    newest_first = sorted(
        run.checkpoints, key=lambda c: (c.newest_modified, c.step, c.name), reverse=True
    )
    kept: dict[str, str] = {}
    for checkpoint in newest_first[:keep_latest]:
        kept[checkpoint.name] = "newest"
    live = [c for c in newest_first if any(_warmer(store, o, target) for o in c.objects)]
    for checkpoint in live[:keep_latest]:
        kept.setdefault(checkpoint.name, f"newest not yet in {target.name}")
    for checkpoint in run.checkpoints:
        ref = checkpoint.referenced_by(references)
        if ref is not None:
            kept.setdefault(checkpoint.name, f"referenced by a live model ({ref})")
        if checkpoint.marker is not None:
            kept.setdefault(checkpoint.name, f"exempt marker {checkpoint.marker}")
    return kept


def plan_run(
    run: Run,
    *,
    store: Store,
    keep_latest: int = DEFAULT_KEEP_LATEST,
    target: StorageClass | None = None,
    action: PlanAction = PlanAction.ARCHIVE,
    references: Collection[str] = (),
) -> RunPlan:
    """The action on one run. Archive: every object of every checkpoint but the kept ones
    moves to `target` (default: the store's `cold` class), unless it is already there or
    colder, in a class janitor does not manage, or smaller than the target's minimum billable
    size. Delete: every object of every checkpoint but the kept ones; nothing moves.
    `references`: keys or key prefixes of this bucket that a live model or endpoint uses."""
    if target is None:
        target = CLASSES[store][TIERS[store][Tier.COLD].upper()]
    if target.store is not store:
        raise ValueError(f"{target.name} is a {target.store.value} class, not {store.value}")
    kept = kept_checkpoints(
        run, store=store, keep_latest=keep_latest, target=target, references=references
    )
    moves: list[ObjectMove] = []
    deletes: list[StoredObject] = []
    untouched: list[Untouched] = []
    for checkpoint in run.checkpoints:
        reason = kept.get(checkpoint.name)
        for obj in checkpoint.objects:
            if reason is not None:
                untouched.append(Untouched(obj.key, obj.storage_class, f"kept: {reason}"))
                continue
            if action is PlanAction.DELETE:
                deletes.append(obj)
                continue
            current = storage_class(store, obj.storage_class)
            if current is None:
                why = f"class {obj.storage_class or '(none)'} is not one janitor moves"
            elif current.rank >= target.rank:
                why = f"already in {current.name}"
            elif obj.size < target.min_billable_bytes:
                why = (
                    f"smaller than {target.name}'s minimum billable size "
                    f"({target.min_billable_bytes // 1024} KiB): moving would cost more"
                )
            else:
                moves.append(ObjectMove(obj.key, obj.size, obj.version, current.name, target.name))
                continue
            untouched.append(Untouched(obj.key, obj.storage_class, why))
    notes: list[str] = []
    if action is PlanAction.ARCHIVE and (not target.instant or target.rank > _cold_rank(store)):
        notes.append(target.describe())
    if action is PlanAction.DELETE:
        early = {
            c.name
            for o in deletes
            if (c := storage_class(store, o.storage_class)) is not None and c.min_storage_days
        }
        if early:
            notes.append(
                "deleting objects of "
                + ", ".join(sorted(early))
                + " before their minimum storage duration is billed as if kept that long"
            )
    return RunPlan(
        prefix=run.prefix,
        action=action,
        target=target,
        keep_latest=keep_latest,
        kept=tuple(Kept(name, why) for name, why in kept.items()),
        moves=tuple(moves),
        deletes=tuple(deletes),
        untouched=tuple(untouched),
        other_objects=run.other_objects,
        other_bytes=run.other_bytes,
        notes=tuple(notes),
    )


def _cold_rank(store: Store) -> int:
    return CLASSES[store][TIERS[store][Tier.COLD].upper()].rank


def billable_bytes(size: int, cls: StorageClass | None) -> int:
    if cls is None:
        return size
    return max(size, cls.min_billable_bytes) + cls.overhead_bytes


PriceLookup = Callable[[str], "float | None"]  # class name -> USD per GiB-month, None: unknown


def monthly_cost(run: Run, store: Store, price: PriceLookup) -> float | None:
    """What the run's checkpoints cost a month now; None when a class has no price."""
    total = 0.0
    for obj in run.objects():
        per_gib = price(obj.storage_class)
        if per_gib is None:
            return None
        total += billable_bytes(obj.size, storage_class(store, obj.storage_class)) / GIB * per_gib
    return total


def monthly_saving(plan: RunPlan, store: Store, price: PriceLookup) -> float | None:
    """What the plan saves a month once done (storage only; retrieval and request fees aside);
    None when a class has no price."""
    total = 0.0
    for move in plan.moves:
        before, after = price(move.from_class), price(move.to_class)
        if before is None or after is None:
            return None
        total += billable_bytes(move.size, storage_class(store, move.from_class)) / GIB * before
        total -= billable_bytes(move.size, plan.target) / GIB * after
    for obj in plan.deletes:
        per_gib = price(obj.storage_class)
        if per_gib is None:
            return None
        total += billable_bytes(obj.size, storage_class(store, obj.storage_class)) / GIB * per_gib
    return total


# --- idleness and opt-out --------------------------------------------------------------------


def run_verdict(
    ref: ResourceRef, activity: RunActivity, now: datetime, *, access_tracking: bool = False
) -> Verdict:
    """Idle since the newest modification of any object in the run's prefix, or its newest
    last access where the store tracks it (`access_tracking`, Azure); the evidence names which.
    Activity within the last 24 hours (`evidence.RECENT`), or in the future, is active.
    Modification times do not show reads, so without access tracking confidence is MEDIUM."""
    now = utc(now)
    modified = utc(activity.newest_modified)
    last, source = modified, f"newest modification: {activity.newest_key} on {_when(modified)}"
    confidence = Confidence.MEDIUM
    if access_tracking and activity.newest_access is not None:
        access = utc(activity.newest_access)
        confidence = Confidence.HIGH
        source = (
            f"last access time (access tracking on; {activity.accessed_objects} of "
            f"{activity.objects} objects carry one), newest {_when(access)}; {source}"
        )
        last = max(last, access)
    elif access_tracking:
        source += "; access tracking is on but no object carries a last access time yet"
    else:
        source += " (modification time: reads are not seen)"
    if last > now:
        return Verdict.active(
            ref, f"an object is dated in the future ({source})", last_activity=now
        )
    if now - last < RECENT:
        return Verdict.active(ref, f"used within the last day ({source})", last_activity=last)
    return Verdict.idle(
        ref,
        last,
        f"untouched since {_when(last)} ({source})",
        confidence=confidence,
        last_activity=last,
    )


def _when(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


def marker_value(body: bytes) -> str:
    """The marker object's content as an exempt tag value: the first line, trimmed. Empty
    (the usual marker) exempts; `2026-12-31` exempts until that day; text that is not UTF-8
    exempts (read as `true`), as an unreadable tag value does."""
    try:
        text = body[:MARKER_READ_BYTES].decode("utf-8-sig")
    except UnicodeDecodeError:
        return "true"
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def tags_with_marker(
    tags: Mapping[str, str], tag_key: str, marker: str | None, now: datetime
) -> dict[str, str]:
    """The run's tags for the lifecycle: the bucket's tags, with the marker's value as the
    exempt tag when the run has a marker and the bucket's own tag does not already exempt it
    (either one opting out is enough)."""
    # lifecycle imports policy, which imports this module: imported when used.
    from janitor.lifecycle import exemption

    merged = dict(tags)
    if marker is None or exemption(tags, tag_key, now).exempt:
        return merged
    merged = {k: v for k, v in merged.items() if k.lower() != tag_key.lower()}
    merged[tag_key] = marker
    return merged


def run_details(run: Run, *, limit: int = 50) -> dict[str, Any]:
    """JSON-able facts for `Resource.details`: what the report shows and the probe reads."""
    names = [c.label for c in reversed(run.checkpoints)]  # newest first
    return {
        "prefix": run.prefix,
        "checkpoints": names[:limit],
        "checkpoint_count": len(run.checkpoints),
        "objects": run.object_count,
        "bytes": run.total_bytes,
        "other_objects": run.other_objects,
        "other_bytes": run.other_bytes,
        "marker": run.marker,
        "activity": run.activity.to_details(),
    }
