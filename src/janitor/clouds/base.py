"""The three roles every kind fills, and the metadata that describes a kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from janitor.model import Cloud, Confidence, Resource, StopResult, Verdict, Window

if TYPE_CHECKING:
    from janitor.policy import Rule


class RestoreFailed(Exception):
    """A stop that cannot be undone (the resource is gone) or not yet (still stopping)."""


class Scanner(Protocol):
    def scan(self) -> Iterator[Resource]:
        """List the kind's live resources in one scope, normalised, with tags (fetched in bulk)."""
        ...

    def describe(self, resources: Sequence[Resource]) -> list[Resource]:
        """Fill in what listing leaves out (instance type, count), for action candidates only."""
        ...


class UsageProbe(Protocol):
    def usage(
        self, resources: Sequence[Resource], window: Window, now: datetime
    ) -> dict[str, Verdict]:
        """One verdict per resource, keyed by `ref.key`; batched across all of `resources`."""
        ...


class Stopper(Protocol):
    def stop(self, resource: Resource) -> StopResult:
        """Check state first, record how to undo, then stop. Idempotent."""
        ...

    def restore(self, recipe: Mapping[str, Any]) -> str:
        """Undo a stop from its recorded recipe; returns a one-line description.

        Already undone (running again) is a success; raises RestoreFailed when it cannot be
        done, and the SDK's own error when the cloud refused.
        """
        ...


@dataclass(frozen=True, slots=True)
class KindHandlers:
    scanner: Scanner
    probe: UsageProbe
    stopper: Stopper


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A kind is mostly metadata: how it is judged, what acting on it takes."""

    name: str
    cloud: Cloud
    title: str
    evidence: str  # the idleness evidence, strongest first, for docs and reports
    confidence: Confidence  # confidence of the strongest evidence
    action: str  # the verb the action performs: stop, delete, deallocate...
    read_permissions: tuple[str, ...]
    action_permissions: tuple[str, ...]
    stoppable_states: tuple[str, ...]
    # name -> default; a rule's `thresholds` may set only these.
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # How far back the evidence can reach (metric or event retention).
    max_lookback: timedelta = timedelta(days=455)
    # "module:function" building the handlers for (scope, rule); imported only when used,
    # so a cloud's SDK is imported only when a policy names that cloud.
    factory: str = ""

    def build(self, scope: Any, rule: Rule) -> KindHandlers:
        import importlib

        module_name, _, func_name = self.factory.partition(":")
        func: Callable[[Any, Rule], KindHandlers] = getattr(
            importlib.import_module(module_name), func_name
        )
        return func(scope, rule)
