"""The three roles every kind fills, and the metadata that describes a kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from janitor.model import Cloud, Confidence, Resource, StopPlan, StopResult, Verdict, Window

if TYPE_CHECKING:
    from janitor.policy import Rule


class RestoreFailed(Exception):
    """A stop that cannot be undone (the resource is gone) or not yet (still stopping)."""


class Scanner(Protocol):
    """A scanner may also hold `scan_warnings: list[str]`, filled by `scan`: parts of the scope
    it could not read (an unreachable zone) while the rest was used; each is reported as an
    error of the scope, next to its findings."""

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
    """Two steps, so that the undo recipe is on record before anything changes.

    `plan` only reads: it re-reads the resource (state, tags) and builds the recipe, or says why
    the stop must not go ahead. The pipeline re-checks the fresh resource, commits the recipe,
    and only then calls `act`, the one mutating call.
    """

    def plan(self, resource: Resource) -> StopPlan:
        """Read-only: the resource as it is now and how to undo a stop of it."""
        ...

    def act(self, plan: StopPlan) -> StopResult:
        """Stop. Idempotent; "not found" right after our own call (a retried delete that had
        already succeeded) is a stop, with its recipe."""
        ...

    def restore(self, recipe: Mapping[str, Any]) -> str:
        """Undo a stop from its recorded recipe; returns a one-line description.

        Already undone (running again) is a success; raises RestoreFailed when it cannot be
        done, and the SDK's own error when the cloud refused.
        """
        ...


@dataclass(frozen=True)
class Task:
    """One rule in one scope (account x region, project, subscription): what a provider's
    `tasks(policy)` returns and the pipeline runs. Lives here, below both, so that a provider
    never imports the pipeline."""

    rule: Rule
    scope: Any  # the cloud's scope object (e.g. AwsScope), handed to the kind's factory
    cloud: Cloud
    scope_id: str
    region: str
    # Handlers to use instead of building the kind's own from `scope` (in-memory fakes in tests,
    # or a caller that already holds them).
    handlers: KindHandlers | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.rule.kind} {self.scope_id}/{self.region}"


def stop_now(stopper: Stopper, resource: Resource) -> StopResult:
    """`plan` then `act` with nothing recorded in between: for tools and tests that keep no
    audit log. The pipeline never uses it."""
    plan = stopper.plan(resource)
    return plan.refusal or stopper.act(plan)


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
    # Rule fields beyond the common ones that the kind reads (e.g. "gpu_metric").
    options: tuple[str, ...] = ()
    # Actions a rule may choose instead of `action` (e.g. "delete" for the checkpoint kinds,
    # whose own action is "archive").
    actions: tuple[str, ...] = ()
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
