"""The default notifier when Slack is not configured: digests written to a stream.

Printing reaches nobody in particular, so by default a console delivery does not count: no
notice or warning is recorded and no stop follows. A policy can say otherwise explicitly
(`notifier: {type: console, counts_as_delivery: true}`), for teams that want stops without
messages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from janitor.notify.base import Delivery, Digest
from janitor.notify.render import render_text


class ConsoleNotifier:
    name = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        exempt_tag: str = "janitor-exempt",
        *,
        counts_as_delivery: bool = False,
    ) -> None:
        self._stream = stream
        self._exempt_tag = exempt_tag
        self.reaches_people = counts_as_delivery

    def prepare(self, owners: Iterable[str | None]) -> None:
        return None

    def summarize(self, lines: list[str], figures: Mapping[str, str]) -> Delivery | None:
        return None  # the report printed after the run is the summary

    def deliver(self, digest: Digest) -> Delivery:
        stream = self._stream or sys.stderr
        text = render_text(digest, self._exempt_tag)
        if not self.reaches_people:
            text += (
                "\n(printed here only, which reaches nobody: it does not count as telling the "
                "owner, and stops are held until a notifier is configured)"
            )
        stream.write(text + "\n\n")
        stream.flush()
        return Delivery(ok=True, destination=f"console:{digest.owner or 'unowned'}")
