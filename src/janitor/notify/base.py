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
    ok: bool
    destination: str  # where it went (or was meant to go)
    detail: str = ""


class Notifier(Protocol):
    name: str

    def prepare(self, owners: Iterable[str | None]) -> None:
        """Called once per run with every owner about to get a digest (bulk look-ups)."""
        ...

    def deliver(self, digest: Digest) -> Delivery:
        """Send one digest. `ok` only when the destination confirmed it."""
        ...

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        """Send the run summary where the notifier keeps one; None when it keeps none."""
        ...
