"""What a notifier is given (one digest per owner per run) and what it answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from janitor.model import Action, Finding


@dataclass(frozen=True, slots=True)
class DigestItem:
    finding: Finding
    stage: Action  # NOTIFY (notice), WARN (warning), STOP (stop done)


@dataclass(frozen=True, slots=True)
class Digest:
    owner: str | None  # None: resources nobody owns, for the fallback destination
    items: tuple[DigestItem, ...]
    as_of: datetime

    def stage(self, stage: Action) -> list[DigestItem]:
        return [item for item in self.items if item.stage is stage]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a notifier answers for one digest.

    `ok` only when every part of the digest was confirmed. `delivered`: the resource keys of
    the items the destination confirmed, when the notifier knows them per item (a digest split
    into several messages may get through in part); None means all of them when `ok`, none
    otherwise.
    """

    ok: bool
    destination: str  # where it went (or was meant to go)
    detail: str = ""
    delivered: frozenset[str] | None = None

    def delivered_keys(self, digest: Digest) -> frozenset[str]:
        """The keys of `digest`'s items that reached their destination."""
        if self.delivered is not None:
            return self.delivered
        if self.ok:
            return frozenset(item.finding.resource.ref.key for item in digest.items)
        return frozenset()


class Notifier(Protocol):
    name: str
    # True when a delivered digest reaches the owner (a Slack DM, a channel). Only then does a
    # delivered notice or warning count, and only a counted warning can ever lead to a stop.
    reaches_people: bool

    def prepare(self, owners: Iterable[str | None]) -> None:
        """Called once per run with every owner about to get a digest (bulk look-ups)."""
        ...

    def deliver(self, digest: Digest) -> Delivery:
        """Send one digest. `ok` only when the destination confirmed it."""
        ...

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        """Send the run summary where the notifier keeps one; None when it keeps none."""
        ...
