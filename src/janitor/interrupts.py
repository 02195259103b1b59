"""SIGTERM and SIGINT during an applying run: finish the current action, record it, then stop.

While `handling()` is active, a signal only sets a flag; the pipeline calls `check()` between
actions (after the previous one was recorded), and `Interrupted` unwinds the run, releasing
the lock on the way out. Inside an `interruptible()` block (waiting on a notifier or on the
scans, where nothing is half-recorded) the signal raises at once, so a rate-limited Slack does
not hold a terminating process until it is killed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """The run was asked to stop by a signal; raised only where nothing is half-done."""

    def __init__(self, signal_name: str, signum: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.signum = signum


class _State:
    received: tuple[str, int] | None = None
    interruptible = 0


_state = _State()


def check() -> None:
    """Raise `Interrupted` if a signal arrived since `handling()` began."""
    if _state.received is not None:
        raise Interrupted(*_state.received)


@contextmanager
def interruptible() -> Iterator[None]:
    """A block a signal may cut short (it raises at once, in the main thread)."""
    main = threading.current_thread() is threading.main_thread()
    if main:
        _state.interruptible += 1
    try:
        check()
        yield
    finally:
        if main:
            _state.interruptible -= 1


def _handle(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    _state.received = (name, signum)
    if _state.interruptible > 0:
        raise Interrupted(name, signum)


@contextmanager
def handling(
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """Catch `signals` for the block (main thread only); restores the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handle) for s in signals}
    _state.received = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.received = None
        _state.interruptible = 0
